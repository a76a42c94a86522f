package tcpinfo

import (
	"encoding/binary"
	"errors"
	"net/netip"
)

// Netlink and sock_diag constants (include/uapi/linux/netlink.h, sock_diag.h, inet_diag.h).
const (
	nlmsgHdrLen          = 16
	nlmsgError           = 2
	nlmsgDone            = 3
	nlmFDumpIntr         = 0x10
	sockDiagByFam        = 20 // SOCK_DIAG_BY_FAMILY
	tcpDiagGetSock       = 18 // TCPDIAG_GETSOCK: the older request, and its replies (afUnspec dumps)
	inetDiagMsgLen       = 72 // struct inet_diag_msg
	inetDiagReqLen       = 56 // struct inet_diag_req_v2
	inetDiagReqCompatLen = 60 // struct inet_diag_req (TCPDIAG_GETSOCK)

	// Multicast groups of NETLINK_SOCK_DIAG (enum sknetlink_groups in
	// include/uapi/linux/sock_diag.h: SKNLGRP_NONE = 0, then INET_TCP_DESTROY,
	// INET_UDP_DESTROY, INET6_TCP_DESTROY, INET6_UDP_DESTROY).
	groupInetTCPDestroy  = 1
	groupInet6TCPDestroy = 3

	attrInfo     = 2  // INET_DIAG_INFO: struct tcp_info
	attrCgroupID = 21 // INET_DIAG_CGROUP_ID: u64, the cgroup v2 id of the socket's creator

	afInet  = 2
	afInet6 = 10

	// TCP states (include/net/tcp_states.h).
	stateEstablished = 1
	stateTimeWait    = 6
	stateClose       = 7
	stateListen      = 10
	stateNewSynRecv  = 12
)

// tcp_info field offsets (include/uapi/linux/tcp.h). The kernel gives the length of the
// struct it filled: a field beyond that length is unknown and left zero.
const (
	offState         = 0
	offSndMSS        = 16
	offRTT           = 68
	offRTTVar        = 72
	offTotalRetrans  = 100
	offBytesAcked    = 120
	offBytesReceived = 128
	offSegsOut       = 136
	offSegsIn        = 140
	offMinRTT        = 148
	offDeliveryRate  = 160
	offBusyTime      = 168
	offBytesSent     = 200
	offBytesRetrans  = 208
	tcpInfoMinLen    = offSegsIn + 4 // Linux 4.2: bytes_acked … segs_in
)

// Errors returned by the decoder. They are values, so decoding bad input does not allocate.
var (
	errShort     = errors.New("netlink message truncated")
	errNotDiag   = errors.New("not a sock_diag message")
	errFamily    = errors.New("unknown address family")
	errAttr      = errors.New("malformed netlink attribute")
	errNoTCPInfo = errors.New("no tcp_info attribute")
	errOldKernel = errors.New("tcp_info too short (kernel older than 4.2)")
)

// Socket is one decoded sock_diag message: a TCP socket's identity and its tcp_info counters.
// Decoding fills a Socket in place and allocates nothing.
type Socket struct {
	// Family is AF_INET or AF_INET6; State the TCP state from inet_diag_msg.
	Family, State uint8
	// Local and Remote are the socket's addresses (IPv4-mapped addresses not yet unmapped).
	Local, Remote         netip.Addr
	LocalPort, RemotePort uint16
	// Cookie is the kernel's socket cookie, unique per socket for the kernel's uptime.
	Cookie uint64
	// InfoLen is the length of the tcp_info the kernel sent.
	InfoLen int
	// CgroupID is the cgroup v2 id (the directory's inode number) of the process that created
	// the socket, or of the listener's creator for an accepted one (Linux 5.9+).
	CgroupID   uint64
	HaveCgroup bool

	SndMSS, RTT, RTTVar, MinRTT  uint32
	TotalRetrans, SegsOut        uint32
	SegsIn                       uint32
	BytesAcked, BytesReceived    uint64
	DeliveryRate, BusyTime       uint64
	BytesSent, BytesRetrans      uint64
	HaveBytesSent, HaveBusyTime  bool
	HaveMinRTT, HaveDeliveryRate bool
}

// DataAcked returns the payload bytes the peer acknowledged. tcpi_bytes_acked counts
// acknowledged sequence space, which includes the FIN's sequence number once the peer has
// acknowledged it (the SYN is not counted: the kernel starts counting at ISN+1). Where the
// kernel gives bytes_sent and bytes_retrans (Linux 4.19+), the payload ever sent once is
// bytes_sent − bytes_retrans, and the acknowledged payload is the smaller of the two: this
// removes the FIN's 1 exactly when it was acknowledged, and never subtracts from a connection
// that was reset or is still open. On older kernels, 1 is subtracted from a closed
// (destroyed) socket whose bytes_acked is positive, which assumes a graceful close.
func (s *Socket) DataAcked(closed bool) uint64 {
	if s.HaveBytesSent {
		if s.BytesSent >= s.BytesRetrans {
			return min(s.BytesAcked, s.BytesSent-s.BytesRetrans)
		}
		return s.BytesAcked
	}
	if closed && s.BytesAcked > 0 {
		return s.BytesAcked - 1
	}
	return s.BytesAcked
}

// nextMessage splits the first netlink message off b. It returns the message (header
// included), its type and flags, and the rest of b.
func nextMessage(b []byte) (msg []byte, typ, flags uint16, seq uint32, rest []byte, err error) {
	if len(b) < nlmsgHdrLen {
		return nil, 0, 0, 0, nil, errShort
	}
	l := int(binary.NativeEndian.Uint32(b[0:4]))
	if l < nlmsgHdrLen || l > len(b) {
		return nil, 0, 0, 0, nil, errShort
	}
	typ = binary.NativeEndian.Uint16(b[4:6])
	flags = binary.NativeEndian.Uint16(b[6:8])
	seq = binary.NativeEndian.Uint32(b[8:12])
	next := (l + 3) &^ 3
	if next > len(b) {
		next = len(b)
	}
	return b[:l], typ, flags, seq, b[next:], nil
}

// decodeSocket decodes one SOCK_DIAG_BY_FAMILY (or TCPDIAG_GETSOCK) message (header included)
// into s: an inet_diag_msg followed by attributes, of which INET_DIAG_INFO (struct tcp_info) is
// required. It reads only what the kernel sent and allocates nothing.
func decodeSocket(msg []byte, s *Socket) error {
	if len(msg) < nlmsgHdrLen+inetDiagMsgLen {
		return errShort
	}
	if t := binary.NativeEndian.Uint16(msg[4:6]); t != sockDiagByFam && t != tcpDiagGetSock {
		return errNotDiag
	}
	d := msg[nlmsgHdrLen:]
	*s = Socket{Family: d[0], State: d[1]}
	s.LocalPort = binary.BigEndian.Uint16(d[4:6])
	s.RemotePort = binary.BigEndian.Uint16(d[6:8])
	switch s.Family {
	case afInet:
		s.Local = netip.AddrFrom4([4]byte(d[8:12]))
		s.Remote = netip.AddrFrom4([4]byte(d[24:28]))
	case afInet6:
		s.Local = netip.AddrFrom16([16]byte(d[8:24]))
		s.Remote = netip.AddrFrom16([16]byte(d[24:40]))
	default:
		return errFamily
	}
	s.Cookie = uint64(binary.NativeEndian.Uint32(d[44:48])) | uint64(binary.NativeEndian.Uint32(d[48:52]))<<32
	attrs := d[inetDiagMsgLen:]
	info := errNoTCPInfo
	for len(attrs) >= 4 {
		al := int(binary.NativeEndian.Uint16(attrs[0:2]))
		at := binary.NativeEndian.Uint16(attrs[2:4]) & 0x3fff // strip NLA_F_NESTED, NLA_F_NET_BYTEORDER
		if al < 4 || al > len(attrs) {
			return errAttr
		}
		switch {
		case at == attrInfo:
			info = decodeTCPInfo(attrs[4:al], s)
		case at == attrCgroupID && al >= 12:
			s.CgroupID, s.HaveCgroup = binary.NativeEndian.Uint64(attrs[4:12]), true
		}
		next := (al + 3) &^ 3
		if next >= len(attrs) {
			break
		}
		attrs = attrs[next:]
	}
	return info
}

func decodeTCPInfo(b []byte, s *Socket) error {
	if len(b) < tcpInfoMinLen {
		return errOldKernel
	}
	s.InfoLen = len(b)
	u32 := func(off int) uint32 { return binary.NativeEndian.Uint32(b[off:]) }
	u64 := func(off int) uint64 { return binary.NativeEndian.Uint64(b[off:]) }
	s.SndMSS = u32(offSndMSS)
	s.RTT = u32(offRTT)
	s.RTTVar = u32(offRTTVar)
	s.TotalRetrans = u32(offTotalRetrans)
	s.BytesAcked = u64(offBytesAcked)
	s.BytesReceived = u64(offBytesReceived)
	s.SegsOut = u32(offSegsOut)
	s.SegsIn = u32(offSegsIn)
	if len(b) >= offMinRTT+4 {
		s.MinRTT, s.HaveMinRTT = u32(offMinRTT), true
	}
	if len(b) >= offDeliveryRate+8 {
		s.DeliveryRate, s.HaveDeliveryRate = u64(offDeliveryRate), true
	}
	if len(b) >= offBusyTime+8 {
		s.BusyTime, s.HaveBusyTime = u64(offBusyTime), true
	}
	if len(b) >= offBytesRetrans+8 {
		s.BytesSent, s.BytesRetrans, s.HaveBytesSent = u64(offBytesSent), u64(offBytesRetrans), true
	}
	return nil
}
