package mrt

import (
	"net/netip"

	"github.com/netledger/netledger/internal/routing"
)

// RouteKind says what a Route reports.
type RouteKind uint8

// Route kinds.
const (
	// Announce is a RIB entry (TABLE_DUMP, TABLE_DUMP_V2) or an announced prefix (BGP4MP).
	Announce RouteKind = iota + 1
	// Withdraw is a withdrawn prefix; Attrs is nil.
	Withdraw
	// State is a BGP4MP state change of Peer (OldState → NewState, RFC 6396 numbering: 1 Idle …
	// 6 Established); Prefix is invalid and Attrs nil.
	State
)

// Route is one route of an MRT file, in file order (within a BGP4MP UPDATE: withdrawals
// first, then announcements, as bgpdump prints them).
type Route struct {
	Kind   RouteKind
	Header Header
	// Peer is the neighbour the route was learnt from; Peer.Index is its PEER_INDEX_TABLE
	// position for TABLE_DUMP_V2 and 0 otherwise.
	Peer   Peer
	Prefix netip.Prefix
	// PathID is the ADD-PATH identifier (0 without ADD-PATH).
	PathID uint32
	// Attrs is the route's attribute set, shared by the routes of one record and rewritten by
	// the next record: a RIB keeping it must copy (intern) it.
	Attrs              *routing.Attrs
	OldState, NewState uint16
}

// RouteStats counts what Routes skipped.
type RouteStats struct {
	// Records read, and records skipped as unsupported or malformed (bgpdump skips them too).
	Records, Skipped int64
	// BadPrefixes counts NLRI entries with impossible lengths.
	BadPrefixes int64
	// BadAttributes counts announced routes whose attribute block was truncated (the
	// attributes before the cut are kept, as bgpdump keeps them).
	BadAttributes int64
}

// Routes calls fn for every route of the remaining records, reusing one Route (and its Attrs)
// throughout: nothing is allocated per route. It stops at the first error of fn, or at a
// framing error of the input (an *Error naming the offset) after every complete record
// before it. Only unicast routes are reported: TABLE_DUMP_V2 multicast records, RIB_GENERIC
// records of other families and multicast MP_REACH/MP_UNREACH NLRI are skipped.
//
// Loading a RIB:
//
//	r, err := mrt.Open(file)
//	…
//	err = r.Routes(func(rt *mrt.Route) error {
//		switch rt.Kind {
//		case mrt.Announce:
//			rib.Announce(rt.Prefix, rt.PathID, *rt.Attrs) // the RIB interns (copies) the attrs
//		case mrt.Withdraw:
//			rib.Withdraw(rt.Prefix, rt.PathID)
//		}
//		return nil
//	})
func (r *Reader) Routes(fn func(*Route) error) error {
	w := &r.walk
	for r.Next() {
		w.stats.Records++
		if err := w.record(r.Header(), r.Body(), fn); err != nil {
			return err
		}
	}
	return r.Err()
}

// RouteStats returns the counters of Routes.
func (r *Reader) RouteStats() RouteStats { return r.walk.stats }

// Peers returns the last PEER_INDEX_TABLE read by Routes.
func (r *Reader) Peers() []Peer { return r.walk.peers }

// walker holds the state of Routes (reused buffers, the peer index table).
type walker struct {
	attrs attributes
	ra    routing.Attrs
	rt    Route
	peers []Peer
	stats RouteStats
}

func (w *walker) record(h Header, body []byte, fn func(*Route) error) error {
	w.rt = Route{Header: h}
	switch h.Type {
	case TypeTableDump:
		return w.tableDump(h, body, fn)
	case TypeTableDumpV2:
		return w.tableDumpV2(h, body, fn)
	case TypeBGP4MP, TypeBGP4MPET:
		return w.bgp4mp(h, body, fn)
	case TypeMRTDBGP:
		return w.mrtdBGP(h, body, fn)
	}
	w.stats.Skipped++
	return nil
}

func (w *walker) emit(kind RouteKind, p *rawPrefix, v6 bool, fn func(*Route) error) error {
	pfx, ok := p.prefix(v6)
	if !ok {
		w.stats.BadPrefixes++
		return nil
	}
	w.rt.Kind, w.rt.Prefix, w.rt.PathID = kind, pfx, p.pathID
	if kind == Announce {
		if w.attrs.Malformed {
			w.stats.BadAttributes++
		}
		w.rt.Attrs = &w.ra
	} else {
		w.rt.Attrs = nil
	}
	return fn(&w.rt)
}

func peerFrom(raw [16]byte, v6 bool, asn uint32) Peer {
	p := Peer{ASN: asn, raw: raw, v6: v6}
	if v6 {
		p.Addr = netip.AddrFrom16(raw).Unmap()
	} else {
		p.Addr = netip.AddrFrom4([4]byte(raw[:4]))
	}
	return p
}

func (w *walker) tableDump(h Header, body []byte, fn func(*Route) error) error {
	var t tableDumpRoute
	s, ok := parseTableDump(h.Subtype, body, &t)
	if !ok || s.left() < 2 {
		w.stats.Skipped++
		return nil
	}
	w.attrs.decode(&s, t.asn4, false)
	w.attrs.Routing(&w.ra, t.v6)
	w.rt.Peer = peerFrom(t.peer, t.v6, t.peerAS)
	p := rawPrefix{addr: t.prefix, bits: t.bits}
	return w.emit(Announce, &p, t.v6, fn)
}

func (w *walker) tableDumpV2(h Header, body []byte, fn func(*Route) error) error {
	var v6, addPath bool
	switch h.Subtype {
	case SubPeerIndexTable:
		w.peers = parsePeerIndex(body, w.peers)
		return nil
	case SubRIBIPv4Unicast:
	case SubRIBIPv4UnicastAddPath:
		addPath = true
	case SubRIBIPv6Unicast:
		v6 = true
	case SubRIBIPv6UnicastAddPath:
		v6, addPath = true, true
	case SubRIBGeneric, SubRIBGenericAddPath:
		return w.ribGeneric(h, body, fn)
	default:
		w.stats.Skipped++
		return nil
	}
	s := stream{b: body}
	s.u32()
	return w.ribEntries(&s, v6, addPath, fn)
}

// ribGeneric reads a RIB_GENERIC record (RFC 6396 4.3.3) of IPv4 or IPv6 unicast; other
// families are skipped.
func (w *walker) ribGeneric(h Header, body []byte, fn func(*Route) error) error {
	s := stream{b: body}
	s.u32()
	afi, safi := s.u16(), s.u8()
	if (afi != 1 && afi != 2) || safi != 1 {
		w.stats.Skipped++
		return nil
	}
	return w.ribEntries(&s, afi == 2, h.Subtype == SubRIBGenericAddPath, fn)
}

// ribEntries reads the prefix and RIB entries of a TABLE_DUMP_V2 RIB record.
func (w *walker) ribEntries(s *stream, v6, addPath bool, fn func(*Route) error) error {
	var p rawPrefix
	p.bits = s.u8()
	n := (int(p.bits) + 7) / 8
	if n > 16 || s.left() < n {
		w.stats.BadPrefixes++
		return nil
	}
	copy(p.addr[:], s.take(n))
	count := int(s.u16())
	for i := 0; i < count; i++ {
		if s.left() < 8 {
			w.stats.Skipped++
			return nil
		}
		idx := int(s.u16())
		s.u32()
		if addPath {
			p.pathID = s.u32()
		}
		if idx >= len(w.peers) {
			w.stats.Skipped++
			return nil
		}
		w.attrs.decode(s, true, addPath)
		w.attrs.Routing(&w.ra, v6)
		w.rt.Peer = w.peers[idx]
		if err := w.emit(Announce, &p, v6, fn); err != nil {
			return err
		}
	}
	return nil
}

func (w *walker) bgp4mp(h Header, body []byte, fn func(*Route) error) error {
	if h.Subtype == SubStateChange || h.Subtype == SubStateChangeAS4 {
		var c stateChange
		if !parseStateChange(h.Subtype, h.Length, body, &c) {
			w.stats.Skipped++
			return nil
		}
		w.rt.Kind = State
		w.rt.Peer = peerFrom(c.peerIP, c.afi == 2, c.peerAS)
		w.rt.OldState, w.rt.NewState = c.old, c.new
		return fn(&w.rt)
	}
	var m bgp4mpHeader
	if !isBGP4MPMessage(h.Subtype) || !parseBGP4MPMessage(h.Subtype, body, &m) {
		w.stats.Skipped++
		return nil
	}
	if m.msgType != 2 {
		return nil
	}
	w.rt.Peer = peerFrom(m.peerIP, m.afi == 2, m.peerAS)
	s := m.msg
	ws := s.sub(int(s.u16()))
	a := &w.attrs
	a.decode(&s, m.asn4, m.addPath)
	var p rawPrefix
	walk := func(st stream, kind RouteKind, v6 bool) error {
		it := prefixIter{s: st, addPath: m.addPath}
		for it.next(&p) {
			if err := w.emit(kind, &p, v6, fn); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(ws, Withdraw, false); err != nil {
		return err
	}
	for afi := 1; afi <= 2; afi++ {
		for safi := 1; safi <= 3; safi++ {
			if u := &a.unreach[afi][safi]; u.present && safi != 2 {
				if err := walk(stream{b: u.nlri}, Withdraw, afi == 2); err != nil {
					return err
				}
			}
		}
	}
	if s.left() > 0 {
		a.Routing(&w.ra, false)
		if err := walk(s, Announce, false); err != nil {
			return err
		}
	}
	for afi := 1; afi <= 2; afi++ {
		for safi := 1; safi <= 3; safi++ {
			if r := &a.reach[afi][safi]; r.present && safi != 2 && len(r.nlri) > 0 {
				a.Routing(&w.ra, afi == 2)
				if err := walk(stream{b: r.nlri}, Announce, afi == 2); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (w *walker) mrtdBGP(h Header, body []byte, fn func(*Route) error) error {
	if h.Subtype != 1 {
		return nil
	}
	s := stream{b: body}
	as := uint32(s.u16())
	var ip [16]byte
	copy(ip[:], s.take(4))
	s.u16()
	s.take(4)
	w.rt.Peer = peerFrom(ip, false, as)
	ws := s.sub(int(s.u16()))
	w.attrs.decode(&s, false, false)
	w.attrs.Routing(&w.ra, false)
	var p rawPrefix
	it := prefixIter{s: ws}
	for it.next(&p) {
		if err := w.emit(Withdraw, &p, false, fn); err != nil {
			return err
		}
	}
	it = prefixIter{s: s}
	for it.next(&p) {
		if err := w.emit(Announce, &p, false, fn); err != nil {
			return err
		}
	}
	return nil
}
