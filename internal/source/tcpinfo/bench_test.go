package tcpinfo

import (
	"testing"

	"github.com/netledger/netledger/internal/record"
)

// BenchmarkDestroy replays the recorded destroy notifications through the production path
// (decode, filter, delta accounting, record) under the tracker lock; one op is one notification.
func BenchmarkDestroy(b *testing.B) {
	dgs := readFixture(b)
	s, err := New(Config{Ports: []uint16{}}, Deps{Sink: func([]record.Record) error { return nil }})
	if err != nil {
		b.Fatal(err)
	}
	batch := make([]record.Record, 0, batchSize)
	var sock Socket
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		dg := dgs[i%len(dgs)]
		s.mu.Lock()
		batch = s.handleDestroys(dg, int64(i), &sock, batch)
		s.mu.Unlock()
		if len(batch) >= cap(batch)-8 {
			batch = s.flush(batch)
		}
	}
	b.StopTimer()
	s.flush(batch)
	if s.decodeErrors.Load() != 0 || (b.N >= len(dgs) && s.records.Load() == 0) {
		b.Fatalf("decode errors %d, records %d", s.decodeErrors.Load(), s.records.Load())
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "notifications/s")
}
