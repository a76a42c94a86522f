package mrt

import (
	"encoding/binary"
	"net/netip"
)

// rawPrefix is one NLRI entry as bgpdump holds it: up to 16 address bytes, the length as
// encoded, and the ADD-PATH identifier.
type rawPrefix struct {
	addr   [16]byte
	bits   uint8
	pathID uint32
	// bogus: the encoded length was impossible (> 128 bits).
	bogus bool
}

var trailingMask = [8]byte{0x80, 0xc0, 0xe0, 0xf0, 0xf8, 0xfc, 0xfe, 0xff}

// prefixIter walks an NLRI list the way bgpdump does: a truncated last prefix ends the list;
// trailing bits of the last octet are masked to zero.
type prefixIter struct {
	s       stream
	addPath bool
}

func (it *prefixIter) next(p *rawPrefix) bool {
	if it.s.left() == 0 {
		return false
	}
	var id uint32
	if it.addPath {
		id = it.s.u32()
	}
	bits := it.s.u8()
	n := (int(bits) + 7) / 8
	if it.s.left() < n {
		it.s.p = len(it.s.b)
		return false
	}
	if n <= 16 {
		p.addr = [16]byte{}
		copy(p.addr[:], it.s.take(n))
		if r := bits % 8; r != 0 {
			p.addr[n-1] &= trailingMask[r-1]
		}
		p.bits, p.pathID = bits, id
		return true
	}
	// An impossible length (more than 16 octets): bgpdump copies the octets over its struct
	// prefix {address[16]; len; pad[3]; path_id}, so the length and path ID printed come from
	// the data. Reproduce that layout.
	var raw [24]byte
	raw[16] = bits
	binary.LittleEndian.PutUint32(raw[20:], id)
	copy(raw[:], it.s.take(n))
	if r := bits % 8; r != 0 && n-1 < len(raw) {
		raw[n-1] &= trailingMask[r-1]
	}
	copy(p.addr[:], raw[:16])
	p.bits, p.pathID = raw[16], binary.LittleEndian.Uint32(raw[20:])
	p.bogus = true
	return true
}

// prefix4/prefix6 convert to netip.Prefix; ok is false for impossible lengths.
func (p *rawPrefix) prefix(v6 bool) (netip.Prefix, bool) {
	if p.bogus {
		return netip.Prefix{}, false
	}
	if v6 {
		if p.bits > 128 {
			return netip.Prefix{}, false
		}
		return netip.PrefixFrom(netip.AddrFrom16(p.addr), int(p.bits)).Masked(), true
	}
	if p.bits > 32 {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(netip.AddrFrom4([4]byte(p.addr[:4])), int(p.bits)).Masked(), true
}

// Peer is a BGP neighbour of a dump: an entry of the TABLE_DUMP_V2 PEER_INDEX_TABLE, or the
// sender of a TABLE_DUMP or BGP4MP record.
type Peer struct {
	// Index is the position in the PEER_INDEX_TABLE (0 for other record types).
	Index uint16
	// ASN is the peer's AS number; Addr its address (IPv4-mapped addresses unmapped).
	ASN  uint32
	Addr netip.Addr
	// BGPID is the peer's router ID (TABLE_DUMP_V2 only).
	BGPID netip.Addr
	raw   [16]byte
	v6    bool
}

// parsePeerIndex reads a PEER_INDEX_TABLE into peers (reused).
func parsePeerIndex(body []byte, peers []Peer) []Peer {
	s := stream{b: body}
	s.take(4) // collector BGP ID
	if n := int(s.u16()); n+1 <= 255 {
		s.take(n) // view name; bgpdump skips nothing when it is too long
	}
	count := int(s.u16())
	peers = peers[:0]
	for i := 0; i < count; i++ {
		t := s.u8()
		p := Peer{Index: uint16(i), v6: t&1 != 0}
		p.BGPID = netip.AddrFrom4(s.addr4())
		if p.v6 {
			p.raw = s.addr16()
			p.Addr = netip.AddrFrom16(p.raw).Unmap()
		} else {
			copy(p.raw[:], s.take(4))
			p.Addr = netip.AddrFrom4([4]byte(p.raw[:4]))
		}
		if t&2 != 0 {
			p.ASN = s.u32()
		} else {
			p.ASN = uint32(s.u16())
		}
		peers = append(peers, p)
	}
	return peers
}

// bgp4mpHeader is the BGP4MP MESSAGE preamble.
type bgp4mpHeader struct {
	local, asn4, addPath bool
	peerAS, localAS      uint32
	afi                  uint16
	peerIP, localIP      [16]byte
	msgType              uint8
	msg                  stream // the BGP message after the type octet
}

func bgp4mpFlags(sub uint16) (local, asn4, addPath bool) {
	switch sub {
	case SubMessageLocal, SubMessageAS4Local, SubMessageLocalAddPath, SubMessageAS4LocalAddPath:
		local = true
	}
	switch sub {
	case SubMessageAS4, SubMessageAS4Local, SubMessageAS4AddPath, SubMessageAS4LocalAddPath:
		asn4 = true
	}
	addPath = sub >= SubMessageAddPath && sub <= SubMessageAS4LocalAddPath
	return
}

func isBGP4MPMessage(sub uint16) bool {
	switch sub {
	case SubMessage, SubMessageAS4, SubMessageLocal, SubMessageAS4Local,
		SubMessageAddPath, SubMessageAS4AddPath, SubMessageLocalAddPath, SubMessageAS4LocalAddPath:
		return true
	}
	return false
}

// parseBGP4MPMessage reads the preamble and BGP header; ok is false for records bgpdump
// ignores (unsupported address family, bad marker, message types it does not parse).
func parseBGP4MPMessage(sub uint16, body []byte, m *bgp4mpHeader) bool {
	s := stream{b: body}
	m.local, m.asn4, m.addPath = bgp4mpFlags(sub)
	readAS := func() uint32 {
		if m.asn4 {
			return s.u32()
		}
		return uint32(s.u16())
	}
	// Peer first, then local, in every subtype (RFC 6396 4.4.2); bgpdump reads LOCAL
	// subtypes swapped and prints the destination, which is the same peer.
	m.peerAS, m.localAS = readAS(), readAS()
	ifindex := s.u16()
	m.afi = s.u16()
	m.peerIP, m.localIP = [16]byte{}, [16]byte{}
	var marker [16]byte
	switch m.afi {
	case 1:
		copy(m.peerIP[:], s.take(4))
		copy(m.localIP[:], s.take(4))
		copy(marker[:], s.take(16))
	case 2:
		m.peerIP, m.localIP = s.addr16(), s.addr16()
		copy(marker[:], s.take(16))
	case 0xffff:
		if ifindex != 0xffff {
			return false
		}
		marker[0], marker[1], marker[2], marker[3] = 0xff, 0xff, 0xff, 0xff
		copy(marker[4:], s.take(12))
		m.afi = 1
	default:
		return false
	}
	for _, b := range marker {
		if b != 0xff {
			return false
		}
	}
	size := int(s.u16())
	m.msg = s.sub(size - 18)
	m.msgType = m.msg.u8()
	switch m.msgType {
	case 1, 2, 3, 4:
		return true
	}
	return false
}

// stateChange is a BGP4MP STATE_CHANGE record.
type stateChange struct {
	peerAS   uint32
	afi      uint16
	peerIP   [16]byte
	old, new uint16
}

func parseStateChange(sub uint16, length uint32, body []byte, c *stateChange) bool {
	s := stream{b: body}
	asn4 := sub == SubStateChangeAS4
	readAS := func() uint32 {
		if asn4 {
			return s.u32()
		}
		return uint32(s.u16())
	}
	c.peerAS = readAS()
	readAS()
	c.peerIP = [16]byte{}
	if length == 8 { // Zebra bug: no interface, family or addresses
		c.old, c.new = s.u16(), s.u16()
		c.afi = 1
		return true
	}
	s.u16()
	c.afi = s.u16()
	switch c.afi {
	case 1:
		if length != 20 && length != 24 {
			return false
		}
		copy(c.peerIP[:], s.take(4))
		s.take(4)
	case 2:
		if length != 44 && length != 48 {
			return false
		}
		c.peerIP = s.addr16()
		s.take(16)
	default:
		return false
	}
	c.old, c.new = s.u16(), s.u16()
	return true
}

// tableDumpRoute is a TABLE_DUMP (v1) record.
type tableDumpRoute struct {
	prefix, peer [16]byte
	bits         uint8
	peerAS       uint32
	v6, asn4     bool
}

// parseTableDump reads a TABLE_DUMP record up to its attributes and returns the stream
// positioned on them; ok is false for unknown subtypes.
func parseTableDump(sub uint16, body []byte, t *tableDumpRoute) (s stream, ok bool) {
	s = stream{b: body}
	s.u16() // view
	s.u16() // sequence
	t.prefix, t.peer = [16]byte{}, [16]byte{}
	switch sub {
	case 1, 3:
		copy(t.prefix[:], s.take(4))
	case 2, 4:
		t.prefix = s.addr16()
	default:
		return s, false
	}
	t.bits = s.u8()
	s.u8()  // status
	s.u32() // originated
	t.v6 = sub == 2 || sub == 4
	if t.v6 {
		t.peer = s.addr16()
	} else {
		copy(t.peer[:], s.take(4))
	}
	t.asn4 = sub == 3 || sub == 4
	if t.asn4 {
		t.peerAS = s.u32()
	} else {
		t.peerAS = uint32(s.u16())
	}
	return s, true
}
