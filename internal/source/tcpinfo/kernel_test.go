package tcpinfo

import (
	"context"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/netledger/netledger/internal/record"
)

// collector is a Sink that keeps every record.
type collector struct {
	mu   sync.Mutex
	recs []record.Record
}

func (c *collector) sink(b []record.Record) error {
	c.mu.Lock()
	c.recs = append(c.recs, b...)
	c.mu.Unlock()
	return nil
}

func (c *collector) snapshot() []record.Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]record.Record(nil), c.recs...)
}

// startSource runs a source until the test ends and waits until its sockets are open.
func startSource(t *testing.T, cfg Config) (*Source, *collector) {
	t.Helper()
	col := &collector{}
	src, err := New(cfg, Deps{Sink: col.sink})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- src.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("Run() = %v", err)
		}
	})
	select {
	case <-src.started:
	case err := <-errc:
		t.Fatalf("Run() = %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("source did not start")
	}
	// The kernel tests run as root on a kernel with the BPF socket iterator: the default
	// (auto) must pick it, so that they test the production path.
	if (cfg.DumpMethod == "" || cfg.DumpMethod == DumpAuto) && cfg.Interval > 0 {
		if m := src.Stats().DumpMethod; m != DumpBPF {
			t.Errorf("dump method %q by default as root, want %q", m, DumpBPF)
		}
	}
	return src, col
}

// serve accepts connections on l: each reads the client's request until the client half-closes,
// then writes size(conn) bytes in chunks, calling pause between them, then closes. received
// counts the bytes the server read.
func serve(l net.Listener, size func(n int) (chunks int, chunk int, pause func()), received *sync.Map) {
	for i := 0; ; i++ {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func(c net.Conn, i int) {
			defer c.Close()
			n, _ := io.Copy(io.Discard, c)
			received.Store(c.RemoteAddr().String(), n)
			chunks, chunk, pause := size(i)
			buf := make([]byte, chunk)
			for k := 0; k < chunks; k++ {
				if k > 0 {
					pause()
				}
				if _, err := c.Write(buf); err != nil {
					return
				}
			}
		}(c, i)
	}
}

type sideTotals struct {
	perClient  map[string]uint64 // client address:port → bytes the client read
	serverRead sync.Map
}

// TestKernelLoopback checks the source against the kernel over loopback in a private
// namespace: every connection is accounted once, bytes sum to what the other side read, a long
// connection is split over dumps and its deltas sum to its total, and a port outside the filter
// produces nothing; with either dump method.
func TestKernelLoopback(t *testing.T) {
	for _, method := range []string{DumpBPF, DumpNetlink} {
		t.Run(method, func(t *testing.T) { testKernelLoopback(t, method) })
	}
}

func testKernelLoopback(t *testing.T, method string) {
	ns := newNetNS(t)
	src, col := startSource(t, Config{Interval: 300 * time.Millisecond, ReceiveBuffer: 4 << 20,
		Ports: []uint16{8080}, NetNS: ns, DumpMethod: method,
		Classes: []ClassRule{{Prefix: netip.MustParsePrefix("::1/128"), Class: 6}, {Port: 8080, Class: 4}}})
	if m := src.Stats().DumpMethod; m != method {
		t.Fatalf("dump method %q, want %q", m, method)
	}

	var listeners []net.Listener
	inNetNS(t, ns, func() {
		for _, a := range []string{"127.0.0.1:8080", "[::1]:8080", "127.0.0.1:9090"} {
			l, err := net.Listen("tcp", a)
			if err != nil {
				t.Error(err)
				return
			}
			listeners = append(listeners, l)
		}
	})
	if t.Failed() {
		return
	}
	var tot sideTotals
	tot.perClient = map[string]uint64{}
	// The long connection waits for two more dumps after each chunk, so that a whole dump sees
	// each chunk: ≥ 3 records whatever the dumps' pace (it slept 250 ms between chunks, and on a
	// loaded machine, with dumps taking hundreds of milliseconds, fewer dumps could span it).
	nextDumps := func() {
		for d0, deadline := src.Stats().Dumps, time.Now().Add(60*time.Second); src.Stats().Dumps < d0+2 && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
	}
	size := func(i int) (int, int, func()) {
		if i == 0 {
			return 4, 200_000, nextDumps // long: over several dumps
		}
		return 1, 1000 + 7919*i%50000, nil
	}
	for _, l := range listeners {
		defer l.Close()
		go serve(l, size, &tot.serverRead)
	}

	type job struct {
		c   net.Conn
		req int
	}
	var jobs []job
	inNetNS(t, ns, func() {
		for i := 0; i < 60; i++ {
			addr := []string{"127.0.0.1:8080", "[::1]:8080", "127.0.0.1:9090"}[i%3]
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Error(err)
				return
			}
			jobs = append(jobs, job{c, 100 + i})
		}
	})
	var mu sync.Mutex
	var wg sync.WaitGroup
	want := map[string]uint64{} // client addr:port → bytes read, port 8080 only
	var wantIn uint64
	conns := 0
	for _, j := range jobs {
		is8080 := j.c.RemoteAddr().(*net.TCPAddr).Port == 8080
		if is8080 {
			conns++
			wantIn += uint64(j.req)
		}
		wg.Go(func() {
			defer j.c.Close()
			j.c.Write(make([]byte, j.req))
			j.c.(*net.TCPConn).CloseWrite()
			n, _ := io.Copy(io.Discard, j.c)
			if is8080 {
				mu.Lock()
				want[j.c.LocalAddr().String()] = uint64(n)
				mu.Unlock()
			}
		})
	}
	wg.Wait()

	// Wait until every connection's destroy notification arrived.
	var recs []record.Record
	deadline := time.Now().Add(60 * time.Second)
	for {
		recs = col.snapshot()
		closed := 0
		for _, r := range recs {
			closed += int(r.ConnsClosed)
		}
		if closed >= conns || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}

	got := map[string]uint64{}
	var requests, closed int
	var gotIn uint64
	perConn := map[string]int{}
	for _, r := range recs {
		if r.ServerPort != 8080 {
			t.Errorf("record for unconfigured port: %+v", r)
			continue
		}
		if r.Source != record.SourceTCPInfo || r.Proto != 6 {
			t.Errorf("record source/proto = %v/%d", r.Source, r.Proto)
		}
		wantClass := uint16(4)
		if r.Server.Is6() {
			wantClass = 6
		}
		if r.Class != wantClass {
			t.Errorf("class of %v = %d, want %d", r.Server, r.Class, wantClass)
		}
		k := netip.AddrPortFrom(r.Client, r.ClientPort).String()
		got[k] += r.BytesOut
		gotIn += r.BytesIn
		requests += int(r.Requests)
		closed += int(r.ConnsClosed)
		perConn[k]++
		if r.Client.Is4In6() || r.Server.Is4In6() {
			t.Errorf("mapped address in record: %+v", r)
		}
	}
	if requests != conns || closed != conns {
		t.Errorf("Σ Requests = %d, Σ ConnsClosed = %d, want %d connections", requests, closed, conns)
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("client %s: Σ BytesOut = %d, client read %d", k, got[k], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("records for %d connections, want %d", len(got), len(want))
	}
	// bytes_received counts the client's FIN (1) when it arrived before the socket was
	// destroyed; here every client half-closes first.
	if gotIn < wantIn || gotIn > wantIn+uint64(conns) {
		t.Errorf("Σ BytesIn = %d, want %d … %d", gotIn, wantIn, wantIn+uint64(conns))
	}
	long := 0
	for _, n := range perConn {
		long = max(long, n)
	}
	if long < 3 {
		t.Errorf("longest connection has %d records, want ≥ 3 (one per dump it spanned)", long)
	}
	st := src.Stats()
	if st.Dumps < 2 || st.Notifications == 0 || st.Filtered == 0 {
		t.Errorf("stats = %+v", st)
	}
	t.Logf("%d connections, %d records, stats %+v", conns, len(recs), st)
}
