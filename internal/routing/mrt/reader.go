// Package mrt reads MRT routing dumps (RFC 6396): TABLE_DUMP, TABLE_DUMP_V2 (with the RFC 8050
// ADD-PATH variants), BGP4MP and BGP4MP_ET, and the old MRTD BGP records, from plain, gzip or
// bzip2 input. Reader frames records; RouteReader turns them into routes (peer, prefix, path
// ID, routing.Attrs) for loading a RIB; Dumper prints them in bgpdump's one-line format.
//
// Framing errors (a truncated or impossible record) end the stream with an *Error naming the
// byte offset of the bad record in the decompressed stream; every complete record before it has
// been returned. Records that are framed correctly but that bgpdump also ignores (unknown types,
// bad BGP markers, unsupported address families) are skipped and counted.
package mrt

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/klauspost/compress/gzip"
	"io"
	"os"
)

// MRT record types.
const (
	TypeMRTDBGP     uint16 = 5
	TypeTableDump   uint16 = 12
	TypeTableDumpV2 uint16 = 13
	TypeBGP4MP      uint16 = 16
	TypeBGP4MPET    uint16 = 17
)

// TABLE_DUMP_V2 subtypes.
const (
	SubPeerIndexTable        uint16 = 1
	SubRIBIPv4Unicast        uint16 = 2
	SubRIBIPv4Multicast      uint16 = 3
	SubRIBIPv6Unicast        uint16 = 4
	SubRIBIPv6Multicast      uint16 = 5
	SubRIBGeneric            uint16 = 6
	SubRIBIPv4UnicastAddPath uint16 = 8
	SubRIBIPv6UnicastAddPath uint16 = 10
	SubRIBGenericAddPath     uint16 = 12
)

// BGP4MP subtypes.
const (
	SubStateChange            uint16 = 0
	SubMessage                uint16 = 1
	SubMessageAS4             uint16 = 4
	SubStateChangeAS4         uint16 = 5
	SubMessageLocal           uint16 = 6
	SubMessageAS4Local        uint16 = 7
	SubMessageAddPath         uint16 = 8
	SubMessageAS4AddPath      uint16 = 9
	SubMessageLocalAddPath    uint16 = 10
	SubMessageAS4LocalAddPath uint16 = 11
)

// MaxRecordLength bounds the length field of one record; longer records are corrupt.
const MaxRecordLength = 64 << 20

// Header is the common header of an MRT record.
type Header struct {
	// Offset is the position of the record in the decompressed stream.
	Offset int64
	// Time is the record's Unix time (seconds).
	Time    uint32
	Type    uint16
	Subtype uint16
	// Length is the body length (without the BGP4MP_ET microsecond field).
	Length uint32
	// Micro is the microsecond timestamp of BGP4MP_ET records.
	Micro uint32
}

// Error is a framing error: the record at Offset is truncated or corrupt.
type Error struct {
	Offset int64
	Reason string
}

func (e *Error) Error() string {
	return fmt.Sprintf("mrt: bad record at byte offset %d: %s", e.Offset, e.Reason)
}

// Reader reads MRT records one at a time, reusing one buffer: Body is valid until the next call
// to Next.
type Reader struct {
	br    *bufio.Reader
	file  *os.File
	async *asyncReader
	off   int64
	hdr   Header
	buf   []byte
	body  []byte
	err   error
	// Records counts the records read so far.
	Records int64
	walk    walker
	hbuf    [16]byte
}

// Open opens a file (plain, gzip or bzip2); "-" is standard input.
func Open(name string) (*Reader, error) {
	var f *os.File
	if name == "-" {
		f = os.Stdin
	} else {
		var err error
		if f, err = os.Open(name); err != nil {
			return nil, fmt.Errorf("cannot open MRT file: %w", err)
		}
	}
	r, err := newReader(f, true)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("cannot read MRT file %s: %w", name, err)
	}
	r.file = f
	return r, nil
}

// NewReader returns a Reader over r, decompressing gzip or bzip2 input detected by its magic
// bytes.
func NewReader(r io.Reader) (*Reader, error) { return newReader(r, false) }

// newReader with async decompresses compressed input in a goroutine (Close stops it).
func newReader(r io.Reader, async bool) (*Reader, error) {
	br := bufio.NewReaderSize(r, 256<<10)
	magic, err := br.Peek(3)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	var dec io.Reader
	switch {
	case len(magic) >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("bad gzip stream: %w", err)
		}
		dec = zr
	case len(magic) == 3 && bytes.Equal(magic, []byte("BZh")):
		dec = bzip2.NewReader(br)
	}
	rd := &Reader{br: br, buf: make([]byte, 0, 64<<10)}
	if dec != nil {
		if async {
			ar := newAsyncReader(dec)
			rd.async = ar
			dec = ar
		}
		rd.br = bufio.NewReaderSize(dec, 256<<10)
	}
	return rd, nil
}

// Close closes the file opened by Open.
func (r *Reader) Close() error {
	if r.async != nil {
		r.async.Close()
	}
	if r.file != nil && r.file != os.Stdin {
		return r.file.Close()
	}
	return nil
}

// Next reads the next record. It returns false at the end of the input or on an error (Err).
func (r *Reader) Next() bool {
	if r.err != nil {
		return false
	}
	start := r.off
	h := &r.hbuf
	n, err := io.ReadFull(r.br, h[:12])
	if err != nil {
		if n == 0 && errors.Is(err, io.EOF) {
			return false
		}
		r.fail(start, fmt.Sprintf("truncated header (%d of 12 bytes)", n), err)
		return false
	}
	hdr := Header{
		Offset:  start,
		Time:    binary.BigEndian.Uint32(h[0:]),
		Type:    binary.BigEndian.Uint16(h[4:]),
		Subtype: binary.BigEndian.Uint16(h[6:]),
		Length:  binary.BigEndian.Uint32(h[8:]),
	}
	r.off += 12
	if hdr.Type == TypeBGP4MPET {
		if n, err := io.ReadFull(r.br, h[12:16]); err != nil {
			r.fail(start, fmt.Sprintf("truncated header (%d of 16 bytes)", 12+n), err)
			return false
		}
		r.off += 4
		hdr.Micro = binary.BigEndian.Uint32(h[12:])
		if hdr.Length < 4 {
			r.fail(start, fmt.Sprintf("length %d too short for BGP4MP_ET", hdr.Length), nil)
			return false
		}
		hdr.Length -= 4
	}
	if hdr.Length == 0 {
		r.fail(start, "zero record length", nil)
		return false
	}
	if hdr.Length > MaxRecordLength {
		r.fail(start, fmt.Sprintf("implausible record length %d", hdr.Length), nil)
		return false
	}
	if err := r.readBody(int(hdr.Length)); err != nil {
		r.fail(start, fmt.Sprintf("truncated record (type %d, %d-byte body)", hdr.Type, hdr.Length), err)
		return false
	}
	r.off += int64(hdr.Length)
	r.hdr = hdr
	r.Records++
	return true
}

// readBody reads n bytes, growing the buffer as data arrives so that a corrupt length cannot
// make it allocate far more than the input holds.
func (r *Reader) readBody(n int) error {
	buf := r.buf[:0]
	for len(buf) < n {
		want := n - len(buf)
		if room := cap(buf) - len(buf); want > room {
			if room == 0 {
				grow := max(cap(buf), 64<<10)
				buf = append(buf[:cap(buf)], make([]byte, grow)...)[:len(buf)]
				continue
			}
			want = room
		}
		m, err := io.ReadFull(r.br, buf[len(buf):len(buf)+want])
		buf = buf[:len(buf)+m]
		if err != nil {
			r.buf = buf
			return err
		}
	}
	r.buf = buf
	r.body = buf[:n]
	return nil
}

func (r *Reader) fail(off int64, reason string, cause error) {
	if cause != nil && !errors.Is(cause, io.EOF) && !errors.Is(cause, io.ErrUnexpectedEOF) {
		reason += ": " + cause.Error()
	}
	r.err = &Error{Offset: off, Reason: reason}
}

// Header returns the header of the current record.
func (r *Reader) Header() Header { return r.hdr }

// Body returns the body of the current record; it is valid until the next call to Next.
func (r *Reader) Body() []byte { return r.body }

// Err returns the error that ended the stream, nil at a clean end.
func (r *Reader) Err() error { return r.err }
