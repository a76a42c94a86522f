package spool

import (
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/netledger/netledger/internal/record"
)

// readAllFrames reads everything synced from `from` with ReadFrames (blocks of at most
// maxRecords) and Decode (into a buffer of bufLen), decoding each block on another goroutine
// while the next is read, and returns the records and every position ReadFrames returned.
func readAllFrames(t *testing.T, s *Spool, from Position, maxRecords, bufLen int) ([]record.Record, []Position) {
	t.Helper()
	r, err := s.NewReader(from)
	if err != nil {
		t.Fatalf("NewReader(%v) error = %v", from, err)
	}
	defer r.Close()
	var (
		got   []record.Record
		poss  []Position
		fs    [2]Frames
		wg    sync.WaitGroup
		total int
	)
	for i := 0; ; i++ {
		f := &fs[i%2]
		n, p, err := r.ReadFrames(f, maxRecords)
		if err != nil {
			t.Fatalf("ReadFrames() error = %v", err)
		}
		wg.Wait() // the other block is decoded
		if n == 0 {
			return got, poss
		}
		if f.Records() != n || n > maxRecords {
			t.Fatalf("ReadFrames() = %d records, Records() %d, at most %d", n, f.Records(), maxRecords)
		}
		total += n
		poss = append(poss, p)
		wg.Add(1)
		go func() { // decoded by another goroutine while the reader reads on
			defer wg.Done()
			buf := make([]record.Record, bufLen)
			for {
				k := f.Decode(buf)
				if k == 0 {
					return
				}
				got = append(got, buf[:k]...)
			}
		}()
	}
}

// TestFramesMatchRead: over random spools (several segments, frames of 1 to 1,024 records)
// with damage (payload bytes flipped, an undecodable record under a valid checksum, garbage
// between frames), ReadFrames and Decode give the records Read gives, in the same order, with
// the same corrupt data counted, from the start and from positions inside frames; each
// position ReadFrames returns continues exactly after its block.
func TestFramesMatchRead(t *testing.T) {
	for seed := range uint64(6) {
		rng := rand.New(rand.NewPCG(seed, 9))
		cfg := testConfig(t)
		cfg.SegmentAge = time.Minute
		s := mustOpen(t, cfg)
		all := genRecords(seed, 9000)
		for i := 0; i < len(all); {
			n := min(len(all)-i, 1+rng.IntN(1500))
			if err := s.Append(all[i : i+n]); err != nil {
				t.Fatal(err)
			}
			i += n
			if rng.IntN(4) == 0 {
				if err := s.Sync(); err != nil {
					t.Fatal(err)
				}
				if err := s.maintain(time.Now().Add(2 * time.Minute)); err != nil { // seal: a new segment
					t.Fatal(err)
				}
			}
		}
		if err := s.Sync(); err != nil {
			t.Fatal(err)
		}
		// damage a few frames of sealed segments
		nums, _ := listSegments(cfg.Dir)
		for _, num := range nums[:len(nums)-1] {
			p := filepath.Join(cfg.Dir, segName(num))
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			offs := frameOffsets(data)
			for _, i := range rng.Perm(len(offs))[:min(2, len(offs))] {
				off := offs[i]
				l := checkFrame(data[off:])
				switch rng.IntN(3) {
				case 0: // payload bytes: the checksum fails
					data[off+frameHeaderSize+rng.IntN(l-frameHeaderSize)] ^= 0x5a
				case 1: // a record with a length of 2 and no bitmap, under a valid checksum
					q := off + frameHeaderSize
					for range rng.IntN(int(le.Uint32(data[off+4:]))) {
						q += int(data[q])
					}
					data[q] = 2
					fixCRC(data[off : off+l])
				case 2: // the frame's length
					data[off+1] ^= 0xff
				}
			}
			if err := os.WriteFile(p, data, 0o640); err != nil {
				t.Fatal(err)
			}
		}
		counters := func() (float64, float64) {
			return testutil.ToFloat64(collectorMetric(s, "netledger_spool_corrupt_frames_total")),
				testutil.ToFloat64(collectorMetric(s, "netledger_spool_corrupt_bytes_total"))
		}
		// every record boundary Read returns, to start from
		var starts []Position
		f0, b0 := counters()
		want, _ := readAll(t, s, Position{}, 1+rng.IntN(700))
		f1, b1 := counters()
		{
			r, err := s.NewReader(Position{})
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]record.Record, 1+rng.IntN(300))
			for {
				n, p, err := r.Read(buf)
				if err != nil || n == 0 {
					break
				}
				starts = append(starts, p)
			}
			r.Close()
		}
		f2, b2 := counters()
		got, poss := readAllFrames(t, s, Position{}, MaxFrameRecords+rng.IntN(4*MaxFrameRecords), 1+rng.IntN(1500))
		f3, b3 := counters()
		diffRecords(t, got, want)
		if f1-f0 == 0 || f3-f2 != f1-f0 || b3-b2 != b1-b0 {
			t.Errorf("seed %d: ReadFrames counted %v corrupt frames, %v bytes; Read %v, %v", seed, f3-f2, b3-b2, f1-f0, b1-b0)
		}
		// each position ReadFrames returned: reading from it gives what follows
		for _, p := range poss[:min(len(poss), 5)] {
			r1, _ := readAll(t, s, p, 500)
			r2, _ := readAllFrames(t, s, p, MaxFrameRecords, 333)
			diffRecords(t, r2, r1)
			if len(r1) > len(want) || (len(r1) > 0 && r1[0] != want[len(want)-len(r1)]) {
				t.Fatalf("seed %d: from %v: %d records, not the tail of the %d", seed, p, len(r1), len(want))
			}
		}
		// from positions inside frames (Read's, with odd buffer sizes)
		for _, i := range rng.Perm(len(starts))[:min(len(starts), 6)] {
			r1, _ := readAll(t, s, starts[i], 257)
			r2, _ := readAllFrames(t, s, starts[i], MaxFrameRecords+rng.IntN(3000), 100)
			diffRecords(t, r2, r1)
		}
		if _, _, err := mustReader(t, s).ReadFrames(&Frames{}, MaxFrameRecords-1); err == nil {
			t.Error("ReadFrames with room for less than a frame: no error")
		}
		s.Close()
	}
}

func mustReader(t *testing.T, s *Spool) *Reader {
	t.Helper()
	r, err := s.NewReader(Position{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// FuzzFramesDecode decodes arbitrary bytes as a frame's records: Decode never panics, never
// returns more records than its buffer holds, and ends.
func FuzzFramesDecode(f *testing.F) {
	for _, r := range genRecords(13, 3) {
		f.Add(appendRecord(appendRecord(nil, &r, 0), &r, 0))
	}
	f.Add([]byte{2, 0})
	f.Add([]byte{0})
	f.Fuzz(func(t *testing.T, b []byte) {
		s := &Spool{log: slog.New(slog.DiscardHandler)}
		fr := Frames{s: s, data: b, parts: []framePart{{start: 0, end: len(b)}}, records: countRecords(b)}
		buf := make([]record.Record, 3)
		total := 0
		for range len(b) + 1 {
			n := fr.Decode(buf)
			if n > len(buf) {
				t.Fatalf("Decode returned %d records into %d", n, len(buf))
			}
			if n == 0 {
				break
			}
			total += n
		}
		if fr.Decode(buf) != 0 {
			t.Fatal("Decode does not end")
		}
		if total > fr.Records() {
			t.Fatalf("decoded %d records, Records() %d", total, fr.Records())
		}
	})
}

// BenchmarkReadFrames is the reading goroutine's share: blocks of 4,096 records' frames read and
// checked, not decoded.
func BenchmarkReadFrames(b *testing.B) {
	var f Frames
	benchRead(b, reportSpool(b, 100), func(r *Reader) (int, error) {
		n, _, err := r.ReadFrames(&f, 4*MaxFrameRecords)
		return n, err
	})
}

// BenchmarkFramesDecode is a worker's share: the records of a block decoded 1,024 at a time.
func BenchmarkFramesDecode(b *testing.B) {
	s := reportSpool(b, 4)
	var f Frames
	r, _ := s.NewReader(Position{})
	defer r.Close()
	n, _, err := r.ReadFrames(&f, 4*MaxFrameRecords)
	if err != nil || n != 4000 {
		b.Fatalf("ReadFrames = %d, %v", n, err)
	}
	buf := make([]record.Record, 1024)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		f.part, f.p = 0, 0
		for f.Decode(buf) > 0 {
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
}
