package tcpinfo

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netledger/netledger/internal/testenv"
)

// cgroup2Root returns where the cgroup v2 hierarchy is mounted.
func cgroup2Root(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[2] == "cgroup2" {
			return f[1]
		}
	}
	testenv.Absent(t, "no cgroup v2 hierarchy mounted")
	return ""
}

// cgHelper is a server process (this test binary running TestCgroupHelper) in namespace ns,
// started in the cgroup whose directory fd is cg (-1: the test's own).
type cgHelper struct {
	in  io.WriteCloser
	out *bufio.Reader
}

// startNetnsHelper runs this test binary's test (a helper process) in network namespace ns
// with env added and attr as its process attributes (nil: none), and returns its stdin and
// stdout; it is stopped by closing its stdin when the test ends.
func startNetnsHelper(tb testing.TB, ip, ns, test, env string, attr *syscall.SysProcAttr) (io.WriteCloser, *bufio.Reader) {
	tb.Helper()
	cmd := exec.Command(ip, "netns", "exec", ns, os.Args[0], "-test.run=^"+test+"$")
	cmd.Env = append(os.Environ(), env)
	cmd.SysProcAttr = attr
	in, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { in.Close(); cmd.Wait() })
	return in, bufio.NewReader(out)
}

func startCgHelper(t *testing.T, ns string, port int, cg int) *cgHelper {
	t.Helper()
	var attr *syscall.SysProcAttr
	if cg >= 0 {
		attr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: cg}
	}
	in, out := startNetnsHelper(t, testenv.Command(t, "ip"), ns, "TestCgroupHelper",
		fmt.Sprintf("NETLEDGER_TCPINFO_CGHELPER=%d", port), attr)
	h := &cgHelper{in: in, out: out}
	h.expect(t)
	return h
}

// do sends a command and waits for the helper to have done it.
func (h *cgHelper) do(t *testing.T, cmd string) {
	t.Helper()
	fmt.Fprintln(h.in, cmd)
	h.expect(t)
}

func (h *cgHelper) expect(t *testing.T) {
	t.Helper()
	line, err := h.out.ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ok" {
		rest, _ := io.ReadAll(h.out)
		t.Fatalf("cgroup helper: %q%s, %v", line, rest, err)
	}
}

// TestCgroupFilter runs two identical servers in one namespace, one in a fresh cgroup: with
// the source's cgroup filter on that cgroup, connections to it are accounted — short ones from
// their destroy notifications (matched by their listener, dumped before they opened), long
// ones from dumps (by their own cgroup id) — and those to the other server are not.
func TestCgroupFilter(t *testing.T) {
	ns := newNetNS(t)
	dir := filepath.Join(cgroup2Root(t), fmt.Sprintf("nltcpi%d-cg", os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(dir) }) // after the helpers exited (cleanups run last-in first-out)
	cg, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(cg)
	const inPort, outPort = 131, 132
	in := startCgHelper(t, ns, inPort, cg)
	out := startCgHelper(t, ns, outPort, -1)

	src, col := startSource(t, Config{Interval: 200 * time.Millisecond, Ports: []uint16{inPort, outPort}, NetNS: ns, Cgroup: dir})
	// count returns the records per server port: connections closed, open connections seen.
	count := func() (closed, open map[uint16]int) {
		closed, open = map[uint16]int{}, map[uint16]int{}
		for _, r := range col.snapshot() {
			closed[r.ServerPort] += int(r.ConnsClosed)
			open[r.ServerPort] += int(r.ConnsOpen)
		}
		return
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(60 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				closed, open := count()
				t.Fatalf("%s: closed %v, open %v, stats %+v", what, closed, open, src.Stats())
			}
		}
	}
	// The listeners are in a dump before any connection opens.
	waitFor("first dumps", func() bool { return src.Stats().Dumps >= 2 })

	out.do(t, "short 5")
	in.do(t, "short 5")
	waitFor("short connections to the cgroup's server", func() bool { c, _ := count(); return c[inPort] == 5 })
	out.do(t, "hold 3")
	in.do(t, "hold 3")
	waitFor("long connections to the cgroup's server", func() bool { _, o := count(); return o[inPort] >= 3 })
	in.do(t, "close")
	out.do(t, "close")
	waitFor("long connections closed", func() bool { c, _ := count(); return c[inPort] == 8 })
	// The other server's connections closed before the cgroup server's last ones: a record of
	// theirs would be here by now.
	closed, open := count()
	if closed[outPort] != 0 || open[outPort] != 0 {
		t.Errorf("records for the server outside the cgroup: closed %d, open %d", closed[outPort], open[outPort])
	}
	if src.Stats().Filtered == 0 {
		t.Error("nothing filtered")
	}
	for _, r := range col.snapshot() {
		if r.ServerPort != inPort {
			t.Errorf("record for port %d: %+v", r.ServerPort, r)
		}
	}
}

// TestCgroupHelper is TestCgroupFilter's server process: it listens on 127.0.0.1:PORT and
// answers commands on stdin with "ok": "short N" (N connections to itself that receive 1000
// bytes and close), "hold N" (N connections kept open), "close" (close them).
func TestCgroupHelper(t *testing.T) {
	spec := os.Getenv("NETLEDGER_TCPINFO_CGHELPER")
	if spec == "" {
		t.Skip("helper of TestCgroupFilter")
	}
	l, err := net.Listen("tcp", "127.0.0.1:"+spec)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	// pair opens a connection to the listener; the server end has sent 1000 bytes.
	pair := func() (client, server net.Conn) {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		s := <-accepted
		s.Write(make([]byte, 1000))
		return c, s
	}
	fmt.Println("ok")
	var held []net.Conn
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		var n int
		f := strings.Fields(sc.Text())
		if len(f) > 1 {
			fmt.Sscan(f[1], &n)
		}
		for range n {
			c, s := pair()
			switch f[0] {
			case "short":
				s.Close()
				io.Copy(io.Discard, c)
				c.Close()
			case "hold":
				io.ReadFull(c, make([]byte, 1000))
				held = append(held, c, s)
			}
		}
		if f[0] == "close" {
			for _, c := range held {
				c.Close()
			}
			held = nil
		}
		fmt.Println("ok")
	}
}
