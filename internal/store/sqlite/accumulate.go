package sqlite

import (
	"time"

	"github.com/netledger/netledger/internal/record"
	"github.com/netledger/netledger/internal/store"
)

// accumulator sums a query's groups (per bucket for series) from SQL rows and packs.
type accumulator struct {
	q    store.Query
	step int64                // series bucket length; 0 for top
	keep map[record.Dims]bool // series with a limit: the groups to keep

	groupIdx map[record.Dims]int32
	groups   []record.Dims
	slotIdx  map[slotKey]int32
	slots    []slot

	// Per series id: 0 not seen, -1 filtered out, g+1 for group g.
	sidGroup    []int32
	sidGroupBig map[int64]int32

	bucket int64
	level  int
	gslot  []int32 // group → slot in the current bucket and level, -1 unknown
	reader packReader
	sidx   []int32
	vals   []uint64
}

type slotKey struct {
	bucket int64
	group  int32
}

type slot struct {
	slotKey
	res int64
	m   [nMetrics]uint64
}

func newAccumulator(q store.Query, step int64, keep map[record.Dims]bool) *accumulator {
	return &accumulator{q: q, step: step, keep: keep, groupIdx: map[record.Dims]int32{},
		slotIdx: map[slotKey]int32{}, sidGroupBig: map[int64]int32{}, bucket: -1 << 62}
}

func (a *accumulator) group(d record.Dims) int32 {
	g, ok := a.groupIdx[d]
	if !ok {
		g = int32(len(a.groups))
		a.groupIdx[d] = g
		a.groups = append(a.groups, d)
	}
	return g
}

func (a *accumulator) slot(bucket int64, g int32) int32 {
	k := slotKey{bucket, g}
	i, ok := a.slotIdx[k]
	if !ok {
		i = int32(len(a.slots))
		a.slotIdx[k] = i
		a.slots = append(a.slots, slot{slotKey: k})
	}
	return i
}

// add adds a grouped SQL row (d holds only the By dimension).
func (a *accumulator) add(bucket int64, d record.Dims, res int64, m *record.Metrics) {
	if a.keep != nil && !a.keep[d] {
		return
	}
	sl := &a.slots[a.slot(bucket, a.group(d))]
	sl.res = max(sl.res, res)
	for c, v := range metricArray(m) {
		sl.m[c] += v
	}
}

const bigSid = 1 << 24

func (a *accumulator) sidLookup(sid int64) int32 {
	if sid >= 0 && sid < bigSid {
		if sid < int64(len(a.sidGroup)) {
			return a.sidGroup[sid]
		}
		return 0
	}
	return a.sidGroupBig[sid]
}

func (a *accumulator) sidStore(sid int64, v int32) {
	if sid >= 0 && sid < bigSid {
		if sid >= int64(len(a.sidGroup)) {
			a.sidGroup = append(a.sidGroup, make([]int32, int(sid)+1-len(a.sidGroup)+len(a.sidGroup)/2)...)
		}
		a.sidGroup[sid] = v
		return
	}
	a.sidGroupBig[sid] = v
}

// resolve returns the sid's group + 1, or -1 when the query's filters exclude it.
func (a *accumulator) resolve(d *record.Dims) int32 {
	q := &a.q
	if (q.Router != "" && d.Router != q.Router) || (q.Class != "" && d.Class != q.Class) ||
		(q.Country != "" && d.Country != q.Country) {
		return -1
	}
	p := project(q.By, d)
	if a.keep != nil && !a.keep[p] {
		return -1
	}
	return a.group(p) + 1
}

// addPack adds the points of a pack.
func (a *accumulator) addPack(level int, start int64, data []byte) error {
	r := &a.reader
	if err := r.reset(data); err != nil {
		return err
	}
	var bucket int64
	if a.step > 0 {
		bucket = floorTo(start, a.step)
	}
	if bucket != a.bucket || level != a.level {
		a.bucket, a.level = bucket, level
		a.gslot = a.gslot[:0]
	}
	var dims []record.Dims
	a.sidx = a.sidx[:0]
	res := levelSeconds[level]
	for k, sid := range r.sids {
		g := a.sidLookup(sid)
		if g == 0 {
			if dims == nil {
				var err error
				if dims, err = r.decodeDims(); err != nil {
					return err
				}
			}
			g = a.resolve(&dims[k])
			a.sidStore(sid, g)
		}
		si := int32(-1)
		if g > 0 {
			for int(g) > len(a.gslot) {
				a.gslot = append(a.gslot, -1)
			}
			si = a.gslot[g-1]
			if si < 0 {
				si = a.slot(bucket, g-1)
				a.gslot[g-1] = si
				a.slots[si].res = max(a.slots[si].res, res)
			}
		}
		a.sidx = append(a.sidx, si)
	}
	if cap(a.vals) < r.n {
		a.vals = make([]uint64, r.n)
	}
	return r.eachMetric(a.vals, func(c int, vals []uint64) {
		for k, v := range vals {
			if si := a.sidx[k]; si >= 0 {
				a.slots[si].m[c] += v
			}
		}
	})
}

// results returns one result per group (top) or per group and bucket (series).
func (a *accumulator) results(series bool) []store.Result {
	out := make([]store.Result, 0, len(a.slots))
	var res time.Duration
	for i := range a.slots {
		sl := &a.slots[i]
		m := metricsFrom(&sl.m)
		if m.Zero() {
			continue // rows of zero metrics are never written; the subtraction of Replace leaves none either
		}
		d := a.groups[sl.group]
		r := store.Result{Key: keyText(a.q.By, &d), Dims: d, Metrics: m, Resolution: time.Duration(sl.res) * time.Second}
		if series {
			r.Start = time.Unix(sl.bucket, 0).UTC()
		}
		res = max(res, r.Resolution)
		out = append(out, r)
	}
	if !series {
		for i := range out {
			out[i].Resolution = res
		}
	}
	return out
}
