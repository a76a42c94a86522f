package report

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"net/netip"

	"github.com/netledger/netledger/internal/record"
)

// Protocol v2 wire layout (big-endian; docs/protocol.md is the normative text).
const (
	// Magic0 and Magic1 ("NL") start every v2 datagram; VersionV2 follows.
	Magic0, Magic1 = 'N', 'L'
	// VersionV2 is the protocol version byte.
	VersionV2 = 2
	// HeaderSize is the size of the datagram header.
	HeaderSize = 36
	// MACSize is the size of the HMAC-SHA256 trailer.
	MACSize = sha256.Size
	// MinReportSize is the size of the smallest report (IPv4 client, no server, no packets).
	MinReportSize = reportFixed + 4
	// MaxReportSize is the size of the largest report.
	MaxReportSize = reportFixed + 16 + 16 + 8
	// DefaultPayloadSize is the default datagram size senders fill up to.
	DefaultPayloadSize = 1400
	// MaxTimeDelta bounds a report's time around its datagram's (± one hour, in ms).
	MaxTimeDelta = 3600 * 1000
)

// Report flags.
const (
	FlagClient6 = 1 << 0 // client address is IPv6 (16 bytes), else IPv4 (4 bytes)
	FlagServer  = 1 << 1 // a server address follows the client
	FlagServer6 = 1 << 2 // the server address is IPv6
	FlagPackets = 1 << 3 // a packet count follows the addresses
	flagsKnown  = FlagClient6 | FlagServer | FlagServer6 | FlagPackets
)

// reportFixed is the size of a report before its addresses.
const reportFixed = 43

var be = binary.BigEndian

// Header is a v2 datagram header.
type Header struct {
	// KeyID names the HMAC key that signed the datagram.
	KeyID uint32
	// SenderID identifies the sending process; sequence numbers are per sender.
	SenderID uint64
	// Seq is the datagram's sequence number: strictly increasing per sender.
	Seq uint64
	// Time is when the datagram was started, Unix nanoseconds.
	Time int64
	// Count is the number of reports.
	Count uint16
}

// Key is a v2 signing key.
type Key struct {
	ID     uint32
	Secret []byte
}

// Builder fills a v2 datagram with reports and signs it. It is reused from one datagram to the
// next and allocates nothing once its buffer has grown.
type Builder struct {
	mac   hash.Hash
	keyID uint32
	size  int
	buf   []byte
	hdr   Header
}

// NewBuilder returns a builder signing with key and filling datagrams up to payloadSize bytes
// (DefaultPayloadSize when 0).
func NewBuilder(key Key, payloadSize int) (*Builder, error) {
	if payloadSize == 0 {
		payloadSize = DefaultPayloadSize
	}
	if payloadSize < HeaderSize+MACSize+MaxReportSize || payloadSize > 65507 {
		return nil, fmt.Errorf("payload size %d outside [%d, 65507]", payloadSize, HeaderSize+MACSize+MaxReportSize)
	}
	if len(key.Secret) < 16 {
		return nil, errors.New("key secret shorter than 16 bytes")
	}
	return &Builder{
		mac:   newMAC(key),
		keyID: key.ID,
		size:  payloadSize,
		buf:   make([]byte, 0, payloadSize),
	}, nil
}

// Start begins a datagram with the given sender, sequence number and time.
func (b *Builder) Start(sender, seq uint64, now int64) {
	b.hdr = Header{KeyID: b.keyID, SenderID: sender, Seq: seq, Time: now}
	b.buf = b.buf[:HeaderSize]
}

// Len returns the number of reports added since Start.
func (b *Builder) Len() int { return int(b.hdr.Count) }

// Add appends a report and reports whether it fitted (when not, Finish and Start anew).
// Only the fields of the protocol are sent: Time, Client, Server (when valid), BytesOut,
// PacketsOut (when not zero), Retransmits, MSS, RTT, RTTVar, Duration, Class, Requests.
func (b *Builder) Add(r *record.Record) bool {
	if b.hdr.Count == 0xffff || len(b.buf)+MACSize+encodedSize(r) > b.size {
		return false
	}
	b.buf = appendReport(b.buf, r, b.hdr.Time)
	b.hdr.Count++
	return true
}

// Finish writes the header and the HMAC trailer and returns the datagram, valid until the next
// Start.
func (b *Builder) Finish() []byte {
	putHeader(b.buf, &b.hdr)
	b.mac.Reset()
	b.mac.Write(b.buf)
	b.buf = b.mac.Sum(b.buf)
	return b.buf
}

func putHeader(b []byte, h *Header) {
	b[0], b[1], b[2], b[3] = Magic0, Magic1, VersionV2, 0
	be.PutUint32(b[4:], h.KeyID)
	be.PutUint64(b[8:], h.SenderID)
	be.PutUint64(b[16:], h.Seq)
	be.PutUint64(b[24:], uint64(h.Time))
	be.PutUint16(b[32:], h.Count)
	be.PutUint16(b[34:], 0)
}

func encodedSize(r *record.Record) int {
	n := reportFixed + 4
	if a := record.Unmap(r.Client); a.Is6() {
		n += 12
	}
	if a := record.Unmap(r.Server); a.IsValid() {
		n += 4
		if a.Is6() {
			n += 12
		}
	}
	if r.PacketsOut != 0 {
		n += 8
	}
	return n
}

func appendReport(b []byte, r *record.Record, base int64) []byte {
	client, server := record.Unmap(r.Client), record.Unmap(r.Server)
	var flags byte
	if client.Is6() {
		flags |= FlagClient6
	}
	if server.IsValid() {
		flags |= FlagServer
		if server.Is6() {
			flags |= FlagServer6
		}
	}
	if r.PacketsOut != 0 {
		flags |= FlagPackets
	}
	delta := (r.Time - base) / 1e6
	delta = max(min(delta, 1<<31-1), -1<<31)
	b = append(b, flags)
	b = be.AppendUint32(b, uint32(int32(delta)))
	b = be.AppendUint16(b, r.Class)
	b = be.AppendUint32(b, r.Requests)
	b = be.AppendUint64(b, r.BytesOut)
	b = be.AppendUint32(b, r.Retransmits)
	b = be.AppendUint32(b, r.MSS)
	b = be.AppendUint32(b, r.RTT)
	b = be.AppendUint32(b, r.RTTVar)
	b = be.AppendUint64(b, r.Duration)
	b = appendAddr(b, client)
	if server.IsValid() {
		b = appendAddr(b, server)
	}
	if r.PacketsOut != 0 {
		b = be.AppendUint64(b, r.PacketsOut)
	}
	return b
}

func appendAddr(b []byte, a netip.Addr) []byte {
	if a.Is4() {
		v := a.As4()
		return append(b, v[:]...)
	}
	v := a.As16()
	return append(b, v[:]...)
}

// Verifier checks v2 datagrams against a set of keys (several at once, so keys rotate without
// downtime). It keeps pre-keyed HMAC states: one Verifier per goroutine.
type Verifier struct {
	keys map[uint32]hash.Hash
	sum  [MACSize]byte
}

// NewVerifier returns a verifier for keys; key ids must be distinct.
func NewVerifier(keys []Key) (*Verifier, error) {
	v := &Verifier{keys: make(map[uint32]hash.Hash, len(keys))}
	for _, k := range keys {
		if _, dup := v.keys[k.ID]; dup {
			return nil, fmt.Errorf("duplicate key id %d", k.ID)
		}
		if len(k.Secret) < 16 {
			return nil, fmt.Errorf("key %d: secret shorter than 16 bytes", k.ID)
		}
		v.keys[k.ID] = newMAC(k)
	}
	return v, nil
}

// IsV2 reports whether b starts like a v2 datagram.
func IsV2(b []byte) bool {
	return len(b) >= 3 && b[0] == Magic0 && b[1] == Magic1 && b[2] == VersionV2
}

// Verify checks a v2 datagram's structure and signature and returns its header. The error is
// a Reason: Truncated, Version, UnknownKey, BadMAC or Malformed. It allocates nothing.
func (v *Verifier) Verify(b []byte) (Header, error) {
	var h Header
	if len(b) < 3 || b[0] != Magic0 || b[1] != Magic1 {
		return h, Version
	}
	if b[2] != VersionV2 {
		return h, Version
	}
	if len(b) < HeaderSize+MACSize+MinReportSize {
		return h, Truncated
	}
	h.KeyID = be.Uint32(b[4:])
	mac, ok := v.keys[h.KeyID]
	if !ok {
		return h, UnknownKey
	}
	body := b[:len(b)-MACSize]
	mac.Reset()
	mac.Write(body)
	if !hmac.Equal(mac.Sum(v.sum[:0]), b[len(body):]) {
		return h, BadMAC
	}
	if b[3] != 0 || be.Uint16(b[34:]) != 0 {
		return h, Malformed
	}
	h.SenderID = be.Uint64(b[8:])
	h.Seq = be.Uint64(b[16:])
	h.Time = int64(be.Uint64(b[24:]))
	h.Count = be.Uint16(b[32:])
	if h.Count == 0 {
		return h, Malformed
	}
	return h, nil
}

// Reports iterates over the reports of a verified datagram without allocating.
type Reports struct {
	b      []byte
	h      Header
	source netip.Addr
	left   int
}

// NewReports returns an iterator over the reports of datagram b (verified, with header h)
// received from source (the web server: the Server of reports that carry none, and the
// Exporter of all).
func NewReports(b []byte, h Header, source netip.Addr) Reports {
	return Reports{b: b[HeaderSize : len(b)-MACSize], h: h, source: record.Unmap(source), left: int(h.Count)}
}

// Next decodes the next report into r. It returns false when there are none left; a non-nil
// error with true means this report was rejected (BadAddress or Absurd) and the iteration goes
// on; a Truncated or Malformed error with false means the rest of the datagram is unusable. A
// datagram with bytes left after its last report is Malformed.
func (it *Reports) Next(r *record.Record) (bool, error) {
	if it.left == 0 {
		if len(it.b) != 0 {
			it.b = nil
			return false, Malformed
		}
		return false, nil
	}
	it.left--
	b := it.b
	if len(b) < MinReportSize {
		it.left, it.b = 0, nil
		return false, Truncated
	}
	flags := b[0]
	if flags&^flagsKnown != 0 || (flags&FlagServer == 0 && flags&FlagServer6 != 0) {
		it.left, it.b = 0, nil
		return false, Malformed
	}
	n := reportFixed + 4
	if flags&FlagClient6 != 0 {
		n += 12
	}
	if flags&FlagServer != 0 {
		n += 4
		if flags&FlagServer6 != 0 {
			n += 12
		}
	}
	if flags&FlagPackets != 0 {
		n += 8
	}
	if len(b) < n {
		it.left, it.b = 0, nil
		return false, Truncated
	}
	it.b = b[n:]
	delta := int64(int32(be.Uint32(b[1:])))
	*r = record.Record{
		Time:        it.h.Time + delta*1e6,
		Exporter:    it.source,
		Server:      it.source,
		Source:      record.SourceReportV2,
		Proto:       6,
		Class:       be.Uint16(b[5:]),
		Requests:    be.Uint32(b[7:]),
		BytesOut:    be.Uint64(b[11:]),
		Retransmits: be.Uint32(b[19:]),
		MSS:         be.Uint32(b[23:]),
		RTT:         be.Uint32(b[27:]),
		RTTVar:      be.Uint32(b[31:]),
		Duration:    be.Uint64(b[35:]),
	}
	if r.Requests == 0 {
		r.Requests = 1
	}
	p := reportFixed
	if flags&FlagClient6 != 0 {
		r.Client = record.Unmap(netip.AddrFrom16([16]byte(b[p:])))
		p += 16
	} else {
		r.Client = netip.AddrFrom4([4]byte(b[p:]))
		p += 4
	}
	if flags&FlagServer != 0 {
		if flags&FlagServer6 != 0 {
			r.Server = record.Unmap(netip.AddrFrom16([16]byte(b[p:])))
			p += 16
		} else {
			r.Server = netip.AddrFrom4([4]byte(b[p:]))
			p += 4
		}
	}
	if flags&FlagPackets != 0 {
		r.PacketsOut = be.Uint64(b[p:])
	}
	if delta > MaxTimeDelta || delta < -MaxTimeDelta {
		return true, Absurd
	}
	return true, Check(r)
}

// Check validates a decoded report: BadAddress for an unusable client or server address,
// Absurd for counters beyond the limits.
func Check(r *record.Record) error {
	if !usable(r.Client) || (r.Server.IsValid() && !usable(r.Server)) {
		return BadAddress
	}
	if r.BytesOut > MaxBytes || r.PacketsOut > MaxPackets || r.MSS > MaxMSS || r.RTT > MaxRTT ||
		r.RTTVar > MaxRTT || r.Duration > MaxDuration || r.Requests > MaxRequests {
		return Absurd
	}
	return nil
}

func usable(a netip.Addr) bool {
	return a.IsValid() && !a.IsUnspecified() && !a.IsMulticast()
}

func newMAC(k Key) hash.Hash { return hmac.New(sha256.New, k.Secret) }
