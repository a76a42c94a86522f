package routing

import (
	"maps"
	"math/rand/v2"
	"net/netip"
	"testing"
)

// TestAddrWords checks that addrWords mirrors netip.Addr: its words are the halves of As16,
// and words written through it make the address AddrFrom16 makes of the same bytes.
func TestAddrWords(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 4))
	addrs := []netip.Addr{
		netip.MustParseAddr("1.2.3.4"), netip.MustParseAddr("255.255.255.255"),
		netip.MustParseAddr("::ffff:10.1.2.3"), netip.MustParseAddr("fe80::1%eth0"), netip.IPv6Unspecified(),
	}
	for range 1000 {
		var b [16]byte
		for i := range b {
			b[i] = byte(rnd.Uint32())
		}
		addrs = append(addrs, netip.AddrFrom16(b), netip.AddrFrom4([4]byte(b[:4])))
	}
	be := func(b []byte) (u uint64) {
		for _, x := range b {
			u = u<<8 | uint64(x)
		}
		return u
	}
	for _, a := range addrs {
		b := a.As16()
		w := words(&a)
		if w.hi != be(b[:8]) || w.lo != be(b[8:]) {
			t.Fatalf("%s: words %#x %#x, As16 %x", a, w.hi, w.lo, b)
		}
		if !a.Is6() || a.Zone() != "" {
			continue
		}
		c := a
		wc := words(&c)
		wc.hi, wc.lo = w.lo, w.hi
		var want [16]byte
		copy(want[:8], b[8:])
		copy(want[8:], b[:8])
		if c != netip.AddrFrom16(want) {
			t.Fatalf("%s with swapped words = %s, want %s", a, c, netip.AddrFrom16(want))
		}
	}
}

// trieOracle is a naive longest-prefix match: a map probed at every prefix length.
type trieOracle map[netip.Prefix]uint32

func (o trieOracle) lookup(a netip.Addr) (uint32, bool) {
	for b := a.BitLen(); b >= 0; b-- {
		p, _ := a.Prefix(b)
		if v, ok := o[p]; ok {
			return v, true
		}
	}
	return 0, false
}

// randomTriePrefix returns a prefix of any length, concentrated under a few first octets so
// that prefixes nest, with short ones (shorter than the split: /0–/7, /0–/15) among them.
func randomTriePrefix(rnd *rand.Rand) netip.Prefix {
	if rnd.IntN(2) == 0 {
		b := [4]byte{[]byte{10, 11, 192, 0, 255}[rnd.IntN(5)], byte(rnd.IntN(4)), byte(rnd.Uint32()), byte(rnd.Uint32())}
		p, _ := netip.AddrFrom4(b).Prefix(rnd.IntN(33))
		return p
	}
	var b [16]byte
	b[0], b[1] = []byte{0x20, 0x2a, 0x00, 0xff}[rnd.IntN(4)], []byte{0x01, 0x00, 0x0f}[rnd.IntN(3)]
	for i := 2; i < 16; i++ {
		b[i] = byte(rnd.IntN(4))
	}
	p, _ := netip.AddrFrom16(b).Prefix(rnd.IntN(129))
	return p
}

// randomTrieAddr returns an address inside a random prefix of o, or anywhere.
func randomTrieAddr(rnd *rand.Rand, ps []netip.Prefix) netip.Addr {
	if len(ps) == 0 || rnd.IntN(4) == 0 {
		return randomTriePrefix(rnd).Addr()
	}
	p := ps[rnd.IntN(len(ps))]
	b := p.Addr().AsSlice()
	for j := range b {
		b[j] |= byte(rnd.Uint32()) & hostMask(p.Bits(), j)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// checkTrie compares every operation of tr with the oracle.
func checkTrie(t *testing.T, tr *trie, o trieOracle, rnd *rand.Rand) {
	t.Helper()
	ps := make([]netip.Prefix, 0, len(o))
	var n4, n6 int
	for p := range o {
		ps = append(ps, p)
		if p.Addr().Is4() {
			n4++
		} else {
			n6++
		}
	}
	if tr.Size4() != n4 || tr.Size6() != n6 {
		t.Fatalf("Size4, Size6 = %d, %d, want %d, %d", tr.Size4(), tr.Size6(), n4, n6)
	}
	all := maps.Collect(tr.All())
	if !maps.Equal(all, map[netip.Prefix]uint32(o)) {
		t.Fatalf("All() has %d prefixes, want %d (or different ones)", len(all), len(o))
	}
	for _, p := range ps {
		if v, ok := tr.Get(p); !ok || v != o[p] {
			t.Fatalf("Get(%s) = %d %v, want %d", p, v, ok, o[p])
		}
	}
	for range 2000 {
		p := randomTriePrefix(rnd)
		v, ok := tr.Get(p)
		if wv, wok := o[p]; ok != wok || v != wv {
			t.Fatalf("Get(%s) = %d %v, want %d %v", p, v, ok, wv, wok)
		}
	}
	for range 5000 {
		a := randomTrieAddr(rnd, ps)
		v, ok := tr.Lookup(a)
		if wv, wok := o.lookup(a); ok != wok || v != wv {
			t.Fatalf("Lookup(%s) = %d %v, want %d %v", a, v, ok, wv, wok)
		}
	}
}

// TestTrieOracle checks the split trie (sub-tables by leading bits, short prefixes apart)
// against the naive oracle through in-place and persistent inserts and deletes, and that a
// persistent change and a clone leave the original unchanged.
func TestTrieOracle(t *testing.T) {
	rnd := rand.New(rand.NewPCG(11, 12))
	tr, o := newTrie(), trieOracle{}
	for round := range 6 {
		persist := round%2 == 1
		old, oldO := tr, maps.Clone(o)
		for range 1500 {
			p := randomTriePrefix(rnd)
			if rnd.IntN(3) == 0 {
				// delete a present prefix mostly, an absent one sometimes
				for q := range o {
					if rnd.IntN(4) != 0 {
						p = q
					}
					break
				}
				delete(o, p)
				if persist {
					tr = tr.DeletePersist(p)
				} else {
					tr.Delete(p)
				}
				continue
			}
			v := rnd.Uint32()
			o[p] = v
			if persist {
				tr = tr.InsertPersist(p, v)
			} else {
				tr.Insert(p, v)
			}
		}
		checkTrie(t, tr, o, rnd)
		if persist {
			checkTrie(t, old, oldO, rnd) // the persistent changes did not touch it
		}
		c := tr.Clone()
		checkTrie(t, c, o, rnd)
		// a private clone changes without its original
		for p := range o {
			c.Delete(p)
		}
		checkTrie(t, c, trieOracle{}, rnd)
		checkTrie(t, tr, o, rnd)
		if persist {
			tr = tr.Clone() // private again for the next (in-place) round, as RIB.trie does
		}
	}
	if tr.Size() == 0 {
		t.Fatal("empty trie at the end: the test tests nothing")
	}
}

// TestRIBLookupShortPrefixes checks RIB.Lookup (trie.Lookup written out) where the split trie
// has its edges: prefixes shorter than the split (default routes, /7, /15), exactly at it (/8,
// /16), host routes, IPv4-mapped and zoned addresses; then with the short prefixes withdrawn,
// misses.
func TestRIBLookupShortPrefixes(t *testing.T) {
	r := NewRIB()
	short := []string{"0.0.0.0/0", "10.0.0.0/7", "::/0", "2000::/3", "2000::/15"}
	rest := []string{"10.0.0.0/8", "10.1.0.0/16", "192.0.2.0/24", "203.0.113.7/32", "255.255.255.255/32",
		"2001:db8::/32", "2001:db8:1::/48", "2001:db8:1::1/128", "2a00::/16"}
	for i, p := range append(short, rest...) {
		r.Announce(netip.MustParsePrefix(p), 0, attrs(uint32(64500+i)))
	}
	r.Flush()
	cases := []struct{ addr, want, wantNoShort string }{
		{"10.1.2.3", "10.1.0.0/16", "10.1.0.0/16"},
		{"10.2.0.1", "10.0.0.0/8", "10.0.0.0/8"},
		{"11.1.1.1", "10.0.0.0/7", ""},
		{"12.0.0.1", "0.0.0.0/0", ""},
		{"::ffff:10.1.2.3", "10.1.0.0/16", "10.1.0.0/16"},
		{"::ffff:12.0.0.1", "0.0.0.0/0", ""},
		{"203.0.113.7", "203.0.113.7/32", "203.0.113.7/32"},
		{"203.0.113.8", "0.0.0.0/0", ""},
		{"255.255.255.255", "255.255.255.255/32", "255.255.255.255/32"},
		{"2001:db8:1::1", "2001:db8:1::1/128", "2001:db8:1::1/128"},
		{"2001:db8:1::2", "2001:db8:1::/48", "2001:db8:1::/48"},
		{"2001:db8:2::", "2001:db8::/32", "2001:db8::/32"},
		{"2001:1::", "2000::/15", ""},
		{"2a00:ffff::1", "2a00::/16", "2a00::/16"},
		{"2a01::1", "2000::/3", ""},
		{"4000::1", "::/0", ""},
		{"fe80::1%eth0", "::/0", ""},
	}
	check := func(withShort bool) {
		t.Helper()
		s := r.snap.Load()
		for _, c := range cases {
			a := netip.MustParseAddr(c.addr)
			want := c.want
			if !withShort {
				want = c.wantNoShort
			}
			bits, at, ok := r.Lookup(a)
			got := ""
			if ok {
				got = MatchedPrefix(a, bits).String()
				if at == nil {
					t.Errorf("Lookup(%s): nil attributes", a)
				}
			}
			tv, tok := s.trie.Lookup(a)
			if got != want || tok != ok || (ok && int(tv&0xff) != bits) {
				t.Errorf("short prefixes %v: Lookup(%s) = %q, want %q (trie.Lookup: /%d %v)", withShort, a, got, want, tv&0xff, tok)
			}
		}
	}
	check(true)
	for _, p := range short {
		r.Withdraw(netip.MustParsePrefix(p), 0)
	}
	r.Flush()
	check(false)
}
