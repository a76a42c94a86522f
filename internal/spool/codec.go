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
// crash such a torn tail is truncated when the spool is opened. Positions point at a record
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

func appendAddr(b []byte, a netip.Addr) []byte {
	if a.Is4() {
		v := a.As4()
		return append(b, 4, v[0], v[1], v[2], v[3])
	}
	v := a.As16()
	b = append(b, 6)
	return append(b, v[:]...)
}

func getAddr(b []byte) (netip.Addr, int, error) {
	if len(b) >= 5 && b[0] == 4 {
		return netip.AddrFrom4([4]byte(b[1:5])), 5, nil
	}
	if len(b) >= 17 && b[0] == 6 {
		return netip.AddrFrom16([16]byte(b[1:17])), 17, nil
	}
	return netip.Addr{}, 0, errRecord
}

// varints returns the uvarint fields of r, in bit order from fFirstVarint.
func varints(r *record.Record) [15]uint64 {
	return [15]uint64{uint64(r.Class), uint64(r.Requests), r.BytesOut, r.BytesIn, r.PacketsOut,
		r.PacketsIn, uint64(r.Retransmits), uint64(r.MSS), uint64(r.RTT), uint64(r.RTTVar),
		uint64(r.MinRTT), r.DeliveryRate, r.Duration, uint64(r.ConnsClosed), uint64(r.ConnsOpen)}
}

// appendRecord appends r's encoding (relative to the frame's base time) to b.
func appendRecord(b []byte, r *record.Record, base int64) []byte {
	start := len(b)
	b = append(b, 0)
	var bits uint64
	if r.Time != base {
		bits |= fTime
	}
	if r.Client.IsValid() {
		bits |= fClient
	}
	if r.Server.IsValid() {
		bits |= fServer
	}
	if r.Exporter.IsValid() {
		if r.Exporter == r.Server {
			bits |= fExporterIsServer
		} else {
			bits |= fExporter
		}
	}
	if r.ClientPort != 0 {
		bits |= fClientPort
	}
	if r.ServerPort != 0 {
		bits |= fServerPort
	}
	if r.Proto != 0 {
		bits |= fProto
	}
	if r.Source != 0 {
		bits |= fSource
	}
	vs := varints(r)
	for i, v := range vs {
		if v != 0 {
			bits |= fFirstVarint << i
		}
	}
	b = binary.AppendUvarint(b, bits)
	if bits&fTime != 0 {
		b = binary.AppendVarint(b, r.Time-base)
	}
	if bits&fClient != 0 {
		b = appendAddr(b, r.Client)
	}
	if bits&fServer != 0 {
		b = appendAddr(b, r.Server)
	}
	if bits&fExporter != 0 {
		b = appendAddr(b, r.Exporter)
	}
	if bits&fClientPort != 0 {
		b = binary.AppendUvarint(b, uint64(r.ClientPort))
	}
	if bits&fServerPort != 0 {
		b = binary.AppendUvarint(b, uint64(r.ServerPort))
	}
	if bits&fProto != 0 {
		b = append(b, r.Proto)
	}
	if bits&fSource != 0 {
		b = append(b, byte(r.Source))
	}
	for _, v := range vs {
		if v != 0 {
			b = binary.AppendUvarint(b, v)
		}
	}
	b[start] = byte(len(b) - start)
	return b
}

// dec reads fields from a record's bytes; a short or bad field sets bad.
type dec struct {
	p    []byte
	bits uint64
	bad  bool
}

func (d *dec) uvarint(bit uint64) uint64 {
	if d.bits&bit == 0 {
		return 0
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
