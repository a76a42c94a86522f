package spool

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/netledger/netledger/internal/record"
)

// genRecords returns n records with every field set from a fixed seed, mixing IPv4, IPv6 and
// absent addresses.
func genRecords(seed uint64, n int) []record.Record {
	rng := rand.New(rand.NewPCG(seed, 1))
	addr := func() netip.Addr {
		switch rng.IntN(3) {
		case 0:
			return netip.AddrFrom4([4]byte{byte(rng.Uint32()), byte(rng.Uint32()), 2, byte(rng.Uint32())})
		case 1:
			var b [16]byte
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
			b[0] = 0x20
			return netip.AddrFrom16(b)
		}
		return netip.Addr{}
	}
	recs := make([]record.Record, n)
	for i := range recs {
		recs[i] = record.Record{
			Time: rng.Int64(), Client: addr(), Server: addr(), Exporter: addr(),
			ClientPort: uint16(rng.Uint32()), ServerPort: uint16(rng.Uint32()), Proto: uint8(rng.Uint32()),
			Source: record.Source(rng.IntN(8)), Class: uint16(rng.Uint32()), Requests: rng.Uint32(),
			BytesOut: rng.Uint64(), BytesIn: rng.Uint64(), PacketsOut: rng.Uint64(), PacketsIn: rng.Uint64(),
			Retransmits: rng.Uint32(), MSS: rng.Uint32(), RTT: rng.Uint32(), RTTVar: rng.Uint32(), MinRTT: rng.Uint32(),
			DeliveryRate: rng.Uint64(), Duration: rng.Uint64(), ConnsClosed: rng.Uint32(), ConnsOpen: rng.Uint32(),
		}
	}
	return recs
}

func testConfig(t *testing.T) Config {
	cfg := DefaultConfig()
	cfg.Dir = filepath.Join(t.TempDir(), "spool")
	cfg.SyncInterval = time.Hour // tests sync explicitly
	return cfg
}

func mustOpen(t *testing.T, cfg Config) *Spool {
	t.Helper()
	s, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open() error = %v", err)
	}
	return s
}

// readAll reads everything synced from `from` with a buffer of bufLen records.
func readAll(t *testing.T, s *Spool, from Position, bufLen int) ([]record.Record, Position) {
	t.Helper()
	r, err := s.NewReader(from)
	if err != nil {
		t.Fatalf("NewReader(%v) error = %v", from, err)
	}
	defer r.Close()
	var got []record.Record
	buf := make([]record.Record, bufLen)
	next := from
	for {
		n, p, err := r.Read(buf)
		if err != nil {
			t.Fatalf("Read() error = %v", err)
		}
		if n == 0 {
			return got, next
		}
		got = append(got, buf[:n]...)
		next = p
	}
}

func diffRecords(t *testing.T, got, want []record.Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("read %d records, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("record %d:\n-got  %+v\n+want %+v", i, got[i], want[i])
		}
	}
}

func TestRoundTrip(t *testing.T) {
	cfg := testConfig(t)
	s := mustOpen(t, cfg)
	want := genRecords(1, 5000)
	for i, sizes := 0, []int{1, 7, 2000, 1, 1992, 999}; i < len(sizes); i++ {
		off := 0
		for _, n := range sizes[:i] {
			off += n
		}
		if err := s.Append(want[off : off+sizes[i]]); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, cfg)
	defer s.Close()
	for _, bufLen := range []int{1, 3, 1024, 5000} {
		got, _ := readAll(t, s, Position{}, bufLen)
		diffRecords(t, got, want)
	}
}

func TestReadOnlySynced(t *testing.T) {
	s := mustOpen(t, testConfig(t))
	defer s.Close()
	r, err := s.NewReader(Position{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	want := genRecords(2, 10)
	if err := s.Append(want); err != nil {
		t.Fatal(err)
	}
	buf := make([]record.Record, 100)
	if n, _, err := r.Read(buf); n != 0 || err != nil {
		t.Fatalf("Read() before sync = %d, %v; want 0, nil", n, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := r.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait() before sync = %v, want deadline exceeded", err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Wait(context.Background()) }()
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Wait() after sync = %v", err)
	}
	n, p, err := r.Read(buf)
	if err != nil || n != len(want) {
		t.Fatalf("Read() after sync = %d, %v", n, err)
	}
	diffRecords(t, buf[:n], want)
	if p != s.Synced() {
		t.Errorf("Read() position = %v, want synced end %v", p, s.Synced())
	}
}

func TestGroupCommit(t *testing.T) {
	cfg := testConfig(t)
	cfg.SyncInterval = 10 * time.Millisecond
	s := mustOpen(t, cfg)
	defer s.Close()
	r, err := s.NewReader(Position{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	want := genRecords(3, 3000)
	go func() {
		for i := 0; i < len(want); i += 100 {
			s.Append(want[i : i+100])
		}
	}()
	var got []record.Record
	buf := make([]record.Record, 64)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for len(got) < len(want) {
		if err := r.Wait(ctx); err != nil {
			t.Fatalf("Wait() = %v after %d records", err, len(got))
		}
		n, _, err := r.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, buf[:n]...)
	}
	diffRecords(t, got, want)
	if syncs := testutil.ToFloat64(collectorMetric(s, "netledger_spool_syncs_total")); syncs < 1 || syncs > 1000 {
		t.Errorf("syncs = %v, want group commits (1..1000) for 30 appends", syncs)
	}
}

func TestTornTail(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(data []byte) []byte
	}{
		{"cut in payload", func(d []byte) []byte { return d[:len(d)-100] }},
		{"cut in frame header", func(d []byte) []byte { return d[:lastFrame(d)+3] }},
		{"cut after frame header", func(d []byte) []byte { return d[:lastFrame(d)+frameHeaderSize] }},
		{"flipped bit", func(d []byte) []byte { d[len(d)-50] ^= 0x10; return d }},
		{"garbage appended", func(d []byte) []byte { return append(d, 0xff, 0x01, 0, 0, 1, 2, 3, 4, 5) }},
		{"zero length frame", func(d []byte) []byte { return append(d, make([]byte, 64)...) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			s := mustOpen(t, cfg)
			want := genRecords(4, 20)
			if err := s.Append(want[:17]); err != nil {
				t.Fatal(err)
			}
			if err := s.Append(want[17:]); err != nil { // the last frame: 3 records
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			nums, _ := listSegments(cfg.Dir)
			p := filepath.Join(cfg.Dir, segName(nums[0]))
			data, _ := os.ReadFile(p)
			if err := os.WriteFile(p, tc.damage(data), 0o640); err != nil {
				t.Fatal(err)
			}
			if len(nums) != 1 {
				t.Fatalf("segments = %v, want one", nums)
			}
			s = mustOpen(t, cfg)
			defer s.Close()
			keep := 20
			if tc.name != "garbage appended" && tc.name != "zero length frame" {
				keep = 17
			}
			got, _ := readAll(t, s, Position{}, 8)
			diffRecords(t, got, want[:keep])
			more := genRecords(5, 4)
			if err := s.Append(more); err != nil {
				t.Fatal(err)
			}
			if err := s.Sync(); err != nil {
				t.Fatal(err)
			}
			got, _ = readAll(t, s, Position{}, 8)
			diffRecords(t, got, append(want[:keep:keep], more...))
		})
	}
}

func TestResumeFromPosition(t *testing.T) {
	cfg := testConfig(t)
	cfg.SegmentSize = 64 << 10 // several segments
	s := mustOpen(t, cfg)
	want := genRecords(6, 2000)
	for i := 0; i < len(want); i += 50 {
		if err := s.Append(want[i : i+50]); err != nil {
			t.Fatal(err)
		}
		if i%400 == 0 {
			if err := s.Sync(); err != nil {
				t.Fatal(err)
			}
			if err := s.maintain(time.Now()); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, cfg)
	defer s.Close()
	ck := Checkpoint{Path: filepath.Join(t.TempDir(), "consumer.checkpoint")}
	if p, err := ck.Load(); err != nil || p != (Position{}) {
		t.Fatalf("Load() of a missing checkpoint = %v, %v; want zero, nil", p, err)
	}
	// Consume in uneven steps (mid-frame positions included), reopening a reader from the
	// checkpoint after every step as a restarting consumer would.
	var got []record.Record
	steps := []int{1, 49, 50, 7, 333, 1000, 560}
	for _, k := range steps {
		from, err := ck.Load()
		if err != nil {
			t.Fatal(err)
		}
		r, err := s.NewReader(from)
		if err != nil {
			t.Fatalf("NewReader(%v) = %v", from, err)
		}
		buf := make([]record.Record, k)
		n, next, err := r.Read(buf)
		r.Close()
		if err != nil || n != k {
			t.Fatalf("Read(%d) from %v = %d, %v", k, from, n, err)
		}
		got = append(got, buf[:n]...)
		if err := ck.Save(next); err != nil {
			t.Fatal(err)
		}
	}
	diffRecords(t, got, want)
	rest, _ := readAll(t, s, mustLoad(t, ck), 10)
	if len(rest) != 0 {
		t.Errorf("read %d records after the end", len(rest))
	}
	if segs := testutil.ToFloat64(collectorMetric(s, "netledger_spool_segments")); segs < 3 {
		t.Errorf("segments = %v, want rotation by size into several", segs)
	}
}

func mustLoad(t *testing.T, ck Checkpoint) Position {
	p, err := ck.Load()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRotationAndRetention(t *testing.T) {
	cfg := testConfig(t)
	cfg.SegmentAge = time.Minute
	cfg.Retention = time.Hour
	s := mustOpen(t, cfg)
	defer s.Close()
	now := time.Now()
	want := genRecords(7, 40)
	var firstPos Position
	for i := range 4 {
		if err := s.Append(want[i*10 : i*10+10]); err != nil {
			t.Fatal(err)
		}
		if err := s.Sync(); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			firstPos = s.Synced()
		}
		// Age rotation: each step is a minute later.
		if err := s.maintain(now.Add(time.Duration(i+1) * time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	nums, _ := listSegments(cfg.Dir)
	if len(nums) != 5 { // 4 sealed + the current empty one
		t.Fatalf("segments = %v, want 5", nums)
	}
	// An empty current segment is not rotated by age.
	if err := s.maintain(now.Add(10 * time.Minute)); err != nil {
		t.Fatal(err)
	}
	got, _ := readAll(t, s, Position{}, 3)
	diffRecords(t, got, want)
	// Retention: sealed segments' mtimes are "now"; two hours later all four go.
	if lag := s.Lag(s.Synced()); lag != 0 {
		t.Errorf("Lag(synced end) = %d, want 0", lag)
	}
	var total, first int64
	for i, n := range nums[:4] {
		st, _ := os.Stat(filepath.Join(cfg.Dir, segName(n)))
		total += st.Size() - headerSize
		if i == 0 {
			first = st.Size() - headerSize
		}
	}
	if lag := s.Lag(Position{}); lag != total {
		t.Errorf("Lag(zero) = %d, want everything (%d)", lag, total)
	}
	if lag := s.Lag(firstPos); lag != total-first {
		t.Errorf("Lag(%v) = %d, want %d", firstPos, lag, total-first)
	}
	if err := s.maintain(time.Now().Add(2 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	nums, _ = listSegments(cfg.Dir)
	if len(nums) != 1 {
		t.Fatalf("segments after retention = %v, want only the current one", nums)
	}
	if _, err := s.NewReader(firstPos); !errors.Is(err, ErrGone) {
		t.Errorf("NewReader(deleted position) = %v, want ErrGone", err)
	}
	got, _ = readAll(t, s, Position{}, 3)
	if len(got) != 0 {
		t.Errorf("read %d records after retention deleted them", len(got))
	}
	if removed := testutil.ToFloat64(collectorMetric(s, "netledger_spool_segments_removed_total")); removed != 4 {
		t.Errorf("segments removed = %v, want 4", removed)
	}
}

func TestBadPositions(t *testing.T) {
	s := mustOpen(t, testConfig(t))
	defer s.Close()
	s.Append(genRecords(8, 5))
	s.Sync()
	end := s.Synced()
	for _, p := range []Position{
		{Segment: end.Segment, Offset: end.Offset + 10},                  // past the end
		{Segment: end.Segment + 1, Offset: headerSize},                   // future segment
		{Segment: end.Segment, Offset: headerSize + frameHeaderSize + 3}, // not a record boundary
	} {
		if r, err := s.NewReader(p); err == nil {
			r.Close()
			t.Errorf("NewReader(%v) succeeded", p)
		}
	}
}

func TestConcurrentAppendRead(t *testing.T) {
	cfg := testConfig(t)
	cfg.SyncInterval = 5 * time.Millisecond
	cfg.SegmentSize = 32 << 10
	s := mustOpen(t, cfg)
	defer s.Close()
	const writers, per = 4, 500
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			recs := genRecords(uint64(100+w), per)
			for i := 0; i < per; i += 10 {
				if err := s.Append(recs[i : i+10]); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	r, err := s.NewReader(Position{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	buf := make([]record.Record, 33)
	var total int
	var sum uint64
	for total < writers*per {
		if err := r.Wait(ctx); err != nil {
			t.Fatalf("Wait() = %v after %d", err, total)
		}
		n, _, err := r.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		for _, rec := range buf[:n] {
			sum += rec.BytesOut
		}
		total += n
	}
	wg.Wait()
	var want uint64
	for w := range writers {
		for _, rec := range genRecords(uint64(100+w), per) {
			want += rec.BytesOut
		}
	}
	if sum != want {
		t.Errorf("byte sum = %d, want %d", sum, want)
	}
}

func TestCheckpointRejectsGarbage(t *testing.T) {
	ck := Checkpoint{Path: filepath.Join(t.TempDir(), "ck")}
	os.WriteFile(ck.Path, []byte("hello"), 0o600)
	if _, err := ck.Load(); err == nil || !strings.Contains(err.Error(), "checkpoint") {
		t.Errorf("Load(garbage) = %v, want an error", err)
	}
}

func TestOpenRejectsBadConfig(t *testing.T) {
	for _, cfg := range []Config{
		{},
		{Dir: t.TempDir(), SegmentSize: 10, SegmentAge: time.Hour, SyncInterval: time.Second},
		{Dir: t.TempDir(), SegmentSize: 1 << 20, SyncInterval: time.Second},
	} {
		if s, err := Open(cfg); err == nil {
			s.Close()
			t.Errorf("Open(%+v) succeeded", cfg)
		}
	}
}

// collectorMetric returns one metric of the spool's collector.
func collectorMetric(s *Spool, name string) prometheus.Collector {
	return metricFilter{s, name}
}

type metricFilter struct {
	s    *Spool
	name string
}

func (m metricFilter) Describe(ch chan<- *prometheus.Desc) { m.s.Describe(ch) }
func (m metricFilter) Collect(ch chan<- prometheus.Metric) {
	all := make(chan prometheus.Metric, 16)
	m.s.Collect(all)
	close(all)
	for metric := range all {
		if strings.Contains(metric.Desc().String(), `"`+m.name+`"`) {
			ch <- metric
		}
	}
}

func BenchmarkAppend(b *testing.B) {
	s := benchSpool(b)
	recs := reportRecords(64)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := s.Append(recs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*64), "ns/record")
}

func BenchmarkRead(b *testing.B) {
	buf := make([]record.Record, 256)
	benchRead(b, reportSpool(b, 100), func(r *Reader) (int, error) {
		n, _, err := r.Read(buf)
		return n, err
	})
}

// reportSpool returns a spool holding frames of 1,000 report-shaped records, synced.
func reportSpool(b *testing.B, frames int) *Spool {
	s := benchSpool(b)
	recs := reportRecords(1000)
	for range frames {
		if err := s.Append(recs); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Sync(); err != nil {
		b.Fatal(err)
	}
	return s
}

// benchRead reads s with read, again from the start each time it has caught up, and reports
// the time per record.
func benchRead(b *testing.B, s *Spool, read func(*Reader) (int, error)) {
	r, _ := s.NewReader(Position{})
	b.ReportAllocs()
	b.ResetTimer()
	var n int
	for range b.N {
		k, err := read(r)
		if err != nil {
			b.Fatal(err)
		}
		if k == 0 {
			r.Close()
			r, _ = s.NewReader(Position{})
		}
		n += k
	}
	b.StopTimer()
	r.Close()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(max(n, 1)), "ns/record")
}

func benchSpool(b *testing.B) *Spool {
	cfg := DefaultConfig()
	cfg.Dir = b.TempDir()
	s, err := Open(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// lastFrame returns the offset of the last frame of a segment's bytes.
func lastFrame(d []byte) int {
	off, last := headerSize, headerSize
	for {
		l := checkFrame(d[off:])
		if l == 0 {
			return last
		}
		last, off = off, off+l
	}
}

func TestRecordEncoding(t *testing.T) {
	recs := append(genRecords(11, 2000), record.Record{}, record.Record{Time: -5},
		record.Record{Server: netip.MustParseAddr("192.0.2.1"), Exporter: netip.MustParseAddr("192.0.2.1")})
	var b []byte
	for i := range recs {
		start := len(b)
		b = appendRecord(b, &recs[i], recs[0].Time)
		if n := len(b) - start; n > maxRecordSize || n < 2 {
			t.Fatalf("record %d encodes to %d bytes", i, n)
		}
	}
	var r record.Record
	for i := 0; len(b) > 0; i++ {
		n, err := decodeRecord(b, recs[0].Time, &r)
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if r != recs[i] {
			t.Fatalf("record %d:\n-got  %+v\n+want %+v", i, r, recs[i])
		}
		b = b[n:]
	}
	// A typical v2 report is compact.
	typical := record.Record{Time: 1795000000123000000, Client: netip.MustParseAddr("198.51.100.7"),
		Server: netip.MustParseAddr("192.0.2.1"), Exporter: netip.MustParseAddr("192.0.2.1"), Proto: 6,
		Source: record.SourceReportV2, Class: 1, Requests: 1, BytesOut: 48213, Retransmits: 1, MSS: 1448,
		RTT: 23500, RTTVar: 4200, Duration: 182000}
	if n := len(appendRecord(nil, &typical, typical.Time-2e6)); n > 40 {
		t.Errorf("a typical report takes %d bytes", n)
	}
}

func FuzzDecodeRecord(f *testing.F) {
	for _, r := range genRecords(12, 5) {
		f.Add(appendRecord(nil, &r, 0))
	}
	f.Add([]byte{2, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var r record.Record
		n, err := decodeRecord(b, 1000, &r)
		if err != nil {
			return
		}
		again := appendRecord(nil, &r, 1000)
		var r2 record.Record
		if _, err := decodeRecord(again, 1000, &r2); err != nil || r2 != r {
			t.Fatalf("re-encoding %x (%d bytes) of %+v gives %+v, %v", b[:n], n, r, r2, err)
		}
	})
}

// reportRecords returns n records shaped like accepted v2 reports (the collector's load), for
// benchmarks.
func reportRecords(n int) []record.Record {
	rng := rand.New(rand.NewPCG(13, 1))
	server := netip.MustParseAddr("192.0.2.1")
	t0 := time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC).UnixNano()
	recs := make([]record.Record, n)
	for i := range recs {
		recs[i] = record.Record{
			Time: t0 + int64(rng.IntN(100))*1e6, Client: netip.AddrFrom4([4]byte{byte(1 + rng.IntN(223)), byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32())}),
			Server: server, Exporter: server, Proto: 6, Source: record.SourceReportV2, Class: uint16(rng.IntN(3)),
			Requests: 1, BytesOut: rng.Uint64N(1 << 20), Retransmits: rng.Uint32N(3), MSS: 1448,
			RTT: rng.Uint32N(100_000), RTTVar: rng.Uint32N(20_000), Duration: rng.Uint64N(10_000_000),
		}
	}
	return recs
}

func BenchmarkEncodeDecode(b *testing.B) {
	recs := reportRecords(256)
	buf := make([]byte, 0, len(recs)*maxRecordSize)
	var r record.Record
	b.ReportAllocs()
	for range b.N {
		buf = buf[:0]
		for i := range recs {
			buf = appendRecord(buf, &recs[i], recs[0].Time)
		}
		for p := buf; len(p) > 0; {
			n, _ := decodeRecord(p, recs[0].Time, &r)
			p = p[n:]
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(recs)), "ns/record")
	b.ReportMetric(float64(len(buf))/float64(len(recs)), "bytes/record")
}

// TestCodecCoversRecord sets each field of record.Record alone and checks that the spool keeps
// it: a field added to Record without a place in the codec fails here.
func TestCodecCoversRecord(t *testing.T) {
	typ := reflect.TypeFor[record.Record]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		var r record.Record
		v := reflect.ValueOf(&r).Elem().Field(i)
		switch {
		case f.Type == reflect.TypeFor[netip.Addr]():
			v.Set(reflect.ValueOf(netip.MustParseAddr("2001:db8::1")))
		case v.CanInt():
			v.SetInt(-3)
		case v.CanUint():
			v.SetUint(3)
		default:
			t.Fatalf("field %s of type %s: teach this test and the codec about it", f.Name, f.Type)
		}
		b := appendRecord(nil, &r, 0)
		var got record.Record
		if _, err := decodeRecord(b, 0, &got); err != nil || got != r {
			t.Errorf("field %s is not kept by the spool codec: got %+v, %v", f.Name, got, err)
		}
	}
}

// TestCloseKeepsConcurrentAppends closes the spool while writers append: every Append that
// returned nil is in the spool after reopening.
func TestCloseKeepsConcurrentAppends(t *testing.T) {
	cfg := testConfig(t)
	s := mustOpen(t, cfg)
	recs := genRecords(14, 10)
	var ok atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				if err := s.Append(recs); err != nil {
					if !errors.Is(err, ErrClosed) {
						t.Error(err)
					}
					return
				}
				ok.Add(int64(len(recs)))
			}
		})
	}
	time.Sleep(20 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	s = mustOpen(t, cfg)
	defer s.Close()
	got, _ := readAll(t, s, Position{}, 1000)
	if int64(len(got)) != ok.Load() {
		t.Errorf("spool holds %d records, Append accepted %d", len(got), ok.Load())
	}
}

func TestOneProcessPerDirectory(t *testing.T) {
	cfg := testConfig(t)
	s := mustOpen(t, cfg)
	if s2, err := Open(cfg); err == nil || !strings.Contains(err.Error(), "in use") {
		if s2 != nil {
			s2.Close()
		}
		t.Fatalf("second Open() = %v, want in use", err)
	}
	s.Close()
	s = mustOpen(t, cfg) // released by Close
	s.Close()
}

// A consumer's hold keeps expired segments it has not committed past; moving the hold lets
// retention delete them.
func TestRetentionKeepsHeldSegments(t *testing.T) {
	cfg := testConfig(t)
	cfg.SegmentAge = time.Minute
	cfg.Retention = time.Hour
	s := mustOpen(t, cfg)
	defer s.Close()
	now := time.Now()
	want := genRecords(11, 30)
	var positions []Position
	for i := range 3 {
		if err := s.Append(want[i*10 : i*10+10]); err != nil {
			t.Fatal(err)
		}
		if err := s.Sync(); err != nil {
			t.Fatal(err)
		}
		positions = append(positions, s.Synced())
		if err := s.maintain(now.Add(time.Duration(i+1) * time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	// The consumer committed the first segment's records only.
	s.Hold("accounting", positions[0])
	if err := s.maintain(now.Add(3 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	got, _ := readAll(t, s, positions[0], 3)
	diffRecords(t, got, want[10:])
	if held := testutil.ToFloat64(collectorMetric(s, "netledger_spool_retention_held_total")); held == 0 {
		t.Error("retention_held_total = 0, want > 0")
	}
	// Committed past the second segment: the first two go, the third stays.
	s.Hold("accounting", Position{Segment: positions[2].Segment, Offset: headerSize})
	if err := s.maintain(now.Add(3 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.NewReader(positions[0]); !errors.Is(err, ErrGone) {
		t.Errorf("NewReader(released position) = %v, want ErrGone", err)
	}
	got, _ = readAll(t, s, Position{Segment: positions[2].Segment, Offset: headerSize}, 3)
	diffRecords(t, got, want[20:])
	s.Release("accounting")
	if err := s.maintain(now.Add(3 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	if nums, _ := listSegments(cfg.Dir); len(nums) != 1 {
		t.Errorf("segments after release = %v, want only the current one", nums)
	}
}
