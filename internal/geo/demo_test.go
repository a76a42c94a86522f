package geo

import (
	"bytes"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// golden compares got with testdata/name, rewriting it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (-update rewrites it):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func TestDemoFilesGolden(t *testing.T) {
	nets := DemoNetworks(1, 12)
	var rir, names bytes.Buffer
	if err := WriteDemoRIR(&rir, nets, time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	if err := WriteDemoASNames(&names, nets); err != nil {
		t.Fatal(err)
	}
	golden(t, "demo-delegated-extended.golden", rir.Bytes())
	golden(t, "demo-asn-names.golden", names.Bytes())
}

// TestDemoFilesRoundTrip: the files the demo writes load without a bad line and give back
// every network's country, continent and AS name.
func TestDemoFilesRoundTrip(t *testing.T) {
	nets := DemoNetworks(3, 5000)
	if len(nets) != 5000 {
		t.Fatalf("DemoNetworks() gave %d networks, want 5000", len(nets))
	}
	dir := t.TempDir()
	rirPath, namesPath := filepath.Join(dir, "delegated"), filepath.Join(dir, "asn.txt")
	var rir, names bytes.Buffer
	if err := WriteDemoRIR(&rir, nets, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := WriteDemoASNames(&names, nets); err != nil {
		t.Fatal(err)
	}
	write(t, rirPath, rir.String())
	write(t, namesPath, names.String())
	db, err := Open(Config{RIRFiles: []string{rirPath}, ASNames: []string{namesPath}})
	if err != nil {
		t.Fatal(err)
	}
	for _, rep := range db.Reports() {
		if rep.Bad != 0 {
			t.Errorf("%s: %d bad lines: %v", rep.Path, rep.Bad, rep.Errors)
		}
	}
	v4, v6 := 0, 0
	for _, n := range nets {
		if n.Prefix.Addr().Is4() {
			v4++
		} else {
			v6++
		}
		for _, a := range []netip.Addr{n.Prefix.Addr(), lastAddr(n.Prefix)} {
			got := db.Lookup(a)
			if got.Country != n.Country || got.Continent != ContinentOf(n.Country) || got.Continent == ([2]byte{}) {
				t.Fatalf("Lookup(%s) = %s, want country %s of %s", a, fmtInfo(got), n.Country[:], n.Prefix)
			}
		}
		if got := db.ASName(n.ASN); got != n.ASName {
			t.Fatalf("ASName(%d) = %q, want %q", n.ASN, got, n.ASName)
		}
	}
	if v4 < 3500 || v6 < 500 {
		t.Errorf("%d IPv4 and %d IPv6 networks, want about 4:1", v4, v6)
	}
	if got := db.Lookup(netip.MustParseAddr("240.0.0.1")); got != (Info{}) {
		t.Errorf("reserved space has %+v", got)
	}
	if !bytes.Contains(rir.Bytes(), []byte("|ietf|")) {
		t.Error("no reserved record")
	}
}

func TestDemoNetworksDisjointAndStable(t *testing.T) {
	a, b := DemoNetworks(9, 3000), DemoNetworks(9, 3000)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("network %d differs between runs with the same seed: %+v, %+v", i, a[i], b[i])
		}
		for j := max(0, i-50); j < i; j++ {
			if a[j].Prefix.Overlaps(a[i].Prefix) {
				t.Fatalf("%s overlaps %s", a[j].Prefix, a[i].Prefix)
			}
		}
		if a[i].ASN < 4200000000 {
			t.Fatalf("AS%d is not private-use", a[i].ASN)
		}
	}
	if DemoNetworks(10, 1)[0] == a[0] {
		t.Error("another seed gives the same first network")
	}
}
