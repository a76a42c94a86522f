package spool

import (
	"encoding/binary"
	"errors"
	"net/netip"

	"github.com/netledger/netledger/internal/record"
)

// On-disk layout, version 2 (all fixed-size integers little-endian).
//
// A segment file is named %020d.seg after its number and starts with a 32-byte header:
//
//	0  magic "NLSPOOL\x00"
//	8  u16 format version (2)
//	10 u16 reserved (0)
//	12 u32 reserved (0)
//	16 i64 creation time, Unix nanoseconds
//	24 u32 segment number (low 32 bits, a sanity check against renamed files)
//	28 u32 CRC-32C of bytes 0..27
//
// Frames follow, one per Append batch (split at maxFrameRecords):
//
//	0  u32 payload length in bytes
//	4  u32 number of records (1..maxFrameRecords)
//	8  i64 base time (the first record's Time)
//	16 u32 CRC-32C of bytes 0..15 then the payload
//	20 payload: the records, back to back
//
// A frame whose header or payload is short or whose CRC does not match ends the segment: after a
// crash such a torn tail is truncated when the spool is opened. In synced data (disk
// corruption, in a sealed segment or the current one) a reader skips such a frame: it resumes
// at the next offset where a frame checks, or at the segment's end, and counts what it skipped. Positions point at a record
// (or a frame header) by its byte offset in the segment.
//
// A record is compact: one byte with its length (itself included), a uvarint bitmap of the
// fields present (non-zero), then those fields in bit order:
//
//	bit 0  Time: zigzag varint of Time − base time
//	bit 1  Client, bit 2 Server, bit 3 Exporter: kind byte (4 or 6) + 4 or 16 bytes
//	bit 4  Exporter equals Server (bit 3 then clear: nothing stored)
//	bit 5  ClientPort, 6 ServerPort: uvarint
//	bit 7  Proto, 8 Source: one byte
//	bits 9..23: uvarints of Class, Requests, BytesOut, BytesIn, PacketsOut, PacketsIn,
//	       Retransmits, MSS, RTT, RTTVar, MinRTT, DeliveryRate, Duration, ConnsClosed, ConnsOpen
//
// Unknown bits are an error: fields added to Record get new bits and a new format version.
const (
	segMagic        = "NLSPOOL\x00"
	segVersion      = 2
	headerSize      = 32
	frameHeaderSize = 20
	maxFrameRecords = 1024
	// maxRecordSize bounds an encoded record (the worst case is 177 bytes).
	maxRecordSize = 255
)

const (
	fTime = 1 << iota
	fClient
	fServer
	fExporter
	fExporterIsServer
	fClientPort
	fServerPort
	fProto
	fSource
	fFirstVarint // Class; the 15 uvarint fields follow in order
	fKnown       = 1<<24 - 1
)

var le = binary.LittleEndian

var errRecord = errors.New("bad record encoding")

func getAddr(b []byte) (netip.Addr, int, error) {
	if len(b) >= 5 && b[0] == 4 {
		return netip.AddrFrom4([4]byte(b[1:5])), 5, nil
	}
	if len(b) >= 17 && b[0] == 6 {
		return netip.AddrFrom16([16]byte(b[1:17])), 17, nil
	}
	return netip.Addr{}, 0, errRecord
}

// putUvarint writes v at b[i:] (which has room) and returns the index after it.
func putUvarint(b []byte, i int, v uint64) int {
	for v >= 0x80 {
		b[i] = byte(v) | 0x80
		v >>= 7
		i++
	}
	b[i] = byte(v)
	return i + 1
}

func putAddr(b []byte, i int, a netip.Addr) int {
	if a.Is4() {
		v := a.As4()
		b[i] = 4
		copy(b[i+1:i+5], v[:])
		return i + 5
	}
	v := a.As16()
	b[i] = 6
	copy(b[i+1:i+17], v[:])
	return i + 17
}

// appendRecord appends r's encoding (relative to the frame's base time) to b. It allocates
// nothing when b has maxRecordSize bytes of spare capacity.
func appendRecord(b []byte, r *record.Record, base int64) []byte {
	start := len(b)
	if cap(b)-start < maxRecordSize {
		b = append(b, make([]byte, maxRecordSize)...)[:start]
	}
	w := b[start : start+maxRecordSize]
	// Fields are written after room for the longest bitmap (4 bytes), which is moved into place
	// at the end, so that one pass both writes the fields and computes the bitmap.
	var bits uint64
	i := 5
	if d := r.Time - base; d != 0 {
		bits |= fTime
		i = putUvarint(w, i, uint64(d<<1)^uint64(d>>63)) // zigzag, as binary.PutVarint
	}
	if r.Client.IsValid() {
		bits |= fClient
		i = putAddr(w, i, r.Client)
	}
	if r.Server.IsValid() {
		bits |= fServer
		i = putAddr(w, i, r.Server)
	}
	if r.Exporter.IsValid() {
		if r.Exporter == r.Server {
			bits |= fExporterIsServer
		} else {
			bits |= fExporter
			i = putAddr(w, i, r.Exporter)
		}
	}
	put := func(bit uint64, v uint64) {
		if v != 0 {
			bits |= bit
			i = putUvarint(w, i, v)
		}
	}
	put(fClientPort, uint64(r.ClientPort))
	put(fServerPort, uint64(r.ServerPort))
	if r.Proto != 0 {
		bits |= fProto
		w[i] = r.Proto
		i++
	}
	if r.Source != 0 {
		bits |= fSource
		w[i] = byte(r.Source)
		i++
	}
	put(fFirstVarint<<0, uint64(r.Class))
	put(fFirstVarint<<1, uint64(r.Requests))
	put(fFirstVarint<<2, r.BytesOut)
	put(fFirstVarint<<3, r.BytesIn)
	put(fFirstVarint<<4, r.PacketsOut)
	put(fFirstVarint<<5, r.PacketsIn)
	put(fFirstVarint<<6, uint64(r.Retransmits))
	put(fFirstVarint<<7, uint64(r.MSS))
	put(fFirstVarint<<8, uint64(r.RTT))
	put(fFirstVarint<<9, uint64(r.RTTVar))
	put(fFirstVarint<<10, uint64(r.MinRTT))
	put(fFirstVarint<<11, r.DeliveryRate)
	put(fFirstVarint<<12, r.Duration)
	put(fFirstVarint<<13, uint64(r.ConnsClosed))
	put(fFirstVarint<<14, uint64(r.ConnsOpen))
	var hdr [5]byte
	h := putUvarint(hdr[:], 1, bits)
	// Close the gap between the bitmap and the fields.
	n := copy(w[h:], w[5:i])
	copy(w[1:h], hdr[1:h])
	w[0] = byte(h + n)
	return b[:start+h+n]
}

// dec reads fields from a record's bytes; a short or bad field sets bad.
type dec struct {
	p    []byte
	bits uint64
	bad  bool
}

// uvarint reads the uvarint of field bit (0 when absent). Most fields are small (ports,
// classes, counts, sizes under 16 KiB): one or two bytes, read here without the call and
// loop of binary.Uvarint.
func (d *dec) uvarint(bit uint64) uint64 {
	if d.bits&bit == 0 {
		return 0
	}
	p := d.p
	if len(p) > 0 && p[0] < 0x80 {
		d.p = p[1:]
		return uint64(p[0])
	}
	if len(p) > 1 && p[1] < 0x80 {
		d.p = p[2:]
		return uint64(p[0]&0x7f) | uint64(p[1])<<7
	}
	v, k := binary.Uvarint(d.p)
	if k <= 0 {
		d.bad = true
		return 0
	}
	d.p = d.p[k:]
	return v
}

func (d *dec) byte(bit uint64) byte {
	if d.bits&bit == 0 {
		return 0
	}
	if len(d.p) == 0 {
		d.bad = true
		return 0
	}
	v := d.p[0]
	d.p = d.p[1:]
	return v
}

func (d *dec) addr(bit uint64) netip.Addr {
	if d.bits&bit == 0 {
		return netip.Addr{}
	}
	a, k, err := getAddr(d.p)
	if err != nil {
		d.bad = true
		return a
	}
	d.p = d.p[k:]
	return a
}

// decodeRecord decodes the record at the start of b into r and returns its length.
func decodeRecord(b []byte, base int64, r *record.Record) (int, error) {
	if len(b) == 0 || int(b[0]) > len(b) || b[0] < 2 {
		return 0, errRecord
	}
	n := int(b[0])
	bits, k := binary.Uvarint(b[1:n])
	if k <= 0 || bits&^fKnown != 0 || bits&(fExporter|fExporterIsServer) == fExporter|fExporterIsServer {
		return 0, errRecord
	}
	d := dec{p: b[1+k : n], bits: bits}
	t := base
	if bits&fTime != 0 {
		v, k := binary.Varint(d.p)
		if k <= 0 {
			return 0, errRecord
		}
		t, d.p = base+v, d.p[k:]
	}
	*r = record.Record{Time: t}
	r.Client = d.addr(fClient)
	r.Server = d.addr(fServer)
	r.Exporter = d.addr(fExporter)
	if bits&fExporterIsServer != 0 {
		r.Exporter = r.Server
	}
	r.ClientPort = uint16(d.uvarint(fClientPort))
	r.ServerPort = uint16(d.uvarint(fServerPort))
	r.Proto = d.byte(fProto)
	r.Source = record.Source(d.byte(fSource))
	r.Class = uint16(d.uvarint(fFirstVarint << 0))
	r.Requests = uint32(d.uvarint(fFirstVarint << 1))
	r.BytesOut = d.uvarint(fFirstVarint << 2)
	r.BytesIn = d.uvarint(fFirstVarint << 3)
	r.PacketsOut = d.uvarint(fFirstVarint << 4)
	r.PacketsIn = d.uvarint(fFirstVarint << 5)
	r.Retransmits = uint32(d.uvarint(fFirstVarint << 6))
	r.MSS = uint32(d.uvarint(fFirstVarint << 7))
	r.RTT = uint32(d.uvarint(fFirstVarint << 8))
	r.RTTVar = uint32(d.uvarint(fFirstVarint << 9))
	r.MinRTT = uint32(d.uvarint(fFirstVarint << 10))
	r.DeliveryRate = d.uvarint(fFirstVarint << 11)
	r.Duration = d.uvarint(fFirstVarint << 12)
	r.ConnsClosed = uint32(d.uvarint(fFirstVarint << 13))
	r.ConnsOpen = uint32(d.uvarint(fFirstVarint << 14))
	if d.bad || len(d.p) != 0 {
		return 0, errRecord
	}
	return n, nil
}
