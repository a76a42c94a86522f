package daemon

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/netledger/netledger/internal/record"
	"github.com/netledger/netledger/internal/report"
	"github.com/netledger/netledger/internal/source/udpreport"
	"github.com/netledger/netledger/internal/spool"
	"github.com/netledger/netledger/internal/testenv"
)

func TestExampleConfig(t *testing.T) {
	cfg, err := LoadConfig(filepath.Join(testenv.Root(), "deploy", "netledger.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("example configuration: %v", err)
	}
	if cfg.Report.Window != 20*time.Second || len(cfg.Report.Keys) != 1 || cfg.Spool.SyncInterval != 100*time.Millisecond {
		t.Errorf("example configuration not read as written: %+v", cfg)
	}
	if strings.Contains(string(must(cfg.Redacted().Dump())), cfg.Report.Keys[0].Secret) {
		t.Error("Redacted() dump shows the secret")
	}
}

// TestExampleConfigOptionalSections uncomments the example's optional sections (accounting,
// geo, tcpinfo, conntrack) and decodes them strictly: every key they show must exist.
func TestExampleConfigOptionalSections(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(testenv.Root(), "deploy", "netledger.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	in := false
	for _, line := range strings.Split(string(data), "\n") {
		switch {
		case slices.Contains([]string{"# accounting:", "# geo:", "# tcpinfo:", "# conntrack:"}, line):
			in, line = true, line[2:]
		case in && strings.HasPrefix(line, "#   "):
			line = line[2:]
		default:
			in = false
		}
		out = append(out, line)
	}
	cfg := DefaultConfig()
	if err := DecodeConfig(strings.NewReader(strings.Join(out, "\n")), &cfg); err != nil {
		t.Fatalf("uncommented example: %v", err)
	}
	if !cfg.TCPInfo.Enabled || !cfg.Conntrack.Enabled || len(cfg.Geo.CountryDatabases) != 1 || cfg.Accounting.Interval != time.Minute {
		t.Errorf("optional sections not read as written: tcpinfo %v conntrack %v geo %v accounting %v",
			cfg.TCPInfo.Enabled, cfg.Conntrack.Enabled, cfg.Geo.CountryDatabases, cfg.Accounting.Interval)
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestDaemon runs the wired daemon: a signed report sent over UDP lands in the spool and shows
// in /metrics; /healthz answers.
func TestDaemon(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.Report.Listen = "127.0.0.1:0"
	cfg.Report.Keys = []udpreport.KeyConfig{{ID: 5, Secret: "0123456789abcdef0123456789abcdef"}}
	cfg.Spool.SyncInterval = 10 * time.Millisecond
	d, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	raddr, err := d.Report.Addr(ctx)
	if err != nil {
		t.Fatal(err)
	}
	haddr, _ := d.API.Addr(ctx)

	b, _ := report.NewBuilder(report.Key{ID: 5, Secret: []byte(cfg.Report.Keys[0].Secret)}, 0)
	b.Start(1, uint64(time.Now().UnixNano()), time.Now().UnixNano())
	b.Add(&record.Record{Time: time.Now().UnixNano(), Client: netip.MustParseAddr("2001:db8::5"), BytesOut: 4242, MSS: 1440})
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(raddr))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write(b.Finish())

	r, err := d.Spool.NewReader(spool.Position{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	wctx, wcancel := context.WithTimeout(ctx, 60*time.Second)
	defer wcancel()
	if err := r.Wait(wctx); err != nil {
		t.Fatalf("no report reached the spool: %v", err)
	}
	buf := make([]record.Record, 4)
	n, _, err := r.Read(buf)
	if err != nil || n != 1 || buf[0].BytesOut != 4242 {
		t.Fatalf("spool holds %d records (%v): %+v", n, err, buf[:n])
	}

	// The receiver counts a report accepted after the spool took it, and the spool hands it to
	// readers on its next sync (10 ms): the count can lag the read, so /metrics is polled
	// until it has every line (or the deadline, which only bounds a broken daemon).
	wants := []string{"netledger_reports_accepted_total 1", "netledger_spool_records_appended_total 1", `netledger_reports_rejected_total{reason="bad_mac"} 0`, "netledger_spool_bytes "}
	var code int
	var body string
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		code, body = httpGet(t, "http://"+haddr.String()+"/metrics")
		missing := code != 200
		for _, want := range wants {
			missing = missing || !strings.Contains(body, want)
		}
		if !missing || time.Now().After(deadline) {
			break
		}
	}
	for _, want := range wants {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("/metrics (%d) lacks %q", code, want)
		}
	}
	if code, body := httpGet(t, "http://"+haddr.String()+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz = %d %q", code, body)
	}

	// SIGHUP path: a reload with a bad key is refused, a good one applied.
	bad := cfg
	bad.Report.Keys = []udpreport.KeyConfig{{ID: 1, Secret: "short"}}
	if err := d.Reload(bad); err == nil {
		t.Error("Reload(bad key) succeeded")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run() = %v", err)
	}
}
