package tcpinfo

import (
	"net/netip"
	"testing"
	"time"

	"github.com/netledger/netledger/internal/record"
)

func sock(cookie uint64, acked, received uint64, segsOut, segsIn, retrans uint32, busy uint64) Socket {
	return Socket{Family: afInet, State: stateEstablished, Local: local4.Addr(), Remote: remote4.Addr(),
		LocalPort: 443, RemotePort: 50123, Cookie: cookie, InfoLen: tcpInfoLen,
		BytesAcked: acked, BytesSent: acked, HaveBytesSent: true, BytesReceived: received,
		SegsOut: segsOut, SegsIn: segsIn, TotalRetrans: retrans, BusyTime: busy, HaveBusyTime: true,
		SndMSS: 1448, RTT: 21000}
}

// closedSock is s at its destroy: the FIN acknowledged on top of what was sent.
func closedSock(s Socket) Socket {
	s.State = stateClose
	s.BytesAcked++
	return s
}

type counters struct {
	requests, closed, open int
	out, in, pout, pin     uint64
	retrans                uint32
	dur                    uint64
}

func (c *counters) add(r record.Record) {
	c.requests += int(r.Requests)
	c.closed += int(r.ConnsClosed)
	c.open += int(r.ConnsOpen)
	c.out += r.BytesOut
	c.in += r.BytesIn
	c.pout += r.PacketsOut
	c.pin += r.PacketsIn
	c.retrans += r.Retransmits
	c.dur += r.Duration
}

// TestTrackerDeltas plays sequences of dumps and destroy notifications: a connection's records
// always sum to its final counters, whatever the dumps saw of it.
func TestTrackerDeltas(t *testing.T) {
	type step struct {
		dump    []Socket // a whole dump (nil: no dump at this step)
		destroy *Socket
		records int           // records this step emits
		at      time.Duration // when the step's dump ends (0: 10 s × the step's index)
	}
	final := sock(1, 90_000, 700, 80, 30, 4, 50_000)
	mid := sock(1, 30_000, 700, 25, 12, 1, 10_000)
	fin := closedSock(final)
	want := counters{requests: 1, closed: 1, out: 90_000, in: 700, pout: 80, pin: 30, retrans: 4, dur: 50_000}
	tests := []struct {
		name  string
		steps []step
		want  counters
	}{
		{"short: destroy only", []step{{destroy: &fin, records: 1}}, want},
		{"long: two dumps then destroy", []step{
			{dump: []Socket{mid}, records: 1},
			{dump: []Socket{final}, records: 1},
			{destroy: &fin, records: 1},
		}, func() counters { c := want; c.open = 2; return c }()},
		{"idle between dumps", []step{
			{dump: []Socket{mid}, records: 1},
			{dump: []Socket{mid}, records: 0},
			{destroy: &fin, records: 1},
		}, func() counters { c := want; c.open = 1; return c }()},
		{"nothing after last dump", []step{
			{dump: []Socket{final}, records: 1},
			{destroy: &fin, records: 1},
		}, func() counters { c := want; c.open = 1; return c }()},
		{"lost destroy: forgotten after two dumps without it", []step{
			{dump: []Socket{mid}, records: 1},
			{dump: []Socket{}, records: 0},
			{dump: []Socket{}, records: 0},
		}, counters{requests: 1, open: 1, out: 30_000, in: 700, pout: 25, pin: 12, retrans: 1, dur: 10_000}},
		{"late destroy: two dumps without it, but less than forgetAfter after it left", []step{
			{dump: []Socket{mid}, records: 1, at: time.Second},
			{dump: []Socket{}, records: 0, at: 2 * time.Second},
			{dump: []Socket{}, records: 0, at: 6900 * time.Millisecond}, // forgetAfter is 5 s
			{destroy: &fin, records: 1},
		}, func() counters { c := want; c.open = 1; return c }()},
		{"lost destroy: kept until forgetAfter after the first dump without it", []step{
			{dump: []Socket{mid}, records: 1, at: time.Second},
			{dump: []Socket{}, records: 0, at: 2 * time.Second},
			{dump: []Socket{}, records: 0, at: 3 * time.Second},
			{dump: []Socket{}, records: 0, at: 7 * time.Second},
		}, counters{requests: 1, open: 1, out: 30_000, in: 700, pout: 25, pin: 12, retrans: 1, dur: 10_000}},
		{"closed during a dump, notification read after it", []step{
			{dump: []Socket{mid}, records: 1},
			{dump: []Socket{}, destroy: &fin, records: 1},
		}, func() counters { c := want; c.open = 1; return c }()},
		{"skipped by one dump while alive", []step{
			{dump: []Socket{mid}, records: 1},
			{dump: []Socket{}, records: 0},
			{dump: []Socket{final}, records: 1},
			{destroy: &fin, records: 1},
		}, func() counters { c := want; c.open = 2; return c }()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTracker(newFilter(Config{Ports: []uint16{443}}))
			var got counters
			for i, st := range tt.steps {
				var r record.Record
				n := 0
				if st.dump != nil {
					tr.beginDump()
					for _, s := range st.dump {
						if tr.dumped(&s, 1, &r) {
							n++
							got.add(r)
						}
					}
					at := st.at
					if at == 0 {
						at = time.Duration(i) * 10 * time.Second
					}
					tr.endDump(int64(at), true)
				}
				if st.destroy != nil && tr.destroy(st.destroy, 2, &r) {
					n++
					got.add(r)
				}
				if n != st.records {
					t.Errorf("step %d: %d records, want %d", i, n, st.records)
				}
			}
			if got != tt.want {
				t.Errorf("totals\n got %+v\nwant %+v", got, tt.want)
			}
			if tr.socks.live != 0 {
				t.Errorf("%d sockets still tracked", tr.socks.live)
			}
		})
	}
}

func TestTrackerRecordFields(t *testing.T) {
	tr := newTracker(newFilter(Config{Classes: []ClassRule{{Port: 80, Class: 1}, {Prefix: netip.MustParsePrefix("192.0.2.0/24"), Class: 2}}}))
	s := closedSock(sock(7, 5000, 100, 9, 8, 1, 3000))
	s.Local = netip.MustParseAddr("::ffff:192.0.2.1")
	s.Remote = netip.MustParseAddr("::ffff:198.51.100.7")
	s.Family = afInet6
	s.MinRTT, s.RTTVar, s.DeliveryRate = 20000, 500, 123456
	var r record.Record
	if !tr.destroy(&s, 42, &r) {
		t.Fatal("destroy() filtered the socket")
	}
	want := record.Record{Time: 42, Client: netip.MustParseAddr("198.51.100.7"), Server: netip.MustParseAddr("192.0.2.1"),
		ClientPort: 50123, ServerPort: 443, Proto: 6, Source: record.SourceTCPInfo, Class: 2, Requests: 1,
		BytesOut: 5000, BytesIn: 100, PacketsOut: 9, PacketsIn: 8, Retransmits: 1, MSS: 1448,
		RTT: 21000, RTTVar: 500, MinRTT: 20000, DeliveryRate: 123456, Duration: 3000, ConnsClosed: 1}
	if r != want {
		t.Errorf("record\n got %+v\nwant %+v", r, want)
	}
}

func TestFilter(t *testing.T) {
	f := newFilter(Config{Ports: []uint16{80, 443}, Addresses: []netip.Prefix{
		netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::/32")}})
	tests := []struct {
		addr string
		port uint16
		want bool
	}{
		{"192.0.2.1", 443, true},
		{"192.0.2.1", 8080, false},
		{"192.0.3.1", 443, false},
		{"2001:db8::1", 80, true},
		{"2001:db9::1", 80, false},
	}
	for _, tt := range tests {
		if got := f.match(netip.MustParseAddr(tt.addr), tt.port); got != tt.want {
			t.Errorf("match(%s, %d) = %v, want %v", tt.addr, tt.port, got, tt.want)
		}
	}
	all := newFilter(Config{})
	if !all.match(netip.MustParseAddr("10.0.0.1"), 1) {
		t.Error("empty filter rejected a socket")
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("default config: %v", err)
	}
	bad := []Config{{Interval: -1}, {Interval: 10}, {ReceiveBuffer: -1}, {DumpOnly: true}, {Addresses: []netip.Prefix{{}}}, {DumpMethod: "ebpf"}}
	for _, c := range bad {
		if c.Validate() == nil {
			t.Errorf("Validate(%+v) = nil, want an error", c)
		}
	}
}

// TestTrackerSlotReuse: a socket first seen after another one closed reuses its memory and must
// still be accounted from zero.
func TestTrackerSlotReuse(t *testing.T) {
	tr := newTracker(newFilter(Config{}))
	var r record.Record
	a := sock(1, 50_000, 10, 40, 20, 2, 900)
	tr.beginDump()
	tr.dumped(&a, 1, &r)
	tr.endDump(1, true)
	fa := closedSock(a)
	tr.destroy(&fa, 2, &r)
	b := sock(2, 7_000, 5, 6, 4, 0, 100)
	tr.beginDump()
	if !tr.dumped(&b, 3, &r) {
		t.Fatal("new socket not accounted")
	}
	tr.endDump(3, true)
	if r.BytesOut != 7_000 || r.PacketsOut != 6 || r.Requests != 1 || r.Duration != 100 {
		t.Errorf("new socket's first record %+v, want its full counters", r)
	}
}

// TestTrackerForgetAfter: a socket missing from the dumps (every 100 ms, the shortest interval)
// is forgotten at the first dump that ends forgetAfter or more after the end of the first dump
// that missed it, not before — also across the end times' ring (genRing dumps).
func TestTrackerForgetAfter(t *testing.T) {
	for _, step := range []time.Duration{100 * time.Millisecond, time.Second} {
		tr := newTracker(newFilter(Config{}))
		var r record.Record
		a := sock(1, 50_000, 10, 40, 20, 2, 900)
		tr.beginDump()
		tr.dumped(&a, 1, &r)
		tr.endDump(int64(step), true)
		missed := 2 * step // the end of the first dump without the socket
		for at := missed; at < missed+forgetAfter+2*step; at += step {
			tr.beginDump()
			tr.endDump(int64(at), true)
			want := 1
			if at >= missed+forgetAfter {
				want = 0
			}
			if tr.socks.live != want {
				t.Fatalf("dumps every %v: %d sockets tracked at %v (dump %d), want %d", step, tr.socks.live, at, tr.gen, want)
			}
		}
		if tr.vanished != 1 {
			t.Errorf("dumps every %v: vanished %d, want 1", step, tr.vanished)
		}
	}
}
