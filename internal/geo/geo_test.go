package geo

import (
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gaissmai/bart"
	"github.com/netledger/netledger/internal/testenv"
)

// randPrefix returns a random IPv4 prefix inside 10.0.0.0/8, or IPv6 inside 2001:db8::/32, so
// that random prefixes overlap often.
func randPrefix(rng *rand.Rand) netip.Prefix {
	if rng.IntN(2) == 0 {
		a := netip.AddrFrom4([4]byte{10, byte(rng.IntN(4)), byte(rng.Uint32()), byte(rng.Uint32())})
		return netip.PrefixFrom(a, 8+rng.IntN(25)).Masked()
	}
	var b [16]byte
	b[0], b[1], b[2], b[3], b[4] = 0x20, 0x01, 0x0d, 0xb8, byte(rng.IntN(4))
	for i := 5; i < 16; i++ {
		b[i] = byte(rng.Uint32())
	}
	return netip.PrefixFrom(netip.AddrFrom16(b), 32+rng.IntN(97)).Masked()
}

type layerEntry struct {
	p netip.Prefix
	v int
}

// naiveLPM is the longest match of a in one layer, by a scan.
func naiveLPM(layer []layerEntry, a netip.Addr) (int, bool) {
	best, v := -1, 0
	for _, e := range layer {
		if e.p.Contains(a) && e.p.Bits() > best {
			best, v = e.p.Bits(), e.v
		}
	}
	return v, best >= 0
}

// TestOverlayAgainstNaiveOracle checks the precedence of layered sources: for any address the
// first layer holding a match answers, with its longest match.
func TestOverlayAgainstNaiveOracle(t *testing.T) {
	rng := rand.New(rand.NewPCG(42, 1))
	for round := range 40 {
		var layers [][]layerEntry
		acc := new(bart.Table[int])
		for l := range 1 + rng.IntN(4) {
			var layer []layerEntry
			src := new(bart.Table[int])
			for range 1 + rng.IntN(30) {
				p := randPrefix(rng)
				if _, dup := src.Get(p); dup {
					continue
				}
				v := 1000*(l+1) + len(layer)
				layer = append(layer, layerEntry{p, v})
				src.Insert(p, v)
			}
			layers = append(layers, layer)
			acc = overlay(acc, src)
		}
		// Probe each prefix's first, last and neighbouring addresses, and random ones.
		var probes []netip.Addr
		for _, layer := range layers {
			for _, e := range layer {
				probes = append(probes, e.p.Addr(), lastAddr(e.p), e.p.Addr().Prev(), lastAddr(e.p).Next())
			}
		}
		for range 200 {
			probes = append(probes, randPrefix(rng).Addr())
		}
		for _, a := range probes {
			want, wantOK := 0, false
			for _, layer := range layers {
				if want, wantOK = naiveLPM(layer, a); wantOK {
					break
				}
			}
			got, ok := acc.Lookup(a)
			if got != want || ok != wantOK {
				t.Fatalf("round %d: Lookup(%s) = %d, %v; want %d, %v", round, a, got, ok, want, wantOK)
			}
		}
	}
}

// TestOverlayNested: where a source's supernet and subnet leave the same gap around an earlier
// layer, the subnet (the source's own longest match) fills it.
func TestOverlayNested(t *testing.T) {
	acc, src := new(bart.Table[int]), new(bart.Table[int])
	acc.Insert(netip.MustParsePrefix("10.1.0.0/17"), 1)
	// Inserted subnet first, so that an unsorted walk could meet it first.
	src.Insert(netip.MustParsePrefix("10.1.0.0/16"), 3)
	src.Insert(netip.MustParsePrefix("10.0.0.0/8"), 2)
	out := overlay(acc, src)
	for addr, want := range map[string]int{"10.1.0.1": 1, "10.1.128.1": 3, "10.1.255.255": 3, "10.2.0.0": 2, "10.0.255.255": 2} {
		if got, _ := out.Lookup(netip.MustParseAddr(addr)); got != want {
			t.Errorf("Lookup(%s) = %d, want %d", addr, got, want)
		}
	}
}

// TestCompactKeepsLookups: compact answers every lookup as the original table does, and is
// smaller when values repeat.
func TestCompactKeepsLookups(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 9))
	shrunk := 0
	for round := range 60 {
		orig := new(bart.Table[int])
		var entries []layerEntry
		for range 1 + rng.IntN(200) {
			p := randPrefix(rng)
			if rng.IntN(3) == 0 { // siblings, often with the same value
				p = netip.PrefixFrom(p.Addr(), min(p.Bits()+1, p.Addr().BitLen())).Masked()
				orig.Insert(sibling(p), rng.IntN(2))
				entries = append(entries, layerEntry{sibling(p), 0})
			}
			orig.Insert(p, rng.IntN(2))
			entries = append(entries, layerEntry{p, 0})
		}
		got := compact(orig)
		if got.Size() < orig.Size() {
			shrunk++
		}
		for _, e := range entries {
			for _, a := range []netip.Addr{e.p.Addr(), lastAddr(e.p), e.p.Addr().Prev(), lastAddr(e.p).Next(), randPrefix(rng).Addr()} {
				w, wok := orig.Lookup(a)
				g, gok := got.Lookup(a)
				if w != g || wok != gok {
					t.Fatalf("round %d: compact Lookup(%s) = %d, %v; want %d, %v", round, a, g, gok, w, wok)
				}
			}
		}
	}
	if shrunk < 30 {
		t.Errorf("compact shrank only %d of 60 tables", shrunk)
	}
	tb := new(bart.Table[string])
	for p, v := range map[string]string{"10.0.0.0/25": "A", "10.0.0.128/25": "A", "10.0.1.0/24": "A", "10.0.2.0/24": "B", "10.0.2.0/25": "B", "2001:db8::/32": "C", "2001:db8:1::/48": "C"} {
		tb.Insert(netip.MustParsePrefix(p), v)
	}
	var got []string
	for p, v := range compact(tb).AllSorted() {
		got = append(got, p.String()+"="+v)
	}
	if want := []string{"10.0.0.0/23=A", "10.0.2.0/24=B", "2001:db8::/32=C"}; !slices.Equal(got, want) {
		t.Errorf("compact() = %v, want %v", got, want)
	}
}

// TestCombineAgainstNaiveOracle checks that merging the location and AS tables into one keeps
// each table's own longest match.
func TestCombineAgainstNaiveOracle(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for round := range 40 {
		locs, asns := new(bart.Table[loc]), new(bart.Table[uint32])
		var locL, asnL []layerEntry
		for i := range 40 {
			p := randPrefix(rng)
			if rng.IntN(2) == 0 {
				locs.Insert(p, loc{Country: [2]byte{'A' + byte(i%26), 'A'}})
				locL = slices.DeleteFunc(locL, func(e layerEntry) bool { return e.p == p })
				locL = append(locL, layerEntry{p, i % 26})
			} else {
				asns.Insert(p, uint32(i+1))
				asnL = slices.DeleteFunc(asnL, func(e layerEntry) bool { return e.p == p })
				asnL = append(asnL, layerEntry{p, i + 1})
			}
		}
		table := combine(locs, asns)
		var probes []netip.Addr
		for _, e := range append(slices.Clone(locL), asnL...) {
			probes = append(probes, e.p.Addr(), lastAddr(e.p), lastAddr(e.p).Next())
		}
		for _, a := range probes {
			var want Info
			if v, ok := naiveLPM(locL, a); ok {
				want.Country = [2]byte{'A' + byte(v), 'A'}
			}
			if v, ok := naiveLPM(asnL, a); ok {
				want.ASN = uint32(v)
			}
			if got, _ := table.Lookup(a); got != want {
				t.Fatalf("round %d: Lookup(%s) = %+v, want %+v", round, a, got, want)
			}
		}
	}
}

// TestDatabasesBeforeRIR loads a country database, an ASN database, an RIR file that overlaps
// the database and AS names: the database answers where it has data, the RIR file elsewhere.
func TestDatabasesBeforeRIR(t *testing.T) {
	dir := testenv.Testdata(t, "geo/maxmind-db/test-data")
	tmp := t.TempDir()
	rir := filepath.Join(tmp, "delegated")
	names := filepath.Join(tmp, "asn.txt")
	write(t, rir, "2|ripencc|20260101|2|19830705|20260101|+0100\n"+
		"ripencc|FR|ipv4|2.125.0.0|65536|20100712|allocated\n"+ // the database has 2.125.160.216/29 (GB)
		"ripencc|NL|ipv4|81.2.69.128|64|20100712|allocated\n"+ // inside the database's 81.2.69.128/26 (GB)
		"apnic|AU|ipv4|1.0.0.0|256|20110811|assigned\n")
	write(t, names, "15169\tGoogle LLC (from the names file)\n")
	db, err := Open(Config{
		CountryDatabases: []string{filepath.Join(dir, "GeoLite2-Country-Test.mmdb")},
		ASNDatabases:     []string{filepath.Join(dir, "GeoLite2-ASN-Test.mmdb")},
		RIRFiles:         []string{rir},
		ASNames:          []string{names},
	})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		addr, country, continent string
		asn                      uint32
	}{
		{"2.125.160.216", "GB", "EU", 0},
		{"2.125.160.223", "GB", "EU", 0},
		{"2.125.160.215", "FR", "EU", 0},
		{"2.125.160.224", "FR", "EU", 0},
		{"2.125.255.255", "FR", "EU", 0},
		{"81.2.69.160", "GB", "EU", 0},
		{"1.0.0.1", "AU", "OC", 15169},
		{"::ffff:1.0.0.1", "AU", "OC", 15169},
		{"2.126.0.0", "", "", 0},
	}
	for _, tc := range cases {
		got := db.Lookup(netip.MustParseAddr(tc.addr))
		if got.CountryCode() != tc.country || got.ContinentCode() != tc.continent || got.ASN != tc.asn {
			t.Errorf("Lookup(%s) = %s, want {%s %s AS%d}", tc.addr, fmtInfo(got), tc.country, tc.continent, tc.asn)
		}
	}
	if got, want := db.ASName(15169), "Google LLC (from the names file)"; got != want {
		t.Errorf("ASName(15169) = %q, want the names file's %q", got, want)
	}
	if got, want := db.ASName(237), "Merit Network Inc."; got != want {
		t.Errorf("ASName(237) = %q, want the database's %q", got, want)
	}
	if got := len(db.Reports()); got != 4 {
		t.Errorf("%d reports, want 4", got)
	}
}

func write(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestEmptyConfig(t *testing.T) {
	db, err := Open(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if got := db.Lookup(netip.MustParseAddr("1.1.1.1")); got != (Info{}) {
		t.Errorf("Lookup() = %+v, want zero", got)
	}
	var nilDB *DB
	if got := nilDB.Lookup(netip.MustParseAddr("1.1.1.1")); got != (Info{}) || nilDB.ASName(1) != "" {
		t.Errorf("nil DB answered %+v", got)
	}
	if got := db.Lookup(netip.Addr{}); got != (Info{}) {
		t.Errorf("Lookup(invalid) = %+v, want zero", got)
	}
}

func TestParseASNamesLine(t *testing.T) {
	cases := []struct {
		line string
		asn  uint32
		name string
		ok   bool
		err  string
	}{
		{line: "15169\tGoogle LLC", asn: 15169, name: "Google LLC", ok: true},
		{line: "AS3215\tOrange S.A.\r", asn: 3215, name: "Orange S.A.", ok: true},
		{line: "4200000000\t  Private use  ", asn: 4200000000, name: "Private use", ok: true},
		{line: "# comment"},
		{line: "   "},
		{line: "15169 Google LLC", err: "no tab"},
		{line: "x15169\tGoogle", err: `invalid AS number "x15169"`},
		{line: "4294967296\tToo big", err: "invalid AS number"},
		{line: "AS\tnothing", err: "invalid AS number"},
		{line: "64500\t", err: "empty name for AS64500"},
	}
	for _, tc := range cases {
		asn, name, ok, err := ParseASNamesLine([]byte(tc.line))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseASNamesLine(%q) error = %v, want %q", tc.line, err, tc.err)
			}
			continue
		}
		if err != nil || asn != tc.asn || name != tc.name || ok != tc.ok {
			t.Errorf("ParseASNamesLine(%q) = %d, %q, %v, %v; want %d, %q, %v", tc.line, asn, name, ok, err, tc.asn, tc.name, tc.ok)
		}
	}
}

func TestASNamesFileBadLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "asn.txt")
	write(t, path, "# AS names\n13335\tCloudflare\nbroken line\n3215\tOrange\n3215\tOrange again\n99999999999\tbig\n")
	db, err := Open(Config{ASNames: []string{path}})
	if err != nil {
		t.Fatal(err)
	}
	rep := db.Reports()[0]
	if rep.Lines != 6 || rep.Records != 3 || rep.Ignored != 1 || rep.Bad != 2 {
		t.Errorf("report = %+v, want 6 lines, 3 records, 1 ignored, 2 bad", rep)
	}
	want := []string{path + ":3: no tab between AS number and name", path + `:6: invalid AS number "99999999999"`}
	var got []string
	for _, e := range rep.Errors {
		got = append(got, e.Error())
	}
	if !slices.Equal(got, want) {
		t.Errorf("errors = %q, want %q", got, want)
	}
	if db.ASName(13335) != "Cloudflare" || db.ASName(3215) != "Orange" || db.ASName(1) != "" {
		t.Errorf("names: 13335=%q 3215=%q 1=%q", db.ASName(13335), db.ASName(3215), db.ASName(1))
	}
	if _, err := Open(Config{ASNames: []string{filepath.Join(t.TempDir(), "missing.txt")}}); err == nil || !strings.Contains(err.Error(), "missing.txt") {
		t.Errorf("Open(missing) error = %v, want one naming the file", err)
	}
}

func FuzzParseASNamesLine(f *testing.F) {
	for _, s := range []string{"15169\tGoogle LLC", "AS3215\tOrange", "#x", "1\t", "x\ty"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		asn, name, ok, err := ParseASNamesLine(line)
		if err != nil || !ok {
			return
		}
		if name == "" || strings.TrimSpace(name) != name {
			t.Fatalf("%q: name %q", line, name)
		}
		if !strings.Contains(string(line), itoa(asn)) {
			t.Fatalf("%q: AS %d not in the line", line, asn)
		}
	})
}
