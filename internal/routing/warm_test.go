package routing

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"unsafe"
)

// TestWarmLayout: the mirror of bart's node layout matches the bart in go.mod (otherwise
// LookupBatch silently stops prefetching: update warm.go's mirror types).
func TestWarmLayout(t *testing.T) {
	if !warmOK {
		t.Fatal("warm.go's mirror of bart's layout does not match bart: LookupBatch does not prefetch")
	}
}

// TestWarmWalk: warm's walk ends, for most addresses of a full-size random table inside
// prefixes of /24 (IPv4) or /48 (IPv6) or longer, at the leaf or fringe bart's lookup returns (the value it holds
// is the lookup's), so it prefetches the right nodes; never at a fringe other than the
// lookup's.
func TestWarmWalk(t *testing.T) {
	rnd := rand.New(rand.NewPCG(8, 9))
	tr := newTrie()
	var ps []netip.Prefix
	for i := range 200000 {
		a := netip.AddrFrom4([4]byte{byte(rnd.Uint32()), byte(rnd.Uint32()), byte(rnd.Uint32()), byte(rnd.Uint32())})
		p, _ := a.Prefix(8 + rnd.IntN(25))
		if i%4 == 0 { // IPv6, in 2000::/8 so that the /16 sub-tables fill
			var b [16]byte
			b[0] = 0x20
			for j := 1; j < 16; j++ {
				b[j] = byte(rnd.Uint32())
			}
			p, _ = netip.AddrFrom16(b).Prefix(16 + rnd.IntN(49))
		}
		ps = append(ps, p)
		tr.Insert(p, uint32(i)<<8|uint32(p.Bits()))
	}
	var last [BatchSize]*eface
	ended, checked, nils, leafOther := 0, 0, 0, 0
	var ended6 int
	for range 2000 {
		var addrs [BatchSize]netip.Addr
		for i := range addrs {
			p := ps[rnd.IntN(len(ps))]
			// shorter prefixes are kept in nodes (no leaf: the walk stops above)
			for p.Bits() < 24 || p.Addr().Is6() && p.Bits() < 48 {
				p = ps[rnd.IntN(len(ps))]
			}
			b := p.Addr().AsSlice()
			for j := range b {
				b[j] |= byte(rnd.Uint32()) & hostMask(p.Bits(), j)
			}
			addrs[i], _ = netip.AddrFromSlice(b)
			if i%3 == 0 && p.Addr().Is4() {
				addrs[i] = netip.AddrFrom16(addrs[i].As16())
			}
		}
		last = [BatchSize]*eface{}
		tr.warm(addrs[:], &last)
		for i, a := range addrs {
			checked++
			k := last[i]
			if k == nil {
				nils++
				continue
			}
			v, ok := tr.Lookup(a)
			kind := fmt.Sprintf("%T", *(*any)(unsafe.Pointer(k)))
			held := *(*uint32)(k.data) // the first field of a leaf and a fringe: its value
			switch kind {
			case "*nodes.FringeNode[uint32]":
				if !ok || held != v {
					t.Fatalf("%s: the walk ended at a fringe of %#x, the lookup gives %#x %v", a, held, v, ok)
				}
			case "*nodes.LeafNode[uint32]":
				// the lookup returns the leaf's value when its prefix holds the address
				if held == v {
					break
				}
				leafOther++
				continue
			default:
				t.Fatalf("%s: the walk ended at a %s", a, kind)
			}
			ended++
			if !a.Is4() && !a.Is4In6() {
				ended6++
			}
		}
	}
	if ended6 < checked/10 {
		t.Errorf("the walk reached the lookup's leaf or fringe for only %d IPv6 addresses", ended6)
	}
	if ended < checked*9/10 {
		t.Errorf("the walk reached the lookup's leaf or fringe for %d of %d addresses (%d nowhere, %d another leaf)", ended, checked, nils, leafOther)
	}
}
