package routing

import (
	"math/bits"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"
	"unsafe"
)

// Interned attribute sets live in numbered slots; the trie stores a slot number and the
// prefix length in one uint32 (slot<<8 | bits), which keeps the trie at about 26 bytes per
// prefix instead of 30–39 with a pointer payload. Slot numbers are freed when the last route
// using them goes away and reused only after a cooling time, long after any reader that
// could still hold a trie referencing the old number has finished its lookup.
const (
	chunkBits = 12
	chunkSize = 1 << chunkBits
	maxSlots  = 1 << 24 // 24 bits of slot number in the trie value
	coolTime  = 2 * time.Second
)

// entry is an interned attribute set with its reference count (routes using it).
type entry struct {
	Attrs
	refs int32
	slot uint32
	// peer and origin are FirstAS and LastAS of the path (ends tells which exist), computed
	// once when the set is interned: LookupRoute reads them from the entry instead of following
	// Path to its segments and their AS arrays, two more dependent cache misses.
	peer, origin uint32
	ends         uint8
}

const (
	endPeer   = 1 << iota // entry.peer is FirstAS of the path
	endOrigin             // entry.origin is LastAS of the path
)

// slots maps slot numbers to entries. Readers load without locks; the writer stores a slot
// before publishing a trie that references it.
type slots struct {
	dir [maxSlots / chunkSize]atomic.Pointer[[chunkSize]atomic.Pointer[entry]]
}

func (s *slots) get(i uint32) *entry {
	return s.ref(i).Load()
}

// ref returns where slot i's entry pointer is (the slot must have been set once).
func (s *slots) ref(i uint32) *atomic.Pointer[entry] {
	return &s.dir[i>>chunkBits].Load()[i&(chunkSize-1)]
}

// attrs returns the attribute set in slot i without reading it: Attrs is the first field of
// entry, so the conversion needs neither an offset nor the nil check that &e.Attrs would make
// (a load of the entry's first cache line, a cache miss on most lookups of a full table).
func (s *slots) attrs(i uint32) *Attrs {
	return (*Attrs)(unsafe.Pointer(s.get(i)))
}

// Attrs must stay entry's first field (attrs relies on it).
var _ [0]struct{} = [unsafe.Offsetof(entry{}.Attrs)]struct{}{}

func (s *slots) set(i uint32, e *entry) {
	c := s.dir[i>>chunkBits].Load()
	if c == nil {
		c = new([chunkSize]atomic.Pointer[entry])
		s.dir[i>>chunkBits].Store(c)
	}
	c[i&(chunkSize-1)].Store(e)
}

// pathRef is an interned AS path (its first segment and their number: 16 bytes a map value
// instead of 32 with a slice) and the number of interned attribute sets using it.
type pathRef struct {
	first *Segment
	n     int32
	refs  int32
}

func (r pathRef) segs() []Segment { return unsafe.Slice(r.first, r.n) }

type cooling struct {
	slot uint32
	at   time.Time
}

// interner deduplicates attribute sets and AS paths. Keys are 64-bit hashes of the canonical
// content; on the (astronomically rare) collision of two different contents, the newcomer is
// kept privately (correct, just not shared), so no collision chains are needed.
type interner struct {
	slots *slots
	attrs map[uint64]uint32
	paths map[uint64]pathRef
	next  uint32    // next never-used slot
	free  []uint32  // slots ready for reuse
	cool  []cooling // slots freed recently, reusable after coolTime
	freed []uint32  // slots freed since the last publication
}

func newInterner() *interner {
	return &interner{
		slots: new(slots),
		attrs: make(map[uint64]uint32),
		paths: make(map[uint64]pathRef),
	}
}

const (
	hashK1 = 0x9E3779B97F4A7C15
	hashK2 = 0xC2B2AE3D27D4EB4F
)

func mix(h, v uint64) uint64 {
	h = (h ^ v) * hashK1
	return bits.RotateLeft64(h, 31) * hashK2
}

func hashPath(p []Segment) uint64 {
	h := uint64(len(p))
	for _, s := range p {
		h = mix(h, uint64(s.Type)<<32|uint64(len(s.ASNs)))
		for _, a := range s.ASNs {
			h = mix(h, uint64(a))
		}
	}
	return h ^ h>>32
}

func hashAttrs(a *Attrs) uint64 {
	h := hashPath(a.Path)
	if a.NextHop.IsValid() {
		b := a.NextHop.As16()
		h = mix(h, uint64(a.NextHop.BitLen()))
		h = mix(h, uint64(b[0])<<56|uint64(b[1])<<48|uint64(b[2])<<40|uint64(b[3])<<32|
			uint64(b[4])<<24|uint64(b[5])<<16|uint64(b[6])<<8|uint64(b[7]))
		h = mix(h, uint64(b[8])<<56|uint64(b[9])<<48|uint64(b[10])<<40|uint64(b[11])<<32|
			uint64(b[12])<<24|uint64(b[13])<<16|uint64(b[14])<<8|uint64(b[15]))
	}
	var flags uint64 = uint64(a.Origin)
	if a.HasMED {
		flags |= 1 << 8
	}
	if a.HasLocalPref {
		flags |= 1 << 9
	}
	h = mix(h, flags)
	h = mix(h, uint64(a.MED)<<32|uint64(a.LocalPref))
	h = mix(h, uint64(len(a.Communities)))
	for _, c := range a.Communities {
		h = mix(h, uint64(c))
	}
	h = mix(h, uint64(len(a.LargeCommunities)))
	for _, c := range a.LargeCommunities {
		h = mix(h, uint64(c.Global)<<32|uint64(c.Local1))
		h = mix(h, uint64(c.Local2))
	}
	return h ^ h>>29
}

func equalPath(a, b []Segment) bool {
	return slices.EqualFunc(a, b, func(x, y Segment) bool {
		return x.Type == y.Type && slices.Equal(x.ASNs, y.ASNs)
	})
}

func equalAttrs(a, b *Attrs) bool {
	return a.NextHop == b.NextHop && a.Origin == b.Origin &&
		a.MED == b.MED && a.HasMED == b.HasMED &&
		a.LocalPref == b.LocalPref && a.HasLocalPref == b.HasLocalPref &&
		slices.Equal(a.Communities, b.Communities) &&
		slices.Equal(a.LargeCommunities, b.LargeCommunities) &&
		equalPath(a.Path, b.Path)
}

// copyPath copies a path. A one-segment path of up to 16 ASNs (nearly all) goes into one
// allocation of the size its segment header and ASNs took as two (48 to 96 bytes), with the
// ASNs right after the header: reading the origin or peer AS of an interned path then touches
// one or two adjacent cache lines instead of two lines anywhere in the heap. Other paths go
// into two exact-size allocations (segments, ASNs).
func copyPath(p []Segment) []Segment {
	if len(p) == 0 {
		return nil
	}
	if len(p) == 1 {
		switch s := p[0]; {
		case len(s.ASNs) <= 4:
			x := new(struct {
				seg  [1]Segment
				asns [4]uint32
			})
			return packPath(x.seg[:], x.asns[:], s)
		case len(s.ASNs) <= 8:
			x := new(struct {
				seg  [1]Segment
				asns [8]uint32
			})
			return packPath(x.seg[:], x.asns[:], s)
		case len(s.ASNs) <= 12:
			x := new(struct {
				seg  [1]Segment
				asns [12]uint32
			})
			return packPath(x.seg[:], x.asns[:], s)
		case len(s.ASNs) <= 16:
			x := new(struct {
				seg  [1]Segment
				asns [16]uint32
			})
			return packPath(x.seg[:], x.asns[:], s)
		}
	}
	n := 0
	for _, s := range p {
		n += len(s.ASNs)
	}
	asns := make([]uint32, n)
	segs := make([]Segment, len(p))
	off := 0
	for i, s := range p {
		copy(asns[off:], s.ASNs)
		segs[i] = Segment{Type: s.Type, ASNs: asns[off : off+len(s.ASNs) : off+len(s.ASNs)]}
		off += len(s.ASNs)
	}
	return segs
}

// packPath fills seg (one segment) with a copy of s whose ASNs are asns.
func packPath(seg []Segment, asns []uint32, s Segment) []Segment {
	n := copy(asns, s.ASNs)
	seg[0] = Segment{Type: s.Type, ASNs: asns[:n:n]}
	return seg
}

func (in *interner) internPath(p []Segment) []Segment {
	if len(p) == 0 {
		return nil
	}
	h := hashPath(p)
	if ref, ok := in.paths[h]; ok {
		if segs := ref.segs(); equalPath(segs, p) {
			ref.refs++
			in.paths[h] = ref
			return segs
		}
		return copyPath(p) // collision: private copy
	}
	segs := copyPath(p)
	in.paths[h] = pathRef{first: &segs[0], n: int32(len(segs)), refs: 1}
	return segs
}

func (in *interner) releasePath(p []Segment) {
	if len(p) == 0 {
		return
	}
	h := hashPath(p)
	ref, ok := in.paths[h]
	if !ok || ref.first != &p[0] {
		return // a private copy
	}
	if ref.refs--; ref.refs <= 0 {
		delete(in.paths, h)
		return
	}
	in.paths[h] = ref
}

// intern returns the slot of a's interned copy with one more reference, or false when the
// slot space is exhausted.
func (in *interner) intern(a *Attrs) (uint32, bool) {
	h := hashAttrs(a)
	slot, shared := in.attrs[h]
	if shared {
		e := in.slots.get(slot)
		if equalAttrs(&e.Attrs, a) {
			e.refs++
			return slot, true
		}
	}
	slot, ok := in.alloc()
	if !ok {
		return 0, false
	}
	e := &entry{Attrs: *a, refs: 1, slot: slot}
	e.Path = in.internPath(a.Path)
	if asn, ok := FirstAS(e.Path); ok {
		e.peer, e.ends = asn, e.ends|endPeer
	}
	if asn, ok := LastAS(e.Path); ok {
		e.origin, e.ends = asn, e.ends|endOrigin
	}
	e.Communities = slices.Clip(slices.Clone(a.Communities))
	e.LargeCommunities = slices.Clip(slices.Clone(a.LargeCommunities))
	if len(e.Communities) == 0 {
		e.Communities = nil
	}
	if len(e.LargeCommunities) == 0 {
		e.LargeCommunities = nil
	}
	in.slots.set(slot, e)
	if !shared {
		in.attrs[h] = slot
	}
	return slot, true
}

// release drops one reference to slot; the last one frees the attribute set.
func (in *interner) release(slot uint32) {
	e := in.slots.get(slot)
	if e.refs--; e.refs > 0 {
		return
	}
	h := hashAttrs(&e.Attrs)
	if s, ok := in.attrs[h]; ok && s == slot {
		delete(in.attrs, h)
	}
	in.releasePath(e.Path)
	in.freed = append(in.freed, slot)
}

func (in *interner) alloc() (uint32, bool) {
	if n := len(in.free); n > 0 {
		s := in.free[n-1]
		in.free = in.free[:n-1]
		return s, true
	}
	if in.next >= maxSlots {
		return 0, false
	}
	in.next++
	return in.next - 1, true
}

// published is called after a trie is published: slots freed before it are no longer
// referenced by the newest trie and start cooling; slots that cooled long enough are reused.
func (in *interner) published(now time.Time) {
	for _, s := range in.freed {
		in.cool = append(in.cool, cooling{s, now})
	}
	in.freed = in.freed[:0]
	i := 0
	for ; i < len(in.cool) && now.Sub(in.cool[i].at) >= coolTime; i++ {
		in.slots.set(in.cool[i].slot, nil)
		in.free = append(in.free, in.cool[i].slot)
	}
	in.cool = slices.Delete(in.cool, 0, i)
}

// len returns the number of interned attribute sets and AS paths.
func (in *interner) len() (attrs, paths int) {
	return int(in.next) - len(in.free) - len(in.cool) - len(in.freed), len(in.paths)
}

func normalize(p netip.Prefix) (netip.Prefix, bool) {
	if !p.IsValid() {
		return p, false
	}
	if a := p.Addr(); a.Is4In6() {
		if p.Bits() < 96 {
			return p, false
		}
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked(), true
}
