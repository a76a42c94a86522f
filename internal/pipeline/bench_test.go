package pipeline

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/netledger/netledger/internal/aggregate"
	"github.com/netledger/netledger/internal/enrich"
	"github.com/netledger/netledger/internal/geo"
	"github.com/netledger/netledger/internal/record"
	"github.com/netledger/netledger/internal/routing"
	"github.com/netledger/netledger/internal/testenv"
)

// realTable is the real 1,062,046-prefix table loaded into a RIB with 100,000 distinct
// realistic AS paths (2–8 ASes, some prepending, a few AS_SETs), and a geo database holding a
// country for every one of its prefixes.
type realTable struct {
	prefixes []netip.Prefix
	rib      *routing.RIB
	geo      *geo.DB
}

var (
	realOnce sync.Once
	real     realTable
)

func loadRealTable(b *testing.B) *realTable {
	path := testenv.Testdata(b, "lpm/bart/prefixes.txt.gz")
	realOnce.Do(func() {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		z, err := gzip.NewReader(f)
		if err != nil {
			b.Fatal(err)
		}
		sc := bufio.NewScanner(z)
		for sc.Scan() {
			p, err := netip.ParsePrefix(sc.Text())
			if err != nil {
				b.Fatal(err)
			}
			real.prefixes = append(real.prefixes, p)
		}
		rng := rand.New(rand.NewPCG(4, 2))
		pool := make([]routing.Attrs, 100000)
		for i := range pool {
			asns := []uint32{3356}
			for range 1 + rng.IntN(7) {
				asns = append(asns, 1+rng.Uint32N(400000))
			}
			if rng.IntN(10) == 0 {
				asns = append(asns, asns[len(asns)-1], asns[len(asns)-1])
			}
			pool[i].Path = []routing.Segment{{Type: routing.SegmentSequence, ASNs: asns}}
			if rng.IntN(100) == 0 {
				pool[i].Path = append(pool[i].Path, routing.Segment{Type: routing.SegmentSet, ASNs: []uint32{rng.Uint32N(65000), rng.Uint32N(65000)}})
			}
		}
		real.rib = routing.NewRIB()
		if err := real.rib.Load(func(u routing.Updater) error {
			for _, p := range real.prefixes {
				u.Announce(p, 0, pool[rng.IntN(len(pool))])
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		// a delegated-extended file giving every prefix of the table a country
		countries := []string{"US", "DE", "FR", "GB", "NL", "JP", "CN", "IN", "BR", "RU", "CA", "AU"}
		rir := filepath.Join(b.TempDir(), "delegated")
		out, err := os.Create(rir)
		if err != nil {
			b.Fatal(err)
		}
		w := bufio.NewWriter(out)
		fmt.Fprintf(w, "2|ripencc|20261123|%d|19830705|20261123|+0100\n", len(real.prefixes))
		for _, p := range real.prefixes {
			cc := countries[rng.IntN(len(countries))]
			if p.Addr().Is4() {
				fmt.Fprintf(w, "ripencc|%s|ipv4|%s|%d|20100101|allocated|x\n", cc, p.Addr(), 1<<(32-p.Bits()))
			} else {
				fmt.Fprintf(w, "ripencc|%s|ipv6|%s|%d|20100101|allocated|x\n", cc, p.Addr(), p.Bits())
			}
		}
		if err := w.Flush(); err != nil {
			b.Fatal(err)
		}
		out.Close()
		real.geo, err = geo.Open(geo.Config{RIRFiles: []string{rir}})
		if err != nil {
			b.Fatal(err)
		}
	})
	if real.rib == nil {
		b.Fatal("real table not loaded")
	}
	return &real
}

// clientRecords returns n reports from n distinct client addresses, each inside a random
// prefix of the table (so nearly all are routed), at times spread over one minute.
func clientRecords(t *realTable, n int) []record.Record {
	rng := rand.New(rand.NewPCG(9, 9))
	seen := make(map[netip.Addr]bool, n)
	recs := make([]record.Record, 0, n)
	base := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC).UnixNano()
	for len(recs) < n {
		a := testenv.RandomAddr(rng, t.prefixes[rng.IntN(len(t.prefixes))])
		if seen[a] {
			continue
		}
		seen[a] = true
		recs = append(recs, record.Record{Time: base + rng.Int64N(int64(time.Minute)), Client: a,
			Server: netip.MustParseAddr("10.1.0.5"), Source: record.SourceReportV1, Class: uint16(1 + rng.IntN(2)),
			Requests: 1, BytesOut: 1000 + rng.Uint64N(100000), MSS: 1460, Retransmits: uint32(rng.IntN(3)), Duration: 1000})
	}
	return recs
}

// unversioned hides a table's Updated method.
type unversioned struct{ enrich.Table }

// cpuTime returns the process's user and system CPU time in ns: on a loaded machine, the
// benchmark's own CPU time per record is steadier than its wall time.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkEnrichAggregateBatch: enrichment (router, longest match in the real 1,062,046-prefix
// RIB, AS path, peer and origin AS, and with geo the country and continent from a 1.06 M
// prefix database) plus aggregation into the default views, over 1 M distinct client
// addresses, through the pipeline's path: records in batches of readBatch (4,096), enriched by
// enrich.Cache.EnrichBatch and added by aggregate.Aggregator.AddBatch. *-flush-per-4M adds a
// flush of every view every 4 M records (the pipeline flushes at each commit, every second: at
// 4–5 M records/s, that many), the honest per-record cost; it flushes only when the benchmark
// runs 4 M records or more (-test.benchtime 8000000x: two flushes). *-flush-per-1M flushes
// four times as often (a commit per second at 1 M records/s). The 1 M distinct clients are cycled, so after the warm-up
// pass every client is in the cache (2^21 entries): cached-* is the cost of a repeated
// client; cold-* uses a cache of 4,096 entries, where nearly every record is a miss (the cost
// of a client never seen). repeat-50k cycles 50,000 clients, the original's benchmark mix
// (1 M reports from about 50 k clients).
func BenchmarkEnrichAggregateBatch(b *testing.B) {
	t := loadRealTable(b)
	all := clientRecords(t, 1_000_000)
	for _, bc := range []struct {
		name    string
		geo     bool
		flush   int
		part    string
		entries int
		clients int
	}{
		{"cached-enrich-only", false, 0, "enrich", 0, 0},
		{"cold-enrich-only", false, 0, "enrich", 4096, 0},
		{"uncached-enrich-only", false, 0, "enrich", -1, 0},
		{"aggregate-only", false, 0, "aggregate", 0, 0},
		{"cached-nogeo", false, 0, "", 0, 0},
		{"cached-geo", true, 0, "", 0, 0},
		{"cached-geo-flush-per-4M", true, 4_000_000, "", 0, 0},
		{"cached-geo-flush-per-1M", true, 1_000_000, "", 0, 0},
		{"cold-geo", true, 0, "", 4096, 0},
		{"repeat-50k-geo", true, 0, "", 0, 50_000},
	} {
		b.Run(bc.name, func(b *testing.B) {
			recs := all
			if bc.clients > 0 {
				// the same 1 M records, from 50 k clients: each client's address for 20 records
				recs = make([]record.Record, len(all))
				copy(recs, all)
				for i := range recs {
					recs[i].Client = all[i%bc.clients].Client
				}
			}
			var g enrich.Geo
			if bc.geo {
				g = t.geo
			}
			var table enrich.Table = t.rib
			if bc.entries < 0 {
				table = unversioned{t.rib} // the cache cannot be used: EnrichBatch calls Enrich
			}
			e := enrich.New([]enrich.Router{{Name: "r1", ASN: 64500, Table: table}}, g)
			c := e.NewCache(max(bc.entries, 0))
			a, err := aggregate.New(aggregate.Config{Routers: []string{"r1"}})
			if err != nil {
				b.Fatal(err)
			}
			ens := make([]enrich.Enriched, len(recs))
			var rows []record.Row
			// warm up: fill the cache, grow the tables to the load
			for i := 0; i < len(recs); i += readBatch {
				j := min(i+readBatch, len(recs))
				c.EnrichBatch(recs[i:j], ens[i:j])
				a.AddBatch(recs[i:j], ens[i:j])
			}
			rows = a.FlushAll(rows[:0])
			collapseHeap(b)
			b.ReportAllocs()
			// batch returns the records of a batch starting at record i (cycling)
			batch := func(i, n int) (int, int) {
				off := i % len(recs)
				return off, off + min(n, readBatch, len(recs)-off)
			}
			buf := make([]enrich.Enriched, readBatch) // reused for every batch, as the pipeline does
			st0 := c.Stats()
			cpu0 := cpuTime()
			b.ResetTimer()
			for i := 0; i < b.N; {
				lo, hi := batch(i, b.N-i)
				switch bc.part {
				case "enrich":
					c.EnrichBatch(recs[lo:hi], buf)
				case "aggregate":
					a.AddBatch(recs[lo:hi], ens[lo:hi])
				default:
					c.EnrichBatch(recs[lo:hi], buf)
					a.AddBatch(recs[lo:hi], buf)
				}
				if bc.flush > 0 && i/bc.flush != (i+hi-lo)/bc.flush {
					rows = a.FlushAll(rows[:0])
				}
				i += hi - lo
			}
			b.StopTimer()
			st := c.Stats()
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/record")
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds()/1e6, "Mrecords/s")
			if bc.part != "aggregate" {
				b.ReportMetric(float64(st.Hits-st0.Hits)/float64(b.N), "hits/record")
			}
		})
	}
}
