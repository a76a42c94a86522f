package geo

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/netledger/netledger/internal/testenv"
)

func TestParseRIRLine(t *testing.T) {
	cases := []struct {
		line    string
		ok      bool
		want    RIRRecord
		prefixs []string
		err     string
	}{
		{line: "2|nro|20160406|395402|19821213|20160406|+0000"},
		{line: "2.3|arin|1459987200|141442|19700101|20160406|-0400"},
		{line: "nro|*|ipv4|*|166309|summary"},
		{line: "# comment"},
		{line: ""},
		{
			line: "iana|ZZ|asn|0|1|19920101|ietf|ietf|iana", ok: true,
			want: RIRRecord{Registry: "iana", Country: [2]byte{'Z', 'Z'}, Type: RIRASN, Value: 1, Status: RIRReserved},
		},
		{line: "arin|US|asn|1|1|20010920|delegated", err: `invalid status "delegated"`},
		{
			line: "arin|US|asn|1|1|20010920|assigned|abc43e5fcdb68e284085cf6f1b34834e|e-stats", ok: true,
			want: RIRRecord{Registry: "arin", Country: [2]byte{'U', 'S'}, Type: RIRASN, ASN: 1, Value: 1, Status: RIRAssigned},
		},
		{
			line: "apnic|CN|ipv4|1.0.2.0|512|20110414|assigned|A92E1062|e-stats", ok: true,
			want:    RIRRecord{Registry: "apnic", Country: [2]byte{'C', 'N'}, Type: RIRIPv4, Start: netip.MustParseAddr("1.0.2.0"), Value: 512, Status: RIRAssigned},
			prefixs: []string{"1.0.2.0/23"},
		},
		{
			line: "ripencc|NL|ipv4|5.132.0.0|768|20120101|allocated", ok: true,
			want:    RIRRecord{Registry: "ripencc", Country: [2]byte{'N', 'L'}, Type: RIRIPv4, Start: netip.MustParseAddr("5.132.0.0"), Value: 768, Status: RIRAllocated},
			prefixs: []string{"5.132.0.0/23", "5.132.2.0/24"},
		},
		{
			line: "arin|us|ipv4|23.0.1.0|1280|20120101|allocated", ok: true,
			want:    RIRRecord{Registry: "arin", Country: [2]byte{'U', 'S'}, Type: RIRIPv4, Start: netip.MustParseAddr("23.0.1.0"), Value: 1280, Status: RIRAllocated},
			prefixs: []string{"23.0.1.0/24", "23.0.2.0/23", "23.0.4.0/23"},
		},
		{
			line: "ripencc|ZZ|ipv6|2001:601::|32|20160406|reserved||e-stats", ok: true,
			want:    RIRRecord{Registry: "ripencc", Country: [2]byte{'Z', 'Z'}, Type: RIRIPv6, Start: netip.MustParseAddr("2001:601::"), Value: 32, Status: RIRReserved},
			prefixs: []string{"2001:601::/32"},
		},
		{
			line: "lacnic||ipv4|0.0.0.0|4294967296|20160406|available", ok: true,
			want:    RIRRecord{Registry: "lacnic", Type: RIRIPv4, Start: netip.MustParseAddr("0.0.0.0"), Value: 1 << 32, Status: RIRAvailable},
			prefixs: []string{"0.0.0.0/0"},
		},
		{line: "arin|US|ipv4|255.255.255.0|257|20120101|allocated", err: "invalid address count 257"},
		{line: "arin|US|ipv4|1.2.3.0|0|20120101|allocated", err: "invalid address count 0"},
		{line: "arin|US|ipv4|1.2.3|256|20120101|allocated", err: `invalid IPv4 address "1.2.3"`},
		{line: "arin|US|ipv4|2001:db8::|256|20120101|allocated", err: "invalid IPv4 address"},
		{line: "arin|US|ipv6|2001:db8::1|32|20120101|allocated", err: "host bits set"},
		{line: "arin|US|ipv6|2001:db8::|129|20120101|allocated", err: "invalid IPv6 prefix length 129"},
		{line: "arin|US|ipv6|::ffff:1.2.3.0|120|20120101|allocated", err: "invalid IPv6 address"},
		{line: "arin|USA|ipv4|1.2.3.0|256|20120101|allocated", err: "invalid country code"},
		{line: "arin|US|ipv5|1.2.3.0|256|20120101|allocated", err: `invalid type "ipv5"`},
		{line: "arin|US|ipv4|1.2.3.0|x|20120101|allocated", err: `invalid value "x"`},
		{line: "arin|US|asn|4294967295|2|20120101|allocated", err: "invalid AS count"},
		{line: "arin|US|ipv4|1.2.3.0|256", err: "5 fields"},
		{line: "|US|ipv4|1.2.3.0|256|20120101|allocated", err: "empty registry"},
		{line: "2|nro", err: "header has 2 fields"},
	}
	for _, tc := range cases {
		t.Run(tc.line, func(t *testing.T) {
			got, ok, err := ParseRIRLine([]byte(tc.line))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParseRIRLine() error = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || ok != tc.ok || got != tc.want {
				t.Fatalf("ParseRIRLine() = %+v, %v, %v; want %+v, %v", got, ok, err, tc.want, tc.ok)
			}
			var want []netip.Prefix
			for _, p := range tc.prefixs {
				want = append(want, netip.MustParsePrefix(p))
			}
			if ps := got.AppendPrefixes(nil); !slices.Equal(ps, want) {
				t.Errorf("AppendPrefixes() = %v, want %v", ps, want)
			}
		})
	}
}

func TestRIRExcerpt(t *testing.T) {
	path := testenv.Testdata(t, "geo/rir-excerpt/extended-delegated-stats.txt")
	db, err := Open(Config{RIRFiles: []string{path}})
	if err != nil {
		t.Fatal(err)
	}
	rep := db.Reports()[0]
	// 19 lines: header, 3 summaries, 4 asn (one held by the IETF), 10 ipv4/ipv6 delegations,
	// 1 reserved.
	want := FileReport{Path: path, Kind: "rir", Lines: 19, Records: 10, Prefixes: 10, Ignored: 9}
	if !reflect.DeepEqual(rep, want) {
		t.Errorf("report = %+v, want %+v", rep, want)
	}
	cases := []struct{ addr, country, continent string }{
		{"1.0.0.0", "AU", "OC"},
		{"1.0.0.255", "AU", "OC"},
		{"1.0.1.0", "CN", "AS"},
		{"1.0.3.255", "CN", "AS"},
		{"1.0.4.0", "", ""},
		{"2.0.0.0", "FR", "EU"},
		{"2.15.255.255", "FR", "EU"},
		{"2.16.0.1", "EU", "EU"},
		{"2.31.255.255", "GB", "EU"},
		{"2.47.255.255", "IT", "EU"},
		{"2.48.0.0", "", ""},
		{"2001:200::1", "JP", "AS"},
		{"2001:200:3fff:ffff:ffff:ffff:ffff:ffff", "JP", "AS"},
		{"2001:600:ffff::", "EU", "EU"},
		{"2001:601::1", "", ""}, // reserved
		{"::ffff:1.0.0.1", "AU", "OC"},
	}
	for _, tc := range cases {
		got := db.Lookup(netip.MustParseAddr(tc.addr))
		if got.CountryCode() != tc.country || got.ContinentCode() != tc.continent || got.ASN != 0 {
			t.Errorf("Lookup(%s) = %s, want {%s %s AS0}", tc.addr, fmtInfo(got), tc.country, tc.continent)
		}
	}
}

// rirRange is one delegation of a generated file, for the naive oracle.
type rirRange struct {
	first, last netip.Addr
	country     [2]byte
}

// genRIR writes a delegated-extended file of about n lines in the real format (version header,
// summaries, asn, ipv4 with counts that are often not powers of two, ipv6, available and
// reserved space, opaque ids) and returns the delegations with a country, in address order.
func genRIR(w *bufio.Writer, seed uint64, n int) []rirRange {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	regs := []string{"afrinic", "apnic", "arin", "lacnic", "ripencc"}
	countries := make([][2]byte, 0, len(continents))
	for c := range continents {
		countries = append(countries, c)
	}
	slices.SortFunc(countries, func(a, b [2]byte) int { return bytes.Compare(a[:], b[:]) })
	var body bytes.Buffer
	var out []rirRange
	var nASN, n4, n6 int
	line := func(reg, cc, typ, start string, value uint64, status string) {
		date := fmt.Sprintf("%04d%02d%02d", 1990+rng.IntN(35), 1+rng.IntN(12), 1+rng.IntN(28))
		if status == "available" || status == "reserved" {
			date = ""
		}
		fmt.Fprintf(&body, "%s|%s|%s|%s|%d|%s|%s|%x|e-stats\n", reg, cc, typ, start, value, date, status, rng.Uint64())
	}
	status := func() (string, bool) {
		switch r := rng.IntN(20); {
		case r == 0:
			return "available", false
		case r == 1:
			return "reserved", false
		case r < 11:
			return "allocated", true
		}
		return "assigned", true
	}
	v4 := uint64(1 << 24) // 1.0.0.0
	v6 := netip.MustParseAddr("2001:200::")
	for i := 0; i < n; i++ {
		reg := regs[rng.IntN(len(regs))]
		st, has := status()
		cc := countries[rng.IntN(len(countries))]
		ccs := string(cc[:])
		if !has {
			ccs = []string{"ZZ", ""}[rng.IntN(2)]
		}
		switch r := rng.IntN(10); {
		case r < 2:
			nASN++
			line(reg, ccs, "asn", fmt.Sprint(1+rng.IntN(400000)), uint64(1+rng.IntN(4)), st)
		case r < 8:
			if rng.IntN(4) == 0 {
				v4 += uint64(rng.IntN(16)) << 8 // a gap
			}
			var count uint64
			switch r := rng.IntN(20); {
			case r == 0:
				count = uint64(1 + rng.IntN(1000)) // odd sizes, as in early ARIN space
			case r < 7:
				count = uint64(1+rng.IntN(40)) * 256 // 768, 1280…: several prefixes
			default:
				count = 256 << rng.IntN(8) // a power of two, not always aligned on itself
			}
			if v4+count > 224<<24 {
				continue
			}
			first := addr4(v4)
			n4++
			line(reg, ccs, "ipv4", first.String(), count, st)
			if has {
				out = append(out, rirRange{first, addr4(v4 + count - 1), cc})
			}
			v4 = (v4 + count + 255) &^ 255 // the next delegation starts on a /24
		default:
			bits := 29 + rng.IntN(20)
			p := netip.PrefixFrom(v6, bits)
			for p.Masked() != p { // align on the prefix length
				v6 = lastAddr(netip.PrefixFrom(v6, bits)).Next()
				p = netip.PrefixFrom(v6, bits)
			}
			if rng.IntN(4) == 0 {
				v6 = lastAddr(p).Next() // a gap
				p = netip.PrefixFrom(v6, bits)
			}
			n6++
			line(reg, ccs, "ipv6", v6.String(), uint64(bits), st)
			if has {
				out = append(out, rirRange{v6, lastAddr(p), cc})
			}
			v6 = lastAddr(p).Next()
		}
	}
	fmt.Fprintf(w, "2.3|nro|20260101|%d|19830705|20260101|+0000\n", nASN+n4+n6)
	fmt.Fprintf(w, "nro|*|asn|*|%d|summary\nnro|*|ipv4|*|%d|summary\nnro|*|ipv6|*|%d|summary\n", nASN, n4, n6)
	w.Write(body.Bytes())
	w.Flush()
	slices.SortFunc(out, func(a, b rirRange) int { return a.first.Compare(b.first) })
	return out
}

func addr4(v uint64) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// oracle finds the delegation holding a by binary search over the disjoint sorted ranges.
func oracle(ranges []rirRange, a netip.Addr) [2]byte {
	i, _ := slices.BinarySearchFunc(ranges, a, func(r rirRange, a netip.Addr) int {
		switch {
		case r.last.Less(a):
			return -1
		case a.Less(r.first):
			return 1
		}
		return 0
	})
	if i < len(ranges) && !a.Less(ranges[i].first) && !ranges[i].last.Less(a) {
		return ranges[i].country
	}
	return [2]byte{}
}

func writeGenerated(t testing.TB, path string, seed uint64, n int) []rirRange {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var w *bufio.Writer
	if strings.HasSuffix(path, ".gz") {
		z := gzip.NewWriter(f)
		defer z.Close()
		w = bufio.NewWriter(z)
	} else {
		w = bufio.NewWriter(f)
	}
	return genRIR(w, seed, n)
}

func TestRIRGeneratedFullSize(t *testing.T) {
	lines := 200_000
	if testing.Short() {
		lines = 20_000
	}
	path := filepath.Join(t.TempDir(), "delegated-nro-extended-latest")
	ranges := writeGenerated(t, path, 1, lines)
	db, err := Open(Config{RIRFiles: []string{path}})
	if err != nil {
		t.Fatal(err)
	}
	rep := db.Reports()[0]
	if rep.Bad != 0 || rep.Records != len(ranges) || rep.Lines != lines+4 {
		t.Fatalf("report = %+v, want %d lines, %d records, no bad line", rep, lines+4, len(ranges))
	}
	check := func(a netip.Addr) {
		t.Helper()
		want := oracle(ranges, a)
		got := db.Lookup(a)
		if got.Country != want || got.Continent != ContinentOf(want) {
			t.Fatalf("Lookup(%s) = %s, want country %q", a, fmtInfo(got), want)
		}
	}
	for _, r := range ranges {
		check(r.first)
		check(r.last)
		check(r.first.Prev())
		check(r.last.Next())
	}
	rng := rand.New(rand.NewPCG(2, 3))
	for range 100_000 {
		check(addr4(uint64(1<<24 + rng.IntN(200<<24))))
		var b [16]byte
		b[0], b[1], b[2] = 0x20, 0x01, byte(2+rng.IntN(6))
		for i := 3; i < 16; i++ {
			b[i] = byte(rng.Uint32())
		}
		check(netip.AddrFrom16(b))
	}
	v4, v6 := db.Len()
	t.Logf("%d lines, %d delegations, %d IPv4 + %d IPv6 prefixes", rep.Lines, len(ranges), v4, v6)
}

func TestRIRGzip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "delegated-ripencc-extended-latest.gz")
	ranges := writeGenerated(t, path, 7, 2000)
	db, err := Open(Config{RIRFiles: []string{path}})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range ranges {
		if got := db.Lookup(r.first); got.Country != r.country {
			t.Fatalf("Lookup(%s) = %s, want %s", r.first, fmtInfo(got), r.country)
		}
	}
}

func TestRIRBadLinesKeepValidOnes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "delegated")
	content := "2|ripencc|20260101|4|19830705|20260101|+0100\n" +
		"ripencc|FR|ipv4|2.0.0.0|1048576|20100712|allocated\n" +
		"ripencc|FR|ipv4|2.16.0.0|not-a-number|20100712|allocated\n" +
		"garbage\n" +
		"ripencc|DE|ipv6|2a00::|12|20100712|allocated\n" +
		strings.Repeat("x", 70<<10) + "\n" +
		"ripencc|GB|ipv4|2.24.0.0|524288|20100921|assigned\n"
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	db, err := Open(Config{RIRFiles: []string{path}})
	if err != nil {
		t.Fatal(err)
	}
	rep := db.Reports()[0]
	if rep.Bad != 3 || rep.Records != 3 || rep.Lines != 7 {
		t.Errorf("report = %+v, want 7 lines, 3 records, 3 bad", rep)
	}
	var msgs []string
	for _, e := range rep.Errors {
		msgs = append(msgs, e.Error())
	}
	want := []string{
		path + `:3: invalid value "not-a-number"`,
		path + ":4: 1 fields, want at least 7",
		path + ":6: line longer than 64 KiB",
	}
	if !slices.Equal(msgs, want) {
		t.Errorf("errors = %q, want %q", msgs, want)
	}
	for addr, cc := range map[string]string{"2.0.0.1": "FR", "2a00::1": "DE", "2.24.0.1": "GB", "2.16.0.1": ""} {
		if got := db.Lookup(netip.MustParseAddr(addr)).CountryCode(); got != cc {
			t.Errorf("Lookup(%s) country = %q, want %q", addr, got, cc)
		}
	}
	// A file with no valid record at all is an error naming it.
	if err := os.WriteFile(path, []byte("garbage\nmore garbage\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(Config{RIRFiles: []string{path}}); err == nil || !strings.Contains(err.Error(), path+":1:") {
		t.Errorf("Open(garbage) error = %v, want one naming %s:1", err, path)
	}
}

// TestRIRMergesConsecutiveDelegations: adjacent blocks of one country become fewer prefixes;
// a different country or a gap ends the run.
func TestRIRMergesConsecutiveDelegations(t *testing.T) {
	path := filepath.Join(t.TempDir(), "delegated")
	write(t, path, "apnic|CN|ipv4|1.0.0.0|256|20110414|assigned\n"+
		"apnic|CN|ipv4|1.0.1.0|256|20110414|assigned\n"+
		"apnic|CN|ipv4|1.0.2.0|512|20110414|allocated\n"+ // 1.0.0.0/22
		"apnic|JP|ipv4|1.0.4.0|1024|20110414|allocated\n"+ // 1.0.4.0/22
		"apnic|JP|ipv4|1.0.12.0|256|20110414|allocated\n"+ // after a gap: 1.0.12.0/24
		"apnic|ZZ|ipv4|1.0.13.0|256||reserved\n"+
		"apnic|JP|ipv4|1.0.14.0|512|20110414|allocated\n") // 1.0.14.0/23
	db, err := Open(Config{RIRFiles: []string{path}})
	if err != nil {
		t.Fatal(err)
	}
	if rep := db.Reports()[0]; rep.Records != 6 || rep.Prefixes != 4 {
		t.Errorf("report = %+v, want 6 records in 4 prefixes", rep)
	}
	for addr, cc := range map[string]string{"1.0.3.255": "CN", "1.0.4.0": "JP", "1.0.8.0": "", "1.0.12.255": "JP", "1.0.13.1": "", "1.0.15.255": "JP"} {
		if got := db.Lookup(netip.MustParseAddr(addr)).CountryCode(); got != cc {
			t.Errorf("Lookup(%s) = %q, want %q", addr, got, cc)
		}
	}
}

func FuzzParseRIRLine(f *testing.F) {
	for _, s := range []string{
		"2|nro|20160406|395402|19821213|20160406|+0000",
		"nro|*|ipv4|*|166309|summary",
		"arin|US|asn|1|1|20010920|assigned|abc43e5fcdb68e284085cf6f1b34834e|e-stats",
		"apnic|CN|ipv4|1.0.2.0|512|20110414|assigned|A92E1062|e-stats",
		"arin|US|ipv4|23.0.1.0|1280|20120101|allocated",
		"lacnic||ipv4|0.0.0.0|4294967296|20160406|available",
		"ripencc|ZZ|ipv6|2001:601::|32|20160406|reserved||e-stats",
		"arin|US|ipv4|255.255.255.0|257|20120101|allocated",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		rec, ok, err := ParseRIRLine(line)
		if err != nil || !ok {
			return
		}
		ps := rec.AppendPrefixes(nil)
		switch rec.Type {
		case RIRASN:
			if len(ps) != 0 {
				t.Fatalf("asn record gave prefixes %v", ps)
			}
		case RIRIPv4:
			// The prefixes tile [Start, Start+Value) exactly, in order.
			next, total := rec.Start, uint64(0)
			for _, p := range ps {
				if p.Addr() != next || p.Masked() != p || !p.Addr().Is4() {
					t.Fatalf("%q: prefix %v does not continue at %v", line, p, next)
				}
				total += 1 << (32 - p.Bits())
				next = lastAddr(p).Next()
			}
			if total != rec.Value {
				t.Fatalf("%q: prefixes %v cover %d addresses, want %d", line, ps, total, rec.Value)
			}
		case RIRIPv6:
			if len(ps) != 1 || ps[0].Addr() != rec.Start || ps[0].Bits() != int(rec.Value) || ps[0].Masked() != ps[0] {
				t.Fatalf("%q: prefixes %v", line, ps)
			}
		}
	})
}
