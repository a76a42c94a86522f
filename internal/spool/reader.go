package spool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"

	"github.com/netledger/netledger/internal/record"
)

// readChunk is how much a reader reads from a segment file at once.
const readChunk = 256 << 10

// Reader reads synced records in order. A Reader is used by one goroutine.
type Reader struct {
	s *Spool

	seg      uint64
	f        *os.File
	size     int64 // size of a sealed segment, -1 while the segment may still grow
	off      int64 // position of the next record or frame header
	frameEnd int64 // end of the current frame; off == frameEnd at a frame boundary
	base     int64 // the current frame's base time
	// the current frame's first record's offset and number of records
	frameStart int64
	frameRecs  int

	data    []byte // file bytes [dataOff, dataOff+len(data))
	dataOff int64

	// published position, read by the lag metric.
	pubSeg atomic.Uint64
	pubOff atomic.Int64
}

// NewReader returns a reader starting at from: a position returned by Read (typically a
// committed one), or the zero Position for the oldest record kept.
func (s *Spool) NewReader(from Position) (*Reader, error) {
	s.mu.Lock()
	oldest := s.oldestLocked()
	synced := s.synced
	s.mu.Unlock()
	r := &Reader{s: s}
	if from == (Position{}) {
		from = Position{Segment: oldest, Offset: headerSize}
	}
	if from.Segment < oldest {
		return nil, fmt.Errorf("cannot read spool from %s (oldest segment is %d): %w", from, oldest, ErrGone)
	}
	if synced.Less(from) {
		return nil, fmt.Errorf("cannot read spool from %s: past the synced end %s", from, synced)
	}
	if err := r.open(from.Segment); err != nil {
		return nil, err
	}
	if err := r.seek(from.Offset); err != nil {
		r.f.Close()
		return nil, err
	}
	r.publish()
	s.mu.Lock()
	s.readers[r] = struct{}{}
	s.mu.Unlock()
	return r, nil
}

func (r *Reader) open(seg uint64) error {
	f, err := os.Open(r.s.path(seg))
	if err != nil {
		return fmt.Errorf("cannot open spool segment: %w", err)
	}
	var h [headerSize]byte
	if _, err := f.ReadAt(h[:], 0); err != nil {
		f.Close()
		return fmt.Errorf("cannot read spool segment header %d: %w", seg, err)
	}
	if err := checkHeader(h[:], seg); err != nil {
		f.Close()
		return fmt.Errorf("spool segment %d: %w: %w", seg, ErrCorrupt, err)
	}
	if r.f != nil {
		r.f.Close()
	}
	r.f, r.seg, r.size, r.off, r.frameEnd = f, seg, -1, headerSize, headerSize
	r.data, r.dataOff = r.data[:0], 0
	return nil
}

// limit returns the end of readable data in the current segment and whether the segment is
// sealed (so that the reader moves on to the next one at its end).
func (r *Reader) limit() (int64, bool, error) {
	if r.size >= 0 {
		return r.size, true, nil
	}
	r.s.mu.Lock()
	synced := r.s.synced
	r.s.mu.Unlock()
	if r.seg == synced.Segment {
		return synced.Offset, false, nil
	}
	if r.seg > synced.Segment {
		return r.off, false, nil
	}
	st, err := r.f.Stat()
	if err != nil {
		return 0, false, fmt.Errorf("cannot stat spool segment: %w", err)
	}
	r.size = st.Size()
	return r.size, true, nil
}

// bytesAt returns n bytes of the segment at off, which must lie before limit.
func (r *Reader) bytesAt(off int64, n int, limit int64) ([]byte, error) {
	if off >= r.dataOff && off+int64(n) <= r.dataOff+int64(len(r.data)) {
		return r.data[off-r.dataOff:][:n], nil
	}
	if off+int64(n) > limit {
		return nil, fmt.Errorf("spool segment %d at %d: %w: frame past the end", r.seg, off, ErrCorrupt)
	}
	want := int(min(int64(max(n, readChunk)), limit-off))
	if cap(r.data) < want {
		r.data = make([]byte, want)
	}
	r.data = r.data[:want]
	m, err := r.f.ReadAt(r.data, off)
	r.data, r.dataOff = r.data[:m], off
	if m < n {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("cannot read spool segment %d: %w", r.seg, err)
	}
	return r.data[:n], nil
}

// nextFrame reads and checks the frame header at r.off.
func (r *Reader) nextFrame(limit int64) error {
	h, err := r.bytesAt(r.off, frameHeaderSize, limit)
	if err != nil {
		return err
	}
	plen := int(le.Uint32(h))
	if plen > maxFrameRecords*maxRecordSize {
		return fmt.Errorf("spool segment %d at %d: %w: bad frame length", r.seg, r.off, ErrCorrupt)
	}
	b, err := r.bytesAt(r.off, frameHeaderSize+plen, limit)
	if err != nil {
		return err
	}
	if checkFrame(b) == 0 {
		return fmt.Errorf("spool segment %d at %d: %w: checksum mismatch", r.seg, r.off, ErrCorrupt)
	}
	r.base = int64(le.Uint64(b[8:]))
	r.frameEnd = r.off + int64(len(b))
	r.off += frameHeaderSize
	r.frameStart, r.frameRecs = r.off, int(le.Uint32(b[4:]))
	return nil
}

// decode decodes records of the current frame into buf from r.off and returns how many.
func (r *Reader) decode(buf []record.Record) (int, error) {
	rest, err := r.bytesAt(r.off, int(r.frameEnd-r.off), r.frameEnd)
	if err != nil {
		return 0, err
	}
	n, p := 0, 0
	for n < len(buf) && p < len(rest) {
		k, err := decodeRecord(rest[p:], r.base, &buf[n])
		if err != nil {
			r.off += int64(p) // past the records decoded: Read delivers them
			return n, fmt.Errorf("spool segment %d at %d: %w: %w", r.seg, r.off+int64(p), ErrCorrupt, err)
		}
		p += k
		n++
	}
	r.off += int64(p)
	return n, nil
}

// seek moves to offset off of the current segment, which must be a frame boundary or a record
// inside a frame.
func (r *Reader) seek(off int64) error {
	var one [1]record.Record
	for r.off < off {
		if r.off == r.frameEnd {
			limit, _, err := r.limit()
			if err != nil {
				return err
			}
			if r.off >= limit {
				break
			}
			if err := r.nextFrame(limit); err != nil {
				if !errors.Is(err, ErrCorrupt) {
					return err
				}
				if err := r.skip(limit, err); err != nil {
					return err
				}
			}
			continue
		}
		if off >= r.frameEnd {
			r.off = r.frameEnd
			continue
		}
		if _, err := r.decode(one[:]); err != nil {
			if err := r.skip(r.frameEnd, err); err != nil {
				return err
			}
		}
	}
	if r.off != off {
		return fmt.Errorf("cannot read spool from %d:%d: not a record boundary", r.seg, off)
	}
	return nil
}

// Read decodes up to len(buf) synced records into buf and returns how many, and the position
// after them (to commit once they are processed). n is 0 when the reader has caught up; call
// Wait then. Read allocates nothing per record.
func (r *Reader) Read(buf []record.Record) (int, Position, error) {
	n := 0
	for n < len(buf) {
		if r.off < r.frameEnd {
			k, err := r.decode(buf[n:])
			n += k
			if err != nil {
				// The frame checked, so its end is known: skip its undecodable rest.
				if err := r.skip(r.frameEnd, err); err != nil {
					return n, r.pos(), err
				}
			}
			continue
		}
		limit, sealed, err := r.limit()
		if err != nil {
			return n, r.pos(), err
		}
		if r.off >= limit {
			if !sealed {
				break
			}
			if err := r.open(r.seg + 1); err != nil {
				return n, r.pos(), err
			}
			continue
		}
		if err := r.nextFrame(limit); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				return n, r.pos(), err
			}
			if err := r.skip(limit, err); err != nil {
				return n, r.pos(), err
			}
		}
	}
	r.publish()
	return n, r.pos(), nil
}

// skip passes over corrupt data at r.off (disk corruption of synced data, in a sealed segment or
// in the synced part of the current one, or an undecodable record inside a frame whose checksum
// holds) instead of stopping the consumer. The synced offset of the current segment is always a
// frame boundary (Sync publishes the end of whole frames), so a limit there is safe to resume at:
// inside a checked frame it moves to the frame's end, otherwise to the next offset before limit
// where a whole frame checks, or to limit (the segment's end) when none does. The skipped
// region is counted as one corrupt frame plus its bytes, and logged.
func (r *Reader) skip(limit int64, cause error) error {
	from := r.off
	if r.off < r.frameEnd {
		r.off = r.frameEnd
	} else {
		off, err := r.resync(from+1, limit)
		if err != nil {
			return err
		}
		r.off, r.frameEnd = off, off
	}
	r.s.skipped(r.seg, from, r.off, cause)
	return nil
}

// skipped counts and logs the corrupt data [from, to) of segment seg that a reader skipped.
func (s *Spool) skipped(seg uint64, from, to int64, cause error) {
	s.mu.Lock()
	s.corruptFrames++
	s.corruptBytes += uint64(to - from)
	s.mu.Unlock()
	s.log.Error("skipping corrupt spool data", "segment", seg, "offset", from,
		"bytes", to-from, "resume", to, "err", cause)
}

// resync returns the first offset from off on where a complete valid frame ends by limit, or
// limit when there is none.
func (r *Reader) resync(off, limit int64) (int64, error) {
	for ; off+frameHeaderSize <= limit; off++ {
		h, err := r.bytesAt(off, frameHeaderSize, limit)
		if err != nil {
			return 0, err
		}
		plen, n := int64(le.Uint32(h)), int64(le.Uint32(h[4:]))
		if n == 0 || n > maxFrameRecords || plen < 2*n || plen > n*maxRecordSize || off+frameHeaderSize+plen > limit {
			continue
		}
		b, err := r.bytesAt(off, frameHeaderSize+int(plen), limit)
		if err != nil {
			return 0, err
		}
		if checkFrame(b) != 0 {
			return off, nil
		}
	}
	return limit, nil
}

func (r *Reader) pos() Position { return Position{Segment: r.seg, Offset: r.off} }

func (r *Reader) publish() {
	r.pubSeg.Store(r.seg)
	r.pubOff.Store(r.off)
}

// Position returns the position of the next record Read would return.
func (r *Reader) Position() Position { return Position{Segment: r.seg, Offset: r.off} }

// Wait returns when synced data the reader has not read is available (at once if there is),
// when ctx is done (with its error), or with ErrClosed once the spool is closed and everything
// synced was read.
func (r *Reader) Wait(ctx context.Context) error {
	for {
		if r.off < r.frameEnd {
			return nil
		}
		r.s.mu.Lock()
		synced, ch, closed := r.s.synced, r.s.notify, r.s.closed
		r.s.mu.Unlock()
		if r.seg < synced.Segment || (r.seg == synced.Segment && r.off < synced.Offset) {
			return nil
		}
		if closed {
			return ErrClosed
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Close releases the reader's file.
func (r *Reader) Close() error {
	r.s.mu.Lock()
	delete(r.s.readers, r)
	r.s.mu.Unlock()
	if r.f == nil {
		return errors.New("spool reader already closed")
	}
	err := r.f.Close()
	r.f = nil
	return err
}
