package conntrack

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/sys/unix"

	"github.com/netledger/netledger/internal/testenv"
)

// TestKernelReliableEvents overruns the event socket on purpose — the test holds the agent's
// lock, so its reader stops with the socket full — and then reopens TCP connections whose
// conntrack entries are in TIME_WAIT (a client reconnecting from the same port). The kernel
// must destroy the old entry first, and that DESTROY cannot be delivered:
//
//   - reliable_events off (the default): the DESTROY is lost, the SYNs pass at once — every
//     reconnection completes while the reader is still stopped, without a single SYN
//     retransmission — and the overrun is counted;
//   - reliable_events on: the kernel keeps the old entry and drops the SYN (the client
//     retransmits it), and delivers the DESTROY once the reader drains the socket.
//
// In both modes the totals then equal the kernel's counters of the old and the new
// connections: nothing is lost that a dump could see, nothing is counted twice. It fails when
// the option is ignored either way (always reliable: the lossy reconnections retransmit;
// never reliable: the reliable ones do not).
func TestKernelReliableEvents(t *testing.T) { eachEventMode(t, testReliableEvents) }

func testReliableEvents(t *testing.T, reliable bool) {
	cfg := saarConfig()
	// Small, but room for many events: once the socket overflows, the kernel delivers nothing
	// more until the reader has emptied it, and the stopped reader takes at most one.
	cfg.ReceiveBuffer = 16 << 10
	cfg.ReliableEvents = reliable
	l := newLab(t, cfg)
	closeFirstServer(t, l.b, "10.32.7.2:9010", 100, 1000)
	udpServer(t, l.b, "10.32.7.2:9001", 200)

	// Connections from fixed ports (below the ephemeral range), closed by the server first:
	// their conntrack entries stay in TIME_WAIT, and the client's ports are free again.
	ports := []int{20001, 20002, 20003}
	for _, p := range ports {
		c := dialFrom(t, l.a, "10.32.5.2", p, "10.32.7.2:9010")
		closeFirstExchange(t, c, 100, 1000)
	}
	old, n := l.kernelTotals(saarGroups, allPorts)
	if n != len(ports) {
		t.Fatalf("kernel has %d flows, want %d", n, len(ports))
	}
	first := l.flush()

	// Stop the reader and fill its socket: UDP flows from new ports until the socket drops.
	l.agent.mu.Lock()
	locked := true
	defer func() {
		if locked {
			l.agent.mu.Unlock()
		}
	}()
	testenv.WaitFor(t, "the event socket to overrun", func() bool {
		udpExchange(t, l.a, "10.48.5.3", "10.32.7.2:9001", 1, 40, 200)
		return eventDrops(t, l) > 0
	})
	retrans0 := synRetrans(t, l.a)
	type dialed struct {
		c   net.Conn
		err error
	}
	results := make(chan dialed, len(ports))
	for _, p := range ports {
		go func() {
			c, err := tryDialFrom(l.a, "10.32.5.2", p, "10.32.7.2:9010")
			results <- dialed{c, err}
		}()
	}
	if reliable {
		// The kernel drops the SYNs until it can deliver the old entries' DESTROY.
		testenv.WaitFor(t, "the reconnections' SYNs to be retransmitted", func() bool {
			return synRetrans(t, l.a)-retrans0 >= uint64(len(ports))
		})
		l.agent.mu.Unlock()
		locked = false
	}
	var conns []net.Conn
	for range ports {
		r := <-results
		if r.err != nil {
			t.Fatalf("reconnection: %v", r.err)
		}
		conns = append(conns, r.c)
	}
	if !reliable {
		if got := synRetrans(t, l.a) - retrans0; got != 0 {
			t.Errorf("lossy events: %d SYN retransmissions, want none (the host's traffic waited for the agent)", got)
		}
		l.agent.mu.Unlock()
		locked = false
	}
	for _, c := range conns {
		if r := totalRetrans(t, c); (r > 0) != reliable {
			t.Errorf("reliable events %v: reconnection from %s retransmitted %d times", reliable, c.LocalAddr(), r)
		}
		closeFirstExchange(t, c, 100, 1000)
	}

	testenv.WaitFor(t, "the overrun to be counted", func() bool { return testutil.ToFloat64(l.agent.metrics.overruns) > 0 })
	want, n := l.kernelTotals(saarGroups, allPorts)
	if n < len(ports)+1 {
		t.Errorf("kernel has %d flows, want the %d reconnections and UDP flows", n, len(ports))
	}
	for k, r := range old {
		r.Proto, r.Port, r.Src, r.Dst = k.Proto, k.Port, k.Src, k.Dst
		want.add(r)
	}
	second := l.flush()
	compare(t, sum(first, second), want)
	st := l.agent.Stats()
	t.Logf("overruns %d, stats %+v", l.agent.Overruns(), st)
	if got := testutil.ToFloat64(l.agent.metrics.replaced); got != float64(st.Replaced) {
		t.Errorf("netledger_conntrack_replaced_flows_total = %v, want %d", got, st.Replaced)
	}

	// The kernel destroys every flow: their DESTROY events (if any arrive) carry counters
	// already accounted.
	sh(t, l.ip, "netns", "exec", l.b, l.ct, "-D", "-f", "ipv4")
	if rows := l.flush(); len(rows) != 0 {
		t.Errorf("after the flows were destroyed, rows = %v, want none", rows)
	}
}

// closeFirstServer accepts connections in ns on addr: each reads req bytes, answers resp
// bytes and closes first, so that its side (and the conntrack entry) ends in TIME_WAIT.
func closeFirstServer(t *testing.T, ns, addr string, req, resp int) {
	serveTCP(t, ns, addr, func(c net.Conn) {
		defer c.Close()
		if _, err := io.ReadFull(c, make([]byte, req)); err == nil {
			c.Write(make([]byte, resp))
		}
	})
}

// closeFirstExchange sends req bytes on c, reads resp bytes and the server's close, then
// closes c.
func closeFirstExchange(t *testing.T, c net.Conn, req, resp int) {
	t.Helper()
	defer c.Close()
	if _, err := c.Write(make([]byte, req)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, resp)); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("after the answer: %d bytes, %v; want the server's close", n, err)
	}
}

// tryDialFrom opens a TCP connection from ns, address src port port, to dst. A port whose
// previous connection is still closing (LAST_ACK) is tried again.
func tryDialFrom(ns, src string, port int, dst string) (net.Conn, error) {
	var c net.Conn
	err := inNetNS("/run/netns/"+ns, func() error {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src), Port: port}, Timeout: 60 * time.Second}
		for deadline := time.Now().Add(testenv.WaitTimeout); ; time.Sleep(10 * time.Millisecond) {
			var err error
			c, err = d.Dial("tcp", dst)
			if !errors.Is(err, syscall.EADDRINUSE) || time.Now().After(deadline) {
				return err
			}
		}
	})
	return c, err
}

func dialFrom(t *testing.T, ns, src string, port int, dst string) net.Conn {
	t.Helper()
	c, err := tryDialFrom(ns, src, port, dst)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// totalRetrans returns the segments c retransmitted (its SYN included).
func totalRetrans(t *testing.T, c net.Conn) uint32 {
	t.Helper()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var info *unix.TCPInfo
	if err := rc.Control(func(fd uintptr) { info, err = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO) }); err != nil {
		t.Fatal(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return info.Total_retrans
}

// synRetrans returns namespace ns's count of retransmitted SYNs (TcpExt TCPSynRetrans).
func synRetrans(t *testing.T, ns string) uint64 {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns, "cat", "/proc/net/netstat").Output()
	if err != nil {
		t.Fatalf("netstat of %s: %v", ns, err)
	}
	var names []string
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || f[0] != "TcpExt:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i, name := range names {
			if name == "TCPSynRetrans" && i < len(f) {
				v, _ := strconv.ParseUint(f[i], 10, 64)
				return v
			}
		}
	}
	t.Fatalf("no TcpExt TCPSynRetrans in %s's /proc/net/netstat", ns)
	return 0
}

// eventDrops returns the messages the agent's event socket (NETLINK_NETFILTER, conntrack
// groups) dropped, from /proc/net/netlink in the lab's namespace.
func eventDrops(t *testing.T, l *lab) uint64 {
	t.Helper()
	out, err := exec.Command(l.ip, "netns", "exec", l.b, "cat", "/proc/net/netlink").Output()
	if err != nil {
		t.Fatalf("/proc/net/netlink: %v", err)
	}
	// sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) >= 10 && f[1] == strconv.Itoa(unix.NETLINK_NETFILTER) && f[3] == "00000007" {
			v, _ := strconv.ParseUint(f[8], 10, 64)
			return v
		}
	}
	t.Fatal("no conntrack event socket in /proc/net/netlink")
	return 0
}
