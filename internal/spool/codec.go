package spool

import (
	"encoding/binary"
	"net/netip"

	"github.com/netledger/netledger/internal/record"
)

// On-disk layout, version 1 (all integers little-endian).
//
// A segment file is named %020d.seg after its number and starts with a 32-byte header:
//
//	0  magic "NLSPOOL\x00"
//	8  u16 format version (1)
//	10 u16 record size in bytes (recordSize)
//	12 u32 reserved (0)
//	16 i64 creation time, Unix nanoseconds
//	24 u32 segment number (low 32 bits, a sanity check against renamed files)
//	28 u32 CRC-32C of bytes 0..27
//
// Frames follow, one per Append batch (split at maxFrameRecords):
//
//	0 u32 number of records n (1..maxFrameRecords)
//	4 u32 CRC-32C of bytes 0..3 then the n*recordSize payload bytes
//	8 n records of recordSize bytes each
//
// A frame whose header or payload is short or whose CRC does not match ends the segment: after a
// crash such a torn tail is truncated when the spool is opened. Positions point at a record
// inside a frame (the frame's start being its first record's position minus the frame header).
const (
	segMagic        = "NLSPOOL\x00"
	segVersion      = 1
	headerSize      = 32
	frameHeaderSize = 8
	maxFrameRecords = 1024
)

// Record layout, recordSize bytes:
//
//	0   i64 Time
//	8   address Client   (1 byte kind: 0 invalid, 4 IPv4, 6 IPv6; then 16 bytes, IPv4 in the first 4)
//	25  address Server
//	42  address Exporter
//	59  u16 ClientPort, 61 u16 ServerPort, 63 u8 Proto, 64 u8 Source, 65 u16 Class
//	67  u32 Requests
//	71  u64 BytesOut, 79 u64 BytesIn, 87 u64 PacketsOut, 95 u64 PacketsIn
//	103 u32 Retransmits, 107 u32 MSS, 111 u32 RTT, 115 u32 RTTVar, 119 u32 MinRTT
//	123 u64 DeliveryRate, 131 u64 Duration
//	139 u32 ConnsClosed, 143 u32 ConnsOpen
//	147 5 bytes reserved (zero) for fields added later
const recordSize = 152

var le = binary.LittleEndian

func putAddr(b []byte, a netip.Addr) {
	switch {
	case a.Is4():
		b[0] = 4
		v := a.As4()
		copy(b[1:5], v[:])
		clear(b[5:17])
	case a.IsValid():
		b[0] = 6
		v := a.As16()
		copy(b[1:17], v[:])
	default:
		clear(b[:17])
	}
}

func getAddr(b []byte) netip.Addr {
	switch b[0] {
	case 4:
		return netip.AddrFrom4([4]byte(b[1:5]))
	case 6:
		return netip.AddrFrom16([16]byte(b[1:17]))
	default:
		return netip.Addr{}
	}
}

// encodeRecord writes r into b[:recordSize].
func encodeRecord(b []byte, r *record.Record) {
	b = b[:recordSize]
	le.PutUint64(b[0:], uint64(r.Time))
	putAddr(b[8:], r.Client)
	putAddr(b[25:], r.Server)
	putAddr(b[42:], r.Exporter)
	le.PutUint16(b[59:], r.ClientPort)
	le.PutUint16(b[61:], r.ServerPort)
	b[63] = r.Proto
	b[64] = byte(r.Source)
	le.PutUint16(b[65:], r.Class)
	le.PutUint32(b[67:], r.Requests)
	le.PutUint64(b[71:], r.BytesOut)
	le.PutUint64(b[79:], r.BytesIn)
	le.PutUint64(b[87:], r.PacketsOut)
	le.PutUint64(b[95:], r.PacketsIn)
	le.PutUint32(b[103:], r.Retransmits)
	le.PutUint32(b[107:], r.MSS)
	le.PutUint32(b[111:], r.RTT)
	le.PutUint32(b[115:], r.RTTVar)
	le.PutUint32(b[119:], r.MinRTT)
	le.PutUint64(b[123:], r.DeliveryRate)
	le.PutUint64(b[131:], r.Duration)
	le.PutUint32(b[139:], r.ConnsClosed)
	le.PutUint32(b[143:], r.ConnsOpen)
	clear(b[147:152])
}

// decodeRecord reads a record from b[:recordSize].
func decodeRecord(b []byte, r *record.Record) {
	b = b[:recordSize]
	*r = record.Record{
		Time:         int64(le.Uint64(b[0:])),
		Client:       getAddr(b[8:]),
		Server:       getAddr(b[25:]),
		Exporter:     getAddr(b[42:]),
		ClientPort:   le.Uint16(b[59:]),
		ServerPort:   le.Uint16(b[61:]),
		Proto:        b[63],
		Source:       record.Source(b[64]),
		Class:        le.Uint16(b[65:]),
		Requests:     le.Uint32(b[67:]),
		BytesOut:     le.Uint64(b[71:]),
		BytesIn:      le.Uint64(b[79:]),
		PacketsOut:   le.Uint64(b[87:]),
		PacketsIn:    le.Uint64(b[95:]),
		Retransmits:  le.Uint32(b[103:]),
		MSS:          le.Uint32(b[107:]),
		RTT:          le.Uint32(b[111:]),
		RTTVar:       le.Uint32(b[115:]),
		MinRTT:       le.Uint32(b[119:]),
		DeliveryRate: le.Uint64(b[123:]),
		Duration:     le.Uint64(b[131:]),
		ConnsClosed:  le.Uint32(b[139:]),
		ConnsOpen:    le.Uint32(b[143:]),
	}
}
