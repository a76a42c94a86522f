package report

import (
	"crypto/sha1"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"net/netip"
	"unsafe"

	"github.com/netledger/netledger/internal/record"
)

// trafstat v1 layout: one little-endian packed struct per datagram.
const (
	// V1Size is the size of a trafstat v1 datagram.
	V1Size = 308
	// V1SecretMax is the longest v1 secret (the signature field's size).
	V1SecretMax = 20

	v1Time     = 0   // u64 Unix seconds
	v1Bytes    = 8   // u64 bytes sent
	v1Type     = 16  // u32 traffic type
	v1Duration = 20  // u32 seconds
	v1Retrans  = 24  // u32 tcpi_total_retrans
	v1MSS      = 28  // u32 tcpi_snd_mss
	v1Addr     = 32  // [256] client address, NUL-terminated text
	v1Sig      = 288 // [20] SHA-1 over the struct with this field holding the NUL-padded secret
)

// V1Header is what a v1 datagram says besides its report: its time, for the window check.
type V1Header struct {
	// Time is the datagram's time in Unix seconds.
	Time int64
}

// V1 verifies and decodes trafstat v1 datagrams. It keeps a scratch buffer: one per goroutine.
type V1 struct {
	secret  [V1SecretMax]byte
	scratch [V1Size]byte
}

// NewV1 returns a v1 verifier for the shared secret (at most 20 bytes).
func NewV1(secret string) (*V1, error) {
	if len(secret) == 0 || len(secret) > V1SecretMax {
		return nil, fmt.Errorf("v1 secret must be 1 to %d bytes", V1SecretMax)
	}
	v := &V1{}
	copy(v.secret[:], secret)
	return v, nil
}

// SignV1 writes the signature of a v1 datagram b (V1Size bytes, signature field ignored) into
// its signature field, as trafstat's nginx module does.
func SignV1(b []byte, secret string) {
	copy(b[v1Sig:V1Size], make([]byte, V1SecretMax))
	copy(b[v1Sig:V1Size], secret)
	sum := sha1.Sum(b[:V1Size])
	copy(b[v1Sig:], sum[:])
}

// EncodeV1 fills b (V1Size bytes) with a v1 report and signs it: Time (seconds), BytesOut,
// Class, Duration (whole seconds), Retransmits, MSS and Client.
func EncodeV1(b []byte, r *record.Record, secret string) {
	b = b[:V1Size]
	clear(b)
	binary.LittleEndian.PutUint64(b[v1Time:], uint64(r.Time/1e9))
	binary.LittleEndian.PutUint64(b[v1Bytes:], r.BytesOut)
	binary.LittleEndian.PutUint32(b[v1Type:], uint32(r.Class))
	binary.LittleEndian.PutUint32(b[v1Duration:], uint32(r.Duration/1e6))
	binary.LittleEndian.PutUint32(b[v1Retrans:], r.Retransmits)
	binary.LittleEndian.PutUint32(b[v1MSS:], r.MSS)
	r.Client.AppendTo(b[v1Addr:v1Addr])
	SignV1(b, secret)
}

// Verify checks a v1 datagram's size and signature. The error is a Reason: Truncated,
// Oversized or BadMAC. It allocates nothing.
func (v *V1) Verify(b []byte) (V1Header, error) {
	switch {
	case len(b) < V1Size:
		return V1Header{}, Truncated
	case len(b) > V1Size:
		return V1Header{}, Oversized
	}
	copy(v.scratch[:], b)
	copy(v.scratch[v1Sig:], v.secret[:])
	sum := sha1.Sum(v.scratch[:])
	if subtle.ConstantTimeCompare(sum[:], b[v1Sig:V1Size]) != 1 {
		return V1Header{}, BadMAC
	}
	return V1Header{Time: int64(binary.LittleEndian.Uint64(b[v1Time:]))}, nil
}

// DecodeV1 decodes a verified v1 datagram received from source (the web server) into r. The
// error is BadAddress (the address text does not parse, or is unusable), Malformed (not
// NUL-terminated) or Absurd. It allocates nothing.
func DecodeV1(b []byte, source netip.Addr, r *record.Record) error {
	source = record.Unmap(source)
	le := binary.LittleEndian
	t := le.Uint64(b[v1Time:])
	typ := le.Uint32(b[v1Type:])
	*r = record.Record{
		Time:        int64(t) * 1e9,
		Server:      source,
		Exporter:    source,
		Source:      record.SourceReportV1,
		Proto:       6,
		Class:       uint16(typ),
		Requests:    1,
		BytesOut:    le.Uint64(b[v1Bytes:]),
		Duration:    uint64(le.Uint32(b[v1Duration:])) * 1e6,
		Retransmits: le.Uint32(b[v1Retrans:]),
		MSS:         le.Uint32(b[v1MSS:]),
	}
	text := b[v1Addr:v1Sig]
	n := 0
	for n < len(text) && text[n] != 0 {
		if text[n] == '%' { // zones: not an address a web server reports
			return BadAddress
		}
		n++
	}
	if n == len(text) {
		return Malformed
	}
	if n == 0 {
		return BadAddress
	}
	// ParseAddr keeps no reference to its argument once zones are excluded.
	a, err := netip.ParseAddr(unsafe.String(&text[0], n))
	if err != nil {
		return BadAddress
	}
	r.Client = record.Unmap(a)
	if typ > 0xffff || t > 1<<40 {
		return Absurd
	}
	return Check(r)
}
