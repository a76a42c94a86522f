package pipeline

import (
	"bytes"
	"context"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	rtmetrics "runtime/metrics"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/netledger/netledger/internal/aggregate"
	"github.com/netledger/netledger/internal/enrich"
	"github.com/netledger/netledger/internal/record"
	"github.com/netledger/netledger/internal/routing/bgp"
	"github.com/netledger/netledger/internal/routing/routers"
	"github.com/netledger/netledger/internal/spool"
	"github.com/netledger/netledger/internal/store"
	"github.com/netledger/netledger/internal/store/sqlite"
	"github.com/netledger/netledger/internal/testenv"
)

// readSeedLog parses the original's collector log (shared/tools/seed-pipeline/gen.py: "time
// client bytes secs type retransmits mss server") into records, as trafstat v1 reports, with the
// first record at the start of an hour.
func readSeedLog(b *testing.B, path string) []record.Record {
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	var recs []record.Record
	for line := range bytes.Lines(data) {
		f := bytes.Fields(line)
		if len(f) != 8 {
			b.Fatalf("bad line %q", line)
		}
		num := func(i int) uint64 {
			v, err := strconv.ParseUint(string(f[i]), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return v
		}
		recs = append(recs, record.Record{
			Time: int64(num(0)) * 1e9, Client: netip.MustParseAddr(string(f[1])), Server: netip.MustParseAddr(string(f[7])),
			Source: record.SourceReportV1, Requests: 1, BytesOut: num(2), Duration: num(3) * 1e6,
			Class: uint16(num(4)), Retransmits: uint32(num(5)), MSS: uint32(num(6)),
		})
	}
	// gen.py starts its hour when it runs, so the hour would straddle two hourly intervals and
	// the row count would depend on the minute it ran. Shift the times so that the hour is one
	// hourly interval, as the original accounts it (one row per router, class and prefix).
	if len(recs) > 0 {
		shift := recs[0].Time % int64(time.Hour)
		for i := range recs {
			recs[i].Time -= shift
		}
	}
	return recs
}

// BenchmarkEndToEnd is the original's benchmark (BASELINES.md "Accounting pipeline"): the
// same 1,000,000 reports (NETLEDGER_SEED_LOG: the log1m that shared/tools/seed-pipeline/gen.py
// writes), two routers each holding the 2002 table (bview.20020722.2337.gz, peer
// 193.203.0.1, as the original's bgpupd.sh loads it), from the reports in the spool to rows
// committed in a fresh SQLite store. Timed: reading the spool, enrichment, aggregation and the
// commit of every row with its roll-ups. Not timed: writing the spool, loading the tables.
func BenchmarkEndToEnd(b *testing.B) {
	log := os.Getenv("NETLEDGER_SEED_LOG")
	if log == "" {
		b.Skip("NETLEDGER_SEED_LOG not set (the 1 M-line log of shared/tools/seed-pipeline/gen.py)")
	}
	bview := testenv.Testdata(b, "mrt/ripe-bgpdump/test_data/bview.20020722.2337.gz")
	recs := readSeedLog(b, log)
	rc := func(name, net string) routers.RouterConfig {
		return routers.RouterConfig{Name: name, ASN: 64500, Networks: []netip.Prefix{netip.MustParsePrefix(net)},
			MRT: []string{bview}, MRTPeer: "193.203.0.1"}
	}
	rt, err := routers.New([]routers.RouterConfig{rc("r1", "10.1.0.0/16"), rc("r2", "10.2.0.0/16")}, bgp.Config{}, routers.Deps{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go rt.Run(ctx)
	<-rt.Started()
	var ers []enrich.Router
	for _, r := range rt.Routers() {
		ers = append(ers, enrich.Router{Name: r.Name, ASN: r.ASN, Networks: r.Networks, Table: r.RIB})
	}
	dir := b.TempDir()
	sp, err := spool.Open(spool.Config{Dir: filepath.Join(dir, "spool"), SegmentSize: 64 << 20, SegmentAge: time.Hour, SyncInterval: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer sp.Close()
	for i := 0; i < len(recs); i += 1024 {
		if err := sp.Append(recs[i:min(i+1024, len(recs))]); err != nil {
			b.Fatal(err)
		}
	}
	if err := sp.Sync(); err != nil {
		b.Fatal(err)
	}
	prefixOnly := []aggregate.ViewConfig{aggregate.DefaultViews()[0]}
	runs := 0
	for _, bc := range []struct {
		name     string
		interval time.Duration
		views    []aggregate.ViewConfig
		noStore  bool
	}{
		{"prefix-view-1h", time.Hour, prefixOnly, false},
		{"default-views-1h", time.Hour, nil, false},
		{"default-views-1m", time.Minute, nil, false},
		// the accounting side alone: the rows go to a store that keeps only the position
		{"prefix-view-1h-no-store", time.Hour, prefixOnly, true},
		{"default-views-1h-no-store", time.Hour, nil, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var rows, storeSec float64
			var cpu time.Duration
			var readerStalls, accountingStalls float64
			var gcs uint64
			for range b.N {
				b.StopTimer()
				runs++
				var st store.Store = &positionStore{}
				if !bc.noStore {
					var err error
					st, err = sqlite.Open(ctx, storeConfig(filepath.Join(dir, bc.name+strconv.Itoa(runs)+".db")))
					if err != nil {
						b.Fatal(err)
					}
				}
				cfg := DefaultConfig()
				cfg.Interval, cfg.CommitInterval = bc.interval, time.Hour
				cfg.Views, cfg.NoDefaultViews = bc.views, bc.views != nil
				p, err := New(cfg, Deps{Spool: sp, Store: st, Enricher: enrich.New(ers, nil), Logger: slog.New(slog.DiscardHandler)})
				if err != nil {
					b.Fatal(err)
				}
				c0, g0 := time.Duration(cpuTime()), gcCycles()
				b.StartTimer()
				if err := p.Drain(ctx); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				cpu += time.Duration(cpuTime()) - c0
				gcs += gcCycles() - g0
				rows = testutil.ToFloat64(p.m.rows)
				readerStalls += testutil.ToFloat64(p.m.readerStalls)
				accountingStalls += testutil.ToFloat64(p.m.accountingStalls)
				var m dto.Metric
				if err := p.m.commitSeconds.Write(&m); err != nil {
					b.Fatal(err)
				}
				storeSec += m.GetHistogram().GetSampleSum()
				st.Close()
			}
			b.ReportMetric(float64(len(recs))*float64(b.N)/b.Elapsed().Seconds(), "reports/s")
			b.ReportMetric(rows, "rows")
			// The process's CPU time (user + system, all threads: the pipeline, SQLite, the
			// garbage collector) per run: less disturbed than the wall time on a shared machine.
			b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms/op")
			// The wall time of the store's commits (Store.Commit) per run; the rest of ns/op is
			// reading, enrichment, aggregation and the flush.
			b.ReportMetric(storeSec*1e3/float64(b.N), "store-ms/op")
			// How often the reading goroutine waited for a free batch (the enriching or
			// accounting goroutine is behind) and the accounting goroutine for an enriched one
			// (reading or enrichment is behind), of 245 batches per run.
			b.ReportMetric(readerStalls/float64(b.N), "reader-stalls/op")
			b.ReportMetric(accountingStalls/float64(b.N), "accounting-stalls/op")
			// The garbage collector's cycles per run (its CPU time, as runtime/metrics
			// estimates it, is the time its workers held a P: inflated on a loaded machine).
			b.ReportMetric(float64(gcs)/float64(b.N), "gcs/op")
		})
	}
}

// positionStore is a store.Store that keeps only the position of its commits.
type positionStore struct{ memStore }

func (s *positionStore) Commit(_ context.Context, b store.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pos == nil {
		s.pos = map[string]store.Position{}
	}
	s.pos[b.Consumer] = b.Position
	return nil
}

// gcCycles returns the garbage collector's cycles so far.
func gcCycles() uint64 {
	s := []rtmetrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
	rtmetrics.Read(s)
	return s[0].Value.Uint64()
}
