package geo

import (
	"bytes"
	"errors"
	"fmt"
	"math/bits"
	"net/netip"
	"strconv"
)

// RIRType is the resource type of an RIR statistics record.
type RIRType uint8

// Resource types of RIR statistics records.
const (
	RIRASN RIRType = iota + 1
	RIRIPv4
	RIRIPv6
)

// String returns the type as written in the files.
func (t RIRType) String() string {
	switch t {
	case RIRASN:
		return "asn"
	case RIRIPv4:
		return "ipv4"
	case RIRIPv6:
		return "ipv6"
	}
	return "unknown"
}

// RIRStatus is the status of an RIR statistics record.
type RIRStatus uint8

// Statuses of RIR statistics records. Available and reserved appear only in the extended
// format; they carry no country. The NRO's combined file marks space held by the IETF and IANA
// with the statuses "ietf" and "iana": both parse as RIRReserved.
const (
	RIRAllocated RIRStatus = iota + 1
	RIRAssigned
	RIRAvailable
	RIRReserved
)

// String returns the status as written in the files.
func (s RIRStatus) String() string {
	switch s {
	case RIRAllocated:
		return "allocated"
	case RIRAssigned:
		return "assigned"
	case RIRAvailable:
		return "available"
	case RIRReserved:
		return "reserved"
	}
	return "unknown"
}

// RIRRecord is one resource line of an RIR delegated or delegated-extended statistics file:
// `registry|cc|type|start|value|date|status[|opaque-id[|extensions…]]`.
type RIRRecord struct {
	// Registry is the registry field (afrinic, apnic, arin, iana, lacnic, ripencc…). The
	// registry responsible for the resource, not a geographic region.
	Registry string
	// Country is the ISO 3166-1 code (upper case); zero when empty. ZZ marks unassigned space.
	Country [2]byte
	Type    RIRType
	// Start is the first address of an ipv4 or ipv6 record.
	Start netip.Addr
	// ASN is the first AS number of an asn record.
	ASN uint32
	// Value is the number of addresses (ipv4), the prefix length (ipv6) or the number of AS
	// numbers (asn). IPv4 counts need not be powers of two nor aligned.
	Value  uint64
	Status RIRStatus
}

// HasCountry reports whether the record delegates space to a real country: an allocated or
// assigned record with a country code other than ZZ.
func (r RIRRecord) HasCountry() bool {
	return (r.Status == RIRAllocated || r.Status == RIRAssigned) &&
		r.Country != [2]byte{} && r.Country != [2]byte{'Z', 'Z'}
}

// AppendPrefixes appends the prefixes an ipv4 or ipv6 record covers: an IPv4 range of any
// size is split into the fewest CIDR prefixes. Other records append nothing.
func (r RIRRecord) AppendPrefixes(dst []netip.Prefix) []netip.Prefix {
	switch r.Type {
	case RIRIPv6:
		return append(dst, netip.PrefixFrom(r.Start, int(r.Value)))
	case RIRIPv4:
		b := r.Start.As4()
		start := uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])
		return appendRange4(dst, start, r.Value)
	}
	return dst
}

// appendRange4 appends the CIDR prefixes covering count addresses from start (which the caller
// guarantees fit in the IPv4 space).
func appendRange4(dst []netip.Prefix, start, count uint64) []netip.Prefix {
	for count > 0 {
		// The largest block aligned on start that fits in count.
		size := uint64(1) << 32
		if start != 0 {
			size = start & -start
		}
		for size > count {
			size >>= 1
		}
		a := netip.AddrFrom4([4]byte{byte(start >> 24), byte(start >> 16), byte(start >> 8), byte(start)})
		dst = append(dst, netip.PrefixFrom(a, 32-bits.TrailingZeros64(size)))
		start += size
		count -= size
	}
	return dst
}

// RIR registries as they appear in the files; parsed names are interned to these strings.
var rirRegistries = []string{"afrinic", "apnic", "arin", "iana", "lacnic", "ripencc", "nro"}

// errNotRecord is returned internally for lines that are valid but carry no resource.
var errNotRecord = errors.New("not a resource record")

// ParseRIRLine parses one line of an RIR statistics file. It returns ok=false without error for
// lines that carry no resource: blank lines, comments (#), the version header and summary lines.
// A malformed line returns an error saying what is wrong with it.
func ParseRIRLine(line []byte) (rec RIRRecord, ok bool, err error) {
	rec, err = parseRIRLine(line)
	if err == errNotRecord {
		return RIRRecord{}, false, nil
	}
	if err != nil {
		return RIRRecord{}, false, err
	}
	return rec, true, nil
}

func parseRIRLine(line []byte) (RIRRecord, error) {
	line = bytes.TrimRight(line, "\r\n")
	if len(bytes.TrimSpace(line)) == 0 || line[0] == '#' {
		return RIRRecord{}, errNotRecord
	}
	var f [8][]byte
	n := 0
	for rest := line; ; {
		i := bytes.IndexByte(rest, '|')
		if n < len(f) {
			if i < 0 {
				f[n] = rest
			} else {
				f[n] = rest[:i]
			}
		}
		n++
		if i < 0 {
			break
		}
		rest = rest[i+1:]
	}
	// Version header: version|registry|serial|records|startdate|enddate|UTCoffset.
	if isVersion(f[0]) {
		if n < 4 {
			return RIRRecord{}, fmt.Errorf("header has %d fields, want 7", n)
		}
		return RIRRecord{}, errNotRecord
	}
	// Summary: registry|*|type|*|count|summary.
	if n == 6 && string(f[5]) == "summary" {
		return RIRRecord{}, errNotRecord
	}
	if n < 7 {
		return RIRRecord{}, fmt.Errorf("%d fields, want at least 7", n)
	}
	var rec RIRRecord
	rec.Registry = internRegistry(f[0])
	if rec.Registry == "" {
		return RIRRecord{}, errors.New("empty registry")
	}
	switch cc := f[1]; {
	case len(cc) == 0:
	case len(cc) == 2 && isLetter(cc[0]) && isLetter(cc[1]):
		rec.Country = [2]byte{upper(cc[0]), upper(cc[1])}
	default:
		return RIRRecord{}, fmt.Errorf("invalid country code %q", cc)
	}
	switch string(f[6]) {
	case "allocated":
		rec.Status = RIRAllocated
	case "assigned":
		rec.Status = RIRAssigned
	case "available":
		rec.Status = RIRAvailable
	case "reserved", "ietf", "iana":
		rec.Status = RIRReserved
	default:
		return RIRRecord{}, fmt.Errorf("invalid status %q", f[6])
	}
	value, err := strconv.ParseUint(string(f[4]), 10, 64)
	if err != nil {
		return RIRRecord{}, fmt.Errorf("invalid value %q", f[4])
	}
	rec.Value = value
	switch string(f[2]) {
	case "asn":
		rec.Type = RIRASN
		asn, err := strconv.ParseUint(string(f[3]), 10, 32)
		if err != nil {
			return RIRRecord{}, fmt.Errorf("invalid AS number %q", f[3])
		}
		if value == 0 || asn+value-1 > 1<<32-1 {
			return RIRRecord{}, fmt.Errorf("invalid AS count %d from %d", value, asn)
		}
		rec.ASN = uint32(asn)
	case "ipv4":
		rec.Type = RIRIPv4
		a, err := netip.ParseAddr(string(f[3]))
		if err != nil || !a.Is4() {
			return RIRRecord{}, fmt.Errorf("invalid IPv4 address %q", f[3])
		}
		b := a.As4()
		start := uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])
		if value == 0 || start+value > 1<<32 {
			return RIRRecord{}, fmt.Errorf("invalid address count %d from %s", value, a)
		}
		rec.Start = a
	case "ipv6":
		rec.Type = RIRIPv6
		a, err := netip.ParseAddr(string(f[3]))
		if err != nil || !a.Is6() || a.Is4In6() || a.Zone() != "" {
			return RIRRecord{}, fmt.Errorf("invalid IPv6 address %q", f[3])
		}
		if value > 128 {
			return RIRRecord{}, fmt.Errorf("invalid IPv6 prefix length %d", value)
		}
		p := netip.PrefixFrom(a, int(value))
		if p.Masked() != p {
			return RIRRecord{}, fmt.Errorf("%s has host bits set", p)
		}
		rec.Start = a
	default:
		return RIRRecord{}, fmt.Errorf("invalid type %q", f[2])
	}
	return rec, nil
}

func isVersion(b []byte) bool {
	if len(b) == 0 || b[0] < '0' || b[0] > '9' {
		return false
	}
	for _, c := range b {
		if (c < '0' || c > '9') && c != '.' {
			return false
		}
	}
	return true
}

func internRegistry(b []byte) string {
	for _, r := range rirRegistries {
		if string(b) == r {
			return r
		}
	}
	return string(b)
}

func isLetter(c byte) bool { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') }

func upper(c byte) byte {
	if c >= 'a' && c <= 'z' {
		return c - 'a' + 'A'
	}
	return c
}
