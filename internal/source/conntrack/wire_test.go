package conntrack

import (
	"encoding/binary"
)

// Test helpers that build ctnetlink messages as the kernel sends them.

func attr(typ uint16, payload []byte) []byte {
	b := make([]byte, 4, 4+len(payload)+3)
	binary.NativeEndian.PutUint16(b, uint16(4+len(payload)))
	binary.NativeEndian.PutUint16(b[2:], typ)
	b = append(b, payload...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func nested(typ uint16, attrs ...[]byte) []byte {
	var p []byte
	for _, a := range attrs {
		p = append(p, a...)
	}
	return attr(typ|0x8000, p)
}

func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }
func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
func be64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// encode builds the netlink message the kernel sends for f (f.Type says which).
func encode(f Flow) []byte {
	var ip []byte
	if f.Src.Is4() {
		s, d := f.Src.As4(), f.Dst.As4()
		ip = nested(ctaTupleIP, attr(ctaIPv4Src, s[:]), attr(ctaIPv4Dst, d[:]))
	} else {
		s, d := f.Src.As16(), f.Dst.As16()
		ip = nested(ctaTupleIP, attr(ctaIPv6Src, s[:]), attr(ctaIPv6Dst, d[:]))
	}
	proto := nested(ctaTupleProto, attr(ctaProtoNum, []byte{f.Proto}), attr(ctaProtoSport, be16(f.SrcPort)), attr(ctaProtoDport, be16(f.DstPort)))
	rip := ip // reply tuple: swapped in reality; the decoder ignores it
	body := []byte{2, 0, 0, 0}
	if f.Src.Is6() {
		body[0] = 10
	}
	body = append(body, nested(ctaTupleOrig, ip, proto)...)
	body = append(body, nested(2, rip, nested(ctaTupleProto, attr(ctaProtoNum, []byte{f.Proto}), attr(ctaProtoSport, be16(f.DstPort)), attr(ctaProtoDport, be16(f.SrcPort))))...)
	body = append(body, attr(ctaStatus, be32(f.Status))...)
	if f.TCPState != 0 {
		body = append(body, nested(ctaProtoinfo, nested(ctaProtoinfoTCP, attr(ctaProtoinfoTCPState, []byte{f.TCPState})))...)
	}
	body = append(body, attr(ctaMark, be32(f.Mark))...)
	if f.HasCounters {
		body = append(body, nested(ctaCountOrig, attr(ctaCounterPackets, be64(f.OrigPackets)), attr(ctaCounterBytes, be64(f.OrigBytes)))...)
		body = append(body, nested(ctaCountReply, attr(ctaCounterPackets, be64(f.ReplyPackets)), attr(ctaCounterBytes, be64(f.ReplyBytes)))...)
	}
	if f.Zone != 0 {
		body = append(body, attr(ctaZone, be16(f.Zone))...)
	}
	if f.Start != 0 {
		ts := []byte{}
		ts = append(ts, attr(ctaTimestampStart, be64(uint64(f.Start)))...)
		if f.Stop != 0 {
			ts = append(ts, attr(ctaTimestampStop, be64(uint64(f.Stop)))...)
		}
		body = append(body, attr(ctaTimestamp|0x8000, ts)...)
	}
	body = append(body, attr(ctaID, be32(f.ID))...)
	typ, flags := uint16(subsysCT<<8|msgCTNew), uint16(0)
	switch f.Type {
	case EventNew:
		flags = nlmFCreate | nlmFExcl
	case EventDestroy:
		typ = subsysCT<<8 | msgCTDelete
	case EventDump:
		flags = 2 // NLM_F_MULTI
	}
	h := make([]byte, nlmsgHdrLen)
	binary.NativeEndian.PutUint32(h, uint32(nlmsgHdrLen+len(body)))
	binary.NativeEndian.PutUint16(h[4:], typ)
	binary.NativeEndian.PutUint16(h[6:], flags)
	return append(h, body...)
}
