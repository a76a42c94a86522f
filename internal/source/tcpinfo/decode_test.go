package tcpinfo

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
)

// tcpInfoLen is the struct tcp_info length of the kernel the fixture was recorded on.
const tcpInfoLen = 280

type infoFields struct {
	mss, rtt, rttvar, minRTT, retrans, segsOut, segsIn uint32
	acked, received, rate, busy, sent, bytesRetrans    uint64
}

// buildInfo lays out a struct tcp_info of length n with f's fields.
func buildInfo(n int, f infoFields) []byte {
	b := make([]byte, max(n, tcpInfoLen))
	ne := binary.NativeEndian
	ne.PutUint32(b[offSndMSS:], f.mss)
	ne.PutUint32(b[offRTT:], f.rtt)
	ne.PutUint32(b[offRTTVar:], f.rttvar)
	ne.PutUint32(b[offTotalRetrans:], f.retrans)
	ne.PutUint64(b[offBytesAcked:], f.acked)
	ne.PutUint64(b[offBytesReceived:], f.received)
	ne.PutUint32(b[offSegsOut:], f.segsOut)
	ne.PutUint32(b[offSegsIn:], f.segsIn)
	ne.PutUint32(b[offMinRTT:], f.minRTT)
	ne.PutUint64(b[offDeliveryRate:], f.rate)
	ne.PutUint64(b[offBusyTime:], f.busy)
	ne.PutUint64(b[offBytesSent:], f.sent)
	ne.PutUint64(b[offBytesRetrans:], f.bytesRetrans)
	return b[:n]
}

// buildMsg builds a SOCK_DIAG_BY_FAMILY message as the kernel's destroy notification lays it
// out: inet_diag_msg, INET_DIAG_PROTOCOL, INET_DIAG_INFO (nil info: no INFO attribute).
func buildMsg(family uint8, state uint8, local, remote netip.AddrPort, cookie uint64, info []byte) []byte {
	ne := binary.NativeEndian
	b := make([]byte, nlmsgHdrLen+inetDiagMsgLen)
	ne.PutUint16(b[4:], sockDiagByFam)
	d := b[nlmsgHdrLen:]
	d[0], d[1] = family, state
	binary.BigEndian.PutUint16(d[4:], local.Port())
	binary.BigEndian.PutUint16(d[6:], remote.Port())
	if family == afInet {
		a, r := local.Addr().As4(), remote.Addr().As4()
		copy(d[8:], a[:])
		copy(d[24:], r[:])
	} else {
		a, r := local.Addr().As16(), remote.Addr().As16()
		copy(d[8:], a[:])
		copy(d[24:], r[:])
	}
	ne.PutUint32(d[44:], uint32(cookie))
	ne.PutUint32(d[48:], uint32(cookie>>32))
	b = appendAttr(b, 10, []byte{6}) // INET_DIAG_PROTOCOL
	if info != nil {
		b = appendAttr(b, attrInfo, info)
	}
	ne.PutUint32(b[0:], uint32(len(b)))
	return b
}

func appendAttr(b []byte, typ uint16, data []byte) []byte {
	b = binary.NativeEndian.AppendUint16(b, uint16(4+len(data)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, data...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

var (
	local4  = netip.MustParseAddrPort("192.0.2.1:443")
	remote4 = netip.MustParseAddrPort("198.51.100.7:50123")
	local6  = netip.MustParseAddrPort("[2001:db8::1]:443")
	remote6 = netip.MustParseAddrPort("[2001:db8:ffff::9]:40000")
	fields  = infoFields{mss: 1448, rtt: 20500, rttvar: 800, minRTT: 20100, retrans: 3, segsOut: 90, segsIn: 40,
		acked: 100_001, received: 500, rate: 1_000_000, busy: 41_000, sent: 100_000 + 3*1448, bytesRetrans: 3 * 1448}
)

func TestDecodeSocket(t *testing.T) {
	full := Socket{Family: afInet, State: stateClose, Local: local4.Addr(), Remote: remote4.Addr(),
		LocalPort: 443, RemotePort: 50123, Cookie: 0x1122334455667788, InfoLen: tcpInfoLen,
		SndMSS: 1448, RTT: 20500, RTTVar: 800, MinRTT: 20100, TotalRetrans: 3, SegsOut: 90, SegsIn: 40,
		BytesAcked: 100_001, BytesReceived: 500, DeliveryRate: 1_000_000, BusyTime: 41_000,
		BytesSent: 100_000 + 3*1448, BytesRetrans: 3 * 1448,
		HaveBytesSent: true, HaveBusyTime: true, HaveMinRTT: true, HaveDeliveryRate: true}
	v6 := full
	v6.Family, v6.Local, v6.Remote, v6.LocalPort, v6.RemotePort = afInet6, local6.Addr(), remote6.Addr(), 443, 40000
	old := Socket{Family: afInet, State: stateClose, Local: local4.Addr(), Remote: remote4.Addr(),
		LocalPort: 443, RemotePort: 50123, Cookie: 0x1122334455667788, InfoLen: tcpInfoMinLen,
		SndMSS: 1448, RTT: 20500, RTTVar: 800, TotalRetrans: 3, SegsOut: 90, SegsIn: 40,
		BytesAcked: 100_001, BytesReceived: 500}
	v419 := full
	v419.InfoLen = offBytesRetrans + 8

	msg4 := buildMsg(afInet, stateClose, local4, remote4, 0x1122334455667788, buildInfo(tcpInfoLen, fields))
	tests := []struct {
		name string
		msg  []byte
		want Socket
		err  error
	}{
		{"ipv4 full", msg4, full, nil},
		{"ipv6 full", buildMsg(afInet6, stateClose, local6, remote6, 0x1122334455667788, buildInfo(tcpInfoLen, fields)), v6, nil},
		{"linux 4.2 length", buildMsg(afInet, stateClose, local4, remote4, 0x1122334455667788, buildInfo(tcpInfoMinLen, fields)), old, nil},
		{"linux 4.19 length", buildMsg(afInet, stateClose, local4, remote4, 0x1122334455667788, buildInfo(offBytesRetrans+8, fields)), v419, nil},
		{"longer future struct", buildMsg(afInet, stateClose, local4, remote4, 0x1122334455667788, buildInfo(tcpInfoLen+64, fields)), func() Socket { s := full; s.InfoLen += 64; return s }(), nil},
		{"tcp_info too short", buildMsg(afInet, stateClose, local4, remote4, 1, buildInfo(100, fields)), Socket{}, errOldKernel},
		{"no tcp_info", buildMsg(afInet, stateClose, local4, remote4, 1, nil), Socket{}, errNoTCPInfo},
		{"truncated header", msg4[:nlmsgHdrLen+inetDiagMsgLen-1], Socket{}, errShort},
		{"bad family", func() []byte { b := append([]byte(nil), msg4...); b[nlmsgHdrLen] = 7; return b }(), Socket{}, errFamily},
		{"attribute overruns message", func() []byte {
			b := append([]byte(nil), msg4...)
			binary.NativeEndian.PutUint16(b[nlmsgHdrLen+inetDiagMsgLen:], 0xfff0)
			return b
		}(), Socket{}, errAttr},
		{"not sock_diag", func() []byte { b := append([]byte(nil), msg4...); b[4] = nlmsgDone; return b }(), Socket{}, errNotDiag},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got Socket
			err := decodeSocket(tt.msg, &got)
			if !errors.Is(err, tt.err) {
				t.Fatalf("decodeSocket() error = %v, want %v", err, tt.err)
			}
			if err == nil && got != tt.want {
				t.Errorf("decodeSocket()\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestDataAcked(t *testing.T) {
	tests := []struct {
		name   string
		s      Socket
		closed bool
		want   uint64
	}{
		{"FIN acknowledged", Socket{BytesAcked: 1001, BytesSent: 1500, BytesRetrans: 500, HaveBytesSent: true}, true, 1000},
		{"open, all acknowledged", Socket{BytesAcked: 1000, BytesSent: 1000, HaveBytesSent: true}, false, 1000},
		{"open, in flight", Socket{BytesAcked: 400, BytesSent: 1000, HaveBytesSent: true}, false, 400},
		{"reset before FIN", Socket{BytesAcked: 700, BytesSent: 1000, HaveBytesSent: true}, true, 700},
		{"nothing sent", Socket{HaveBytesSent: true}, true, 0},
		{"old kernel, closed", Socket{BytesAcked: 1001}, true, 1000},
		{"old kernel, open", Socket{BytesAcked: 1001}, false, 1001},
		{"old kernel, closed, nothing", Socket{}, true, 0},
	}
	for _, tt := range tests {
		if got := tt.s.DataAcked(tt.closed); got != tt.want {
			t.Errorf("%s: DataAcked() = %d, want %d", tt.name, got, tt.want)
		}
	}
}

// TestDecodeFixture decodes the recorded real notifications: both families, the listener's
// destroy, and every connection's FIN counted once in bytes_acked.
func TestDecodeFixture(t *testing.T) {
	var v4, v6, conns int
	for i, dg := range readFixture(t) {
		msg, typ, _, _, rest, err := nextMessage(dg)
		if err != nil || typ != sockDiagByFam || len(rest) != 0 {
			t.Fatalf("datagram %d: type %d, %d bytes left, error %v", i, typ, len(rest), err)
		}
		var s Socket
		if err := decodeSocket(msg, &s); err != nil {
			t.Fatalf("datagram %d: %v", i, err)
		}
		if s.InfoLen != tcpInfoLen || !s.HaveBytesSent {
			t.Errorf("datagram %d: tcp_info length %d", i, s.InfoLen)
		}
		switch s.Family {
		case afInet:
			v4++
		case afInet6:
			v6++
		}
		if s.RemotePort == 0 {
			continue // the listener
		}
		conns++
		if s.Cookie == 0 || !s.Local.IsLoopback() || s.SndMSS == 0 || s.SegsOut == 0 {
			t.Errorf("datagram %d: implausible %+v", i, s)
		}
		if s.BytesSent > 0 && s.DataAcked(true) != s.BytesAcked-1 {
			t.Errorf("datagram %d: DataAcked = %d, bytes_acked %d (FIN not removed)", i, s.DataAcked(true), s.BytesAcked)
		}
	}
	if v4 == 0 || v6 == 0 || conns < 90 {
		t.Errorf("fixture: %d IPv4, %d IPv6, %d connection sockets", v4, v6, conns)
	}
}

func FuzzDecodeSocket(f *testing.F) {
	for _, dg := range readFixture(f)[:8] {
		f.Add(dg)
	}
	f.Add(buildMsg(afInet6, stateClose, local6, remote6, 9, buildInfo(tcpInfoMinLen, fields)))
	f.Add(buildMsg(afInet, stateClose, local4, remote4, 9, nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		var s Socket
		for len(b) > 0 {
			msg, _, _, _, rest, err := nextMessage(b)
			if err != nil {
				return
			}
			if len(rest) >= len(b) {
				t.Fatal("nextMessage did not advance")
			}
			b = rest
			if err := decodeSocket(msg, &s); err == nil {
				if s.InfoLen < tcpInfoMinLen || (s.Family != afInet && s.Family != afInet6) {
					t.Fatalf("decoded implausible socket %+v", s)
				}
				_ = s.DataAcked(true)
			}
		}
	})
}

// TestDecodeCgroupID reads INET_DIAG_CGROUP_ID wherever it is among the attributes, and
// without tcp_info (a listener as decoded for the cgroup filter) still reports it.
func TestDecodeCgroupID(t *testing.T) {
	info := buildInfo(tcpInfoLen, fields)
	id := binary.NativeEndian.AppendUint64(nil, 0x1234_5678_9abc)
	for _, tc := range []struct {
		name    string
		msg     []byte
		wantErr error
	}{
		{"before info", appendAttr(appendAttr(buildMsg(afInet, 1, local4, remote4, 7, nil), attrCgroupID, id), attrInfo, info), nil},
		{"after info", appendAttr(buildMsg(afInet, 1, local4, remote4, 7, info), attrCgroupID, id), nil},
		{"no info", appendAttr(buildMsg(afInet, 10, local4, remote4, 7, nil), attrCgroupID, id), errNoTCPInfo},
	} {
		binary.NativeEndian.PutUint32(tc.msg[0:], uint32(len(tc.msg)))
		var s Socket
		err := decodeSocket(tc.msg, &s)
		if err != tc.wantErr || !s.HaveCgroup || s.CgroupID != 0x1234_5678_9abc {
			t.Errorf("%s: err %v, cgroup %v %#x", tc.name, err, s.HaveCgroup, s.CgroupID)
		}
		if tc.wantErr == nil && s.SndMSS != fields.mss {
			t.Errorf("%s: tcp_info not decoded: %+v", tc.name, s)
		}
	}
	var s Socket
	if decodeSocket(buildMsg(afInet, 1, local4, remote4, 7, info), &s); s.HaveCgroup {
		t.Error("cgroup id reported without the attribute")
	}
}
