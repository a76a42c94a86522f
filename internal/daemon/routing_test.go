package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/netledger/netledger/internal/enrich"
	"github.com/netledger/netledger/internal/record"
	"github.com/netledger/netledger/internal/testenv"
)

// TestRouters reads routers from YAML, runs the daemon, and enriches a record with the
// tables Daemon.Routers hands out.
func TestRouters(t *testing.T) {
	bview := testenv.Testdata(t, "mrt/ripe-bgpdump/test_data/bview.20020722.2337.gz")
	yaml := fmt.Sprintf(`
data_dir: %s
http: {listen: "127.0.0.1:0"}
report: {listen: "127.0.0.1:0"}
routers:
  - name: edge1
    asn: 64500
    networks: [192.0.2.0/24, "2001:db8:1::/48"]
    mrt: [%q]
    mrt_peer: AS1853
  - name: edge2
    asn: 64501
    networks: [198.51.100.0/24]
    bgp: {neighbor: 127.0.0.9, peer_asn: 65009, passive: true, password: s3cret, grace_time: 1m}
bgp: {listen: "127.0.0.1:0", local_asn: 65001, router_id: 192.0.2.254}
`, t.TempDir(), bview)
	cfg := DefaultConfig()
	if err := DecodeConfig(strings.NewReader(yaml), &cfg); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	r := cfg.Routers
	if len(r) != 2 || r[0].Networks[1] != netip.MustParsePrefix("2001:db8:1::/48") || r[1].BGP == nil ||
		r[1].BGP.GraceTime != time.Minute || !r[1].BGP.Passive || cfg.BGP.LocalASN != 65001 || cfg.BGP.HoldTime == 0 {
		t.Fatalf("routers not read as written: %+v %+v", r, cfg.BGP)
	}
	if dump := string(must(cfg.Redacted().Dump())); strings.Contains(dump, "s3cret") || !strings.Contains(dump, "mrt_peer: AS1853") {
		t.Errorf("Redacted() dump:\n%s", dump)
	}
	if cfg.Routers[1].BGP.Password != "s3cret" {
		t.Error("Redacted() changed the configuration")
	}

	d, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	select {
	case <-d.Routing.Started():
	case <-time.After(time.Minute):
		t.Fatal("mrt files not loaded")
	}
	e := enrich.New(d.Routers(), nil)
	var out enrich.Enriched
	e.Enrich(&record.Record{Server: netip.MustParseAddr("192.0.2.10"), Client: netip.MustParseAddr("193.0.0.1")}, &out)
	if out.Router != 0 || out.Prefix != netip.MustParsePrefix("193.0.0.0/21") || out.PeerAS != 1853 || out.OriginAS != 3333 {
		t.Errorf("enriched through edge1: %+v", out)
	}
	e.Enrich(&record.Record{Server: netip.MustParseAddr("198.51.100.1"), Client: netip.MustParseAddr("193.0.0.1")}, &out)
	if out.Router != 1 || out.Prefix.IsValid() {
		t.Errorf("enriched through edge2 (empty table): %+v", out)
	}
	if st := d.Routing.Status(); len(st) != 2 || st[1].Session == nil || st[1].Session.State == "" {
		t.Errorf("status: %+v", st)
	}
}
