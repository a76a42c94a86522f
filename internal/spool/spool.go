// Package spool is netledger's write-ahead log: sources append records, consumers (the
// accounting pipeline, `netledger replay`) read them back in order from a position they commit
// themselves. Records are kept in numbered segment files with a fixed binary encoding (see
// codec.go), checksummed per appended batch, fsynced in groups every SyncInterval, sealed by size
// or age and deleted after Retention. Readers only ever see synced records, so a position a
// consumer committed stays valid across a crash of the process or the machine.
package spool

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netledger/netledger/internal/record"
)

// ErrClosed is returned by Append and Wait once the spool is closed.
var ErrClosed = errors.New("spool closed")

// ErrGone is returned by NewReader for a position in a segment deleted by retention.
var ErrGone = errors.New("spool position no longer kept")

// ErrCorrupt is returned by a reader that finds synced data failing its checksum.
var ErrCorrupt = errors.New("spool data corrupt")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// flushThreshold bounds the encoded bytes kept in memory before they are written (not
// synced) to the segment file.
const flushThreshold = 1 << 20

// Position is a place in the spool: a segment number and a byte offset in it. Positions are
// comparable; the zero value means the oldest record kept. Read returns the position after the
// records it returned, which a consumer commits to resume from it.
type Position struct {
	Segment uint64
	Offset  int64
}

// String returns the position as "segment:offset".
func (p Position) String() string { return fmt.Sprintf("%d:%d", p.Segment, p.Offset) }

// Less reports whether p comes before q.
func (p Position) Less(q Position) bool {
	return p.Segment < q.Segment || (p.Segment == q.Segment && p.Offset < q.Offset)
}

type segInfo struct {
	num  uint64
	size int64
	mod  time.Time
}

// Spool is an open spool directory. Append is safe for concurrent use; one process owns a
// directory at a time.
type Spool struct {
	cfg Config
	log *slog.Logger

	syncMu sync.Mutex // serialises sync and maintenance (fsync happens outside mu)

	mu         sync.Mutex
	f          *os.File
	seg        uint64
	segCreated time.Time
	written    int64  // bytes written to f (header included)
	pending    []byte // encoded frames not yet written to f
	dirty      bool   // bytes written to f since the last fsync
	synced     Position
	notify     chan struct{}
	sealed     []segInfo // oldest first
	readers    map[*Reader]struct{}
	holds      map[string]Position // consumers' committed positions: retention keeps them
	held       uint64              // segment deletions retention postponed for a hold
	// corrupt regions (and their bytes) readers skipped in sealed segments
	corruptFrames, corruptBytes uint64
	err                         error // sticky write error
	closing                     bool  // Close called: Append refuses
	closed                      bool  // Close done: Wait returns ErrClosed once caught up
	appended                    uint64
	syncs                       uint64
	removed                     uint64

	lock *os.File // flock'ed: one process per directory

	kick chan struct{}
	stop chan struct{}
	done chan struct{}
}

func segName(n uint64) string { return fmt.Sprintf("%020d.seg", n) }

func (s *Spool) path(n uint64) string { return filepath.Join(s.cfg.Dir, segName(n)) }

// Open opens (creating it if needed) the spool directory cfg.Dir, truncates a torn tail left by
// a crash in its last segment, starts a new segment and the group-commit goroutine.
func Open(cfg Config) (*Spool, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("cannot create spool directory: %w", err)
	}
	var err error
	s := &Spool{
		cfg:     cfg,
		log:     slog.Default().With("component", "spool"),
		notify:  make(chan struct{}),
		readers: map[*Reader]struct{}{},
		kick:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	if s.lock, err = lockDir(cfg.Dir); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			s.lock.Close()
		}
	}()
	nums, err := listSegments(cfg.Dir)
	if err != nil {
		return nil, err
	}
	next := uint64(1)
	for i, n := range nums {
		p := s.path(n)
		if i == len(nums)-1 {
			size, err := recoverSegment(p, n)
			if err != nil {
				return nil, err
			}
			if size <= headerSize {
				// Nothing synced in it: reuse its number.
				if err := os.Remove(p); err != nil {
					return nil, fmt.Errorf("cannot remove empty spool segment: %w", err)
				}
				next = n
				break
			}
		}
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("cannot stat spool segment: %w", err)
		}
		s.sealed = append(s.sealed, segInfo{num: n, size: st.Size(), mod: st.ModTime()})
		next = n + 1
	}
	if err := s.createSegment(next); err != nil {
		return nil, err
	}
	s.synced = Position{Segment: next, Offset: headerSize}
	ok = true
	go s.loop()
	return s, nil
}

// lockDir takes an exclusive lock on dir/LOCK, released when the file is closed or the process
// dies, so that two processes never write one spool.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return nil, fmt.Errorf("cannot open spool lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("spool directory %s is in use by another process: %w", dir, err)
	}
	return f, nil
}

// listSegments returns the segment numbers in dir, sorted.
func listSegments(dir string) ([]uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("cannot list spool directory: %w", err)
	}
	var nums []uint64
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".seg")
		if !ok || e.IsDir() {
			continue
		}
		n, err := strconv.ParseUint(name, 10, 64)
		if err != nil || n == 0 {
			continue
		}
		nums = append(nums, n)
	}
	slices.Sort(nums)
	return nums, nil
}

func encodeHeader(b []byte, num uint64, created time.Time) {
	copy(b[0:8], segMagic)
	le.PutUint16(b[8:], segVersion)
	le.PutUint16(b[10:], 0)
	le.PutUint32(b[12:], 0)
	le.PutUint64(b[16:], uint64(created.UnixNano()))
	le.PutUint32(b[24:], uint32(num))
	le.PutUint32(b[28:], crc32.Checksum(b[:28], castagnoli))
}

func checkHeader(b []byte, num uint64) error {
	if len(b) < headerSize || string(b[0:8]) != segMagic {
		return errors.New("not a spool segment")
	}
	if crc32.Checksum(b[:28], castagnoli) != le.Uint32(b[28:]) {
		return errors.New("segment header checksum mismatch")
	}
	if v := le.Uint16(b[8:]); v != segVersion {
		return fmt.Errorf("unsupported segment version %d", v)
	}
	if le.Uint32(b[24:]) != uint32(num) {
		return errors.New("segment number mismatch")
	}
	return nil
}

// checkFrame validates the frame at the start of b and returns its length (header included),
// or 0 when b holds no complete valid frame.
func checkFrame(b []byte) int {
	if len(b) < frameHeaderSize {
		return 0
	}
	plen, n := int(le.Uint32(b)), int(le.Uint32(b[4:]))
	if n == 0 || n > maxFrameRecords || plen < 2*n || plen > n*maxRecordSize {
		return 0
	}
	l := frameHeaderSize + plen
	if len(b) < l {
		return 0
	}
	crc := crc32.Update(crc32.Checksum(b[:16], castagnoli), castagnoli, b[frameHeaderSize:l])
	if crc != le.Uint32(b[16:]) {
		return 0
	}
	return l
}

// recoverSegment checks the last segment after a restart and truncates it after its last valid
// frame. It returns the resulting size (0 when the header itself is bad).
func recoverSegment(p string, num uint64) (int64, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return 0, fmt.Errorf("cannot read spool segment: %w", err)
	}
	if checkHeader(data, num) != nil {
		return 0, nil
	}
	off := headerSize
	for {
		l := checkFrame(data[off:])
		if l == 0 {
			break
		}
		off += l
	}
	if off < len(data) {
		slog.Warn("truncating torn spool segment tail", "segment", p, "from", len(data), "to", off)
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			return 0, fmt.Errorf("cannot open spool segment: %w", err)
		}
		defer f.Close()
		if err := f.Truncate(int64(off)); err != nil {
			return 0, fmt.Errorf("cannot truncate spool segment: %w", err)
		}
		if err := f.Sync(); err != nil {
			return 0, fmt.Errorf("cannot sync spool segment: %w", err)
		}
	}
	return int64(off), nil
}

// createSegment creates segment num, writes and syncs its header, and makes it current.
func (s *Spool) createSegment(num uint64) error {
	now := time.Now()
	f, err := os.OpenFile(s.path(num), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
	if err != nil {
		return fmt.Errorf("cannot create spool segment: %w", err)
	}
	var h [headerSize]byte
	encodeHeader(h[:], num, now)
	if _, err := f.Write(h[:]); err != nil {
		f.Close()
		return fmt.Errorf("cannot write spool segment header: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("cannot sync spool segment: %w", err)
	}
	if err := syncDir(s.cfg.Dir); err != nil {
		f.Close()
		return err
	}
	s.f, s.seg, s.segCreated, s.written, s.dirty = f, num, now, headerSize, false
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("cannot open spool directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("cannot sync spool directory: %w", err)
	}
	return nil
}

// Append adds records to the spool. It only encodes them into memory (written out in large
// writes); they become durable, and visible to readers, at the next group commit, at most
// SyncInterval later. It never fsyncs and allocates nothing per record.
func (s *Spool) Append(recs []record.Record) error {
	if len(recs) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return ErrClosed
	}
	if s.err != nil {
		return s.err
	}
	s.appended += uint64(len(recs))
	for len(recs) > 0 {
		n := min(len(recs), maxFrameRecords)
		start := len(s.pending)
		s.pending = slices.Grow(s.pending, frameHeaderSize+n*maxRecordSize)[:start+frameHeaderSize]
		base := recs[0].Time
		for i := range n {
			s.pending = appendRecord(s.pending, &recs[i], base)
		}
		b := s.pending[start:]
		le.PutUint32(b[0:], uint32(len(b)-frameHeaderSize))
		le.PutUint32(b[4:], uint32(n))
		le.PutUint64(b[8:], uint64(base))
		le.PutUint32(b[16:], crc32.Update(crc32.Checksum(b[:16], castagnoli), castagnoli, b[frameHeaderSize:]))
		recs = recs[n:]
	}
	if len(s.pending) >= flushThreshold {
		if err := s.flushLocked(); err != nil {
			return err
		}
	}
	if s.written+int64(len(s.pending)) >= s.cfg.SegmentSize {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
	return nil
}

// flushLocked writes pending frames to the current segment file (without syncing).
func (s *Spool) flushLocked() error {
	if len(s.pending) == 0 {
		return nil
	}
	n, err := s.f.Write(s.pending)
	s.written += int64(n)
	s.pending = s.pending[:0]
	s.dirty = true
	if err != nil {
		s.err = fmt.Errorf("cannot write spool segment: %w", err)
		return s.err
	}
	return nil
}

func (s *Spool) broadcastLocked() {
	close(s.notify)
	s.notify = make(chan struct{})
}

func (s *Spool) loop() {
	defer close(s.done)
	t := time.NewTicker(s.cfg.SyncInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		case <-s.kick:
		}
		if err := s.Sync(); err != nil {
			s.log.Error("spool sync failed", "err", err)
		}
		if err := s.maintain(time.Now()); err != nil {
			s.log.Error("spool maintenance failed", "err", err)
		}
	}
}

// Sync writes and fsyncs what was appended so far and makes it visible to readers. The group
// commit calls it every SyncInterval; callers need not.
func (s *Spool) Sync() error {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	s.mu.Lock()
	if s.err != nil {
		defer s.mu.Unlock()
		return s.err
	}
	if err := s.flushLocked(); err != nil {
		s.mu.Unlock()
		return err
	}
	if !s.dirty {
		s.mu.Unlock()
		return nil
	}
	pos, f := Position{Segment: s.seg, Offset: s.written}, s.f
	s.dirty = false
	s.mu.Unlock()

	err := f.Sync() // appends continue meanwhile

	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.err = fmt.Errorf("cannot sync spool segment: %w", err)
		return s.err
	}
	s.syncs++
	if s.synced.Less(pos) {
		s.synced = pos
		s.broadcastLocked()
	}
	return nil
}

// maintain seals the current segment when it is full or old, and deletes expired segments.
func (s *Spool) maintain(now time.Time) error {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing || s.err != nil {
		return s.err
	}
	size := s.written + int64(len(s.pending))
	if size > headerSize && (size >= s.cfg.SegmentSize || now.Sub(s.segCreated) >= s.cfg.SegmentAge) {
		if err := s.rotateLocked(now); err != nil {
			s.err = err
			return err
		}
	}
	if s.cfg.Retention > 0 {
		for len(s.sealed) > 0 && now.Sub(s.sealed[0].mod) > s.cfg.Retention {
			if s.heldLocked(s.sealed[0].num) {
				s.held++
				break
			}
			if err := os.Remove(s.path(s.sealed[0].num)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("cannot remove expired spool segment: %w", err)
			}
			s.sealed = s.sealed[1:]
			s.removed++
		}
	}
	return nil
}

func (s *Spool) rotateLocked(now time.Time) error {
	if err := s.flushLocked(); err != nil {
		return err
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("cannot sync spool segment: %w", err)
	}
	if err := s.f.Close(); err != nil {
		return fmt.Errorf("cannot close spool segment: %w", err)
	}
	s.sealed = append(s.sealed, segInfo{num: s.seg, size: s.written, mod: now})
	if err := s.createSegment(s.seg + 1); err != nil {
		return err
	}
	s.synced = Position{Segment: s.seg, Offset: headerSize}
	s.broadcastLocked()
	return nil
}

// Close syncs what was appended and closes the spool. Readers may still read what was synced.
func (s *Spool) Close() error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return ErrClosed
	}
	s.closing = true // from here on Append refuses, so the final sync below keeps everything
	s.mu.Unlock()
	close(s.stop)
	<-s.done
	err := s.Sync()
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.broadcastLocked()
	if cerr := s.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("cannot close spool segment: %w", cerr)
	}
	s.lock.Close()
	return err
}

// Synced returns the position after the last synced record.
func (s *Spool) Synced() Position {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.synced
}

// Lag returns how many bytes of synced data follow p (0 when p is at or past the end).
func (s *Spool) Lag(p Position) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lagLocked(p)
}

func (s *Spool) lagLocked(p Position) int64 {
	if !p.Less(s.synced) {
		return 0
	}
	if p.Segment == s.synced.Segment {
		return s.synced.Offset - p.Offset
	}
	lag := s.synced.Offset - headerSize
	i := sort.Search(len(s.sealed), func(i int) bool { return s.sealed[i].num >= p.Segment })
	for ; i < len(s.sealed); i++ {
		si := s.sealed[i]
		if si.num == p.Segment {
			lag += max(si.size-max(p.Offset, headerSize), 0)
		} else {
			lag += si.size - headerSize
		}
	}
	return lag
}

// Hold keeps the segment holding p, and every later one, from retention until the consumer
// moves its hold: a consumer whose committed position lags (its store is down, say) loses no
// record to retention. Consumers call Hold with their committed position when they start and
// after every commit; Release drops the hold of a consumer that is gone for good.
func (s *Spool) Hold(consumer string, p Position) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.holds == nil {
		s.holds = make(map[string]Position)
	}
	s.holds[consumer] = p
}

// Release drops consumer's hold.
func (s *Spool) Release(consumer string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.holds, consumer)
}

// heldLocked reports whether a hold keeps segment num.
func (s *Spool) heldLocked(num uint64) bool {
	for _, p := range s.holds {
		if p.Segment <= num {
			return true
		}
	}
	return false
}

// oldestLocked returns the number of the oldest kept segment.
func (s *Spool) oldestLocked() uint64 {
	if len(s.sealed) > 0 {
		return s.sealed[0].num
	}
	return s.seg
}

var _ io.Closer = (*Spool)(nil)

// Err returns the write or sync error that stopped the spool, if any (for health checks).
func (s *Spool) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}
