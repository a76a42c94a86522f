package client

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/netledger/netledger/internal/record"
	"github.com/netledger/netledger/internal/report"
)

var testKey = report.Key{ID: 3, Secret: []byte("0123456789abcdef0123456789abcdef")}

// receiver is a UDP socket decoding what a client sends.
type receiver struct {
	t    *testing.T
	conn *net.UDPConn
	v    *report.Verifier
}

func newReceiver(t *testing.T) *receiver {
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	v, _ := report.NewVerifier([]report.Key{testKey})
	return &receiver{t: t, conn: conn, v: v}
}

func (rc *receiver) newClient(cfg Config) *Client {
	cfg.Addr, cfg.KeyID, cfg.Key = rc.conn.LocalAddr().String(), testKey.ID, testKey.Secret
	c, err := New(cfg)
	if err != nil {
		rc.t.Fatal(err)
	}
	return c
}

// next reads one datagram (within timeout) and returns its header, size and reports.
func (rc *receiver) next(timeout time.Duration) (report.Header, int, []record.Record, bool) {
	rc.conn.SetReadDeadline(time.Now().Add(timeout))
	buf := make([]byte, 65536)
	n, src, err := rc.conn.ReadFromUDPAddrPort(buf)
	if err != nil {
		return report.Header{}, 0, nil, false
	}
	h, err := rc.v.Verify(buf[:n])
	if err != nil {
		rc.t.Fatalf("datagram rejected: %v", err)
	}
	var recs []record.Record
	it := report.NewReports(buf[:n], h, src.Addr())
	var r record.Record
	for {
		ok, err := it.Next(&r)
		if err != nil {
			rc.t.Fatalf("report rejected: %v", err)
		}
		if !ok {
			break
		}
		recs = append(recs, r)
	}
	return h, n, recs, true
}

func TestClientBatchesAndFlushes(t *testing.T) {
	rc := newReceiver(t)
	c := rc.newClient(Config{SenderID: 77})
	const n = 100
	for i := range n {
		c.Report(Record{Client: netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), BytesOut: uint64(i), MSS: 1448})
	}
	var got []record.Record
	var lastSeq uint64
	start := time.Now()
	for len(got) < n {
		h, size, recs, ok := rc.next(5 * time.Second)
		if !ok {
			t.Fatalf("received %d reports, want %d (no Close: the 100 ms flush must send)", len(got), n)
		}
		if size > report.DefaultPayloadSize {
			t.Errorf("datagram of %d bytes", size)
		}
		if h.SenderID != 77 || h.Seq <= lastSeq || lastSeq != 0 && h.Seq != lastSeq+1 {
			t.Errorf("header %+v after sequence %d", h, lastSeq)
		}
		lastSeq = h.Seq
		got = append(got, recs...)
	}
	if time.Since(start) > 3*time.Second {
		t.Errorf("flush took %v", time.Since(start))
	}
	for i, r := range got {
		if r.BytesOut != uint64(i) || r.Time == 0 {
			t.Fatalf("report %d: %+v", i, r)
		}
	}
	if lastSeq < uint64(start.Add(-time.Minute).UnixNano()) {
		t.Errorf("sequence %d is not time-derived", lastSeq)
	}
	// Close flushes a partial datagram at once.
	slow := rc.newClient(Config{FlushInterval: time.Hour})
	slow.Report(Record{Client: netip.MustParseAddr("2001:db8::9"), BytesOut: 9})
	slow.Close()
	if _, _, recs, ok := rc.next(2 * time.Second); !ok || len(recs) != 1 || recs[0].BytesOut != 9 {
		t.Errorf("Close did not flush: %v %+v", ok, recs)
	}
	slow.Report(Record{})
	if st := slow.Stats(); st.Dropped != 1 || st.Reported != 1 || st.Datagrams != 1 {
		t.Errorf("Stats() after Close = %+v", st)
	}
	want := `
# HELP netledger_client_reports_total Reports given to the netledger client, by result (queued, dropped: queue full or closed).
# TYPE netledger_client_reports_total counter
netledger_client_reports_total{result="dropped"} 1
netledger_client_reports_total{result="queued"} 1
`
	if err := testutil.CollectAndCompare(slow, strings.NewReader(want), "netledger_client_reports_total"); err != nil {
		t.Error(err)
	}
	c.Close()
}

func TestClientNeverBlocks(t *testing.T) {
	rc := newReceiver(t)
	c := rc.newClient(Config{QueueSize: 4})
	defer c.Close()
	start := time.Now()
	const n = 20000
	for i := range n {
		c.Report(Record{Client: netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), BytesOut: 1})
	}
	st := c.Stats()
	if st.Reported+st.Dropped != n {
		t.Errorf("reported %d + dropped %d != %d", st.Reported, st.Dropped, n)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Report blocked: %v for %d reports", d, n)
	}
}

func TestClientConfig(t *testing.T) {
	for _, cfg := range []Config{
		{Addr: "127.0.0.1:1", Key: []byte("short")},
		{Addr: "127.0.0.1:1", Key: testKey.Secret, PayloadSize: 100},
		{Addr: "no port", Key: testKey.Secret},
		{Addr: "127.0.0.1:1", Key: testKey.Secret, QueueSize: -1},
	} {
		if c, err := New(cfg); err == nil {
			c.Close()
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
}

// TestMiddleware serves a 10 MB response from a real server on loopback and checks the report.
func TestMiddleware(t *testing.T) {
	rc := newReceiver(t)
	c := rc.newClient(Config{FlushInterval: 10 * time.Millisecond})
	defer c.Close()
	body := bytes.Repeat([]byte("netledger"), 10<<20/9+1)[:10<<20]
	mux := http.NewServeMux()
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) { w.Write(body) })
	classify := func(r *http.Request) uint16 {
		if r.URL.Path == "/big" {
			return 7
		}
		return 1
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: Middleware(c, classify, mux), ConnContext: ConnContext}
	go srv.Serve(ln)
	defer srv.Shutdown(context.Background())

	resp, err := http.Get("http://" + ln.Addr().String() + "/big")
	if err != nil {
		t.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if n != int64(len(body)) {
		t.Fatalf("client read %d bytes", n)
	}
	_, _, recs, ok := rc.next(5 * time.Second)
	if !ok || len(recs) != 1 {
		t.Fatalf("no report (%v, %d)", ok, len(recs))
	}
	r := recs[0]
	if r.BytesOut != 10<<20 || r.Class != 7 || r.MSS == 0 || r.RTT == 0 || r.Duration == 0 {
		t.Errorf("report = %+v; want 10 MiB, class 7, MSS > 0, RTT > 0, duration > 0", r)
	}
	if r.Client != netip.MustParseAddr("127.0.0.1") || r.Server != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("client/server = %v/%v", r.Client, r.Server)
	}
}
