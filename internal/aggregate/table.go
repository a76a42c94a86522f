package aggregate

import (
	"unsafe"

	"github.com/netledger/netledger/internal/prefetch"
	"github.com/netledger/netledger/internal/record"
)

// sums is a table of metrics by key, reused across intervals: open addressing with linear
// probing over slots that hold the key and its metrics together, so that adding a record
// touches one or two adjacent cache lines instead of a map's control word, key slot and a
// separate value. used lists the occupied slots in insertion order (for flush and reset).
type sums struct {
	slots []slot
	used  []int32
	mask  uint64
}

type slot struct {
	k key
	m record.Metrics
	h uint64 // the key's hash, with the low bit set; 0: empty slot
}

const minSlots = 1 << 10

func newSums() sums { return sums{} }

// keyWords is the key as words for hashing (key is padding-free: every byte is a field).
const keyWords = unsafe.Sizeof(key{}) / 8

func init() {
	if unsafe.Sizeof(key{})%8 != 0 {
		panic("aggregate: key size is not a multiple of 8")
	}
}

func hashKey(k *key) uint64 {
	w := (*[keyWords]uint64)(unsafe.Pointer(k))
	h := uint64(0x9E3779B97F4A7C15)
	for _, v := range w {
		h = (h ^ v) * 0xBF58476D1CE4E5B9
		h ^= h >> 31
	}
	return h
}

// at returns the metrics of k, adding k when it is new.
func (s *sums) at(k *key) *record.Metrics { return s.atHash(k, hashKey(k)) }

// prefetch starts loading the slot where the key of hash h is (or would be).
func (s *sums) prefetch(h uint64) {
	if len(s.slots) > 0 {
		prefetch.Slot(s.slots, (h|1)&s.mask)
	}
}

// atHash is at for a key whose hash is h.
func (s *sums) atHash(k *key, h uint64) *record.Metrics {
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
			return &sl.m
		}
		if sl.h == tag && sl.k == *k {
			return &sl.m
		}
		i = (i + 1) & s.mask
	}
}

// grow doubles the table (kept at most three quarters full) and reinserts the keys in their
// order.
func (s *sums) grow() {
	n := max(minSlots, 2*len(s.slots))
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

// reserve grows the table to hold n keys without growing again.
func (s *sums) reserve(n int) {
	for 4*n > 3*len(s.slots) {
		s.grow()
	}
}

// len returns the number of keys.
func (s *sums) len() int { return len(s.used) }

// entry returns the i-th key added and its metrics.
func (s *sums) entry(i int) (*key, *record.Metrics) {
	sl := &s.slots[s.used[i]]
	return &sl.k, &sl.m
}

// reset empties the table, keeping its size.
func (s *sums) reset() {
	for _, i := range s.used {
		s.slots[i] = slot{}
	}
	s.used = s.used[:0]
}
