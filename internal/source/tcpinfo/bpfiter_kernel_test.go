package tcpinfo

import (
	"bytes"
	"cmp"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/netledger/netledger/internal/record"
	"github.com/netledger/netledger/internal/testenv"
)

// TestBPFMatchesNetlink opens idle connections with data behind them (IPv4, IPv6 and
// IPv4-mapped IPv6, both ends in one namespace) and checks that the BPF iterator and the
// netlink sock_diag dump see the same sockets with the same counters, and that dumpers on
// either produce the same records. Nothing moves on an idle connection; should a counter move
// all the same (a late ACK), the comparison is taken again.
func TestBPFMatchesNetlink(t *testing.T) {
	ns := newNetNS(t)
	var conns []net.Conn
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	const perListener = 12
	inNetNS(t, ns, func() {
		for li, addr := range []string{"127.0.0.1:8080", "[::1]:8080", "[::]:8081", "127.0.0.1:9090"} {
			l, err := net.Listen("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			dial := l.Addr().String()
			if addr == "[::]:8081" {
				dial = "127.0.0.1:8081" // accepted as an IPv4-mapped IPv6 socket
			}
			for i := range perListener {
				in, out := 100+997*i, 1000+(li*perListener+i)*7919%300_000
				c, s := dialAccept(t, l, dial)
				conns = append(conns, c, s)
				go func() {
					io.ReadFull(s, make([]byte, in))
					s.Write(make([]byte, out))
				}()
				if _, err := c.Write(make([]byte, in)); err != nil {
					t.Fatal(err)
				}
				if _, err := io.ReadFull(c, make([]byte, out)); err != nil {
					t.Fatal(err)
				}
			}
		}
	})
	time.Sleep(300 * time.Millisecond) // the last delayed ACKs
	it := openTestIterWith(t, ns, dumpStates, nil, true)
	nl := dialDumps(t, ns, 1)[0]
	bpfSockets := func() map[uint64]Socket {
		m := map[uint64]Socket{}
		err := it.walk(func(rec []byte) {
			var s Socket
			if err := decodeRec(rec, &s, true); err != nil {
				t.Fatal(err)
			}
			m[s.Cookie] = s
		})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	seq := uint32(0)
	netlinkSockets := func() map[uint64]Socket {
		m := map[uint64]Socket{}
		seq++
		err := nl.dump(afUnspec, seq, dumpStates, nil, nil, false, func(msg []byte) {
			var s Socket
			if err := decodeSocket(msg, &s); err != nil {
				t.Fatal(err)
			}
			s.InfoLen = 0 // the iterator sends no tcp_info
			m[s.Cookie] = s
		})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	var diffs []string
	for attempt := 0; attempt < 3; attempt++ {
		b, n := bpfSockets(), netlinkSockets()
		diffs = diffs[:0]
		for c, ns := range n {
			bs, ok := b[c]
			switch {
			case !ok:
				diffs = append(diffs, fmt.Sprintf("cookie %d: netlink %+v, the iterator nothing", c, ns))
			case !ns.HaveCgroup:
				diffs = append(diffs, fmt.Sprintf("cookie %d: netlink sent no cgroup id", c))
			case bs != ns:
				diffs = append(diffs, fmt.Sprintf("cookie %d:\n  bpf     %+v\n  netlink %+v", c, bs, ns))
			}
		}
		for c, bs := range b {
			if _, ok := n[c]; !ok {
				diffs = append(diffs, fmt.Sprintf("cookie %d: the iterator %+v, netlink nothing", c, bs))
			}
		}
		if len(n) != len(conns) {
			t.Fatalf("netlink dumped %d sockets, want the %d connections' ends", len(n), len(conns))
		}
		if len(diffs) == 0 {
			break
		}
		t.Logf("attempt %d: %d differences", attempt, len(diffs))
	}
	for _, d := range diffs {
		t.Error(d)
	}

	// The same through the dumpers: records of the connections on the configured ports.
	records := func(method string) []record.Record {
		col := &collector{}
		s, err := New(Config{Interval: time.Second, NetNS: ns, Ports: []uint16{8080, 8081}, DumpMethod: method},
			Deps{Sink: col.sink})
		if err != nil {
			t.Fatal(err)
		}
		var d *dumper
		if method == DumpBPF {
			d = newDumper(s, nil)
			d.iter = openTestIter(t, ns, []uint16{8080, 8081})
		} else {
			d = newDumper(s, dialDumps(t, ns, 1))
		}
		if err := d.run(); err != nil {
			t.Fatal(err)
		}
		recs := col.snapshot()
		for i := range recs {
			recs[i].Time = 0
		}
		slices.SortFunc(recs, func(a, b record.Record) int {
			return cmp.Or(a.Client.Compare(b.Client), cmp.Compare(a.ClientPort, b.ClientPort),
				a.Server.Compare(b.Server), cmp.Compare(a.ServerPort, b.ServerPort))
		})
		return recs
	}
	for attempt := 0; ; attempt++ {
		b, n := records(DumpBPF), records(DumpNetlink)
		if len(n) != 3*perListener {
			t.Fatalf("netlink dumper: %d records, want %d", len(n), 3*perListener)
		}
		if slices.Equal(b, n) {
			break
		}
		if attempt == 2 {
			for i := range min(len(b), len(n)) {
				if b[i] != n[i] {
					t.Errorf("record %d:\n  bpf     %+v\n  netlink %+v", i, b[i], n[i])
				}
			}
			t.Fatalf("%d records from the iterator, %d from netlink, different", len(b), len(n))
		}
	}
}

// TestBPFOwnNamespace walks the process's own namespace (no netns configured: the iterator is
// created on any thread) and finds both ends of a connection on its port, and only them.
func TestBPFOwnNamespace(t *testing.T) {
	testenv.RequireRoot(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, s := dialAccept(t, l, "")
	defer c.Close()
	defer s.Close()
	srv, cli := l.Addr().(*net.TCPAddr).AddrPort(), c.LocalAddr().(*net.TCPAddr).AddrPort()
	it, err := loadSockIter(dumpStates, []uint16{srv.Port(), cli.Port()}, false, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer it.close()
	var got []tuple
	if err := it.walk(func(rec []byte) {
		var s Socket
		if err := decodeRec(rec, &s, false); err != nil {
			t.Fatal(err)
		}
		got = append(got, tuple{netip.AddrPortFrom(s.Local, s.LocalPort), netip.AddrPortFrom(s.Remote, s.RemotePort)})
	}); err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(got, func(a, b tuple) int { return cmp.Compare(a.local.Port(), b.local.Port()) })
	want := []tuple{{srv, cli}, {cli, srv}}
	slices.SortFunc(want, func(a, b tuple) int { return cmp.Compare(a.local.Port(), b.local.Port()) })
	if !slices.Equal(got, want) {
		t.Errorf("walk of the own namespace: %v, want %v", got, want)
	}
}

// TestBPFPipeMatchesSerial walks 1,600 idle sockets (800 connections, IPv4 and IPv6, 218 KB
// of records: several reads and several of the pipe's buffers) with the overlapped reader and
// in the walk's goroutine, and checks that both give the same records in the same order (the
// kernel walks its table in the same order when nothing changes; should a late ACK move a
// counter, the comparison is taken again).
func TestBPFPipeMatchesSerial(t *testing.T) {
	ns := newNetNS(t)
	var conns []net.Conn
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	inNetNS(t, ns, func() {
		for _, addr := range []string{"127.0.0.1:8080", "[::1]:8080"} {
			l, err := net.Listen("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			for range 400 {
				c, s := dialAccept(t, l, "")
				conns = append(conns, c, s)
			}
		}
	})
	time.Sleep(100 * time.Millisecond) // the last ACKs
	it := openTestIter(t, ns, nil)
	walk := func(pipe *recPipe) []byte {
		it.read, it.pipe = readSerial, pipe
		if pipe != nil {
			it.read = readPipe
		}
		var b []byte
		if err := it.walk(func(rec []byte) { b = append(b, rec...) }); err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, size := range []int{2 * seqBufSize, pipeChunkSize} {
		pipe := newRecPipe(pipeChunks, size)
		var serial, piped []byte
		for attempt := 0; attempt < 3; attempt++ {
			serial, piped = walk(nil), walk(pipe)
			if bytes.Equal(serial, piped) {
				break
			}
		}
		if len(serial) != len(conns)*tcpRecLen {
			t.Fatalf("serial walk: %d bytes, want %d records", len(serial), len(conns))
		}
		if !bytes.Equal(serial, piped) {
			t.Errorf("chunk %d: the overlapped walk gave %d bytes, other than the serial walk's %d", size, len(piped), len(serial))
		}
	}
}

// TestDumpsOverlappedCounted: a BPF dump read with the pipe is counted in DumpsOverlapped, a
// serial one is not, and both account the same sockets.
func TestDumpsOverlappedCounted(t *testing.T) {
	ns := newNetNS(t)
	inNetNS(t, ns, func() {
		l, err := net.Listen("tcp", "127.0.0.1:8080")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		c, s := dialAccept(t, l, "")
		t.Cleanup(func() { c.Close(); s.Close() })
	})
	src, err := New(Config{Interval: time.Second, NetNS: ns, DumpMethod: DumpBPF},
		Deps{Sink: func([]record.Record) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	d := newDumper(src, nil)
	d.iter = openTestIter(t, ns, nil)
	for _, c := range []struct {
		read readMode
		want uint64
	}{{readPipe, 1}, {readSerial, 1}, {readPipe, 2}} {
		d.iter.read = c.read
		if err := d.run(); err != nil {
			t.Fatal(err)
		}
		if st := src.Stats(); st.DumpsOverlapped != c.want || d.n != 2 {
			t.Errorf("after a dump with reader %d: %d overlapped dumps, want %d; %d sockets, want 2", c.read, st.DumpsOverlapped, c.want, d.n)
		}
	}
}
