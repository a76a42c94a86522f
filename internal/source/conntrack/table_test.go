package conntrack

import (
	"net/netip"
	"testing"

	"github.com/netledger/netledger/internal/export/ctcsv"
)

const agentStart = int64(1_000_000_000_000)

func tcpFlow(typ EventType, id uint32, src, dst string, dport uint16) Flow {
	return Flow{Type: typ, Proto: 6, ID: id, Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst), SrcPort: 40000, DstPort: dport}
}

func counters(f Flow, op, ob, rp, rb uint64) Flow {
	f.HasCounters = true
	f.OrigPackets, f.OrigBytes, f.ReplyPackets, f.ReplyBytes = op, ob, rp, rb
	return f
}

func flushOne(t *testing.T, tb *Table) map[ctcsv.Key]ctcsv.Row {
	t.Helper()
	m := map[ctcsv.Key]ctcsv.Row{}
	for _, r := range tb.Flush(1, nil) {
		m[r.Key()] = r
	}
	return m
}

func TestTableDeltas(t *testing.T) {
	cfg := DefaultConfig()
	cfg.TrackOpen = true
	tb := NewTable(cfg, agentStart)
	key := ctcsv.Key{Proto: 6, Port: 80, Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2")}
	now := agentStart + 1e9
	f := tcpFlow(EventNew, 1, "10.0.0.1", "10.0.0.2", 80)
	tb.Handle(&f, now)
	tb.BeginDump()
	d := counters(tcpFlow(EventDump, 1, "10.0.0.1", "10.0.0.2", 80), 10, 1000, 8, 5000)
	d.TCPState = 3
	tb.Handle(&d, now)
	tb.Handle(&d, now) // the same snapshot twice: counted once
	tb.EndDump()
	got := flushOne(t, tb)[key]
	if got.SrcPackets != 10 || got.SrcBytes != 1000 || got.DstPackets != 8 || got.DstBytes != 5000 || got.Open != 1 || got.Connections != 0 {
		t.Errorf("interval 1 = %+v", got)
	}
	// a closing update, then the DESTROY with final counters; a stale dump snapshot after it.
	u := tcpFlow(EventUpdate, 1, "10.0.0.1", "10.0.0.2", 80)
	u.TCPState = tcpLastAck
	tb.Handle(&u, now+2e9)
	x := counters(tcpFlow(EventDestroy, 1, "10.0.0.1", "10.0.0.2", 80), 14, 1400, 12, 7000)
	x.Stop = now + 9e9
	tb.Handle(&x, now+9e9)
	tb.BeginDump()
	tb.Handle(&d, now+9e9) // a snapshot taken before the DESTROY, read after it
	tb.EndDump()
	got = flushOne(t, tb)[key]
	want := ctcsv.Row{Time: 1, Proto: 6, Port: 80, Src: key.Src, Dst: key.Dst, SrcPackets: 4, SrcBytes: 400, DstPackets: 4, DstBytes: 2000, Connections: 1, ConnTimeMs: 2000}
	if got != want {
		t.Errorf("interval 2:\n got %+v\nwant %+v", got, want)
	}
	tb.BeginDump()
	tb.EndDump()
	if tb.Len() != 0 {
		t.Errorf("tombstone kept after the next dump: %d flows", tb.Len())
	}
	if rows := tb.Flush(2, nil); len(rows) != 0 {
		t.Errorf("idle interval: %+v", rows)
	}
}

// TestTableLostNew: a flow whose NEW was lost is counted from zero when the kernel says it
// started after the agent, and from its first sight when it is older.
func TestTableLostNew(t *testing.T) {
	for _, tc := range []struct {
		name  string
		start int64
		want  uint64 // bytes accounted over two dumps (100 then 250)
		conns uint64
	}{
		{"started after the agent", agentStart + 5, 250, 1},
		{"older than the agent", agentStart - 5, 150, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb := NewTable(DefaultConfig(), agentStart)
			tb.BeginDump()
			d := counters(tcpFlow(EventDump, 9, "10.0.0.1", "10.0.0.2", 22), 1, 100, 0, 0)
			d.Start = tc.start
			tb.Handle(&d, agentStart+1e9)
			tb.EndDump()
			d = counters(d, 2, 250, 0, 0)
			d.TCPState = tcpTimeWait
			tb.BeginDump()
			tb.Handle(&d, agentStart+2e9)
			tb.EndDump()
			var bytes, conns uint64
			for _, r := range tb.Flush(1, nil) {
				bytes += r.SrcBytes
				conns += r.Connections
			}
			if bytes != tc.want || conns != tc.conns {
				t.Errorf("bytes %d conns %d, want %d %d", bytes, conns, tc.want, tc.conns)
			}
		})
	}
	// Only a DESTROY: counted whole when it started after the agent.
	tb := NewTable(DefaultConfig(), agentStart)
	x := counters(tcpFlow(EventDestroy, 3, "10.0.0.1", "10.0.0.2", 22), 5, 500, 4, 400)
	x.Start, x.Stop = agentStart+1e9, agentStart+3e9
	tb.Handle(&x, agentStart+3e9)
	rows := tb.Flush(1, nil)
	if len(rows) != 1 || rows[0].SrcBytes != 500 || rows[0].DstBytes != 400 || rows[0].Connections != 1 || rows[0].ConnTimeMs != 2000 {
		t.Errorf("destroy-only flow: %+v", rows)
	}
}

// TestTableReplaced: the kernel reuses a destroyed entry's id for a new connection with the
// same tuple (a client reconnecting from the same port). Without reliable events the old
// one's DESTROY may be lost: the new connection, told apart by its start timestamp, must be
// counted from zero (its counters restart below the old ones'), and the old one closed.
// Messages about one connection (the same start, or no timestamps) are never taken for
// another.
func TestTableReplaced(t *testing.T) {
	s1, s2 := agentStart+1e9, agentStart+5e9
	msg := func(typ EventType, start int64, packets, bytes uint64) Flow {
		f := counters(tcpFlow(typ, 7, "10.0.0.1", "10.0.0.2", 22), packets, bytes, packets, bytes)
		if typ == EventNew {
			f.HasCounters = false
		}
		f.Start = start
		return f
	}
	for _, tc := range []struct {
		name                  string
		msgs                  []Flow
		bytes, conns, replace uint64
	}{
		{"lost DESTROY, replacement in a dump",
			[]Flow{msg(EventNew, 0, 0, 0), msg(EventDump, s1, 5, 500), msg(EventDump, s2, 3, 300)}, 800, 1, 1},
		{"lost DESTROY, replacement's DESTROY",
			[]Flow{msg(EventDump, s1, 5, 500), msg(EventDestroy, s2, 3, 300)}, 800, 2, 1},
		{"DESTROY seen, replacement's NEW lost",
			[]Flow{msg(EventDestroy, s1, 5, 500), msg(EventDestroy, s2, 3, 300)}, 800, 2, 0},
		{"NEW without a timestamp, then dumps with one",
			[]Flow{msg(EventNew, 0, 0, 0), msg(EventDump, s1, 5, 500), msg(EventDump, s1, 6, 600)}, 600, 0, 0},
		{"no timestamps: cannot tell",
			[]Flow{msg(EventNew, 0, 0, 0), msg(EventDump, 0, 5, 500), msg(EventDump, 0, 6, 600)}, 600, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb := NewTable(DefaultConfig(), agentStart)
			for i, f := range tc.msgs {
				tb.BeginDump()
				tb.Handle(&f, agentStart+10e9+int64(i)*1e9)
				tb.EndDump()
			}
			var bytes, conns uint64
			for _, r := range tb.Flush(1, nil) {
				bytes += r.SrcBytes
				conns += r.Connections
			}
			if bytes != tc.bytes || conns != tc.conns || tb.Stats.Replaced != tc.replace {
				t.Errorf("bytes %d, connections %d, replaced %d; want %d, %d, %d", bytes, conns, tb.Stats.Replaced, tc.bytes, tc.conns, tc.replace)
			}
		})
	}
}

func TestGroup(t *testing.T) {
	saar := [4]byte{255, 239, 255, 0}
	for _, tc := range []struct {
		addr    string
		mask    [4]byte
		prefix6 int
		want    string
	}{
		{"10.32.5.7", saar, 128, "10.32.5.0"},
		{"10.48.5.9", saar, 128, "10.32.5.0"}, // the second /24 of team 5
		{"10.33.250.1", saar, 128, "10.33.250.0"},
		{"10.63.255.255", saar, 128, "10.47.255.0"},
		{"192.0.2.77", [4]byte{255, 255, 255, 255}, 128, "192.0.2.77"},
		{"2001:db8:1:2::5", saar, 64, "2001:db8:1:2::"},
		{"2001:db8:1:2::5", saar, 48, "2001:db8:1::"},
		{"2001:db8:1:2::5", saar, 128, "2001:db8:1:2::5"},
	} {
		if got := Group(netip.MustParseAddr(tc.addr), tc.mask, tc.prefix6); got.String() != tc.want {
			t.Errorf("Group(%s) = %s, want %s", tc.addr, got, tc.want)
		}
	}
}

func TestFilters(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Src = []netip.Prefix{netip.MustParsePrefix("10.32.0.0/11"), netip.MustParsePrefix("2001:db8::/32")}
	cfg.Exclude = []netip.Addr{netip.MustParseAddr("10.32.250.1")}
	cfg.Zones = []uint16{0, 5}
	cfg.Mark, cfg.MarkMask = 0x10, 0xf0
	tb := NewTable(cfg, 0)
	base := Flow{Proto: 6, Src: netip.MustParseAddr("10.32.1.1"), Dst: netip.MustParseAddr("8.8.8.8"), Mark: 0x13}
	for _, tc := range []struct {
		name string
		mod  func(*Flow)
		want bool
	}{
		{"base", func(*Flow) {}, true},
		{"source outside", func(f *Flow) { f.Src = netip.MustParseAddr("10.64.0.1") }, false},
		{"second source net", func(f *Flow) { f.Src = netip.MustParseAddr("2001:db8::1") }, true},
		{"excluded source", func(f *Flow) { f.Src = netip.MustParseAddr("10.32.250.1") }, false},
		{"excluded destination", func(f *Flow) { f.Dst = netip.MustParseAddr("10.32.250.1") }, false},
		{"icmp", func(f *Flow) { f.Proto = 1 }, false},
		{"icmpv6", func(f *Flow) { f.Proto = 58 }, false},
		{"other zone", func(f *Flow) { f.Zone = 4 }, false},
		{"zone 5", func(f *Flow) { f.Zone = 5 }, true},
		{"other mark", func(f *Flow) { f.Mark = 0x20 }, false},
	} {
		f := base
		tc.mod(&f)
		if got := tb.Interesting(&f); got != tc.want {
			t.Errorf("%s: Interesting = %v, want %v", tc.name, got, tc.want)
		}
	}
	cfg.IncludeICMP = true
	if f := (Flow{Proto: 1, Src: base.Src, Dst: base.Dst, Mark: 0x10}); !NewTable(cfg, 0).Interesting(&f) {
		t.Error("ICMP not accounted with IncludeICMP")
	}
}

func TestPorts(t *testing.T) {
	p, err := ParsePorts([]byte("# services\ntcp:80\nudp:53\n\nsctp:9\n6:443\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		proto uint8
		port  uint16
		want  int32
	}{{6, 80, 80}, {17, 80, -1}, {17, 53, 53}, {132, 9, 9}, {6, 443, 443}, {6, 22, -1}} {
		if got := p.Port(tc.proto, tc.port); got != tc.want {
			t.Errorf("Port(%d, %d) = %d, want %d", tc.proto, tc.port, got, tc.want)
		}
	}
	if got := (*Ports)(nil).Port(6, 22); got != 22 {
		t.Errorf("no ports file: %d", got)
	}
	for _, bad := range []string{"tcp80\n", "tcp:99999\n", "nosuch:1\n"} {
		if _, err := ParsePorts([]byte(bad)); err == nil {
			t.Errorf("ParsePorts(%q): no error", bad)
		}
	}
}

func TestHandleAllocations(t *testing.T) {
	tb := NewTable(DefaultConfig(), agentStart)
	msgs := syntheticEvents(1000)
	var f Flow
	replay := func() {
		for _, m := range msgs {
			DecodeMessage(m, &f)
			tb.Handle(&f, agentStart+1)
		}
	}
	replay() // warm: the slab, the map and the groups reach their size
	if n := testing.AllocsPerRun(20, replay); n != 0 {
		t.Errorf("%v allocations per replay of %d events", n, len(msgs))
	}
}
