package mrt

import (
	"encoding/binary"
	"net/netip"

	"github.com/netledger/netledger/internal/routing"
)

// BGP path attribute type codes.
const (
	attrOrigin           = 1
	attrASPath           = 2
	attrNextHop          = 3
	attrMED              = 4
	attrLocalPref        = 5
	attrAtomicAggregate  = 6
	attrAggregator       = 7
	attrCommunities      = 8
	attrMPReach          = 14
	attrMPUnreach        = 15
	attrAS4Path          = 17
	attrAS4Aggregator    = 18
	attrLargeCommunities = 32
)

const asTrans = 23456

func flagBit(typ uint8) uint32 { return 1 << ((typ - 1) & 31) }

// mpNLRI is one MP_REACH_NLRI or MP_UNREACH_NLRI attribute.
type mpNLRI struct {
	present bool
	nhLen   uint8
	nh      [16]byte
	nhLocal [16]byte
	nlri    []byte
}

// attributes is a decoded path attribute block. It refers to the record's buffer and is reused
// from record to record: nothing in it survives the next call to Next.
type attributes struct {
	// Malformed reports a truncated attribute or attribute block (the rest is kept).
	Malformed bool

	flag      uint32
	asn4      bool
	addPath   bool
	origin    int
	nextHop   [4]byte
	med       uint32
	localPref uint32
	aggAS     uint32
	aggAddr   [4]byte
	as4AggAS  uint32
	as4Agg    [4]byte
	asPath    []byte
	as4Path   []byte
	hasASPath bool
	hasAS4    bool
	// as4Ignored: AGGREGATOR holds a real AS, so the AS4 attributes are ignored.
	as4Ignored bool
	comm       []byte
	large      []byte
	reach      [3][4]mpNLRI
	unreach    [3][4]mpNLRI

	// Effective AS path after the RFC 6793 merge, bgpdump's way (for printing).
	path     []byte
	pathASN4 bool
	merged   []byte
	pathStr  []byte
	strDone  bool
	scratch  []byte
	segs     []routing.Segment
	asns     []uint32
	comms    []uint32
	larges   []routing.LargeCommunity
	rfcMerge []byte
}

func (a *attributes) reset(asn4, addPath bool) {
	a.flag = 0
	a.asn4 = asn4
	a.addPath = addPath
	a.origin = -1
	a.nextHop = [4]byte{255, 255, 255, 255}
	a.med, a.localPref = 0, 0
	a.aggAS = 0xffffffff
	a.aggAddr = [4]byte{255, 255, 255, 255}
	a.as4AggAS = 0xffffffff
	a.as4Agg = [4]byte{255, 255, 255, 255}
	a.asPath, a.as4Path, a.comm, a.large = nil, nil, nil, nil
	a.hasASPath, a.hasAS4, a.as4Ignored = false, false, false
	a.Malformed = false
	a.reach = [3][4]mpNLRI{}
	a.unreach = [3][4]mpNLRI{}
	a.path, a.pathASN4 = nil, asn4
	a.strDone = false
}

// Has reports whether the attribute of type typ (1–32) was present.
func (a *attributes) Has(typ uint8) bool { return a.flag&flagBit(typ) != 0 }

// decode reads the attribute block (2-byte length, then attributes) from s.
func (a *attributes) decode(s *stream, asn4, addPath bool) {
	a.reset(asn4, addPath)
	total := int(s.u16())
	cp := s.sub(total)
	if cp.left() != total {
		a.Malformed = true
	}
	for cp.left() > 0 {
		a.one(&cp)
	}
	a.path = a.asPath
	a.as4Transition()
}

func (a *attributes) one(cp *stream) {
	flags := cp.u8()
	typ := cp.u8()
	var n int
	if flags&0x10 != 0 {
		n = int(cp.u16())
	} else {
		n = int(cp.u8())
	}
	s := cp.sub(n)
	if s.left() != n {
		a.Malformed = true
		return // truncated attribute: bgpdump ignores it
	}
	if typ <= 32 {
		a.flag |= flagBit(typ)
	}
	switch typ {
	case attrOrigin:
		a.origin = int(s.u8())
	case attrASPath:
		a.asPath, a.hasASPath = s.b, true
	case attrNextHop:
		a.nextHop = s.addr4()
	case attrMED:
		a.med = s.u32()
	case attrLocalPref:
		a.localPref = s.u32()
	case attrAggregator:
		if a.asn4 {
			a.aggAS = s.u32()
		} else {
			a.aggAS = uint32(s.u16())
		}
		a.aggAddr = s.addr4()
	case attrCommunities:
		a.comm = s.b[:n/4*4]
	case attrLargeCommunities:
		a.large = s.b[:n/12*12]
	case attrAS4Path:
		a.as4Path, a.hasAS4 = s.b, true
	case attrAS4Aggregator:
		a.as4AggAS = s.u32()
		a.as4Agg = s.addr4()
	case attrMPReach:
		if s.left() > 0 && s.b[0] != 0 {
			// RFC 6396 abbreviated form in TABLE_DUMP_V2: next hop only.
			if !a.reach[2][1].present {
				m := &a.reach[2][1]
				m.present = true
				m.nexthop(&s)
			}
			return
		}
		afi, safi := s.u16(), s.u8()
		if afi > 2 || safi > 3 || a.reach[afi][safi].present {
			return
		}
		m := &a.reach[afi][safi]
		m.present = true
		m.nexthop(&s)
		for snpa := s.u8(); snpa > 0; snpa-- {
			s.take(int(s.u8()))
		}
		m.nlri = s.b[s.p:]
	case attrMPUnreach:
		afi, safi := s.u16(), s.u8()
		if afi > 2 || safi > 3 || a.unreach[afi][safi].present {
			return
		}
		m := &a.unreach[afi][safi]
		m.present = true
		m.nlri = s.b[s.p:]
	}
}

func (m *mpNLRI) nexthop(s *stream) {
	m.nhLen = s.u8()
	switch m.nhLen {
	case 4:
		copy(m.nh[:], s.take(4))
	case 16:
		m.nh = s.addr16()
	case 32:
		m.nh = s.addr16()
		m.nhLocal = s.addr16()
	}
}

// as4Transition merges AS4_PATH and AS4_AGGREGATOR into the 2-byte-AS attributes as bgpdump
// does (RFC 6793 section 4.2.3).
func (a *attributes) as4Transition() {
	if a.asn4 {
		return
	}
	if a.Has(attrAggregator) && a.Has(attrAS4Aggregator) {
		if a.aggAS != asTrans {
			a.as4Ignored = true // RFC 6793: AS4_PATH and AS4_AGGREGATOR are ignored
			return
		}
		a.aggAS, a.aggAddr = a.as4AggAS, a.as4Agg
	}
	if !a.Has(attrAS4Path) || !a.hasASPath {
		return
	}
	_, pc := appendASPath(a.scratch[:0], a.asPath, 2)
	_, nc := appendASPath(a.scratch[:0], a.as4Path, 4)
	if pc < nc {
		return
	}
	a.merged = mergeAS4(a.merged[:0], a.asPath, a.as4Path, pc-nc, false)
	a.path, a.pathASN4 = a.merged, true
}

// mergeAS4 builds a 4-byte AS path from the first want ASNs of the 2-byte path followed by the
// AS4 path. bgpdump copies the first segment of the old path again and again instead of
// walking it (compat=false reproduces that); advance walks the segments as RFC 6793 says.
func mergeAS4(dst, old, as4 []byte, want int, advance bool) []byte {
	count, pos := 0, 0
	for iter := 0; count < want && iter < 4096; iter++ {
		if pos+2 > len(old) {
			break
		}
		typ, n := old[pos], int(old[pos+1])
		if pos+2+2*n > len(old) {
			break
		}
		segStart := len(dst)
		dst = append(dst, typ, uint8(n))
		for i := 0; i < n; i++ {
			dst = binary.BigEndian.AppendUint32(dst, uint32(binary.BigEndian.Uint16(old[pos+2+2*i:])))
		}
		if typ == routing.SegmentSet || typ == routing.SegmentConfedSet {
			count++
		} else {
			count += n
			if count > want {
				extra := count - want
				dst[segStart+1] -= uint8(extra)
				dst = dst[:len(dst)-4*extra]
			}
		}
		if advance {
			pos += 2 + 2*n
		}
	}
	return append(dst, as4...)
}

const asPathError = "! Error !"

// appendASPath appends bgpdump's text of a raw AS path and returns the path's length as
// bgpdump counts it (a set counts one); an invalid path gives "! Error !" and 0.
func appendASPath(dst, data []byte, asnLen int) ([]byte, int) {
	start := len(dst)
	count := 0
	space := false
	prev := routing.SegmentSequence
	var last uint8
	seen := false
	for p := 0; p < len(data); {
		typ := data[p]
		if typ < 1 || typ > 4 || p+2 > len(data) {
			return append(dst[:start], asPathError...), 0
		}
		n := int(data[p+1])
		if p+2+n*asnLen > len(data) {
			return append(dst[:start], asPathError...), 0
		}
		if prev != routing.SegmentSequence {
			dst = append(dst, segEnd(prev))
		}
		if space {
			dst = append(dst, ' ')
		}
		if typ != routing.SegmentSequence {
			dst = append(dst, segStart(typ))
		}
		space = false
		if typ == routing.SegmentSequence || typ == routing.SegmentConfedSequence {
			count += n
		} else {
			count++
		}
		for i := 0; i < n; i++ {
			if space {
				if typ == routing.SegmentSet || typ == routing.SegmentConfedSet {
					dst = append(dst, ',')
				} else {
					dst = append(dst, ' ')
				}
			} else {
				space = true
			}
			var asn uint32
			if asnLen == 2 {
				asn = uint32(binary.BigEndian.Uint16(data[p+2+2*i:]))
			} else {
				asn = binary.BigEndian.Uint32(data[p+2+4*i:])
			}
			dst = appendUint(dst, uint64(asn))
			if len(dst)-start > 8000-100 {
				return append(dst, "..."...), count
			}
		}
		prev = typ
		last, seen = typ, true
		p += 2 + n*asnLen
	}
	if seen && last != routing.SegmentSequence {
		dst = append(dst, segEnd(last))
	}
	return dst, count
}

func segStart(t uint8) byte {
	switch t {
	case routing.SegmentSet:
		return '{'
	case routing.SegmentConfedSet:
		return '['
	case routing.SegmentConfedSequence:
		return '('
	}
	return ' '
}

func segEnd(t uint8) byte {
	switch t {
	case routing.SegmentSet:
		return '}'
	case routing.SegmentConfedSet:
		return ']'
	case routing.SegmentConfedSequence:
		return ')'
	}
	return ' '
}

// pathString returns bgpdump's AS path text ("" when there is no AS_PATH).
func (a *attributes) pathString() []byte {
	if !a.strDone {
		a.strDone = true
		a.pathStr = a.pathStr[:0]
		if a.hasASPath {
			asnLen := 2
			if a.pathASN4 {
				asnLen = 4
			}
			a.pathStr, _ = appendASPath(a.pathStr, a.path, asnLen)
		}
	}
	return a.pathStr
}

// Routing fills dst with the attributes in routing form. The slices in dst are reused by the
// next call: a RIB that keeps them must copy (intern) them. For IPv6 routes (v6) the next hop
// is the MP_REACH_NLRI global address; for IPv4 routes NEXT_HOP, unless only an MP_REACH next
// hop is present.
func (a *attributes) Routing(dst *routing.Attrs, v6 bool) {
	*dst = routing.Attrs{}
	// AS path: AS4_PATH merged per RFC 6793 (segments walked in order).
	path, asnLen := a.asPath, 2
	if a.asn4 {
		asnLen = 4
	} else if a.hasASPath && a.hasAS4 && !a.as4Ignored {
		pc, ok1 := pathCount(a.asPath, 2)
		nc, ok2 := pathCount(a.as4Path, 4)
		if ok1 && ok2 && pc >= nc {
			a.rfcMerge = mergeAS4(a.rfcMerge[:0], a.asPath, a.as4Path, pc-nc, true)
			path, asnLen = a.rfcMerge, 4
		}
	}
	a.asns, a.segs = a.asns[:0], a.segs[:0]
	if a.hasASPath {
		type seg struct {
			t      uint8
			lo, hi int
		}
		var tmp [16]seg
		segs := tmp[:0]
		for p := 0; p+2 <= len(path); {
			t, n := path[p], int(path[p+1])
			if p+2+n*asnLen > len(path) {
				break
			}
			lo := len(a.asns)
			for i := 0; i < n; i++ {
				if asnLen == 2 {
					a.asns = append(a.asns, uint32(binary.BigEndian.Uint16(path[p+2+2*i:])))
				} else {
					a.asns = append(a.asns, binary.BigEndian.Uint32(path[p+2+4*i:]))
				}
			}
			segs = append(segs, seg{t, lo, len(a.asns)})
			p += 2 + n*asnLen
		}
		for _, s := range segs {
			a.segs = append(a.segs, routing.Segment{Type: s.t, ASNs: a.asns[s.lo:s.hi:s.hi]})
		}
		dst.Path = a.segs
	}
	if a.origin >= 0 && a.origin <= 2 {
		dst.Origin = uint8(a.origin)
	} else {
		dst.Origin = routing.OriginIncomplete
	}
	if a.Has(attrMED) {
		dst.MED, dst.HasMED = a.med, true
	}
	if a.Has(attrLocalPref) {
		dst.LocalPref, dst.HasLocalPref = a.localPref, true
	}
	// Next hop.
	mp := a.mpNextHop(v6)
	switch {
	case mp != nil && (mp.nhLen == 16 || mp.nhLen == 32):
		dst.NextHop = netip.AddrFrom16(mp.nh).Unmap()
	case mp != nil && mp.nhLen == 4 && !a.Has(attrNextHop):
		dst.NextHop = netip.AddrFrom4([4]byte(mp.nh[:4]))
	case a.Has(attrNextHop):
		dst.NextHop = netip.AddrFrom4(a.nextHop)
	case mp != nil && mp.nhLen == 4:
		dst.NextHop = netip.AddrFrom4([4]byte(mp.nh[:4]))
	}
	if len(a.comm) > 0 {
		a.comms = a.comms[:0]
		for i := 0; i+4 <= len(a.comm); i += 4 {
			a.comms = append(a.comms, binary.BigEndian.Uint32(a.comm[i:]))
		}
		dst.Communities = a.comms
	}
	if len(a.large) > 0 {
		a.larges = a.larges[:0]
		for i := 0; i+12 <= len(a.large); i += 12 {
			a.larges = append(a.larges, routing.LargeCommunity{
				Global: binary.BigEndian.Uint32(a.large[i:]),
				Local1: binary.BigEndian.Uint32(a.large[i+4:]),
				Local2: binary.BigEndian.Uint32(a.large[i+8:]),
			})
		}
		dst.LargeCommunities = a.larges
	}
}

// mpNextHop returns the MP_REACH_NLRI whose next hop applies to a route of the family.
func (a *attributes) mpNextHop(v6 bool) *mpNLRI {
	if v6 {
		if a.reach[2][1].present {
			return &a.reach[2][1]
		}
		if a.reach[2][2].present {
			return &a.reach[2][2]
		}
		return nil
	}
	if a.reach[1][1].present {
		return &a.reach[1][1]
	}
	if a.reach[2][1].present && a.reach[2][1].nlri == nil {
		return &a.reach[2][1] // abbreviated TABLE_DUMP_V2 form
	}
	return nil
}

// pathCount counts a raw path's length (a set counts one) and checks its framing.
func pathCount(data []byte, asnLen int) (int, bool) {
	c := 0
	for p := 0; p < len(data); {
		if p+2 > len(data) {
			return 0, false
		}
		t, n := data[p], int(data[p+1])
		if t < 1 || t > 4 || p+2+n*asnLen > len(data) {
			return 0, false
		}
		if t == routing.SegmentSet || t == routing.SegmentConfedSet {
			c++
		} else {
			c += n
		}
		p += 2 + n*asnLen
	}
	return c, true
}
