package aggregate

import (
	"math/rand/v2"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/netledger/netledger/internal/enrich"
	"github.com/netledger/netledger/internal/record"
	"github.com/netledger/netledger/internal/routing"
)

// syntheticLoad returns n report records of one minute and their enrichments, shaped like the
// pipeline benchmark's real-table load without loading it: each record in one of pfxs random
// prefixes (so about 0.63·pfxs distinct ones for n = pfxs), routes from a pool of 100,000
// attribute sets of 2–8 ASes, 12 countries, two classes.
func syntheticLoad(n, pfxs int) ([]record.Record, []enrich.Enriched) {
	rng := rand.New(rand.NewPCG(1, 2))
	pool := make([]routing.Attrs, 100_000)
	for i := range pool {
		asns := make([]uint32, 2+rng.IntN(7))
		asns[0] = 3356
		for j := 1; j < len(asns); j++ {
			asns[j] = 1 + rng.Uint32N(400_000)
		}
		pool[i].Path = []routing.Segment{{Type: routing.SegmentSequence, ASNs: asns}}
	}
	countries := [][2]byte{{'U', 'S'}, {'D', 'E'}, {'F', 'R'}, {'G', 'B'}, {'N', 'L'}, {'J', 'P'}, {'C', 'N'}, {'I', 'N'}, {'B', 'R'}, {'R', 'U'}, {'C', 'A'}, {'A', 'U'}}
	base := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC).UnixNano()
	recs := make([]record.Record, n)
	ens := make([]enrich.Enriched, n)
	for i := range recs {
		p := rng.IntN(pfxs)
		a := netip.AddrFrom4([4]byte{byte(p >> 16), byte(p >> 8), byte(p), byte(rng.IntN(256))})
		attrs := &pool[p%len(pool)]
		recs[i] = record.Record{Time: base + rng.Int64N(int64(time.Minute)), Client: a,
			Server: netip.MustParseAddr("10.1.0.5"), Source: record.SourceReportV1, Class: uint16(1 + rng.IntN(2)),
			Requests: 1, BytesOut: 1000 + rng.Uint64N(100000), MSS: 1460, Retransmits: uint32(rng.IntN(3)), Duration: 1000}
		pfx, _ := a.Prefix(24)
		peer, _ := enrich.PeerAS(attrs)
		origin, _ := enrich.OriginAS(attrs)
		ens[i] = enrich.Enriched{Prefix: pfx, Attrs: attrs, PeerAS: peer, OriginAS: origin,
			Packets: recs[i].Packets(), Country: countries[p%len(countries)], Continent: [2]byte{'E', 'U'}}
	}
	return recs, ens
}

// BenchmarkAddBatch: AddBatch into the default views, batches of 4,096, over 1 M records in
// about 630,000 prefixes (a table the size of the real one). flush-per-4M flushes every view
// every 4 M records (as the pipeline's commits do at 4–5 M records/s; only when the benchmark
// runs 4 M records or more), flush-per-1M every million.
func BenchmarkAddBatch(b *testing.B) {
	recs, ens := syntheticLoad(1_000_000, 1_000_000)
	for _, bc := range []struct {
		name  string
		flush int
	}{{"no-flush", 0}, {"flush-per-4M", 4_000_000}, {"flush-per-1M", 1_000_000}} {
		b.Run(bc.name, func(b *testing.B) {
			a, err := New(Config{Routers: []string{"r1"}})
			if err != nil {
				b.Fatal(err)
			}
			const batch = 4096
			var rows []record.Row
			for i := 0; i < len(recs); i += batch {
				a.AddBatch(recs[i:min(i+batch, len(recs))], ens[i:min(i+batch, len(recs))])
			}
			rows = a.FlushAll(rows[:0])
			b.ReportAllocs()
			cpu0 := cpuTime()
			b.ResetTimer()
			for i := 0; i < b.N; {
				off := i % len(recs)
				hi := off + min(batch, b.N-i, len(recs)-off)
				a.AddBatch(recs[off:hi], ens[off:hi])
				if bc.flush > 0 && i/bc.flush != (i+hi-off)/bc.flush {
					rows = a.FlushAll(rows[:0])
				}
				i += hi - off
			}
			b.StopTimer()
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/record")
			b.ReportMetric(float64(len(rows)), "rows/flush")
		})
	}
}

// cpuTime returns the process's user and system CPU time in ns: on a loaded machine, the
// benchmark's own CPU time per record is steadier than its wall time.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
