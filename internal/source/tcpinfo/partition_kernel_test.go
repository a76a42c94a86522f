package tcpinfo

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/netledger/netledger/internal/testenv"
)

// tuple is a socket's local and remote address and port.
type tuple struct {
	local, remote netip.AddrPort
}

// TestPartitionsExactlyOnce opens connections on random ports (both families, both ends in
// one namespace, so every connection is two established sockets) and dumps them split in 1 to
// 7 partitions, by remote and by local port, with cuts at random ports and exactly at ports in
// use: every socket must be accounted by exactly one partition.
func TestPartitionsExactlyOnce(t *testing.T) {
	ns := newNetNS(t)
	run(t, testenv.Command(t, "ip"), "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_local_port_range=1024 65535")
	rng := rand.New(rand.NewPCG(6, 100))
	want := map[tuple]int{}
	var ports []uint16 // every port in use, for cuts on them
	var conns []net.Conn
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	addrPort := func(a net.Addr) netip.AddrPort {
		ap := a.(*net.TCPAddr).AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	inNetNS(t, ns, func() {
		listen := []string{"127.0.0.1:1", "[::1]:65535", "127.0.0.1:65534"} // the ends of the port space
		for i := 0; i < 40; i++ {
			host := "127.0.0.1"
			if i%3 == 0 {
				host = "::1"
			}
			listen = append(listen, net.JoinHostPort(host, fmt.Sprint(1+rng.IntN(1<<16-1))))
		}
		for _, addr := range listen {
			l, err := net.Listen("tcp", addr)
			if err != nil {
				continue // a random port already taken by an earlier client
			}
			defer l.Close()
			for j := 0; j < 25; j++ {
				c, s := dialAccept(t, l, "")
				conns = append(conns, c, s)
				for _, e := range []net.Conn{c, s} {
					tu := tuple{addrPort(e.LocalAddr()), addrPort(e.RemoteAddr())}
					want[tu]++
					ports = append(ports, tu.local.Port())
				}
			}
		}
	})
	v6 := 0
	for tu := range want {
		if tu.local.Addr().Is6() {
			v6++
		}
	}
	if len(want) < 1500 || v6 == 0 || v6 == len(want) {
		t.Fatalf("%d sockets opened, %d of them IPv6: want both families", len(want), v6)
	}
	// dump runs one dump split as pl on a fresh source and returns how often each socket was
	// accounted.
	dump := func(t *testing.T, pl plan, perFamily bool) map[tuple]int {
		col := &collector{}
		s, err := New(Config{Interval: time.Second, NetNS: ns, Partitions: pl.partitions()}, Deps{Sink: col.sink})
		if err != nil {
			t.Fatal(err)
		}
		d := newDumper(s, dialDumps(t, ns, pl.partitions()))
		d.noUnspec.Store(perFamily) // as on a kernel refusing TCPDIAG_GETSOCK
		if err := d.runPlan(pl); err != nil {
			t.Fatal(err)
		}
		for i, p := range d.parts {
			// The pipeline's buffers exist once a dump was received in a goroutine of its own.
			if piped, spare := p.c.pipe != nil, pl.partitions() < runtime.GOMAXPROCS(0); piped != spare {
				t.Errorf("GOMAXPROCS %d, %d partitions: partition %d overlapped %v, want %v",
					runtime.GOMAXPROCS(0), pl.partitions(), i, piped, spare)
			}
		}
		got := map[tuple]int{}
		for _, r := range col.snapshot() {
			got[tuple{netip.AddrPortFrom(r.Server, r.ServerPort), netip.AddrPortFrom(r.Client, r.ClientPort)}]++
		}
		if d.n != uint64(len(want)) {
			t.Errorf("dump saw %d sockets, want %d", d.n, len(want))
		}
		return got
	}
	check := func(t *testing.T, pl plan, got map[tuple]int) {
		t.Helper()
		for tu, n := range want {
			if got[tu] != n {
				t.Errorf("plan %+v: socket %v accounted %d times, want %d", pl, tu, got[tu], n)
			}
		}
		for tu, n := range got {
			if want[tu] == 0 {
				t.Errorf("plan %+v: unexpected socket %v accounted %d times", pl, tu, n)
			}
		}
	}
	randomCuts := func(n int, onPorts bool) []uint16 {
		set := map[uint16]bool{}
		for len(set) < n-1 {
			c := uint16(1 + rng.IntN(1<<16-1))
			if onPorts {
				c = ports[rng.IntN(len(ports))] + uint16(rng.IntN(2)) // a socket's port starts or ends a range
				if c == 0 {
					continue
				}
			}
			set[c] = true
		}
		var cuts []uint16
		for c := range set {
			cuts = append(cuts, c)
		}
		slices.Sort(cuts)
		return cuts
	}
	for _, n := range []int{1, 2, 3, 5, 7} {
		for _, local := range []bool{false, true} {
			for _, onPorts := range []bool{false, true} {
				pl := plan{local: local, cuts: randomCuts(n, onPorts)}
				t.Run(fmt.Sprintf("%d partitions, local %v, cuts %v", n, local, pl.cuts), func(t *testing.T) {
					// GOMAXPROCS 1: every partition receives and decodes in turn on its own
					// goroutine; 8: a core to spare, the datagrams are received in a goroutine
					// of their own while the partition decodes (conn.dump's overlap).
					for _, procs := range []int{1, 8} {
						old := runtime.GOMAXPROCS(procs)
						check(t, pl, dump(t, pl, false))
						check(t, pl, dump(t, pl, true))
						runtime.GOMAXPROCS(old)
					}
				})
			}
		}
	}
	// The BPF socket iterator: one walk of both families.
	t.Run("bpf", func(t *testing.T) {
		col := &collector{}
		s, err := New(Config{Interval: time.Second, NetNS: ns}, Deps{Sink: col.sink})
		if err != nil {
			t.Fatal(err)
		}
		d := newDumper(s, nil)
		d.iter = openTestIter(t, ns, nil)
		if err := d.run(); err != nil {
			t.Fatal(err)
		}
		got := map[tuple]int{}
		for _, r := range col.snapshot() {
			got[tuple{netip.AddrPortFrom(r.Server, r.ServerPort), netip.AddrPortFrom(r.Client, r.ClientPort)}]++
		}
		if d.n != uint64(len(want)) {
			t.Errorf("dump saw %d sockets, want %d", d.n, len(want))
		}
		check(t, plan{}, got)
	})
	// The production path: the first dump cuts evenly, the next where the first saw the sockets.
	t.Run("adaptive", func(t *testing.T) {
		col := &collector{}
		s, err := New(Config{Interval: time.Second, NetNS: ns, Partitions: 3}, Deps{Sink: col.sink})
		if err != nil {
			t.Fatal(err)
		}
		d := newDumper(s, dialDumps(t, ns, 3))
		for i := 0; i < 2; i++ {
			s.tr = newTracker(s.tr.filter) // every socket is new again: one record each
			col.recs = nil
			if err := d.run(); err != nil {
				t.Fatal(err)
			}
			got := map[tuple]int{}
			for _, r := range col.snapshot() {
				got[tuple{netip.AddrPortFrom(r.Server, r.ServerPort), netip.AddrPortFrom(r.Client, r.ClientPort)}]++
			}
			check(t, d.lastPl, got)
			if d.lastPl.partitions() != 3 {
				t.Errorf("dump %d: plan %+v, want 3 partitions", i, d.lastPl)
			}
		}
	})
}
