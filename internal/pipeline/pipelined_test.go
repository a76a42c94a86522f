package pipeline

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/netledger/netledger/internal/aggregate"
	"github.com/netledger/netledger/internal/enrich"
	"github.com/netledger/netledger/internal/record"
)

// TestPipelinedReadingMatchesOnePass: the reading goroutine and 1 to 4 workers with tables of
// their own, over loads appended while the pipeline runs in appends of random sizes (so frames,
// segments and batches end anywhere), with commits every few milliseconds (each merging the
// workers' tables), failed commits, and a restart in the middle, store exactly the rows of one
// pass of the aggregator over all the records. Run it with -race.
func TestPipelinedReadingMatchesOnePass(t *testing.T) {
	for seed := range uint64(4) {
		rng := rand.New(rand.NewPCG(seed, 77))
		sp := openSpool(t, t.TempDir())
		st := newMemStore()
		st.fail = rng.IntN(3)
		base := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC).UnixNano()
		var all []record.Record
		appendRandom := func(n int) {
			for n > 0 {
				k := min(n, 1+rng.IntN(3000))
				recs := make([]record.Record, k)
				for i := range recs {
					recs[i] = record.Record{Time: base + rng.Int64N(int64(5*time.Minute)),
						Client: netip.AddrFrom4([4]byte{192, 0, byte(2 + rng.IntN(2)), byte(rng.IntN(256))}),
						Server: netip.MustParseAddr("10.0.0.1"), Source: record.SourceReportV2, Class: uint16(rng.IntN(3)),
						Requests: 1, BytesOut: rng.Uint64N(1e6), MSS: 1400, Retransmits: uint32(rng.IntN(4))}
				}
				if err := sp.Append(recs); err != nil {
					t.Fatal(err)
				}
				all = append(all, recs...)
				n -= k
				if rng.IntN(4) == 0 {
					if err := sp.Sync(); err != nil {
						t.Fatal(err)
					}
					time.Sleep(time.Duration(rng.IntN(3)) * time.Millisecond)
				}
			}
			if err := sp.Sync(); err != nil {
				t.Fatal(err)
			}
		}
		var batches float64
		for run := range 2 { // a restart in the middle
			cfg := DefaultConfig()
			cfg.CommitInterval = time.Duration(1+rng.IntN(20)) * time.Millisecond
			cfg.Workers = 1 + rng.IntN(4)
			reg := prometheus.NewRegistry()
			p, err := New(cfg, Deps{Spool: sp, Store: st, Enricher: testEnricher(), Registerer: reg})
			if err != nil {
				t.Fatal(err)
			}
			stop := start(p)
			appendRandom(10000 + rng.IntN(20000))
			if run == 0 || rng.IntN(2) == 0 {
				waitCommitted(t, st, sp)
			}
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			batches += testutil.ToFloat64(p.m.batches)
		}
		waitCommitted(t, st, sp)
		sp.Close()
		if min := float64(len(all)) / readBatch; batches < min {
			t.Errorf("seed %d: %v batches read for %d records, want at least %v", seed, batches, len(all), min)
		}
		want := onePass(t, all)
		st.mu.Lock()
		for k, m := range want {
			if st.rows[k] != m {
				t.Errorf("seed %d: %s %s %+v: stored %+v, want %+v", seed, k.view, k.start, k.dims, st.rows[k], m)
			}
		}
		for k, m := range st.rows {
			if _, ok := want[k]; !ok {
				t.Errorf("seed %d: %s %s %+v: stored %+v, not in one pass", seed, k.view, k.start, k.dims, m)
			}
		}
		st.mu.Unlock()
		if t.Failed() {
			t.FailNow()
		}
	}
}

// onePass aggregates recs in one pass, with the pipeline's default views and enricher, and
// returns the rows by key.
func onePass(t *testing.T, recs []record.Record) map[rowKey]record.Metrics {
	t.Helper()
	out := map[rowKey]record.Metrics{}
	for _, r := range onePassRows(t, recs) {
		k := rowKey{r.View, r.Start, r.Resolution, r.Dims}
		m := out[k]
		m.Add(&r.Metrics)
		out[k] = m
	}
	return out
}

// onePassRows aggregates recs in one pass, with the pipeline's default views and enricher.
func onePassRows(t *testing.T, recs []record.Record) []record.Row {
	t.Helper()
	e := testEnricher()
	a, err := aggregate.New(aggregate.Config{Views: DefaultConfig().EffectiveViews(), Routers: []string{"r"}})
	if err != nil {
		t.Fatal(err)
	}
	ens := make([]enrich.Enriched, len(recs))
	for i := range recs {
		e.Enrich(&recs[i], &ens[i])
	}
	a.AddBatch(recs, ens)
	return a.FlushAll(nil)
}
