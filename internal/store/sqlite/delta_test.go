package sqlite

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/netledger/netledger/internal/record"
	"github.com/netledger/netledger/internal/store"
)

// tableCounts returns the rows of the store's tables and the blobs no pack refers to.
func tableCounts(t testing.TB, s *Store) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, q := range []struct{ name, sql string }{
		{"packs", `SELECT COUNT(*) FROM packs`},
		{"blobs", `SELECT COUNT(*) FROM blobs`},
		{"dirty", `SELECT COUNT(*) FROM dirty`},
		{"series packs", `SELECT COUNT(*) FROM series_packs`},
		{"orphan blobs", `SELECT COUNT(*) FROM blobs WHERE NOT EXISTS (SELECT 1 FROM packs WHERE data = blobs.id)
			AND NOT EXISTS (SELECT 1 FROM packs WHERE dims = blobs.id) AND NOT EXISTS (SELECT 1 FROM series_packs WHERE dims = blobs.id)`},
		{"multi-pack intervals", `SELECT COUNT(*) FROM (SELECT 1 FROM packs GROUP BY level, view, start HAVING COUNT(*) > 1)`},
	} {
		var n int
		if err := s.r.QueryRow(q.sql).Scan(&n); err != nil {
			t.Fatal(err)
		}
		out[q.name] = n
	}
	return out
}

// TestDeltaPacksSummed commits small batches into the intervals under way (the same hour,
// day and week, fewer than maxDeltas commits per interval, so nothing is compacted): every
// level holds several packs per interval, and queries and stored points are their sums.
func TestDeltaPacksSummed(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	s, _ := openTest(t)
	var rows []record.Row
	for c := range maxDeltas - 2 {
		batch := randRows(rng, 40, 1)
		for i := range batch { // one base interval per commit, all in the last hour of the day
			batch[i].Start = t0.Add(23*time.Hour + time.Duration(c)*time.Minute)
		}
		commitAll(t, s, batch, len(batch))
		rows = append(rows, batch...)
	}
	n := tableCounts(t, s)
	if n["multi-pack intervals"] < 3*len(views) || n["dirty"] != n["multi-pack intervals"] {
		t.Fatalf("%v: want the hour, day and week of each view in several packs, all dirty", n)
	}
	for l := levelHour; l < packLevels; l++ {
		var packs int
		s.r.QueryRow(`SELECT COUNT(*) FROM packs WHERE level = ? AND view = 'prefix'`, l).Scan(&packs)
		if packs < 2 {
			t.Fatalf("level %d: %d packs, want several", l, packs)
		}
	}
	checkPoints(t, s, rows)
	checkQueries(t, s, rng, rows, 40, func() store.Query { // whole days and weeks, from the packs of the hour under way
		q := randQuery(rng, 1)
		q.From, q.To = t0.Add(-time.Duration(rng.IntN(3))*24*time.Hour), t0.Add(time.Duration(1+rng.IntN(8))*24*time.Hour)
		return q
	}, []time.Duration{time.Minute, time.Hour, 24 * time.Hour})
}

var errInjected = errors.New("injected")

// openFaulty opens a test store whose commits fail after their rows (errInjected) while *fail.
func openFaulty(t *testing.T) (*Store, Config, *bool) {
	fail := new(bool)
	s, cfg := openTest(t, WithCommitFault(func(store.Batch) error {
		if *fail {
			return errInjected
		}
		return nil
	}))
	return s, cfg, fail
}

// checkPoints compares the stored points of every level with the rows' sums (each row counts
// at its own level and the coarser ones).
func checkPoints(t *testing.T, s *Store, rows []record.Row) {
	t.Helper()
	keys := storedSeries(t, s)
	for l := range packLevels {
		want := map[string]record.Metrics{}
		for _, r := range rows {
			if own, _ := levelOf(r.Resolution); r.Metrics.Zero() || own > l {
				continue
			}
			start := r.Start.Unix()
			if l > levelBase {
				start = floorTo(start, packSeconds(l))
			}
			k := fmt.Sprint(start, seriesKey{r.View, s.collector, r.Dims})
			m := want[k]
			m.Add(&r.Metrics)
			want[k] = m
		}
		got := map[string]record.Metrics{}
		for k, m := range storedPoints(t, s, l) {
			got[fmt.Sprint(k.start, keys[k.sid])] = m
		}
		if len(got) != len(want) {
			t.Fatalf("level %d: %d points, want %d", l, len(got), len(want))
		}
		for k, w := range want {
			if got[k] != w {
				t.Fatalf("level %d, point %s: %+v, want %+v", l, k, got[k], w)
			}
		}
	}
}

// TestCompactionEqualsSum: the intervals' delta packs, compacted by the write that finds them
// over or by their number, hold the same points as before, one pack per interval, with no
// blob left behind.
func TestCompactionEqualsSum(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 24))
	s, _ := openTest(t)
	var rows []record.Row
	for c := range maxDeltas + 3 { // the hour under way passes maxDeltas packs
		batch := randRows(rng, 30, 1)
		for i := range batch {
			batch[i].Start = t0.Add(time.Duration(c) * time.Minute)
		}
		commitAll(t, s, batch, len(batch))
		rows = append(rows, batch...)
	}
	before := dump(t, s)
	n := tableCounts(t, s)
	if n["multi-pack intervals"] == 0 || n["orphan blobs"] != 0 {
		t.Fatalf("%v: want intervals in several packs, no orphan blobs", n)
	}
	var hourPacks int
	s.r.QueryRow(`SELECT COUNT(*) FROM packs WHERE level = ? AND view = 'prefix'`, levelHour).Scan(&hourPacks)
	if hourPacks >= maxDeltas || hourPacks < 2 {
		t.Fatalf("%d packs of the hour: compaction at %d should have merged them, and 3 more commits added", hourPacks, maxDeltas)
	}
	// A row of the next week: every interval written before is over and compacted.
	late := row("prefix", t0.Add(8*24*time.Hour), "203.0.113.0/24", 1)
	commitAll(t, s, []record.Row{late}, 1)
	rows = append(rows, late)
	n = tableCounts(t, s)
	if n["multi-pack intervals"] != 0 || n["dirty"] != 0 || n["orphan blobs"] != 0 {
		t.Fatalf("after the intervals are over: %v", n)
	}
	after := dump(t, s)
	lateOnly := dump1(t, s, late)
	after = slices.DeleteFunc(after, func(p string) bool { return slices.Contains(lateOnly, p) })
	if !slices.Equal(before, after) {
		t.Fatalf("compaction changed the points (first difference %v)", firstDiff(before, after))
	}
	checkPoints(t, s, rows)
}

// dump1 returns the dump lines of a store holding only r.
func dump1(t *testing.T, s *Store, r record.Row) []string {
	one, _ := openTest(t)
	one.collector = s.collector
	commitAll(t, one, []record.Row{r}, 1)
	return dump(t, one)
}

// TestFailedWriteLeavesNothing: a commit that fails after its rows are written — new series,
// delta packs, compactions of intervals that are over — leaves every table and the series
// index as they were; retried, it lands once.
func TestFailedWriteLeavesNothing(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(25, 26))
	s, cfg, fail := openFaulty(t)
	var rows []record.Row
	for c := range 5 {
		batch := randRows(rng, 50, 1)
		for i := range batch {
			batch[i].Start = t0.Add(time.Duration(c) * time.Minute)
		}
		commitAll(t, s, batch, len(batch))
		rows = append(rows, batch...)
	}
	before, counts, index := dump(t, s), tableCounts(t, s), s.keys.len()
	next := randRows(rng, 200, 3) // new series, later intervals: compacts the hours above
	*fail = true
	if err := s.Commit(ctx, store.Batch{Consumer: "accounting", Position: store.Position{Segment: 99}, Rows: next}); !errors.Is(err, errInjected) {
		t.Fatalf("commit with a fault: %v", err)
	}
	*fail = false
	if after := dump(t, s); !slices.Equal(before, after) {
		t.Fatalf("points changed by a failed commit (first difference %v)", firstDiff(before, after))
	}
	if c := tableCounts(t, s); !maps.Equal(c, counts) || s.keys.len() != index || s.index.len() != index-1 {
		t.Fatalf("after a failed commit: %v, index %d/%d; before %v, index %d", c, s.keys.len(), s.index.len(), counts, index)
	}
	if p, _ := s.Position(ctx, "accounting"); p.Segment == 99 {
		t.Fatal("position of the failed commit saved")
	}
	commitAll(t, s, next, len(next))
	rows = append(rows, next...)
	checkPoints(t, s, rows)
	s.Close()
	s2, err := Open(ctx, cfg) // the index loaded again agrees
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	commitAll(t, s2, next[:10], 10)
	rows = append(rows, next[:10]...)
	checkPoints(t, s2, rows)
}

// TestMigrateDeltaPacks builds a store of schema 4 (series and point tables) holding random
// rows at the base interval and their hourly and daily roll-ups, as the old writer stored them,
// opens it (migration 5 converts it into packs) and checks the points of every level, queries
// against the naive sums, and that new commits add to the old series.
func TestMigrateDeltaPacks(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(27, 28))
	db, cfg := oldDatabase(t, 4)
	tx, err := db.Begin() // one transaction: the inserts below are not synced one by one
	if err != nil {
		t.Fatal(err)
	}
	const days = 10
	rows := randRows(rng, 3000, days)
	ids := map[seriesKey]int64{}
	type pk struct {
		table      string
		start, sid int64
	}
	points := map[pk]*record.Metrics{}
	res := map[pk]int64{}
	for _, r := range rows {
		if r.Metrics.Zero() {
			continue
		}
		k := seriesKey{r.View, "c1", r.Dims}
		id, ok := ids[k]
		if !ok {
			id = int64(2*len(ids) + 1) // gaps between the old ids
			ids[k] = id
			d := &r.Dims
			if _, err := tx.Exec(`INSERT INTO series (id, `+seriesColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				id, r.View, "c1", d.Router, d.Class, encodePrefix(d.Prefix), d.Path, d.PeerAS, d.OriginAS, d.ASN,
				d.Country, d.Region, d.Proto, encodeAddr(d.SrcGroup), encodeAddr(d.DstGroup), d.Port); err != nil {
				t.Fatal(err)
			}
		}
		start := r.Start.Unix()
		for _, p := range []pk{{"points_base", start, id}, {"points_hour", floorTo(start, 3600), id}, {"points_day", floorTo(start, 86400), id}} {
			if points[p] == nil {
				points[p] = &record.Metrics{}
			}
			points[p].Add(&r.Metrics)
			res[p] = 60
		}
	}
	for p, m := range points {
		args := []any{p.start, p.sid}
		cols := "start, sid, "
		if p.table == "points_base" {
			args, cols = append(args, res[p]), cols+"res, "
		}
		args = append(args, int64(m.Requests), int64(m.Bytes), int64(m.BytesIn), int64(m.Packets), int64(m.PacketsIn),
			int64(m.Retransmits), int64(m.Duration), int64(m.RTTSum), int64(m.RTTCount), int64(m.Conns), int64(m.Open))
		marks := "?" + strings.Repeat(", ?", len(args)-1)
		if _, err := tx.Exec(`INSERT INTO `+p.table+` (`+cols+metricColumns+`) VALUES (`+marks+`)`, args...); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s, err := Open(ctx, cfg, WithClock(func() time.Time { return t0.Add(days * 24 * time.Hour) }))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v, _ := s.SchemaVersion(ctx); v < 5 {
		t.Fatalf("schema version %d after Open", v)
	}
	checkPoints(t, s, rows)
	checkQueries(t, s, rng, rows, 60, func() store.Query { return randQuery(rng, days) }, []time.Duration{time.Hour, 24 * time.Hour})
	// The old series keep their ids: new rows of them add to their points.
	more := slices.Clone(rows[:500])
	commitAll(t, s, more, 250)
	rows = append(rows, more...)
	checkPoints(t, s, rows)
	stored := storedSeries(t, s)
	for k, id := range ids {
		if stored[id] != k {
			t.Fatalf("series %d: %+v after the migration, want %+v", id, stored[id], k)
		}
	}
	if n := tableCounts(t, s); n["orphan blobs"] != 0 {
		t.Fatalf("%v", n)
	}
	// New series go to a series pack of version 2 (migration 0006: its dims in a blob) beside
	// the migrated ones of version 1; a store opened again reads both.
	fresh := randRows(rng, 300, days)
	for i := range fresh {
		fresh[i].Dims.Port = 8000 + int32(i)
	}
	commitAll(t, s, fresh, len(fresh))
	rows = append(rows, fresh...)
	var v1, v2 int
	s.r.QueryRow(`SELECT SUM(dims IS NULL), SUM(dims IS NOT NULL) FROM series_packs`).Scan(&v1, &v2)
	if v1 == 0 || v2 != 1 {
		t.Fatalf("%d series packs of version 1, %d of version 2; want some and 1", v1, v2)
	}
	s.Close()
	s2, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	commitAll(t, s2, fresh[:50], 50)
	rows = append(rows, fresh[:50]...)
	checkPoints(t, s2, rows)
	if n := tableCounts(t, s2); n["orphan blobs"] != 0 || n["series packs"] != v1+v2 {
		t.Fatalf("%v", n)
	}
}
