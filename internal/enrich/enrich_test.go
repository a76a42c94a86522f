package enrich

import (
	"net/netip"
	"testing"

	"github.com/netledger/netledger/internal/geo"
	"github.com/netledger/netledger/internal/record"
	"github.com/netledger/netledger/internal/routing"
)

type fakeGeo map[netip.Addr]geo.Info

func (f fakeGeo) Lookup(a netip.Addr) geo.Info { return f[a] }

func seq(asns ...uint32) routing.Segment {
	return routing.Segment{Type: routing.SegmentSequence, ASNs: asns}
}
func set(asns ...uint32) routing.Segment {
	return routing.Segment{Type: routing.SegmentSet, ASNs: asns}
}

func TestPathHelpers(t *testing.T) {
	for _, tc := range []struct {
		name         string
		path         []routing.Segment
		peer, origin uint32
		ok           bool
		distinct     []uint32
	}{
		{"empty", nil, 0, 0, false, nil},
		{"plain", []routing.Segment{seq(1, 2, 3)}, 1, 3, true, []uint32{1, 2, 3}},
		{"prepend", []routing.Segment{seq(1, 2, 2, 2, 3, 3)}, 1, 3, true, []uint32{1, 2, 3}},
		{"as_set origin", []routing.Segment{seq(1, 2), set(9, 4, 2, 5)}, 1, 2, true, []uint32{1, 2, 9, 4, 5}},
		{"confed skipped", []routing.Segment{{Type: routing.SegmentConfedSequence, ASNs: []uint32{65001}}, seq(5, 6)}, 5, 6, true, []uint32{5, 6}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &routing.Attrs{Path: tc.path}
			peer, ok1 := PeerAS(a)
			origin, ok2 := OriginAS(a)
			if peer != tc.peer || origin != tc.origin || ok1 != tc.ok || ok2 != tc.ok {
				t.Errorf("peer, origin = %d %v, %d %v; want %d, %d, %v", peer, ok1, origin, ok2, tc.peer, tc.origin, tc.ok)
			}
			d := AppendDistinctASNs([]uint32{77}, a)[1:]
			if len(d) != len(tc.distinct) {
				t.Fatalf("distinct = %v, want %v", d, tc.distinct)
			}
			for i := range d {
				if d[i] != tc.distinct[i] {
					t.Fatalf("distinct = %v, want %v", d, tc.distinct)
				}
			}
		})
	}
}

func TestEnrich(t *testing.T) {
	t1 := new(StaticTable)
	wide := &routing.Attrs{Path: []routing.Segment{seq(10, 20)}}
	narrow := &routing.Attrs{Path: []routing.Segment{seq(10, 30, 30)}}
	empty := &routing.Attrs{}
	t1.Insert(netip.MustParsePrefix("1.0.0.0/8"), wide)
	t1.Insert(netip.MustParsePrefix("1.2.0.0/16"), narrow)
	t1.Insert(netip.MustParsePrefix("2001:db8::/32"), empty)
	e := New([]Router{
		{Name: "r1", ASN: 65000, Networks: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}, Table: t1},
		{Name: "r2", ASN: 65001, Networks: []netip.Prefix{netip.MustParsePrefix("10.2.0.0/16")}},
	}, fakeGeo{netip.MustParseAddr("1.2.3.4"): {Country: [2]byte{'F', 'R'}, Continent: [2]byte{'E', 'U'}}})
	for _, tc := range []struct {
		name, client, server string
		want                 Enriched
	}{
		{"longest match", "1.2.3.4", "10.1.0.5", Enriched{Prefix: netip.MustParsePrefix("1.2.0.0/16"), Attrs: narrow, PeerAS: 10, OriginAS: 30, Router: 0, Country: [2]byte{'F', 'R'}, Continent: [2]byte{'E', 'U'}, Packets: 7}},
		{"covering", "1.3.0.1", "10.1.0.5", Enriched{Prefix: netip.MustParsePrefix("1.0.0.0/8"), Attrs: wide, PeerAS: 10, OriginAS: 20, Router: 0, Packets: 7}},
		{"empty path", "2001:db8::1", "10.1.9.9", Enriched{Prefix: netip.MustParsePrefix("2001:db8::/32"), Attrs: empty, PeerAS: 65000, OriginAS: 65000, Router: 0, Packets: 7}},
		{"unrouted", "9.9.9.9", "10.1.0.5", Enriched{Router: 0, Packets: 7}},
		{"router without table", "1.2.3.4", "10.2.0.7", Enriched{Router: 1, Packets: 7, Country: [2]byte{'F', 'R'}, Continent: [2]byte{'E', 'U'}}},
		{"no router", "1.2.3.4", "192.0.2.1", Enriched{Router: NoRouter, Packets: 7, Country: [2]byte{'F', 'R'}, Continent: [2]byte{'E', 'U'}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := record.Record{Client: netip.MustParseAddr(tc.client), Server: netip.MustParseAddr(tc.server), BytesOut: 10000, MSS: 1448}
			var got Enriched
			e.Enrich(&r, &got)
			if got != tc.want {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
	if e.RouterName(1) != "r2" || e.RouterName(NoRouter) != "unknown" {
		t.Error("RouterName")
	}
	r := record.Record{Client: netip.MustParseAddr("1.2.3.4"), Server: netip.MustParseAddr("10.1.0.5"), BytesOut: 1}
	var out Enriched
	if n := testing.AllocsPerRun(100, func() { e.Enrich(&r, &out) }); n != 0 {
		t.Errorf("Enrich allocates %v times", n)
	}
}
