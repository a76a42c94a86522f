package tcpinfo

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/netledger/netledger/internal/record"
)

// TestCookieTable plays random insertions, updates and deletions (growth, tombstones and
// their reuse) against a map.
func TestCookieTable(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var tab cookieTable
	oracle := map[uint64]uint64{}
	var keys []uint64
	for op := 0; op < 200_000; op++ {
		switch r := rng.IntN(10); {
		case r < 5 || len(keys) == 0: // insert or update; sequential-ish cookies like the kernel's
			c := uint64(1 + rng.IntN(50_000))
			i, found := tab.put(c)
			_, had := oracle[c]
			if found != had {
				t.Fatalf("op %d: put(%d) found = %v, want %v", op, c, found, had)
			}
			if found && tab.slots[i].acked != oracle[c] {
				t.Fatalf("op %d: put(%d) holds %d, want %d", op, c, tab.slots[i].acked, oracle[c])
			}
			if !had {
				keys = append(keys, c)
			}
			tab.slots[i].acked = uint64(op)
			oracle[c] = uint64(op)
		case r < 8: // delete
			k := rng.IntN(len(keys))
			c := keys[k]
			keys[k], keys = keys[len(keys)-1], keys[:len(keys)-1]
			i := tab.get(c)
			if i < 0 || tab.slots[i].acked != oracle[c] {
				t.Fatalf("op %d: get(%d) = %d before deletion", op, c, i)
			}
			tab.del(i)
			delete(oracle, c)
		default: // look up, present or not
			c := uint64(1 + rng.IntN(60_000))
			i := tab.get(c)
			v, had := oracle[c]
			if (i >= 0) != had || (had && tab.slots[i].acked != v) {
				t.Fatalf("op %d: get(%d) = %d, in map %v", op, c, i, had)
			}
		}
		if tab.live != len(oracle) {
			t.Fatalf("op %d: %d live entries, want %d", op, tab.live, len(oracle))
		}
	}
	if 2*tab.used > len(tab.slots) {
		t.Errorf("%d of %d slots used: more than half", tab.used, len(tab.slots))
	}
}

// sinkPrefetch keeps the benchmark's prefetch reads alive.
var sinkPrefetch uint64

// BenchmarkTrackerDump100k is the tracker's share of an interval dump: 100,000 idle sockets
// seen again, in an order unrelated to their cookies (the kernel's hash order).
func BenchmarkTrackerDump100k(b *testing.B) {
	tr := newTracker(newFilter(Config{}))
	rng := rand.New(rand.NewPCG(1, 1))
	socks := make([]Socket, 100_000)
	for i := range socks {
		socks[i] = sock(uint64(1000+i), 1000, 1000, 10, 10, 0, 100)
	}
	var r record.Record
	tr.beginDump()
	for i := range socks {
		tr.dumped(&socks[i], 1, &r)
	}
	tr.endDump(1, true)
	rng.Shuffle(len(socks), func(i, j int) { socks[i], socks[j] = socks[j], socks[i] })
	for _, prefetch := range []bool{false, true} {
		b.Run(fmt.Sprintf("prefetch=%v", prefetch), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				tr.beginDump()
				for j := 0; j < len(socks); j += partBatch {
					batch := socks[j:min(j+partBatch, len(socks))]
					if prefetch {
						sinkPrefetch += tr.socks.prefetch(batch)
					}
					for k := range batch {
						if tr.dumped(&batch[k], 1, &r) {
							b.Fatal("an idle socket gave a record")
						}
					}
				}
				tr.endDump(1, true)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e6, "ms/dump")
		})
	}
}
