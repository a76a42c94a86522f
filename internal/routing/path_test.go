package routing

import (
	"slices"
	"testing"
	"unsafe"
)

func TestPathHelpers(t *testing.T) {
	set := func(asns ...uint32) Segment { return Segment{Type: SegmentSet, ASNs: asns} }
	sq := func(asns ...uint32) Segment { return Segment{Type: SegmentSequence, ASNs: asns} }
	cseq := func(asns ...uint32) Segment { return Segment{Type: SegmentConfedSequence, ASNs: asns} }
	cset := func(asns ...uint32) Segment { return Segment{Type: SegmentConfedSet, ASNs: asns} }
	cases := []struct {
		name     string
		path     []Segment
		str      string
		peer     uint32
		peerOK   bool
		origin   uint32
		originOK bool
		distinct []uint32
		length   int
	}{
		{"empty", nil, "", 0, false, 0, false, nil, 0},
		{"sequence", []Segment{sq(3356, 1299, 15169)}, "3356 1299 15169", 3356, true, 15169, true, []uint32{3356, 1299, 15169}, 3},
		{"prepending", []Segment{sq(64500, 64500, 174, 13335, 13335, 13335)}, "64500 64500 174 13335 13335 13335", 64500, true, 13335, true, []uint32{64500, 174, 13335}, 6},
		{"set at end: lowest member", []Segment{sq(6939, 2914), set(65010, 4200000001, 64999)}, "6939 2914 {65010,4200000001,64999}", 6939, true, 64999, true, []uint32{6939, 2914, 65010, 4200000001, 64999}, 3},
		{"set member repeats the sequence", []Segment{sq(1, 2), set(2, 3, 3)}, "1 2 {2,3,3}", 1, true, 2, true, []uint32{1, 2, 3}, 3},
		{"confederation first", []Segment{cseq(65001, 65002), sq(3356, 15169)}, "(65001 65002) 3356 15169", 3356, true, 15169, true, []uint32{3356, 15169}, 2},
		{"confederation set", []Segment{cset(65001, 65002), sq(174)}, "[65001,65002] 174", 174, true, 174, true, []uint32{174}, 1},
		{"only confederation", []Segment{cseq(65001)}, "(65001)", 0, false, 0, false, nil, 0},
		{"set only", []Segment{set(7, 5)}, "{7,5}", 0, false, 5, true, []uint32{7, 5}, 1},
		{"loop", []Segment{sq(1, 2, 1, 3)}, "1 2 1 3", 1, true, 3, true, []uint32{1, 2, 3}, 4},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := &Attrs{Path: c.path}
			if got := a.String(); got != c.str {
				t.Errorf("String() = %q, want %q", got, c.str)
			}
			if p, ok := a.PeerAS(); p != c.peer || ok != c.peerOK {
				t.Errorf("PeerAS() = %d, %v, want %d, %v", p, ok, c.peer, c.peerOK)
			}
			if o, ok := a.OriginAS(); o != c.origin || ok != c.originOK {
				t.Errorf("OriginAS() = %d, %v, want %d, %v", o, ok, c.origin, c.originOK)
			}
			prefix := []uint32{42}
			if got := a.AppendDistinctASNs(prefix); !slices.Equal(got[1:], c.distinct) || got[0] != 42 {
				t.Errorf("AppendDistinctASNs() = %v, want [42] + %v", got, c.distinct)
			}
			if got := a.PathLen(); got != c.length {
				t.Errorf("PathLen() = %d, want %d", got, c.length)
			}
		})
	}
}

func TestAppendDistinctASNsAllocs(t *testing.T) {
	a := &Attrs{Path: []Segment{{Type: SegmentSequence, ASNs: []uint32{1, 2, 2, 3}}}}
	buf := make([]uint32, 0, 16)
	if n := testing.AllocsPerRun(100, func() { buf = a.AppendDistinctASNs(buf[:0]) }); n != 0 {
		t.Errorf("%v allocations, want 0", n)
	}
}

func TestBetter(t *testing.T) {
	withLP := func(lp uint32, a Attrs) Attrs { a.LocalPref, a.HasLocalPref = lp, true; return a }
	withMED := func(m uint32, a Attrs) Attrs { a.MED, a.HasMED = m, true; return a }
	cases := []struct {
		name string
		a, b Attrs
		want bool
	}{
		{"higher local pref wins over shorter path", withLP(200, attrs(1, 2, 3)), attrs(1), true},
		{"missing local pref is 100", withLP(99, attrs(1)), attrs(1, 2), false},
		{"shorter path", attrs(1), attrs(1, 2), true},
		{"set counts one", Attrs{Path: []Segment{{SegmentSequence, []uint32{1}}, {SegmentSet, []uint32{2, 3, 4}}}}, attrs(1, 2, 3), true},
		{"lower origin", Attrs{Path: seq(1, 2), Origin: OriginIGP}, Attrs{Path: seq(3, 4), Origin: OriginEGP}, true},
		{"lower med", withMED(5, attrs(1)), withMED(6, attrs(2)), true},
		{"missing med is 0", attrs(1), withMED(1, attrs(2)), true},
		{"equal is not better", attrs(1, 2), attrs(3, 4), false},
	}
	for _, c := range cases {
		if got := c.a.Better(&c.b); got != c.want {
			t.Errorf("%s: Better() = %v, want %v", c.name, got, c.want)
		}
	}
}

// TestCopyPath checks that interned copies equal their source, share nothing with it, and keep
// a one-segment path of up to 16 ASNs next to its segment header (one allocation).
func TestCopyPath(t *testing.T) {
	asns := func(n int) []uint32 {
		out := make([]uint32, n)
		for i := range out {
			out[i] = uint32(64500 + i)
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		path   []Segment
		packed bool
	}{
		{"empty segment", []Segment{{Type: SegmentSequence, ASNs: []uint32{}}}, true},
		{"1 ASN", seq(asns(1)...), true},
		{"8 ASNs", seq(asns(8)...), true},
		{"9 ASNs", seq(asns(9)...), true},
		{"16 ASNs", seq(asns(16)...), true},
		{"17 ASNs", seq(asns(17)...), false},
		{"sequence and set", []Segment{{Type: SegmentSequence, ASNs: asns(3)}, {Type: SegmentSet, ASNs: asns(2)}}, false},
	} {
		c := copyPath(tc.path)
		if !equalPath(c, tc.path) {
			t.Errorf("%s: copy %v, want %v", tc.name, c, tc.path)
			continue
		}
		if len(tc.path[0].ASNs) > 0 {
			tc.path[0].ASNs[0]++
			if equalPath(c, tc.path) {
				t.Errorf("%s: the copy shares the source's ASNs", tc.name)
			}
		}
		if !tc.packed || len(c[0].ASNs) == 0 {
			continue
		}
		seg, first := uintptr(unsafe.Pointer(&c[0])), uintptr(unsafe.Pointer(&c[0].ASNs[0]))
		if first != seg+unsafe.Sizeof(Segment{}) {
			t.Errorf("%s: ASNs at %#x, segment at %#x: not packed", tc.name, first, seg)
		}
	}
}
