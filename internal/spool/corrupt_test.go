package spool

import (
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/netledger/netledger/internal/record"
)

// frameOffsets returns the offsets of a segment's frames.
func frameOffsets(d []byte) []int {
	var offs []int
	for off := headerSize; ; {
		l := checkFrame(d[off:])
		if l == 0 {
			return offs
		}
		offs = append(offs, off)
		off += l
	}
}

// TestSkipCorruptSealedFrame damages the middle frame of a sealed segment; the reader skips it
// and delivers every other frame's records, of that segment and the next, and counts it.
func TestSkipCorruptSealedFrame(t *testing.T) {
	for _, tc := range []struct {
		name string
		// damage corrupts the frame at off (frame length l) of segment data d.
		damage func(d []byte, off, l int)
		bytes  int // want skipped bytes: 0 means the frame's length
	}{
		{"payload bytes", func(d []byte, off, l int) {
			for i := off + frameHeaderSize + 5; i < off+frameHeaderSize+25; i++ {
				d[i] ^= 0x5a
			}
		}, 0},
		{"frame length", func(d []byte, off, l int) { d[off+1] = 0xff }, 0},
		{"zeroed frame", func(d []byte, off, l int) { clear(d[off : off+l]) }, 0},
		{"undecodable record, checksum holds", func(d []byte, off, l int) {
			d[off+frameHeaderSize+int(d[off+frameHeaderSize])] = 2 // the second record: a length of 2 with no bitmap
			fixCRC(d[off : off+l])
		}, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.SegmentAge = time.Minute
			s := mustOpen(t, cfg)
			defer s.Close()
			want := genRecords(11, 70)
			for i := range 5 { // segment 1: five frames of ten records
				if err := s.Append(want[i*10 : i*10+10]); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Sync(); err != nil {
				t.Fatal(err)
			}
			if err := s.maintain(time.Now().Add(2 * time.Minute)); err != nil { // seal it
				t.Fatal(err)
			}
			for i := 5; i < 7; i++ { // segment 2: two more frames
				if err := s.Append(want[i*10 : i*10+10]); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Sync(); err != nil {
				t.Fatal(err)
			}
			nums, _ := listSegments(cfg.Dir)
			if len(nums) != 2 {
				t.Fatalf("segments = %v, want two", nums)
			}
			p := filepath.Join(cfg.Dir, segName(nums[0]))
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			offs := frameOffsets(data)
			if len(offs) != 5 {
				t.Fatalf("sealed segment has %d frames, want 5", len(offs))
			}
			off, l := offs[2], offs[3]-offs[2]
			tc.damage(data, off, l)
			if err := os.WriteFile(p, data, 0o640); err != nil {
				t.Fatal(err)
			}
			got, _ := readAll(t, s, Position{}, 7)
			var exp []record.Record
			exp = append(exp, want[:20]...)
			wantBytes := l
			if tc.bytes < 0 { // the first record of the frame decodes and is delivered
				exp = append(exp, want[20])
				wantBytes = l - frameHeaderSize - int(data[off+frameHeaderSize])
			}
			exp = append(exp, want[30:]...)
			diffRecords(t, got, exp)
			if n := testutil.ToFloat64(collectorMetric(s, "netledger_spool_corrupt_frames_total")); n != 1 {
				t.Errorf("corrupt frames = %v, want 1", n)
			}
			if n := testutil.ToFloat64(collectorMetric(s, "netledger_spool_corrupt_bytes_total")); n != float64(wantBytes) {
				t.Errorf("corrupt bytes = %v, want %d", n, wantBytes)
			}
			// A reader starting after the damage (a committed position) reads the rest.
			got, _ = readAll(t, s, Position{Segment: nums[0], Offset: int64(offs[3])}, 7)
			diffRecords(t, got, want[30:])
		})
	}
}

// TestSkipCorruptSegmentTail damages the last frame of a sealed segment: no frame checks after
// it, so the reader goes on with the next segment.
func TestSkipCorruptSegmentTail(t *testing.T) {
	cfg := testConfig(t)
	cfg.SegmentAge = time.Minute
	s := mustOpen(t, cfg)
	defer s.Close()
	want := genRecords(12, 30)
	for i := range 2 {
		if err := s.Append(want[i*10 : i*10+10]); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := s.maintain(time.Now().Add(2 * time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(want[20:]); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	nums, _ := listSegments(cfg.Dir)
	p := filepath.Join(cfg.Dir, segName(nums[0]))
	data, _ := os.ReadFile(p)
	offs := frameOffsets(data)
	data[len(data)-3] ^= 0xff
	if err := os.WriteFile(p, data, 0o640); err != nil {
		t.Fatal(err)
	}
	got, _ := readAll(t, s, Position{}, 8)
	diffRecords(t, got, append(want[:10:10], want[20:]...))
	if n := testutil.ToFloat64(collectorMetric(s, "netledger_spool_corrupt_bytes_total")); n != float64(len(data)-offs[1]) {
		t.Errorf("corrupt bytes = %v, want %d", n, len(data)-offs[1])
	}
}

// fixCRC recomputes the checksum of the frame b.
func fixCRC(b []byte) {
	le.PutUint32(b[16:], crc32.Update(crc32.Checksum(b[:16], castagnoli), castagnoli, b[frameHeaderSize:]))
}
