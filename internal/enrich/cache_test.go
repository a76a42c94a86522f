package enrich

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/netledger/netledger/internal/geo"
	"github.com/netledger/netledger/internal/record"
	"github.com/netledger/netledger/internal/routing"
	"github.com/netledger/netledger/internal/testenv"
)

// versionedGeo is a fake geo database that says when it changes.
type versionedGeo struct {
	m   map[netip.Addr]geo.Info
	ver int64
}

func (g *versionedGeo) Lookup(a netip.Addr) geo.Info { return g.m[a] }
func (g *versionedGeo) Updated() time.Time           { return time.Unix(0, g.ver) }

// TestEnrichBatchEqualsEnrich: a Cache's EnrichBatch gives exactly what Enrich gives, record
// by record, for random tables, routers, geo data and clients that repeat (hits), including
// unrouted clients, routers without a table, unknown servers, IPv4-mapped and zoned clients
// and the zero address; with a cache small enough to start over many times. With ribs, the
// routers' tables are routing.RIBs (RouteTables: batched lookups of the misses) holding the
// routes of the StaticTables that Enrich is checked against.
func TestEnrichBatchEqualsEnrich(t *testing.T) {
	for _, ribs := range []bool{false, true} {
		t.Run(map[bool]string{false: "static", true: "rib"}[ribs], func(t *testing.T) { testEnrichBatchEqualsEnrich(t, ribs) })
	}
}

func testEnrichBatchEqualsEnrich(t *testing.T, ribs bool) {
	for _, maxEntries := range []int{1, 64, 1 << 16} {
		rng := rand.New(rand.NewPCG(7, uint64(maxEntries)))
		var prefixes []netip.Prefix
		tables := []*StaticTable{new(StaticTable), new(StaticTable)}
		pool := []*routing.Attrs{
			{}, // empty path: the router's ASN
			{Path: []routing.Segment{seq(1, 2, 3)}},
			{Path: []routing.Segment{seq(4, 4, 5), set(9, 7)}},
			{Path: []routing.Segment{{Type: routing.SegmentConfedSequence, ASNs: []uint32{65001}}, seq(6)}},
			{Path: []routing.Segment{set(8, 3), seq(11)}},
		}
		for range 3000 {
			var p netip.Prefix
			if rng.IntN(4) == 0 {
				p, _ = testenv.RandomAddr(rng, netip.MustParsePrefix("2000::/3")).Prefix(16 + rng.IntN(49))
			} else {
				p, _ = testenv.RandomAddr(rng, netip.MustParsePrefix("0.0.0.0/1")).Prefix(8 + rng.IntN(17))
			}
			prefixes = append(prefixes, p)
			tables[rng.IntN(2)].Insert(p, pool[rng.IntN(len(pool))])
		}
		g := &versionedGeo{m: make(map[netip.Addr]geo.Info)}
		routers := func(t0, t1 Table) []Router {
			return []Router{
				{Name: "r1", ASN: 65000, Networks: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}, Table: t0},
				{Name: "r2", ASN: 65001, Networks: []netip.Prefix{netip.MustParsePrefix("10.2.0.0/16"), netip.MustParsePrefix("fd00::/8")}, Table: t1},
				{Name: "r3", ASN: 65002, Networks: []netip.Prefix{netip.MustParsePrefix("10.3.0.0/16")}},
			}
		}
		e := New(routers(tables[0], tables[1]), g)
		batched := e
		if ribs {
			rs := []*routing.RIB{routing.NewRIB(), routing.NewRIB()}
			for i, tab := range tables {
				if err := rs[i].Load(func(u routing.Updater) error {
					for p, a := range tab.t.All() {
						u.Announce(p, 0, *a)
					}
					return nil
				}); err != nil {
					t.Fatal(err)
				}
			}
			batched = New(routers(rs[0], rs[1]), g)
		}
		servers := []netip.Addr{netip.MustParseAddr("10.1.0.1"), netip.MustParseAddr("10.2.3.4"), netip.MustParseAddr("fd00::1"),
			netip.MustParseAddr("10.3.0.9"), netip.MustParseAddr("192.0.2.1")}
		// 500 clients: in a prefix, in 128.0.0.0/1 (unrouted), odd forms
		var clients []netip.Addr
		for range 500 {
			var a netip.Addr
			switch rng.IntN(10) {
			case 0:
				a = testenv.RandomAddr(rng, netip.MustParsePrefix("128.0.0.0/1"))
			case 1:
				a = netip.AddrFrom16(testenv.RandomAddr(rng, prefixes[rng.IntN(len(prefixes))]).As16()) // IPv4-mapped
			case 2:
				a = testenv.RandomAddr(rng, prefixes[rng.IntN(len(prefixes))]).WithZone("eth0")
			case 3:
				a = netip.Addr{}
			default:
				a = testenv.RandomAddr(rng, prefixes[rng.IntN(len(prefixes))])
			}
			if rng.IntN(3) == 0 {
				g.m[a] = geo.Info{Country: [2]byte{'A' + byte(rng.IntN(26)), 'Z'}, Continent: [2]byte{'E', 'U'}}
			}
			clients = append(clients, a)
		}
		c := batched.NewCache(maxEntries)
		recs := make([]record.Record, 1000)
		got, want := make([]Enriched, len(recs)), make([]Enriched, len(recs))
		for round := range 40 {
			n := 1 + rng.IntN(len(recs))
			for i := range n {
				recs[i] = record.Record{Client: clients[rng.IntN(len(clients))], Server: servers[rng.IntN(len(servers))],
					BytesOut: rng.Uint64N(1e6), MSS: 1448 * uint32(rng.IntN(2)), PacketsOut: uint64(rng.IntN(2) * 9)}
			}
			c.EnrichBatch(recs[:n], got)
			for i := range n {
				e.Enrich(&recs[i], &want[i])
				if ribs && (got[i].Attrs == nil) == (want[i].Attrs == nil) &&
					(got[i].Attrs == nil || slices.EqualFunc(got[i].Attrs.Path, want[i].Attrs.Path, equalSegment)) {
					got[i].Attrs = want[i].Attrs // a RIB holds its own copies of the attributes
				}
				if got[i] != want[i] {
					t.Fatalf("max %d, round %d, record %d (client %v, server %v):\ngot  %+v\nwant %+v", maxEntries, round, i, recs[i].Client, recs[i].Server, got[i], want[i])
				}
			}
		}
		st := c.Stats()
		if maxEntries > 64 && st.Hits < 2*st.Misses {
			t.Errorf("max %d: %d hits, %d misses: the cache is not used", maxEntries, st.Hits, st.Misses)
		}
	}
}

func equalSegment(a, b routing.Segment) bool {
	return a.Type == b.Type && slices.Equal(a.ASNs, b.ASNs)
}

// TestCacheInvalidation: after a RIB is replaced (Load) or changed (Announce, Flush), or the geo
// data changes, the next batch sees the new routes and countries, not the cached ones.
func TestCacheInvalidation(t *testing.T) {
	rib := routing.NewRIB()
	p8, p16 := netip.MustParsePrefix("1.0.0.0/8"), netip.MustParsePrefix("1.2.0.0/16")
	if err := rib.Load(func(u routing.Updater) error {
		u.Announce(p8, 0, routing.Attrs{Path: []routing.Segment{seq(10, 20)}})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	g := &versionedGeo{m: map[netip.Addr]geo.Info{}}
	e := New([]Router{{Name: "r1", ASN: 65000, Table: rib}}, g)
	c := e.NewCache(0)
	recs := []record.Record{{Client: netip.MustParseAddr("1.2.3.4")}, {Client: netip.MustParseAddr("1.2.3.4")}}
	out := make([]Enriched, len(recs))
	check := func(step string, prefix netip.Prefix, origin uint32, country string) {
		t.Helper()
		for range 2 { // the second time from the cache
			c.EnrichBatch(recs, out)
			for i := range out {
				if out[i].Prefix != prefix || out[i].OriginAS != origin || string(out[i].Country[:]) != country {
					t.Fatalf("%s: record %d: prefix %v, origin %d, country %q; want %v, %d, %q", step, i, out[i].Prefix, out[i].OriginAS, out[i].Country[:], prefix, origin, country)
				}
			}
		}
	}
	check("first table", p8, 20, "\x00\x00")
	if st := c.Stats(); st.Hits != 3 || st.Misses != 1 {
		t.Fatalf("stats %+v, want 3 hits, 1 miss", st)
	}
	if err := rib.Load(func(u routing.Updater) error {
		u.Announce(p8, 0, routing.Attrs{Path: []routing.Segment{seq(10, 30)}})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	check("table replaced", p8, 30, "\x00\x00")
	rib.Announce(p16, 0, routing.Attrs{Path: []routing.Segment{seq(10, 40)}})
	rib.Flush()
	check("route announced", p16, 40, "\x00\x00")
	g.m[netip.MustParseAddr("1.2.3.4")] = geo.Info{Country: [2]byte{'F', 'R'}}
	g.ver++
	check("geo changed", p16, 40, "FR")
	rib.Withdraw(p16, 0)
	rib.Flush()
	check("route withdrawn", p8, 30, "FR")
}

// swappedGeo is a fake geo source that swaps whole databases, as geo.Reloader does.
type swappedGeo struct {
	db *geo.DB
	m  map[netip.Addr]geo.Info
}

func (g *swappedGeo) Lookup(a netip.Addr) geo.Info { return g.m[a] }
func (g *swappedGeo) DB() *geo.DB                  { return g.db }

// TestCacheGeoSwap: a new *geo.DB (a geo.Reloader's reload) invalidates the cache.
func TestCacheGeoSwap(t *testing.T) {
	a := netip.MustParseAddr("1.2.3.4")
	g := &swappedGeo{db: new(geo.DB), m: map[netip.Addr]geo.Info{a: {Country: [2]byte{'F', 'R'}}}}
	c := New([]Router{{Name: "r1"}}, g).NewCache(0)
	recs := []record.Record{{Client: a}}
	out := make([]Enriched, 1)
	c.EnrichBatch(recs, out)
	g.m = map[netip.Addr]geo.Info{a: {Country: [2]byte{'D', 'E'}}}
	c.EnrichBatch(recs, out)
	if string(out[0].Country[:]) != "FR" || c.Stats().Hits != 1 {
		t.Fatalf("country %q, %+v before the swap; want FR from the cache", out[0].Country[:], c.Stats())
	}
	g.db = new(geo.DB)
	c.EnrichBatch(recs, out)
	if string(out[0].Country[:]) != "DE" {
		t.Errorf("country %q after the swap, want DE", out[0].Country[:])
	}
}

// TestCacheUnversioned: with a geo database that cannot tell its changes, every record is
// looked up.
func TestCacheUnversioned(t *testing.T) {
	g := fakeGeo{netip.MustParseAddr("1.2.3.4"): {Country: [2]byte{'F', 'R'}}}
	c := New([]Router{{Name: "r1"}}, g).NewCache(0)
	recs := []record.Record{{Client: netip.MustParseAddr("1.2.3.4")}}
	out := make([]Enriched, 1)
	c.EnrichBatch(recs, out)
	g[netip.MustParseAddr("1.2.3.4")] = geo.Info{Country: [2]byte{'D', 'E'}}
	c.EnrichBatch(recs, out)
	if string(out[0].Country[:]) != "DE" {
		t.Errorf("country %q after the change, want DE", out[0].Country[:])
	}
	if st := c.Stats(); st.Hits != 0 || st.Misses != 2 {
		t.Errorf("stats %+v, want 0 hits, 2 misses", st)
	}
}

func TestEnrichBatchAllocatesNothing(t *testing.T) {
	tab := new(StaticTable)
	tab.Insert(netip.MustParsePrefix("1.0.0.0/8"), &routing.Attrs{Path: []routing.Segment{seq(1, 2)}})
	c := New([]Router{{Name: "r1", Table: tab}}, nil).NewCache(0)
	recs := make([]record.Record, 300)
	for i := range recs {
		recs[i].Client = netip.AddrFrom4([4]byte{1, 2, byte(i >> 8), byte(i)})
	}
	out := make([]Enriched, len(recs))
	c.EnrichBatch(recs, out)
	if n := testing.AllocsPerRun(100, func() { c.EnrichBatch(recs, out) }); n != 0 {
		t.Errorf("EnrichBatch allocates %v times per batch", n)
	}
}

// TestCacheGrowsFourfoldWhileSmall: a cache filling up grows fourfold up to 2^18 entries, then
// twofold up to its maximum, and keeps its entries (hits) across the growths.
func TestCacheGrowsFourfoldWhileSmall(t *testing.T) {
	tab := new(StaticTable)
	tab.Insert(netip.MustParsePrefix("10.0.0.0/8"), &routing.Attrs{Path: []routing.Segment{seq(1, 2)}})
	c := New([]Router{{Name: "r1", Table: tab}}, nil).NewCache(1 << 20)
	recs := make([]record.Record, 512)
	out := make([]Enriched, len(recs))
	sizes := []int{len(c.entries)}
	const clients = 600_000
	for base := 0; base < clients; base += len(recs) {
		for i := range recs {
			n := base + i
			recs[i].Client = netip.AddrFrom4([4]byte{10, byte(n >> 16), byte(n >> 8), byte(n)})
		}
		c.EnrichBatch(recs, out)
		if n := len(c.entries); n != sizes[len(sizes)-1] {
			sizes = append(sizes, n)
		}
	}
	want := []int{1 << 12, 1 << 14, 1 << 16, 1 << 18, 1 << 19, 1 << 20}
	if !slices.Equal(sizes, want) {
		t.Fatalf("cache sizes %v, want %v", sizes, want)
	}
	before := c.Stats()
	c.EnrichBatch(recs, out) // the last clients: still there
	if st := c.Stats(); st.Hits-before.Hits != uint64(len(recs)) {
		t.Errorf("%d hits of %d after growing", st.Hits-before.Hits, len(recs))
	}
}
