package tcpinfo

import (
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// TestOverrun gives the destroy socket the smallest receive buffer and closes a burst of
// connections at once: the kernel drops notifications, the source counts the overrun and the
// exact number lost, and the interval dump still accounts every connection open at that moment.
func TestOverrun(t *testing.T) {
	ns := newNetNS(t)
	src, col := startSource(t, Config{Interval: 200 * time.Millisecond, ReceiveBuffer: 1, Ports: []uint16{8080}, NetNS: ns})

	var l net.Listener
	var clients []net.Conn
	const open, burst, size = 40, 1500, 20_000
	inNetNS(t, ns, func() {
		var err error
		if l, err = net.Listen("tcp", "127.0.0.1:8080"); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < open+burst; i++ {
			c, err := net.Dial("tcp", "127.0.0.1:8080")
			if err != nil {
				t.Fatal(err)
			}
			clients = append(clients, c)
		}
	})
	defer l.Close()
	var servers []net.Conn
	for range clients {
		c, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		servers = append(servers, c)
	}
	byLocal := map[string]net.Conn{}
	for _, c := range servers {
		byLocal[c.RemoteAddr().String()] = c
	}
	// The first `open` connections carry size bytes each and stay open.
	var wg sync.WaitGroup
	wantOpen := map[netip.AddrPort]bool{}
	for _, c := range clients[:open] {
		s := byLocal[c.LocalAddr().String()]
		wantOpen[c.LocalAddr().(*net.TCPAddr).AddrPort()] = true
		wg.Go(func() { s.Write(make([]byte, size)) })
		wg.Go(func() { io.ReadFull(c, make([]byte, size)) })
	}
	wg.Wait()
	// The burst: close the others, both ends, at once.
	for _, c := range clients[open:] {
		byLocal[c.LocalAddr().String()].Close()
		c.Close()
	}
	// Two more dumps after the burst, and every notification of it received or counted lost:
	// the kernel sends them from a work queue, which on a loaded machine can lag two fast dumps.
	d0 := src.Stats().Dumps
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if st := src.Stats(); st.Dumps >= d0+2 && st.Notifications+st.Lost >= 2*burst {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	st := src.Stats()
	if st.Overruns == 0 || st.Lost == 0 {
		t.Errorf("overruns %d, lost %d: want both > 0", st.Overruns, st.Lost)
	}
	// Every socket of the burst (both ends) was either received or counted lost.
	if st.Notifications+st.Lost < 2*burst {
		t.Errorf("notifications %d + lost %d < %d sockets closed", st.Notifications, st.Lost, 2*burst)
	}
	got := map[netip.AddrPort]uint64{}
	for _, r := range col.snapshot() {
		k := netip.AddrPortFrom(r.Client, r.ClientPort)
		if wantOpen[k] {
			got[k] += r.BytesOut
		}
	}
	for k := range wantOpen {
		if got[k] != size {
			t.Errorf("open connection %v: Σ BytesOut %d, want %d", k, got[k], size)
		}
	}
	t.Logf("stats %+v", st)
	for _, c := range clients[:open] {
		c.Close()
	}
	for _, c := range servers[:open] {
		c.Close()
	}
}
