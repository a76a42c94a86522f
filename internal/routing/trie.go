package routing

import (
	"iter"
	"net/netip"
	"unsafe"

	"github.com/gaissmai/bart"
)

// trie is the RIB's longest-prefix-match structure, split by the leading bits of the prefix so
// that a lookup skips the trie levels every address of a family walks through:
//
//   - IPv4 prefixes of /8 or longer live in one bart.Table per first octet, stored with that
//     octet shifted out (10.1.2.0/24 is 1.2.0.0/16 in v4[10]): a lookup starts at the /8's node
//     instead of the root's (on the real table: ≈ 8 ns less of ≈ 38 per hot lookup);
//   - IPv6 prefixes of /16 or longer live in one bart.Fast per first two octets, shifted by 16
//     bits (2001:db8::/32 is db8::/16 in v6[0x20][0x01]): a lookup skips two of the four to six
//     levels of a /32–/48 (≈ 4 ns of ≈ 45);
//   - shorter prefixes (a default route, say) live in v4short / v6short, looked up only when the
//     split table has no match: any prefix found there is shorter than one found in a split
//     table, so the result is still the longest match.
//
// The trie value keeps the original prefix length (slot<<8 | bits), so lookups never shift
// back. IPv4 uses bart.Table (popcount-compressed nodes: most of a full table, kept small),
// IPv6 bart.Fast (uncompressed child arrays: IPv6 lookups walk more levels, and Fast makes each
// cheaper; on the 1,062,046-prefix table Fast costs ≈ 7 MB more than Table for the 160,147 IPv6
// prefixes). A trie is changed in place only while private (built by newTrie or Clone, never
// shared with a published trie); published tries change through the …Persist methods, which
// copy the directory arrays and the touched nodes of one sub-table and share the rest.
type trie struct {
	v4      [256]*bart.Table[uint32]
	v6      [256]*[256]*bart.Fast[uint32]
	v4short *bart.Table[uint32]
	v6short *bart.Fast[uint32]
	n4, n6  int
}

func newTrie() *trie {
	return &trie{v4short: new(bart.Table[uint32]), v6short: new(bart.Fast[uint32])}
}

// addrWords is netip.Addr's memory layout (a 128-bit address as two big-endian-valued words,
// then the zone/family handle): the lookup reads and shifts the words in place. Going through
// As16/AddrFrom16 instead costs ≈ 50 ns per IPv6 lookup on this machine: the 16-byte array
// copies the compiler makes stall on store-to-load forwarding. TestAddrWords checks the layout
// against As16 and AddrFrom16; the array below fails to compile if netip.Addr changes size.
type addrWords struct {
	hi, lo uint64
	z      unsafe.Pointer
}

var _ [0]struct{} = [unsafe.Sizeof(netip.Addr{}) - unsafe.Sizeof(addrWords{})]struct{}{}

func words(a *netip.Addr) *addrWords { return (*addrWords)(unsafe.Pointer(a)) }

// AddrWords returns a's 16-byte form (IPv4 as IPv4-mapped, the zone dropped; zeros for the
// zero Addr) as two big-endian words: the keys of the enrichment cache and the aggregation
// tables. It is As16 without the array copy.
func AddrWords(a netip.Addr) (hi, lo uint64) {
	w := words(&a)
	return w.hi, w.lo
}

// sub4 returns the sub-table of IPv4 address a (Is4, or unmapped by the caller) and a with its
// first octet shifted out, or nil. It and sub6 are small enough to be inlined into
// RIB.Lookup, which then calls bart directly: a call less per lookup.
func (t *trie) sub4(a netip.Addr) (*bart.Table[uint32], netip.Addr) {
	w := words(&a)
	s := t.v4[byte(w.lo>>24)]
	// the family handle stays: the shifted address is still IPv4
	w.lo = w.lo&^0xffffffff | uint64(uint32(w.lo)<<8)
	return s, a
}

// sub6 returns the sub-table of IPv6 address a (not IPv4-mapped) and a with its first two
// octets shifted out, or nil.
func (t *trie) sub6(a netip.Addr) (*bart.Fast[uint32], netip.Addr) {
	w := words(&a)
	d := t.v6[w.hi>>56]
	if d == nil {
		return nil, a
	}
	s := d[byte(w.hi>>48)]
	w.hi, w.lo = w.hi<<16|w.lo>>48, w.lo<<16
	return s, a
}

// Lookup is the longest-prefix match of a, IPv4-mapped addresses looked up as IPv4: first in
// the sub-table, then among the short prefixes (any prefix there is shorter than one found in
// a sub-table). RIB.Lookup has the same code written out, so that it calls bart directly (a
// call less: ≈ 3 ns of an IPv6 lookup); TestRIBLookupShortPrefixes checks that it agrees.
func (t *trie) Lookup(a netip.Addr) (v uint32, ok bool) {
	if a.Is4() || a.Is4In6() {
		a = a.Unmap()
		if s, b := t.sub4(a); s != nil {
			v, ok = s.Lookup(b)
		}
		if !ok {
			v, ok = t.v4short.Lookup(a)
		}
		return v, ok
	}
	if s, b := t.sub6(a); s != nil {
		v, ok = s.Lookup(b)
	}
	if !ok {
		v, ok = t.v6short.Lookup(a)
	}
	return v, ok
}

// split4 returns the first octet of IPv4 prefix p (/8 or longer) and p without it.
func split4(p netip.Prefix) (byte, netip.Prefix) {
	a := p.Addr().As4()
	return a[0], netip.PrefixFrom(netip.AddrFrom4([4]byte{a[1], a[2], a[3], 0}), p.Bits()-8)
}

// split6 returns the first two octets of IPv6 prefix p (/16 or longer) and p without them.
func split6(p netip.Prefix) (byte, byte, netip.Prefix) {
	a := p.Addr().As16()
	var b [16]byte
	copy(b[:], a[2:])
	return a[0], a[1], netip.PrefixFrom(netip.AddrFrom16(b), p.Bits()-16)
}

// join4 and join6 undo split4 and split6.
func join4(k byte, q netip.Prefix) netip.Prefix {
	a := q.Addr().As4()
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{k, a[0], a[1], a[2]}), q.Bits()+8)
}

func join6(k0, k1 byte, q netip.Prefix) netip.Prefix {
	a := q.Addr().As16()
	var b [16]byte
	b[0], b[1] = k0, k1
	copy(b[2:], a[:14])
	return netip.PrefixFrom(netip.AddrFrom16(b), q.Bits()+16)
}

func (t *trie) Get(p netip.Prefix) (uint32, bool) {
	if p.Addr().Is4() {
		if p.Bits() < 8 {
			return t.v4short.Get(p)
		}
		k, q := split4(p)
		if s := t.v4[k]; s != nil {
			return s.Get(q)
		}
		return 0, false
	}
	if p.Bits() < 16 {
		return t.v6short.Get(p)
	}
	k0, k1, q := split6(p)
	if d := t.v6[k0]; d != nil {
		if s := d[k1]; s != nil {
			return s.Get(q)
		}
	}
	return 0, false
}

func (t *trie) Size4() int { return t.n4 }
func (t *trie) Size6() int { return t.n6 }
func (t *trie) Size() int  { return t.n4 + t.n6 }

// All yields every prefix (IPv4 first) with its value.
func (t *trie) All() iter.Seq2[netip.Prefix, uint32] {
	return func(yield func(netip.Prefix, uint32) bool) {
		for p, v := range t.v4short.All4() {
			if !yield(p, v) {
				return
			}
		}
		for k, s := range t.v4 {
			if s == nil {
				continue
			}
			for q, v := range s.All4() {
				if !yield(join4(byte(k), q), v) {
					return
				}
			}
		}
		for p, v := range t.v6short.All6() {
			if !yield(p, v) {
				return
			}
		}
		for k0, d := range t.v6 {
			if d == nil {
				continue
			}
			for k1, s := range d {
				if s == nil {
					continue
				}
				for q, v := range s.All6() {
					if !yield(join6(byte(k0), byte(k1), q), v) {
						return
					}
				}
			}
		}
	}
}

// Clone returns a deep copy (each node array allocated at its final size), private to the
// caller.
func (t *trie) Clone() *trie {
	c := &trie{v4short: t.v4short.Clone(), v6short: t.v6short.Clone(), n4: t.n4, n6: t.n6}
	for k, s := range t.v4 {
		if s != nil {
			c.v4[k] = s.Clone()
		}
	}
	for k0, d := range t.v6 {
		if d == nil {
			continue
		}
		cd := new([256]*bart.Fast[uint32])
		for k1, s := range d {
			if s != nil {
				cd[k1] = s.Clone()
			}
		}
		c.v6[k0] = cd
	}
	return c
}

// Insert and Delete change a private trie in place.
func (t *trie) Insert(p netip.Prefix, v uint32) {
	t.change(p, func(s4 *bart.Table[uint32], q netip.Prefix) *bart.Table[uint32] {
		s4.Insert(q, v)
		return s4
	}, func(s6 *bart.Fast[uint32], q netip.Prefix) *bart.Fast[uint32] {
		s6.Insert(q, v)
		return s6
	}, false)
}

func (t *trie) Delete(p netip.Prefix) {
	t.change(p, func(s4 *bart.Table[uint32], q netip.Prefix) *bart.Table[uint32] {
		s4.Delete(q)
		return s4
	}, func(s6 *bart.Fast[uint32], q netip.Prefix) *bart.Fast[uint32] {
		s6.Delete(q)
		return s6
	}, false)
}

// InsertPersist and DeletePersist return a changed copy of t, sharing every unchanged
// sub-table with it.
func (t *trie) InsertPersist(p netip.Prefix, v uint32) *trie {
	n := *t
	n.change(p, func(s4 *bart.Table[uint32], q netip.Prefix) *bart.Table[uint32] {
		return s4.InsertPersist(q, v)
	}, func(s6 *bart.Fast[uint32], q netip.Prefix) *bart.Fast[uint32] {
		return s6.InsertPersist(q, v)
	}, true)
	return &n
}

func (t *trie) DeletePersist(p netip.Prefix) *trie {
	n := *t
	n.change(p, func(s4 *bart.Table[uint32], q netip.Prefix) *bart.Table[uint32] {
		return s4.DeletePersist(q)
	}, func(s6 *bart.Fast[uint32], q netip.Prefix) *bart.Fast[uint32] {
		return s6.DeletePersist(q)
	}, true)
	return &n
}

// change applies f4 or f6 to the sub-table of p (with p's split-off bits removed), creating
// the sub-table if needed and dropping it once empty, and keeps the prefix counts. With
// persist, t's arrays are its own (a fresh copy of the struct) but its second-level IPv6
// arrays are shared: the one changed is copied first.
func (t *trie) change(p netip.Prefix,
	f4 func(*bart.Table[uint32], netip.Prefix) *bart.Table[uint32],
	f6 func(*bart.Fast[uint32], netip.Prefix) *bart.Fast[uint32], persist bool) {
	if p.Addr().Is4() {
		if p.Bits() < 8 {
			n := t.v4short.Size4()
			t.v4short = f4(t.v4short, p)
			t.n4 += t.v4short.Size4() - n
			return
		}
		k, q := split4(p)
		s := t.v4[k]
		if s == nil {
			s = new(bart.Table[uint32])
		}
		n := s.Size4()
		s = f4(s, q)
		t.n4 += s.Size4() - n
		if s.Size4() == 0 {
			s = nil
		}
		t.v4[k] = s
		return
	}
	if p.Bits() < 16 {
		n := t.v6short.Size6()
		t.v6short = f6(t.v6short, p)
		t.n6 += t.v6short.Size6() - n
		return
	}
	k0, k1, q := split6(p)
	d := t.v6[k0]
	switch {
	case d == nil:
		d = new([256]*bart.Fast[uint32])
	case persist:
		c := *d
		d = &c
	}
	s := d[k1]
	if s == nil {
		s = new(bart.Fast[uint32])
	}
	n := s.Size6()
	s = f6(s, q)
	t.n6 += s.Size6() - n
	if s.Size6() == 0 {
		s = nil
	}
	if s == nil && t.v6[k0] == nil {
		return // a deletion of an absent prefix: no empty directory
	}
	d[k1] = s
	t.v6[k0] = d
}
