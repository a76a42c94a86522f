package sqlite

import (
	"cmp"
	"errors"
	"slices"
	"time"

	"github.com/netledger/netledger/internal/record"
)

// A group is the points of one view at one level and interval start, in ascending series id:
// what one delta pack of a write holds.
type group struct {
	bucket
	packBuilder // the points (ids and metrics) and their longest resolution
	// same is the index of an earlier group whose blobs this group's equal: it was derived
	// unchanged from that finer group (the one base interval of an hour in the write, an hour
	// alone in its day…), and shares its points. sameDims is that of an earlier group with the
	// same series but other sums (its dims blob only). -1 when none.
	same, sameDims int
}

// grouper turns a batch's rows into the groups of every level; its buffers are reused from
// write to write.
type grouper struct {
	idx   map[bucket]int // own's index by bucket
	own   []rowGroup
	arena metricsArena
}

// rowGroup is the rows of a batch in one group: their series ids and row indices.
type rowGroup struct {
	bucket
	res     int64
	entries []entry
}

type entry struct {
	sid int64
	row int
}

func cmpEntry(a, b entry) int { return cmp.Compare(a.sid, b.sid) }

func cmpGroup(a, b group) int {
	if c := cmp.Compare(a.level, b.level); c != 0 {
		return c
	}
	if c := cmp.Compare(a.view, b.view); c != 0 {
		return c
	}
	return cmp.Compare(a.start, b.start)
}

// group returns the groups of rows (sids: their series ids) at every level, finest first, and
// the end of the newest interval they touch. Rows of one series, level and interval are summed;
// rows whose metrics are all zero are skipped. The groups point into rows' metrics: they live
// as long as the write.
func (g *grouper) group(rows []record.Row, sids []int64) ([]group, int64, error) {
	if g.idx == nil {
		g.idx = map[bucket]int{}
	}
	clear(g.idx)
	g.arena = metricsArena{}
	n := 0 // g.own[:n] in use; the entries of the rest are kept for their room
	var (
		end  int64
		last = -1
		key  bucket
	)
	for i := range rows {
		r := &rows[i]
		if r.Metrics.Zero() {
			continue
		}
		if r.View == "" {
			return nil, 0, errors.New("row without view")
		}
		level, err := levelOf(r.Resolution)
		if err != nil {
			return nil, 0, err
		}
		start := r.Start.Unix()
		res := int64(r.Resolution / time.Second)
		end = max(end, start+res)
		if k := (bucket{level, start, r.View}); last < 0 || k != key {
			j, ok := g.idx[k]
			if !ok {
				j = n
				g.idx[k] = j
				if n == len(g.own) {
					g.own = append(g.own, rowGroup{})
				}
				g.own[j] = rowGroup{bucket: k, entries: g.own[j].entries[:0]}
				n++
			}
			last, key = j, k
		}
		o := &g.own[last]
		o.res = max(o.res, res)
		o.entries = append(o.entries, entry{sids[i], i})
	}
	own := make([]group, 0, n)
	for j := range n {
		o := &g.own[j]
		es := o.entries
		if !slices.IsSortedFunc(es, cmpEntry) { // new series of one interval come in order
			slices.SortFunc(es, cmpEntry)
		}
		b := packBuilder{res: o.res, ids: make([]int64, 0, len(es)), ms: make([]*record.Metrics, 0, len(es))}
		for k := 0; k < len(es); {
			m := &rows[es[k].row].Metrics
			e := k + 1
			for e < len(es) && es[e].sid == es[k].sid {
				e++
			}
			if e > k+1 {
				m = g.arena.new(*m)
				for _, x := range es[k+1 : e] {
					m.Add(&rows[x.row].Metrics)
				}
			}
			b.add(es[k].sid, m)
			k = e
		}
		own = append(own, group{bucket: o.bucket, packBuilder: b, same: -1, sameDims: -1})
	}
	return g.rollUp(own), end, nil
}

// rollUp returns the groups of every level, finest first: at each level, its own groups
// (rows written at that level) and the finer level's groups summed into its intervals.
// A coarser interval fed by one finer group only shares that group's points and blobs instead
// of copying, summing and encoding them again: with a one-hour base interval, or a write of
// one base interval, every coarser level is derived so.
func (g *grouper) rollUp(own []group) []group {
	slices.SortFunc(own, cmpGroup)
	type source struct {
		view  string
		start int64 // at the level being built
		idx   int   // in all (a finer group) or in own
		own   bool
	}
	var (
		all   = make([]group, 0, len(own)*packLevels)
		finer []int // the previous level's groups in all
		srcs  []source
		parts []packBuilder
	)
	i := 0
	for l := range packLevels {
		j := i
		for j < len(own) && own[j].level == l {
			j++
		}
		srcs = srcs[:0]
		for _, f := range finer {
			srcs = append(srcs, source{all[f].view, floorTo(all[f].start, packSeconds(l)), f, false})
		}
		for k := i; k < j; k++ {
			srcs = append(srcs, source{own[k].view, own[k].start, k, true})
		}
		i = j
		slices.SortStableFunc(srcs, func(a, b source) int {
			if c := cmp.Compare(a.view, b.view); c != 0 {
				return c
			}
			return cmp.Compare(a.start, b.start)
		})
		finer = finer[:0]
		for a := 0; a < len(srcs); {
			b := a + 1
			for b < len(srcs) && srcs[b].view == srcs[a].view && srcs[b].start == srcs[a].start {
				b++
			}
			run := srcs[a:b]
			a = b
			k := bucket{l, run[0].start, run[0].view}
			var ng group
			switch {
			case len(run) == 1 && run[0].own:
				ng = own[run[0].idx]
			case len(run) == 1:
				ng = group{bucket: k, packBuilder: all[run[0].idx].packBuilder, same: run[0].idx, sameDims: -1}
			default:
				parts = parts[:0]
				for _, s := range run {
					if s.own {
						parts = append(parts, own[s.idx].packBuilder)
					} else {
						parts = append(parts, all[s.idx].packBuilder)
					}
				}
				ng = group{bucket: k, packBuilder: g.merge(parts), same: -1, sameDims: -1}
				for _, s := range run {
					// The merged series include every part's: as many means the same.
					if !s.own && len(all[s.idx].ids) == len(ng.ids) {
						ng.sameDims = s.idx
						break
					}
				}
			}
			if l > levelBase {
				ng.res = levelSeconds[min(l, levelDay)]
			}
			finer = append(finer, len(all))
			all = append(all, ng)
		}
	}
	// Neighbouring intervals of a view (the minutes of a write) mostly hold the same series.
	last := map[string]int{}
	for i := range all {
		g := &all[i]
		if p, ok := last[g.view]; ok && g.same < 0 && g.sameDims < 0 && slices.Equal(all[p].ids, g.ids) {
			g.sameDims = p
		}
		last[g.view] = i
	}
	return all
}

// merge returns the points of parts (each in ascending series id) summed per series, merging
// them pairwise.
func (g *grouper) merge(parts []packBuilder) packBuilder {
	parts = slices.Clone(parts)
	for len(parts) > 1 {
		n := 0
		for k := 0; k < len(parts); k += 2 {
			if k+1 < len(parts) {
				parts[n] = g.merge2(&parts[k], &parts[k+1])
			} else {
				parts[n] = parts[k]
			}
			n++
		}
		parts = parts[:n]
	}
	return parts[0]
}

func (g *grouper) merge2(a, b *packBuilder) packBuilder {
	out := packBuilder{res: max(a.res, b.res), ids: make([]int64, 0, len(a.ids)+len(b.ids)),
		ms: make([]*record.Metrics, 0, len(a.ids)+len(b.ids))}
	i, j := 0, 0
	for i < len(a.ids) && j < len(b.ids) {
		switch x, y := a.ids[i], b.ids[j]; {
		case x < y:
			out.add(x, a.ms[i])
			i++
		case x > y:
			out.add(y, b.ms[j])
			j++
		default:
			m := g.arena.new(*a.ms[i])
			m.Add(b.ms[j])
			out.add(x, m)
			i++
			j++
		}
	}
	out.ids = append(append(out.ids, a.ids[i:]...), b.ids[j:]...)
	out.ms = append(append(out.ms, a.ms[i:]...), b.ms[j:]...)
	return out
}

// metricsArena hands out Metrics that stay where they are (groups point to them) for a write.
type metricsArena struct {
	chunk []record.Metrics
}

func (a *metricsArena) new(m record.Metrics) *record.Metrics {
	if len(a.chunk) == cap(a.chunk) {
		a.chunk = make([]record.Metrics, 0, min(max(2*cap(a.chunk), 256), 1<<16))
	}
	a.chunk = append(a.chunk, m)
	return &a.chunk[len(a.chunk)-1]
}

// groupsOf returns the groups of points of one level and interval start, in ascending series
// id, one per view (the migration's points).
func (s *Store) groupsOf(ps []point) []group {
	byView := map[string]int{}
	var gs []group
	for k := range ps {
		p := &ps[k]
		v := s.keys.at(p.sid).view
		j, ok := byView[v]
		if !ok {
			j = len(gs)
			byView[v] = j
			gs = append(gs, group{bucket: bucket{p.level, p.start, v}, same: -1, sameDims: -1})
		}
		gs[j].add(p.sid, &p.m)
		gs[j].res = max(gs[j].res, p.res)
	}
	return gs
}
