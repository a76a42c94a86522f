package bgp

import (
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/netledger/netledger/internal/routing"
)

func neighbor(rib *mapRIB) Neighbor {
	return Neighbor{Name: "r1", Address: netip.MustParseAddr("127.0.0.1"), PeerASN: 65000, Passive: true, RIB: rib}
}

func TestOpenNegotiation(t *testing.T) {
	good := openSpec{as: 65000, hold: 30, id: "10.0.0.2"}
	cases := []struct {
		name     string
		open     openSpec
		wantCode uint8 // 0: established
		wantSub  uint8
		wantHold uint16
	}{
		{name: "established", open: good},
		{name: "2-byte peer", open: openSpec{as: 65000, hold: 30, id: "10.0.0.2", no4byte: true}},
		{name: "no mp capabilities", open: openSpec{as: 65000, hold: 30, id: "10.0.0.2", noMPCaps: true}},
		{name: "hold 0", open: openSpec{as: 65000, hold: 0, id: "10.0.0.2"}},
		{name: "bad peer as", open: openSpec{as: 65099, hold: 30, id: "10.0.0.2"},
			wantCode: bgp.BGP_ERROR_OPEN_MESSAGE_ERROR, wantSub: bgp.BGP_ERROR_SUB_BAD_PEER_AS},
		{name: "4-byte AS mismatch behind AS_TRANS", open: openSpec{as: 4200000000, hold: 30, id: "10.0.0.2"},
			wantCode: bgp.BGP_ERROR_OPEN_MESSAGE_ERROR, wantSub: bgp.BGP_ERROR_SUB_BAD_PEER_AS},
		{name: "hold time 2", open: openSpec{as: 65000, hold: 2, id: "10.0.0.2"},
			wantCode: bgp.BGP_ERROR_OPEN_MESSAGE_ERROR, wantSub: bgp.BGP_ERROR_SUB_UNACCEPTABLE_HOLD_TIME},
		{name: "version 3", open: openSpec{as: 65000, hold: 30, id: "10.0.0.2", version: 3},
			wantCode: bgp.BGP_ERROR_OPEN_MESSAGE_ERROR, wantSub: bgp.BGP_ERROR_SUB_UNSUPPORTED_VERSION_NUMBER},
		{name: "zero identifier", open: openSpec{as: 65000, hold: 30, id: "0.0.0.0"},
			wantCode: bgp.BGP_ERROR_OPEN_MESSAGE_ERROR, wantSub: bgp.BGP_ERROR_SUB_BAD_BGP_IDENTIFIER},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rib := newMapRIB()
			c, addr, reg := startSpeaker(t, testConfig(), neighbor(rib))
			p := dialScripted(t, addr)
			open := p.expect(bgp.BGP_MSG_OPEN).Body.(*bgp.BGPOpen)
			if open.MyAS != 65001 || open.HoldTime != 90 || open.ID != netip.MustParseAddr("10.0.0.1") {
				t.Fatalf("our OPEN: as %d hold %d id %v", open.MyAS, open.HoldTime, open.ID)
			}
			caps := map[bgp.BGPCapabilityCode]int{}
			for _, op := range open.OptParams {
				for _, c := range op.(*bgp.OptionParameterCapability).Capability {
					caps[c.Code()]++
				}
			}
			for code, n := range map[bgp.BGPCapabilityCode]int{bgp.BGP_CAP_MULTIPROTOCOL: 2, bgp.BGP_CAP_FOUR_OCTET_AS_NUMBER: 1,
				bgp.BGP_CAP_ADD_PATH: 1, bgp.BGP_CAP_ROUTE_REFRESH: 1, bgp.BGP_CAP_GRACEFUL_RESTART: 1} {
				if caps[code] != n {
					t.Errorf("capability %v advertised %d times, want %d", code, caps[code], n)
				}
			}
			p.send(tc.open.msg())
			if tc.wantCode != 0 {
				p.expectNotification(tc.wantCode, tc.wantSub)
				if _, err := p.recv(2 * time.Second); err == nil {
					t.Fatal("connection still open after the notification")
				}
				if got := total(c.metrics.notifSent); got != 1 {
					t.Errorf("notifications sent %v, want 1", got)
				}
				return
			}
			p.expect(bgp.BGP_MSG_KEEPALIVE)
			p.send(bgp.NewBGPKeepAliveMessage())
			eventually(t, wait, "established", func() bool { return c.Status()[0].State == StateEstablished })
			if v := testutil.ToFloat64(c.metrics.state.WithLabelValues("r1", "127.0.0.1")); v != float64(StateEstablished) {
				t.Errorf("session_state %v", v)
			}
			if n, err := testutil.GatherAndCount(reg, "netledger_bgp_session_state"); err != nil || n != 1 {
				t.Errorf("gathered %d session_state series: %v", n, err)
			}
		})
	}
}

func TestUpdatesReachRIB(t *testing.T) {
	rib := newMapRIB()
	c, addr, reg := startSpeaker(t, testConfig(), neighbor(rib))
	p := dialScripted(t, addr)
	p.establish(openSpec{as: 65000, hold: 30, id: "10.0.0.2"})

	comms := bgp.NewPathAttributeCommunities([]uint32{65000<<16 | 1, 65000<<16 | 2})
	large := bgp.NewPathAttributeLargeCommunities([]*bgp.LargeCommunity{{ASN: 65000, LocalData1: 1, LocalData2: 2}})
	p.send(updateMsg([]uint32{65000, 64496, 4200000000}, "192.0.2.1", []string{"198.51.100.0/24", "203.0.113.0/25"},
		"2001:db8::1", []string{"2001:db8:100::/48"}, comms, large, bgp.NewPathAttributeMultiExitDisc(7)))
	p.send(updateMsg([]uint32{65000}, "192.0.2.1", []string{"192.0.2.0/24"}, "", nil))
	p.send(withdrawMsg([]string{"203.0.113.0/25"}, nil))
	p.send(bgp.NewEndOfRib(bgp.RF_IPv4_UC))
	p.send(bgp.NewEndOfRib(bgp.RF_IPv6_UC))
	want := strings.Join([]string{
		"192.0.2.0/24 0 65000 192.0.2.1",
		"198.51.100.0/24 0 65000 64496 4200000000 192.0.2.1",
		"2001:db8:100::/48 0 65000 64496 4200000000 2001:db8::1",
	}, "\n")
	eventually(t, wait, "routes", func() bool { return rib.dump() == want })
	a, _ := rib.get("2001:db8:100::/48", 0)
	if len(a.Communities) != 2 || a.Communities[1] != 65000<<16|2 || len(a.LargeCommunities) != 1 ||
		a.LargeCommunities[0].Local2 != 2 || !a.HasMED || a.MED != 7 {
		t.Errorf("attributes %+v", a)
	}
	eventually(t, wait, "end-of-rib counted", func() bool { return total(c.metrics.endOfRIB) == 2 })
	if got := total(c.metrics.updates); got != 5 {
		t.Errorf("updates received %v, want 5", got)
	}
	if n, _ := testutil.GatherAndCount(reg, "netledger_bgp_prefixes"); n != 2 {
		t.Errorf("prefixes series %d, want 2", n)
	}
	p.send(withdrawMsg(nil, []string{"2001:db8:100::/48"}))
	eventually(t, wait, "v6 withdrawn", func() bool { return rib.size() == 2 })
}

func TestAddPath(t *testing.T) {
	rib := newMapRIB()
	_, addr, _ := startSpeaker(t, testConfig(), neighbor(rib))
	p := dialScripted(t, addr)
	p.establish(openSpec{as: 65000, hold: 30, id: "10.0.0.2", addPath: true})
	opt := &bgp.MarshallingOption{AddPath: map[bgp.Family]bgp.BGPAddPathMode{bgp.RF_IPv4_UC: bgp.BGP_ADD_PATH_SEND, bgp.RF_IPv6_UC: bgp.BGP_ADD_PATH_SEND}}
	for id := uint32(1); id <= 2; id++ {
		m := updateMsg([]uint32{65000, 64500 + id}, "192.0.2.1", []string{"198.51.100.0/24"}, "2001:db8::1", []string{"2001:db8::/32"})
		u := m.Body.(*bgp.BGPUpdate)
		u.NLRI[0].ID = id
		for _, a := range u.PathAttributes {
			if r, ok := a.(*bgp.PathAttributeMpReachNLRI); ok {
				r.Value[0].ID = id
			}
		}
		p.send(m, opt)
	}
	want := strings.Join([]string{
		"198.51.100.0/24 1 65000 64501 192.0.2.1",
		"198.51.100.0/24 2 65000 64502 192.0.2.1",
		"2001:db8::/32 1 65000 64501 2001:db8::1",
		"2001:db8::/32 2 65000 64502 2001:db8::1",
	}, "\n")
	eventually(t, wait, "add-path routes", func() bool { return rib.dump() == want })
}

func TestHoldTimerExpiry(t *testing.T) {
	rib := newMapRIB()
	c, addr, _ := startSpeaker(t, testConfig(), neighbor(rib))
	p := dialScripted(t, addr)
	p.establish(openSpec{as: 65000, hold: 3, id: "10.0.0.2"})
	start := time.Now()
	keepalives := 0
	for {
		m, err := p.recv(5 * time.Second)
		if err != nil {
			t.Fatalf("no hold timer notification: %v", err)
		}
		if m.Header.Type == bgp.BGP_MSG_KEEPALIVE {
			keepalives++
			continue
		}
		n := m.Body.(*bgp.BGPNotification)
		if n.ErrorCode != bgp.BGP_ERROR_HOLD_TIMER_EXPIRED {
			t.Fatalf("notification %d/%d", n.ErrorCode, n.ErrorSubcode)
		}
		break
	}
	if d := time.Since(start); d < 2500*time.Millisecond || d > 4500*time.Millisecond {
		t.Errorf("hold timer expired after %v, want about 3s", d)
	}
	if keepalives < 2 {
		t.Errorf("%d keepalives within the hold time, want ≥ 2 (every hold/3)", keepalives)
	}
	eventually(t, wait, "session down", func() bool { return c.Status()[0].State != StateEstablished })
}

func TestBadMessages(t *testing.T) {
	header := func(length uint16, typ byte) []byte {
		b := make([]byte, 19)
		for i := range 16 {
			b[i] = 0xff
		}
		b[16], b[17], b[18] = byte(length>>8), byte(length), typ
		return b
	}
	badMarker := header(19, bgp.BGP_MSG_KEEPALIVE)
	badMarker[3] = 0
	cases := []struct {
		name      string
		msg       []byte
		code, sub uint8
	}{
		{"bad marker", badMarker, bgp.BGP_ERROR_MESSAGE_HEADER_ERROR, bgp.BGP_ERROR_SUB_CONNECTION_NOT_SYNCHRONIZED},
		{"short length", header(18, bgp.BGP_MSG_KEEPALIVE), bgp.BGP_ERROR_MESSAGE_HEADER_ERROR, bgp.BGP_ERROR_SUB_BAD_MESSAGE_LENGTH},
		{"too long", header(5000, bgp.BGP_MSG_UPDATE), bgp.BGP_ERROR_MESSAGE_HEADER_ERROR, bgp.BGP_ERROR_SUB_BAD_MESSAGE_LENGTH},
		{"bad type", header(19, 9), bgp.BGP_ERROR_MESSAGE_HEADER_ERROR, bgp.BGP_ERROR_SUB_BAD_MESSAGE_TYPE},
		{"truncated update", append(header(21, bgp.BGP_MSG_UPDATE), 0, 9), bgp.BGP_ERROR_UPDATE_MESSAGE_ERROR, bgp.BGP_ERROR_SUB_MALFORMED_ATTRIBUTE_LIST},
		{"open when established", func() []byte {
			b, _ := openSpec{as: 65000, hold: 30, id: "10.0.0.2"}.msg().Serialize()
			return b
		}(), bgp.BGP_ERROR_FSM_ERROR, bgp.BGP_ERROR_SUB_RECEIVE_UNEXPECTED_MESSAGE_IN_ESTABLISHED_STATE},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rib := newMapRIB()
			c, addr, _ := startSpeaker(t, testConfig(), neighbor(rib))
			p := dialScripted(t, addr)
			p.establish(openSpec{as: 65000, hold: 30, id: "10.0.0.2"})
			p.send(updateMsg([]uint32{65000}, "192.0.2.1", []string{"192.0.2.0/24"}, "", nil))
			p.sendRaw(tc.msg)
			p.expectNotification(tc.code, tc.sub)
			if got := total(c.metrics.notifSent); got != 1 {
				t.Errorf("notifications sent %v", got)
			}
			// The valid route next to the bad message stays (for the grace time).
			if rib.size() != 1 {
				t.Errorf("rib has %d routes, want 1", rib.size())
			}
		})
	}
	t.Run("update before established", func(t *testing.T) {
		rib := newMapRIB()
		_, addr, _ := startSpeaker(t, testConfig(), neighbor(rib))
		p := dialScripted(t, addr)
		p.expect(bgp.BGP_MSG_OPEN)
		p.send(openSpec{as: 65000, hold: 30, id: "10.0.0.2"}.msg())
		p.send(updateMsg([]uint32{65000}, "192.0.2.1", []string{"192.0.2.0/24"}, "", nil))
		p.expectNotification(bgp.BGP_ERROR_FSM_ERROR, bgp.BGP_ERROR_SUB_RECEIVE_UNEXPECTED_MESSAGE_IN_OPENCONFIRM_STATE)
		if rib.size() != 0 {
			t.Errorf("update before established reached the RIB")
		}
	})
	t.Run("treat as withdraw", func(t *testing.T) {
		rib := newMapRIB()
		c, addr, _ := startSpeaker(t, testConfig(), neighbor(rib))
		p := dialScripted(t, addr)
		p.establish(openSpec{as: 65000, hold: 30, id: "10.0.0.2"})
		p.send(updateMsg([]uint32{65000}, "192.0.2.1", []string{"192.0.2.0/24", "198.51.100.0/24"}, "", nil))
		// The same prefix again without ORIGIN: withdrawn, session kept (RFC 7606).
		m := updateMsg([]uint32{65000}, "192.0.2.1", []string{"192.0.2.0/24"}, "", nil)
		u := m.Body.(*bgp.BGPUpdate)
		u.PathAttributes = u.PathAttributes[1:]
		p.send(m)
		eventually(t, wait, "withdrawn", func() bool { return rib.size() == 1 })
		if _, ok := rib.get("198.51.100.0/24", 0); !ok {
			t.Error("unrelated route lost")
		}
		if got := testutil.ToFloat64(c.metrics.errors.WithLabelValues("r1", "missing_attribute")); got != 1 {
			t.Errorf("missing_attribute errors %v", got)
		}
		if c.Status()[0].State != StateEstablished {
			t.Error("session dropped")
		}
	})
}

func TestUnknownNeighborRefused(t *testing.T) {
	rib := newMapRIB()
	n := neighbor(rib)
	n.Address = netip.MustParseAddr("127.0.0.9")
	c, addr, _ := startSpeaker(t, testConfig(), n)
	p := dialScripted(t, addr)
	if _, err := p.recv(2 * time.Second); err == nil {
		t.Fatal("an unconfigured address got a message")
	}
	if got := testutil.ToFloat64(c.metrics.errors.WithLabelValues("", "unknown_neighbor")); got != 1 {
		t.Errorf("unknown_neighbor %v", got)
	}
}

func TestGraceTime(t *testing.T) {
	t.Run("cleared after grace", func(t *testing.T) {
		// Times are taken before the Close: the grace timer starts after it, so the checks
		// hold however late this goroutine sees the session down (they were measured from
		// that sight, with 50 ms of slack, against a 300 ms grace time).
		rib := newMapRIB()
		cfg := testConfig()
		cfg.GraceTime = time.Second
		c, addr, _ := startSpeaker(t, cfg, neighbor(rib))
		p := dialScripted(t, addr)
		p.establish(openSpec{as: 65000, hold: 30, id: "10.0.0.2"})
		p.send(updateMsg([]uint32{65000}, "192.0.2.1", []string{"192.0.2.0/24"}, "", nil))
		eventually(t, wait, "route", func() bool { return rib.size() == 1 })
		closed := time.Now()
		p.nc.Close()
		eventually(t, wait, "down", func() bool { return c.Status()[0].State != StateEstablished })
		time.Sleep(150 * time.Millisecond)
		if rib.size() != 1 && time.Since(closed) < cfg.GraceTime {
			t.Fatal("table not kept during the grace time")
		}
		eventually(t, wait, "cleared", func() bool { return rib.size() == 0 })
		if d := time.Since(closed); d < cfg.GraceTime {
			t.Errorf("cleared %v after the session closed, grace is %v", d, cfg.GraceTime)
		}
		if total(c.metrics.cleared) != 1 {
			t.Error("tables_cleared_total not counted")
		}
	})
	t.Run("re-established within grace sweeps at end-of-rib", func(t *testing.T) {
		rib := newMapRIB()
		cfg := testConfig()
		// The new session must reach its End-of-RIBs within the grace time: 3 s, not 1 s,
		// leaves room for a loaded machine.
		cfg.GraceTime = 3 * time.Second
		c, addr, _ := startSpeaker(t, cfg, neighbor(rib))
		p := dialScripted(t, addr)
		p.establish(openSpec{as: 65000, hold: 30, id: "10.0.0.2"})
		p.send(updateMsg([]uint32{65000}, "192.0.2.1", []string{"192.0.2.0/24", "198.51.100.0/24"}, "2001:db8::1", []string{"2001:db8::/32"}))
		eventually(t, wait, "routes", func() bool { return rib.size() == 3 })
		down := time.Now()
		p.nc.Close()
		eventually(t, wait, "down", func() bool { return c.Status()[0].State != StateEstablished })

		p = dialScripted(t, addr)
		p.establish(openSpec{as: 65000, hold: 30, id: "10.0.0.2"})
		p.send(updateMsg([]uint32{65000, 64496}, "192.0.2.1", []string{"192.0.2.0/24"}, "", nil))
		p.send(bgp.NewEndOfRib(bgp.RF_IPv4_UC))
		want := "192.0.2.0/24 0 65000 64496 192.0.2.1\n2001:db8::/32 0 65000 2001:db8::1"
		eventually(t, wait, "ipv4 swept, ipv6 kept until its end-of-rib", func() bool { return rib.dump() == want })
		p.send(bgp.NewEndOfRib(bgp.RF_IPv6_UC))
		eventually(t, wait, "ipv6 swept", func() bool { return rib.dump() == "192.0.2.0/24 0 65000 64496 192.0.2.1" })
		if rib.clears != 0 {
			t.Errorf("table cleared %d times", rib.clears)
		}
		if got := total(c.metrics.swept); got != 2 {
			t.Errorf("swept %v, want 2", got)
		}
		time.Sleep(time.Until(down.Add(cfg.GraceTime + 200*time.Millisecond))) // past the old grace timer
		if rib.size() != 1 {
			t.Errorf("old grace timer cleared the new session's table")
		}
	})
}

func TestGraceLoader(t *testing.T) {
	m := newMapRIB()
	cfg := testConfig()
	cfg.GraceTime = 3 * time.Second
	n := neighbor(m)
	n.RIB = loaderRIB{m}
	c, addr, _ := startSpeaker(t, cfg, n)
	p := dialScripted(t, addr)
	p.establish(openSpec{as: 65000, hold: 30, id: "10.0.0.2"})
	p.send(updateMsg([]uint32{65000}, "192.0.2.1", []string{"192.0.2.0/24", "198.51.100.0/24"}, "2001:db8::1", []string{"2001:db8::/32"}))
	eventually(t, wait, "routes", func() bool { return m.size() == 3 })
	old := m.dump()
	p.nc.Close()
	eventually(t, wait, "down", func() bool { return c.Status()[0].State != StateEstablished })

	p = dialScripted(t, addr)
	p.establish(openSpec{as: 65000, hold: 30, id: "10.0.0.2"})
	p.send(updateMsg([]uint32{65000, 64496}, "192.0.2.1", []string{"192.0.2.0/24"}, "", nil))
	p.send(bgp.NewEndOfRib(bgp.RF_IPv4_UC))
	time.Sleep(200 * time.Millisecond)
	if got := m.dump(); got != old {
		t.Fatalf("readers saw the replacement before the last end-of-rib:\n%s", got)
	}
	p.send(bgp.NewEndOfRib(bgp.RF_IPv6_UC))
	eventually(t, wait, "replacement swapped in", func() bool { return m.dump() == "192.0.2.0/24 0 65000 64496 192.0.2.1" })
	if got := total(c.metrics.swapped); got != 1 {
		t.Errorf("swapped %v", got)
	}
	// Updates after the swap go to the table directly.
	p.send(updateMsg([]uint32{65000}, "192.0.2.1", []string{"203.0.113.0/24"}, "", nil))
	eventually(t, wait, "update after the swap", func() bool { return m.size() == 2 })

	// A session dropping during a refresh keeps the old table.
	p.nc.Close()
	eventually(t, wait, "down", func() bool { return c.Status()[0].State != StateEstablished })
	p = dialScripted(t, addr)
	p.establish(openSpec{as: 65000, hold: 30, id: "10.0.0.2"})
	p.send(updateMsg([]uint32{65000}, "192.0.2.1", []string{"10.0.0.0/8"}, "", nil))
	time.Sleep(100 * time.Millisecond)
	p.nc.Close()
	eventually(t, wait, "down", func() bool { return c.Status()[0].State != StateEstablished })
	if m.size() != 2 {
		t.Errorf("aborted refresh changed the table:\n%s", m.dump())
	}
}

// TestCollision drives two connections with one neighbor (one we dial, one it dials) into
// OpenConfirm: the side with the higher BGP identifier keeps the connection it initiated.
func TestCollision(t *testing.T) {
	for _, tc := range []struct {
		name, peerID string
		keepOutgoing bool // we keep the connection we dialed
	}{
		{"peer id higher keeps its connection", "10.0.0.2", false},
		{"our id higher keeps ours", "10.0.0.0", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			rib := newMapRIB()
			n := neighbor(rib)
			n.Passive = false
			n.Port = uint16(ln.Addr().(*net.TCPAddr).Port)
			_, addr, _ := startSpeaker(t, testConfig(), n)
			nc, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			ln.Close()
			out := newScripted(t, nc) // the connection the speaker dialed
			out.expect(bgp.BGP_MSG_OPEN)
			spec := openSpec{as: 65000, hold: 30, id: tc.peerID}
			out.send(spec.msg())
			out.expect(bgp.BGP_MSG_KEEPALIVE) // speaker side in OpenConfirm

			in := dialScripted(t, addr) // the connection the neighbor dials
			in.expect(bgp.BGP_MSG_OPEN)
			in.send(spec.msg())
			winner, loser := in, out
			if tc.keepOutgoing {
				winner, loser = out, in
			}
			loser.expectNotification(bgp.BGP_ERROR_CEASE, bgp.BGP_ERROR_SUB_CONNECTION_COLLISION_RESOLUTION)
			winner.send(bgp.NewBGPKeepAliveMessage())
			if winner == in {
				in.expect(bgp.BGP_MSG_KEEPALIVE)
			}
			winner.send(updateMsg([]uint32{65000}, "192.0.2.1", []string{"192.0.2.0/24"}, "", nil))
			eventually(t, wait, "route over the surviving connection", func() bool { return rib.size() == 1 })
		})
	}
	t.Run("established wins over a new connection", func(t *testing.T) {
		rib := newMapRIB()
		_, addr, _ := startSpeaker(t, testConfig(), neighbor(rib))
		p := dialScripted(t, addr)
		p.establish(openSpec{as: 65000, hold: 30, id: "10.0.0.2"})
		q := dialScripted(t, addr)
		q.expect(bgp.BGP_MSG_OPEN)
		q.send(openSpec{as: 65000, hold: 30, id: "10.0.0.2"}.msg())
		q.expectNotification(bgp.BGP_ERROR_CEASE, bgp.BGP_ERROR_SUB_CONNECTION_COLLISION_RESOLUTION)
		p.send(updateMsg([]uint32{65000}, "192.0.2.1", []string{"192.0.2.0/24"}, "", nil))
		eventually(t, wait, "established session still works", func() bool { return rib.size() == 1 })
	})
}

func TestActiveReconnects(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	rib := newMapRIB()
	n := neighbor(rib)
	n.Passive = false
	n.Port = uint16(ln.Addr().(*net.TCPAddr).Port)
	startSpeaker(t, testConfig(), n)
	for i := range 2 {
		nc, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		p := newScripted(t, nc)
		p.establish(openSpec{as: 65000, hold: 30, id: "10.0.0.2"})
		p.send(updateMsg([]uint32{65000, uint32(64500 + i)}, "192.0.2.1", []string{"192.0.2.0/24"}, "", nil))
		eventually(t, wait, "route", func() bool {
			a, ok := rib.get("192.0.2.0/24", 0)
			return ok && len(a.Path) == 1 && a.Path[0].ASNs[1] == uint32(64500+i)
		})
		nc.Close() // the speaker dials again after its retry delay
	}
}

// TestSeededRIB: a router whose table was seeded from MRT files keeps that table while its
// first session transfers, and has it replaced (not merged) at End-of-RIB.
func TestSeededRIB(t *testing.T) {
	rib := routing.NewRIB()
	rib.Load(func(u routing.Updater) error {
		u.Announce(netip.MustParsePrefix("10.0.0.0/8"), 0, routing.Attrs{Path: []routing.Segment{{Type: routing.SegmentSequence, ASNs: []uint32{64999}}}})
		u.Announce(netip.MustParsePrefix("192.0.2.0/24"), 0, routing.Attrs{Path: []routing.Segment{{Type: routing.SegmentSequence, ASNs: []uint32{64999}}}})
		return nil
	})
	n := Neighbor{Name: "r1", Address: netip.MustParseAddr("127.0.0.1"), PeerASN: 65000, Passive: true, RIB: rib, Seeded: true}
	cfg := testConfig()
	cfg.GraceTime = 5 * time.Second
	c, addr, _ := startSpeaker(t, cfg, n)
	p := dialScripted(t, addr)
	p.establish(openSpec{as: 65000, hold: 30, id: "10.0.0.2"})
	p.send(updateMsg([]uint32{65000, 64496}, "192.0.2.1", []string{"192.0.2.0/24"}, "", nil))
	p.send(bgp.NewEndOfRib(bgp.RF_IPv4_UC))
	time.Sleep(200 * time.Millisecond)
	if _, a, ok := rib.Lookup(netip.MustParseAddr("10.1.1.1")); !ok || a.String() != "64999" {
		t.Fatalf("seeded route gone before the last end-of-rib: %v %v", a, ok)
	}
	p.send(bgp.NewEndOfRib(bgp.RF_IPv6_UC))
	eventually(t, wait, "seeded table replaced", func() bool {
		v4, _ := rib.Len()
		_, a, ok := rib.Lookup(netip.MustParseAddr("192.0.2.1"))
		return v4 == 1 && ok && a.String() == "65000 64496"
	})
	if got := total(c.metrics.swapped); got != 1 {
		t.Errorf("swapped %v, want 1", got)
	}
}

// compactRIB counts Compact calls.
type compactRIB struct {
	*mapRIB
	compacted atomic.Int32
}

func (r *compactRIB) Compact() { r.compacted.Add(1) }

// TestCompactAtEndOfRIB: a table transfer ends with the RIB compacted, once per family.
func TestCompactAtEndOfRIB(t *testing.T) {
	rib := &compactRIB{mapRIB: newMapRIB()}
	n := neighbor(rib.mapRIB)
	n.RIB = rib
	_, addr, _ := startSpeaker(t, testConfig(), n)
	p := dialScripted(t, addr)
	p.establish(openSpec{as: 65000, hold: 30, id: "10.0.0.2"})
	p.send(updateMsg([]uint32{65000}, "192.0.2.1", []string{"192.0.2.0/24"}, "", nil))
	if rib.compacted.Load() != 0 {
		t.Fatal("compacted before End-of-RIB")
	}
	p.send(bgp.NewEndOfRib(bgp.RF_IPv4_UC))
	p.send(bgp.NewEndOfRib(bgp.RF_IPv6_UC))
	eventually(t, wait, "compaction at each End-of-RIB", func() bool { return rib.compacted.Load() == 2 })
}
