package geo

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netledger/netledger/internal/testenv"
)

// jsonNetwork is one network of MaxMind's test source data with the values netledger keeps,
// computed independently of the mmdb decoder.
type jsonNetwork struct {
	prefix netip.Prefix
	info   Info
	org    string
}

// sourceRecord is the part of a source-data record the tests read.
type sourceRecord struct {
	Country *struct {
		IsoCode string `json:"iso_code"`
	} `json:"country"`
	RegisteredCountry *struct {
		IsoCode string `json:"iso_code"`
	} `json:"registered_country"`
	Continent *struct{ Code string } `json:"continent"`
	ASN       uint32                 `json:"autonomous_system_number"`
	Org       string                 `json:"autonomous_system_organization"`
	Traits    *struct {
		ASN uint32 `json:"autonomous_system_number"`
		Org string `json:"autonomous_system_organization"`
	} `json:"traits"`
}

// readSourceJSON reads a MaxMind-DB source-data file: a list of {network: record} objects.
func readSourceJSON(t *testing.T, path string) []jsonNetwork {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var raw []map[string]sourceRecord
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var out []jsonNetwork
	for _, m := range raw {
		for k, v := range m {
			p, err := netip.ParsePrefix(k)
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			p = p.Masked()
			// IPv4 networks are written ::a.b.c.d/n (the IPv4 subtree of an IPv6 database).
			if a := p.Addr(); a.Is6() && p.Bits() >= 96 && netip.MustParsePrefix("::/96").Contains(a) {
				b := a.As16()
				p = netip.PrefixFrom(netip.AddrFrom4([4]byte(b[12:])), p.Bits()-96)
			}
			var n jsonNetwork
			n.prefix = p
			cc := ""
			if v.Country != nil {
				cc = v.Country.IsoCode
			}
			if cc == "" && v.RegisteredCountry != nil {
				cc = v.RegisteredCountry.IsoCode
			}
			if cc != "" {
				n.info.Country = [2]byte{cc[0], cc[1]}
			}
			if v.Continent != nil && v.Continent.Code != "" {
				n.info.Continent = [2]byte{v.Continent.Code[0], v.Continent.Code[1]}
			} else {
				n.info.Continent = ContinentOf(n.info.Country)
			}
			n.info.ASN, n.org = v.ASN, v.Org
			if v.Traits != nil && v.Traits.ASN != 0 {
				n.info.ASN, n.org = v.Traits.ASN, v.Traits.Org
			}
			out = append(out, n)
		}
	}
	return out
}

// expectAt is the naive oracle: the last network of the source data containing a wins (the
// test databases were written by inserting the networks in order).
func expectAt(nets []jsonNetwork, a netip.Addr) (jsonNetwork, bool) {
	var found jsonNetwork
	ok := false
	for _, n := range nets {
		if n.prefix.Contains(a) {
			found, ok = n, true
		}
	}
	return found, ok
}

func TestMMDBAgainstSourceData(t *testing.T) {
	dir := testenv.Testdata(t, "geo/maxmind-db")
	cases := []struct {
		name    string
		country bool // load as a country database
		asn     bool // load as an ASN database
	}{
		{"GeoLite2-Country-Test", true, false},
		{"GeoIP2-Country-Test", true, false},
		{"GeoLite2-City-Test", true, false},
		{"GeoIP2-City-Test", true, false},
		{"GeoIP2-Enterprise-Test", true, true},
		{"GeoIP2-Precision-Enterprise-Test", true, true},
		{"GeoLite2-ASN-Test", false, true},
		{"GeoIP2-ISP-Test", false, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			nets := readSourceJSON(t, filepath.Join(dir, "source-data", tc.name+".json"))
			file := filepath.Join(dir, "test-data", tc.name+".mmdb")
			var cfg Config
			if tc.country {
				cfg.CountryDatabases = []string{file}
			}
			if tc.asn {
				cfg.ASNDatabases = []string{file}
			}
			db, err := Open(cfg)
			if err != nil {
				t.Fatalf("Open() error: %v", err)
			}
			names := map[uint32]map[string]bool{}
			checked := 0
			for _, n := range nets {
				if n.org != "" {
					if names[n.info.ASN] == nil {
						names[n.info.ASN] = map[string]bool{}
					}
					names[n.info.ASN][n.org] = true
				}
				for _, a := range []netip.Addr{n.prefix.Addr(), lastAddr(n.prefix)} {
					want, _ := expectAt(nets, a)
					w := want.info
					if !tc.country {
						w.Country, w.Continent = [2]byte{}, [2]byte{}
					}
					if !tc.asn {
						w.ASN = 0
					}
					got := db.Lookup(a)
					if got != w {
						t.Errorf("Lookup(%s) [network %s] = %s, want %s", a, want.prefix, fmtInfo(got), fmtInfo(w))
					}
					if a.Is4() {
						if got := db.Lookup(netip.AddrFrom16(a.As16())); got != w {
							t.Errorf("Lookup(%s) = %s, want %s", netip.AddrFrom16(a.As16()), fmtInfo(got), fmtInfo(w))
						}
					}
					checked++
				}
			}
			if tc.asn {
				for asn, set := range names {
					if got := db.ASName(asn); !set[got] {
						t.Errorf("ASName(%d) = %q, want one of %v", asn, got, set)
					}
				}
			}
			t.Logf("%d networks, %d addresses checked, %d AS names", len(nets), checked, len(names))
		})
	}
}

func fmtInfo(i Info) string {
	return "{" + i.CountryCode() + " " + i.ContinentCode() + " AS" + itoa(i.ASN) + "}"
}

func itoa(v uint32) string {
	var b [10]byte
	n := len(b)
	for {
		n--
		b[n] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			return string(b[n:])
		}
	}
}

// TestContinentTableAgreesWithSourceData checks the country → continent table against every
// (country, continent) pair of MaxMind's test data.
func TestContinentTableAgreesWithSourceData(t *testing.T) {
	dir := testenv.Testdata(t, "geo/maxmind-db/source-data")
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	pairs := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var raw []map[string]struct {
			Country *struct {
				IsoCode string `json:"iso_code"`
			} `json:"country"`
			Continent *struct{ Code string } `json:"continent"`
		}
		if err := json.Unmarshal(data, &raw); err != nil {
			continue // not every file has these fields with these types
		}
		for _, m := range raw {
			for _, v := range m {
				if v.Country == nil || v.Continent == nil || v.Country.IsoCode == "" {
					continue
				}
				pairs++
				cc := [2]byte{v.Country.IsoCode[0], v.Country.IsoCode[1]}
				if got := code(ContinentOf(cc)); got != v.Continent.Code {
					t.Errorf("%s: ContinentOf(%s) = %q, want %q", filepath.Base(f), v.Country.IsoCode, got, v.Continent.Code)
				}
			}
		}
	}
	if pairs == 0 {
		t.Fatal("no (country, continent) pair in the source data")
	}
}

func TestContinentTable(t *testing.T) {
	if got := len(continents); got != 249+3 {
		t.Errorf("len(continents) = %d, want 249 ISO 3166-1 codes + XK (Kosovo, as MaxMind uses it) + EU + AP", got)
	}
	for cc, k := range continents {
		if !strings.Contains("AF AN AS EU NA OC SA", string(k[:])) {
			t.Errorf("continent of %s = %s", cc, k)
		}
	}
}

func TestBrokenDatabases(t *testing.T) {
	dir := testenv.Testdata(t, "geo/maxmind-db/test-data")
	cases := []struct {
		file    string
		country bool
		want    string // substring of the error
	}{
		{"GeoIP2-City-Test-Broken-Double-Format.mmdb", true, "GeoIP2-City-Test-Broken-Double-Format.mmdb"},
		{"GeoIP2-City-Test-Invalid-Node-Count.mmdb", true, "GeoIP2-City-Test-Invalid-Node-Count.mmdb"},
		{"MaxMind-DB-test-broken-pointers-24.mmdb", true, "MaxMind-DB-test-broken-pointers-24.mmdb"},
		{"MaxMind-DB-test-broken-search-tree-24.mmdb", true, "MaxMind-DB-test-broken-search-tree-24.mmdb"},
		{"maps-with-pointers.raw", true, "maps-with-pointers.raw"},
		{"does-not-exist.mmdb", true, "does-not-exist.mmdb"},
		{"GeoIP2-Domain-Test.mmdb", true, "no country"},
		{"GeoLite2-City-Test.mmdb", false, "no AS number"},
		{"MaxMind-DB-test-decoder.mmdb", true, "no country"},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join(dir, tc.file)
			cfg := Config{ASNDatabases: []string{path}}
			if tc.country {
				cfg = Config{CountryDatabases: []string{path}}
			}
			db, err := Open(cfg)
			if err == nil {
				t.Fatalf("Open(%s) = %v, nil; want an error", tc.file, db)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Open(%s) error = %q, want it to contain %q", tc.file, err, tc.want)
			}
		})
	}
}

// TestEveryTestDatabaseLoadsOrFails loads every database of the test suite both ways: none
// may crash, and each either loads or fails with an error naming the file.
func TestEveryTestDatabaseLoadsOrFails(t *testing.T) {
	dir := testenv.Testdata(t, "geo/maxmind-db/test-data")
	files, _ := filepath.Glob(filepath.Join(dir, "*.mmdb"))
	if len(files) < 30 {
		t.Fatalf("only %d test databases in %s", len(files), dir)
	}
	loaded := 0
	for _, f := range files {
		for _, cfg := range []Config{{CountryDatabases: []string{f}}, {ASNDatabases: []string{f}}} {
			if _, err := Open(cfg); err != nil {
				if !strings.Contains(err.Error(), f) {
					t.Errorf("Open(%s) error %q does not name the file", f, err)
				}
				continue
			}
			loaded++
		}
	}
	t.Logf("%d of %d loads succeeded", loaded, 2*len(files))
}
