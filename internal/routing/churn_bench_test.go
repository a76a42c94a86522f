package routing

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkRIBChurn measures incremental updates on the real table (as a BGP session sends them
// after its initial transfer): re-announcements of random table prefixes with another path,
// published every 64 updates, so that every change copies the trie nodes it touches (the
// …Persist path) instead of changing a private copy. It reports the time and the heap
// allocated per update.
func BenchmarkRIBChurn(b *testing.B) {
	ps := loadPrefixes(b)
	as := fullTablePaths(ps)
	r := loadRIB(b, ps, as)
	rnd := rand.New(rand.NewPCG(8, 9))
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		r.Announce(ps[rnd.IntN(len(ps))], 0, as[rnd.IntN(len(as))])
		if i++; i%64 == 0 {
			r.Flush()
		}
	}
}
