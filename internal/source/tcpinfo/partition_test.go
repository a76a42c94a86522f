package tcpinfo

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestPlanFor checks that plans cover every port exactly once and split the last dump's
// sockets evenly along the better port.
func TestPlanFor(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		name      string
		n         int
		sockets   func(add func(local, remote uint16))
		wantParts int
		wantLocal bool
		maxShare  float64 // the largest partition's share of the sockets, at most
	}{
		{"first dump", 2, func(func(uint16, uint16)) {}, 2, false, 1},
		{"first dump, 3", 3, func(func(uint16, uint16)) {}, 3, false, 1},
		{"one partition", 1, func(add func(uint16, uint16)) { add(443, 50000) }, 1, false, 1},
		{"server, Linux clients", 2, func(add func(uint16, uint16)) {
			for i := 0; i < 10000; i++ {
				add(443, uint16(32768+rng.IntN(61000-32768)))
			}
		}, 2, false, 0.51},
		{"server, 4 partitions", 4, func(add func(uint16, uint16)) {
			for i := 0; i < 10000; i++ {
				add(80, uint16(49152+rng.IntN(1<<16-49152)))
			}
		}, 4, false, 0.26},
		{"proxy to one upstream port", 2, func(add func(uint16, uint16)) {
			for i := 0; i < 10000; i++ {
				add(uint16(32768+rng.IntN(28000)), 8080)
			}
		}, 2, true, 0.51},
		{"one connection", 2, func(add func(uint16, uint16)) { add(443, 50000) }, 1, false, 1},
		{"all in one bin", 3, func(add func(uint16, uint16)) {
			for i := 0; i < 100; i++ {
				add(443, 50000)
			}
		}, 1, false, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h portHist
			var socks [][2]uint16
			tc.sockets(func(l, r uint16) {
				h.add(l, r)
				socks = append(socks, [2]uint16{l, r})
			})
			pl := planFor(&h, tc.n)
			if pl.partitions() != tc.wantParts || pl.local != tc.wantLocal {
				t.Fatalf("plan %+v: %d partitions, local %v; want %d, %v", pl, pl.partitions(), pl.local, tc.wantParts, tc.wantLocal)
			}
			if !slices.IsSorted(pl.cuts) || slices.Contains(pl.cuts, 0) || len(slices.Compact(slices.Clone(pl.cuts))) != len(pl.cuts) {
				t.Fatalf("cuts %v: want strictly increasing, none 0", pl.cuts)
			}
			// Every port falls in exactly one partition.
			count := make([]int, pl.partitions())
			for port := 0; port < 1<<16; port++ {
				in := 0
				for i := range count {
					if lo, hi := pl.bounds(i); uint16(port) >= lo && uint16(port) <= hi {
						in++
						count[i]++
					}
				}
				if in != 1 {
					t.Fatalf("plan %+v: port %d in %d partitions", pl, port, in)
				}
			}
			if len(socks) == 0 {
				return
			}
			per := make([]int, pl.partitions())
			for _, s := range socks {
				port := s[1]
				if pl.local {
					port = s[0]
				}
				for i := range per {
					if lo, hi := pl.bounds(i); port >= lo && port <= hi {
						per[i]++
					}
				}
			}
			if share := float64(slices.Max(per)) / float64(len(socks)); share > tc.maxShare {
				t.Errorf("plan %+v: partitions hold %v sockets; largest share %.3f > %.3f", pl, per, share, tc.maxShare)
			}
		})
	}
}
