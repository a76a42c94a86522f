package geo

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"
)

// DemoNetwork is a network of synthetic geo data: who holds it, where, under which AS.
type DemoNetwork struct {
	Prefix  netip.Prefix
	Country [2]byte // ISO 3166-1 alpha-2, upper case
	ASN     uint32
	ASName  string
}

// demoCountries are the countries DemoNetworks draws from, with rough weights.
var demoCountries = []struct {
	cc     string
	weight int
}{
	{"US", 20}, {"DE", 8}, {"FR", 7}, {"GB", 7}, {"NL", 5}, {"JP", 6}, {"CN", 6}, {"IN", 5},
	{"BR", 5}, {"RU", 4}, {"CA", 3}, {"AU", 3}, {"IT", 3}, {"ES", 3}, {"SE", 2}, {"PL", 2},
	{"KR", 3}, {"ZA", 2}, {"MX", 2}, {"AR", 2}, {"NG", 1}, {"EG", 1}, {"SG", 2}, {"NZ", 1},
}

// DemoNetworks returns n synthetic networks, the same for the same seed: about four in five
// IPv4 (/16 to /24), the others IPv6 (/32 to /48), without overlaps, spread over two dozen
// countries with realistic weights, held by ASes from the private-use range (4200000000 +)
// so that they are never mistaken for real ones — a few ASes hold several networks, as real
// ones do. The IPv4 networks are taken in 20.0.0.0–99.255.255.255 and the IPv6 ones in
// 2a00::/12; when the IPv4 space is used up (about 100,000 networks) fewer than n come back.
func DemoNetworks(seed uint64, n int) []DemoNetwork {
	rng := rand.New(rand.NewPCG(seed, 0x6e65746c65646765)) // "netledge"
	total := 0
	for _, c := range demoCountries {
		total += c.weight
	}
	type as struct {
		asn     uint32
		name    string
		country [2]byte
	}
	var ases []as
	out := make([]DemoNetwork, 0, n)
	v4 := uint64(20 << 24)
	v6 := netip.MustParseAddr("2a00::")
	for i := 0; i < n; i++ {
		var a as
		if len(ases) > 0 && rng.IntN(4) == 0 {
			a = ases[rng.IntN(len(ases))] // another network of a known AS
		} else {
			w := rng.IntN(total)
			cc := demoCountries[0].cc
			for _, c := range demoCountries {
				if w < c.weight {
					cc = c.cc
					break
				}
				w -= c.weight
			}
			a = as{asn: 4200000000 + uint32(len(ases)+1), country: [2]byte{cc[0], cc[1]}}
			a.name = fmt.Sprintf("%s %s-%d", demoNames[rng.IntN(len(demoNames))], cc, len(ases)+1)
			ases = append(ases, a)
		}
		var p netip.Prefix
		if rng.IntN(5) > 0 {
			bits := 16 + rng.IntN(9)
			size := uint64(1) << (32 - bits)
			v4 = (v4 + size - 1) &^ (size - 1) // align
			if v4+size > 100<<24 {
				break // the space is used up (about 100,000 networks)
			}
			p = netip.PrefixFrom(addr4From(v4), bits)
			v4 += size
			v4 += uint64(rng.IntN(4)) * size // gaps, as between real delegations
		} else {
			bits := 32 + rng.IntN(17)
			p = netip.PrefixFrom(v6, bits)
			for p.Masked() != p {
				v6 = lastAddr(netip.PrefixFrom(v6, bits)).Next()
				p = netip.PrefixFrom(v6, bits)
			}
			v6 = lastAddr(p).Next()
		}
		out = append(out, DemoNetwork{Prefix: p, Country: a.country, ASN: a.asn, ASName: a.name})
	}
	return out
}

var demoNames = []string{
	"Demo Telecom", "Example Broadband", "Sample Cable", "Acme Hosting", "Fictional Mobile",
	"Placeholder Networks", "Test Fibre", "Illustrative Transit",
}

func addr4From(v uint64) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// demoRegistry returns the RIR serving a country's continent.
func demoRegistry(cc [2]byte) string {
	switch code(ContinentOf(cc)) {
	case "AF":
		return "afrinic"
	case "AS", "OC":
		return "apnic"
	case "NA":
		return "arin"
	case "SA":
		return "lacnic"
	}
	return "ripencc"
}

// WriteDemoRIR writes nets as an NRO-style delegated-extended statistics file, as the real one
// is laid out: version header, summary lines, then asn, ipv4 and ipv6 records in address order,
// each with its registry (from the country's continent), date, status and opaque id (one per
// AS). Adjacent IPv4 networks of the same AS are written as one record whose address count is
// often not a power of two, as in the real files; IANA's reserved 240.0.0.0/4 and an available
// IPv6 block complete it. date stamps the header. Open reads the result with RIRFiles.
func WriteDemoRIR(w io.Writer, nets []DemoNetwork, date time.Time) error {
	type rec = demoRecord
	var asns, v4s, v6s []rec
	seen := map[uint32]bool{}
	sorted := slices.Clone(nets)
	slices.SortFunc(sorted, func(a, b DemoNetwork) int {
		return cmp.Or(a.Prefix.Addr().Compare(b.Prefix.Addr()), a.Prefix.Bits()-b.Prefix.Bits())
	})
	day := date.UTC().Format("20060102")
	for _, n := range sorted {
		if !n.Prefix.IsValid() {
			return fmt.Errorf("invalid prefix for AS%d", n.ASN)
		}
		if !isLetter(n.Country[0]) || !isLetter(n.Country[1]) {
			return fmt.Errorf("invalid country %q for %s", n.Country[:], n.Prefix)
		}
		reg, cc, id := demoRegistry(n.Country), string(n.Country[:]), fmt.Sprintf("demo-%d", n.ASN)
		if n.ASN != 0 && !seen[n.ASN] {
			seen[n.ASN] = true
			asns = append(asns, rec{reg: reg, cc: cc, typ: "asn", asn: n.ASN, value: 1, status: "assigned", id: id})
		}
		p := n.Prefix.Masked()
		if p.Addr().Is4() {
			size := uint64(1) << (32 - p.Bits())
			if l := len(v4s) - 1; l >= 0 && v4s[l].id == id && v4s[l].cc == cc && v4end(v4s[l]) == p.Addr() {
				v4s[l].value += size // contiguous space of the same holder: one record
				continue
			}
			v4s = append(v4s, rec{reg: reg, cc: cc, typ: "ipv4", start: p.Addr(), value: size, status: "allocated", id: id})
		} else {
			v6s = append(v6s, rec{reg: reg, cc: cc, typ: "ipv6", start: p.Addr(), value: uint64(p.Bits()), status: "allocated", id: id})
		}
	}
	slices.SortFunc(asns, func(a, b rec) int { return cmp.Compare(a.asn, b.asn) })
	v4s = append(v4s, rec{reg: "iana", cc: "ZZ", typ: "ipv4", start: netip.MustParseAddr("240.0.0.0"), value: 1 << 28, status: "ietf", id: "ietf"})
	v6s = append(v6s, rec{reg: "ripencc", cc: "", typ: "ipv6", start: netip.MustParseAddr("2c0f:8000::"), value: 20, status: "available", id: ""})

	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "2.3|nro|%s|%d|19830705|%s|+0000\n", day, len(asns)+len(v4s)+len(v6s), day)
	fmt.Fprintf(bw, "nro|*|asn|*|%d|summary\nnro|*|ipv4|*|%d|summary\nnro|*|ipv6|*|%d|summary\n", len(asns), len(v4s), len(v6s))
	for _, r := range asns {
		fmt.Fprintf(bw, "%s|%s|asn|%d|%d|%s|%s|%s|e-stats\n", r.reg, r.cc, r.asn, r.value, day, r.status, r.id)
	}
	for _, r := range append(v4s, v6s...) {
		d := day
		if r.status == "available" {
			d = ""
		}
		fmt.Fprintf(bw, "%s|%s|%s|%s|%d|%s|%s|%s|e-stats\n", r.reg, r.cc, r.typ, r.start, r.value, d, r.status, r.id)
	}
	return bw.Flush()
}

// demoRecord is one record of a delegated-extended file.
type demoRecord struct {
	reg, cc, typ string
	start        netip.Addr
	asn          uint32
	value        uint64
	status, id   string
}

// v4end returns the address after an ipv4 record.
func v4end(r demoRecord) netip.Addr {
	b := r.start.As4()
	return addr4From(uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3]) + r.value)
}

// WriteDemoASNames writes the names of the ASes of nets as an `asn<TAB>name` file (each AS
// once, in AS number order). Open reads the result with ASNames.
func WriteDemoASNames(w io.Writer, nets []DemoNetwork) error {
	names := map[uint32]string{}
	for _, n := range nets {
		if _, ok := names[n.ASN]; !ok && n.ASN != 0 && n.ASName != "" {
			names[n.ASN] = n.ASName
		}
	}
	asns := make([]uint32, 0, len(names))
	for asn := range names {
		asns = append(asns, asn)
	}
	slices.Sort(asns)
	bw := bufio.NewWriter(w)
	fmt.Fprintln(bw, "# AS names of netledger's synthetic demo data")
	for _, asn := range asns {
		fmt.Fprintf(bw, "%d\t%s\n", asn, names[asn])
	}
	return bw.Flush()
}
