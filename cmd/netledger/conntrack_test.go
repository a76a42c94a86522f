package main

import (
	"net/netip"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// TestConntrackFlags parses the original tool's saarCTF command line (single-dash flags).
func TestConntrackFlags(t *testing.T) {
	var f conntrackFlags
	fs := pflag.NewFlagSet("conntrack", pflag.ContinueOnError)
	addConntrackFlags(fs, &f)
	args := []string{"-src=10.32.0.0/11", "-src-group-mask=255.239.255.0", "-dst=10.32.0.0/11", "-dst-group-mask=255.239.255.0",
		"-pipe=/tmp/conntrack_acct", "-output=/root/conntrack_data/new", "-track-open", "-interval=1", "-exclude-ip=10.32.0.1,::ffff:10.32.0.2"}
	if err := fs.Parse(singleDash(args)); err != nil {
		t.Fatal(err)
	}
	cfg, out, err := f.config()
	if err != nil {
		t.Fatal(err)
	}
	saar := netip.MustParseAddr("255.239.255.0")
	if len(cfg.Src) != 1 || cfg.Src[0] != netip.MustParsePrefix("10.32.0.0/11") || cfg.SrcGroupMask != saar || cfg.DstGroupMask != saar ||
		!cfg.TrackOpen || cfg.Interval != time.Second || len(cfg.Exclude) != 2 || cfg.Exclude[1] != netip.MustParseAddr("10.32.0.2") {
		t.Errorf("agent configuration %+v", cfg)
	}
	if out.Stdout || out.Pipe != "/tmp/conntrack_acct" || out.Dir != "/root/conntrack_data/new" || !out.TrackOpen {
		t.Errorf("output configuration %+v", out)
	}
	if f.listen != "127.0.0.1:8792" {
		t.Errorf("metrics listen %q, want loopback by default", f.listen)
	}
	for _, bad := range [][]string{{"-src-group-mask=255.0.0"}, {"-src=10.0.0.0/33"}, {"-src-group-prefix6=129"}} {
		var f conntrackFlags
		fs := pflag.NewFlagSet("conntrack", pflag.ContinueOnError)
		addConntrackFlags(fs, &f)
		if err := fs.Parse(singleDash(bad)); err != nil {
			continue
		}
		if _, _, err := f.config(); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}
