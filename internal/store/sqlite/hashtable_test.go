package sqlite

import (
	"math/rand/v2"
	"testing"
)

// TestHashTable applies random sets and deletions to the table and to a map, with hashes
// drawn from few values and masked to a few bits (long probe runs that wrap around, deletions
// inside them): every lookup agrees.
func TestHashTable(t *testing.T) {
	rng := rand.New(rand.NewPCG(41, 42))
	for _, mask := range []uint64{^uint64(0), 0xff, 0x7 << 60} {
		var tab hashTable
		if mask == 0xff {
			tab = makeHashTable(100)
		}
		want := map[uint64]int64{}
		hashes := make([]uint64, 500)
		for i := range hashes {
			hashes[i] = rng.Uint64() & mask
		}
		for op := range 20000 {
			h := hashes[rng.IntN(len(hashes))]
			switch rng.IntN(3) {
			case 0, 1:
				id := int64(1 + rng.IntN(1000))
				tab.set(h, id)
				want[h] = id
			case 2:
				tab.del(h)
				delete(want, h)
			}
			if tab.len() != len(want) {
				t.Fatalf("mask %x, op %d: %d entries, want %d", mask, op, tab.len(), len(want))
			}
			if op%100 == 0 {
				for _, h := range hashes {
					id, ok := tab.get(h)
					if w, wok := want[h]; id != w || ok != wok {
						t.Fatalf("mask %x, op %d: hash %x: %d %v, want %d %v", mask, op, h, id, ok, w, wok)
					}
				}
			}
		}
	}
}
