package sqlite

import (
	"cmp"
	"net/netip"
	"slices"
	"time"

	"github.com/netledger/netledger/internal/record"
	"github.com/netledger/netledger/internal/store"
)

// accumulator sums a query's groups (per bucket for series) from SQL rows and packs.
type accumulator struct {
	q    store.Query
	step int64                // series bucket length; 0 for top
	keep map[record.Dims]bool // series with a limit: the groups to keep

	groupIdx map[gkey]int32
	groups   []gkey
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
	sums   [][nMetrics]uint64 // per slot, for addMetrics
}

type slotKey struct {
	bucket int64
	group  int32
}

type slot struct {
	slotKey
	res int64
}

func newAccumulator(q store.Query, step int64, keep map[record.Dims]bool) *accumulator {
	return &accumulator{q: q, step: step, keep: keep, groupIdx: map[gkey]int32{},
		slotIdx: map[slotKey]int32{}, sidGroupBig: map[int64]int32{}, bucket: -1 << 62}
}

func (a *accumulator) group(k gkey) int32 {
	g, ok := a.groupIdx[k]
	if !ok {
		g = int32(len(a.groups))
		a.groupIdx[k] = g
		a.groups = append(a.groups, k)
	}
	return g
}

// dims returns group g's value.
func (a *accumulator) dims(g int32) record.Dims { return dimsFromKey(a.q.By, a.groups[g]) }

// gkey is a group's value as a small map key (hashing all of Dims costs more).
type gkey struct {
	s    string
	n    int64
	a    netip.Addr
	bits int
}

func groupKey(by string, d *record.Dims) gkey {
	switch dimensions[by].column {
	case "asn":
		return gkey{n: int64(d.ASN)}
	case "origin_as":
		return gkey{n: int64(d.OriginAS)}
	case "peer_as":
		return gkey{n: int64(d.PeerAS)}
	case "proto":
		return gkey{n: int64(d.Proto)}
	case "port":
		return gkey{n: int64(d.Port)}
	case "country":
		return gkey{s: d.Country}
	case "region":
		return gkey{s: d.Region}
	case "router":
		return gkey{s: d.Router}
	case "class":
		return gkey{s: d.Class}
	case "path":
		return gkey{s: d.Path}
	case "prefix":
		return gkey{a: d.Prefix.Addr(), bits: d.Prefix.Bits()}
	case "src_group":
		return gkey{a: d.SrcGroup}
	case "dst_group":
		return gkey{a: d.DstGroup}
	}
	return gkey{}
}

// dimsFromKey is the inverse of groupKey.
func dimsFromKey(by string, k gkey) record.Dims {
	var d record.Dims
	switch dimensions[by].column {
	case "asn":
		d.ASN = uint32(k.n)
	case "origin_as":
		d.OriginAS = uint32(k.n)
	case "peer_as":
		d.PeerAS = uint32(k.n)
	case "proto":
		d.Proto = uint8(k.n)
	case "port":
		d.Port = int32(k.n)
	case "country":
		d.Country = k.s
	case "region":
		d.Region = k.s
	case "router":
		d.Router = k.s
	case "class":
		d.Class = k.s
	case "path":
		d.Path = k.s
	case "prefix":
		if k.bits >= 0 && k.a.IsValid() {
			d.Prefix = netip.PrefixFrom(k.a, k.bits)
		}
	case "src_group":
		d.SrcGroup = k.a
	case "dst_group":
		d.DstGroup = k.a
	}
	return d
}

// grow makes room for n groups.
func (a *accumulator) grow(n int) {
	a.groupIdx = make(map[gkey]int32, n)
	a.groups = make([]gkey, 0, n)
	a.slots = make([]slot, 0, n)
	a.sums = make([][nMetrics]uint64, 0, n)
	if a.step > 0 {
		a.slotIdx = make(map[slotKey]int32, n)
	}
}

func (a *accumulator) slot(bucket int64, g int32) int32 {
	if a.step == 0 { // top: one bucket, slot g is group g
		for int(g) >= len(a.slots) {
			a.slots = append(a.slots, slot{slotKey: slotKey{0, int32(len(a.slots))}})
			a.sums = append(a.sums, [nMetrics]uint64{})
		}
		return g
	}
	k := slotKey{bucket, g}
	i, ok := a.slotIdx[k]
	if !ok {
		i = int32(len(a.slots))
		a.slotIdx[k] = i
		a.slots = append(a.slots, slot{slotKey: k})
		a.sums = append(a.sums, [nMetrics]uint64{})
	}
	return i
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

// resolve returns the group + 1 of a pack point, or -1 when the query's filters exclude it.
func (a *accumulator) resolve(d *packDims) int32 {
	q := &a.q
	if (q.Router != "" && d.router != q.Router) || (q.Class != "" && d.class != q.Class) ||
		(q.Country != "" && d.country != q.Country) {
		return -1
	}
	if a.keep != nil && !a.keep[dimsFromKey(q.By, d.key)] {
		return -1
	}
	return a.group(d.key) + 1
}

// addPack adds the points of a pack.
func (a *accumulator) addPack(level int, start, res int64, data []byte, dimsOf func() ([]byte, error)) error {
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
	var dims []packDims
	a.sidx = slices.Grow(a.sidx[:0], r.n)
	for k, sid := range r.sids {
		g := a.sidLookup(sid)
		if g == 0 {
			if dims == nil {
				blob, err := dimsOf()
				if err != nil {
					return err
				}
				need := 0
				if a.q.Router != "" {
					need |= needRouter
				}
				if a.q.Class != "" {
					need |= needClass
				}
				if a.q.Country != "" {
					need |= needCountry
				}
				if dims, err = r.decodeDims(blob, need, dimensions[a.q.By].need); err != nil {
					return err
				}
				if len(a.groups) == 0 {
					// Later packs' unknown series are mostly of groups met already
					// (another series of the same prefix): append's growth serves them.
					a.grow(r.n)
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
	return r.addMetrics(a.sidx, a.sums)
}

// results returns one result per group and bucket (series).
func (a *accumulator) results() []store.Result {
	out := make([]store.Result, 0, len(a.slots))
	for i := range a.slots {
		sl := &a.slots[i]
		m := metricsFrom(&a.sums[i])
		if m.Zero() {
			continue // rows of zero metrics are never written; the subtraction of Replace leaves none either
		}
		d := a.dims(sl.group)
		out = append(out, store.Result{Key: keyText(a.q.By, &d), Dims: d, Metrics: m,
			Resolution: time.Duration(sl.res) * time.Second, Start: time.Unix(sl.bucket, 0).UTC()})
	}
	return out
}

// top returns the q.Limit largest groups by q.Metric (all with no limit), ties in key order.
// Only the returned groups are turned into results.
func (a *accumulator) top() []store.Result {
	value, _ := metricValue(a.q.Metric)
	vals := make([]float64, len(a.slots))
	idx := make([]int32, 0, len(a.slots))
	var res int64
	var m record.Metrics // one for all slots: value's argument escapes
	for i := range a.slots {
		m = metricsFrom(&a.sums[i])
		if m.Zero() {
			continue
		}
		vals[i] = value(&m)
		idx = append(idx, int32(i))
		res = max(res, a.slots[i].res)
	}
	keys := make(map[int32]string)
	key := func(i int32) string {
		k, ok := keys[i]
		if !ok {
			d := a.dims(a.slots[i].group)
			k = keyText(a.q.By, &d)
			keys[i] = k
		}
		return k
	}
	order := func(x, y int32) int {
		if c := cmp.Compare(vals[y], vals[x]); c != 0 {
			return c
		}
		return cmp.Compare(key(x), key(y))
	}
	if a.q.Limit > 0 && len(idx) > a.q.Limit {
		idx = selectFirst(idx, a.q.Limit, order)
	}
	slices.SortFunc(idx, order)
	out := make([]store.Result, len(idx))
	for j, i := range idx {
		d := a.dims(a.slots[i].group)
		out[j] = store.Result{Key: key(i), Dims: d, Metrics: metricsFrom(&a.sums[i]), Resolution: time.Duration(res) * time.Second}
	}
	return out
}

// selectFirst returns the n first of idx in order (in no order), by a heap of the n first
// met: sorting all groups to keep ten cost a tenth of a 100 k group top.
func selectFirst(idx []int32, n int, order func(x, y int32) int) []int32 {
	h := idx[:n:n] // a heap whose root is the last in order
	down := func(i int) {
		for {
			c := 2*i + 1
			if c >= n {
				return
			}
			if c+1 < n && order(h[c+1], h[c]) > 0 {
				c++
			}
			if order(h[c], h[i]) <= 0 {
				return
			}
			h[i], h[c] = h[c], h[i]
			i = c
		}
	}
	for i := n/2 - 1; i >= 0; i-- {
		down(i)
	}
	for _, x := range idx[n:] {
		if order(x, h[0]) < 0 {
			h[0] = x
			down(0)
		}
	}
	return h
}
