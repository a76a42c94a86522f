package geo

import (
	"bufio"
	"compress/gzip"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/gaissmai/bart"
	"github.com/netledger/netledger/internal/testenv"
)

// fullRIR writes the generated full-size (200,000-line) RIR file once per test binary.
func fullRIR(tb testing.TB) (string, []rirRange) {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "delegated-nro-extended-latest")
	return path, writeGenerated(tb, path, 1, 200_000)
}

// probes returns 1<<16 addresses drawn from the delegations (v4 or v6), fixed seed.
func probes(ranges []rirRange, v4 bool) []netip.Addr {
	rng := rand.New(rand.NewPCG(5, 5))
	var pool []rirRange
	for _, r := range ranges {
		if r.first.Is4() == v4 {
			pool = append(pool, r)
		}
	}
	out := make([]netip.Addr, 1<<16)
	for i := range out {
		r := pool[rng.IntN(len(pool))]
		a := r.first
		if rng.IntN(2) == 0 {
			a = r.last
		}
		out[i] = a
	}
	return out
}

func benchLookup(b *testing.B, db *DB, addrs []netip.Addr) {
	b.ReportAllocs()
	b.ResetTimer()
	var sink Info
	for i := 0; b.Loop(); i++ {
		sink = db.Lookup(addrs[i&(len(addrs)-1)])
	}
	if sink == (Info{}) && len(addrs) == 0 {
		b.Fatal("unreachable")
	}
}

// BenchmarkLookup: lookups in the table of the generated full-size RIR file (RIR), and in that
// table merged with the real 1,062,046-prefix routing table as AS data (Full: about the size
// of GeoLite2-Country + GeoLite2-ASN together). The probes are 65,536 addresses drawn at random
// from the delegations, so most lookups miss the CPU caches; the -hot variants reuse 256.
func BenchmarkLookup(b *testing.B) {
	path, ranges := fullRIR(b)
	db, err := Open(Config{RIRFiles: []string{path}})
	if err != nil {
		b.Fatal(err)
	}
	v4, v6 := probes(ranges, true), probes(ranges, false)
	b.Run("RIR/IPv4", func(b *testing.B) { benchLookup(b, db, v4) })
	b.Run("RIR/IPv6", func(b *testing.B) { benchLookup(b, db, v6) })

	full := withRealPrefixes(b, db)
	b.Run("Full/IPv4", func(b *testing.B) { benchLookup(b, full, v4) })
	b.Run("Full/IPv6", func(b *testing.B) { benchLookup(b, full, v6) })
	// Hot: 256 addresses, a popular set of clients whose paths stay in the CPU caches.
	b.Run("Full/IPv4-hot", func(b *testing.B) { benchLookup(b, full, v4[:256]) })
	b.Run("Full/IPv6-hot", func(b *testing.B) { benchLookup(b, full, v6[:256]) })
	b.Run("Full/IPv4-mapped", func(b *testing.B) {
		mapped := make([]netip.Addr, len(v4))
		for i, a := range v4 {
			mapped[i] = netip.AddrFrom16(a.As16())
		}
		benchLookup(b, full, mapped)
	})
}

// withRealPrefixes returns db's locations combined with an AS table holding every prefix of the
// real routing table (AS numbers drawn at random).
func withRealPrefixes(b *testing.B, db *DB) *DB {
	path := testenv.Testdata(b, "lpm/bart/prefixes.txt.gz")
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		b.Fatal(err)
	}
	asns := new(bart.Table[uint32])
	rng := rand.New(rand.NewPCG(1, 1))
	sc := bufio.NewScanner(z)
	for sc.Scan() {
		p, err := netip.ParsePrefix(sc.Text())
		if err != nil {
			b.Fatal(err)
		}
		asns.Insert(p.Masked(), 1+uint32(rng.IntN(400000)))
	}
	locs := new(bart.Table[loc])
	for p, i := range db.table.All() {
		locs.Insert(p, loc{Country: i.Country, Continent: i.Continent})
	}
	out := &DB{table: combine(locs, asns), names: db.names}
	v4, v6 := out.Len()
	b.Logf("full table: %d IPv4 + %d IPv6 prefixes", v4, v6)
	return out
}

// BenchmarkLoadRIR: Open of the generated full-size RIR file (200,000 lines); heap-MB is the
// heap the loaded DB keeps.
func BenchmarkLoadRIR(b *testing.B) {
	path, _ := fullRIR(b)
	cfg := Config{RIRFiles: []string{path}}
	b.ReportAllocs()
	var db *DB
	for b.Loop() {
		var err error
		if db, err = Open(cfg); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	var before, after runtime.MemStats
	db = nil
	runtime.GC()
	runtime.ReadMemStats(&before)
	db, _ = Open(cfg)
	runtime.GC()
	runtime.ReadMemStats(&after)
	v4, v6 := db.Len()
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "heap-MB")
	b.ReportMetric(float64(v4+v6), "prefixes")
	runtime.KeepAlive(db)
}

// TestLookupAllocatesNothing is the allocation half of the benchmark, as a test.
func TestLookupAllocatesNothing(t *testing.T) {
	db, err := Open(Config{})
	if err != nil {
		t.Fatal(err)
	}
	t4 := new(bart.Table[loc])
	t4.Insert(netip.MustParsePrefix("192.0.2.0/24"), loc{Country: [2]byte{'F', 'R'}})
	t4.Insert(netip.MustParsePrefix("2001:db8::/32"), loc{Country: [2]byte{'D', 'E'}})
	db.table = combine(t4, new(bart.Table[uint32]))
	addrs := []netip.Addr{
		netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1"),
		netip.MustParseAddr("::ffff:192.0.2.1"), netip.MustParseAddr("198.51.100.1"),
	}
	var got Info
	allocs := testing.AllocsPerRun(1000, func() {
		for _, a := range addrs {
			got = db.Lookup(a)
		}
	})
	if allocs != 0 {
		t.Errorf("Lookup allocates %.1f times per run", allocs)
	}
	if got != (Info{}) || db.Lookup(addrs[2]).CountryCode() != "FR" {
		t.Errorf("lookups: %+v, %+v", got, db.Lookup(addrs[2]))
	}
}
