package udpreport

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/netledger/netledger/internal/record"
	"github.com/netledger/netledger/internal/report"
	"github.com/netledger/netledger/internal/testenv"
)

const (
	secretA = "0123456789abcdef0123456789abcdef"
	secretB = "fedcba9876543210fedcba9876543210"
	secret1 = "SOMESECRET"
)

// sink collects what the collector accepts.
type sink struct {
	mu   sync.Mutex
	recs []record.Record
}

func (s *sink) append(recs []record.Record) error {
	s.mu.Lock()
	s.recs = append(s.recs, recs...)
	s.mu.Unlock()
	return nil
}

func (s *sink) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.recs)
}

// start runs a collector on 127.0.0.1:0 and returns it, its sink, registry and a connected
// UDP socket.
func start(t *testing.T, cfg Config) (*Collector, *sink, *prometheus.Registry, *net.UDPConn) {
	t.Helper()
	if cfg.Listen == DefaultConfig().Listen {
		cfg.Listen = "127.0.0.1:0"
	}
	reg := prometheus.NewRegistry()
	s := &sink{}
	c, err := New(cfg, Deps{Sink: s.append, Registerer: reg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run() = %v", err)
		}
	})
	addr, err := c.Addr(ctx)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return c, s, reg, conn
}

func testCfg() Config {
	cfg := DefaultConfig()
	cfg.Keys = []KeyConfig{{ID: 1, Secret: secretA}, {ID: 2, Secret: secretB}}
	cfg.V1 = V1Config{Enabled: true, Secret: secret1}
	cfg.Workers = 2
	return cfg
}

func v2Datagram(t *testing.T, key report.Key, sender, seq uint64, at time.Time, recs ...record.Record) []byte {
	t.Helper()
	b, err := report.NewBuilder(key, 0)
	if err != nil {
		t.Fatal(err)
	}
	b.Start(sender, seq, at.UnixNano())
	for i := range recs {
		if !b.Add(&recs[i]) {
			t.Fatal("does not fit")
		}
	}
	return append([]byte(nil), b.Finish()...)
}

func rec(client string, bytes uint64) record.Record {
	return record.Record{Time: time.Now().UnixNano(), Client: netip.MustParseAddr(client), BytesOut: bytes, MSS: 1448, Class: 1}
}

func rejected(reg *prometheus.Registry, reason report.Reason) float64 {
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != "netledger_reports_rejected_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == reason.String() {
				return m.GetCounter().GetValue()
			}
		}
	}
	return -1
}

func TestCollector(t *testing.T) {
	c, s, reg, conn := start(t, testCfg())
	now := time.Now()
	keyA := report.Key{ID: 1, Secret: []byte(secretA)}
	keyB := report.Key{ID: 2, Secret: []byte(secretB)}
	keyX := report.Key{ID: 3, Secret: []byte(secretB)}
	good := v2Datagram(t, keyA, 9, 100, now, rec("198.51.100.1", 1000), rec("2001:db8::1", 2000))
	forged := append([]byte(nil), good...)
	forged[40] ^= 1
	v1 := make([]byte, report.V1Size)
	r1 := rec("198.51.100.2", 300)
	report.EncodeV1(v1, &r1, secret1)
	v1stale := make([]byte, report.V1Size)
	r1.Time -= int64(time.Minute)
	report.EncodeV1(v1stale, &r1, secret1)
	mixed := rec("0.0.0.0", 5) // bad address next to a good one
	sends := []struct {
		dg   []byte
		want report.Reason
	}{
		{good, report.OK},
		{v2Datagram(t, keyB, 9, 101, now, rec("198.51.100.3", 4000)), report.OK},
		{good, report.Replay},
		{forged, report.BadMAC},
		{v2Datagram(t, keyX, 9, 102, now, rec("198.51.100.3", 1)), report.UnknownKey},
		{v2Datagram(t, keyA, 9, 103, now.Add(-time.Minute), rec("198.51.100.3", 1)), report.Stale},
		{v2Datagram(t, keyA, 9, 104, now.Add(time.Minute), rec("198.51.100.3", 1)), report.Stale},
		{v2Datagram(t, keyA, 9, 105, now, mixed, rec("198.51.100.4", 8000)), report.BadAddress},
		{v1, report.OK},
		{v1stale, report.Stale},
		{v1[:200], report.Truncated},
		{[]byte("hello"), report.Truncated},
		{make([]byte, 9001), report.Oversized},
		{good[:50], report.Truncated},
		{append([]byte("NL\x03"), make([]byte, 100)...), report.Version},
	}
	for _, snd := range sends {
		if _, err := conn.Write(snd.dg); err != nil {
			t.Fatal(err)
		}
	}
	testenv.WaitFor(t, "5 reports", func() bool { return s.len() == 5 })
	var sum uint64
	for _, r := range s.recs {
		sum += r.BytesOut
		if r.Exporter != netip.MustParseAddr("127.0.0.1") || r.Server != r.Exporter {
			t.Errorf("exporter/server = %v/%v, want the datagram source", r.Exporter, r.Server)
		}
	}
	if sum != 1000+2000+4000+8000+300 {
		t.Errorf("byte sum = %d", sum)
	}
	want := map[report.Reason]float64{}
	for _, snd := range sends {
		if snd.want != report.OK {
			want[snd.want]++
		}
	}
	// A worker publishes its counters after each batch read, and the datagrams can arrive in
	// several batches: waiting for one reason's count (as before) could read the others
	// before the last batch was counted. Wait for all of them; then check each.
	counted := func() bool {
		for r := report.Reason(1); int(r) < report.NumReasons; r++ {
			if rejected(reg, r) != want[r] {
				return false
			}
		}
		return testutil.ToFloat64(c.m.accepted) == 5
	}
	for deadline := time.Now().Add(60 * time.Second); !counted() && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	for r := report.Reason(1); int(r) < report.NumReasons; r++ {
		if got := rejected(reg, r); got != want[r] {
			t.Errorf("rejected{reason=%q} = %v, want %v", r, got, want[r])
		}
	}
	if got := testutil.ToFloat64(c.m.accepted); got != 5 {
		t.Errorf("accepted = %v, want 5", got)
	}

	// Reload: key 1 removed, v1 disabled.
	cfg := testCfg()
	cfg.Keys = cfg.Keys[1:]
	cfg.V1.Enabled = false
	if err := c.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	conn.Write(v2Datagram(t, keyA, 9, 200, time.Now(), rec("198.51.100.5", 1)))
	conn.Write(v1)
	conn.Write(v2Datagram(t, keyB, 9, 201, time.Now(), rec("198.51.100.5", 1)))
	testenv.WaitFor(t, "reload effects", func() bool {
		return rejected(reg, report.UnknownKey) == want[report.UnknownKey]+1 && rejected(reg, report.Version) == want[report.Version]+1 && s.len() == 6
	})
	bad := cfg
	bad.Keys = []KeyConfig{{ID: 1, Secret: "short"}}
	if err := c.Reload(bad); err == nil {
		t.Error("Reload(short secret) succeeded")
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
	}{
		{"bad listen", func(c *Config) { c.Listen = "localhost" }},
		{"zero workers", func(c *Config) { c.Workers = 0 }},
		{"short key", func(c *Config) { c.Keys[0].Secret = "x" }},
		{"duplicate key", func(c *Config) { c.Keys[1].ID = c.Keys[0].ID }},
		{"long v1 secret", func(c *Config) { c.V1.Secret = "012345678901234567890" }},
		{"tiny datagram", func(c *Config) { c.MaxDatagram = 100 }},
		{"zero window", func(c *Config) { c.Window = 0 }},
		{"empty class name", func(c *Config) { c.Classes = map[uint16]string{1: ""} }},
		{"duplicate class name", func(c *Config) { c.Classes = map[uint16]string{1: "web", 2: "web"} }},
	} {
		cfg := testCfg()
		tc.mod(&cfg)
		if err := cfg.Validate(); err == nil {
			t.Errorf("%s: Validate() succeeded", tc.name)
		}
	}
	good := testCfg()
	good.Classes = map[uint16]string{1: "web", 2: "video"}
	if err := good.Validate(); err != nil {
		t.Errorf("Validate(good) = %v", err)
	}
	if good.ClassName(2) != "video" || good.ClassName(7) != "7" {
		t.Errorf("ClassName() = %q, %q", good.ClassName(2), good.ClassName(7))
	}
}

// TestDualStack listens on [::]:0 and receives from IPv4 and IPv6 loopback: the exporter and
// server of each report are the datagram's source, IPv4 never mapped.
func TestDualStack(t *testing.T) {
	cfg := testCfg()
	cfg.Listen = "[::]:0"
	c, s, _, _ := start(t, cfg)
	addr, _ := c.Addr(context.Background())
	key := report.Key{ID: 1, Secret: []byte(secretA)}
	for i, src := range []string{"127.0.0.1", "::1"} {
		dst := netip.AddrPortFrom(netip.MustParseAddr(src), addr.Port())
		conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(dst))
		if err != nil {
			testenv.Absent(t, "%s loopback: %v", src, err)
		}
		conn.Write(v2Datagram(t, key, 50, uint64(i+1), time.Now(), rec("198.51.100.50", 50)))
		conn.Close()
		testenv.WaitFor(t, "report from "+src, func() bool { return s.len() == i+1 })
		s.mu.Lock()
		got := s.recs[i]
		s.mu.Unlock()
		if want := netip.MustParseAddr(src); got.Exporter != want || got.Server != want {
			t.Errorf("from %s: exporter %v server %v", src, got.Exporter, got.Server)
		}
	}
}
