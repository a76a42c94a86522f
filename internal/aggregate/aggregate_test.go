package aggregate

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/netledger/netledger/internal/enrich"
	"github.com/netledger/netledger/internal/geo"
	"github.com/netledger/netledger/internal/record"
	"github.com/netledger/netledger/internal/routing"
)

var update = flag.Bool("update", false, "rewrite the golden files")

type fakeGeo map[netip.Addr]geo.Info

func (f fakeGeo) Lookup(a netip.Addr) geo.Info { return f[a] }

func seq(asns ...uint32) routing.Segment {
	return routing.Segment{Type: routing.SegmentSequence, ASNs: asns}
}

func set(asns ...uint32) routing.Segment {
	return routing.Segment{Type: routing.SegmentSet, ASNs: asns}
}

func confed(asns ...uint32) routing.Segment {
	return routing.Segment{Type: routing.SegmentConfedSequence, ASNs: asns}
}

func attrs(segs ...routing.Segment) *routing.Attrs { return &routing.Attrs{Path: segs} }

// rowLine prints a row with the dimensions of its view and every metric.
func rowLine(r *record.Row) string {
	d := &r.Dims
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s |", r.View, r.Start.Format(time.RFC3339), r.Resolution)
	field := func(name string, v any, set bool) {
		if set {
			fmt.Fprintf(&b, " %s=%v", name, v)
		}
	}
	field("router", d.Router, d.Router != "")
	field("class", d.Class, d.Class != "")
	field("prefix", d.Prefix, d.Prefix.IsValid())
	field("path", fmt.Sprintf("%q", d.Path), d.Path != "")
	field("peer", d.PeerAS, d.PeerAS != 0)
	field("origin", d.OriginAS, d.OriginAS != 0)
	field("asn", d.ASN, d.ASN != 0)
	field("country", d.Country, d.Country != "")
	field("region", d.Region, d.Region != "")
	field("proto", d.Proto, d.Proto != 0)
	field("src", d.SrcGroup, d.SrcGroup.IsValid())
	field("dst", d.DstGroup, d.DstGroup.IsValid())
	field("port", d.Port, d.Port != 0)
	m := &r.Metrics
	fmt.Fprintf(&b, " | req=%d bytes=%d in=%d pkts=%d pktsin=%d retr=%d dur=%d rtt=%d/%d conns=%d open=%d",
		m.Requests, m.Bytes, m.BytesIn, m.Packets, m.PacketsIn, m.Retransmits, m.Duration, m.RTTSum, m.RTTCount, m.Conns, m.Open)
	return b.String()
}

func rowLines(rows []record.Row) []string {
	out := make([]string, len(rows))
	for i := range rows {
		out[i] = rowLine(&rows[i])
	}
	slices.Sort(out)
	return out
}

// goldenSetup is a small world with known paths: two routers with their tables, geo data.
func goldenSetup() (*enrich.Enricher, []string) {
	r1 := new(enrich.StaticTable)
	r1.Insert(netip.MustParsePrefix("192.0.2.0/24"), attrs(seq(1, 2, 3)))
	r1.Insert(netip.MustParsePrefix("192.0.2.128/25"), attrs(seq(1, 9)))
	r1.Insert(netip.MustParsePrefix("198.51.100.0/24"), attrs(seq(1, 2, 2, 2, 4, 4)))  // prepending
	r1.Insert(netip.MustParsePrefix("203.0.113.0/24"), attrs(seq(1, 2), set(6, 5, 2))) // ends in an AS_SET
	r1.Insert(netip.MustParsePrefix("100.64.0.0/10"), attrs())                         // empty path: our own AS
	r1.Insert(netip.MustParsePrefix("2001:db8::/32"), attrs(confed(65001), seq(7, 8))) // IPv6, confederation
	r2 := new(enrich.StaticTable)
	r2.Insert(netip.MustParsePrefix("192.0.2.0/24"), attrs(seq(11, 3)))
	routers := []enrich.Router{
		{Name: "r1", ASN: 64500, Networks: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}, Table: r1},
		{Name: "r2", ASN: 64501, Networks: []netip.Prefix{netip.MustParsePrefix("10.2.0.0/16")}, Table: r2},
	}
	g := fakeGeo{
		netip.MustParseAddr("192.0.2.10"):   {Country: [2]byte{'D', 'E'}, Continent: [2]byte{'E', 'U'}},
		netip.MustParseAddr("192.0.2.200"):  {Country: [2]byte{'F', 'R'}, Continent: [2]byte{'E', 'U'}},
		netip.MustParseAddr("198.51.100.1"): {Country: [2]byte{'U', 'S'}, Continent: [2]byte{'N', 'A'}},
		netip.MustParseAddr("2001:db8::1"):  {Country: [2]byte{'J', 'P'}, Continent: [2]byte{'A', 'S'}},
	}
	return enrich.New(routers, g), []string{"r1", "r2"}
}

func rec(sec int64, client, server string, class uint16, bytes uint64, mss, retr uint32) record.Record {
	return record.Record{
		Time: sec * 1e9, Client: netip.MustParseAddr(client), Server: netip.MustParseAddr(server),
		Source: record.SourceReportV1, Class: class, Requests: 1, BytesOut: bytes, MSS: mss,
		Retransmits: retr, Duration: 1000, RTT: 0,
	}
}

func goldenRecords() []record.Record {
	t0 := int64(1_700_000_040) // an interval start (multiple of 60)
	rs := []record.Record{
		rec(t0+1, "192.0.2.10", "10.1.0.5", 1, 3000, 1000, 1),   // r1 192.0.2.0/24 "1 2 3"
		rec(t0+2, "192.0.2.10", "10.1.0.5", 1, 1500, 1000, 0),   // same row
		rec(t0+3, "192.0.2.200", "10.1.0.5", 2, 10000, 1460, 2), // r1 more specific /25 "1 9"
		rec(t0+4, "198.51.100.1", "10.1.0.5", 1, 5000, 1000, 0), // prepending
		rec(t0+5, "203.0.113.7", "10.1.0.5", 1, 7000, 1400, 0),  // AS_SET origin
		rec(t0+6, "100.64.1.1", "10.1.0.5", 1, 800, 1000, 0),    // empty path
		rec(t0+7, "8.8.8.8", "10.1.0.5", 1, 900, 1000, 0),       // unrouted
		rec(t0+8, "2001:db8::1", "10.1.0.5", 2, 4000, 1220, 0),  // IPv6, confed
		rec(t0+9, "192.0.2.10", "10.2.0.7", 1, 2000, 1000, 0),   // r2
		rec(t0+10, "192.0.2.10", "10.9.0.1", 1, 600, 0, 0),      // no router
		rec(t0+61, "192.0.2.10", "10.1.0.5", 1, 1000, 1000, 0),  // next interval
		rec(t0+62, "192.0.2.11", "10.1.0.5", 1, 0, 1000, 0),     // zero bytes, one request
		{Time: (t0 + 63) * 1e9, Client: netip.MustParseAddr("192.0.2.12"), Server: netip.MustParseAddr("10.1.0.5"), Source: record.SourceReportV2}, // all zero: no row
	}
	rs[2].RTT, rs[3].RTT = 20000, 30000
	ct := record.Record{Time: (t0 + 30) * 1e9, Client: netip.MustParseAddr("10.8.0.0"), Server: netip.MustParseAddr("10.9.0.0"),
		Proto: 6, ServerPort: 443, Source: record.SourceConntrack, Requests: 3, BytesIn: 100, BytesOut: 2000, PacketsIn: 4, PacketsOut: 5,
		Duration: 3000, ConnsClosed: 3, ConnsOpen: 1}
	ct2 := ct
	ct2.ServerPort, ct2.Proto = 0, 17 // other ports
	return append(rs, ct, ct2)
}

func aggregateAll(t testing.TB, a *Aggregator, e *enrich.Enricher, recs []record.Record) []record.Row {
	t.Helper()
	ens := make([]enrich.Enriched, len(recs))
	for i := range recs {
		e.Enrich(&recs[i], &ens[i])
	}
	a.AddBatch(recs, ens)
	return a.FlushAll(nil)
}

// addOne accounts one record: a batch of one.
func addOne(a *Aggregator, r *record.Record, e *enrich.Enriched) {
	a.AddBatch(unsafe.Slice(r, 1), unsafe.Slice(e, 1))
}

func TestGoldenTrafstatSemantics(t *testing.T) {
	e, names := goldenSetup()
	a, err := New(Config{Routers: names, ClassName: func(c uint16) string { return map[uint16]string{1: "web", 2: "video"}[c] }})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(rowLines(aggregateAll(t, a, e, goldenRecords())), "\n") + "\n"
	path := filepath.Join("testdata", "trafstat.golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("rows differ from %s (-got +want):\n%s", path, lineDiff(got, string(want)))
	}
}

func lineDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	var b strings.Builder
	for _, l := range g {
		if !slices.Contains(w, l) {
			b.WriteString("-" + l + "\n")
		}
	}
	for _, l := range w {
		if !slices.Contains(g, l) {
			b.WriteString("+" + l + "\n")
		}
	}
	return b.String()
}

// world is a random RIB and record generator.
type world struct {
	rng      *rand.Rand
	e        *enrich.Enricher
	names    []string
	prefixes []netip.Prefix
	servers  []netip.Addr
}

func randomPath(rng *rand.Rand) []routing.Segment {
	var segs []routing.Segment
	if rng.IntN(10) == 0 {
		segs = append(segs, confed(uint32(65000+rng.IntN(3))))
	}
	n := rng.IntN(5)
	if n == 0 && rng.IntN(2) == 0 {
		return segs // empty path
	}
	var s []uint32
	for range n + 1 {
		asn := uint32(1 + rng.IntN(20))
		for range 1 + rng.IntN(2) { // prepending
			s = append(s, asn)
		}
	}
	segs = append(segs, seq(s...))
	if rng.IntN(5) == 0 {
		segs = append(segs, set(uint32(1+rng.IntN(20)), uint32(1+rng.IntN(20)), uint32(21+rng.IntN(3))))
	}
	return segs
}

func newWorld(seed uint64) *world {
	rng := rand.New(rand.NewPCG(seed, 1))
	w := &world{rng: rng}
	var routers []enrich.Router
	for i := range 3 {
		t := new(enrich.StaticTable)
		for range 200 {
			var p netip.Prefix
			if rng.IntN(4) == 0 {
				a := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(rng.IntN(4)), byte(rng.IntN(256))})
				p = netip.PrefixFrom(a, 32+rng.IntN(17)).Masked()
			} else {
				a := netip.AddrFrom4([4]byte{byte(100 + rng.IntN(4)), byte(rng.IntN(256)), byte(rng.IntN(256))})
				p = netip.PrefixFrom(a, 8+rng.IntN(17)).Masked()
			}
			t.Insert(p, attrs(randomPath(rng)...))
			w.prefixes = append(w.prefixes, p)
		}
		srv := netip.AddrFrom4([4]byte{10, byte(i), 0, 1})
		w.servers = append(w.servers, srv)
		routers = append(routers, enrich.Router{Name: fmt.Sprintf("r%d", i), ASN: uint32(64500 + i),
			Networks: []netip.Prefix{netip.PrefixFrom(srv, 16).Masked()}, Table: t})
		w.names = append(w.names, routers[i].Name)
	}
	w.servers = append(w.servers, netip.MustParseAddr("10.200.0.1")) // no router
	g := make(fakeGeo)
	for range 100 {
		g[w.client()] = geo.Info{Country: [2]byte{'A' + byte(rng.IntN(3)), 'A' + byte(rng.IntN(3))}, Continent: [2]byte{'E', 'U'}}
	}
	w.e = enrich.New(routers, g)
	return w
}

func (w *world) client() netip.Addr {
	if w.rng.IntN(10) == 0 { // mostly unrouted
		return netip.AddrFrom4([4]byte{byte(1 + w.rng.IntN(90)), byte(w.rng.IntN(256)), 0, 1})
	}
	p := w.prefixes[w.rng.IntN(len(w.prefixes))]
	b := p.Addr().AsSlice()
	b[len(b)-1] |= byte(w.rng.IntN(256)) >> min(p.Bits(), 8)
	a, _ := netip.AddrFromSlice(b)
	return a
}

func (w *world) records(n int, t0 int64) []record.Record {
	rs := make([]record.Record, n)
	sources := []record.Source{record.SourceReportV1, record.SourceReportV2, record.SourceTCPInfo, record.SourceConntrack, record.SourceImport}
	for i := range rs {
		r := &rs[i]
		r.Time = t0 + w.rng.Int64N(int64(3*time.Minute)) - int64(time.Minute)
		r.Client = w.client()
		r.Server = w.servers[w.rng.IntN(len(w.servers))]
		r.Source = sources[w.rng.IntN(len(sources))]
		r.Class = uint16(w.rng.IntN(3))
		r.Proto = []uint8{6, 17, 1}[w.rng.IntN(3)]
		r.ServerPort = uint16(w.rng.IntN(3) * 443)
		r.Requests = uint32(w.rng.IntN(3))
		r.BytesOut = w.rng.Uint64N(1 << 20)
		r.BytesIn = w.rng.Uint64N(1 << 10)
		r.MSS = uint32(w.rng.IntN(2) * 1460)
		if w.rng.IntN(2) == 0 {
			r.PacketsOut = w.rng.Uint64N(100)
		}
		r.PacketsIn = w.rng.Uint64N(50)
		r.Retransmits = uint32(w.rng.IntN(5))
		r.RTT = uint32(w.rng.IntN(2) * w.rng.IntN(100000))
		r.Duration = w.rng.Uint64N(1e6)
		r.ConnsClosed = uint32(w.rng.IntN(3))
		r.ConnsOpen = uint32(w.rng.IntN(3))
	}
	return rs
}

// distinct counts the distinct ASes of a path outside confederation segments, independently
// of enrich.AppendDistinctASNs.
func distinct(a *routing.Attrs) map[uint32]bool {
	m := map[uint32]bool{}
	if a == nil {
		return m
	}
	for _, s := range a.Path {
		if s.Type == routing.SegmentSequence || s.Type == routing.SegmentSet {
			for _, asn := range s.ASNs {
				m[asn] = true
			}
		}
	}
	return m
}

func recMetrics(r *record.Record, e *enrich.Enriched) record.Metrics {
	m := record.Metrics{Requests: uint64(r.Requests), Bytes: r.BytesOut, BytesIn: r.BytesIn, Packets: e.Packets,
		PacketsIn: r.PacketsIn, Retransmits: uint64(r.Retransmits), Duration: r.Duration,
		Conns: uint64(r.ConnsClosed), Open: uint64(r.ConnsOpen)}
	if r.RTT > 0 {
		m.RTTSum, m.RTTCount = uint64(r.RTT), 1
	}
	return m
}

// TestConservation: over random loads, for every interval and view, the rows' metrics sum to
// the metrics of the records the view takes; as_on_path's to the metrics × the number of
// distinct ASes of each record's path.
func TestConservation(t *testing.T) {
	views := DefaultViews()
	for seed := range uint64(8) {
		w := newWorld(seed)
		a, err := New(Config{Routers: w.names, Interval: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		recs := w.records(2000+int(seed)*100, 1_700_000_000*1e9)
		type vk struct {
			view  string
			start int64
		}
		want := map[vk]*record.Metrics{}
		var en enrich.Enriched
		for i := range recs {
			r := &recs[i]
			w.e.Enrich(r, &en)
			m := recMetrics(r, &en)
			start := r.Time - r.Time%int64(time.Minute)
			for _, v := range views {
				cv, _ := v.compile()
				if !cv.sources.has(r.Source) {
					continue
				}
				k := vk{v.Name, start}
				if want[k] == nil {
					want[k] = new(record.Metrics)
				}
				times := 1
				if v.Name == "as_path" {
					times = len(distinct(en.Attrs)) // Σ × distinct ASes on the path
				}
				for range times {
					want[k].Add(&m)
				}
			}
			addOne(a, r, &en)
		}
		// flush in two steps: finished intervals first, then the rest
		rows := a.Flush(nil, 1_700_000_000*1e9-1_700_000_000*1e9%int64(time.Minute))
		rows = a.FlushAll(rows)
		got := map[vk]*record.Metrics{}
		for i := range rows {
			r := &rows[i]
			if r.Metrics.Zero() {
				t.Fatalf("row with all-zero metrics: %s", rowLine(r))
			}
			k := vk{r.View, r.Start.UnixNano()}
			if got[k] == nil {
				got[k] = new(record.Metrics)
			}
			got[k].Add(&r.Metrics)
		}
		for k, m := range want {
			g := got[k]
			if g == nil {
				g = new(record.Metrics)
			}
			if *g != *m {
				t.Errorf("seed %d, view %s, interval %d: rows sum to %+v, records to %+v", seed, k.view, k.start, *g, *m)
			}
		}
		for k := range got {
			if want[k] == nil {
				t.Errorf("seed %d: rows for view %s interval %d without records", seed, k.view, k.start)
			}
		}
	}
}

// oracle is a naive aggregator: record.Dims built directly per record and view.
func oracle(views []ViewConfig, e *enrich.Enricher, names []string, recs []record.Record, interval time.Duration) []record.Row {
	type rk struct {
		view  string
		start int64
		dims  record.Dims
	}
	sums := map[rk]*record.Metrics{}
	var en enrich.Enriched
	for i := range recs {
		r := &recs[i]
		e.Enrich(r, &en)
		m := recMetrics(r, &en)
		start := r.Time - r.Time%int64(interval)
		for _, v := range views {
			cv, _ := v.compile()
			if !cv.sources.has(r.Source) {
				continue
			}
			var d record.Dims
			var asns []uint32
			for _, name := range v.Dimensions {
				switch name {
				case DimRouter:
					d.Router = "unknown"
					if int(en.Router) < len(names) {
						d.Router = names[en.Router]
					}
				case DimClass:
					d.Class = fmt.Sprint(r.Class)
				case DimPrefix:
					d.Prefix = en.Prefix
					if en.Attrs != nil {
						d.Path = en.Attrs.String()
					}
				case DimPeerAS:
					d.PeerAS = en.PeerAS
				case DimOriginAS:
					d.OriginAS = en.OriginAS
				case DimASOnPath:
					for asn := range distinct(en.Attrs) {
						asns = append(asns, asn)
					}
				case DimCountry:
					if en.Country != ([2]byte{}) {
						d.Country = string(en.Country[:])
					}
				case DimRegion:
					if en.Continent != ([2]byte{}) {
						d.Region = string(en.Continent[:])
					}
				case DimProto:
					d.Proto = r.Proto
				case DimSrcGroup:
					d.SrcGroup = r.Client
				case DimDstGroup:
					d.DstGroup = r.Server
				case DimPort:
					d.Port = int32(r.ServerPort)
					if r.ServerPort == 0 && (r.Proto == 6 || r.Proto == 17) {
						d.Port = -1
					}
				}
			}
			add := func(d record.Dims) {
				k := rk{v.Name, start, d}
				if sums[k] == nil {
					sums[k] = new(record.Metrics)
				}
				sums[k].Add(&m)
			}
			if slices.Contains(v.Dimensions, DimASOnPath) {
				for _, asn := range asns {
					d.ASN = asn
					add(d)
				}
			} else {
				add(d)
			}
		}
	}
	var rows []record.Row
	for k, m := range sums {
		if !m.Zero() {
			rows = append(rows, record.Row{View: k.view, Start: time.Unix(0, k.start).UTC(), Resolution: interval, Dims: k.dims, Metrics: *m})
		}
	}
	return rows
}

// TestOracle compares the aggregator with the naive oracle on random loads, with the default
// views and operator views over other dimension combinations.
func TestOracle(t *testing.T) {
	views := append(DefaultViews(),
		ViewConfig{Name: "everything", Dimensions: Dimensions()},
		ViewConfig{Name: "peer_origin", Dimensions: []string{DimPeerAS, DimOriginAS}, Sources: []string{"report-v1", "tcpinfo"}},
		ViewConfig{Name: "asn_country", Dimensions: []string{DimASOnPath, DimCountry}, Sources: []string{"!report-v2"}},
		ViewConfig{Name: "proto_port", Dimensions: []string{DimProto, DimPort, DimPrefix}},
	)
	for seed := range uint64(5) {
		w := newWorld(100 + seed)
		a, err := New(Config{Views: views, Routers: w.names, Interval: 30 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		recs := w.records(3000, 1_700_000_000*1e9)
		got := rowLines(aggregateAll(t, a, w.e, recs))
		want := rowLines(oracle(views, w.e, w.names, recs, 30*time.Second))
		if !slices.Equal(got, want) {
			t.Fatalf("seed %d: aggregator and oracle differ (-aggregator +oracle):\n%s", seed, lineDiff(strings.Join(got, "\n"), strings.Join(want, "\n")))
		}
		// the aggregator is reused across flushes: a second load gives the oracle's rows too
		recs = w.records(1000, 1_800_000_000*1e9)
		got = rowLines(aggregateAll(t, a, w.e, recs))
		want = rowLines(oracle(views, w.e, w.names, recs, 30*time.Second))
		if !slices.Equal(got, want) {
			t.Fatalf("seed %d, second flush: aggregator and oracle differ", seed)
		}
	}
}

// TestSamePathMerges: two attribute sets with the same path for one prefix (a route replaced
// by one with other communities) give one prefix row.
func TestSamePathMerges(t *testing.T) {
	p := netip.MustParsePrefix("192.0.2.0/24")
	a1 := &routing.Attrs{Path: []routing.Segment{seq(1, 2)}, Communities: []uint32{1}}
	a2 := &routing.Attrs{Path: []routing.Segment{seq(1, 2)}, Communities: []uint32{2}}
	ag, err := New(Config{Views: []ViewConfig{{Name: "prefix", Dimensions: []string{DimPrefix}}}, Routers: []string{"r"}})
	if err != nil {
		t.Fatal(err)
	}
	r := record.Record{Time: 60e9, Requests: 1, BytesOut: 10}
	addOne(ag, &r, &enrich.Enriched{Prefix: p, Attrs: a1})
	addOne(ag, &r, &enrich.Enriched{Prefix: p, Attrs: a2})
	rows := ag.FlushAll(nil)
	if len(rows) != 1 || rows[0].Metrics.Bytes != 20 || rows[0].Dims.Path != "1 2" {
		t.Fatalf("rows = %v, want one row of 20 bytes with path 1 2", rowLines(rows))
	}
}

// TestPathTextShared: attribute sets with the same path share one text string, and a set
// whose text is known costs its path entry only (the text is not built as a new string).
func TestPathTextShared(t *testing.T) {
	ag, err := New(Config{Routers: []string{"r"}})
	if err != nil {
		t.Fatal(err)
	}
	first := &routing.Attrs{Path: []routing.Segment{seq(64500, 3356, 15169)}, Communities: []uint32{0}}
	text := ag.path(first).text
	sets := make([]*routing.Attrs, 100)
	for i := range sets {
		sets[i] = &routing.Attrs{Path: []routing.Segment{seq(64500, 3356, 15169)}, Communities: []uint32{uint32(i + 1)}}
	}
	i := 0
	allocs := testing.AllocsPerRun(len(sets)-1, func() {
		p := ag.path(sets[i])
		i++
		if p.text != text || unsafe.StringData(p.text) != unsafe.StringData(text) || p.canon != first {
			t.Fatalf("set %d: text %q (own string: %v), canonical %p; want the first set's %q, %p",
				i, p.text, unsafe.StringData(p.text) != unsafe.StringData(text), p.canon, text, first)
		}
	})
	if allocs > 1 {
		t.Errorf("%.1f allocations per set of a known path text, want 1 (its path entry)", allocs)
	}
	if got := ag.path(&routing.Attrs{Path: []routing.Segment{seq(64501)}}).text; got != "64501" {
		t.Errorf("new path text %q, want 64501", got)
	}
}

// TestAddBatchEqualsAdd: AddBatch in batches of random sizes gives exactly the rows of
// batches of one record, in the same order, over random loads and views, through several flushes.
func TestAddBatchEqualsOneByOne(t *testing.T) {
	views := append(DefaultViews(),
		ViewConfig{Name: "everything", Dimensions: Dimensions()},
		ViewConfig{Name: "peer_origin", Dimensions: []string{DimPeerAS, DimOriginAS}, Sources: []string{"report-v1", "tcpinfo"}},
	)
	for seed := range uint64(6) {
		w := newWorld(200 + seed)
		rng := rand.New(rand.NewPCG(seed, 3))
		one, err := New(Config{Views: views, Routers: w.names, Interval: 30 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		batch, err := New(Config{Views: views, Routers: w.names, Interval: 30 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		for round := range 3 {
			recs := w.records(1000+rng.IntN(3000), int64(1_700_000_000+round*100)*1e9)
			ens := make([]enrich.Enriched, len(recs))
			for i := range recs {
				w.e.Enrich(&recs[i], &ens[i])
				addOne(one, &recs[i], &ens[i])
			}
			for i := 0; i < len(recs); {
				n := min(len(recs)-i, rng.IntN(200))
				batch.AddBatch(recs[i:i+n], ens[i:i+n])
				i += n
			}
			if one.Records() != batch.Records() {
				t.Fatalf("seed %d: %d records added one by one, %d in batches", seed, one.Records(), batch.Records())
			}
			before := int64(1_700_000_000+round*100+60) * 1e9
			want := one.Flush(nil, before)
			got := batch.Flush(nil, before)
			if !slices.Equal(got, want) {
				t.Fatalf("seed %d, round %d: batches and one by one differ (-batches +one by one):\n%s", seed, round,
					lineDiff(strings.Join(rowLines(got), "\n"), strings.Join(rowLines(want), "\n")))
			}
		}
		if got, want := batch.FlushAll(nil), one.FlushAll(nil); len(want) == 0 || !slices.Equal(got, want) {
			t.Fatalf("seed %d: last flush: %d rows in batches, %d one by one", seed, len(got), len(want))
		}
	}
}

func TestAddAllocatesNothing(t *testing.T) {
	w := newWorld(7)
	a, err := New(Config{Routers: w.names})
	if err != nil {
		t.Fatal(err)
	}
	recs := w.records(5000, 1_700_000_000*1e9)
	ens := make([]enrich.Enriched, len(recs))
	for i := range recs {
		w.e.Enrich(&recs[i], &ens[i])
	}
	var rows []record.Row
	for range 2 { // grow the tables and the flush state
		for i := range recs {
			addOne(a, &recs[i], &ens[i])
		}
		rows = a.FlushAll(rows[:0])
	}
	i := 0
	allocs := testing.AllocsPerRun(20000, func() {
		addOne(a, &recs[i%len(recs)], &ens[i%len(recs)])
		i++
	})
	if allocs != 0 {
		t.Errorf("a batch of one allocates %v times", allocs)
	}
	allocs = testing.AllocsPerRun(20, func() {
		a.AddBatch(recs, ens)
	})
	if allocs != 0 {
		t.Errorf("AddBatch allocates %v times per batch of %d", allocs, len(recs))
	}
}

func TestViewsValidate(t *testing.T) {
	for _, tc := range []struct {
		views []ViewConfig
		err   string
	}{
		{DefaultViews(), ""},
		{[]ViewConfig{{Name: "x", Dimensions: []string{"nope"}}}, "unknown dimension"},
		{[]ViewConfig{{Name: "x"}}, "no dimensions"},
		{[]ViewConfig{{Name: "x", Dimensions: []string{"router", "router"}}}, "twice"},
		{[]ViewConfig{{Name: "x", Dimensions: []string{"router"}}, {Name: "x", Dimensions: []string{"class"}}}, "two views"},
		{[]ViewConfig{{Name: "x", Dimensions: []string{"router"}, Sources: []string{"carrier-pigeon"}}}, "unknown source"},
		{[]ViewConfig{{Dimensions: []string{"router"}}}, "without a name"},
	} {
		err := Validate(tc.views)
		if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("Validate(%v) = %v, want %q", tc.views, err, tc.err)
		}
	}
}

func TestPick(t *testing.T) {
	views := append(DefaultViews(), ViewConfig{Name: "asn_country", Dimensions: []string{DimASOnPath, DimCountry, DimRouter}})
	for _, tc := range []struct {
		by      string
		filters []string
		want    string
	}{
		{"router", nil, "router"},
		{"class", []string{"router"}, "router"},
		{"prefix", []string{"router", "class"}, "prefix"},
		{"asn", nil, "as_path"},
		{"path-asn", []string{"router"}, "as_path"},
		{"asn", []string{"country"}, "asn_country"},
		{"origin", []string{"class"}, "origin"},
		{"peer", nil, "country"},
		{"country", []string{"router", "class"}, "country"},
		{"region", nil, "country"},
		{"port", nil, "conntrack"},
		{"src-group", []string{"proto"}, "conntrack"},
		{"country", []string{"prefix"}, ""},
		{"bogus", nil, ""},
	} {
		got, err := Pick(views, tc.by, tc.filters...)
		if got != tc.want || (err != nil) != (tc.want == "") {
			t.Errorf("Pick(%s, %v) = %q, %v; want %q", tc.by, tc.filters, got, err, tc.want)
		}
	}
}

// randomViews returns 1–6 views over random dimension sets (record dimensions included) and
// random source filters.
func randomViews(rng *rand.Rand) []ViewConfig {
	names := Dimensions()
	sources := []string{"report-v1", "report-v2", "tcpinfo", "conntrack", "import"}
	views := make([]ViewConfig, 1+rng.IntN(6))
	for i := range views {
		rng.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
		v := ViewConfig{Name: fmt.Sprintf("v%d", i), Dimensions: slices.Clone(names[:1+rng.IntN(len(names))])}
		switch rng.IntN(3) {
		case 1:
			v.Sources = []string{sources[rng.IntN(len(sources))], sources[rng.IntN(len(sources))]}
		case 2:
			v.Sources = []string{"!" + sources[rng.IntN(len(sources))]}
		}
		views[i] = v
	}
	return views
}

// TestOracleRandomViewsAndFlushes compares the aggregator with the naive oracle over random
// views, random loads added in batches of random sizes and flushed at random points (records
// may arrive for an interval already flushed): every flush holds only intervals before its
// bound, no key twice and no zero row, and the rows of all flushes summed per key are the
// oracle's.
func TestOracleRandomViewsAndFlushes(t *testing.T) {
	type rk struct {
		view  string
		start time.Time
		dims  record.Dims
	}
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 11))
		w := newWorld(300 + seed)
		views := randomViews(rng)
		interval := []time.Duration{10 * time.Second, 30 * time.Second, time.Minute}[rng.IntN(3)]
		a, err := New(Config{Views: views, Routers: w.names, Interval: interval})
		if err != nil {
			t.Fatal(err)
		}
		t0 := int64(1_700_000_000) * 1e9
		var all []record.Record
		got := map[rk]record.Metrics{}
		flush := func(rows []record.Row, before int64) {
			seen := map[rk]bool{}
			for i := range rows {
				r := &rows[i]
				k := rk{r.View, r.Start, r.Dims}
				switch {
				case r.Metrics.Zero():
					t.Fatalf("seed %d: row with all-zero metrics: %s", seed, rowLine(r))
				case r.Start.UnixNano() >= before:
					t.Fatalf("seed %d: flush before %d wrote %s", seed, before, rowLine(r))
				case seen[k]:
					t.Fatalf("seed %d: one flush wrote a key twice: %s", seed, rowLine(r))
				case r.Resolution != interval:
					t.Fatalf("seed %d: resolution %s, want %s", seed, r.Resolution, interval)
				}
				seen[k] = true
				m := got[k]
				m.Add(&r.Metrics)
				got[k] = m
			}
		}
		for round := range 2 + rng.IntN(4) {
			recs := w.records(200+rng.IntN(2000), t0+int64(round)*int64(interval))
			ens := make([]enrich.Enriched, len(recs))
			for i := range recs {
				w.e.Enrich(&recs[i], &ens[i])
			}
			for i := 0; i < len(recs); {
				n := min(len(recs)-i, rng.IntN(300))
				a.AddBatch(recs[i:i+n], ens[i:i+n])
				i += n
			}
			all = append(all, recs...)
			if rng.IntN(3) > 0 {
				before := t0 + rng.Int64N(int64(4*time.Minute)) - int64(time.Minute)
				flush(a.Flush(nil, before), before)
			}
		}
		flush(a.FlushAll(nil), 1<<63-1)
		if a.Pending() {
			t.Fatalf("seed %d: records pending after FlushAll", seed)
		}
		want := map[rk]record.Metrics{}
		for _, r := range oracle(views, w.e, w.names, all, interval) {
			want[rk{r.View, r.Start, r.Dims}] = r.Metrics
		}
		if len(want) == 0 {
			t.Fatalf("seed %d: the oracle has no rows", seed)
		}
		for k, m := range want {
			if got[k] != m {
				t.Errorf("seed %d: %s %s %+v: aggregator %+v, oracle %+v", seed, k.view, k.start, k.dims, got[k], m)
			}
		}
		for k, m := range got {
			if _, ok := want[k]; !ok {
				t.Errorf("seed %d: %s %s %+v: aggregator %+v, not in the oracle", seed, k.view, k.start, k.dims, m)
			}
		}
		if t.Failed() {
			t.Fatalf("seed %d: views %+v", seed, views)
		}
	}
}

// TestDirectView: a view with its group's dimensions (and no as_on_path) is flushed from the
// first-stage table itself, without building its own table, while each prefix has one route
// during the interval; once a route is replaced by another with the same path, the flush builds
// the table and merges them. The rows are the oracle's either way.
func TestDirectView(t *testing.T) {
	views := []ViewConfig{
		{Name: "prefix", Dimensions: []string{DimRouter, DimClass, DimPrefix}, Sources: trafstatSources},
		{Name: "conntrack", Dimensions: []string{DimProto, DimSrcGroup, DimDstGroup, DimPort}, Sources: []string{"conntrack"}},
	}
	w := newWorld(7)
	table := w.e.Routers()[0].Table.(*enrich.StaticTable)
	a, err := New(Config{Views: views, Routers: w.names, Interval: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	for round, replace := range []bool{false, false, true} {
		recs := w.records(3000, int64(1_700_000_000+600*round)*1e9)
		for i := range recs {
			if i%5 == 0 {
				recs[i].Source = record.SourceConntrack
			}
		}
		if replace {
			// a route replaced by one with the same path and other communities, in the middle
			// of the load (the enricher is asked again: no cache)
			bits, old, _ := table.Lookup(w.prefixes[0].Addr())
			p := netip.PrefixFrom(w.prefixes[0].Addr(), bits).Masked()
			for _, i := range []int{0, len(recs) - 1} { // one record of the prefix before, one after
				recs[i].Client, recs[i].Server, recs[i].Source = p.Addr(), w.servers[0], record.SourceReportV1
				recs[i].Class, recs[i].Time = 1, recs[0].Time
			}
			ens := make([]enrich.Enriched, len(recs))
			for i := range recs {
				if i == len(recs)/2 {
					table.Insert(p, &routing.Attrs{Path: old.Path, Communities: []uint32{42}})
				}
				w.e.Enrich(&recs[i], &ens[i])
			}
			a.AddBatch(recs, ens)
			got := rowLines(a.FlushAll(nil))
			table.Insert(p, old)
			// the oracle enriches once, after the change: only the path text matters to it
			want := rowLines(oracle(views, w.e, w.names, recs, time.Minute))
			if !slices.Equal(got, want) {
				t.Fatalf("round %d: aggregator and oracle differ (-aggregator +oracle):\n%s", round, lineDiff(strings.Join(got, "\n"), strings.Join(want, "\n")))
			}
			if len(a.views[0].index) == 0 {
				t.Errorf("round %d: two attribute sets with one path and the prefix view was not built to merge them", round)
			}
			continue
		}
		got := rowLines(aggregateAll(t, a, w.e, recs))
		want := rowLines(oracle(views, w.e, w.names, recs, time.Minute))
		if !slices.Equal(got, want) {
			t.Fatalf("round %d: aggregator and oracle differ (-aggregator +oracle):\n%s", round, lineDiff(strings.Join(got, "\n"), strings.Join(want, "\n")))
		}
		if len(a.views[0].index) != 0 {
			t.Errorf("round %d: the prefix view's table was built: want its rows read from the first stage", round)
		}
	}
}

// TestPrunePaths: a path not used in the last 64 flushes is forgotten (with its text's entry,
// when it was that text's canonical set), one still used is kept, and a forgotten path used
// again gets its text back.
func TestPrunePaths(t *testing.T) {
	p := netip.MustParsePrefix("192.0.2.0/24")
	old := &routing.Attrs{Path: []routing.Segment{seq(1, 2)}}
	live := &routing.Attrs{Path: []routing.Segment{seq(3, 4)}}
	ag, err := New(Config{Views: []ViewConfig{{Name: "prefix", Dimensions: []string{DimPrefix}}}, Routers: []string{"r"}})
	if err != nil {
		t.Fatal(err)
	}
	r := record.Record{Time: 60e9, Requests: 1, BytesOut: 10}
	addOne(ag, &r, &enrich.Enriched{Prefix: p, Attrs: old})
	for i := range 130 {
		r.Time = int64(i+2) * 60e9
		addOne(ag, &r, &enrich.Enriched{Prefix: p, Attrs: live})
		ag.FlushAll(nil)
	}
	if ag.paths.get(old) != nil {
		t.Error("a path unused for 130 flushes is still held")
	}
	if _, ok := ag.byText["1 2"]; ok {
		t.Error("the text of a forgotten path still names its set")
	}
	if ag.paths.get(live) == nil || ag.byText["3 4"] != live {
		t.Error("a path used at every flush was forgotten")
	}
	addOne(ag, &r, &enrich.Enriched{Prefix: p, Attrs: old})
	if rows := ag.FlushAll(nil); len(rows) != 1 || rows[0].Dims.Path != "1 2" {
		t.Fatalf("rows after the forgotten path's return = %v, want one row with path 1 2", rowLines(rows))
	}
}
