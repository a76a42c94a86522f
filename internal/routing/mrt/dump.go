package mrt

import (
	"bufio"
	"io"
	"time"
)

// Mode selects bgpdump's output format.
type Mode int

// Output modes of Dumper.
const (
	// ModeOneLine is bgpdump -m: one line per route, Unix timestamps.
	ModeOneLine Mode = 1
	// ModeShort is bgpdump -M: one short line per route, human-readable times.
	ModeShort Mode = 2
)

// Dumper prints MRT records exactly as bgpdump 1.6 prints them with -m (or -M).
type Dumper struct {
	w     *bufio.Writer
	mode  Mode
	line  []byte
	attrs attributes
	peers []Peer
	tstr  []byte
	tkey  timeKey
	// Skipped counts records bgpdump ignores too (unsupported types, bad markers…).
	Skipped int64
}

// NewDumper returns a Dumper writing to w. Call Flush at the end.
func NewDumper(w io.Writer, mode Mode) *Dumper {
	return &Dumper{w: bufio.NewWriterSize(w, 256<<10), mode: mode, line: make([]byte, 0, 1024)}
}

// Flush writes buffered output.
func (d *Dumper) Flush() error { return d.w.Flush() }

// Dump prints every remaining record of r and returns r's error, if any. Each call starts
// without a PEER_INDEX_TABLE: one call per file.
func (d *Dumper) Dump(r *Reader) error {
	d.peers = d.peers[:0]
	for r.Next() {
		if err := d.Record(r.Header(), r.Body()); err != nil {
			return err
		}
	}
	return r.Err()
}

// Record prints one record.
func (d *Dumper) Record(h Header, body []byte) error {
	switch h.Type {
	case TypeTableDump:
		d.tableDump(h, body)
	case TypeTableDumpV2:
		d.tableDumpV2(h, body)
	case TypeBGP4MP, TypeBGP4MPET:
		d.bgp4mp(h, body)
	case TypeMRTDBGP:
		d.mrtdBGP(h, body)
	default:
		d.Skipped++
	}
	if len(d.line) > 0 {
		_, err := d.w.Write(d.line)
		d.line = d.line[:0]
		return err
	}
	return nil
}

// timeStr formats the record time: seconds for -m, "MM/DD/YY HH:MM:SS" for -M, with
// ".uuuuuu" for BGP4MP_ET.
func (d *Dumper) timeStr(h Header, et bool) []byte {
	key := timeKey{h.Time, h.Micro, et, true}
	if key == d.tkey {
		return d.tstr
	}
	d.tkey = key
	t := d.tstr[:0]
	if d.mode == ModeOneLine {
		t = appendUint(t, uint64(h.Time))
	} else {
		tm := time.Unix(int64(h.Time), 0).UTC()
		t = append2(t, int(tm.Month()))
		t = append(t, '/')
		t = append2(t, tm.Day())
		t = append(t, '/')
		t = append2(t, tm.Year()%100)
		t = append(t, ' ')
		t = append2(t, tm.Hour())
		t = append(t, ':')
		t = append2(t, tm.Minute())
		t = append(t, ':')
		t = append2(t, tm.Second())
	}
	if et {
		t = append(t, '.')
		m := h.Micro
		for div := uint32(100000); div > 1 && m < div; div /= 10 {
			t = append(t, '0')
		}
		t = appendUint(t, uint64(m))
	}
	d.tstr = t
	return t
}

// timeKey identifies the last formatted time.
type timeKey struct {
	sec, micro uint32
	et, valid  bool
}

func append2(dst []byte, v int) []byte {
	if v < 10 {
		dst = append(dst, '0')
	}
	return appendInt(dst, int64(v))
}

func (d *Dumper) linePrefix(format string, t []byte, typ string) {
	d.line = append(d.line, format...)
	d.line = append(d.line, '|')
	d.line = append(d.line, t...)
	d.line = append(d.line, '|')
	d.line = append(d.line, typ...)
	d.line = append(d.line, '|')
}

func describeOrigin(o int) string {
	switch o {
	case 0:
		return "IGP"
	case 1:
		return "EGP"
	}
	return "INCOMPLETE"
}

// tail appends "|community|AG|aggregator|\n" (the part after MED).
func (d *Dumper) tail(a *attributes) {
	l := d.line
	if a.Has(attrCommunities) {
		l = appendCommunities(l, a.comm)
	}
	l = append(l, '|')
	if a.Has(attrAtomicAggregate) {
		l = append(l, "AG|"...)
	} else {
		l = append(l, "NAG|"...)
	}
	if a.aggAddr != [4]byte{255, 255, 255, 255} {
		l = appendUint(l, uint64(a.aggAS))
		l = append(l, ' ')
		l = appendIPv4(l, a.aggAddr[:])
	}
	d.line = append(l, "|\n"...)
}

func appendCommunities(dst, c []byte) []byte {
	for i := 0; i+4 <= len(c); i += 4 {
		if i > 0 {
			dst = append(dst, ' ')
		}
		v := uint32(c[i])<<24 | uint32(c[i+1])<<16 | uint32(c[i+2])<<8 | uint32(c[i+3])
		switch v {
		case 0xFFFFFF01:
			dst = append(dst, "no-export"...)
		case 0xFFFFFF02:
			dst = append(dst, "no-advertise"...)
		case 0xFFFFFF03:
			dst = append(dst, "local-AS"...)
		default:
			dst = appendUint(dst, uint64(v>>16))
			dst = append(dst, ':')
			dst = appendUint(dst, uint64(v&0xffff))
		}
	}
	return dst
}

func (a *attributes) prefAndMED() (uint32, uint32) {
	var p, m uint32
	if a.Has(attrLocalPref) {
		p = a.localPref
	}
	if a.Has(attrMED) {
		m = a.med
	}
	return p, m
}

// appendPrefMED appends "pref|med|" with %u, or %d (signed) as bgpdump does for MP IPv4.
func appendPrefMED(l []byte, a *attributes, signed bool) []byte {
	p, m := a.prefAndMED()
	if signed {
		l = appendInt(l, int64(int32(p)))
		l = append(l, '|')
		l = appendInt(l, int64(int32(m)))
	} else {
		l = appendUint(l, uint64(p))
		l = append(l, '|')
		l = appendUint(l, uint64(m))
	}
	return append(l, '|')
}

func (d *Dumper) tableDump(h Header, body []byte) {
	var t tableDumpRoute
	s, ok := parseTableDump(h.Subtype, body, &t)
	if !ok {
		d.Skipped++
		return
	}
	peer, prefix, mask, peerAS := &t.peer, &t.prefix, t.bits, t.peerAS
	a := &d.attrs
	a.decode(&s, t.asn4, false)

	d.linePrefix("TABLE_DUMP", d.timeStr(h, false), "B")
	l := appendPeer(d.line, h.Subtype == 2, peer, uint32(peerAS))
	l = appendPrefix(l, h.Subtype == 2, prefix, mask)
	l = append(l, '|')
	l = appendPathOrigin(l, a)
	if d.mode != ModeOneLine {
		d.line = append(l, '\n')
		return
	}
	l = append(l, '|')
	if a.Has(attrMPReach) && a.reach[2][1].present {
		l = appendIPv6(l, &a.reach[2][1].nh)
	} else {
		l = appendIPv4(l, a.nextHop[:])
	}
	l = append(l, '|')
	l = appendPrefMED(l, a, false)
	d.line = l
	d.tail(a)
}

func (d *Dumper) tableDumpV2(h Header, body []byte) {
	var v6, addPath bool
	switch h.Subtype {
	case SubPeerIndexTable:
		d.peers = parsePeerIndex(body, d.peers)
		return
	case SubRIBIPv4Unicast:
	case SubRIBIPv4UnicastAddPath:
		addPath = true
	case SubRIBIPv6Unicast:
		v6 = true
	case SubRIBIPv6UnicastAddPath:
		v6, addPath = true, true
	default:
		d.Skipped++ // bgpdump does not print multicast or RIB_GENERIC entries
		return
	}
	s := stream{b: body}
	s.u32()
	bits := s.u8()
	var prefix [16]byte
	copy(prefix[:], s.take((int(bits)+7)/8))
	count := int(s.u16())
	if count > 0 && len(d.peers) == 0 {
		d.Skipped++
		return
	}
	format := "TABLE_DUMP2"
	if addPath {
		format = "TABLE_DUMP2_AP"
	}
	a := &d.attrs
	for i := 0; i < count; i++ {
		idx := int(s.u16())
		s.u32()
		var pathID uint32
		if addPath {
			pathID = s.u32()
		}
		if idx >= len(d.peers) {
			d.Skipped++
			return
		}
		a.decode(&s, true, addPath)
		p := &d.peers[idx]
		d.linePrefix(format, d.timeStr(h, false), "B")
		l := appendPeer(d.line, p.v6, &p.raw, p.ASN)
		l = appendPrefix(l, v6, &prefix, bits)
		l = append(l, '|')
		if addPath {
			l = appendUint(l, uint64(pathID))
			l = append(l, '|')
		}
		l = appendPathOrigin(l, a)
		if d.mode != ModeOneLine {
			d.line = append(l, '\n')
			continue
		}
		l = append(l, '|')
		var mp *mpNLRI
		if a.Has(attrMPReach) && a.reach[2][1].present {
			mp = &a.reach[2][1]
		} else if a.Has(attrMPReach) && a.reach[1][1].present {
			mp = &a.reach[1][1]
		}
		if mp != nil {
			switch mp.nhLen {
			case 4:
				l = appendIPv4(l, mp.nh[:])
			case 16, 32:
				l = appendIPv6(l, &mp.nh)
			}
		} else {
			l = appendIPv4(l, a.nextHop[:])
		}
		l = append(l, '|')
		l = appendPrefMED(l, a, false)
		d.line = l
		d.tail(a)
	}
}

func bgp4mpFormat(et, local, addPath bool) string {
	switch {
	case et && local && addPath:
		return "BGP4MP_ET_LOCAL_AP"
	case et && local:
		return "BGP4MP_ET_LOCAL"
	case et && addPath:
		return "BGP4MP_ET_AP"
	case et:
		return "BGP4MP_ET"
	case local && addPath:
		return "BGP4MP_LOCAL_AP"
	case local:
		return "BGP4MP_LOCAL"
	case addPath:
		return "BGP4MP_AP"
	}
	return "BGP4MP"
}

func (d *Dumper) bgp4mp(h Header, body []byte) {
	et := h.Type == TypeBGP4MPET
	switch {
	case h.Subtype == SubStateChange || h.Subtype == SubStateChangeAS4:
		var c stateChange
		if !parseStateChange(h.Subtype, h.Length, body, &c) {
			d.Skipped++
			return
		}
		format := "BGP4MP"
		if et {
			format = "BGP4MP_ET"
		}
		d.linePrefix(format, d.timeStr(h, et), "STATE")
		l := appendPeer(d.line, c.afi == 2, &c.peerIP, uint32(c.peerAS))
		l = appendUint(l, uint64(c.old))
		l = append(l, '|')
		l = appendUint(l, uint64(c.new))
		d.line = append(l, '\n')
		return
	case !isBGP4MPMessage(h.Subtype):
		d.Skipped++
		return
	}
	var m bgp4mpHeader
	if !parseBGP4MPMessage(h.Subtype, body, &m) {
		d.Skipped++
		return
	}
	if m.msgType != 2 {
		return
	}
	s := m.msg
	ws := s.sub(int(s.u16()))
	a := &d.attrs
	a.decode(&s, m.asn4, m.addPath)
	format := bgp4mpFormat(et, m.local, m.addPath)
	t := d.timeStr(h, et)

	// Withdrawals: IPv4 NLRI, then MP_UNREACH by family.
	var p rawPrefix
	it := prefixIter{s: ws, addPath: m.addPath}
	for it.next(&p) {
		d.withdraw(format, t, &m, &p, false)
	}
	for safi := 1; safi <= 3; safi++ {
		if u := &a.unreach[1][safi]; u.present {
			it := prefixIter{s: stream{b: u.nlri}, addPath: m.addPath}
			for it.next(&p) {
				d.withdraw(format, t, &m, &p, false)
			}
		}
	}
	for safi := 1; safi <= 3; safi++ {
		if u := &a.unreach[2][safi]; u.present {
			it := prefixIter{s: stream{b: u.nlri}, addPath: m.addPath}
			for it.next(&p) {
				d.withdraw(format, t, &m, &p, true)
			}
		}
	}
	// Announcements.
	it = prefixIter{s: s, addPath: m.addPath}
	for it.next(&p) {
		d.announce4(format, t, &m, &p, nil)
	}
	for safi := 1; safi <= 3; safi++ {
		if r := &a.reach[1][safi]; r.present {
			it := prefixIter{s: stream{b: r.nlri}, addPath: m.addPath}
			for it.next(&p) {
				d.announce4(format, t, &m, &p, r)
			}
		}
	}
	for safi := 1; safi <= 3; safi++ {
		if r := &a.reach[2][safi]; r.present {
			it := prefixIter{s: stream{b: r.nlri}, addPath: m.addPath}
			for it.next(&p) {
				d.announce6(format, t, &m, &p, r)
			}
		}
	}
}

// appendAddr appends an IPv6 address, or the IPv4 address in a's first four bytes.
func appendAddr(l []byte, v6 bool, a *[16]byte) []byte {
	if v6 {
		return appendIPv6(l, a)
	}
	return appendIPv4(l, a[:4])
}

// appendPeer appends "peer address|peer AS|".
func appendPeer(l []byte, v6 bool, a *[16]byte, as uint32) []byte {
	l = appendAddr(l, v6, a)
	l = append(l, '|')
	l = appendUint(l, uint64(as))
	return append(l, '|')
}

// appendPrefix appends "address/length".
func appendPrefix(l []byte, v6 bool, a *[16]byte, bits uint8) []byte {
	l = appendAddr(l, v6, a)
	l = append(l, '/')
	return appendUint(l, uint64(bits))
}

// appendPathOrigin appends "AS path|origin".
func appendPathOrigin(l []byte, a *attributes) []byte {
	l = append(l, a.pathString()...)
	l = append(l, '|')
	return append(l, describeOrigin(a.origin)...)
}

// withdraw prints an IPv4 or IPv6 withdrawal.
func (d *Dumper) withdraw(format string, t []byte, m *bgp4mpHeader, p *rawPrefix, v6 bool) {
	d.linePrefix(format, t, "W")
	// bgpdump prints a local IPv4 peer in IPv6 notation in IPv6 withdrawals.
	l := appendPeer(d.line, m.afi == 2 || v6 && m.local, &m.peerIP, m.peerAS)
	l = appendPrefix(l, v6, &p.addr, p.bits)
	if m.addPath {
		l = append(l, '|')
		l = appendUint(l, uint64(p.pathID))
	}
	d.line = append(l, '\n')
}

// announce4 prints an IPv4 announcement, from the NLRI field (mp nil) or MP_REACH_NLRI.
func (d *Dumper) announce4(format string, t []byte, m *bgp4mpHeader, p *rawPrefix, mp *mpNLRI) {
	a := &d.attrs
	d.linePrefix(format, t, "A")
	l := appendPeer(d.line, m.afi == 2, &m.peerIP, m.peerAS)
	l = appendPrefix(l, false, &p.addr, p.bits)
	l = append(l, '|')
	if m.addPath {
		l = appendUint(l, uint64(p.pathID))
		l = append(l, '|')
	}
	l = appendPathOrigin(l, a)
	if d.mode != ModeOneLine {
		d.line = append(l, '\n')
		return
	}
	l = append(l, '|')
	if mp == nil {
		l = appendIPv4(l, a.nextHop[:])
		l = append(l, '|')
		l = appendPrefMED(l, a, false)
	} else {
		switch mp.nhLen {
		case 4:
			l = appendIPv4(l, mp.nh[:])
			l = append(l, '|')
			l = appendPrefMED(l, a, true)
		case 16, 32:
			l = appendIPv6(l, &mp.nh)
			l = append(l, '|')
			l = appendPrefMED(l, a, true)
		}
	}
	d.line = l
	d.tail(a)
}

func (d *Dumper) announce6(format string, t []byte, m *bgp4mpHeader, p *rawPrefix, mp *mpNLRI) {
	a := &d.attrs
	d.linePrefix(format, t, "A")
	l := appendPeer(d.line, m.afi == 2, &m.peerIP, m.peerAS)
	l = appendPrefix(l, true, &p.addr, p.bits)
	l = append(l, '|')
	if m.addPath {
		l = appendUint(l, uint64(p.pathID))
		l = append(l, '|')
	}
	if d.mode != ModeOneLine {
		d.line = append(appendPathOrigin(l, a), '\n')
		return
	}
	if mp.nhLen == 4 || mp.nhLen == 16 || mp.nhLen == 32 {
		l = appendPathOrigin(l, a)
		l = append(l, '|')
		if mp.nhLen == 4 {
			l = appendIPv4(l, mp.nh[:])
		} else {
			l = appendIPv6(l, &mp.nh)
		}
		l = append(l, '|')
		l = appendPrefMED(l, a, false)
	}
	d.line = l
	d.tail(a)
}

// mrtdBGP prints the old MRTD BGP records (type 5).
func (d *Dumper) mrtdBGP(h Header, body []byte) {
	s := stream{b: body}
	switch h.Subtype {
	case 3: // STATE_CHANGE
		as := s.u16()
		ip := s.addr4()
		old, nw := s.u16(), s.u16()
		d.linePrefix("BGP", d.timeStr(h, false), "STATE")
		l := appendIPv4(d.line, ip[:])
		l = append(l, '|')
		l = appendUint(l, uint64(as))
		l = append(l, '|')
		l = appendUint(l, uint64(old))
		l = append(l, '|')
		l = appendUint(l, uint64(nw))
		d.line = append(l, '\n')
		return
	case 1: // UPDATE
	default:
		return
	}
	srcAS := s.u16()
	src := s.addr4()
	s.u16()
	s.take(4)
	ws := s.sub(int(s.u16()))
	a := &d.attrs
	a.decode(&s, false, false)
	t := d.timeStr(h, false)
	var p rawPrefix
	head := func(typ string, addr []byte) []byte {
		d.linePrefix("BGP", t, typ)
		l := appendIPv4(d.line, src[:])
		l = append(l, '|')
		l = appendUint(l, uint64(srcAS))
		l = append(l, '|')
		l = appendIPv4(l, addr)
		l = append(l, '/')
		return appendUint(l, uint64(p.bits))
	}
	it := prefixIter{s: ws}
	for it.next(&p) {
		// bgpdump formats both addresses of this line with inet_ntoa's static buffer in one
		// printf: the prefix shows the peer's address.
		d.line = append(head("W", src[:]), '\n')
	}
	it = prefixIter{s: s}
	for it.next(&p) {
		l := head("A", p.addr[:])
		l = append(l, '|')
		l = append(l, a.pathString()...)
		l = append(l, '|')
		l = append(l, describeOrigin(a.origin)...)
		if d.mode != ModeOneLine {
			d.line = append(l, '\n')
			continue
		}
		l = append(l, '|')
		l = appendIPv4(l, a.nextHop[:])
		l = append(l, '|')
		p, m := a.prefAndMED()
		l = appendUint(l, uint64(p))
		l = append(l, '|')
		// No separator before the communities here, as in bgpdump.
		d.line = appendUint(l, uint64(m))
		d.tail(a)
	}
}
