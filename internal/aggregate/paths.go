package aggregate

import (
	"unsafe"

	"github.com/netledger/netledger/internal/prefetch"
	"github.com/netledger/netledger/internal/routing"
)

// pathTable maps the attribute sets met in flushes to their path text and canonical set: open
// addressing over slots holding the set and its pathInfo inline, so that a flush's lookup for
// each first-stage key and each prefix row is one probe in a table sized by the routes, which a
// chunk prefetches, instead of a map access and a pathInfo pointer each.
type pathTable struct {
	slots []pathSlot
	n     int
	mask  uint64
}

type pathSlot struct {
	attrs *routing.Attrs // nil: empty
	pathInfo
}

func hashAttrs(a *routing.Attrs) uint64 {
	return mix(uint64(uintptr(unsafe.Pointer(a)))^hashSeeds[2], hashSeeds[3])
}

// get returns the pathInfo of attrs, or nil when it has none.
func (t *pathTable) get(attrs *routing.Attrs) *pathInfo {
	if t.n == 0 || attrs == nil {
		return nil
	}
	for i := hashAttrs(attrs) & t.mask; ; i = (i + 1) & t.mask {
		sl := &t.slots[i]
		if sl.attrs == attrs {
			return &sl.pathInfo
		}
		if sl.attrs == nil {
			return nil
		}
	}
}

// prefetch starts loading the slot of attrs.
func (t *pathTable) prefetch(attrs *routing.Attrs) {
	if t.n > 0 && attrs != nil {
		prefetch.Slot(t.slots, hashAttrs(attrs)&t.mask)
	}
}

// put adds attrs (not in t) with p, and returns its pathInfo (valid until the next put).
func (t *pathTable) put(attrs *routing.Attrs, p pathInfo) *pathInfo {
	if (t.n+1)*4 > len(t.slots)*3 {
		old := t.slots
		t.slots = make([]pathSlot, max(minSlots, 2*len(old)))
		t.mask, t.n = uint64(len(t.slots)-1), 0
		for i := range old {
			if old[i].attrs != nil {
				t.put(old[i].attrs, old[i].pathInfo)
			}
		}
	}
	i := hashAttrs(attrs) & t.mask
	for t.slots[i].attrs != nil {
		i = (i + 1) & t.mask
	}
	t.slots[i] = pathSlot{attrs: attrs, pathInfo: p}
	t.n++
	return &t.slots[i].pathInfo
}

// keep drops the sets for which keep is false (the table is rebuilt).
func (t *pathTable) keep(keep func(attrs *routing.Attrs, p *pathInfo) bool) {
	old := t.slots
	*t = pathTable{}
	for i := range old {
		if sl := &old[i]; sl.attrs != nil && keep(sl.attrs, &sl.pathInfo) {
			t.put(sl.attrs, sl.pathInfo)
		}
	}
}

// each calls f for every set of t.
func (t *pathTable) each(f func(attrs *routing.Attrs, p *pathInfo)) {
	for i := range t.slots {
		if sl := &t.slots[i]; sl.attrs != nil {
			f(sl.attrs, &sl.pathInfo)
		}
	}
}
