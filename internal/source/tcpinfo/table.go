package tcpinfo

// cookieTable maps socket cookies to what the tracker remembers of them: open addressing with
// linear probing in one slice, the key beside its value, so that a lookup costs about one cache
// miss (a Go map leading to a slab entry cost two or three, 185 ns a socket at 100,000
// sockets). Deletion leaves a tombstone and never allocates (the destroy path); insertion
// rebuilds the table when live entries and tombstones fill half of it.
type cookieTable struct {
	slots []slot
	shift uint8 // 64 − log2(len(slots))
	live  int   // entries
	used  int   // entries and tombstones
}

type slot struct {
	cookie uint64 // a socket's, or slotEmpty, or slotDeleted
	seen
}

// The kernel never gives these cookies: a socket's cookie is made on first use and never 0,
// and ^0 is INET_DIAG_NOCOOKIE. The tracker does not remember sockets carrying them.
const (
	slotEmpty   = 0
	slotDeleted = ^uint64(0)
	minSlots    = 1 << 10
)

func trackable(cookie uint64) bool { return cookie != slotEmpty && cookie != slotDeleted }

func (t *cookieTable) home(cookie uint64) uint64 {
	return (cookie * 0x9E3779B97F4A7C15) >> t.shift // Fibonacci hashing: cookies are sequential
}

// get returns the slot of cookie, or −1. cookie must be trackable.
func (t *cookieTable) get(cookie uint64) int {
	if len(t.slots) == 0 {
		return -1
	}
	mask := uint64(len(t.slots) - 1)
	for i := t.home(cookie); ; i = (i + 1) & mask {
		switch t.slots[i].cookie {
		case cookie:
			return int(i)
		case slotEmpty:
			return -1
		}
	}
}

// prefetch reads the home slot of every cookie of socks, and returns a value that
// depends on them all (the caller keeps it, so that the reads are not optimised away). The
// reads are independent, so their cache misses overlap: the lookups of a batch of dumped
// sockets that follow find their slots in the cache instead of waiting for memory one socket
// at a time (a cache miss each: the table is about 15 MB at 100,000 sockets).
func (t *cookieTable) prefetch(socks []Socket) uint64 {
	if len(t.slots) == 0 {
		return 0
	}
	var x uint64
	for i := range socks {
		// A slot is 56 bytes: its first and last words may lie in two cache lines.
		sl := &t.slots[t.home(socks[i].Cookie)]
		x += sl.cookie + sl.gen
	}
	return x
}

// put returns the slot of cookie, inserting a zero entry when absent (found false). cookie must
// be trackable. Slot indexes returned earlier are invalid afterwards.
func (t *cookieTable) put(cookie uint64) (i int, found bool) {
	if 2*(t.used+1) > len(t.slots) {
		t.rebuild(max(minSlots, 4*(t.live+1)))
	}
	mask := uint64(len(t.slots) - 1)
	free := -1
	for j := t.home(cookie); ; j = (j + 1) & mask {
		switch t.slots[j].cookie {
		case cookie:
			return int(j), true
		case slotDeleted:
			if free < 0 {
				free = int(j)
			}
			continue
		case slotEmpty:
			if free < 0 {
				free = int(j)
				t.used++
			}
			t.slots[free] = slot{cookie: cookie}
			t.live++
			return free, false
		}
	}
}

// del deletes the entry in slot i.
func (t *cookieTable) del(i int) {
	t.slots[i].cookie = slotDeleted
	t.live--
}

// isLive reports whether slot i holds an entry.
func (t *cookieTable) isLive(i int) bool { return trackable(t.slots[i].cookie) }

// rebuild moves the entries into a table of at least n slots (a power of two), dropping the
// tombstones.
func (t *cookieTable) rebuild(n int) {
	size, shift := 1, uint8(64)
	for size < n {
		size, shift = size<<1, shift-1
	}
	old := t.slots
	t.slots, t.shift, t.used = make([]slot, size), shift, t.live
	mask := uint64(size - 1)
	for i := range old {
		if !trackable(old[i].cookie) {
			continue
		}
		j := t.home(old[i].cookie)
		for t.slots[j].cookie != slotEmpty {
			j = (j + 1) & mask
		}
		t.slots[j] = old[i]
	}
}
