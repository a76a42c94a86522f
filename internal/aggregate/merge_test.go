package aggregate

import (
	"maps"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/netledger/netledger/internal/enrich"
	"github.com/netledger/netledger/internal/record"
	"github.com/netledger/netledger/internal/routing"
)

// rowsByKey sums rows by (view, start, dims), failing on a key written twice by one flush.
func rowsByKey(t *testing.T, into map[string]record.Metrics, rows []record.Row) {
	t.Helper()
	seen := map[string]bool{}
	for i := range rows {
		r := &rows[i]
		line := rowLine(&record.Row{View: r.View, Start: r.Start, Resolution: r.Resolution, Dims: r.Dims})
		if seen[line] {
			t.Fatalf("one flush wrote a key twice: %s", rowLine(r))
		}
		seen[line] = true
		m := into[line]
		m.Add(&r.Metrics)
		into[line] = m
	}
}

// TestMergeEqualsOneAggregator: records split at random between 2 to 4 aggregators (in batches
// of random sizes, over several intervals, random and default views, routes diverted when a
// prefix is routed differently by routers that are not a dimension), merged into the first —
// sometimes flushed partly and filled and merged again, the emptied ones reused, the path texts
// made while merging or by the flush — give the rows of one aggregator given all the records,
// and the same record count.
func TestMergeEqualsOneAggregator(t *testing.T) {
	old := preparePaths
	t.Cleanup(func() { preparePaths = old })
	for seed := range uint64(24) {
		preparePaths = []int{1, 1 << 30}[seed%2] // path texts made while merging, or by the flush
		rng := rand.New(rand.NewPCG(seed, 12))
		w := newWorld(500 + seed)
		var views []ViewConfig
		if seed%3 != 0 {
			views = randomViews(rng)
		}
		interval := []time.Duration{10 * time.Second, time.Minute}[rng.IntN(2)]
		cfg := Config{Views: views, Routers: w.names, Interval: interval}
		one, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		parts := make([]*Aggregator, 2+rng.IntN(3))
		for i := range parts {
			if parts[i], err = New(cfg); err != nil {
				t.Fatal(err)
			}
		}
		got, want := map[string]record.Metrics{}, map[string]record.Metrics{}
		t0 := int64(1_700_000_000) * 1e9
		var n uint64
		for round := range 1 + rng.IntN(4) {
			recs := w.records(500+rng.IntN(3000), t0+int64(round)*int64(interval))
			ens := make([]enrich.Enriched, len(recs))
			for i := range recs {
				w.e.Enrich(&recs[i], &ens[i])
			}
			one.AddBatch(recs, ens)
			for i := 0; i < len(recs); {
				k := min(len(recs)-i, 1+rng.IntN(200))
				parts[rng.IntN(len(parts))].AddBatch(recs[i:i+k], ens[i:i+k])
				i += k
			}
			n += uint64(len(recs))
			for _, p := range parts[1:] {
				parts[0].Merge(p)
				if p.Pending() {
					t.Fatalf("seed %d: records pending in a merged aggregator", seed)
				}
			}
			if rng.IntN(2) == 0 {
				before := t0 + rng.Int64N(int64(4*interval))
				rowsByKey(t, got, parts[0].Flush(nil, before))
				rowsByKey(t, want, one.Flush(nil, before))
			}
		}
		rowsByKey(t, got, parts[0].FlushAll(nil))
		rowsByKey(t, want, one.FlushAll(nil))
		if len(want) == 0 {
			t.Fatalf("seed %d: no rows", seed)
		}
		for k, m := range want {
			if got[k] != m {
				t.Errorf("seed %d: %s: merged %+v, one aggregator %+v", seed, k, got[k], m)
			}
		}
		for k, m := range got {
			if _, ok := want[k]; !ok {
				t.Errorf("seed %d: %s: merged %+v, not in one aggregator's rows", seed, k, m)
			}
		}
		if parts[0].Records() != n || one.Records() != n {
			t.Errorf("seed %d: merged Records() = %d, one %d, want %d", seed, parts[0].Records(), one.Records(), n)
		}
		if t.Failed() {
			t.Fatalf("seed %d: views %+v", seed, views)
		}
	}
}

func TestMergeOtherViewsPanics(t *testing.T) {
	a, _ := New(Config{})
	b, _ := New(Config{Views: []ViewConfig{{Name: "x", Dimensions: []string{DimRouter}}}})
	defer func() {
		if recover() == nil {
			t.Error("Merge of aggregators with other views did not panic")
		}
	}()
	a.Merge(b)
}

// BenchmarkMerge merges an aggregator holding the keys of 154,000 prefixes (the end-to-end
// benchmark's hour) into one holding the same keys, as a commit of two workers does.
func BenchmarkMerge(b *testing.B) {
	w := newWorld(1)
	cfg := Config{Views: []ViewConfig{DefaultViews()[0]}, Routers: w.names, Interval: time.Hour}
	x, _ := New(cfg)
	y, _ := New(cfg)
	recs := w.records(400_000, int64(1_700_000_000)*1e9)
	for i := range recs {
		recs[i].Time = int64(1_700_000_000) * 1e9
		recs[i].Class = uint16(i % 400) // many keys per prefix: the world has 600 prefixes
	}
	ens := make([]enrich.Enriched, len(recs))
	for i := range recs {
		w.e.Enrich(&recs[i], &ens[i])
	}
	b.ReportAllocs()
	keys := 0
	for range b.N {
		b.StopTimer()
		x.FlushAll(nil)
		x.AddBatch(recs, ens)
		y.AddBatch(recs, ens)
		keys = 0
		for _, iv := range y.open {
			for gi := range iv.base {
				keys += iv.base[gi].len()
			}
		}
		b.StartTimer()
		x.Merge(y)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*keys), "ns/key")
	b.ReportMetric(float64(keys), "keys")
}

// TestMergeDivertedKeys: a prefix whose route is replaced by one with the same path during the
// interval (a diverted key) in the aggregator merged from, not in the one merged into, or in
// both: the merged flush writes each row once, with the sums of one aggregator.
func TestMergeDivertedKeys(t *testing.T) {
	prepare := preparePaths
	t.Cleanup(func() { preparePaths = prepare })
	preparePaths = 1 // the path texts made while merging
	views := []ViewConfig{{Name: "prefix", Dimensions: []string{DimRouter, DimClass, DimPrefix}}}
	for _, into := range []string{"none", "old route", "new route"} {
		w := newWorld(8)
		table := w.e.Routers()[0].Table.(*enrich.StaticTable)
		bits, old, _ := table.Lookup(w.prefixes[0].Addr())
		p := netip.PrefixFrom(w.prefixes[0].Addr(), bits).Masked()
		cfg := Config{Views: views, Routers: w.names, Interval: time.Minute}
		one, _ := New(cfg)
		a, _ := New(cfg)
		b, _ := New(cfg)
		r := record.Record{Time: int64(1_700_000_000) * 1e9, Client: p.Addr(), Server: w.servers[0], Source: record.SourceReportV1,
			Class: 1, Requests: 1, BytesOut: 1000}
		var e enrich.Enriched
		add := func(aggs ...*Aggregator) {
			w.e.Enrich(&r, &e)
			for _, x := range aggs {
				addOne(x, &r, &e)
			}
		}
		add(one, b) // the old route
		table.Insert(p, &routing.Attrs{Path: old.Path, Communities: []uint32{42}})
		add(one, b) // the new one: diverted in b
		switch into {
		case "new route":
			add(one, a)
		case "old route":
			table.Insert(p, old)
			add(one, a)
		}
		table.Insert(p, old)
		a.Merge(b)
		got, want := map[string]record.Metrics{}, map[string]record.Metrics{}
		rowsByKey(t, got, a.FlushAll(nil))
		rowsByKey(t, want, one.FlushAll(nil))
		if !maps.Equal(got, want) {
			t.Errorf("into %s: merged %v, one aggregator %v", into, got, want)
		}
	}
}
