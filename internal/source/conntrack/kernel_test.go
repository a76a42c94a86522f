package conntrack

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netledger/netledger/internal/export/ctcsv"
	"github.com/netledger/netledger/internal/testenv"
)

// The kernel is the oracle: two namespaces joined by a veth pair, conntrack active in B (an
// nft rule), the agent listening in B; TCP and UDP traffic in both directions; the accounted
// packets and bytes per group must equal what `conntrack -L` reports.

var nsSeq atomic.Int32

type lab struct {
	t      *testing.T
	a, b   string // namespace names
	ip     string
	ct     string
	agent  *Agent
	mu     sync.Mutex
	rows   []ctcsv.Row
	cancel context.CancelFunc
	done   chan error
}

func sh(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func newLab(t *testing.T, cfg Config) *lab {
	testenv.RequireRoot(t)
	l := &lab{t: t, ip: testenv.Command(t, "ip"), ct: testenv.Command(t, "conntrack")}
	nft := testenv.Command(t, "nft")
	n := nsSeq.Add(1)
	l.a = fmt.Sprintf("nlct%d-%da", os.Getpid(), n)
	l.b = fmt.Sprintf("nlct%d-%db", os.Getpid(), n)
	for _, ns := range []string{l.a, l.b} {
		sh(t, l.ip, "netns", "add", ns)
		t.Cleanup(func() { exec.Command(l.ip, "netns", "del", ns).Run() })
		sh(t, l.ip, "-n", ns, "link", "set", "lo", "up")
	}
	va, vb := fmt.Sprintf("ct%da", n), fmt.Sprintf("ct%db", n)
	sh(t, l.ip, "link", "add", va, "netns", l.a, "type", "veth", "peer", "name", vb, "netns", l.b)
	for _, c := range [][]string{
		{l.a, "addr", "add", "10.32.5.2/8", "dev", va},
		{l.a, "addr", "add", "10.48.5.3/8", "dev", va},
		{l.a, "addr", "add", "fd00::a:1/64", "dev", va, "nodad"},
		{l.b, "addr", "add", "10.32.7.2/8", "dev", vb},
		{l.b, "addr", "add", "fd00::b:1/64", "dev", vb, "nodad"},
		{l.a, "link", "set", va, "up"},
		{l.b, "link", "set", vb, "up"},
	} {
		sh(t, l.ip, append([]string{"-n", c[0]}, c[1:]...)...)
	}
	rules := "add table inet nlct\nadd chain inet nlct in { type filter hook input priority 0; }\nadd rule inet nlct in ct state new counter\n"
	cmd := exec.Command(l.ip, "netns", "exec", l.b, nft, "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v: %s", err, out)
	}

	cfg.NetNS = "/run/netns/" + l.b
	a, err := New(cfg, Deps{Rows: func(_ time.Time, rows []ctcsv.Row) error {
		l.mu.Lock()
		l.rows = append(l.rows, rows...)
		l.mu.Unlock()
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	l.agent = a
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel, l.done = cancel, make(chan error, 1)
	go func() { l.done <- a.Run(ctx) }()
	t.Cleanup(l.stop)
	select {
	case <-a.Ready():
	case err := <-l.done:
		t.Fatalf("agent: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("agent not ready")
	}
	return l
}

func (l *lab) stop() {
	if l.cancel != nil {
		l.cancel()
		<-l.done
		l.cancel = nil
	}
}

// settle waits until no TCP flow of the kernel's table can still change: each one is
// ESTABLISHED (held open by the test, idle) or fully closed (TIME_WAIT, CLOSE). A server
// goroutine closes its side when it gets round to it, so its FIN and the last ACK can cross
// the veth well after the client's Close returned — on a loaded machine after any fixed
// sleep. Reading the kernel's counters or ending an interval before then let the counters
// move under the test: accounted ≠ kernel, or an "idle" interval with rows. The deadline
// only bounds a broken test.
func (l *lab) settle() {
	l.t.Helper()
	var busy string
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		busy = ""
		for _, fam := range []string{"ipv4", "ipv6"} {
			out, err := exec.Command(l.ip, "netns", "exec", l.b, l.ct, "-L", "-f", fam, "-o", "extended").Output()
			if err != nil {
				l.t.Fatalf("conntrack -L: %v", err)
			}
			for line := range strings.Lines(string(out)) {
				f := strings.Fields(line)
				if len(f) < 6 || f[2] != "tcp" {
					continue
				}
				switch f[5] {
				case "ESTABLISHED", "TIME_WAIT", "CLOSE":
				default:
					busy = line
				}
			}
		}
		if busy == "" {
			return
		}
	}
	l.t.Fatalf("kernel's TCP flows still changing after 60 s: %s", busy)
}

// flush makes the agent end an interval now, once the kernel's flows have settled, and
// returns that interval's rows.
func (l *lab) flush() []ctcsv.Row {
	l.t.Helper()
	l.settle()
	time.Sleep(150 * time.Millisecond) // let queued events arrive
	l.mu.Lock()
	n := len(l.rows)
	l.mu.Unlock()
	if err := l.agent.Flush(context.Background()); err != nil {
		l.t.Fatal(err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]ctcsv.Row(nil), l.rows[n:]...)
}

// in runs fn on a thread inside namespace ns; sockets it creates live there.
func in(t testing.TB, ns string, fn func() error) { t.Helper(); testenv.InNetNS(t, ns, fn) }

// serveTCP accepts connections in ns on addr and serves each with serve, which closes it.
func serveTCP(t *testing.T, ns, addr string, serve func(net.Conn)) {
	var ln net.Listener
	in(t, ns, func() (err error) { ln, err = net.Listen("tcp", addr); return })
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serve(c)
		}
	}()
}

// tcpServer accepts connections in ns on addr: each reads req bytes then answers resp bytes.
func tcpServer(t *testing.T, ns, addr string, req, resp int) {
	serveTCP(t, ns, addr, func(c net.Conn) {
		defer c.Close()
		buf := make([]byte, 4096)
		for {
			if _, err := io.ReadFull(c, buf[:req]); err != nil {
				return
			}
			if _, err := c.Write(make([]byte, resp)); err != nil {
				return
			}
		}
	})
}

// udpServer answers every datagram in ns with resp bytes.
func udpServer(t *testing.T, ns, addr string, resp int) {
	var pc net.PacketConn
	in(t, ns, func() (err error) { pc, err = net.ListenPacket("udp", addr); return })
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 65536)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(make([]byte, resp), from)
		}
	}()
}

// dialTCP opens a TCP connection from ns (source address src) to dst. The timeout leaves room
// for SYN retransmissions (1 s, 3 s, 7 s… after the first): with the event socket overrun on
// purpose and a loaded machine, 5 s was not enough (TestKernelEventLoss: i/o timeouts, and
// the kernel then had fewer flows than the test opened).
func dialTCP(t *testing.T, ns, src, dst string) net.Conn {
	var c net.Conn
	in(t, ns, func() (err error) {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 60 * time.Second}
		c, err = d.Dial("tcp", dst)
		return
	})
	return c
}

// exchange sends rounds requests of req bytes on c and reads resp bytes after each.
func exchange(t *testing.T, c net.Conn, rounds, req, resp int) {
	t.Helper()
	buf := make([]byte, resp)
	for range rounds {
		if _, err := c.Write(make([]byte, req)); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatal(err)
		}
	}
}

func udpExchange(t *testing.T, ns, src, dst string, n, req, resp int) {
	t.Helper()
	var c net.Conn
	in(t, ns, func() (err error) {
		d := net.Dialer{LocalAddr: &net.UDPAddr{IP: net.ParseIP(src)}}
		c, err = d.Dial("udp", dst)
		return
	})
	defer c.Close()
	buf := make([]byte, resp+1)
	sent, got := 0, 0
	for range n {
		// UDP has no retransmission: a datagram the kernel dropped (as it did the SYNs of
		// TestKernelEventLoss on a loaded machine) is sent again, as a client would; the
		// kernel's counters, the oracle, count what went through.
		c.Write(make([]byte, req))
		sent++
		for deadline := time.Now().Add(60 * time.Second); ; {
			c.SetReadDeadline(time.Now().Add(time.Second))
			_, err := c.Read(buf)
			if err == nil {
				got++
				break
			}
			if !errors.Is(err, os.ErrDeadlineExceeded) || time.Now().After(deadline) {
				t.Fatal(err)
			}
			c.Write(make([]byte, req))
			sent++
		}
	}
	// After a resend, take the answers still on their way, so that none moves the kernel's
	// counters after the test read them.
	for ; got < sent; got++ {
		c.SetReadDeadline(time.Now().Add(time.Second))
		if _, err := c.Read(buf); err != nil {
			break
		}
	}
}

// totals are the accounted (or the kernel's) sums per key.
type totals map[ctcsv.Key]ctcsv.Row

func (s totals) add(r ctcsv.Row) {
	k := r.Key()
	cur := s[k]
	cur.SrcPackets += r.SrcPackets
	cur.DstPackets += r.DstPackets
	cur.SrcBytes += r.SrcBytes
	cur.DstBytes += r.DstBytes
	cur.Connections += r.Connections
	s[k] = cur
}

// kernelTotals parses `conntrack -L -o extended` in ns (IPv4 and IPv6) and sums packets and
// bytes per key, once the flows have settled; group maps an address to its expected group
// (written out by the test, not computed by the code under test).
func (l *lab) kernelTotals(group map[string]string, port func(proto uint8, dport uint16) int32) (totals, int) {
	l.t.Helper()
	l.settle()
	tot := totals{}
	flows := 0
	for _, fam := range []string{"ipv4", "ipv6"} {
		out, err := exec.Command(l.ip, "netns", "exec", l.b, l.ct, "-L", "-f", fam, "-o", "extended").Output()
		if err != nil {
			l.t.Fatalf("conntrack -L: %v", err)
		}
		sc := bufio.NewScanner(strings.NewReader(string(out)))
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 6 || (fields[0] != "ipv4" && fields[0] != "ipv6") {
				continue
			}
			proto, _ := strconv.Atoi(fields[3])
			if proto == 1 || proto == 58 {
				continue
			}
			kv := map[string][]string{}
			for _, f := range fields {
				if k, v, ok := strings.Cut(f, "="); ok {
					kv[k] = append(kv[k], v)
				}
			}
			num := func(k string, i int) uint64 {
				if len(kv[k]) <= i {
					l.t.Fatalf("conntrack -L line without %s: %s", k, sc.Text())
				}
				v, _ := strconv.ParseUint(kv[k][i], 10, 64)
				return v
			}
			src, dst := group[kv["src"][0]], group[kv["dst"][0]]
			if src == "" || dst == "" {
				l.t.Fatalf("unexpected flow in the kernel table: %s", sc.Text())
			}
			dport := uint16(num("dport", 0))
			var r ctcsv.Row
			r.Proto = uint8(proto)
			r.Src, r.Dst = netip.MustParseAddr(src), netip.MustParseAddr(dst)
			r.Port = port(uint8(proto), dport)
			r.SrcPackets, r.SrcBytes = num("packets", 0), num("bytes", 0)
			r.DstPackets, r.DstBytes = num("packets", 1), num("bytes", 1)
			if proto == 6 {
				r.Connections = 1
			}
			tot.add(r)
			flows++
		}
	}
	return tot, flows
}

// groups of the saarCTF example: 255.239.255.0 puts 10.32.5.x and 10.48.5.x in one team.
var saarGroups = map[string]string{
	"10.32.5.2": "10.32.5.0", "10.48.5.3": "10.32.5.0", "10.32.7.2": "10.32.7.0",
	"fd00::a:1": "fd00::a:0", "fd00::b:1": "fd00::b:0",
}

func saarConfig() Config {
	cfg := DefaultConfig()
	cfg.Interval = time.Hour // the test ends intervals itself
	cfg.SrcGroupMask = netip.MustParseAddr("255.239.255.0")
	cfg.DstGroupMask = netip.MustParseAddr("255.239.255.0")
	cfg.SrcGroupPrefix6, cfg.DstGroupPrefix6 = 112, 112
	cfg.Src = []netip.Prefix{netip.MustParsePrefix("10.32.0.0/11"), netip.MustParsePrefix("fd00::/16")}
	cfg.Dst = cfg.Src
	cfg.TrackOpen = true
	return cfg
}

func allPorts(_ uint8, p uint16) int32 { return int32(p) }

func sum(rows ...[]ctcsv.Row) totals {
	s := totals{}
	for _, rs := range rows {
		for _, r := range rs {
			s.add(r)
		}
	}
	return s
}

func compare(t *testing.T, got, want totals) {
	t.Helper()
	for k, w := range want {
		g := got[k]
		if g != w {
			t.Errorf("%s %s → %s port %d: accounted %+v, kernel %+v", ctcsv.ProtoName(k.Proto), k.Src, k.Dst, k.Port, g, w)
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("accounted a key the kernel does not have: %+v = %+v", k, g)
		}
	}
}

func openByKey(rows []ctcsv.Row) map[ctcsv.Key]uint64 {
	m := map[ctcsv.Key]uint64{}
	for _, r := range rows {
		if r.Open > 0 {
			m[r.Key()] += r.Open
		}
	}
	return m
}

func TestKernelOracle(t *testing.T) {
	l := newLab(t, saarConfig())
	tcpServer(t, l.b, "10.32.7.2:9000", 100, 1000)
	tcpServer(t, l.b, "[fd00::b:1]:9000", 100, 1000)
	tcpServer(t, l.a, "10.32.5.2:9100", 70, 30)
	udpServer(t, l.b, "10.32.7.2:9001", 200)

	// A long-lived connection, open across intervals.
	long := dialTCP(t, l.a, "10.32.5.2", "10.32.7.2:9000")
	exchange(t, long, 3, 100, 1000)
	// Short connections from both addresses of team 5 (one group), IPv6, UDP, and one
	// opened by B towards A.
	for _, src := range []string{"10.32.5.2", "10.32.5.2", "10.48.5.3"} {
		c := dialTCP(t, l.a, src, "10.32.7.2:9000")
		exchange(t, c, 2, 100, 1000)
		c.Close()
	}
	c6 := dialTCP(t, l.a, "fd00::a:1", "[fd00::b:1]:9000")
	exchange(t, c6, 4, 100, 1000)
	c6.Close()
	udpExchange(t, l.a, "10.48.5.3", "10.32.7.2:9001", 5, 50, 200)
	rev := dialTCP(t, l.b, "10.32.7.2", "10.32.5.2:9100")
	exchange(t, rev, 3, 70, 30)

	first := l.flush()
	team5, team7 := netip.MustParseAddr("10.32.5.0"), netip.MustParseAddr("10.32.7.0")
	wantOpen := map[ctcsv.Key]uint64{
		{Proto: 6, Port: 9000, Src: team5, Dst: team7}: 1, // the long-lived one
		{Proto: 6, Port: 9100, Src: team7, Dst: team5}: 1, // B → A, still open
	}
	if got := openByKey(first); fmt.Sprint(got) != fmt.Sprint(wantOpen) {
		t.Errorf("open connections after interval 1 = %v, want %v", got, wantOpen)
	}

	exchange(t, long, 2, 100, 1000)
	long.Close()
	rev.Close()
	want, n := l.kernelTotals(saarGroups, allPorts)
	if n != 7 {
		t.Errorf("kernel has %d flows, want 7", n)
	}
	second := l.flush()
	compare(t, sum(first, second), want)
	if got := openByKey(second); len(got) != 0 {
		t.Errorf("open connections at the end = %v, want none", got)
	}
	if k := (ctcsv.Key{Proto: 6, Port: 9000, Src: team5, Dst: team7}); sum(first, second)[k].Connections != 4 {
		t.Errorf("team 5 → team 7 tcp/9000 closed connections = %d, want 4", sum(first, second)[k].Connections)
	}
	// A third interval with no traffic has nothing to say.
	if third := l.flush(); len(third) != 0 {
		t.Errorf("idle interval rows = %v, want none", third)
	}
}

// TestKernelEventLoss forces the event socket's buffer tiny and opens a burst of short
// connections: events are lost (overruns counted), and the totals still equal the kernel's,
// also after the kernel destroys the flows (no double counting) — with and without
// reliable DESTROY events.
func TestKernelEventLoss(t *testing.T) { eachEventMode(t, testEventLoss) }

// eachEventMode runs test as subtests without and with reliable DESTROY events.
func eachEventMode(t *testing.T, test func(t *testing.T, reliable bool)) {
	for _, reliable := range []bool{false, true} {
		t.Run(map[bool]string{false: "lossy", true: "reliable"}[reliable], func(t *testing.T) { test(t, reliable) })
	}
}

func testEventLoss(t *testing.T, reliable bool) {
	cfg := saarConfig()
	cfg.ReceiveBuffer = 1 // the kernel's minimum
	cfg.ReliableEvents = reliable
	l := newLab(t, cfg)
	tcpServer(t, l.b, "10.32.7.2:9000", 100, 1000)
	udpServer(t, l.b, "10.32.7.2:9001", 200)

	const burst = 150
	var wg sync.WaitGroup
	for i := range burst {
		wg.Add(1)
		go func() {
			defer wg.Done()
			src := []string{"10.32.5.2", "10.48.5.3"}[i%2]
			c := dialTCP(t, l.a, src, "10.32.7.2:9000")
			exchange(t, c, 1+i%3, 100, 1000)
			c.Close()
			if i%5 == 0 {
				udpExchange(t, l.a, src, "10.32.7.2:9001", 2, 40, 200)
			}
		}()
	}
	wg.Wait()
	want, n := l.kernelTotals(saarGroups, allPorts)
	if n != burst+burst/5 {
		t.Errorf("kernel has %d flows, want %d", n, burst+burst/5)
	}
	first := l.flush()
	compare(t, sum(first), want)
	if l.agent.Overruns() == 0 {
		t.Errorf("no overrun with a tiny receive buffer: the test does not lose events")
	}
	st := l.agent.Stats()
	t.Logf("overruns %d, stats %+v", l.agent.Overruns(), st)

	// The kernel destroys every flow: their DESTROY events carry counters already
	// accounted, so the next interval must have nothing but nothing more.
	sh(t, l.ip, "netns", "exec", l.b, l.ct, "-D", "-f", "ipv4")
	time.Sleep(300 * time.Millisecond)
	if rows := l.flush(); len(rows) != 0 {
		t.Errorf("after the flows were destroyed, rows = %v, want none", rows)
	}
}
