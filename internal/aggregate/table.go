package aggregate

import (
	"math/bits"
	"unsafe"

	"github.com/netledger/netledger/internal/prefetch"
	"github.com/netledger/netledger/internal/record"
	"github.com/netledger/netledger/internal/routing"
)

// sums is a table of metrics by key, reused across intervals: open addressing with linear
// probing over slots that hold the key and its metrics together, so that adding a record
// touches one or two adjacent cache lines instead of a map's control word, key slot and a
// separate value. used lists the occupied slots in insertion order (for flush and reset).
type sums struct {
	slots []slot
	used  []int32
	mask  uint64
	// diverted counts the keys added by divert: a first-stage key met with a second route
	diverted int
}

type slot struct {
	h uint64 // the key's hash, with the low bit set; 0: empty slot
	k key
	m record.Metrics
	// route is, in a first-stage table, the route (attribute set) of the records summed here:
	// keys with a prefix leave it out of the key (see Aggregator.AddBatch)
	route *routing.Attrs
	_     [slotPad]byte
}

// slotPad pads a slot to a whole number of cache lines: a slot then spans exactly
// unsafe.Sizeof(slot{})/64 lines (the slot array is page-aligned), every one prefetched.
const slotPad = (64 - (16+unsafe.Sizeof(key{})+unsafe.Sizeof(record.Metrics{}))%64) % 64

const minSlots = 1 << 10

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

// prefetch starts loading the slot where the key of hash h is (or would be).
func (s *sums) prefetch(h uint64) {
	if len(s.slots) > 0 {
		prefetch.Slot(s.slots, (h|1)&s.mask)
	}
}

// prefetchEntry starts loading the slot of the i-th key added, if there is one.
func (s *sums) prefetchEntry(i int) {
	if i < len(s.used) {
		prefetch.Slot(s.slots, uint64(s.used[i]))
	}
}

// atHash is at for a key whose hash is h.
func (s *sums) atHash(k *key, h uint64) *record.Metrics {
	sl, _ := s.slotAt(k, h)
	return &sl.m
}

// slotAt returns the slot of k (whose hash is h), adding k when it is new (fresh).
func (s *sums) slotAt(k *key, h uint64) (sl *slot, fresh bool) {
	if uint64(len(s.used))*4 >= uint64(len(s.slots))*3 {
		s.grow()
	}
	tag := h | 1 // also the probe start, as grow places it
	i := tag & s.mask
	for {
		sl := &s.slots[i]
		if sl.h == 0 {
			sl.k, sl.h = *k, tag
			s.used = append(s.used, int32(i))
			return sl, true
		}
		if sl.h == tag && sl.k.eq(k) {
			return sl, false
		}
		i = (i + 1) & s.mask
	}
}

// divert returns the slot of k with route in the key, for a record whose route differs from
// that of k's slot (a route that changed during the interval, or the same prefix routed
// differently by routers that are not a dimension).
func (s *sums) divert(k *key, route *routing.Attrs) *slot {
	d := *k
	d.attrs = route
	d.fam |= famRoute
	sl, fresh := s.slotAt(&d, hashKey(&d))
	if fresh {
		sl.route = route
		s.diverted++
	}
	return sl
}

// quadrupleSlots bounds the sizes reached by growing fourfold instead of twofold: a fresh table
// (a new pipeline, a view's first flush) growing to 2^18 slots (48 MB) then allocates and
// reinserts 16 MB on the way instead of 48 MB (less garbage, fewer collections), at the cost
// of a table of 2^18 slots where doubling would stop at 2^17 (49,153–98,304 keys: 24 MB more).
const quadrupleSlots = 1 << 18

// grow enlarges the table (kept at most three quarters full) and reinserts the keys in their
// order.
func (s *sums) grow() {
	n := max(minSlots, 2*len(s.slots))
	if 4*len(s.slots) <= quadrupleSlots {
		n = max(minSlots, 4*len(s.slots))
	}
	old, oldUsed := s.slots, s.used
	s.slots, s.mask = make([]slot, n), uint64(n-1)
	s.used = make([]int32, 0, n*3/4)
	for _, j := range oldUsed {
		sl := &old[j]
		i := sl.h & s.mask
		for s.slots[i].h != 0 {
			i = (i + 1) & s.mask
		}
		s.slots[i] = *sl
		s.used = append(s.used, int32(i))
	}
}

// len returns the number of keys.
func (s *sums) len() int { return len(s.used) }

// entry returns the i-th key added, its metrics and its route.
func (s *sums) entry(i int) (*key, *record.Metrics, *routing.Attrs) {
	sl := &s.slots[s.used[i]]
	return &sl.k, &sl.m, sl.route
}

// reset empties the table, keeping its size.
func (s *sums) reset() {
	for _, i := range s.used {
		s.slots[i] = slot{}
	}
	s.used = s.used[:0]
	s.diverted = 0
}
