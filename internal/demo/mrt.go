package demo

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"time"

	"github.com/netledger/netledger/internal/routing"
)

// MRT (RFC 6396) TABLE_DUMP_V2 constants.
const (
	mrtTableDumpV2  = 13
	mrtPeerIndex    = 1
	mrtRIBIPv4      = 2
	mrtRIBIPv6      = 4
	attrOrigin      = 1
	attrASPath      = 2
	attrNextHop     = 3
	attrMPReachNLRI = 14
	flagTransitive  = 0x40
	flagOptional    = 0x80
	flagExtended    = 0x10
)

// WriteMRT writes r's table as an MRT TABLE_DUMP_V2 RIB dump taken at `at`, as a route
// collector peering with the router would: a PEER_INDEX_TABLE with the router as the only
// peer, then one RIB_IPV4_UNICAST or RIB_IPV6_UNICAST record per prefix (IPv4 first), with
// ORIGIN, AS_PATH (4-byte ASNs) and the next hop (NEXT_HOP, or the RIB form of MP_REACH_NLRI
// for IPv6).
func WriteMRT(w io.Writer, r *Router, at time.Time) error {
	bw := bufio.NewWriter(w)
	ts := uint32(at.Unix())
	var body []byte
	record := func(sub uint16) {
		var h [12]byte
		binary.BigEndian.PutUint32(h[0:], ts)
		binary.BigEndian.PutUint16(h[4:], mrtTableDumpV2)
		binary.BigEndian.PutUint16(h[6:], sub)
		binary.BigEndian.PutUint32(h[8:], uint32(len(body)))
		bw.Write(h[:])
		bw.Write(body)
	}
	// PEER_INDEX_TABLE: collector id, empty view name, one peer (IPv4 address, 4-byte AS).
	id := r.ID.As4()
	body = append(body[:0], id[:]...)
	body = binary.BigEndian.AppendUint16(body, 0)
	body = binary.BigEndian.AppendUint16(body, 1)
	body = append(body, 0x02) // peer type: AS4, IPv4 address
	body = append(body, id[:]...)
	body = append(body, id[:]...)
	body = binary.BigEndian.AppendUint32(body, r.ASN)
	record(mrtPeerIndex)

	var seq uint32
	for _, v6 := range []bool{false, true} {
		for _, rt := range r.Routes {
			p := rt.Prefix.Masked()
			if p.Addr().Is6() != v6 {
				continue
			}
			body = binary.BigEndian.AppendUint32(body[:0], seq)
			seq++
			body = append(body, byte(p.Bits()))
			a := p.Addr().AsSlice()
			body = append(body, a[:(p.Bits()+7)/8]...)
			body = binary.BigEndian.AppendUint16(body, 1) // one entry
			body = binary.BigEndian.AppendUint16(body, 0) // peer index
			body = binary.BigEndian.AppendUint32(body, ts)
			attrs := appendAttrs(nil, r, rt.Path, v6)
			body = binary.BigEndian.AppendUint16(body, uint16(len(attrs)))
			body = append(body, attrs...)
			sub := uint16(mrtRIBIPv4)
			if v6 {
				sub = mrtRIBIPv6
			}
			record(sub)
		}
	}
	return bw.Flush()
}

func appendAttr(dst []byte, flags, typ byte, val []byte) []byte {
	if len(val) > 255 {
		dst = append(dst, flags|flagExtended, typ)
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(val)))
	} else {
		dst = append(dst, flags, typ, byte(len(val)))
	}
	return append(dst, val...)
}

func appendAttrs(dst []byte, r *Router, path []routing.Segment, v6 bool) []byte {
	dst = appendAttr(dst, flagTransitive, attrOrigin, []byte{routing.OriginIGP})
	var p []byte
	for _, s := range path {
		if len(s.ASNs) > 255 {
			panic(fmt.Sprintf("demo: AS path segment of %d ASes", len(s.ASNs)))
		}
		p = append(p, s.Type, byte(len(s.ASNs)))
		for _, asn := range s.ASNs {
			p = binary.BigEndian.AppendUint32(p, asn)
		}
	}
	dst = appendAttr(dst, flagTransitive, attrASPath, p)
	if v6 {
		nh := nextHop6(r)
		return appendAttr(dst, flagOptional, attrMPReachNLRI, append([]byte{16}, nh[:]...))
	}
	id := r.ID.As4()
	return appendAttr(dst, flagTransitive, attrNextHop, id[:])
}

// nextHop6 is the IPv6 next hop of r's routes: 2001:db8:ffff::<last byte of its id>.
func nextHop6(r *Router) [16]byte {
	var a [16]byte
	copy(a[:], []byte{0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff})
	a[15] = r.ID.As4()[3]
	return a
}
