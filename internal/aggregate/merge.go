package aggregate

import (
	"sync"

	"github.com/netledger/netledger/internal/routing"
)

// Merge adds everything b has accounted into a — every open interval's sums, in every group,
// and b's record count — as if a had been given b's records too, and empties b as a flush
// would (its intervals are reset for reuse; b stays usable). a and b must have been built by
// New from the same views; Merge panics otherwise. It allocates only when a's tables grow.
//
// It is the combining step of aggregators filled in parallel (one per worker goroutine): b's
// entries are read in order with their stored hashes, a's index lines and entries prefetched a
// few keys ahead. A key whose route in b differs from its route in a (a route that changed, or
// a prefix routed differently by routers that are not a dimension) is diverted as AddBatch
// diverts it; keys b diverted keep their route in the key. Meanwhile, when b holds many keys
// with a prefix, another goroutine makes the path texts of their routes in a's path table, so
// that the flush that follows finds them (a's tables and its paths are apart).
func (a *Aggregator) Merge(b *Aggregator) {
	if len(a.groups) != len(b.groups) {
		panic("aggregate: Merge of aggregators with different views")
	}
	for i := range a.groups {
		if a.groups[i].dims != b.groups[i].dims || a.groups[i].sources != b.groups[i].sources {
			panic("aggregate: Merge of aggregators with different views")
		}
	}
	var paths sync.WaitGroup
	if a.prefixKeys(b) >= preparePaths {
		paths.Go(func() { a.preparePaths(b) })
	}
	for _, biv := range b.open {
		iv := a.intervalAt(biv.start)
		for gi := range biv.base {
			iv.base[gi].merge(&biv.base[gi], a.groups[gi].dims&dPrefix != 0)
		}
	}
	paths.Wait()
	for _, biv := range b.open {
		for gi := range biv.base {
			biv.base[gi].reset()
		}
		b.free = append(b.free, biv)
	}
	b.open, b.cur = b.open[:0], nil
	a.records += b.records
	b.records = 0
}

// preparePaths is the number of keys with a prefix from which Merge makes their path texts on
// another goroutine: a fresh table's first flush otherwise makes them one by one (a large
// interval: about 100 ns a route), while a running collector's paths are mostly known. A
// variable for the tests.
var preparePaths = 16384

// prefixKeys returns the number of keys of b in groups with the prefix dimension.
func (a *Aggregator) prefixKeys(b *Aggregator) int {
	n := 0
	for _, biv := range b.open {
		for gi := range biv.base {
			if a.groups[gi].dims&dPrefix != 0 {
				n += biv.base[gi].len()
			}
		}
	}
	return n
}

// preparePaths makes the path texts of the routes of b's keys with a prefix in a's path table,
// its slots prefetched a few keys ahead. It reads b's tables and a's paths only.
func (a *Aggregator) preparePaths(b *Aggregator) {
	route := func(e *entry) *routing.Attrs {
		if e.k.fam&famRoute != 0 {
			return e.k.attrs
		}
		return e.route
	}
	for _, biv := range b.open {
		for gi := range biv.base {
			if a.groups[gi].dims&dPrefix == 0 {
				continue
			}
			ents := biv.base[gi].ents
			for i := range ents {
				if j := i + flushAhead; j < len(ents) {
					a.paths.prefetch(route(&ents[j]))
				}
				if r := route(&ents[i]); r != nil {
					a.path(r)
				}
			}
		}
	}
}

// mergeAhead is how many keys ahead merge prefetches the destination's index lines (and half
// as many, its entries).
const mergeAhead = 16

// merge adds the entries of o to s. byRoute: the keys leave the route to the entry (a group with
// the prefix dimension), and an entry of o whose route differs from s's is diverted.
func (s *sums) merge(o *sums, byRoute bool) {
	for j := range o.ents {
		if k := j + mergeAhead; k < len(o.ents) {
			s.prefetch(o.ents[k].h)
		}
		if k := j + mergeAhead/2; k < len(o.ents) {
			s.prefetchEntry(o.ents[k].h)
		}
		oe := &o.ents[j]
		e, fresh := s.slotAt(&oe.k, oe.h)
		switch {
		case fresh:
			e.route = oe.route
			if oe.k.fam&famRoute != 0 {
				s.diverted++ // a key o diverted: its route is in the key
			}
		case byRoute && oe.k.fam&famRoute == 0 && e.route != oe.route:
			e = s.divert(&oe.k, oe.route)
		}
		e.m.Add(&oe.m)
	}
}
