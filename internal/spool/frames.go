package spool

import (
	"errors"
	"fmt"

	"github.com/netledger/netledger/internal/record"
)

// MaxFrameRecords is the most records a frame holds: ReadFrames takes whole frames.
const MaxFrameRecords = maxFrameRecords

// Frames is a block of checked spool frames read by Reader.ReadFrames, whose records one
// goroutine at a time — not necessarily the reader's — decodes with Decode. The frames' bytes
// are copied: the reader goes on while they are decoded. Reuse it: ReadFrames resets it.
type Frames struct {
	s       *Spool
	data    []byte // the frames' records, back to back
	parts   []framePart
	records int
	// the decoding cursor: the part under way and the offset in data of its next record
	part, p int
}

// framePart is a frame, or the rest of one when reading started inside it.
type framePart struct {
	base       int64  // the frame's base time
	seg        uint64 // where data[start] is in the spool, for the corrupt data log
	off        int64
	start, end int // the bounds of its records in data
}

// ReadFrames resets f and reads into it the synced frames after the reader's position — the
// rest of the current frame first when the position is inside one —, their checksums checked
// and corrupt ones skipped as Read skips them, while f holds at most maxRecords records (at
// least one frame when there is one: maxRecords must be at least MaxFrameRecords). It returns
// the number of records in f and the position after them, a frame boundary, to commit once
// they are processed. records is 0 when the reader has caught up: call Wait then. Decoding f's
// records gives what Read would have given; a record that does not decode is found by Decode.
// ReadFrames allocates nothing per record (f's buffers grow to the largest block and stay).
func (r *Reader) ReadFrames(f *Frames, maxRecords int) (records int, pos Position, err error) {
	if maxRecords < MaxFrameRecords {
		return 0, r.pos(), fmt.Errorf("spool: ReadFrames needs room for %d records, got %d", MaxFrameRecords, maxRecords)
	}
	f.s, f.data, f.parts, f.records, f.part, f.p = r.s, f.data[:0], f.parts[:0], 0, 0, 0
	for {
		if r.off < r.frameEnd {
			rest, err := r.bytesAt(r.off, int(r.frameEnd-r.off), r.frameEnd)
			if err != nil {
				return f.records, r.pos(), err
			}
			n := r.frameRecs
			if r.off != r.frameStart {
				n = countRecords(rest)
			}
			if f.records > 0 && f.records+n > maxRecords {
				if r.off == r.frameStart { // back to the frame's header: a frame boundary
					r.off -= frameHeaderSize
					r.frameEnd = r.off
				}
				break
			}
			f.parts = append(f.parts, framePart{base: r.base, seg: r.seg, off: r.off, start: len(f.data), end: len(f.data) + len(rest)})
			f.data = append(f.data, rest...)
			f.records += n
			r.off = r.frameEnd
			continue
		}
		limit, sealed, err := r.limit()
		if err != nil {
			return f.records, r.pos(), err
		}
		if r.off >= limit {
			if !sealed {
				break
			}
			if err := r.open(r.seg + 1); err != nil {
				return f.records, r.pos(), err
			}
			continue
		}
		if err := r.nextFrame(limit); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				return f.records, r.pos(), err
			}
			if err := r.skip(limit, err); err != nil {
				return f.records, r.pos(), err
			}
		}
	}
	r.publish()
	return f.records, r.pos(), nil
}

// countRecords counts the records of b by their length bytes, up to the first bad one.
func countRecords(b []byte) int {
	n := 0
	for p := 0; p < len(b) && b[p] >= 2; p += int(b[p]) {
		n++
	}
	return n
}

// Records returns the number of records ReadFrames put in f: what Decode returns in all, unless
// some do not decode.
func (f *Frames) Records() int { return f.records }

// Decode decodes the next records of f into buf, from where the previous call stopped, and
// returns how many: 0 once all are decoded. A record that does not decode (its frame's
// checksum held) ends its frame: the rest is skipped, counted and logged as Read does. It
// allocates nothing.
func (f *Frames) Decode(buf []record.Record) int {
	n := 0
	for n < len(buf) && f.part < len(f.parts) {
		pt := &f.parts[f.part]
		if f.p < pt.start {
			f.p = pt.start
		}
		if f.p >= pt.end {
			f.part++
			continue
		}
		k, err := decodeRecord(f.data[f.p:pt.end], pt.base, &buf[n])
		if err != nil {
			from := pt.off + int64(f.p-pt.start)
			f.s.skipped(pt.seg, from, pt.off+int64(pt.end-pt.start),
				fmt.Errorf("spool segment %d at %d: %w: %w", pt.seg, from, ErrCorrupt, err))
			f.p = pt.end
			continue
		}
		f.p += k
		n++
	}
	return n
}
