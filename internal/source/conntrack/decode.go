package conntrack

import (
	"encoding/binary"
	"errors"
	"net/netip"
)

// EventType says what happened to a flow.
type EventType uint8

// Event types. Dumped flows are EventDump.
const (
	EventNone EventType = iota
	EventNew
	EventUpdate
	EventDestroy
	EventDump
)

// TCP conntrack states (include/uapi/linux/netfilter/nf_conntrack_tcp.h).
const (
	tcpSynSent   = 1
	tcpCloseWait = 5
	tcpLastAck   = 6
	tcpTimeWait  = 7
	tcpClose     = 8
)

// Flow is one decoded ctnetlink message: the original tuple, counters, timestamps and what
// the accounting needs. It is a plain value, decoded in place into a reused struct.
type Flow struct {
	Type  EventType
	Proto uint8
	// TCPState is the TCP conntrack state when the message carried protocol info, else 0.
	TCPState uint8
	// HasCounters is set when the message carried counters (nf_conntrack_acct on):
	// DESTROY events and dumps.
	HasCounters bool
	Zone        uint16
	SrcPort     uint16
	DstPort     uint16
	ID          uint32
	Mark        uint32
	Status      uint32
	// Src and Dst are the original direction's addresses: Src opened the connection.
	Src, Dst netip.Addr
	// Orig and Reply counters: originator → responder and back.
	OrigPackets, OrigBytes, ReplyPackets, ReplyBytes uint64
	// Start and Stop are the kernel's timestamps in Unix nanoseconds
	// (nf_conntrack_timestamp), 0 when absent.
	Start, Stop int64
}

// netlink and ctnetlink constants (linux/netlink.h, linux/netfilter/nfnetlink_conntrack.h).
const (
	nlmsgHdrLen   = 16
	nfgenHdrLen   = 4
	nlmsgNoop     = 1
	nlmsgError    = 2
	nlmsgDone     = 3
	nlmsgOverrun  = 4
	nlmFCreate    = 0x400
	nlmFExcl      = 0x200
	subsysCT      = 1
	msgCTNew      = 0
	msgCTGet      = 1
	msgCTDelete   = 2
	nlaTypeMask   = 0x3fff
	ctaTupleOrig  = 1
	ctaStatus     = 3
	ctaProtoinfo  = 4
	ctaMark       = 8
	ctaCountOrig  = 9
	ctaCountReply = 10
	ctaID         = 12
	ctaZone       = 18
	ctaTimestamp  = 20

	ctaTupleIP    = 1
	ctaTupleProto = 2
	ctaTupleZone  = 3
	ctaIPv4Src    = 1
	ctaIPv4Dst    = 2
	ctaIPv6Src    = 3
	ctaIPv6Dst    = 4
	ctaProtoNum   = 1
	ctaProtoSport = 2
	ctaProtoDport = 3

	ctaCounterPackets   = 1
	ctaCounterBytes     = 2
	ctaCounter32Packets = 3
	ctaCounter32Bytes   = 4

	ctaProtoinfoTCP      = 1
	ctaProtoinfoTCPState = 1
	ctaTimestampStart    = 1
	ctaTimestampStop     = 2
)

// Decoding errors.
var (
	ErrShort     = errors.New("message truncated")
	ErrNotCT     = errors.New("not a ctnetlink conntrack message")
	ErrNoTuple   = errors.New("no original tuple")
	ErrAttribute = errors.New("malformed attribute")
)

// DecodeMessage decodes one netlink message (header included) into f, reusing f. It returns
// the message's length (to step to the next message in a datagram). It never allocates.
func DecodeMessage(b []byte, f *Flow) (int, error) {
	if len(b) < nlmsgHdrLen {
		return 0, ErrShort
	}
	l := int(binary.NativeEndian.Uint32(b))
	if l < nlmsgHdrLen || l > len(b) {
		return 0, ErrShort
	}
	typ := binary.NativeEndian.Uint16(b[4:])
	flags := binary.NativeEndian.Uint16(b[6:])
	if typ>>8 != subsysCT {
		return l, ErrNotCT
	}
	*f = Flow{}
	switch typ & 0xff {
	case msgCTNew:
		if flags&(nlmFCreate|nlmFExcl) != 0 {
			f.Type = EventNew
		} else {
			f.Type = EventUpdate
		}
	case msgCTDelete:
		f.Type = EventDestroy
	default:
		return l, ErrNotCT
	}
	if l < nlmsgHdrLen+nfgenHdrLen {
		return l, ErrShort
	}
	if err := decodeAttrs(b[nlmsgHdrLen+nfgenHdrLen:l], f); err != nil {
		return l, err
	}
	return l, nil
}

// next returns the next attribute of b: its type, payload and the rest of b.
func next(b []byte) (typ uint16, payload, rest []byte, err error) {
	if len(b) < 4 {
		return 0, nil, nil, ErrAttribute
	}
	l := int(binary.NativeEndian.Uint16(b))
	if l < 4 || l > len(b) {
		return 0, nil, nil, ErrAttribute
	}
	typ = binary.NativeEndian.Uint16(b[2:]) & nlaTypeMask
	payload = b[4:l]
	al := (l + 3) &^ 3
	if al > len(b) {
		al = len(b)
	}
	return typ, payload, b[al:], nil
}

func decodeAttrs(b []byte, f *Flow) error {
	gotTuple := false
	for len(b) > 0 {
		typ, p, rest, err := next(b)
		if err != nil {
			return err
		}
		b = rest
		switch typ {
		case ctaTupleOrig:
			if err := decodeTuple(p, f); err != nil {
				return err
			}
			gotTuple = true
		case ctaStatus:
			if len(p) >= 4 {
				f.Status = binary.BigEndian.Uint32(p)
			}
		case ctaMark:
			if len(p) >= 4 {
				f.Mark = binary.BigEndian.Uint32(p)
			}
		case ctaID:
			if len(p) >= 4 {
				f.ID = binary.BigEndian.Uint32(p)
			}
		case ctaZone:
			if len(p) >= 2 {
				f.Zone = binary.BigEndian.Uint16(p)
			}
		case ctaCountOrig, ctaCountReply:
			pk, by, err := decodeCounters(p)
			if err != nil {
				return err
			}
			if typ == ctaCountOrig {
				f.OrigPackets, f.OrigBytes = pk, by
			} else {
				f.ReplyPackets, f.ReplyBytes = pk, by
			}
			f.HasCounters = true
		case ctaProtoinfo:
			for len(p) > 0 {
				t, q, r, err := next(p)
				if err != nil {
					return err
				}
				p = r
				if t != ctaProtoinfoTCP {
					continue
				}
				for len(q) > 0 {
					t2, s, r2, err := next(q)
					if err != nil {
						return err
					}
					q = r2
					if t2 == ctaProtoinfoTCPState && len(s) >= 1 {
						f.TCPState = s[0]
					}
				}
			}
		case ctaTimestamp:
			for len(p) > 0 {
				t, q, r, err := next(p)
				if err != nil {
					return err
				}
				p = r
				if len(q) < 8 {
					continue
				}
				v := int64(binary.BigEndian.Uint64(q))
				switch t {
				case ctaTimestampStart:
					f.Start = v
				case ctaTimestampStop:
					f.Stop = v
				}
			}
		}
	}
	if !gotTuple {
		return ErrNoTuple
	}
	return nil
}

func decodeCounters(p []byte) (packets, bytes uint64, err error) {
	for len(p) > 0 {
		t, q, r, err := next(p)
		if err != nil {
			return 0, 0, err
		}
		p = r
		var v uint64
		switch len(q) {
		case 8:
			v = binary.BigEndian.Uint64(q)
		case 4:
			v = uint64(binary.BigEndian.Uint32(q))
		default:
			continue
		}
		switch t {
		case ctaCounterPackets, ctaCounter32Packets:
			packets = v
		case ctaCounterBytes, ctaCounter32Bytes:
			bytes = v
		}
	}
	return packets, bytes, nil
}

func decodeTuple(b []byte, f *Flow) error {
	for len(b) > 0 {
		typ, p, rest, err := next(b)
		if err != nil {
			return err
		}
		b = rest
		switch typ {
		case ctaTupleIP:
			for len(p) > 0 {
				t, q, r, err := next(p)
				if err != nil {
					return err
				}
				p = r
				switch {
				case (t == ctaIPv4Src || t == ctaIPv4Dst) && len(q) == 4:
					a := netip.AddrFrom4([4]byte(q))
					if t == ctaIPv4Src {
						f.Src = a
					} else {
						f.Dst = a
					}
				case (t == ctaIPv6Src || t == ctaIPv6Dst) && len(q) == 16:
					a := netip.AddrFrom16([16]byte(q)).Unmap()
					if t == ctaIPv6Src {
						f.Src = a
					} else {
						f.Dst = a
					}
				default:
					return ErrAttribute
				}
			}
		case ctaTupleProto:
			for len(p) > 0 {
				t, q, r, err := next(p)
				if err != nil {
					return err
				}
				p = r
				switch t {
				case ctaProtoNum:
					if len(q) >= 1 {
						f.Proto = q[0]
					}
				case ctaProtoSport:
					if len(q) >= 2 {
						f.SrcPort = binary.BigEndian.Uint16(q)
					}
				case ctaProtoDport:
					if len(q) >= 2 {
						f.DstPort = binary.BigEndian.Uint16(q)
					}
				}
			}
		case ctaTupleZone:
			if len(p) >= 2 && f.Zone == 0 {
				f.Zone = binary.BigEndian.Uint16(p)
			}
		}
	}
	if !f.Src.IsValid() || !f.Dst.IsValid() {
		return ErrNoTuple
	}
	return nil
}
