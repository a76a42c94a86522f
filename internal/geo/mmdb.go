package geo

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/gaissmai/bart"
	"github.com/oschwald/maxminddb-golang/v2"
	"github.com/oschwald/maxminddb-golang/v2/mmdbdata"
)

// mmdbRecord is what netledger keeps of an mmdb data record. It understands the MaxMind
// GeoLite2/GeoIP2 Country, City, ASN and ISP schemas (DB-IP lite uses the same) and the IPinfo
// lite schema (country_code, continent_code, asn "AS123", as_name).
type mmdbRecord struct {
	country, registered, continent [2]byte
	asn                            uint32
	org                            string
}

// location returns the country (country.iso_code, else registered_country.iso_code) and
// continent (continent.code, else the country's continent) of the record.
func (r *mmdbRecord) location() loc {
	c := r.country
	if c == ([2]byte{}) {
		c = r.registered
	}
	k := r.continent
	if k == ([2]byte{}) {
		k = ContinentOf(c)
	}
	return loc{Country: c, Continent: k}
}

// UnmarshalMaxMindDBCursor decodes the fields netledger uses and skips the others.
func (r *mmdbRecord) UnmarshalMaxMindDBCursor(c mmdbdata.Cursor) (mmdbdata.Cursor, error) {
	return readMap(c, func(key []byte, v mmdbdata.Cursor) (mmdbdata.Cursor, error) {
		switch string(key) {
		case "country":
			return readNestedCode(v, "iso_code", &r.country)
		case "registered_country":
			return readNestedCode(v, "iso_code", &r.registered)
		case "continent":
			return readNestedCode(v, "code", &r.continent)
		case "country_code":
			return readCode(v, &r.country)
		case "continent_code":
			return readCode(v, &r.continent)
		case "traits": // GeoIP2 Enterprise keeps the AS in traits
			return readMap(v, r.readAS)
		}
		return r.readAS(key, v)
	})
}

// readAS reads the AS number and organisation fields of a map (top level or traits).
func (r *mmdbRecord) readAS(key []byte, v mmdbdata.Cursor) (mmdbdata.Cursor, error) {
	switch string(key) {
	case "autonomous_system_number", "asn":
		return readASN(v, &r.asn)
	case "autonomous_system_organization", "as_name":
		s, next, err := v.ReadString()
		if err == nil && r.org == "" {
			r.org = strings.Clone(s)
		}
		return next, err
	}
	return v.Skip()
}

// readMap calls fn for each entry of a map, which must return the successor of the value.
// Values of other kinds are skipped: a record shaped differently carries nothing.
func readMap(c mmdbdata.Cursor, fn func(key []byte, v mmdbdata.Cursor) (mmdbdata.Cursor, error)) (mmdbdata.Cursor, error) {
	kind, err := c.Kind()
	if err != nil {
		return mmdbdata.Cursor{}, err
	}
	if kind != mmdbdata.KindMap {
		return c.Skip()
	}
	entries, err := c.Map()
	if err != nil {
		return mmdbdata.Cursor{}, err
	}
	var next mmdbdata.Cursor
	for {
		key, v, ok := entries.Next(next)
		if !ok {
			break
		}
		if next, err = fn(key, v); err != nil {
			return mmdbdata.Cursor{}, fmt.Errorf("field %s: %w", key, err)
		}
	}
	return entries.End()
}

// readNestedCode reads map[key] as a two-letter code when v is a map (MaxMind schema); other
// kinds (IPinfo writes country and continent as names) are skipped.
func readNestedCode(v mmdbdata.Cursor, key string, dst *[2]byte) (mmdbdata.Cursor, error) {
	return readMap(v, func(k []byte, vv mmdbdata.Cursor) (mmdbdata.Cursor, error) {
		if string(k) == key {
			return readCode(vv, dst)
		}
		return vv.Skip()
	})
}

// readCode reads a two-letter code; anything else leaves dst unchanged.
func readCode(v mmdbdata.Cursor, dst *[2]byte) (mmdbdata.Cursor, error) {
	kind, err := v.Kind()
	if err != nil {
		return mmdbdata.Cursor{}, err
	}
	if kind != mmdbdata.KindString {
		return v.Skip()
	}
	s, next, err := v.ReadString()
	if err != nil {
		return mmdbdata.Cursor{}, err
	}
	if len(s) == 2 && isLetter(s[0]) && isLetter(s[1]) {
		*dst = [2]byte{upper(s[0]), upper(s[1])}
	}
	return next, nil
}

// readASN reads an AS number written as an integer (MaxMind) or as "AS123" (IPinfo).
func readASN(v mmdbdata.Cursor, dst *uint32) (mmdbdata.Cursor, error) {
	kind, err := v.Kind()
	if err != nil {
		return mmdbdata.Cursor{}, err
	}
	if kind == mmdbdata.KindString {
		s, next, err := v.ReadString()
		if err != nil {
			return mmdbdata.Cursor{}, err
		}
		s = strings.TrimPrefix(strings.TrimPrefix(s, "AS"), "as")
		if n, err := strconv.ParseUint(s, 10, 32); err == nil {
			*dst = uint32(n)
		}
		return next, nil
	}
	n, next, err := v.ReadUint()
	if err != nil {
		return mmdbdata.Cursor{}, err
	}
	if n <= 1<<32-1 {
		*dst = uint32(n)
	}
	return next, nil
}

// mmdbContents is what one mmdb file gave.
type mmdbContents struct {
	loc   *bart.Table[loc]
	asn   *bart.Table[uint32]
	names map[uint32]string
	rep   FileReport
}

// readMMDB walks every network of an mmdb file and builds tables of the locations and AS
// numbers it holds. A corrupt file gives an error naming it.
func readMMDB(path string) (mmdbContents, error) {
	db, err := maxminddb.Open(path)
	if err != nil {
		return mmdbContents{}, fmt.Errorf("cannot open %s: %w", path, err)
	}
	defer db.Close()
	return walkMMDB(db, path)
}

// walkMMDB reads every network of an open database (named path in errors). Data records are
// decoded once each (many networks share one record). The database is verified first, as the
// library asks before custom decoding of untrusted data; a panic in the decoder is turned into
// an error all the same.
func walkMMDB(db *maxminddb.Reader, path string) (out mmdbContents, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("cannot read %s: corrupt database: %v", path, p)
		}
	}()
	out = mmdbContents{
		loc:   new(bart.Table[loc]),
		asn:   new(bart.Table[uint32]),
		names: map[uint32]string{},
		rep:   FileReport{Path: path, Kind: "mmdb"},
	}
	if err := db.Verify(); err != nil {
		return out, fmt.Errorf("cannot use %s: corrupt database: %w", path, err)
	}
	cache := map[uintptr]mmdbRecord{}
	for res := range db.Networks() {
		if err := res.Err(); err != nil {
			return out, fmt.Errorf("cannot read networks of %s: %w", path, err)
		}
		off := res.Offset()
		rec, ok := cache[off]
		if !ok {
			if err := res.Decode(&rec); err != nil {
				return out, fmt.Errorf("cannot decode %s record for %s: %w", path, res.Prefix(), err)
			}
			cache[off] = rec
		}
		p := res.Prefix()
		if !p.IsValid() {
			return out, fmt.Errorf("cannot read networks of %s: invalid network", path)
		}
		p = unmapPrefix(p)
		out.rep.Records++
		used := false
		if l := rec.location(); l != (loc{}) {
			out.loc.Insert(p, l)
			used = true
		}
		if rec.asn != 0 {
			out.asn.Insert(p, rec.asn)
			if _, ok := out.names[rec.asn]; !ok && rec.org != "" {
				out.names[rec.asn] = rec.org
			}
			used = true
		}
		if !used {
			out.rep.Ignored++
		}
	}
	return out, nil
}

// unmapPrefix turns a ::ffff:a.b.c.d/n prefix (n ≥ 96) into a.b.c.d/(n-96).
func unmapPrefix(p netip.Prefix) netip.Prefix {
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p
}

var errNoData = errors.New("no usable data")
