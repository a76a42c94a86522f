package routing

import (
	"bufio"
	"compress/gzip"
	"math/rand/v2"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netledger/netledger/internal/testenv"
)

func seq(asns ...uint32) []Segment { return []Segment{{Type: SegmentSequence, ASNs: asns}} }

func attrs(asns ...uint32) Attrs { return Attrs{Path: seq(asns...)} }

func lookupPath(t *testing.T, r *RIB, addr string) (string, string) {
	t.Helper()
	ip := netip.MustParseAddr(addr)
	bits, a, ok := r.Lookup(ip)
	if !ok {
		return "", "-"
	}
	return MatchedPrefix(ip, bits).String(), a.String()
}

// TestMatchedPrefix: the prefix of a Lookup result is rebuilt from the address and the length,
// IPv4 for an IPv4-mapped address, without a zone, host bits cleared; a length out of range for
// the family gives the zero Prefix.
func TestMatchedPrefix(t *testing.T) {
	cases := []struct {
		addr string
		bits int
		want string // "" for the zero Prefix
	}{
		{"192.0.2.77", 24, "192.0.2.0/24"},
		{"192.0.2.77", 32, "192.0.2.77/32"},
		{"192.0.2.77", 0, "0.0.0.0/0"},
		{"192.0.2.77", 33, ""},
		{"::ffff:192.0.2.77", 20, "192.0.0.0/20"},
		{"::ffff:192.0.2.77", 120, ""},
		{"2001:db8:1:2::77", 48, "2001:db8:1::/48"},
		{"2001:db8:1:2::77%eth0", 64, "2001:db8:1:2::/64"},
		{"2001:db8:1:2::77", 128, "2001:db8:1:2::77/128"},
		{"2001:db8:1:2::77", 129, ""},
		{"2001:db8:1:2::77", -1, ""},
	}
	for _, c := range cases {
		got := MatchedPrefix(netip.MustParseAddr(c.addr), c.bits)
		if (c.want == "" && got.IsValid()) || (c.want != "" && got.String() != c.want) {
			t.Errorf("MatchedPrefix(%s, %d) = %v, want %q", c.addr, c.bits, got, c.want)
		}
	}
	if got := MatchedPrefix(netip.Addr{}, 0); got.IsValid() {
		t.Errorf("MatchedPrefix(zero Addr, 0) = %v, want the zero Prefix", got)
	}
}

func TestRIBUpdates(t *testing.T) {
	type op struct {
		withdraw bool
		clear    bool
		prefix   string
		id       uint32
		a        Attrs
	}
	ann := func(p string, id uint32, a Attrs) op { return op{prefix: p, id: id, a: a} }
	wd := func(p string, id uint32) op { return op{withdraw: true, prefix: p, id: id} }
	lp := func(lp uint32, asns ...uint32) Attrs {
		a := attrs(asns...)
		a.LocalPref, a.HasLocalPref = lp, true
		return a
	}
	cases := []struct {
		name   string
		ops    []op
		lookup map[string][2]string // address → prefix, path ("" / "-" when no match)
		v4, v6 int
	}{
		{
			name: "longest match",
			ops: []op{
				ann("10.0.0.0/8", 0, attrs(1, 2)),
				ann("10.1.0.0/16", 0, attrs(3, 4)),
				ann("2001:db8::/32", 0, attrs(5)),
			},
			lookup: map[string][2]string{
				"10.1.2.3":         {"10.1.0.0/16", "3 4"},
				"10.2.0.1":         {"10.0.0.0/8", "1 2"},
				"::ffff:10.1.0.1":  {"10.1.0.0/16", "3 4"},
				"2001:db8::1":      {"2001:db8::/32", "5"},
				"2001:db8::1%eth0": {"2001:db8::/32", "5"},
				"11.0.0.1":         {"", "-"},
			},
			v4: 2, v6: 1,
		},
		{
			name: "replace and withdraw",
			ops: []op{
				ann("10.0.0.0/8", 0, attrs(1, 2)),
				ann("10.1.0.0/16", 0, attrs(3, 4)),
				ann("10.1.0.0/16", 0, attrs(6)),
				wd("10.0.0.0/8", 0),
				wd("10.9.0.0/16", 0),
			},
			lookup: map[string][2]string{
				"10.1.2.3": {"10.1.0.0/16", "6"},
				"10.2.0.1": {"", "-"},
			},
			v4: 1,
		},
		{
			name: "mapped prefix and host bits",
			ops: []op{
				ann("::ffff:192.0.2.7/120", 0, attrs(7)),
			},
			lookup: map[string][2]string{"192.0.2.200": {"192.0.2.0/24", "7"}},
			v4:     1,
		},
		{
			name: "add-path best by local pref then path length",
			ops: []op{
				ann("10.0.0.0/8", 1, attrs(1, 2, 3)),
				ann("10.0.0.0/8", 2, lp(200, 4, 5, 6, 7)),
				ann("10.0.0.0/8", 3, attrs(8)),
			},
			lookup: map[string][2]string{"10.0.0.1": {"10.0.0.0/8", "4 5 6 7"}},
			v4:     1,
		},
		{
			name: "add-path withdraw best falls back",
			ops: []op{
				ann("10.0.0.0/8", 1, attrs(1, 2, 3)),
				ann("10.0.0.0/8", 2, lp(200, 4, 5, 6, 7)),
				ann("10.0.0.0/8", 3, attrs(8)),
				wd("10.0.0.0/8", 2),
			},
			lookup: map[string][2]string{"10.0.0.1": {"10.0.0.0/8", "8"}},
			v4:     1,
		},
		{
			name: "add-path tie breaks on lowest path id",
			ops: []op{
				ann("10.0.0.0/8", 5, attrs(1, 2)),
				ann("10.0.0.0/8", 3, attrs(3, 4)),
				ann("10.0.0.0/8", 0, attrs(5, 6)),
				wd("10.0.0.0/8", 0),
			},
			lookup: map[string][2]string{"10.0.0.1": {"10.0.0.0/8", "3 4"}},
			v4:     1,
		},
		{
			name: "add-path origin then med",
			ops: []op{
				ann("10.0.0.0/8", 1, Attrs{Path: seq(1, 2), Origin: OriginIncomplete}),
				ann("10.0.0.0/8", 2, Attrs{Path: seq(3, 4), MED: 50, HasMED: true}),
				ann("10.0.0.0/8", 3, Attrs{Path: seq(5, 6), MED: 10, HasMED: true}),
			},
			lookup: map[string][2]string{"10.0.0.1": {"10.0.0.0/8", "5 6"}},
			v4:     1,
		},
		{
			name: "add-path all withdrawn",
			ops: []op{
				ann("10.0.0.0/8", 0, attrs(1)),
				ann("10.0.0.0/8", 7, attrs(2)),
				wd("10.0.0.0/8", 0),
				wd("10.0.0.0/8", 7),
				wd("10.0.0.0/8", 7),
			},
			lookup: map[string][2]string{"10.0.0.1": {"", "-"}},
		},
		{
			name: "clear",
			ops: []op{
				ann("10.0.0.0/8", 0, attrs(1)),
				ann("2001:db8::/32", 4, attrs(2)),
				{clear: true},
				ann("10.1.0.0/16", 0, attrs(3)),
			},
			lookup: map[string][2]string{"10.0.0.1": {"", "-"}, "10.1.0.1": {"10.1.0.0/16", "3"}},
			v4:     1,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := NewRIB()
			for _, o := range c.ops {
				switch {
				case o.clear:
					r.Clear()
				case o.withdraw:
					r.Withdraw(netip.MustParsePrefix(o.prefix), o.id)
				default:
					r.Announce(netip.MustParsePrefix(o.prefix), o.id, o.a)
				}
			}
			r.Flush()
			for addr, want := range c.lookup {
				p, path := lookupPath(t, r, addr)
				if p != want[0] || path != want[1] {
					t.Errorf("Lookup(%s) = %s %q, want %s %q", addr, p, path, want[0], want[1])
				}
			}
			if v4, v6 := r.Len(); v4 != c.v4 || v6 != c.v6 {
				t.Errorf("Len() = %d, %d, want %d, %d", v4, v6, c.v4, c.v6)
			}
		})
	}
}

func TestRIBInvalid(t *testing.T) {
	r := NewRIB()
	r.Announce(netip.Prefix{}, 0, attrs(1))
	r.Announce(netip.MustParsePrefix("::ffff:0.0.0.0/90"), 0, attrs(1))
	r.Withdraw(netip.Prefix{}, 0)
	r.Flush()
	if st := r.Stats(); st.Invalid != 3 || st.Attrs != 0 {
		t.Errorf("Stats() = %+v, want 3 invalid and nothing interned", st)
	}
}

func TestRIBInterning(t *testing.T) {
	r := NewRIB()
	a := attrs(1, 2, 3)
	a.Communities = []uint32{65000<<16 | 1}
	b := a
	b.Communities = []uint32{65000<<16 | 2} // same path, other communities
	r.Announce(netip.MustParsePrefix("10.0.0.0/24"), 0, a)
	r.Announce(netip.MustParsePrefix("10.0.1.0/24"), 0, a)
	r.Announce(netip.MustParsePrefix("10.0.2.0/24"), 0, b)
	r.Flush()
	_, a0, _ := r.Lookup(netip.MustParseAddr("10.0.0.1"))
	_, a1, _ := r.Lookup(netip.MustParseAddr("10.0.1.1"))
	_, a2, _ := r.Lookup(netip.MustParseAddr("10.0.2.1"))
	if a0 != a1 {
		t.Error("equal attribute sets are not shared")
	}
	if a0 == a2 || &a0.Path[0] != &a2.Path[0] {
		t.Error("different attribute sets must differ and share their AS path")
	}
	a.Path[0].ASNs[0] = 99 // the RIB keeps its own copy
	if a0.String() != "1 2 3" {
		t.Errorf("interned path changed with the caller's: %s", a0)
	}
	if st := r.Stats(); st.Attrs != 2 || st.Paths != 1 {
		t.Errorf("Stats() = %+v, want 2 attribute sets, 1 path", st)
	}
	r.Withdraw(netip.MustParsePrefix("10.0.0.0/24"), 0)
	if st := r.Stats(); st.Attrs != 2 {
		t.Errorf("after one of two withdrawn: %d sets, want 2", st.Attrs)
	}
	r.Withdraw(netip.MustParsePrefix("10.0.1.0/24"), 0)
	r.Withdraw(netip.MustParsePrefix("10.0.2.0/24"), 0)
	r.Flush()
	if st := r.Stats(); st.Attrs != 0 || st.Paths != 0 {
		t.Errorf("after all withdrawn: %+v, want nothing interned", st)
	}
	// Freed slots are reused after cooling, never while a published trie may refer to them.
	r.Announce(netip.MustParsePrefix("10.0.3.0/24"), 0, attrs(4))
	r.Flush()
	if st := r.Stats(); st.Attrs != 1 {
		t.Errorf("after reannounce: %+v", st)
	}
	if _, a3, _ := r.Lookup(netip.MustParseAddr("10.0.3.1")); a3.String() != "4" {
		t.Errorf("reannounced path = %s", a3)
	}
}

func TestRIBPublishTimer(t *testing.T) {
	r := NewRIB()
	r.Announce(netip.MustParsePrefix("10.0.0.0/8"), 0, attrs(1))
	deadline := time.Now().Add(60 * time.Second) // only bounds a broken timer
	for {
		if v4, _ := r.Len(); v4 == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("update not published by the timer")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRIBLoadSwaps(t *testing.T) {
	r := NewRIB()
	r.Announce(netip.MustParsePrefix("10.0.0.0/8"), 0, attrs(1))
	r.Flush()
	err := r.Load(func(u Updater) error {
		u.Announce(netip.MustParsePrefix("192.0.2.0/24"), 0, attrs(2))
		if v4, _ := r.Len(); v4 != 1 {
			t.Errorf("old table changed during Load")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if p, path := lookupPath(t, r, "192.0.2.1"); p != "192.0.2.0/24" || path != "2" {
		t.Errorf("after Load: %s %s", p, path)
	}
	if p, _ := lookupPath(t, r, "10.0.0.1"); p != "" {
		t.Errorf("old route survived Load: %s", p)
	}
}

// loadPrefixes reads the real 1,062,046-prefix table.
func loadPrefixes(t testing.TB) []netip.Prefix {
	f, err := os.Open(testenv.Testdata(t, "lpm/bart/prefixes.txt.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var ps []netip.Prefix
	s := bufio.NewScanner(z)
	for s.Scan() {
		p, err := netip.ParsePrefix(s.Text())
		if err != nil {
			t.Fatalf("line %d: %v", len(ps)+1, err)
		}
		ps = append(ps, p)
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	return ps
}

// pathPool returns n distinct realistic AS paths (2–8 ASes, some prepending, a few AS_SETs),
// fixed seed.
func pathPool(n int) []Attrs {
	rnd := rand.New(rand.NewPCG(4, 2))
	peer := uint32(3356)
	pool := make([]Attrs, n)
	seen := make(map[string]bool, n)
	for i := 0; i < n; {
		l := 1 + rnd.IntN(7)
		asns := []uint32{peer}
		for range l {
			asns = append(asns, 1+rnd.Uint32N(400000))
		}
		if rnd.IntN(10) == 0 {
			asns = append(asns, asns[len(asns)-1], asns[len(asns)-1])
		}
		a := Attrs{Path: seq(asns...), NextHop: netip.AddrFrom4([4]byte{192, 0, 2, 1}), LocalPref: 100, HasLocalPref: true}
		if rnd.IntN(100) == 0 {
			a.Path = append(a.Path, Segment{Type: SegmentSet, ASNs: []uint32{rnd.Uint32N(65000), rnd.Uint32N(65000)}})
		}
		if rnd.IntN(4) == 0 {
			a.Communities = []uint32{3356<<16 | rnd.Uint32N(1000)}
		}
		if k := a.String() + string(rune(len(a.Communities))); !seen[k] {
			seen[k] = true
			pool[i] = a
			i++
		}
	}
	return pool
}

func loadRIB(t testing.TB, ps []netip.Prefix, pool []Attrs) *RIB {
	r := NewRIB()
	rnd := rand.New(rand.NewPCG(7, 7))
	if err := r.Load(func(u Updater) error {
		for _, p := range ps {
			u.Announce(p, 0, pool[rnd.IntN(len(pool))])
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestLPMOracle checks Lookup against a naive longest-prefix match (a map probed at every
// prefix length) on the real table, with fixed-seed random IPv4 and IPv6 addresses: half
// uniformly random, half inside random table prefixes.
func TestLPMOracle(t *testing.T) {
	ps := loadPrefixes(t)
	if len(ps) != 1062046 {
		t.Fatalf("%d prefixes, want 1,062,046", len(ps))
	}
	pool := pathPool(1000)
	r := loadRIB(t, ps, pool)
	oracle := make(map[netip.Prefix]bool, len(ps))
	var want4, want6 int
	for _, p := range ps {
		oracle[p.Masked()] = true
	}
	for p := range oracle {
		if p.Addr().Is4() {
			want4++
		} else {
			want6++
		}
	}
	if v4, v6 := r.Len(); v4 != want4 || v6 != want6 {
		t.Fatalf("Len() = %d, %d, want %d, %d", v4, v6, want4, want6)
	}
	naive := func(a netip.Addr) (netip.Prefix, bool) {
		for b := a.BitLen(); b >= 0; b-- {
			p, _ := a.Prefix(b)
			if oracle[p] {
				return p, true
			}
		}
		return netip.Prefix{}, false
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	n := 200000
	if raceEnabled || testing.Short() {
		n = 20000 // the race detector slows the oracle tenfold
	}
	var hits [2]int
	addrs := make([]netip.Addr, 0, n)
	for i := range n {
		var a netip.Addr
		switch i % 4 {
		case 0:
			a = netip.AddrFrom4([4]byte{byte(rnd.Uint32()), byte(rnd.Uint32()), byte(rnd.Uint32()), byte(rnd.Uint32())})
		case 1:
			var b [16]byte
			b[0] = 0x20 | byte(rnd.IntN(16)) // 2000::/4: where the routes are
			for j := 1; j < 16; j++ {
				b[j] = byte(rnd.Uint32())
			}
			a = netip.AddrFrom16(b)
		default:
			p := ps[rnd.IntN(len(ps))]
			b := p.Addr().AsSlice()
			for j := range b {
				b[j] |= byte(rnd.Uint32()) & hostMask(p.Bits(), j)
			}
			a, _ = netip.AddrFromSlice(b)
		}
		wantP, wantOK := naive(a)
		bits, got, gotOK := r.Lookup(a)
		gotP := MatchedPrefix(a, bits)
		if !gotOK {
			gotP = netip.Prefix{}
		}
		if gotOK != wantOK || gotP != wantP || (gotOK && got == nil) {
			t.Fatalf("Lookup(%s) = %s %v, want %s %v", a, gotP, gotOK, wantP, wantOK)
		}
		if gotOK {
			hits[a.BitLen()/128]++
		}
		if i%5 == 0 {
			a = netip.AddrFrom16(a.As16()) // IPv4-mapped for IPv4: looked up as IPv4
		}
		addrs = append(addrs, a)
	}
	if hits[0] < n/4 || hits[1] < n/20 {
		t.Errorf("too few matches to be meaningful: %d IPv4, %d IPv6", hits[0], hits[1])
	}
	checkLookupRoute(t, r, addrs)
}

// checkLookupRoute: LookupRoute and LookupBatch (in batches of 1 to 64 addresses) give
// Lookup's route with FirstAS and LastAS of its path, for every address of addrs.
func checkLookupRoute(t *testing.T, r *RIB, addrs []netip.Addr) {
	t.Helper()
	want := func(a netip.Addr) Route {
		bits, at, ok := r.Lookup(a)
		if !ok {
			return Route{}
		}
		w := Route{Attrs: at, Bits: uint8(bits), OK: true}
		w.PeerAS, w.HasPeer = FirstAS(at.Path)
		w.OriginAS, w.HasOrigin = LastAS(at.Path)
		return w
	}
	rnd := rand.New(rand.NewPCG(3, 4))
	out := make([]Route, 64)
	for len(addrs) > 0 {
		k := min(len(addrs), 1+rnd.IntN(64))
		for j := range out {
			out[j] = Route{PeerAS: 1, Attrs: &Attrs{}} // garbage the batch must overwrite
		}
		r.LookupBatch(addrs[:k], out)
		for j, a := range addrs[:k] {
			w := want(a)
			if got := r.LookupRoute(a); got != w {
				t.Fatalf("LookupRoute(%s) = %+v, want %+v", a, got, w)
			}
			if out[j] != w {
				t.Fatalf("LookupBatch: address %d of %d, %s: %+v, want %+v", j, k, a, out[j], w)
			}
		}
		addrs = addrs[k:]
	}
}

// hostMask returns the host-bit mask of byte j of an address in a prefix of length bits.
func hostMask(bits, j int) byte {
	switch {
	case bits >= 8*(j+1):
		return 0
	case bits <= 8*j:
		return 0xff
	}
	return 0xff >> (bits - 8*j)
}

// TestRIBConcurrent runs readers during updates, publications and Clear (run with -race).
func TestRIBConcurrent(t *testing.T) {
	r := NewRIB()
	pool := pathPool(50)
	var stop atomic.Bool
	var wg sync.WaitGroup
	for g := range 2 {
		wg.Go(func() {
			rnd := rand.New(rand.NewPCG(uint64(g), 9))
			for !stop.Load() {
				a := netip.AddrFrom4([4]byte{10, byte(rnd.IntN(4)), byte(rnd.Uint32()), 1})
				if bits, at, ok := r.Lookup(a); ok && (!MatchedPrefix(a, bits).Contains(a) || at.PathLen() == 0) {
					t.Errorf("Lookup(%s) = /%d %v", a, bits, at)
				}
				// the batch path (trie walk prefetching, entries read) under the same updates
				var addrs [8]netip.Addr
				var out [8]Route
				for j := range addrs {
					addrs[j] = netip.AddrFrom4([4]byte{10, byte(rnd.IntN(4)), byte(rnd.Uint32()), 1})
				}
				r.LookupBatch(addrs[:], out[:])
				for j, rt := range out {
					if rt.OK && (!MatchedPrefix(addrs[j], int(rt.Bits)).Contains(addrs[j]) || !rt.HasPeer || !rt.HasOrigin) {
						t.Errorf("LookupBatch(%s) = %+v", addrs[j], rt)
					}
				}
				r.Len()
			}
		})
	}
	rnd := rand.New(rand.NewPCG(3, 3))
	for i := range 20000 {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(rnd.IntN(4)), byte(rnd.Uint32()), 0}), 16+rnd.IntN(9))
		id := uint32(rnd.IntN(3))
		if rnd.IntN(3) == 0 {
			r.Withdraw(p, id)
		} else {
			r.Announce(p, id, pool[rnd.IntN(len(pool))])
		}
		if i%1000 == 0 {
			r.Flush()
		}
		if i == 15000 {
			r.Clear()
		}
	}
	r.Flush()
	stop.Store(true)
	wg.Wait()
}

// TestRIBCompact: Compact publishes pending updates and keeps every route and the table's age.
func TestRIBCompact(t *testing.T) {
	r := NewRIB()
	pool := pathPool(20)
	rnd := rand.New(rand.NewPCG(8, 8))

	for i := range 5000 {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(rnd.IntN(256)), byte(rnd.IntN(256)), 0}), 16+rnd.IntN(9)).Masked()
		if i%5 == 0 {
			p = netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(rnd.IntN(256)), byte(rnd.IntN(256))}), 32+rnd.IntN(17)).Masked()
		}
		r.Announce(p, 0, pool[i%len(pool)])

	}
	r.Flush()
	before := map[netip.Prefix]string{}
	r.All(func(p netip.Prefix, a *Attrs) bool { before[p] = a.String(); return true })
	at := r.Updated()
	r.Announce(netip.MustParsePrefix("192.0.2.0/24"), 0, pool[0]) // pending: Compact publishes it
	r.Compact()
	after := map[netip.Prefix]string{}
	r.All(func(p netip.Prefix, a *Attrs) bool { after[p] = a.String(); return true })
	if _, ok := after[netip.MustParsePrefix("192.0.2.0/24")]; !ok {
		t.Error("pending update not published by Compact")
	}
	delete(after, netip.MustParsePrefix("192.0.2.0/24"))
	if len(after) != len(before) {
		t.Fatalf("%d prefixes after Compact, %d before", len(after), len(before))
	}
	for p, a := range before {
		if after[p] != a {
			t.Errorf("%s: %q after Compact, %q before", p, after[p], a)
		}
		if got, ok := r.Get(p); !ok || got.String() != a {
			t.Errorf("Get(%s) after Compact: %v %v", p, got, ok)
		}
		bits, got, ok := r.Lookup(p.Addr())
		if lp := MatchedPrefix(p.Addr(), bits); !ok || lp.Bits() < p.Bits() || got.String() != before[lp] {
			t.Errorf("Lookup(%s) after Compact: %s %v %v", p.Addr(), lp, got, ok)
		}
	}
	if r.Updated().Before(at) {
		t.Error("Compact went back in time")
	}
}

// TestRIBWithdrawPath: withdrawing a path ID from every prefix leaves the other paths (the
// best of them takes over), drops prefixes that had only that path, and counts what it removed.
func TestRIBWithdrawPath(t *testing.T) {
	r := NewRIB()
	r.Announce(netip.MustParsePrefix("10.1.0.0/16"), 0, attrs(1))
	r.Announce(netip.MustParsePrefix("10.1.0.0/16"), 1, attrs(2, 3, 4))
	r.Announce(netip.MustParsePrefix("10.2.0.0/16"), 1, attrs(2, 5))
	r.Announce(netip.MustParsePrefix("2001:db8::/32"), 0, attrs(1, 6))
	if n := r.WithdrawPath(1); n != 2 {
		t.Errorf("WithdrawPath(1) = %d, want 2", n)
	}
	r.Flush()
	for addr, want := range map[string][2]string{"10.1.0.1": {"10.1.0.0/16", "1"}, "10.2.0.1": {"", "-"}, "2001:db8::1": {"2001:db8::/32", "1 6"}} {
		if p, path := lookupPath(t, r, addr); p != want[0] || path != want[1] {
			t.Errorf("after WithdrawPath(1): %s → %s %s, want %v", addr, p, path, want)
		}
	}
	r.Announce(netip.MustParsePrefix("10.1.0.0/16"), 1, attrs(2))
	if n := r.WithdrawPath(0); n != 2 {
		t.Errorf("WithdrawPath(0) = %d, want 2", n)
	}
	r.Flush()
	if p, path := lookupPath(t, r, "10.1.0.1"); p != "10.1.0.0/16" || path != "2" {
		t.Errorf("after WithdrawPath(0): 10.1.0.1 → %s %s, want path 1's route", p, path)
	}
	if v4, v6 := r.Len(); v4 != 1 || v6 != 0 {
		t.Errorf("Len() = %d, %d, want 1, 0", v4, v6)
	}
}
