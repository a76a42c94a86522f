package sqlite

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/netledger/netledger/internal/record"
	"github.com/netledger/netledger/internal/store"
)

// benchPrefix returns the i-th of the benchmarks' prefixes: /24s, every eighth an IPv6 /48.
func benchPrefix(i int) netip.Prefix {
	if i%8 == 7 {
		return netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(i >> 16), byte(i >> 8), byte(i)}), 48)
	}
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(10 + i>>16), byte(i >> 8), byte(i), 0}), 24)
}

func benchRow(i int, start time.Time, res time.Duration, rng *rand.Rand) record.Row {
	return record.Row{View: "prefix", Start: start, Resolution: res,
		Dims: record.Dims{Router: "r1", Class: "web", Prefix: benchPrefix(i), Path: "64500 64501", PeerAS: 64500, OriginAS: 64501},
		Metrics: record.Metrics{Requests: 1 + rng.Uint64N(50), Bytes: 1 + rng.Uint64N(1<<20), Packets: 1 + rng.Uint64N(1000),
			Retransmits: rng.Uint64N(10), Duration: rng.Uint64N(1e6), RTTSum: rng.Uint64N(1e5), RTTCount: 1}}
}

// BenchmarkCommit commits one-minute batches of 10,000 rows of distinct prefixes (the same
// 100,000 prefixes come back every ten minutes), each with its hourly and daily roll-up and the
// position: rows/s is the store's write throughput.
func BenchmarkCommit(b *testing.B) {
	benchCommit(b, 10, func(n, i int) int { return (n%10)*commitBatch + i }) // the series exist, as in a running collector
}

// BenchmarkCommitNewSeries is BenchmarkCommit with every row of a new series (as in a fresh
// store, or the first interval after a restart): each batch also inserts its 10,000 series.
func BenchmarkCommitNewSeries(b *testing.B) {
	benchCommit(b, 0, func(n, i int) int { return n*commitBatch + i })
}

const commitBatch = 10000

// benchCommit commits warm untimed batches, then timed ones; row i of batch n has the prefix
// benchPrefix(prefix(n, i)).
func benchCommit(b *testing.B, warm int, prefix func(n, i int) int) {
	ctx := context.Background()
	s, _ := openTest(b)
	rng := rand.New(rand.NewPCG(1, 1))
	rows := make([]record.Row, commitBatch)
	commit := func(n int) {
		start := t0.Add(time.Duration(n) * time.Minute)
		for i := range rows {
			rows[i] = benchRow(prefix(n, i), start, time.Minute, rng)
		}
		if err := s.Commit(ctx, store.Batch{Consumer: "accounting", Position: store.Position{Segment: uint64(n)}, Rows: rows}); err != nil {
			b.Fatal(err)
		}
	}
	for n := range warm {
		commit(n)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for n := warm; b.Loop(); n++ {
		commit(n)
	}
	b.ReportMetric(float64(b.N*commitBatch)/b.Elapsed().Seconds(), "rows/s")
}

const (
	topPrefixes = 100000
	topDays     = 30
)

var (
	topOnce sync.Once
	topPath string
	topErr  error
)

// topDB builds, once per process, 30 days of hourly history for 100,000 prefixes: every
// prefix has traffic in one (random) hour of every day, imported as hourly rows, so that the
// daily roll-up holds all 100,000 prefixes on each of the 30 days (3,000,000 hourly and
// 3,000,000 daily points), plus one day of one-minute rows for 10,000 of them.
func topDB(b *testing.B) string {
	topOnce.Do(func() {
		// Built once per machine (minutes); kept in the temporary directory for the next runs (v5:
		// schema 6, which older binaries refuse).
		dir := filepath.Join(os.TempDir(), "netledger-bench-top-v5")
		topPath = filepath.Join(dir, "netledger.db")
		if _, err := os.Stat(filepath.Join(dir, "complete")); err == nil {
			return
		}
		os.RemoveAll(dir)
		cfg := DefaultConfig()
		cfg.Path, cfg.Collector = topPath, "bench"
		s, err := Open(context.Background(), cfg)
		if err != nil {
			topErr = err
			return
		}
		defer s.Close()
		rng := rand.New(rand.NewPCG(2, 2))
		t1 := time.Now()
		for d := range topDays {
			day := t0.Add(time.Duration(d) * 24 * time.Hour)
			rows := make([]record.Row, topPrefixes)
			for i := range rows {
				rows[i] = benchRow(i, day.Add(time.Duration(rng.IntN(24))*time.Hour), time.Hour, rng)
			}
			if topErr = s.Import(context.Background(), day.String(), rows); topErr != nil {
				return
			}
		}
		last := t0.Add(topDays * 24 * time.Hour)
		for m := range 1440 {
			rows := make([]record.Row, 0, 10000)
			for i := m % 10; i < topPrefixes; i += 10 * 1440 / 100 {
				rows = append(rows, benchRow(i, last.Add(time.Duration(m)*time.Minute), time.Minute, rng))
			}
			if topErr = s.Commit(context.Background(), store.Batch{Rows: rows}); topErr != nil {
				return
			}
		}
		b.Logf("built %s in %v", topPath, time.Since(t1))
		topErr = os.WriteFile(filepath.Join(dir, "complete"), nil, 0o644)
	})
	if topErr != nil {
		b.Fatal(topErr)
	}
	return topPath
}

// BenchmarkTop30Days opens the store (as `netledger top` does) and asks for the 10 largest
// prefixes by bytes over 30 whole days of hourly history for 100,000 prefixes.
func BenchmarkTop30Days(b *testing.B) {
	benchTop(b, t0.Add(24*time.Hour), t0.Add((topDays+1)*24*time.Hour))
}

// BenchmarkTopSince720h is the same over the last 720 h before 13:37 of the last day: 29 whole
// days, 13 hours of minutes and hours at the edges.
func BenchmarkTopSince720h(b *testing.B) {
	to := t0.Add(topDays*24*time.Hour + 13*time.Hour + 37*time.Minute)
	benchTop(b, to.Add(-720*time.Hour), to)
}

func benchTop(b *testing.B, from, to time.Time) {
	path := topDB(b)
	ctx := context.Background()
	cfg := DefaultConfig()
	cfg.Path, cfg.Collector = path, "bench"
	b.ReportAllocs()
	b.ResetTimer()
	c0 := cpuTime()
	for b.Loop() {
		s, err := Open(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		res, err := s.Top(ctx, store.Query{View: "prefix", By: "prefix", From: from, To: to, Limit: 10})
		if err != nil || len(res) != 10 {
			b.Fatalf("%d results, %v", len(res), err)
		}
		s.Close()
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/op")
	b.ReportMetric(float64((cpuTime()-c0).Milliseconds())/float64(b.N), "cpu-ms/op")
}

// BenchmarkCommitFreshHour is the store's share of BenchmarkEndToEnd's prefix view (its
// commit of one hour of the original's benchmark): one commit of 154,278 one-hour rows of new
// series, all in one hour, into a fresh store; the AS paths are 30,000 distinct strings.
func BenchmarkCommitFreshHour(b *testing.B) { benchFresh(b, freshHourRows()) }

func freshHourRows() []record.Row {
	const series = 154278
	rng := rand.New(rand.NewPCG(5, 5))
	paths := make([]string, 30000)
	for i := range paths {
		paths[i] = fmt.Sprintf("%d %d %d %d", 64500+rng.IntN(50), 1000+rng.IntN(9000), 1000+rng.IntN(20000), 1000+rng.IntN(30000))
	}
	rows := make([]record.Row, 0, series)
	for i := range series {
		r := benchRow(i/4, t0, time.Hour, rng)
		r.Dims.Router, r.Dims.Class = []string{"r1", "r2"}[i%2], []string{"1", "2"}[i/2%2]
		r.Dims.Path = paths[(i/4)%len(paths)]
		r.Dims.PeerAS, r.Dims.OriginAS = uint32(64500+i%50), uint32(1000+i/4%30000)
		rows = append(rows, r)
	}
	return rows
}

// BenchmarkCommitFresh is the store's share of BenchmarkEndToEnd (internal/pipeline): one
// commit of 270,000 one-hour rows into a fresh store — 135,000 series (prefixes under two
// routers and two classes) in each of two hours, so that every series is new, the first hour
// is packed by the commit and the day is not over.
func BenchmarkCommitFresh(b *testing.B) {
	const series = 135000
	rng := rand.New(rand.NewPCG(3, 3))
	rows := make([]record.Row, 0, 2*series)
	for h := range 2 {
		for i := range series {
			r := benchRow(i/4, t0.Add(time.Duration(h)*time.Hour), time.Hour, rng)
			r.Dims.Router, r.Dims.Class = []string{"r1", "r2"}[i%2], []string{"1", "2"}[i/2%2]
			rows = append(rows, r)
		}
	}
	benchFresh(b, rows)
}

// benchFresh commits rows into a fresh store per iteration.
func benchFresh(b *testing.B, rows []record.Row) {
	ctx := context.Background()
	b.ReportAllocs()
	var cpu time.Duration
	for b.Loop() {
		b.StopTimer()
		cfg := DefaultConfig()
		cfg.Path = filepath.Join(b.TempDir(), "netledger.db")
		cfg.Collector = "c1"
		s, err := Open(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		c0 := cpuTime()
		b.StartTimer()
		if err := s.Commit(ctx, store.Batch{Consumer: "accounting", Position: store.Position{Segment: 1}, Rows: rows}); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		cpu += cpuTime() - c0
		s.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(b.N*len(rows))/b.Elapsed().Seconds(), "rows/s")
	// The process's CPU time (user + system, all threads) per commit: less disturbed than the
	// wall time on a shared machine.
	b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms/op")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
