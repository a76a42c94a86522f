package sqlite

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/netledger/netledger/internal/record"
	"github.com/netledger/netledger/internal/store"
)

// TestGroupsEqualSums checks the grouper against the naive sums: for batches shaped as the
// writers send them (one base interval, several in one hour, hours of one day, hourly and daily
// rows beside base rows, repeated keys, one-hour base intervals), every level's groups hold
// exactly the rows' sums per view, interval and series, in ascending series id; a group derived
// from a finer one (same) holds the same points, and one sharing its dims (sameDims) the same
// series.
func TestGroupsEqualSums(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 32))
	hourly := func(r *record.Row) { r.Resolution, r.Start = time.Hour, r.Start.Truncate(time.Hour) }
	daily := func(r *record.Row) { r.Resolution, r.Start = 24*time.Hour, r.Start.Truncate(24*time.Hour) }
	for _, tc := range []struct {
		name    string
		spread  time.Duration // the rows' starts: t0 + a random multiple of a minute below spread
		shape   func(i int, r *record.Row)
		derived bool // every coarser group is derived from one finer group
	}{
		{"one minute", time.Minute, nil, true},
		{"one hour of one-hour rows", time.Minute, func(_ int, r *record.Row) { hourly(r) }, true},
		{"minutes of one hour", time.Hour, nil, false},
		{"hours of one day", 24 * time.Hour, nil, false},
		{"three weeks", 21 * 24 * time.Hour, nil, false},
		{"base, hourly and daily rows", 48 * time.Hour, func(i int, r *record.Row) {
			switch i % 3 {
			case 1:
				hourly(r)
			case 2:
				daily(r)
			}
		}, false},
		{"hourly rows of several hours", 24 * time.Hour, func(_ int, r *record.Row) { hourly(r) }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for range 20 {
				rows := randRows(rng, 1+rng.IntN(300), 1)
				var keys []seriesKey
				sids := make([]int64, len(rows))
				for i := range rows {
					r := &rows[i]
					r.Start = t0.Add(time.Duration(rng.Int64N(int64(tc.spread/time.Minute))) * time.Minute)
					if tc.shape != nil {
						tc.shape(i, r)
					}
					k := seriesKey{view: r.View, dims: r.Dims}
					if j := slices.Index(keys, k); j >= 0 {
						sids[i] = int64(j + 1)
					} else {
						keys = append(keys, k)
						sids[i] = int64(len(keys))
					}
				}
				// Series ids in no particular order, as in a store that has seen other batches.
				perm := rng.Perm(len(keys))
				keyOf := map[int64]seriesKey{}
				for i := range sids {
					k := keys[sids[i]-1]
					sids[i] = int64(perm[sids[i]-1] + 1)
					keyOf[sids[i]] = k
				}
				var g grouper
				gs, end, err := g.group(rows, sids)
				if err != nil {
					t.Fatal(err)
				}
				want := map[pointKey]record.Metrics{}
				var wantEnd int64
				for i, r := range rows {
					if r.Metrics.Zero() {
						continue
					}
					l, _ := levelOf(r.Resolution)
					wantEnd = max(wantEnd, r.Start.Unix()+int64(r.Resolution/time.Second))
					for ; l < packLevels; l++ {
						start := r.Start.Unix()
						if l > levelBase {
							start = floorTo(start, packSeconds(l))
						}
						k := pointKey{l, start, sids[i]}
						m := want[k]
						m.Add(&r.Metrics)
						want[k] = m
					}
				}
				got := map[pointKey]record.Metrics{}
				seen := map[bucket]bool{}
				for i, g := range gs {
					if seen[g.bucket] {
						t.Fatalf("group %+v twice", g.bucket)
					}
					seen[g.bucket] = true
					if i > 0 && gs[i-1].level > g.level {
						t.Fatal("groups not finest first")
					}
					if !slices.IsSorted(g.ids) || len(g.ids) != len(g.ms) {
						t.Fatalf("group %+v: ids not ascending", g.bucket)
					}
					for k, sid := range g.ids {
						if keyOf[sid].view != g.view {
							t.Fatalf("group %+v holds series %d of another view", g.bucket, sid)
						}
						got[pointKey{g.level, g.start, sid}] = *g.ms[k]
					}
					if tc.derived && g.level > gs[0].level && g.same < 0 {
						t.Fatalf("group %+v not derived", g.bucket)
					}
					if g.same >= 0 {
						f := gs[g.same]
						if g.same >= i || f.view != g.view || f.level >= g.level || floorTo(f.start, packSeconds(g.level)) != g.start ||
							!slices.Equal(f.ids, g.ids) || !slices.EqualFunc(f.ms, g.ms, func(a, b *record.Metrics) bool { return *a == *b }) {
							t.Fatalf("group %+v: not the points of group %+v", g.bucket, f.bucket)
						}
					}
					if g.sameDims >= 0 && (g.sameDims >= i || !slices.Equal(gs[g.sameDims].ids, g.ids)) {
						t.Fatalf("group %+v: not the series of group %+v", g.bucket, gs[g.sameDims].bucket)
					}
				}
				if len(got) != len(want) || end != wantEnd {
					t.Fatalf("%d points, end %d; want %d, %d", len(got), end, len(want), wantEnd)
				}
				for k, w := range want {
					if got[k] != w {
						t.Fatalf("point %+v: %+v, want %+v", k, got[k], w)
					}
				}
			}
		})
	}
}

// TestDerivedPacksShareBlobs: a commit of one-hour rows of one hour stores one data and one
// dims blob, which the hour's, day's and week's packs share, and its points equal the rows'
// sums at every level; a commit of two minutes of an hour stores the hour's own sums with the
// series' dims blob shared.
func TestDerivedPacksShareBlobs(t *testing.T) {
	rng := rand.New(rand.NewPCG(33, 34))
	s, _ := openTest(t)
	rows := randRows(rng, 500, 1)
	for i := range rows {
		rows[i].View, rows[i].Start, rows[i].Resolution = "prefix", t0.Add(5*time.Hour), time.Hour
	}
	commitAll(t, s, rows, len(rows))
	var packs, data, dims, blobs int
	s.r.QueryRow(`SELECT COUNT(*), COUNT(DISTINCT data), COUNT(DISTINCT dims) FROM packs`).Scan(&packs, &data, &dims)
	s.r.QueryRow(`SELECT COUNT(*) FROM blobs`).Scan(&blobs)
	if packs != 3 || data != 1 || dims != 1 || blobs != 2 {
		t.Fatalf("%d packs of %d data and %d dims blobs, %d blobs; want 3 packs sharing 2", packs, data, dims, blobs)
	}
	checkPoints(t, s, rows)

	next := randRows(rng, 400, 1)
	for i := range next {
		next[i].View, next[i].Start = "prefix", t0.Add(30*time.Hour+time.Duration(i/50%2)*time.Minute)
		next[i].Dims = rows[i%50].Dims // 50 series, each in both minutes
		if next[i].Metrics.Zero() {
			next[i].Metrics.Bytes = 1
		}
	}
	commitAll(t, s, next, len(next))
	var hour [2]int64
	s.r.QueryRow(`SELECT data, dims FROM packs WHERE level = ? AND start = ?`, levelHour, t0.Add(30*time.Hour).Unix()).Scan(&hour[0], &hour[1])
	var minutes, sharing int
	s.r.QueryRow(`SELECT COUNT(*), SUM(dims = ?) FROM packs WHERE level = ? AND start >= ?`, hour[1], levelBase, t0.Add(30*time.Hour).Unix()).Scan(&minutes, &sharing)
	if minutes != 2 || sharing != 2 {
		t.Fatalf("%d minute packs, %d sharing the hour's dims blob; want 2, 2", minutes, sharing)
	}
	checkPoints(t, s, append(rows, next...))
}

// TestSeriesIndexCollisions forces every series key onto one of four hashes: the index must
// still give every key its own id — through commits, a failed commit that forgets the ids it
// added, and a store opened again — so that the stored points equal the rows' sums.
func TestSeriesIndexCollisions(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(35, 36))
	s, cfg, fail := openFaulty(t)
	s.index.mask = 3
	var rows []record.Row
	for c := range 4 {
		batch := randRows(rng, 100, 2)
		commitAll(t, s, batch, len(batch))
		rows = append(rows, batch...)
		if c == 1 {
			*fail = true
			if err := s.Commit(ctx, store.Batch{Rows: randRows(rng, 100, 2)}); !errors.Is(err, errInjected) {
				t.Fatalf("commit with a fault: %v", err)
			}
			*fail = false
		}
	}
	if len(s.index.more) == 0 || s.index.len() != s.keys.len()-1 {
		t.Fatalf("%d keys in the index (%d beside the hashes), %d series", s.index.len(), len(s.index.more), s.keys.len()-1)
	}
	for id := int64(1); id < int64(s.keys.len()); id++ {
		if got, ok := s.index.lookup(&s.keys, s.keys.at(id)); !ok || got != id {
			t.Fatalf("series %d found as %d, %v", id, got, ok)
		}
	}
	checkPoints(t, s, rows)
	s.Close()
	s2, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	s2.index.mask = 1
	more := randRows(rng, 100, 2)
	commitAll(t, s2, more, len(more))
	checkPoints(t, s2, append(rows, more...))
}

// TestViewSeriesPacks: a write's new series of one view get a series pack of their own when
// there are at least minViewPack of them, whose dims blob the view's packs share; fewer series
// (of one or several views) share a pack, and their packs have dims blobs of their own.
func TestViewSeriesPacks(t *testing.T) {
	rng := rand.New(rand.NewPCG(37, 38))
	s, _ := openTest(t)
	var rows []record.Row
	for _, v := range []struct {
		view string
		n    int
	}{{"country", 5}, {"origin", 3}, {"prefix", minViewPack + 76}, {"as_path", minViewPack}} {
		for i := range v.n {
			r := randRows(rng, 1, 1)[0]
			r.View, r.Start, r.Metrics.Bytes = v.view, t0.Add(time.Minute), 1+uint64(i)
			r.Dims.Port = int32(i)
			rows = append(rows, r)
		}
	}
	commitAll(t, s, rows, len(rows))
	var ns []int64
	q, err := s.r.Query(`SELECT n FROM series_packs ORDER BY first`)
	if err != nil {
		t.Fatal(err)
	}
	for q.Next() {
		var n int64
		q.Scan(&n)
		ns = append(ns, n)
	}
	q.Close()
	if !slices.Equal(ns, []int64{8, minViewPack + 76, minViewPack}) {
		t.Fatalf("series packs of %v series", ns)
	}
	for view, shared := range map[string]bool{"country": false, "origin": false, "prefix": true, "as_path": true} {
		var packs, sharing int
		s.r.QueryRow(`SELECT COUNT(*), SUM(dims IN (SELECT dims FROM series_packs)) FROM packs WHERE view = ?`, view).Scan(&packs, &sharing)
		if packs != packLevels || (sharing == packs) != shared || (sharing != 0 && sharing != packs) {
			t.Fatalf("view %s: %d packs, %d with the dims of a series pack", view, packs, sharing)
		}
	}
	checkPoints(t, s, rows)
}
