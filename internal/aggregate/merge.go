package aggregate

// Merge adds everything b has accounted into a — every open interval's sums, in every group,
// and b's record count — as if a had been given b's records too, and empties b as a flush
// would (its intervals are reset for reuse; b stays usable). a and b must have been built by
// New from the same views; Merge panics otherwise. It allocates only when a's tables grow.
//
// It is the combining step of aggregators filled in parallel (one per worker goroutine): b's
// entries are read in order with their stored hashes, a's index lines and entries prefetched a
// few keys ahead. A key whose route in b differs from its route in a (a route that changed, or
// a prefix routed differently by routers that are not a dimension) is diverted as AddBatch
// diverts it; keys b diverted keep their route in the key.
func (a *Aggregator) Merge(b *Aggregator) {
	if len(a.groups) != len(b.groups) {
		panic("aggregate: Merge of aggregators with different views")
	}
	for i := range a.groups {
		if a.groups[i].dims != b.groups[i].dims || a.groups[i].sources != b.groups[i].sources {
			panic("aggregate: Merge of aggregators with different views")
		}
	}
	for _, biv := range b.open {
		iv := a.intervalAt(biv.start)
		for gi := range biv.base {
			iv.base[gi].merge(&biv.base[gi], a.groups[gi].dims&dPrefix != 0)
			biv.base[gi].reset()
		}
		b.free = append(b.free, biv)
	}
	b.open, b.cur = b.open[:0], nil
	a.records += b.records
	b.records = 0
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
