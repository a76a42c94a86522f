package aggregate

import (
	"math/bits"
	"unsafe"

	"github.com/netledger/netledger/internal/prefetch"
	"github.com/netledger/netledger/internal/record"
	"github.com/netledger/netledger/internal/routing"
)

// sums is a table of metrics by key, reused across intervals: the entries (key, metrics,
// route) are dense, in insertion order, and an open-addressing index with linear probing maps
// a key's hash to its entry. An index slot is 8 bytes (32 bits of the hash and the entry's
// number), so that the probes of a key touch one line of a table 24 times smaller than the
// entries, and a flush reads the entries sequentially instead of at random slots.
type sums struct {
	// index holds, per slot, the high 32 bits of the key's hash and its entry's number + 1
	// in the low 32 bits; 0: empty slot
	index []uint64
	ents  []entry
	mask  uint64
	// diverted counts the keys added by divert: a first-stage key met with a second route
	diverted int
}

// entry is a key with its metrics: exactly three cache lines (the entry array is page-aligned).
type entry struct {
	h uint64 // the key's hash
	k key
	m record.Metrics
	// route is, in a first-stage table, the route (attribute set) of the records summed here:
	// keys with a prefix leave it out of the key (see Aggregator.AddBatch)
	route *routing.Attrs
	_     [entryPad]byte
}

// entryPad pads an entry to a whole number of cache lines.
const entryPad = (64 - (16+unsafe.Sizeof(key{})+unsafe.Sizeof(record.Metrics{}))%64) % 64

const (
	minSlots = 1 << 10
	tagMask  = uint64(0xffffffff00000000)
)

func newSums() sums { return sums{} }

// keyWords is the key as words for hashing (key is padding-free: every byte is a field).
const keyWords = unsafe.Sizeof(key{}) / 8

func init() {
	if unsafe.Sizeof(key{})%8 != 0 {
		panic("aggregate: key size is not a multiple of 8")
	}
}

// eq reports whether k and o are equal, word by word (inlined, unlike == on the struct).
func (k *key) eq(o *key) bool {
	a := (*[keyWords]uint64)(unsafe.Pointer(k))
	b := (*[keyWords]uint64)(unsafe.Pointer(o))
	d := uint64(0)
	for i := range a {
		d |= a[i] ^ b[i]
	}
	return d == 0
}

// hashKey hashes k: the words are mixed two by two (a 64×64→128-bit product folded, as
// wyhash does), products independent of one another so that they overlap in the CPU, then
// the sum is mixed once more so that the low bits (the slot) depend on every word.
func hashKey(k *key) uint64 {
	w := (*[keyWords]uint64)(unsafe.Pointer(k))
	h := uint64(keyWords)
	i := 0
	for ; i+1 < len(w); i += 2 {
		h ^= mix(w[i]^hashSeeds[i], w[i+1]^hashSeeds[i+1])
	}
	if i < len(w) {
		h ^= mix(w[i]^hashSeeds[i], hashSeeds[i+1])
	}
	return mix(h^hashSeeds[0], hashSeeds[1])
}

func mix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// hashSeeds are random odd constants (wyhash's and splitmix64's), one per key word and one more.
var hashSeeds = [keyWords + 1]uint64{
	0xa0761d6478bd642f, 0xe7037ed1a0b428db, 0x8ebc6af09c88c6e3, 0x589965cc75374cc3,
	0x1d8e4e27c47d124f, 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB,
	0xd6e8feb86659fd93, 0xc2b2ae3d27d4eb4f, 0x165667b19e3779f9, 0x27d4eb2f165667c5,
}

// at returns the metrics of k, adding k when it is new.
func (s *sums) at(k *key) *record.Metrics { return s.atHash(k, hashKey(k)) }

// prefetch starts loading the index line where the key of hash h is (or would be).
func (s *sums) prefetch(h uint64) {
	if len(s.index) > 0 {
		prefetch.Line(unsafe.Pointer(&s.index[h&s.mask]))
	}
}

// prefetchEntry starts loading the entry the key of hash h probably has: the one its first
// index slot points to when the tags match (its index line should be in the cache: prefetch).
func (s *sums) prefetchEntry(h uint64) {
	if len(s.index) == 0 {
		return
	}
	if v := s.index[h&s.mask]; v != 0 && v&tagMask == h&tagMask {
		prefetch.Slot(s.ents, uint64(uint32(v)-1))
	}
}

// atHash is at for a key whose hash is h.
func (s *sums) atHash(k *key, h uint64) *record.Metrics {
	e, _ := s.slotAt(k, h)
	return &e.m
}

// slotAt returns the entry of k (whose hash is h), adding k when it is new (fresh). The
// entry is valid until the next addition to s.
func (s *sums) slotAt(k *key, h uint64) (e *entry, fresh bool) {
	if uint64(len(s.ents))*4 >= uint64(len(s.index))*3 {
		s.grow()
	}
	tag := h & tagMask
	i := h & s.mask
	for {
		v := s.index[i]
		if v == 0 {
			n := len(s.ents)
			s.index[i] = tag | uint64(n+1)
			s.ents = s.ents[:n+1]
			e := &s.ents[n]
			*e = entry{h: h, k: *k}
			return e, true
		}
		if v&tagMask == tag {
			if e := &s.ents[uint32(v)-1]; e.h == h && e.k.eq(k) {
				return e, false
			}
		}
		i = (i + 1) & s.mask
	}
}

// divert returns the entry of k with route in the key, for a record whose route differs from
// that of k's entry (a route that changed during the interval, or the same prefix routed
// differently by routers that are not a dimension).
func (s *sums) divert(k *key, route *routing.Attrs) *entry {
	d := *k
	d.attrs = route
	d.fam |= famRoute
	e, fresh := s.slotAt(&d, hashKey(&d))
	if fresh {
		e.route = route
		s.diverted++
	}
	return e
}

// quadrupleSlots bounds the sizes reached by growing fourfold instead of twofold: a fresh table
// (a new pipeline, a view's first flush) growing to 2^18 slots then allocates and copies a
// third of the entries on the way that doubling would (less garbage, fewer collections), at
// the cost of room for 2^18·3/4 entries where doubling would stop at half of it.
const quadrupleSlots = 1 << 18

// grow enlarges the index (kept at most three quarters full) and the entries' room to three
// quarters of the index, and indexes the entries again (their order is kept).
func (s *sums) grow() {
	n := max(minSlots, 2*len(s.index))
	if 4*len(s.index) <= quadrupleSlots {
		n = max(minSlots, 4*len(s.index))
	}
	s.index, s.mask = make([]uint64, n), uint64(n-1)
	ents := make([]entry, len(s.ents), n*3/4)
	copy(ents, s.ents)
	s.ents = ents
	for j := range s.ents {
		h := s.ents[j].h
		i := h & s.mask
		for s.index[i] != 0 {
			i = (i + 1) & s.mask
		}
		s.index[i] = h&tagMask | uint64(j+1)
	}
}

// len returns the number of keys.
func (s *sums) len() int { return len(s.ents) }

// entry returns the i-th key added, its metrics and its route.
func (s *sums) entry(i int) (*key, *record.Metrics, *routing.Attrs) {
	e := &s.ents[i]
	return &e.k, &e.m, e.route
}

// reset empties the table, keeping its size: a cost proportional to the keys it held, not to
// its size. The entries past the new length keep their old contents (overwritten whole when
// added again).
func (s *sums) reset() {
	if len(s.ents) >= len(s.index)/16 {
		clear(s.index)
	} else {
		for j := range s.ents {
			i := s.ents[j].h & s.mask
			for uint32(s.index[i]) != uint32(j+1) {
				i = (i + 1) & s.mask
			}
			s.index[i] = 0
		}
	}
	s.ents = s.ents[:0]
	s.diverted = 0
}
