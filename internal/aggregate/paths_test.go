package aggregate

import (
	"math/rand/v2"
	"testing"

	"github.com/netledger/netledger/internal/routing"
)

// TestPathTableOracle: sets put, looked up and pruned at random against a map: every set put
// and kept is found with its pathInfo, no other set is, through growth and rebuilds.
func TestPathTableOracle(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	sets := make([]routing.Attrs, 5000)
	var tab pathTable
	want := map[*routing.Attrs]pathInfo{}
	for step := range 30 {
		for range rng.IntN(3000) {
			a := &sets[rng.IntN(len(sets))]
			if _, ok := want[a]; ok {
				continue
			}
			p := pathInfo{text: string(rune('a' + rng.IntN(26))), canon: &sets[rng.IntN(len(sets))], used: uint32(step)}
			want[a] = p
			if got := tab.put(a, p); *got != p {
				t.Fatalf("step %d: put returned %+v, want %+v", step, *got, p)
			}
		}
		if rng.IntN(3) == 0 {
			tab.keep(func(a *routing.Attrs, p *pathInfo) bool {
				keep := (uintptr(p.used)+uintptr(len(p.text)))%2 == 0
				if !keep {
					delete(want, a)
				}
				return keep
			})
		}
		for i := range sets {
			a := &sets[i]
			got := tab.get(a)
			w, ok := want[a]
			if ok != (got != nil) || ok && *got != w {
				t.Fatalf("step %d: set %d: got %v, want %+v (present %v)", step, i, got, w, ok)
			}
		}
		n := 0
		tab.each(func(a *routing.Attrs, p *pathInfo) {
			n++
			if w, ok := want[a]; !ok || *p != w {
				t.Fatalf("step %d: each gave %p %+v, want %+v (present %v)", step, a, *p, w, ok)
			}
		})
		if n != len(want) || tab.n != len(want) {
			t.Fatalf("step %d: %d sets (n %d), want %d", step, n, tab.n, len(want))
		}
	}
	if tab.get(nil) != nil {
		t.Fatal("a nil set has a path")
	}
}
