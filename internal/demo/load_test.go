package demo

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/netledger/netledger/internal/daemon"
	"github.com/netledger/netledger/internal/geo"
	"github.com/netledger/netledger/internal/record"
)

func TestLoad(t *testing.T) {
	w := NewWorld(3, 2000)
	l, l2 := NewLoad(w, 3, 5000), NewLoad(w, 3, 5000)
	perClient := map[string]int{}
	classes := map[uint16]int{}
	var v6, retrans, unrouted int
	unroutedSet := map[string]bool{}
	for _, n := range w.Unrouted {
		unroutedSet[n.Prefix.String()] = true
	}
	const n = 50000
	var r, r2 record.Record
	for i := 0; i < n; i++ {
		l.Next(&r, 1)
		l2.Next(&r2, 1)
		if r != r2 {
			t.Fatal("same seed, different loads")
		}
		perClient[r.Client.String()]++
		classes[r.Class]++
		if r.Client.Is6() {
			v6++
			if !r.Server.Is6() {
				t.Fatal("IPv6 client, IPv4 server")
			}
		}
		if r.Retransmits > 0 {
			retrans++
		}
		if r.BytesOut == 0 || r.RTT == 0 || r.Duration == 0 || r.MSS == 0 || r.Requests != 1 {
			t.Fatalf("incomplete record %+v", r)
		}
	}
	for _, nw := range w.Unrouted {
		for c := range perClient {
			if nw.Prefix.Contains(mustAddr(c)) {
				unrouted++
			}
		}
	}
	counts := make([]int, 0, len(perClient))
	for _, c := range perClient {
		counts = append(counts, c)
	}
	slices.Sort(counts)
	slices.Reverse(counts)
	top := 0
	for _, c := range counts[:len(counts)/100] {
		top += c
	}
	t.Logf("%d clients seen, top 1%% make %.0f%% of requests; classes %v; %d IPv6, %d with retransmits, %d unrouted clients", len(perClient), 100*float64(top)/n, classes, v6, retrans, unrouted)
	if float64(top)/n < 0.3 || len(classes) != len(Classes) || v6 == 0 || retrans == 0 || unrouted == 0 {
		t.Error("the load is not varied enough")
	}
}

func TestSetup(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "demo, #1: [x]") // YAML's special characters
	if err := Prepare(dir); err != nil {
		t.Fatal(err)
	}
	w := NewWorld(1, 500)
	f, err := Setup(dir, w, time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	db, err := geo.Open(geo.Config{RIRFiles: []string{f.RIR}, ASNames: []string{f.ASNames}})
	if err != nil {
		t.Fatal(err)
	}
	if got := db.ASName(64496); got != "Demo Transit Alpha" {
		t.Errorf("AS64496 name %q", got)
	}
	if got := db.Lookup(w.Networks[0].Prefix.Addr()).Country; got != w.Networks[0].Country {
		t.Errorf("country %s, want %s", got[:], w.Networks[0].Country[:])
	}
	cfg, _ := os.ReadFile(f.Config)
	for _, s := range []string{"routers:", "edge-fra", f.MRT[1], f.Key} {
		if !strings.Contains(string(cfg), s) {
			t.Errorf("config lacks %q", s)
		}
	}
	dc, err := daemon.LoadConfig(f.Config)
	if err != nil {
		t.Fatalf("the demo's configuration does not load: %v", err)
	}
	if dc.DataDir != f.Dir || !slices.Equal(dc.Geo.RIRFiles, []string{f.RIR}) || !slices.Equal(dc.Geo.ASNames, []string{f.ASNames}) ||
		len(dc.Routers) != 2 || !slices.Equal(dc.Routers[1].MRT, []string{f.MRT[1]}) {
		t.Errorf("configuration read back: data_dir %q, geo %+v, routers %+v", dc.DataDir, dc.Geo, dc.Routers)
	}
	// a second demo resets its own directory, but never another one
	if err := Prepare(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(f.Config); !os.IsNotExist(err) {
		t.Error("earlier demo not reset")
	}
	other := t.TempDir()
	os.WriteFile(filepath.Join(other, "precious"), nil, 0o644)
	if err := Prepare(other); err == nil {
		t.Error("a foreign directory was accepted")
	}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
