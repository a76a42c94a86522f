package spool

import (
	"fmt"
	"io"
	"os"
	"time"
)

// SegmentInfo describes a kept segment.
type SegmentInfo struct {
	// Number is the segment's number; segments are numbered from 1 in order of creation.
	Number uint64
	// Created is when the segment was started: no record in it arrived before.
	Created time.Time
	// Size is its size in bytes (the current segment's: what was written so far).
	Size int64
}

// Segments returns the kept segments, oldest first, the current one last (netledger replay
// chooses where to start reading from their creation times).
func (s *Spool) Segments() ([]SegmentInfo, error) {
	s.mu.Lock()
	nums := make([]uint64, 0, len(s.sealed)+1)
	for _, si := range s.sealed {
		nums = append(nums, si.num)
	}
	nums = append(nums, s.seg)
	s.mu.Unlock()
	out := make([]SegmentInfo, 0, len(nums))
	for _, n := range nums {
		f, err := os.Open(s.path(n))
		if err != nil {
			return nil, fmt.Errorf("cannot open spool segment: %w", err)
		}
		var h [headerSize]byte
		_, err = io.ReadFull(f, h[:])
		st, serr := f.Stat()
		f.Close()
		if err == nil {
			err = checkHeader(h[:], n)
		}
		if err == nil {
			err = serr
		}
		if err != nil {
			return nil, fmt.Errorf("spool segment %d: %w", n, err)
		}
		out = append(out, SegmentInfo{Number: n, Created: time.Unix(0, int64(le.Uint64(h[16:]))), Size: st.Size()})
	}
	return out, nil
}

// SegmentStart returns the position of the first record of segment n.
func SegmentStart(n uint64) Position { return Position{Segment: n, Offset: headerSize} }
