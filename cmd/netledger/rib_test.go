package main

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/netledger/netledger/internal/daemon"
	"github.com/netledger/netledger/internal/routing/routers"
	"github.com/netledger/netledger/internal/testenv"
)

func runRib(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newRibCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.Execute()
	return out.String(), err
}

// TestRibCommands runs rib load, lookup and status against a running daemon, and lookup
// --mrt without one.
func TestRibCommands(t *testing.T) {
	dir := testenv.Testdata(t, "mrt/ripe-bgpdump/test_data")
	bview := filepath.Join(dir, "bview.20020722.2337.gz")
	updates := filepath.Join(dir, "updates.20020722.2238.gz")

	want := "ADDRESS    PREFIX        PEER-AS  ORIGIN-AS  AS-PATH\n" +
		"193.0.0.1  193.0.0.0/21  1853     3333       1853 20965 1103 3333\n" +
		"10.0.0.1   -             -        -          -\n"
	out, err := runRib(t, "lookup", "--mrt", bview, "--peer", "193.203.0.1", "193.0.0.1", "10.0.0.1")
	if err != nil || out != want {
		t.Errorf("lookup --mrt:\n%s%v\nwant:\n%s", out, err, want)
	}

	cfg := daemon.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.Report.Listen = "127.0.0.1:0"
	cfg.BGP.Listen = "127.0.0.1:0"
	cfg.Routers = []routers.RouterConfig{{Name: "edge1", ASN: 64500}}
	d, err := daemon.New(cfg, slog.New(slog.DiscardHandler))
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
	haddr, err := d.API.Addr(ctx)
	if err != nil {
		t.Fatal(err)
	}
	api := "--api=" + haddr.String()

	out, err = runRib(t, "status", api)
	if err != nil || !regexp.MustCompile(`(?m)^edge1\s+64500\s+0\s+0\s+\S+\s+-\s+-$`).MatchString(out) {
		t.Errorf("status before load:\n%s%v", out, err)
	}
	out, err = runRib(t, "load", api, "--router", "edge1", "--peer", "AS1853", bview, updates)
	if err != nil || !strings.Contains(out, "router edge1: 112973 IPv4 + 0 IPv6 prefixes from 2 files") ||
		!strings.Contains(out, "(113811 announced, 112 withdrawn") {
		t.Errorf("load:\n%s%v", out, err)
	}
	out, err = runRib(t, "lookup", api, "-r", "edge1", "193.0.0.1", "10.0.0.1")
	if err != nil || out != want {
		t.Errorf("lookup:\n%s%v\nwant:\n%s", out, err, want)
	}
	out, err = runRib(t, "status", api)
	if err != nil || !regexp.MustCompile(`(?m)^edge1\s+64500\s+112973\s+0\s+\d+s\s+mrt\s+-$`).MatchString(out) {
		t.Errorf("status after load:\n%s%v", out, err)
	}
	if _, err := runRib(t, "load", api, "--router", "nope", bview); err == nil || !strings.Contains(err.Error(), "no such router") {
		t.Errorf("load into an unknown router: %v", err)
	}
	if _, err := runRib(t, "lookup", api, "-r", "edge1", "bad"); err == nil {
		t.Error("lookup of a bad address succeeded")
	}
	if _, err := runRib(t, "status", "--api=127.0.0.1:1"); err == nil || !strings.Contains(err.Error(), "cannot reach") {
		t.Errorf("status without a daemon: %v", err)
	}
}
