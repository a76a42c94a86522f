package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/netledger/netledger/internal/record"
	"github.com/netledger/netledger/internal/store"
)

var (
	prefixPool = []netip.Prefix{{}, netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("198.51.100.0/22"),
		netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32"), netip.MustParsePrefix("2001:db8:1::/48"),
		netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0"), netip.MustParsePrefix("192.0.2.128/25")}
	addrPool = []netip.Addr{{}, netip.MustParseAddr("10.1.0.0"), netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("::ffff:10.1.0.0")}
	views    = []string{"prefix", "country", "as_on_path"}
	bys      = []string{"asn", "origin", "peer", "path-asn", "country", "region", "prefix", "router", "class", "proto", "port", "src-group", "dst-group", "path"}
	metricsN = []string{"bytes", "requests", "packets", "retransmit-rate", "rtt"}
)

func pick[T any](rng *rand.Rand, s []T) T { return s[rng.IntN(len(s))] }

// randRows returns n random one-minute rows over days days from t0.
func randRows(rng *rand.Rand, n, days int) []record.Row {
	rows := make([]record.Row, n)
	for i := range rows {
		r := &rows[i]
		r.View = pick(rng, views)
		r.Start = t0.Add(time.Duration(rng.IntN(days*1440)) * time.Minute)
		r.Resolution = time.Minute
		r.Dims = record.Dims{
			Router: pick(rng, []string{"r1", "r2", "unknown"}), Class: pick(rng, []string{"web", "video", ""}),
			Prefix: pick(rng, prefixPool), Path: pick(rng, []string{"", "64500 64501", "64500 {3,4}"}),
			PeerAS: pick(rng, []uint32{0, 64500, 64501}), OriginAS: pick(rng, []uint32{64501, 4200000000}),
			ASN: pick(rng, []uint32{64500, 64501, 3}), Country: pick(rng, []string{"DE", "US", ""}),
			Region: pick(rng, []string{"EU", "NA", ""}), Proto: pick(rng, []uint8{6, 17}), Port: pick(rng, []int32{443, -1}),
			SrcGroup: pick(rng, addrPool), DstGroup: pick(rng, addrPool),
		}
		if rng.IntN(20) > 0 {
			r.Metrics = record.Metrics{Requests: rng.Uint64N(5), Bytes: rng.Uint64N(1e6), BytesIn: rng.Uint64N(1e3),
				Packets: rng.Uint64N(100), PacketsIn: rng.Uint64N(100), Retransmits: rng.Uint64N(5), Duration: rng.Uint64N(1e4),
				RTTSum: rng.Uint64N(1e5), RTTCount: rng.Uint64N(3), Conns: rng.Uint64N(2), Open: rng.Uint64N(2)}
		}
	}
	return rows
}

// byValue is the oracle's own extraction of a group-by value.
func byValue(by string, d record.Dims) record.Dims {
	var g record.Dims
	switch by {
	case "asn", "path-asn":
		g.ASN = d.ASN
	case "origin":
		g.OriginAS = d.OriginAS
	case "peer":
		g.PeerAS = d.PeerAS
	case "country":
		g.Country = d.Country
	case "region":
		g.Region = d.Region
	case "prefix":
		g.Prefix = d.Prefix
	case "router":
		g.Router = d.Router
	case "class":
		g.Class = d.Class
	case "path":
		g.Path = d.Path
	case "proto":
		g.Proto = d.Proto
	case "port":
		g.Port = d.Port
	case "src-group":
		g.SrcGroup = d.SrcGroup
	case "dst-group":
		g.DstGroup = d.DstGroup
	}
	return g
}

func matches(q store.Query, r *record.Row) bool {
	return r.View == q.View && !r.Start.Before(q.From) && r.Start.Before(q.To) && !r.Metrics.Zero() &&
		(q.Router == "" || r.Dims.Router == q.Router) && (q.Class == "" || r.Dims.Class == q.Class) &&
		(q.Country == "" || r.Dims.Country == q.Country)
}

func oracleTop(rows []record.Row, q store.Query) []store.Result {
	groups := map[record.Dims]*record.Metrics{}
	for i := range rows {
		if !matches(q, &rows[i]) {
			continue
		}
		g := byValue(q.By, rows[i].Dims)
		if groups[g] == nil {
			groups[g] = &record.Metrics{}
		}
		groups[g].Add(&rows[i].Metrics)
	}
	var out []store.Result
	for d, m := range groups {
		out = append(out, store.Result{Key: keyText(q.By, &d), Dims: d, Metrics: *m})
	}
	value, _ := metricValue(cmp.Or(q.Metric, "bytes"))
	slices.SortFunc(out, func(a, b store.Result) int {
		return cmp.Or(cmp.Compare(value(&b.Metrics), value(&a.Metrics)), cmp.Compare(a.Key, b.Key))
	})
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return out
}

func oracleSeries(rows []record.Row, q store.Query) []store.Result {
	var keep map[record.Dims]bool
	if q.Limit > 0 {
		keep = map[record.Dims]bool{}
		for _, r := range oracleTop(rows, q) {
			keep[r.Dims] = true
		}
	}
	type key struct {
		start int64
		d     record.Dims
	}
	points := map[key]*record.Metrics{}
	step := int64(q.Step / time.Second)
	for i := range rows {
		if !matches(q, &rows[i]) {
			continue
		}
		g := byValue(q.By, rows[i].Dims)
		if keep != nil && !keep[g] {
			continue
		}
		s := rows[i].Start.Unix()
		k := key{s - s%step, g}
		if points[k] == nil {
			points[k] = &record.Metrics{}
		}
		points[k].Add(&rows[i].Metrics)
	}
	var out []store.Result
	for k, m := range points {
		out = append(out, store.Result{Key: keyText(q.By, &k.d), Dims: k.d, Start: time.Unix(k.start, 0).UTC(), Metrics: *m})
	}
	slices.SortFunc(out, func(a, b store.Result) int {
		return cmp.Or(a.Start.Compare(b.Start), cmp.Compare(a.Key, b.Key))
	})
	return out
}

func sameResults(t *testing.T, what string, got, want []store.Result) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d results, want %d\ngot  %+v\nwant %+v", what, len(got), len(want), got, want)
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.Key != w.Key || g.Dims != w.Dims || !g.Start.Equal(w.Start) || g.Metrics != w.Metrics {
			t.Fatalf("%s: result %d\ngot  %+v\nwant %+v", what, i, g, w)
		}
	}
}

func commitAll(t testing.TB, s *Store, rows []record.Row, batch int) {
	t.Helper()
	for i := 0; i < len(rows); i += batch {
		b := store.Batch{Consumer: "accounting", Position: store.Position{Segment: uint64(i), Offset: 1}, Rows: rows[i:min(i+batch, len(rows))]}
		if err := s.Commit(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
}

func randQuery(rng *rand.Rand, days int) store.Query {
	q := store.Query{View: pick(rng, views), By: pick(rng, bys), Metric: pick(rng, metricsN)}
	unit := pick(rng, []time.Duration{time.Minute, time.Hour, 24 * time.Hour})
	q.From = t0.Add(time.Duration(rng.IntN(days*1440)) * time.Minute).Truncate(unit).Add(-time.Duration(rng.IntN(2)) * time.Minute)
	q.To = q.From.Add(time.Duration(rng.IntN(days*1440)) * time.Minute).Truncate(pick(rng, []time.Duration{time.Minute, time.Hour}))
	if rng.IntN(3) == 0 {
		q.Router = pick(rng, []string{"r1", "r2"})
	}
	if rng.IntN(3) == 0 {
		q.Class = pick(rng, []string{"web", "video"})
	}
	if rng.IntN(4) == 0 {
		q.Country = "DE"
	}
	q.Limit = pick(rng, []int{0, 0, 1, 3})
	return q
}

func TestTopSeriesOracle(t *testing.T) {
	t.Run("4 days", func(t *testing.T) { testOracle(t, 4, 3000, 150) })
	t.Run("17 days", func(t *testing.T) { testOracle(t, 17, 2000, 60) })
}

func testOracle(t *testing.T, days, n, queries int) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, uint64(days)))
	s, _ := openTest(t, WithClock(func() time.Time { return t0.Add(time.Duration(days) * 24 * time.Hour) }))
	rows := randRows(rng, n, days)
	commitAll(t, s, rows, 700)
	var packs, weeks, dirty int
	s.r.QueryRow(`SELECT COUNT(*) FROM packs`).Scan(&packs)
	s.r.QueryRow(`SELECT COUNT(*) FROM packs WHERE level = ?`, levelWeek).Scan(&weeks)
	s.r.QueryRow(`SELECT COUNT(*) FROM dirty`).Scan(&dirty)
	if packs < 50 || dirty == 0 || (days > 14 && weeks == 0) {
		t.Fatalf("%d packs (%d weeks), %d dirty intervals: the test should read all", packs, weeks, dirty)
	}
	for i := range queries {
		q := randQuery(rng, days)
		got, err := s.Top(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		sameResults(t, fmt.Sprintf("top %d %+v", i, q), got, oracleTop(rows, q))

		q.Step = pick(rng, []time.Duration{0, time.Minute, 5 * time.Minute, time.Hour, 3 * time.Hour, 24 * time.Hour, 48 * time.Hour})
		got, err = s.Series(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if q.Step == 0 {
			q.Step = s.chooseStep(q.From, q.To)
		}
		sameResults(t, fmt.Sprintf("series %d %+v", i, q), got, oracleSeries(rows, q))
	}
}

// dump returns every point of the store as text (the packs of an interval summed per series),
// independent of series ids.
func dump(t *testing.T, s *Store) []string {
	t.Helper()
	keys := storedSeries(t, s)
	var out []string
	for l := range packLevels {
		for k, m := range storedPoints(t, s, l) {
			sk, ok := keys[k.sid]
			if !ok || sk.view != k.view {
				t.Fatalf("point %+v of series %+v", k, sk)
			}
			out = append(out, fmt.Sprint(l, k.start, sk, m))
		}
	}
	slices.Sort(out)
	return out
}

// storedSeries returns the stored series' keys by id.
func storedSeries(t testing.TB, s *Store) map[int64]seriesKey {
	t.Helper()
	rows, err := s.r.Query(`SELECT s.first, s.n, s.data, b.data FROM series_packs s LEFT JOIN blobs b ON b.id = s.dims`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[int64]seriesKey{}
	for rows.Next() {
		var first, n int64
		var data, dims []byte
		if err := rows.Scan(&first, &n, &data, &dims); err != nil {
			t.Fatal(err)
		}
		keys, err := decodeSeries(data, dims)
		if err != nil || int64(len(keys)) != n {
			t.Fatalf("series pack %d: %d keys, want %d, %v", first, len(keys), n, err)
		}
		for i, k := range keys {
			out[first+int64(i)] = k
		}
	}
	return out
}

// storedPoints returns the points of a level.
func storedPoints(t testing.TB, s *Store, level int) map[viewPoint]record.Metrics {
	t.Helper()
	ps, err := readPoints(context.Background(), s.r, level)
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

func TestRollupsEqualBase(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	s, _ := openTest(t)
	commitAll(t, s, randRows(rng, 5000, 3), 512)
	for l := levelHour; l < packLevels; l++ {
		want := map[viewPoint]record.Metrics{}
		for k, m := range storedPoints(t, s, l-1) {
			k.level, k.start = l, floorTo(k.start, packSeconds(l))
			w := want[k]
			w.Add(&m)
			want[k] = w
		}
		got := storedPoints(t, s, l)
		if len(got) == 0 || !maps.Equal(got, want) {
			t.Errorf("level %d: %d points, %d summed from the level below", l, len(got), len(want))
		}
	}
}

func TestIdempotentKeys(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(5, 6))
	s, cfg := openTest(t)
	rows := randRows(rng, 2000, 2)
	commitAll(t, s, rows, 2000)
	keys := map[seriesKey]bool{}
	points := map[string]bool{}
	for _, r := range rows {
		if !r.Metrics.Zero() {
			keys[seriesKey{r.View, "c1", r.Dims}] = true
			points[fmt.Sprint(r.View, r.Start.Unix(), r.Dims)] = true
		}
	}
	if n := len(storedSeries(t, s)); n != len(keys) {
		t.Fatalf("%d series, want %d", n, len(keys))
	}
	if n := len(storedPoints(t, s, levelBase)); n != len(points) {
		t.Fatalf("%d base points, want %d", n, len(points))
	}
	before := dump(t, s)
	// Again, and from a new process (no series cache): same keys, sums doubled.
	s.Close()
	s2, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	commitAll(t, s2, rows, 2000)
	if n := len(storedSeries(t, s2)); n != len(keys) {
		t.Fatalf("%d series after a second commit, want %d", n, len(keys))
	}
	if n := len(storedPoints(t, s2, levelBase)); n != len(points) {
		t.Fatalf("%d base points after a second commit, want %d", n, len(points))
	}
	if after := dump(t, s2); len(after) != len(before) {
		t.Fatalf("%d points, want %d", len(after), len(before))
	}
	q := store.Query{View: "prefix", By: "router", From: t0, To: t0.Add(48 * time.Hour)}
	got, err := s2.Top(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	want := oracleTop(append(slices.Clone(rows), rows...), q)
	sameResults(t, "doubled", got, want)
}

func TestReplace(t *testing.T) {
	ctx := context.Background()
	for seed := range uint64(4) {
		rng := rand.New(rand.NewPCG(seed, 7))
		a, _ := openTest(t)
		b, _ := openTest(t)
		old := randRows(rng, 1500, 3)
		imported := randRows(rng, 200, 3)
		for i := range imported {
			imported[i].Start = imported[i].Start.Truncate(time.Hour)
			imported[i].Resolution = time.Hour
		}
		replay := randRows(rng, 800, 3)
		from := t0.Add(time.Duration(rng.IntN(3*1440)) * time.Minute)
		to := from.Add(time.Duration(rng.IntN(2*1440)) * time.Minute)
		var kept []record.Row
		for _, r := range old {
			if r.Start.Before(from) || !r.Start.Before(to) {
				kept = append(kept, r)
			}
		}
		commitAll(t, a, old, 500)
		if err := a.Import(ctx, "f1", imported); err != nil {
			t.Fatal(err)
		}
		pos := store.Position{Segment: 9, Offset: 42}
		if err := a.Replace(ctx, from, to, store.Batch{Consumer: "accounting", Position: pos, Rows: replay}); err != nil {
			t.Fatal(err)
		}
		commitAll(t, b, kept, 500)
		if err := b.Import(ctx, "f1", imported); err != nil {
			t.Fatal(err)
		}
		commitAll(t, b, replay, 800)
		da, db := dump(t, a), dump(t, b)
		if !slices.Equal(da, db) {
			t.Fatalf("seed %d [%v, %v): %d points after Replace, %d expected (first difference %v)", seed, from, to, len(da), len(db), firstDiff(da, db))
		}
		if p, _ := a.Position(ctx, "accounting"); p != pos {
			t.Fatalf("position %v, want %v", p, pos)
		}
	}
}

func firstDiff(a, b []string) string {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return a[i] + " ≠ " + b[i]
		}
	}
	return "(length)"
}

func TestCover(t *testing.T) {
	h := func(s string) int64 { tm, _ := time.Parse("2006-01-02 15:04", s); return tm.Unix() }
	all := []int{levelDay, levelHour, levelBase}
	for _, c := range []struct {
		from, to string
		lv       []int
		want     []part
	}{
		{"2026-11-01 00:00", "2026-11-03 00:00", all, []part{{levelDay, h("2026-11-01 00:00"), h("2026-11-03 00:00")}}},
		{"2026-11-01 00:00", "2026-11-01 05:00", all, []part{{levelHour, h("2026-11-01 00:00"), h("2026-11-01 05:00")}}},
		{"2026-11-01 00:07", "2026-11-01 00:50", all, []part{{levelBase, h("2026-11-01 00:07"), h("2026-11-01 00:50")}}},
		{"2026-10-31 22:30", "2026-11-03 01:15", all, []part{
			{levelBase, h("2026-10-31 22:30"), h("2026-10-31 23:00")},
			{levelHour, h("2026-10-31 23:00"), h("2026-11-01 00:00")},
			{levelDay, h("2026-11-01 00:00"), h("2026-11-03 00:00")},
			{levelHour, h("2026-11-03 00:00"), h("2026-11-03 01:00")},
			{levelBase, h("2026-11-03 01:00"), h("2026-11-03 01:15")},
		}},
		{"2026-10-31 22:30", "2026-11-03 01:15", []int{levelHour, levelBase}, []part{
			{levelBase, h("2026-10-31 22:30"), h("2026-10-31 23:00")},
			{levelHour, h("2026-10-31 23:00"), h("2026-11-03 01:00")},
			{levelBase, h("2026-11-03 01:00"), h("2026-11-03 01:15")},
		}},
		{"2026-11-01 05:00", "2026-11-01 05:00", all, nil},
	} {
		if got := cover(h(c.from), h(c.to), c.lv); !slices.Equal(got, c.want) {
			t.Errorf("cover(%s, %s) = %v, want %v", c.from, c.to, got, c.want)
		}
	}
}

func TestResolutionReported(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t)
	commitAll(t, s, []record.Row{row("prefix", t0.Add(30*time.Minute), "203.0.113.0/24", 10)}, 1)
	for _, c := range []struct {
		from, to time.Time
		want     time.Duration
	}{
		{t0, t0.Add(24 * time.Hour), 24 * time.Hour},
		{t0, t0.Add(time.Hour), time.Hour},
		{t0.Add(29 * time.Minute), t0.Add(31 * time.Minute), time.Minute},
	} {
		got, err := s.Top(ctx, store.Query{View: "prefix", By: "prefix", From: c.from, To: c.to})
		if err != nil || len(got) != 1 || got[0].Resolution != c.want || got[0].Metrics.Bytes != 10 {
			t.Errorf("[%v, %v): %+v %v, want one result from %v", c.from, c.to, got, err, c.want)
		}
	}
}

func TestKeyText(t *testing.T) {
	for _, c := range []struct {
		by   string
		d    record.Dims
		want string
	}{
		{"prefix", record.Dims{Prefix: netip.MustParsePrefix("203.0.113.0/24")}, "203.0.113.0/24"},
		{"prefix", record.Dims{Prefix: netip.MustParsePrefix("2001:db8::/32")}, "2001:db8::/32"},
		{"prefix", record.Dims{}, "unrouted"},
		{"asn", record.Dims{ASN: 64500}, "AS64500"},
		{"origin", record.Dims{OriginAS: 4200000000}, "AS4200000000"},
		{"peer", record.Dims{PeerAS: 3}, "AS3"},
		{"country", record.Dims{Country: "DE"}, "DE"},
		{"country", record.Dims{}, "unknown"},
		{"port", record.Dims{Port: -1}, "other"},
		{"src-group", record.Dims{SrcGroup: netip.MustParseAddr("::ffff:10.0.0.0")}, "::ffff:10.0.0.0"},
	} {
		if got := keyText(c.by, &c.d); got != c.want {
			t.Errorf("keyText(%s, %+v) = %q, want %q", c.by, c.d, got, c.want)
		}
	}
	for _, p := range prefixPool {
		got, err := decodePrefix(encodePrefix(p))
		if err != nil || got != p {
			t.Errorf("prefix %v round trip: %v %v", p, got, err)
		}
	}
	for _, a := range addrPool {
		got, err := decodeAddr(encodeAddr(a))
		if err != nil || got != a {
			t.Errorf("address %v round trip: %v %v", a, got, err)
		}
	}
}

// oldDatabase returns a new database of schema version (collector c1), open for writes.
func oldDatabase(t *testing.T, version int) (*sql.DB, Config) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Path = filepath.Join(t.TempDir(), fmt.Sprintf("v%d.db", version))
	cfg.Collector = "c1"
	db, err := sql.Open("sqlite", dsn(cfg, false))
	if err != nil {
		t.Fatal(err)
	}
	if err := migrate(context.Background(), db, version); err != nil {
		t.Fatal(err)
	}
	return db, cfg
}

func TestMigrateOldDatabase(t *testing.T) {
	ctx := context.Background()
	db, cfg := oldDatabase(t, 1)
	for _, q := range []string{
		`INSERT INTO series VALUES (1, 'prefix', 'c1', 'r1', 'web', x'cb00710018', '', 0, 0, 0, 'DE', '', 0, x'', x'', 0)`,
		`INSERT INTO points_day VALUES (` + fmt.Sprint(t0.Unix()) + `, 1, 1, 500, 0, 0, 0, 0, 0, 0, 0, 0, 0)`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	var hasImports int
	db.QueryRow(`SELECT COUNT(*) FROM sqlite_master WHERE name = 'imports'`).Scan(&hasImports)
	db.Close()
	if hasImports != 0 {
		t.Fatal("version 1 already has the imports table")
	}
	s, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ms, _ := migrations()
	if v, err := s.SchemaVersion(ctx); err != nil || v != ms[len(ms)-1].version {
		t.Fatalf("schema version %d %v, want %d", v, err, ms[len(ms)-1].version)
	}
	got, err := s.Top(ctx, store.Query{View: "prefix", By: "prefix", From: t0, To: t0.Add(24 * time.Hour)})
	if err != nil || len(got) != 1 || got[0].Key != "203.0.113.0/24" || got[0].Metrics.Bytes != 500 {
		t.Fatalf("old row after migration: %+v %v", got, err)
	}
	// The series stored before the migration keeps its id: a new row of it adds to its points.
	if err := s.Commit(ctx, store.Batch{Rows: []record.Row{{View: "prefix", Start: t0, Resolution: 24 * time.Hour,
		Dims:    record.Dims{Router: "r1", Class: "web", Prefix: netip.MustParsePrefix("203.0.113.0/24"), Country: "DE"},
		Metrics: record.Metrics{Requests: 1, Bytes: 7}}}}); err != nil {
		t.Fatal(err)
	}
	days := storedPoints(t, s, levelDay)
	var n, bytes int
	for _, m := range days {
		n++
		bytes += int(m.Bytes)
	}
	if n != 1 || bytes != 507 {
		t.Fatalf("after a commit to the migrated series: %d series with points, %d bytes, want 1, 507", n, bytes)
	}
	if err := s.Import(ctx, "x", []record.Row{row("prefix", t0, "203.0.113.0/24", 1)}); err != nil {
		t.Fatal(err)
	}
	// A database from a newer netledger is refused.
	s.w.Exec(`INSERT INTO schema_migrations VALUES (9999, 'future', 0)`)
	s.Close()
	if _, err := Open(ctx, cfg); err == nil {
		t.Fatal("opened a database of a newer schema")
	}
}

func TestCommitFaultRollsBack(t *testing.T) {
	ctx := context.Background()
	fail := false
	injected := errors.New("injected crash")
	var seen int
	s, _ := openTest(t, WithCommitFault(func(b store.Batch) error {
		seen = len(b.Rows)
		if fail {
			return injected
		}
		return nil
	}))
	first := store.Batch{Consumer: "accounting", Position: store.Position{Segment: 1, Offset: 10},
		Rows: []record.Row{row("prefix", t0, "203.0.113.0/24", 100)}}
	if err := s.Commit(ctx, first); err != nil {
		t.Fatal(err)
	}
	before := dump(t, s)
	fail = true
	second := store.Batch{Consumer: "accounting", Position: store.Position{Segment: 2, Offset: 20},
		Rows: []record.Row{row("prefix", t0, "203.0.113.0/24", 5), row("prefix", t0, "198.51.100.0/22", 7)}}
	if err := s.Commit(ctx, second); !errors.Is(err, injected) {
		t.Fatalf("commit with fault: %v", err)
	}
	if seen != 2 {
		t.Fatalf("fault hook saw %d rows", seen)
	}
	if after := dump(t, s); !slices.Equal(before, after) {
		t.Fatalf("rows changed by a failed commit:\n%v\n%v", before, after)
	}
	if p, _ := s.Position(ctx, "accounting"); p != first.Position {
		t.Fatalf("position %v after a failed commit, want %v", p, first.Position)
	}
	if n := len(storedSeries(t, s)); n != 1 || s.keys.len() != 2 || s.index.len() != 1 {
		t.Fatalf("%d series (%d, %d in the index) after a failed commit", n, s.keys.len()-1, s.index.len())
	}
	// Resuming from the saved position commits the batch once.
	fail = false
	if err := s.Commit(ctx, second); err != nil {
		t.Fatal(err)
	}
	got, err := s.Top(ctx, store.Query{View: "prefix", By: "prefix", From: t0, To: t0.Add(time.Hour)})
	if err != nil || len(got) != 2 || got[0].Metrics.Bytes != 105 || got[1].Metrics.Bytes != 7 {
		t.Fatalf("after retry: %+v %v", got, err)
	}
}

func TestImportTwice(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t)
	rows := []record.Row{row("prefix", t0, "203.0.113.0/24", 100), row("prefix", t0.Add(time.Hour), "", 3)}
	rows[1].Resolution = time.Hour
	for range 2 {
		if err := s.Import(ctx, "sha256:abc", rows); err != nil {
			t.Fatal(err)
		}
	}
	if ok, err := s.Imported(ctx, "sha256:abc"); !ok || err != nil {
		t.Fatalf("Imported = %v %v", ok, err)
	}
	if ok, _ := s.Imported(ctx, "sha256:other"); ok {
		t.Fatal("unknown id imported")
	}
	got, err := s.Top(ctx, store.Query{View: "prefix", By: "prefix", From: t0, To: t0.Add(24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	sameResults(t, "import", got, oracleTop(rows, store.Query{View: "prefix", By: "prefix", From: t0, To: t0.Add(24 * time.Hour)}))
	if n := len(storedPoints(t, s, levelBase)); n != 1 {
		t.Fatalf("%d base points, want 1 (the hourly row has none)", n)
	}
}

func TestExpire(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t)
	now := t0.Add(10 * 24 * time.Hour)
	commitAll(t, s, []record.Row{row("prefix", t0, "203.0.113.0/24", 100), row("prefix", now.Add(-time.Hour), "203.0.113.0/24", 1)}, 2)
	if err := s.Expire(ctx, now); err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for l, name := range levelName {
		counts[name] = len(storedPoints(t, s, l))
	}
	if counts["base"] != 1 || counts["hour"] != 2 || counts["day"] != 2 || counts["week"] != 2 {
		t.Fatalf("after expiry: %v", counts)
	}
	got, _ := s.Top(ctx, store.Query{View: "prefix", By: "prefix", From: t0, To: t0.Add(time.Hour)})
	if len(got) != 1 || got[0].Metrics.Bytes != 100 || got[0].Resolution != time.Hour {
		t.Fatalf("hourly roll-up after base expiry: %+v", got)
	}
}

func TestConcurrentReaders(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t)
	const batches, perBatch, k = 40, 25, 1000
	rng := rand.New(rand.NewPCG(8, 9))
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		for i := range batches {
			rows := make([]record.Row, perBatch)
			for j := range rows {
				rows[j] = row("prefix", t0.Add(time.Duration(rng.IntN(26*60)-60)*time.Minute), pick(rng, prefixPool[1:]).String(), k/perBatch)
			}
			if err := s.Commit(ctx, store.Batch{Consumer: "accounting", Position: store.Position{Segment: uint64(i + 1)}, Rows: rows}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	q := store.Query{View: "prefix", By: "router", From: t0.Add(-90 * time.Minute), To: t0.Add(25 * time.Hour)}
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var last uint64
			reads := 0
			for {
				select {
				case <-done:
					if reads == 0 {
						t.Error("no read during the writes")
					}
					return
				default:
				}
				res, err := s.Top(ctx, q)
				if err != nil {
					t.Error(err)
					return
				}
				var total uint64
				for _, r := range res {
					total += r.Metrics.Bytes
				}
				if total%k != 0 || total < last {
					t.Errorf("read %d bytes after %d: not a whole number of batches", total, last)
					return
				}
				last = total
				if _, err := s.Position(ctx, "accounting"); err != nil {
					t.Error(err)
					return
				}
				reads++
			}
		}()
	}
	wg.Wait()
	res, _ := s.Top(ctx, q)
	if len(res) != 1 || res[0].Metrics.Bytes != batches*k {
		t.Fatalf("final %+v", res)
	}
}

// Run applies the retention when it starts (and every hour): serve needs no cron job.
func TestRunExpires(t *testing.T) {
	now := t0.Add(10 * 24 * time.Hour)
	s, _ := openTest(t, WithClock(func() time.Time { return now }))
	commitAll(t, s, []record.Row{row("prefix", t0, "203.0.113.0/24", 100), row("prefix", now.Add(-time.Hour), "203.0.113.0/24", 1)}, 2)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var n int
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if n = len(storedPoints(t, s, levelBase)); n == 1 {
			break
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	if n != 1 {
		t.Errorf("base points after Run = %d, want 1 (the 10-day-old one expired)", n)
	}
}

// TestSeriesPacks commits batches of many new series (and repeated keys, keys already stored
// and keys stored by a previous process), and checks each series is stored once and its points
// are its rows' sums.
func TestSeriesPacks(t *testing.T) {
	const seriesChunk = 256
	ctx := context.Background()
	s, cfg := openTest(t)
	rng := rand.New(rand.NewPCG(7, 7))
	rows := randRows(rng, 3*seriesChunk+17, 1)
	for i := range rows { // mostly distinct series
		rows[i].Dims.Port = int32(i % (2*seriesChunk + 5))
	}
	commitAll(t, s, rows[:seriesChunk+3], len(rows))
	commitAll(t, s, rows, len(rows)) // the first ones again: cached ids
	s.Close()
	s, err := Open(ctx, cfg) // no cache: the stored series come back from the insert
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	commitAll(t, s, rows, len(rows))
	want := map[seriesKey]uint64{}
	for i, r := range rows {
		if r.Metrics.Zero() {
			continue
		}
		n := uint64(2)
		if i < seriesChunk+3 {
			n = 3
		}
		want[seriesKey{r.View, s.collector, r.Dims}] += n * r.Metrics.Bytes
	}
	if n := len(storedSeries(t, s)); n != len(want) || n <= seriesChunk {
		t.Fatalf("%d series stored, want %d", n, len(want))
	}
	var packs int
	s.r.QueryRow(`SELECT COUNT(*) FROM series_packs`).Scan(&packs)
	if packs != 2 {
		t.Fatalf("%d series packs, want 2 (one per commit that added series)", packs)
	}
	// The index a new process loads (syncSeries) agrees with the stored points.
	s.index, s.maxSid = newSeriesIndex(), 0
	s.keys.truncate(1)
	bySid := map[int64]uint64{}
	for k, m := range storedPoints(t, s, levelBase) {
		bySid[k.sid] += m.Bytes
	}
	got := map[seriesKey]uint64{}
	err = s.write(ctx, func(tx *sql.Tx) error {
		if s.index.len() != len(want) {
			return fmt.Errorf("%d ids loaded, want %d", s.index.len(), len(want))
		}
		for k := range want {
			id, ok := s.index.lookup(&s.keys, &k)
			if !ok {
				return fmt.Errorf("series %v not loaded", k)
			}
			got[k] = bySid[id]
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for k, b := range want {
		if got[k] != b {
			t.Fatalf("series %v: %d bytes, want %d", k, got[k], b)
		}
	}
}

// TestTwoWriters commits through two stores on one file (serve and `netledger import` in two
// processes): each finds the series the other added, so every key is stored once.
func TestTwoWriters(t *testing.T) {
	ctx := context.Background()
	a, cfg := openTest(t)
	b, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	rows := []record.Row{row("prefix", t0, "203.0.113.0/24", 1), row("prefix", t0, "198.51.100.0/22", 2), row("prefix", t0, "10.0.0.0/8", 4)}
	for i, c := range []struct {
		s    *Store
		rows []record.Row
	}{{a, rows[:1]}, {b, rows[:2]}, {a, rows[1:]}, {b, rows}} {
		if err := c.s.Commit(ctx, store.Batch{Rows: c.rows}); err != nil {
			t.Fatalf("commit %d: %v", i, err)
		}
	}
	if n := len(storedSeries(t, a)); n != 3 {
		t.Fatalf("%d series, want 3", n)
	}
	got, err := a.Top(ctx, store.Query{View: "prefix", By: "prefix", From: t0, To: t0.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{"203.0.113.0/24": 3, "198.51.100.0/22": 6, "10.0.0.0/8": 8}
	if len(got) != len(want) {
		t.Fatalf("%d groups, want %d: %+v", len(got), len(want), got)
	}
	for _, r := range got {
		if r.Metrics.Bytes != want[r.Key] {
			t.Errorf("%s: %d bytes, want %d", r.Key, r.Metrics.Bytes, want[r.Key])
		}
	}
}

// TestRandomSplitsOracle commits random one-minute rows (some keys repeated) in batches of
// random sizes, reopening the store now and then (the series index is loaded again)
// and replaying one batch after a failed commit, and checks Top and Series against the naive
// in-memory sums of the rows.
func TestRandomSplitsOracle(t *testing.T) {
	ctx := context.Background()
	const days = 9
	rng := rand.New(rand.NewPCG(11, 12))
	now := t0.Add(days * 24 * time.Hour)
	fail := false
	opts := []Option{WithClock(func() time.Time { return now }), WithCommitFault(func(store.Batch) error {
		if fail {
			return errors.New("injected")
		}
		return nil
	})}
	s, cfg := openTest(t, opts...)
	rows := randRows(rng, 4000, days)
	for i := 1; i < len(rows); i++ {
		if rng.IntN(8) == 0 { // the same key again, in the same batch or the next: added
			j := max(0, i-1-rng.IntN(50))
			rows[i].View, rows[i].Start, rows[i].Dims = rows[j].View, rows[j].Start, rows[j].Dims
		}
	}
	for i := 0; i < len(rows); {
		j := min(len(rows), i+1+rng.IntN(600))
		b := store.Batch{Consumer: "accounting", Position: store.Position{Segment: uint64(i)}, Rows: rows[i:j]}
		if rng.IntN(5) == 0 { // a commit that fails after its rows: nothing of it stays
			fail = true
			if err := s.Commit(ctx, b); err == nil {
				t.Fatal("commit with a fault succeeded")
			}
			fail = false
		}
		if err := s.Commit(ctx, b); err != nil {
			t.Fatal(err)
		}
		if rng.IntN(4) == 0 {
			s.Close()
			var err error
			if s, err = Open(ctx, cfg, opts...); err != nil {
				t.Fatal(err)
			}
		}
		i = j
	}
	defer s.Close()
	checkQueries(t, s, rng, rows, 120, func() store.Query { return randQuery(rng, days) }, []time.Duration{time.Hour, 24 * time.Hour})
}

// checkQueries runs n random top and series queries (the series at one of steps) and compares
// them with the oracle's sums of rows.
func checkQueries(t *testing.T, s *Store, rng *rand.Rand, rows []record.Row, n int, query func() store.Query, steps []time.Duration) {
	t.Helper()
	ctx := context.Background()
	for i := range n {
		q := query()
		got, err := s.Top(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		sameResults(t, fmt.Sprintf("top %d %+v", i, q), got, oracleTop(rows, q))
		q.Step = pick(rng, steps)
		if got, err = s.Series(ctx, q); err != nil {
			t.Fatal(err)
		}
		sameResults(t, fmt.Sprintf("series %d %+v", i, q), got, oracleSeries(rows, q))
	}
}

// TestMigrateSeriesIndex opens a database of schema 3 (series with its 15-column UNIQUE
// index) holding series and points: migration 4 keeps every series under its id, drops the
// index, and the store adds to the old series instead of storing them again.
func TestMigrateSeriesIndex(t *testing.T) {
	ctx := context.Background()
	db, cfg := oldDatabase(t, 3)
	for _, q := range []string{
		`INSERT INTO series VALUES (7, 'prefix', 'c1', 'r1', 'web', x'cb00710018', '', 0, 0, 64500, '', '', 0, x'', x'', 0)`,
		`INSERT INTO series VALUES (9, 'prefix', 'c1', 'r1', 'web', x'c633640016', '', 0, 0, 64500, '', '', 0, x'', x'', 0)`,
		`INSERT INTO points_base VALUES (?1, 7, 60, 1, 100, 0, 2, 0, 0, 0, 0, 0, 0, 0)`,
		`INSERT INTO points_base VALUES (?1, 9, 60, 1, 200, 0, 2, 0, 0, 0, 0, 0, 0, 0)`,
	} {
		if _, err := db.Exec(q, t0.Unix()); err != nil {
			t.Fatal(err)
		}
	}
	var unique int
	db.QueryRow(`SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'series'`).Scan(&unique)
	db.Close()
	if unique != 1 {
		t.Fatalf("schema 3 has %d indexes on series, want its UNIQUE one", unique)
	}
	s, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var tables int
	s.r.QueryRow(`SELECT COUNT(*) FROM sqlite_master WHERE name IN ('series', 'points_base', 'points_hour', 'points_day')`).Scan(&tables)
	if tables != 0 {
		t.Errorf("%d of the old tables left after migration 5, want 0", tables)
	}
	// Commit the two old series and a new one: the new one takes the next id after 9.
	if err := s.Commit(ctx, store.Batch{Rows: []record.Row{row("prefix", t0, "203.0.113.0/24", 1),
		row("prefix", t0, "198.51.100.0/22", 2), row("prefix", t0, "10.0.0.0/8", 4)}}); err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for id, k := range storedSeries(t, s) {
		if k.view != "" { // not a filler of the gaps in the old ids
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []int64{7, 9, 10}) {
		t.Errorf("series ids %v, want [7 9 10]", ids)
	}
	got, err := s.Top(ctx, store.Query{View: "prefix", By: "prefix", From: t0, To: t0.Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{"203.0.113.0/24": 101, "198.51.100.0/22": 202, "10.0.0.0/8": 4}
	if len(got) != len(want) {
		t.Fatalf("%+v, want %v", got, want)
	}
	for _, r := range got {
		if r.Metrics.Bytes != want[r.Key] {
			t.Errorf("%s: %d bytes, want %d", r.Key, r.Metrics.Bytes, want[r.Key])
		}
	}
}
