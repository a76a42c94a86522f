package geo

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/netledger/netledger/internal/testenv"
)

func rirFile(country string) string {
	return "2|ripencc|20260101|1|19830705|20260101|+0100\n" +
		"ripencc|" + country + "|ipv4|2.0.0.0|1048576|20100712|allocated\n"
}

func TestReloaderSwapsWithoutBlockingReaders(t *testing.T) {
	path := filepath.Join(t.TempDir(), "delegated")
	write(t, path, rirFile("FR"))
	r, err := NewReloader(Config{RIRFiles: []string{path}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	a := netip.MustParseAddr("2.1.2.3")
	if got := r.Lookup(a).CountryCode(); got != "FR" {
		t.Fatalf("Lookup() = %q, want FR", got)
	}
	if r.Changed() {
		t.Error("Changed() = true right after the load")
	}
	// Readers keep looking up while the data is reloaded: each sees FR or DE, never nothing.
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for ctx.Err() == nil {
				if got := r.Lookup(a).CountryCode(); got != "FR" && got != "DE" {
					t.Errorf("Lookup() during reload = %q", got)
					return
				}
			}
		})
	}
	write(t, path, rirFile("DE")+"# a longer file\n")
	if !r.Changed() {
		t.Error("Changed() = false after a rewrite")
	}
	for range 5 {
		if err := r.Reload(); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	wg.Wait()
	if got := r.Lookup(a).CountryCode(); got != "DE" {
		t.Fatalf("Lookup() after reload = %q, want DE", got)
	}

	// A broken file keeps the previous data and counts the failure.
	write(t, path, "garbage\n")
	if err := r.Reload(); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("Reload(broken) error = %v, want one naming the file", err)
	}
	if got := r.Lookup(a).CountryCode(); got != "DE" {
		t.Errorf("Lookup() after failed reload = %q, want DE kept", got)
	}
	if got := testutil.ToFloat64(r.reloads.WithLabelValues("failure")); got != 1 {
		t.Errorf("reloads_total{failure} = %v, want 1", got)
	}
	if got := testutil.ToFloat64(r.reloads.WithLabelValues("success")); got != 6 {
		t.Errorf("reloads_total{success} = %v, want 6", got)
	}
	if r.Changed() {
		t.Error("Changed() = true after a failed load of the same file: it would retry at every check")
	}
}

func TestReloaderRunReloadsOnChange(t *testing.T) {
	path := filepath.Join(t.TempDir(), "delegated")
	write(t, path, rirFile("FR"))
	r, err := NewReloader(Config{RIRFiles: []string{path}, CheckInterval: 10 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run() = %v", err)
		}
	})
	a := netip.MustParseAddr("2.1.2.3")
	write(t, path, rirFile("DE")+"#\n")
	testenv.WaitFor(t, "the change to be picked up", func() bool { return r.Lookup(a).CountryCode() == "DE" })

	// Apply (the daemon's SIGHUP) reloads even when the file looks unchanged (same size and
	// time), and adopts a new file list.
	// Write the new content beside the file with the old time, then rename it over, so the
	// poller can never see a moment where the file looks changed.
	fi, _ := os.Stat(path)
	tmp := path + ".tmp"
	write(t, tmp, rirFile("GB")+"#\n")
	if err := os.Chtimes(tmp, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if got := r.Lookup(a).CountryCode(); got != "DE" {
		t.Fatalf("Lookup() = %q before Apply, want DE (the file looks unchanged)", got)
	}
	names := filepath.Join(t.TempDir(), "asn.txt")
	write(t, names, "64500\tExample\n")
	if err := r.Apply(Config{RIRFiles: []string{path}, ASNames: []string{names}}); err != nil {
		t.Fatal(err)
	}
	if got := r.Lookup(a).CountryCode(); got != "GB" || r.ASName(64500) != "Example" {
		t.Fatalf("after Apply: country %q, AS64500 %q", got, r.ASName(64500))
	}
	if err := r.Apply(Config{RIRFiles: []string{path + ".missing"}}); err == nil {
		t.Fatal("Apply(missing file) succeeded")
	}
	if r.ASName(64500) != "Example" {
		t.Error("a failed Apply dropped the data")
	}
	if err := r.Apply(Config{CheckInterval: -1}); err == nil {
		t.Error("Apply(negative interval) succeeded")
	}
}

func TestReloaderMetrics(t *testing.T) {
	path := filepath.Join(t.TempDir(), "asn.txt")
	write(t, path, "1\tOne\nbad\n2\tTwo\n")
	r, err := NewReloader(Config{ASNames: []string{path}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := `
# HELP netledger_geo_as_names Known AS names.
# TYPE netledger_geo_as_names gauge
netledger_geo_as_names 2
# HELP netledger_geo_file_bad_lines Malformed lines skipped in each geo file at the last successful load.
# TYPE netledger_geo_file_bad_lines gauge
netledger_geo_file_bad_lines{path="` + path + `"} 1
# HELP netledger_geo_prefixes Prefixes in the geo lookup table.
# TYPE netledger_geo_prefixes gauge
netledger_geo_prefixes{family="ipv4"} 0
netledger_geo_prefixes{family="ipv6"} 0
# HELP netledger_geo_reloads_total Loads of the geo files, by result (success or failure; a failure keeps the previous data).
# TYPE netledger_geo_reloads_total counter
netledger_geo_reloads_total{result="success"} 1
`
	if err := testutil.CollectAndCompare(r, strings.NewReader(want),
		"netledger_geo_as_names", "netledger_geo_file_bad_lines", "netledger_geo_prefixes", "netledger_geo_reloads_total"); err != nil {
		t.Error(err)
	}
}
