package sqlite

import (
	"math/bits"

	"github.com/netledger/netledger/internal/prefetch"
)

// hashTable maps 64-bit hashes to series ids: open addressing with linear probing, at most
// three quarters full. Beside a Go map it is smaller (16 bytes a slot), and its slots can be
// prefetched: a commit of new series looks up a batch of hashes at once, so their cache misses
// overlap. An id of 0 marks an empty slot (no series has id 0).
type hashTable struct {
	slots []hashSlot // a power of two of them
	n     int
}

type hashSlot struct {
	h  uint64
	id int64
}

// makeHashTable returns a table with room for n entries.
func makeHashTable(n int) hashTable {
	size := max(64, 1<<bits.Len(uint(4*n/3)))
	return hashTable{slots: make([]hashSlot, size)}
}

func (t *hashTable) len() int { return t.n }

// prefetch starts loading h's first slot.
func (t *hashTable) prefetch(h uint64) {
	if len(t.slots) > 0 {
		prefetch.Slot(t.slots, h&uint64(len(t.slots)-1))
	}
}

// get returns the id of h.
func (t *hashTable) get(h uint64) (int64, bool) {
	if len(t.slots) == 0 {
		return 0, false
	}
	m := uint64(len(t.slots) - 1)
	for i := h & m; ; i = (i + 1) & m {
		s := &t.slots[i]
		switch {
		case s.id == 0:
			return 0, false
		case s.h == h:
			return s.id, true
		}
	}
}

// set maps h to id (≠ 0), replacing its id if it has one.
func (t *hashTable) set(h uint64, id int64) {
	if 4*(t.n+1) > 3*len(t.slots) {
		old := t.slots
		*t = makeHashTable(2 * max(t.n, 32))
		for _, s := range old {
			if s.id != 0 {
				t.set(s.h, s.id)
			}
		}
	}
	m := uint64(len(t.slots) - 1)
	for i := h & m; ; i = (i + 1) & m {
		s := &t.slots[i]
		switch {
		case s.id == 0:
			*s = hashSlot{h, id}
			t.n++
			return
		case s.h == h:
			s.id = id
			return
		}
	}
}

// del removes h, moving back the entries after it that would no longer be found (no
// tombstones: a failed write's series leave no trace).
func (t *hashTable) del(h uint64) {
	if len(t.slots) == 0 {
		return
	}
	m := uint64(len(t.slots) - 1)
	i := h & m
	for ; t.slots[i].h != h || t.slots[i].id == 0; i = (i + 1) & m {
		if t.slots[i].id == 0 {
			return
		}
	}
	for j := (i + 1) & m; t.slots[j].id != 0; j = (j + 1) & m {
		// The entry at j stays when its home slot lies cyclically in (i, j]: it is found
		// without passing i.
		home := t.slots[j].h & m
		if (j-home)&m < (j-i)&m {
			continue
		}
		t.slots[i] = t.slots[j]
		i = j
	}
	t.slots[i] = hashSlot{}
	t.n--
}
