package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netledger/netledger/internal/testenv"
)

var updateGolden = flag.Bool("update-geo", false, "rewrite the geo golden files")

func runGeo(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := newGeoLookupCmd()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err = cmd.Execute()
	return out.String(), errOut.String(), err
}

func TestGeoLookupGolden(t *testing.T) {
	mm := testenv.Testdata(t, "geo/maxmind-db/test-data")
	rir := testenv.Testdata(t, "geo/rir-excerpt/extended-delegated-stats.txt")
	names := filepath.Join(t.TempDir(), "asn.txt")
	if err := os.WriteFile(names, []byte("15169\tGoogle LLC\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	files := []string{
		"--country-db", filepath.Join(mm, "GeoIP2-City-Test.mmdb"),
		"--asn-db", filepath.Join(mm, "GeoLite2-ASN-Test.mmdb"),
		"--rir", rir, "--as-names", names,
	}
	addrs := []string{"81.2.69.160", "2.0.0.1", "1.0.0.1", "::ffff:1.0.0.1", "2001:218::1", "2a02:d500::1", "12.81.92.1", "10.0.0.1"}
	for _, tc := range []struct{ golden, format string }{{"geo-lookup.golden", "table"}, {"geo-lookup-json.golden", "json"}} {
		out, _, err := runGeo(t, append(append(clone(files), "--format", tc.format), addrs...)...)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join("testdata", tc.golden)
		if *updateGolden {
			os.MkdirAll("testdata", 0o755)
			if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if out != string(want) {
			t.Errorf("output differs from %s (-update-geo rewrites it):\n--- got\n%s--- want\n%s", path, out, want)
		}
	}
	// --verbose names each file on stderr.
	_, stderr, err := runGeo(t, append(clone(files), "-v", "1.0.0.1")...)
	if err != nil || !strings.Contains(stderr, "extended-delegated-stats.txt (rir): 10 records") {
		t.Errorf("--verbose: %v, stderr %q", err, stderr)
	}
}

func clone(s []string) []string { return append([]string(nil), s...) }

func TestGeoLookupErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.mmdb")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"1.2.3.4"}, "no geo data"},
		{[]string{"--country-db", missing, "1.2.3.4"}, missing},
		{[]string{"--rir", missing, "not-an-address"}, `invalid address "not-an-address"`},
		{[]string{"--rir", missing, "--format", "xml", "1.2.3.4"}, `unknown format "xml"`},
	} {
		_, _, err := runGeo(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("geo lookup %v: error %v, want %q", tc.args, err, tc.want)
		}
	}
}
