// Package geo maps client addresses to their country, continent and AS number, and AS numbers
// to names. It reads MaxMind-format databases (GeoLite2/GeoIP2, DB-IP lite, IPinfo lite), RIR
// delegated statistics files and plain AS names files once, at load, into one immutable
// longest-prefix-match table of small values: a lookup never touches the files and allocates
// nothing. A Reloader swaps in a fresh DB when the files change, without blocking readers.
//
// The region of a client, as netledger reports it, is its continent code (AF, AN, AS, EU, NA,
// OC, SA): from the database record, or derived from the country for RIR data. The registry
// that delegated the space (RIPE NCC, ARIN…) is not a region and is not reported.
package geo

import (
	"fmt"
	"net/netip"

	"github.com/gaissmai/bart"
)

// Info is what geo knows of an address. The zero value means unknown; each field may be
// unknown on its own.
type Info struct {
	// Country is the ISO 3166-1 alpha-2 code (upper case), e.g. "FR". RIR data may also give
	// the RIRs' pseudo-codes EU and AP.
	Country [2]byte
	// Continent is the continent code: AF, AN, AS, EU, NA, OC or SA.
	Continent [2]byte
	// ASN is the AS number announcing the address according to the ASN databases.
	ASN uint32
}

// CountryCode returns the country as a string, "" when unknown.
func (i Info) CountryCode() string { return code(i.Country) }

// ContinentCode returns the continent as a string, "" when unknown.
func (i Info) ContinentCode() string { return code(i.Continent) }

func code(c [2]byte) string {
	if c == ([2]byte{}) {
		return ""
	}
	return string(c[:])
}

// loc is the location part of Info.
type loc struct {
	Country, Continent [2]byte
}

// DB is an immutable snapshot of the geo data, safe for concurrent use. A nil *DB answers
// every lookup with the zero Info.
type DB struct {
	table   *bart.Table[Info]
	names   map[uint32]string
	reports []FileReport
}

// Lookup returns what is known of a (IPv4-mapped IPv6 addresses are unmapped first). It does
// not allocate.
func (db *DB) Lookup(a netip.Addr) Info {
	if db == nil {
		return Info{}
	}
	info, _ := db.table.Lookup(a.Unmap())
	return info
}

// ASName returns the name of an AS, "" when unknown.
func (db *DB) ASName(asn uint32) string {
	if db == nil {
		return ""
	}
	return db.names[asn]
}

// Len returns the number of IPv4 and IPv6 prefixes in the lookup table.
func (db *DB) Len() (v4, v6 int) {
	if db == nil {
		return 0, 0
	}
	return db.table.Size4(), db.table.Size6()
}

// Names returns the number of known AS names.
func (db *DB) Names() int {
	if db == nil {
		return 0
	}
	return len(db.names)
}

// Reports returns what each configured file gave, in load order.
func (db *DB) Reports() []FileReport {
	if db == nil {
		return nil
	}
	return db.reports
}

// Open reads every configured file and builds a DB. A missing, unreadable or corrupt database
// is an error naming the file; so is a database without the data its list promises (e.g. a
// City database listed as an ASN database) and a text file without one valid line. Malformed
// lines in text files are only counted (see DB.Reports).
func Open(cfg Config) (*DB, error) {
	db := &DB{names: map[uint32]string{}}
	locs := new(bart.Table[loc])
	asns := new(bart.Table[uint32])
	var mmdbNames []map[uint32]string

	for _, path := range cfg.CountryDatabases {
		c, err := readMMDB(path)
		if err != nil {
			return nil, err
		}
		c.loc = compact(c.loc)
		if c.loc.Size() == 0 {
			return nil, fmt.Errorf("cannot use %s as a country database: %w (no country in any record)", path, errNoData)
		}
		locs = overlay(locs, c.loc)
		c.rep.Prefixes = c.loc.Size()
		db.reports = append(db.reports, c.rep)
	}
	for _, path := range cfg.ASNDatabases {
		c, err := readMMDB(path)
		if err != nil {
			return nil, err
		}
		c.asn = compact(c.asn)
		if c.asn.Size() == 0 {
			return nil, fmt.Errorf("cannot use %s as an ASN database: %w (no AS number in any record)", path, errNoData)
		}
		asns = overlay(asns, c.asn)
		mmdbNames = append(mmdbNames, c.names)
		c.rep.Prefixes = c.asn.Size()
		db.reports = append(db.reports, c.rep)
	}
	for _, path := range cfg.RIRFiles {
		t, rep, err := readRIRFile(path)
		if err != nil {
			return nil, err
		}
		locs = overlay(locs, t)
		db.reports = append(db.reports, rep)
	}
	for _, path := range cfg.ASNames {
		rep, err := readASNamesFile(path, db.names)
		if err != nil {
			return nil, err
		}
		db.reports = append(db.reports, rep)
	}
	for _, names := range mmdbNames {
		for asn, name := range names {
			if _, ok := db.names[asn]; !ok {
				db.names[asn] = name
			}
		}
	}
	db.table = combine(locs, asns)
	return db, nil
}

func readRIRFile(path string) (*bart.Table[loc], FileReport, error) {
	f, err := openText(path)
	if err != nil {
		return nil, FileReport{}, fmt.Errorf("cannot open %s: %w", path, err)
	}
	defer f.Close()
	t := new(bart.Table[loc])
	var buf []netip.Prefix
	// Consecutive IPv4 delegations to one country (the files list them in address order) are
	// merged into one range before it is split into prefixes: fewer, larger prefixes.
	var run struct {
		start, end uint64
		l          loc
	}
	flush := func() {
		buf = appendRange4(buf[:0], run.start, run.end-run.start)
		for _, p := range buf {
			t.Insert(p, run.l)
		}
		run.end = run.start
	}
	rep, err := ReadRIR(f, path, func(r RIRRecord) {
		l := loc{Country: r.Country, Continent: ContinentOf(r.Country)}
		if r.Type == RIRIPv4 {
			b := r.Start.As4()
			start := uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])
			if start != run.end || l != run.l {
				flush()
				run.start, run.l = start, l
			}
			run.end = start + r.Value
			return
		}
		buf = r.AppendPrefixes(buf[:0])
		for _, p := range buf {
			t.Insert(p, l)
		}
	})
	flush()
	if err != nil {
		return nil, rep, err
	}
	if rep.Records == 0 && rep.Bad > 0 {
		return nil, rep, fmt.Errorf("cannot use %s as an RIR statistics file: no valid record, %d bad lines, first: %w", path, rep.Bad, rep.Errors[0])
	}
	rep.Prefixes = t.Size()
	return t, rep, nil
}

func readASNamesFile(path string, names map[uint32]string) (FileReport, error) {
	f, err := openText(path)
	if err != nil {
		return FileReport{}, fmt.Errorf("cannot open %s: %w", path, err)
	}
	defer f.Close()
	rep, err := ReadASNames(f, path, func(asn uint32, name string) {
		if _, ok := names[asn]; !ok {
			names[asn] = name
		}
	})
	if err != nil {
		return rep, err
	}
	if rep.Records == 0 && rep.Bad > 0 {
		return rep, fmt.Errorf("cannot use %s as an AS names file: no valid line, %d bad lines, first: %w", path, rep.Bad, rep.Errors[0])
	}
	return rep, nil
}

// overlay returns the union of acc and src where acc takes precedence: src's prefixes are
// inserted only over the address space acc does not cover, split into the largest prefixes
// that avoid it. Inside src, the longest match still wins.
func overlay[V any](acc, src *bart.Table[V]) *bart.Table[V] {
	if acc.Size() == 0 {
		return src
	}
	out := acc.Clone()
	// Sorted order inserts a supernet before its subnets, so where both leave the same gap
	// the more specific (inserted last) wins, as it does in src.
	for p, v := range src.AllSorted() {
		insertGaps(out, acc, p, v)
	}
	return out
}

// insertGaps inserts into dst the parts of p that prev does not cover.
func insertGaps[V any](dst, prev *bart.Table[V], p netip.Prefix, v V) {
	if _, covered := prev.LookupPrefix(p); covered {
		return
	}
	if !prev.OverlapsPrefix(p) {
		dst.Insert(p, v)
		return
	}
	if p.Bits() == p.Addr().BitLen() {
		return // unreachable: a host prefix overlapping prev is covered by it
	}
	// prev holds more specific prefixes inside p: fill the halves around them.
	lo := netip.PrefixFrom(p.Addr(), p.Bits()+1)
	hi := netip.PrefixFrom(lastAddr(lo).Next(), p.Bits()+1)
	insertGaps(dst, prev, lo, v)
	insertGaps(dst, prev, hi, v)
}

// lastAddr returns the last address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr()
	if a.Is4() {
		b := a.As4()
		for i := p.Bits(); i < 32; i++ {
			b[i/8] |= 0x80 >> (i % 8)
		}
		return netip.AddrFrom4(b)
	}
	b := a.As16()
	for i := p.Bits(); i < 128; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	return netip.AddrFrom16(b)
}

// compact returns a smaller table that answers every lookup as t does: sibling prefixes with
// equal values merge into their parent, and prefixes whose covering prefix has the same value
// go. An mmdb's networks split on every field of its records (a City database's by city), so
// its country and AS tables shrink a lot. (RIR files are merged cheaper while read.)
func compact[V comparable](t *bart.Table[V]) *bart.Table[V] {
	var byLen [129]map[netip.Prefix]V
	for p, v := range t.All() {
		if byLen[p.Bits()] == nil {
			byLen[p.Bits()] = map[netip.Prefix]V{}
		}
		byLen[p.Bits()][p] = v
	}
	// Bottom-up, a pair of siblings with one value becomes their parent (which they cover
	// entirely, so a parent entry already there was shadowed and can be replaced).
	for l := 128; l > 0; l-- {
		level := byLen[l]
		for p, v := range level {
			s := sibling(p)
			if sv, ok := level[s]; !ok || sv != v {
				continue
			}
			delete(level, p)
			delete(level, s)
			if byLen[l-1] == nil {
				byLen[l-1] = map[netip.Prefix]V{}
			}
			byLen[l-1][netip.PrefixFrom(p.Addr(), l-1).Masked()] = v
		}
	}
	out := new(bart.Table[V])
	for _, level := range byLen {
		for p, v := range level {
			out.Insert(p, v)
		}
	}
	// A prefix whose nearest covering prefix has its value changes no lookup. Removing all of
	// them at once is safe: each removed one's addresses fall to the nearest kept ancestor, whose
	// value equals every removed one's on the way.
	var redundant []netip.Prefix
	for p, v := range out.All() {
		if p.Bits() == 0 {
			continue
		}
		if pv, ok := out.LookupPrefix(netip.PrefixFrom(p.Addr(), p.Bits()-1).Masked()); ok && pv == v {
			redundant = append(redundant, p)
		}
	}
	for _, p := range redundant {
		out.Delete(p)
	}
	return out
}

// sibling returns the other half of p's parent.
func sibling(p netip.Prefix) netip.Prefix {
	i := p.Bits() - 1
	if p.Addr().Is4() {
		b := p.Addr().As4()
		b[i/8] ^= 0x80 >> (i % 8)
		return netip.PrefixFrom(netip.AddrFrom4(b), p.Bits())
	}
	b := p.Addr().As16()
	b[i/8] ^= 0x80 >> (i % 8)
	return netip.PrefixFrom(netip.AddrFrom16(b), p.Bits())
}

// combine merges the location and AS tables into one table of Info, so that a lookup is a
// single longest-prefix match. The result holds the union of both tables' prefixes; each
// prefix's value takes the longest match of each table at that prefix, which is what the
// longest match of each table gives for any address whose longest match in the union is it.
func combine(locs *bart.Table[loc], asns *bart.Table[uint32]) *bart.Table[Info] {
	out := new(bart.Table[Info])
	for p, l := range locs.All() {
		a, _ := asns.LookupPrefix(p)
		out.Insert(p, Info{Country: l.Country, Continent: l.Continent, ASN: a})
	}
	for p, a := range asns.All() {
		if _, exists := locs.Get(p); exists {
			continue
		}
		l, _ := locs.LookupPrefix(p)
		out.Insert(p, Info{Country: l.Country, Continent: l.Continent, ASN: a})
	}
	return out
}
