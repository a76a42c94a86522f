package mrt

import (
	"bytes"
	"io"
	"net/netip"
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/netledger/netledger/internal/routing"
	"github.com/netledger/netledger/internal/testenv"
)

const bview2002 = "mrt/ripe-bgpdump/test_data/bview.20020722.2337.gz"

// BenchmarkDumpBview prints the 2002 full table (TABLE_DUMP v1, 115,521 routes) from the
// gzip file, as `netledger mrt dump` does.
func BenchmarkDumpBview(b *testing.B) {
	data, err := os.ReadFile(testenv.Testdata(b, bview2002))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		r, err := NewReader(bytes.NewReader(data))
		if err != nil {
			b.Fatal(err)
		}
		d := NewDumper(io.Discard, ModeOneLine)
		if err := d.Dump(r); err != nil {
			b.Fatal(err)
		}
		d.Flush()
	}
}

// BenchmarkRoutes walks the routes of the same file already decompressed: the per-route cost of
// loading a RIB (0 allocs per route expected).
func BenchmarkRoutes(b *testing.B) {
	data := gunzipFile(nil, testenv.Testdata(b, bview2002))
	b.SetBytes(int64(len(data)))
	var routes int
	for b.Loop() {
		r, _ := NewReader(bytes.NewReader(data))
		routes = 0
		if err := r.Routes(func(rt *Route) error { routes++; return nil }); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(routes), "ns/route")
}

// BenchmarkLoadBview builds a router's RIB from the 2002 full-table dump file (gzip, 36 peers,
// 115,521 routes), as `serve` does at start and `rib load` does: every peer (the best path
// kept per prefix) and one peer (--peer 193.203.0.1, 112,986 prefixes).
func BenchmarkLoadBview(b *testing.B) {
	name := testenv.Testdata(b, bview2002)
	for _, tc := range []struct {
		name string
		peer PeerSelector
	}{{"all-peers", PeerSelector{}}, {"one-peer", PeerSelector{Addr: netip.MustParseAddr("193.203.0.1")}}} {
		b.Run(tc.name, func(b *testing.B) {
			var v4 int
			cpu0 := processCPU()
			for b.Loop() {
				rib := routing.NewRIB()
				if _, err := LoadFiles(rib, tc.peer, name); err != nil {
					b.Fatal(err)
				}
				v4, _ = rib.Len()
			}
			if v4 < 112000 {
				b.Fatalf("%d prefixes", v4)
			}
			b.ReportMetric(float64(v4), "prefixes")
			b.ReportMetric(float64(processCPU()-cpu0)/1e6/float64(b.N), "cpu-ms/op")
		})
	}
}

// processCPU returns the CPU time of the whole process (every thread: gzip, decoder, GC) in
// nanoseconds; unlike wall time, waiting for a CPU on a shared machine does not inflate it.
func processCPU() int64 {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
