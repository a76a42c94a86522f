package daemon

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netledger/netledger/internal/record"
	"github.com/netledger/netledger/internal/spool"
	"github.com/netledger/netledger/internal/store"
	"github.com/netledger/netledger/internal/testenv"
)

func counterValue(t *testing.T, d *Daemon, name string) float64 {
	mfs, err := d.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			var sum float64
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
			return sum
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// TestConntrackSource runs `serve` with the conntrack source in a fresh network namespace: a
// TCP connection opened by 127.0.0.2 to 127.0.0.3 reaches the spool as records whose client is
// the opener and whose server is the responder, with exactly the packets and bytes the
// kernel's conntrack table reports for the flow.
func TestConntrackSource(t *testing.T) {
	testenv.RequireRoot(t)
	ip, nft, ct := testenv.Command(t, "ip"), testenv.Command(t, "nft"), testenv.Command(t, "conntrack")
	ns := fmt.Sprintf("nld%d-ct", os.Getpid())
	run := func(name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		if name == nft {
			cmd = exec.Command(ip, "netns", "exec", ns, nft, "-f", "-")
			cmd.Stdin = strings.NewReader(args[0])
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v: %s", name, args, err, out)
		}
		return string(out)
	}
	run(ip, "netns", "add", ns)
	t.Cleanup(func() { exec.Command(ip, "netns", "del", ns).Run() })
	run(ip, "-n", ns, "link", "set", "lo", "up")
	run(nft, "add table inet nld\nadd chain inet nld out { type filter hook output priority 0; }\nadd rule inet nld out ct state new counter\n")

	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.Report.Listen = "127.0.0.1:0"
	cfg.Spool.SyncInterval = 10 * time.Millisecond
	cfg.Conntrack.Enabled = true
	cfg.Conntrack.NetNS = "/run/netns/" + ns
	cfg.Conntrack.Interval = time.Hour // the last interval is emitted when the daemon stops
	cfg.Conntrack.TrackOpen = true
	d, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	for counterValue(t, d, "netledger_conntrack_dumps_total") < 1 {
		select {
		case err := <-done:
			t.Fatalf("daemon stopped: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}

	var ln net.Listener
	testenv.InNetNS(t, ns, func() (err error) { ln, err = net.Listen("tcp", "127.0.0.3:0"); return })
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.ReadFull(c, make([]byte, 1000))
		c.Write(make([]byte, 5000))
	}()
	var c net.Conn
	testenv.InNetNS(t, ns, func() (err error) {
		dl := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
		c, err = dl.Dial("tcp", ln.Addr().String())
		return
	})
	c.Write(make([]byte, 1000))
	if _, err := io.ReadFull(c, make([]byte, 5000)); err != nil {
		t.Fatal(err)
	}
	c.Close()
	port := uint16(ln.Addr().(*net.TCPAddr).Port)

	// The kernel's counters of the flow (it stays in TIME_WAIT, so -L still shows it).
	var want record.Record
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		out := run(ip, "netns", "exec", ns, ct, "-L", "-p", "tcp", "-o", "extended")
		want = record.Record{}
		sc := bufio.NewScanner(strings.NewReader(out))
		for sc.Scan() {
			var vals []uint64
			for _, f := range strings.Fields(sc.Text()) {
				if k, v, ok := strings.Cut(f, "="); ok && (k == "packets" || k == "bytes") {
					n, _ := strconv.ParseUint(v, 10, 64)
					vals = append(vals, n)
				}
			}
			if strings.Contains(sc.Text(), "src=127.0.0.2 dst=127.0.0.3") && len(vals) == 4 {
				want.PacketsIn, want.BytesIn, want.PacketsOut, want.BytesOut = vals[0], vals[1], vals[2], vals[3]
				want.Proto = 6
				if strings.Contains(sc.Text(), "TIME_WAIT") {
					want.ConnsClosed = 1
				}
			}
		}
		if want.ConnsClosed == 1 || time.Now().After(deadline) {
			break
		}
	}
	if want.ConnsClosed != 1 || want.BytesOut < 5000 || want.BytesIn < 1000 {
		t.Fatalf("kernel table has no closed flow 127.0.0.2 → 127.0.0.3 with the test's bytes: %+v", want)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run() = %v", err)
	}
	r, err := d.Spool.NewReader(spool.Position{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	buf := make([]record.Record, 64)
	var got record.Record
	for {
		n, _, err := r.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		for _, rec := range buf[:n] {
			if rec.Source != record.SourceConntrack {
				continue
			}
			if rec.Client != netip.MustParseAddr("127.0.0.2") || rec.Server != netip.MustParseAddr("127.0.0.3") || rec.ServerPort != port {
				t.Errorf("record not accounted to the opener: %+v", rec)
				continue
			}
			got.Proto = rec.Proto
			got.PacketsIn += rec.PacketsIn
			got.BytesIn += rec.BytesIn
			got.PacketsOut += rec.PacketsOut
			got.BytesOut += rec.BytesOut
			got.ConnsClosed += rec.ConnsClosed
		}
	}
	if got != want {
		t.Errorf("spool records sum to\n %+v\nkernel has\n %+v", got, want)
	}
	if v := counterValue(t, d, "netledger_conntrack_rows_total"); v < 1 {
		t.Errorf("netledger_conntrack_rows_total = %v", v)
	}

	// The accounting pipeline committed them to the store's conntrack view on the way out:
	// the opener's group with the kernel's counters, the responder's port.
	now := time.Now()
	for _, by := range []string{"src-group", "port"} {
		top, err := d.Store.Top(context.Background(), store.Query{View: "conntrack", By: by, From: now.Add(-time.Hour), To: now.Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		if len(top) != 1 {
			t.Fatalf("conntrack view by %s: %+v", by, top)
		}
		m, wantKey := top[0].Metrics, "127.0.0.2"
		if by == "port" {
			wantKey = strconv.Itoa(int(port))
		}
		if top[0].Key != wantKey || m.BytesIn != want.BytesIn || m.Bytes != want.BytesOut || m.PacketsIn != want.PacketsIn ||
			m.Packets != want.PacketsOut || m.Conns != 1 {
			t.Errorf("conntrack view by %s: %+v, kernel %+v", by, top[0], want)
		}
	}
}

// TestConntrackConfigYAML reads the conntrack block as documented in docs/configuration.md.
func TestConntrackConfigYAML(t *testing.T) {
	cfg := DefaultConfig()
	in := `
conntrack:
  enabled: true
  interval: 15s
  src: [10.32.0.0/11, "fd00::/16"]
  dst: [10.32.0.0/11]
  src_group_mask: 255.239.255.0
  dst_group_mask: 255.239.255.0
  src_group_prefix6: 64
  exclude: [10.32.0.1]
  ports: /etc/netledger/ports.txt
  track_open: true
  zones: [1, 2]
  mark: 16
  mark_mask: 240
`
	if err := DecodeConfig(strings.NewReader(in), &cfg); err != nil {
		t.Fatal(err)
	}
	c := cfg.Conntrack
	if !c.Enabled || c.Interval != 15*time.Second || len(c.Src) != 2 || c.Src[1] != netip.MustParsePrefix("fd00::/16") ||
		c.SrcGroupMask != netip.MustParseAddr("255.239.255.0") || c.DstGroupPrefix6 != 128 || c.SrcGroupPrefix6 != 64 ||
		len(c.Exclude) != 1 || !c.TrackOpen || len(c.Zones) != 2 || c.Mark != 16 || c.MarkMask != 240 ||
		c.ReceiveBuffer == 0 {
		t.Errorf("conntrack block not read as written (defaults kept where omitted): %+v", c)
	}
	if err := cfg.Validate(); err != nil {
		t.Error(err)
	}
	cfg.Conntrack.SrcGroupPrefix6 = 129
	if err := cfg.Validate(); err == nil {
		t.Error("Validate accepted an IPv6 group prefix of 129")
	}
}
