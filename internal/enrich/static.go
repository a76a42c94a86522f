package enrich

import (
	"net/netip"
	"time"

	"github.com/gaissmai/bart"

	"github.com/netledger/netledger/internal/routing"
)

// StaticTable is a fixed routing table built once (demo data, tests, benchmarks, `replay` with
// a table loaded from a file). It is not safe for writes concurrent with lookups.
type StaticTable struct {
	t       bart.Table[*routing.Attrs]
	inserts int64
}

// Insert adds or replaces the route of p. a must not change afterwards.
func (s *StaticTable) Insert(p netip.Prefix, a *routing.Attrs) {
	s.t.Insert(p.Masked(), a)
	s.inserts++
}

// Updated returns a value that changes at every Insert (the number of inserts as a time, not
// a wall time): it makes the table Versioned, so that a Cache forgets what it looked up before.
func (s *StaticTable) Updated() time.Time { return time.Unix(0, s.inserts) }

// Lookup returns the longest-match route of a (Table): the length of its prefix and its
// attributes. IPv4-mapped IPv6 addresses are looked up as IPv4, as routing.RIB does.
func (s *StaticTable) Lookup(a netip.Addr) (bits int, attrs *routing.Attrs, ok bool) {
	a = a.Unmap()
	p, v, ok := s.t.LookupPrefixLPM(netip.PrefixFrom(a, a.BitLen()))
	return p.Bits(), v, ok
}

// Len returns the number of prefixes.
func (s *StaticTable) Len() int { return s.t.Size() }
