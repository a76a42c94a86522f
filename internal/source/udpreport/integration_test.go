package udpreport_test

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/netledger/netledger/client"
	"github.com/netledger/netledger/internal/record"
	"github.com/netledger/netledger/internal/report"
	"github.com/netledger/netledger/internal/source/udpreport"
	"github.com/netledger/netledger/internal/spool"
)

// rcvbufErrors returns the Udp RcvbufErrors counter of /proc/net/snmp (-1 when unknown).
func rcvbufErrors() int64 {
	data, err := os.ReadFile("/proc/net/snmp")
	if err != nil {
		return -1
	}
	var names []string
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 || fields[0] != "Udp:" {
			continue
		}
		if names == nil {
			names = fields
			continue
		}
		for i, n := range names {
			if n == "RcvbufErrors" && i < len(fields) {
				v, _ := strconv.ParseInt(fields[i], 10, 64)
				return v
			}
		}
	}
	return -1
}

func counter(t *testing.T, reg *prometheus.Registry, name, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if reason == "" || (len(m.GetLabel()) > 0 && m.GetLabel()[0].GetValue() == reason) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// TestIntegration sends 100,000 reports through the client package from several goroutines
// to the real collector, with forged, replayed and stale datagrams interleaved: the spool holds
// exactly the valid reports and the rejection counters match what was sent.
func TestIntegration(t *testing.T) {
	const (
		secret    = "integration-secret-0123456789abcdef"
		senders   = 4
		perSender = 25_000
	)
	dir := t.TempDir()
	scfg := spool.DefaultConfig()
	scfg.Dir = filepath.Join(dir, "spool")
	scfg.SyncInterval = 20 * time.Millisecond
	sp, err := spool.Open(scfg)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	cfg := udpreport.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.ReceiveBuffer = 16 << 20
	cfg.Keys = []udpreport.KeyConfig{{ID: 1, Secret: secret}}
	reg := prometheus.NewRegistry()
	col, err := udpreport.New(cfg, udpreport.Deps{Sink: sp.Append, Registerer: reg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- col.Run(ctx) }()
	addr, err := col.Addr(ctx)
	if err != nil {
		t.Fatal(err)
	}
	lost0 := rcvbufErrors()

	c, err := client.New(client.Config{Addr: addr.String(), KeyID: 1, Key: []byte(secret), QueueSize: senders * perSender})
	if err != nil {
		t.Fatal(err)
	}
	accepted := func() float64 { return counter(t, reg, "netledger_reports_accepted_total", "") }
	var adversary atomic.Int64
	// received counts the datagrams the collector read (the adversary's included, which only
	// makes the pacing looser).
	received := func() float64 {
		return counter(t, reg, "netledger_reports_datagrams_total", "v2") - float64(adversary.Load())
	}

	var wantBytes uint64
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := range senders {
		wg.Go(func() {
			var sum uint64
			for i := range perSender {
				b := uint64(g*perSender + i + 1)
				sum += b
				c.Report(client.Record{
					Client:   netip.AddrFrom4([4]byte{10, byte(g), byte(i >> 8), byte(i)}),
					BytesOut: b, MSS: 1448, RTT: 2000, Class: uint16(g),
				})
				if i%500 == 499 { // pace: at most 300 datagrams in flight, far below the socket buffer
					for deadline := time.Now().Add(5 * time.Second); float64(c.Stats().Datagrams) > received()+300 && time.Now().Before(deadline); {
						time.Sleep(time.Millisecond) // (lost datagrams end the wait; the counts then fail)
					}
				}
			}
			mu.Lock()
			wantBytes += sum
			mu.Unlock()
		})
	}

	// Adversary: valid datagrams of its own (kept), their replays, forgeries and stale ones.
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	good, _ := report.NewBuilder(report.Key{ID: 1, Secret: []byte(secret)}, 0)
	wrong, _ := report.NewBuilder(report.Key{ID: 1, Secret: []byte("not-the-secret-0123456789abcdef")}, 0)
	var sent struct{ valid, validReports, validBytes, forged, replayed, stale uint64 }
	seq := uint64(time.Now().UnixNano())
	for i := range 200 {
		now := time.Now()
		r := record.Record{Time: now.UnixNano(), Client: netip.MustParseAddr("2001:db8::42"), BytesOut: 1_000_000 + uint64(i), MSS: 1400}
		seq++
		good.Start(999, seq, now.UnixNano())
		good.Add(&r)
		good.Add(&r)
		dg := append([]byte(nil), good.Finish()...)
		conn.Write(dg)
		adversary.Add(2)
		sent.valid++
		sent.validReports += 2
		sent.validBytes += 2 * r.BytesOut
		switch i % 4 {
		case 0:
			conn.Write(dg) // exact replay
			sent.replayed++
		case 1:
			wrong.Start(999, seq+1_000_000, now.UnixNano())
			wrong.Add(&r)
			conn.Write(wrong.Finish())
			sent.forged++
		case 2:
			f := append([]byte(nil), dg...)
			f[len(f)-40] ^= 0x04 // a flipped bit in a report
			conn.Write(f)
			sent.forged++
		case 3:
			seq++
			good.Start(999, seq, now.Add(-time.Minute).UnixNano())
			good.Add(&r)
			conn.Write(good.Finish())
			sent.stale++
		}
		time.Sleep(200 * time.Microsecond)
	}
	wg.Wait()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.Dropped != 0 || st.SendErrors != 0 {
		t.Fatalf("client dropped %d, send errors %d", st.Dropped, st.SendErrors)
	}
	wantCount := uint64(senders*perSender) + sent.validReports
	wantBytes += sent.validBytes
	deadline := time.Now().Add(30 * time.Second)
	for uint64(accepted()) < wantCount && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	lost := rcvbufErrors() - lost0 // machine-wide: only explains a mismatch
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := sp.Sync(); err != nil {
		t.Fatal(err)
	}

	r, err := sp.NewReader(spool.Position{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	buf := make([]record.Record, 1000)
	var gotCount, gotBytes uint64
	for {
		n, _, err := r.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		for _, rec := range buf[:n] {
			gotCount++
			gotBytes += rec.BytesOut
		}
	}
	if gotCount != wantCount || gotBytes != wantBytes {
		t.Errorf("spool holds %d reports / %d bytes, want %d / %d (kernel RcvbufErrors meanwhile: %d)", gotCount, gotBytes, wantCount, wantBytes, lost)
	}
	for _, c := range []struct {
		reason string
		want   uint64
	}{
		{"bad_mac", sent.forged}, {"replay", sent.replayed}, {"stale", sent.stale},
		{"unknown_key", 0}, {"truncated", 0}, {"malformed", 0}, {"bad_address", 0}, {"absurd", 0}, {"version", 0},
	} {
		if got := counter(t, reg, "netledger_reports_rejected_total", c.reason); got != float64(c.want) {
			t.Errorf("rejected{reason=%q} = %v, want %d", c.reason, got, c.want)
		}
	}
}
