package tcpinfo

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netledger/netledger/internal/record"
	"github.com/netledger/netledger/internal/testenv"
)

// BenchmarkDestroy replays the recorded destroy notifications through the production path
// (decode, filter, delta accounting, record) under the tracker lock; one op is one notification.
func BenchmarkDestroy(b *testing.B) {
	dgs := readFixture(b)
	s, err := New(Config{Ports: []uint16{}}, Deps{Sink: func([]record.Record) error { return nil }})
	if err != nil {
		b.Fatal(err)
	}
	batch := make([]record.Record, 0, batchSize)
	var sock Socket
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		dg := dgs[i%len(dgs)]
		s.mu.Lock()
		batch = s.handleDestroys(dg, int64(i), &sock, batch)
		s.mu.Unlock()
		if len(batch) >= cap(batch)-8 {
			batch = s.flush(batch)
		}
	}
	b.StopTimer()
	s.flush(batch)
	if s.decodeErrors.Load() != 0 || (b.N >= len(dgs) && s.records.Load() == 0) {
		b.Fatalf("decode errors %d, records %d", s.decodeErrors.Load(), s.records.Load())
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "notifications/s")
}

// BenchmarkDump100k measures one interval dump (both families, decode, delta accounting,
// records to a no-op sink) of a server namespace holding 100,001 established sockets, whose
// clients live in a second namespace joined by a veth pair, dumped in one partition and in
// two (two netlink sockets at once, see plan). The load is bounded and built before the timer:
// the hard RLIMIT_NOFILE here is 20,000 (no CAP_SYS_RESOURCE), so 11 helper processes (this
// test binary running TestLoadHelper) each listen on their own port in the server namespace and
// open 9,091 connections to it from the client namespace; they close them all and exit when the
// benchmark closes their stdin.
//
// The client namespace has its own TCP established hash table (tcp_child_ehash_entries), so
// that the server namespace's dumps walk the host's table holding the server's 100,001 sockets
// as on a real server, whose clients are on other hosts, not also the 100,001 client sockets
// (which inet_diag walks and skips, ≈ 0.3 µs each here). NETLEDGER_TCPINFO_SHARED_TABLE=1
// keeps the clients in the host's table, as before.
func BenchmarkDump100k(b *testing.B) {
	const helpers, perHelper = 11, 9091
	ns := newNetNS(b)
	var cli string
	if os.Getenv("NETLEDGER_TCPINFO_SHARED_TABLE") == "1" {
		cli = newNetNS(b)
	} else {
		cli = newNetNSOwnTable(b, 131072)
	}
	ip := testenv.Command(b, "ip")
	run(b, ip, "netns", "exec", cli, "sysctl", "-qw", "net.ipv4.ip_local_port_range=1024 65000")
	vs, vc := fmt.Sprintf("vb%ds", os.Getpid()), fmt.Sprintf("vb%dc", os.Getpid())
	run(b, ip, "link", "add", vs, "netns", ns, "type", "veth", "peer", "name", vc, "netns", cli)
	run(b, ip, "-n", ns, "addr", "add", "10.99.0.1/24", "dev", vs)
	run(b, ip, "-n", cli, "addr", "add", "10.99.0.2/24", "dev", vc)
	run(b, ip, "-n", ns, "link", "set", vs, "up")
	run(b, ip, "-n", cli, "link", "set", vc, "up")
	var ports []uint16
	var outs []*bufio.Reader
	for h := 0; h < helpers; h++ {
		port := 100 + h // below the widened ephemeral range, which starts at 1024
		ports = append(ports, uint16(port))
		_, out := startNetnsHelper(b, ip, ns, "TestLoadHelper", fmt.Sprintf("NETLEDGER_TCPINFO_LOAD=%d:%d:%s", port, perHelper, cli), nil)
		outs = append(outs, out)
	}
	for h, out := range outs {
		line, err := out.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "ready") {
			rest, _ := io.ReadAll(out)
			b.Fatalf("load helper %d: %q%s, %v", h, line, rest, err)
		}
	}
	for _, parts := range []int{1, 2} {
		b.Run(fmt.Sprintf("netlink/partitions=%d", parts), func(b *testing.B) {
			benchDump(b, ns, ports, helpers*perHelper, parts)
		})
	}
	b.Run("bpf", func(b *testing.B) {
		benchDumpBPF(b, ns, ports, helpers*perHelper, false)
	})
	// The same, reading in the dump's goroutine (as with GOMAXPROCS 1).
	b.Run("bpf-serial", func(b *testing.B) {
		benchDumpBPF(b, ns, ports, helpers*perHelper, true)
	})
	// Both, alternated in one process: on a shared machine, sequential runs see other loads.
	b.Run("bpf-alternated", func(b *testing.B) {
		benchPipeVsSerial(b, ns, ports, helpers*perHelper)
	})
}

// benchPipeVsSerial runs b.N rounds of three dumps with the overlapped reader and three read in
// the dump's goroutine, on two sources over the same sockets, and reports for each the mean and
// the fastest dump and the mean CPU time.
func benchPipeVsSerial(b *testing.B, ns string, ports []uint16, conns int) {
	type side struct {
		name            string
		dump            func() time.Duration
		wall, best, cpu time.Duration
	}
	var sides []*side
	for _, serial := range []bool{false, true} {
		s, err := New(Config{Interval: time.Second, Ports: ports, NetNS: ns, DumpMethod: DumpBPF},
			Deps{Sink: func([]record.Record) error { return nil }})
		if err != nil {
			b.Fatal(err)
		}
		d := newDumper(s, nil)
		d.iter = openTestIter(b, ns, ports)
		d.iter.read = readPipe
		if serial {
			d.iter.read = readSerial
		}
		sd := &side{name: "pipe", dump: timedDump(b, d, conns), best: 1 << 62}
		if serial {
			sd.name = "serial"
		}
		sd.dump() // the first dump sees every socket new
		sides = append(sides, sd)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, sd := range sides {
			var ru0, ru1 unix.Rusage
			unix.Getrusage(unix.RUSAGE_SELF, &ru0)
			for range 3 {
				w := sd.dump()
				sd.wall += w
				sd.best = min(sd.best, w)
			}
			unix.Getrusage(unix.RUSAGE_SELF, &ru1)
			sd.cpu += time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
		}
	}
	b.StopTimer()
	for _, sd := range sides {
		n := float64(3 * b.N)
		b.ReportMetric(float64(sd.wall.Microseconds())/1000/n, sd.name+"-ms/dump")
		b.ReportMetric(float64(sd.best.Microseconds())/1000, sd.name+"-best-ms/dump")
		b.ReportMetric(float64(sd.cpu.Microseconds())/1000/n, sd.name+"-cpu-ms/dump")
	}
}

// benchDumpBPF is benchDump with the BPF socket iterator: one walk, decode, delta accounting,
// read as the source reads (readChooser) or, with serial, in the dump's goroutine.
func benchDumpBPF(b *testing.B, ns string, ports []uint16, conns int, serial bool) {
	var records int
	s, err := New(Config{Interval: time.Second, Ports: ports, NetNS: ns, DumpMethod: DumpBPF},
		Deps{Sink: func(r []record.Record) error { records += len(r); return nil }})
	if err != nil {
		b.Fatal(err)
	}
	d := newDumper(s, nil)
	d.iter = openTestIter(b, ns, ports)
	if serial {
		d.iter.read = readSerial
	}
	dumps := timedDump(b, d, conns)
	best, cpu, sys := measureDumps(b, dumps)
	reportDumps(b, best, cpu, sys)
	if records < conns {
		b.Errorf("%d records, want ≥ %d (the first dump accounts every server socket)", records, conns)
	}
	b.ReportMetric(float64(d.n), "sockets/dump")
	if serial {
		return
	}
	b.ReportMetric(float64(d.iter.piped)/float64(b.N), "piped/dump")
	d.iter.read = readSerial
	// The floor: the walk with the records read and dropped (kernel time and copies only).
	floor, floorCPU := bestOf3(func() {
		if err := d.iter.walk(func([]byte) {}); err != nil {
			b.Fatal(err)
		}
	})
	b.ReportMetric(float64(floor.Microseconds())/1000, "kernel-floor-ms")
	b.ReportMetric(float64(floorCPU.Microseconds())/1000, "kernel-floor-cpu-ms")
	// The kernel's walk alone: an iterator whose program returns at the port filter for every
	// socket (no socket listens on port 1).
	walker := openTestIter(b, ns, []uint16{1})
	walk, walkCPU := bestOf3(func() {
		if err := walker.walk(func([]byte) { b.Fatal("record from an iterator filtering every socket") }); err != nil {
			b.Fatal(err)
		}
	})
	b.ReportMetric(float64(walk.Microseconds())/1000, "walk-only-ms")
	b.ReportMetric(float64(walkCPU.Microseconds())/1000, "walk-only-cpu-ms")
}

// openTestIter loads the BPF socket iterator for namespace ns and the local ports, closed in
// t.Cleanup.
func openTestIter(t testing.TB, ns string, ports []uint16) *sockIter {
	t.Helper()
	return openTestIterWith(t, ns, dumpStates, ports, false)
}

// openTestIterWith is openTestIter for the states, and the cgroup ids with cgroup.
func openTestIterWith(t testing.TB, ns string, states uint32, ports []uint16, cgroup bool) *sockIter {
	t.Helper()
	fd, err := openNetNS(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	it, err := loadSockIter(states, ports, cgroup, fd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(it.close)
	return it
}

// measureDumps runs b.N dumps and returns the fastest one's wall time and the mean CPU time
// (user + system, the kernel's walk of the socket table included) and system time per dump.
// timedDump returns a function that runs one dump of d, checks that it saw the conns server
// sockets and returns its wall time.
func timedDump(b *testing.B, d *dumper, conns int) func() time.Duration {
	return func() time.Duration {
		start := time.Now()
		if err := d.run(); err != nil {
			b.Fatal(err)
		}
		if d.n != uint64(conns) {
			b.Fatalf("dump saw %d sockets, want the %d server sockets", d.n, conns)
		}
		return time.Since(start)
	}
}

func measureDumps(b *testing.B, dump func() time.Duration) (best, cpu, sys time.Duration) {
	var ru0, ru1 unix.Rusage
	b.ReportAllocs()
	b.ResetTimer()
	unix.Getrusage(unix.RUSAGE_SELF, &ru0)
	best = time.Duration(1 << 62)
	for i := 0; i < b.N; i++ {
		best = min(best, dump())
	}
	unix.Getrusage(unix.RUSAGE_SELF, &ru1)
	b.StopTimer()
	cpu = time.Duration(ru1.Utime.Nano()+ru1.Stime.Nano()-ru0.Utime.Nano()-ru0.Stime.Nano()) / time.Duration(b.N)
	sys = time.Duration(ru1.Stime.Nano()-ru0.Stime.Nano()) / time.Duration(b.N)
	return best, cpu, sys
}

// reportDumps reports measureDumps' figures. CPU time: on a shared machine the wall time also
// holds the time other processes had the cores. The fastest dump of the run: what a dump takes
// while the other processes leave the cores alone, the closest a shared machine comes to a
// quiet one.
func reportDumps(b *testing.B, best, cpu, sys time.Duration) {
	b.ReportMetric(float64(cpu.Microseconds())/1000, "cpu-ms/dump")
	b.ReportMetric(float64(sys.Microseconds())/1000, "sys-ms/dump")
	b.ReportMetric(float64(best.Microseconds())/1000, "best-ms/dump")
}

func benchDump(b *testing.B, ns string, ports []uint16, conns, parts int) {
	var records int
	s, err := New(Config{Interval: time.Second, Ports: ports, NetNS: ns, Partitions: parts, DumpMethod: DumpNetlink},
		Deps{Sink: func(r []record.Record) error { records += len(r); return nil }})
	if err != nil {
		b.Fatal(err)
	}
	d := newDumper(s, dialDumps(b, ns, parts))
	best, cpu, sys := measureDumps(b, timedDump(b, d, conns))
	reportDumps(b, best, cpu, sys)
	if records < conns {
		b.Errorf("%d records, want ≥ %d (the first dump accounts every server socket)", records, conns)
	}
	b.ReportMetric(float64(d.n), "sockets/dump")
	b.ReportMetric(float64(d.lastPl.partitions()), "partitions")
	// The floor: the same dump requests (the last dump's partitions, at once) with nothing done
	// with the messages (kernel time and copies only), best of 3.
	pl := d.lastPl
	floor, floorCPU := bestOf3(func() {
		var wg sync.WaitGroup
		for i, p := range d.parts[:pl.partitions()] {
			bc := d.bytecode
			if pl.partitions() > 1 {
				lo, hi := pl.bounds(i)
				bc = rangeBytecode(nil, pl.local, lo, hi, bc)
			}
			wg.Go(func() {
				p.seq++
				if err := p.c.dump(afUnspec, p.seq, dumpStates, p.req, bc, false, func([]byte) {}); err != nil {
					b.Error(err)
				}
			})
		}
		wg.Wait()
	})
	b.ReportMetric(float64(floor.Microseconds())/1000, "kernel-floor-ms")
	b.ReportMetric(float64(floorCPU.Microseconds())/1000, "kernel-floor-cpu-ms")
	if parts > 1 {
		return
	}
	// The request before: one SOCK_DIAG_BY_FAMILY dump per family, each walking the table.
	p := d.parts[0]
	floor, floorCPU = bestOf3(func() {
		for _, fam := range []uint8{afInet, afInet6} {
			p.seq++
			if err := p.c.dump(fam, p.seq, dumpStates, p.req, d.bytecode, false, func([]byte) {}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(floor.Microseconds())/1000, "per-family-floor-ms")
	b.ReportMetric(float64(floorCPU.Microseconds())/1000, "per-family-floor-cpu-ms")
	// The anchor: iproute2's `ss -ti` dumping the same sockets with their tcp_info (CPU time of
	// ss, user + system, best of 3).
	if ss, err := exec.LookPath("ss"); err == nil {
		best := time.Duration(1 << 62)
		for i := 0; i < 3; i++ {
			cmd := exec.Command(testenv.Command(b, "ip"), "netns", "exec", ns, ss, "-tinH", "state", "established")
			cmd.Stdout = io.Discard
			if err := cmd.Run(); err != nil {
				b.Fatal(err)
			}
			best = min(best, cmd.ProcessState.UserTime()+cmd.ProcessState.SystemTime())
		}
		b.ReportMetric(float64(best.Microseconds())/1000, "ss-cpu-ms")
	}
}

// dialDumps opens n sock_diag sockets in namespace ns, closed in b.Cleanup.
func dialDumps(t testing.TB, ns string, n int) []*conn {
	fd, err := openNetNS(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	var cs []*conn
	for i := 0; i < n; i++ {
		c, err := dialDiag(fd, recvBufSize)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.close() })
		cs = append(cs, c)
	}
	return cs
}

// bestOf3 returns the shortest wall time of three runs of fn and their mean CPU time (the
// process's user + system time).
func bestOf3(fn func()) (best, cpu time.Duration) {
	best = time.Duration(1 << 62)
	var ru0, ru1 unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru0)
	for i := 0; i < 3; i++ {
		start := time.Now()
		fn()
		best = min(best, time.Since(start))
	}
	unix.Getrusage(unix.RUSAGE_SELF, &ru1)
	return best, time.Duration(ru1.Utime.Nano()+ru1.Stime.Nano()-ru0.Utime.Nano()-ru0.Stime.Nano()) / 3
}

// TestLoadHelper is BenchmarkDump100k's load program, run in the server namespace with
// NETLEDGER_TCPINFO_LOAD=PORT:N:CLIENTNS: it listens on 10.99.0.1:PORT, opens N connections
// to it from namespace CLIENTNS, prints "ready", and closes everything when stdin closes.
func TestLoadHelper(t *testing.T) {
	spec := os.Getenv("NETLEDGER_TCPINFO_LOAD")
	if spec == "" {
		t.Skip("load helper of BenchmarkDump100k")
	}
	var port, n int
	f := strings.Split(spec, ":")
	if len(f) != 3 {
		t.Fatalf("NETLEDGER_TCPINFO_LOAD=%s", spec)
	}
	fmt.Sscan(f[0], &port)
	fmt.Sscan(f[1], &n)
	// No keep-alive probes (Go enables them every 15 s by default): 200,002 idle sockets would
	// send tens of thousands of probes and ACKs a second, softirq work charged to whatever runs,
	// the dump included. A real server's clients are on other hosts.
	lc := net.ListenConfig{KeepAlive: -1}
	dialer := net.Dialer{KeepAlive: -1}
	l, err := lc.Listen(context.Background(), "tcp", fmt.Sprintf("10.99.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var servers, clients []net.Conn
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			servers = append(servers, c)
			mu.Unlock()
		}
	})
	inNetNS(t, f[2], func() { // the client sockets live in the client namespace
		for i := 0; i < n; i++ {
			c, err := dialer.Dial("tcp", l.Addr().String())
			if err != nil {
				t.Errorf("connection %d: %v", i, err)
				return
			}
			clients = append(clients, c)
			// Keep the accept queue short: on a loaded machine the accepting goroutine can
			// fall behind until the backlog overflows and SYNs are dropped.
			for {
				mu.Lock()
				k := len(servers)
				mu.Unlock()
				if k+1024 > i {
					break
				}
				time.Sleep(time.Millisecond)
			}
		}
	})
	if t.Failed() {
		return
	}
	for {
		mu.Lock()
		k := len(servers)
		mu.Unlock()
		if k == n {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	l.Close()
	wg.Wait()
	for _, c := range append(clients, servers...) {
		c.Close()
	}
}
