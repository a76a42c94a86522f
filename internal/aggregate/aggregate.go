package aggregate

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/netledger/netledger/internal/enrich"
	"github.com/netledger/netledger/internal/record"
	"github.com/netledger/netledger/internal/routing"
)

// DefaultInterval is the length of the views' base intervals.
const DefaultInterval = time.Minute

// Config configures an Aggregator.
type Config struct {
	// Views are the views to build (DefaultViews when empty).
	Views []ViewConfig
	// Interval is the length of an interval (DefaultInterval when 0). Records go to the
	// interval holding their time.
	Interval time.Duration
	// Routers names the routers by enrichment index (enrich.Enricher.Routers order); a record
	// of enrich.NoRouter or of an index beyond the list is accounted to router "unknown".
	Routers []string
	// ClassName names a traffic class (nil: its number in decimal).
	ClassName func(uint16) string
}

// key is a row's identity: every dimension in a compact, comparable, padding-free form. A
// table uses the fields of its dimensions and leaves the others zero.
type key struct {
	pfxHi, pfxLo uint64 // prefix address (16-byte form)
	srcHi, srcLo uint64
	dstHi, dstLo uint64
	attrs        *routing.Attrs // route (prefix and AS path dimensions); nil when unrouted
	peer, origin uint32
	asn          uint32
	port         int32
	router       uint16
	class        uint16
	country      [2]byte
	region       [2]byte
	pfxBits      uint8 // prefix length + 1; 0: no prefix (unrouted)
	proto        uint8
	fam          uint8 // famPfx4 | famSrc4 | famDst4 | famSrc | famDst
	_pad         uint8
	_pad2        uint32
}

const (
	famPfx4 = 1 << iota
	famSrc4
	famDst4
	famSrc   // src group valid
	famDst   // dst group valid
	famRoute // a first-stage key with its route in attrs (sums.divert)
)

func wordsAddr(hi, lo uint64, is4 bool) netip.Addr {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], hi)
	binary.BigEndian.PutUint64(b[8:], lo)
	a := netip.AddrFrom16(b)
	if is4 {
		return a.Unmap()
	}
	return a
}

// otherPort reports whether a conntrack record's port 0 means "other ports" (-1): port 0 is
// not a destination port of these protocols.
func otherPort(proto uint8) bool { return proto == 6 || proto == 17 || proto == 132 || proto == 136 }

// makeKey sets *k to the key of r under the dimensions m.
func makeKey(k *key, r *record.Record, e *enrich.Enriched, m dim) {
	*k = key{}
	if m&dRouter != 0 {
		k.router = e.Router
	}
	if m&dClass != 0 {
		k.class = r.Class
	}
	if m&(dPrefix|dASOnPath) == dASOnPath {
		// with a prefix, the route is the slot's (AddBatch), not the key's
		k.attrs = e.Attrs
	}
	if m&dPrefix != 0 && e.Prefix.IsValid() {
		k.pfxHi, k.pfxLo = routing.AddrWords(e.Prefix.Addr())
		k.pfxBits = uint8(e.Prefix.Bits() + 1)
		if e.Prefix.Addr().Is4() {
			k.fam |= famPfx4
		}
	}
	if m&dPeerAS != 0 {
		k.peer = e.PeerAS
	}
	if m&dOriginAS != 0 {
		k.origin = e.OriginAS
	}
	if m&dCountry != 0 {
		k.country = e.Country
	}
	if m&dRegion != 0 {
		k.region = e.Continent
	}
	if m&dProto != 0 {
		k.proto = r.Proto
	}
	if m&dSrcGroup != 0 && r.Client.IsValid() {
		k.srcHi, k.srcLo = routing.AddrWords(r.Client)
		k.fam |= famSrc
		if r.Client.Is4() {
			k.fam |= famSrc4
		}
	}
	if m&dDstGroup != 0 && r.Server.IsValid() {
		k.dstHi, k.dstLo = routing.AddrWords(r.Server)
		k.fam |= famDst
		if r.Server.Is4() {
			k.fam |= famDst4
		}
	}
	if m&dPort != 0 {
		k.port = int32(r.ServerPort)
		if r.ServerPort == 0 && otherPort(r.Proto) {
			k.port = -1
		}
	}
}

// project keeps the fields of k (a first-stage key whose records have the route attrs) that
// dimensions m use.
func project(k *key, attrs *routing.Attrs, m dim) key {
	var v key
	if m&dRouter != 0 {
		v.router = k.router
	}
	if m&dClass != 0 {
		v.class = k.class
	}
	if m&dPrefix != 0 {
		v.pfxHi, v.pfxLo, v.pfxBits, v.attrs = k.pfxHi, k.pfxLo, k.pfxBits, attrs
		v.fam |= k.fam & famPfx4
	}
	if m&dPeerAS != 0 {
		v.peer = k.peer
	}
	if m&dOriginAS != 0 {
		v.origin = k.origin
	}
	if m&dCountry != 0 {
		v.country = k.country
	}
	if m&dRegion != 0 {
		v.region = k.region
	}
	if m&dProto != 0 {
		v.proto = k.proto
	}
	if m&dSrcGroup != 0 {
		v.srcHi, v.srcLo = k.srcHi, k.srcLo
		v.fam |= k.fam & (famSrc | famSrc4)
	}
	if m&dDstGroup != 0 {
		v.dstHi, v.dstLo = k.dstHi, k.dstLo
		v.fam |= k.fam & (famDst | famDst4)
	}
	if m&dPort != 0 {
		v.port = k.port
	}
	return v
}

// addRecord adds r's metrics to m.
func addRecord(m *record.Metrics, r *record.Record, e *enrich.Enriched) {
	m.Requests += uint64(r.Requests)
	m.Bytes += r.BytesOut
	m.BytesIn += r.BytesIn
	m.Packets += e.Packets
	m.PacketsIn += r.PacketsIn
	m.Retransmits += uint64(r.Retransmits)
	m.Duration += r.Duration
	if r.RTT != 0 {
		m.RTTSum += uint64(r.RTT)
		m.RTTCount++
	}
	m.Conns += uint64(r.ConnsClosed)
	m.Open += uint64(r.ConnsOpen)
}

// group is the views that take the same sources: one table keyed by the union of their
// dimensions.
type group struct {
	sources sourceSet
	dims    dim
	views   []view
}

// interval is the tables of one interval, one per group.
type interval struct {
	start int64
	base  []sums
}

// Aggregator sums enriched records into the views' rows per interval. It is used by one
// goroutine.
type Aggregator struct {
	cfg      Config
	interval int64
	groups   []group
	bySource [256]uint64 // groups (bit i: groups[i]) taking each source

	cur  *interval
	open []*interval
	free []*interval
	pend []pending // AddBatch's additions in flight, reused
	fan  []fanned  // a flush's additions in flight, reused

	// flush state, reused
	views   []sums // the rows of each view of the group being flushed
	direct  []bool // whether each view of the group being flushed is its first-stage table
	byPath  []sums // as_on_path views: rows by route, before each AS is credited
	asns    []uint32
	paths   pathTable
	byText  map[string]*routing.Attrs
	pathBuf []byte // path, building a path text
	gen     uint32
	classes map[uint16]string
	codes   map[[2]byte]string

	records uint64
}

// pathInfo is the text of an AS path and the attribute set whose rows carry it.
type pathInfo struct {
	text  string
	canon *routing.Attrs
	used  uint32
}

// New returns an Aggregator for cfg.
func New(cfg Config) (*Aggregator, error) {
	if len(cfg.Views) == 0 {
		cfg.Views = DefaultViews()
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Interval < time.Second || cfg.Interval%time.Second != 0 {
		return nil, fmt.Errorf("aggregation interval %s is not a whole number of seconds", cfg.Interval)
	}
	if cfg.ClassName == nil {
		cfg.ClassName = func(c uint16) string { return strconv.Itoa(int(c)) }
	}
	views, err := compileViews(cfg.Views)
	if err != nil {
		return nil, err
	}
	a := &Aggregator{
		cfg:      cfg,
		interval: int64(cfg.Interval),
		byText:   make(map[string]*routing.Attrs),
		classes:  make(map[uint16]string),
		codes:    make(map[[2]byte]string),
	}
	for _, v := range views {
		i := slices.IndexFunc(a.groups, func(g group) bool { return g.sources == v.sources })
		if i < 0 {
			if len(a.groups) == 64 {
				return nil, errors.New("more than 64 distinct view source filters")
			}
			i = len(a.groups)
			a.groups = append(a.groups, group{sources: v.sources})
		}
		a.groups[i].dims |= v.dims
		a.groups[i].views = append(a.groups[i].views, v)
	}
	a.pend = make([]pending, 0, batchChunk*len(a.groups))
	for s := range a.bySource {
		for i, g := range a.groups {
			if g.sources.has(record.Source(s)) {
				a.bySource[s] |= 1 << i
			}
		}
	}
	return a, nil
}

// Interval returns the interval length.
func (a *Aggregator) Interval() time.Duration { return a.cfg.Interval }

// Records returns the number of records added since New, counting those of the aggregators
// merged into this one (Merge) and not those of this one merged into another.
func (a *Aggregator) Records() uint64 { return a.records }

// Pending reports whether records were added since the last flush.
func (a *Aggregator) Pending() bool { return len(a.open) > 0 }

// intervalOf returns the interval holding time t.
func (a *Aggregator) intervalOf(t int64) *interval {
	start := t - ((t%a.interval)+a.interval)%a.interval
	if iv := a.cur; iv != nil && iv.start == start {
		return iv
	}
	return a.intervalAt(start)
}

// batchChunk is the number of records of a batch whose slots are prefetched before any is
// added to: enough misses in flight to fill the memory pipeline, few enough lines to stay in
// the L1 cache until they are used.
const batchChunk = 32

// pending is a record's addition waiting for its slot to arrive in the cache.
type pending struct {
	k   key
	h   uint64
	s   *sums
	rec int32
	// byRoute: the group has the prefix dimension, whose key leaves the route to the slot
	byRoute bool
}

// AddBatch accounts recs[i] enriched as ens[i] (len(ens) >= len(recs)) to the intervals
// holding their times. The memory accesses of several records overlap: the keys of a chunk of
// records are made and their index lines prefetched, then the entries those point to, before
// any is added to; a batch of any size
// gives the rows of the same records added one at a time. It allocates nothing once the
// tables have grown to the load.
//
// A first-stage key with a prefix leaves the route (attribute set) out: the slot holds it, set
// by the first record, since the route is a function of the router and prefix while the
// routing table does not change. A record whose route differs from its slot's (a route that
// changed during the interval, or a prefix routed differently by routers that are not in the
// key) goes to a key with its route (sums.divert), rare; the flush merges such keys by path
// text. Without them, a view with the group's dimensions is the first-stage table itself.
func (a *Aggregator) AddBatch(recs []record.Record, ens []enrich.Enriched) {
	ens = ens[:len(recs)]
	a.records += uint64(len(recs))
	for base := 0; base < len(recs); base += batchChunk {
		chunk := recs[base:min(base+batchChunk, len(recs))]
		p := a.pend[:0]
		for j := range chunk {
			r := &chunk[j]
			mask := a.bySource[r.Source]
			if mask == 0 {
				continue
			}
			iv := a.intervalOf(r.Time)
			for mask != 0 {
				i := bits.TrailingZeros64(mask)
				mask &= mask - 1
				p = append(p, pending{s: &iv.base[i], rec: int32(base + j), byRoute: a.groups[i].dims&dPrefix != 0})
				q := &p[len(p)-1]
				makeKey(&q.k, r, &ens[base+j], a.groups[i].dims)
				q.h = hashKey(&q.k)
				q.s.prefetch(q.h)
			}
		}
		for j := range p {
			q := &p[j]
			q.s.prefetchEntry(q.h)
		}
		for j := range p {
			q := &p[j]
			e := &ens[q.rec]
			sl, fresh := q.s.slotAt(&q.k, q.h)
			if fresh {
				sl.route = e.Attrs
			} else if q.byRoute && sl.route != e.Attrs {
				sl = q.s.divert(&q.k, e.Attrs)
			}
			addRecord(&sl.m, &recs[q.rec], e)
		}
		a.pend = p[:0]
	}
}

func (a *Aggregator) intervalAt(start int64) *interval {
	for _, iv := range a.open {
		if iv.start == start {
			a.cur = iv
			return iv
		}
	}
	var iv *interval
	if n := len(a.free); n > 0 {
		iv, a.free = a.free[n-1], a.free[:n-1]
	} else {
		iv = &interval{base: make([]sums, len(a.groups))}
		for i := range iv.base {
			iv.base[i] = newSums()
		}
	}
	iv.start = start
	a.open = append(a.open, iv)
	a.cur = iv
	return iv
}

// Flush appends the rows of every interval starting before before (Unix ns) to dst, oldest
// interval first, and forgets those intervals. Rows whose metrics are all zero are left out.
func (a *Aggregator) Flush(dst []record.Row, before int64) []record.Row {
	slices.SortFunc(a.open, func(x, y *interval) int { return cmpInt(x.start, y.start) })
	keep := a.open[:0]
	var done []*interval
	for _, iv := range a.open {
		if iv.start < before {
			done = append(done, iv)
		} else {
			keep = append(keep, iv)
		}
	}
	for _, iv := range done {
		dst = a.flushInterval(dst, iv)
		for i := range iv.base {
			iv.base[i].reset()
		}
		a.free = append(a.free, iv)
	}
	a.open = keep
	a.cur = nil
	a.gen++
	if a.gen%64 == 0 {
		a.prunePaths()
	}
	return dst
}

// FlushAll appends the rows of every interval, finished or not, and forgets them.
func (a *Aggregator) FlushAll(dst []record.Row) []record.Row {
	return a.Flush(dst, 1<<63-1)
}

func cmpInt(x, y int64) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

func (a *Aggregator) flushInterval(dst []record.Row, iv *interval) []record.Row {
	start := time.Unix(0, iv.start).UTC()
	for gi := range a.groups {
		g := &a.groups[gi]
		for len(a.views) < len(g.views) {
			a.views = append(a.views, newSums())
			a.byPath = append(a.byPath, newSums())
		}
		base := &iv.base[gi]
		a.direct = a.direct[:0]
		for _, v := range g.views {
			a.direct = append(a.direct, isDirect(base, g.dims, v))
		}
		a.fanOut(base, g.views, a.direct)
		for vi, v := range g.views {
			t := &a.views[vi]
			if a.direct[vi] {
				t = base // emptied by Flush
			}
			if v.dims&dASOnPath != 0 && v.dims&dPrefix == 0 {
				a.explode(t, &a.byPath[vi])
			}
			if n := t.len(); cap(dst)-len(dst) < n {
				// grow at least twofold: one row slice for every view of every interval,
				// instead of a copy of every row so far for each view
				dst = slices.Grow(dst, max(n, len(dst)))
			}
			for i := range t.len() {
				if v.dims&dPrefix != 0 && i+flushAhead < t.len() {
					e := &t.ents[i+flushAhead]
					if a.direct[vi] {
						a.paths.prefetch(e.route)
					} else {
						a.paths.prefetch(e.k.attrs)
					}
				}
				vk, vm, route := t.entry(i)
				if vm.Zero() {
					continue
				}
				if a.direct[vi] && v.dims&dPrefix != 0 {
					k := *vk
					k.attrs, vk = route, &k
				}
				dst = append(dst, record.Row{
					View:       v.name,
					Start:      start,
					Resolution: a.cfg.Interval,
					Dims:       a.dims(vk, v.dims),
					Metrics:    *vm,
				})
			}
			if !a.direct[vi] {
				t.reset()
			}
		}
	}
	return dst
}

// isDirect reports whether the rows of view v are the entries of its group's first-stage table
// base (whose keys have the dimensions gdims) as they are, so that the flush reads them there
// instead of building the view's table: v has the group's dimensions, no as_on_path, and no
// key of base was diverted (each prefix had one route: no two rows to merge by path text).
func isDirect(base *sums, gdims dim, v view) bool {
	return v.dims == gdims && v.dims&dASOnPath == 0 && base.diverted == 0
}

// flushAhead is how many rows ahead of the one written a flush prefetches the path slot.
const flushAhead = 16

// fanOut adds every entry of the first-stage table base to the tables of the views, each
// entry projected on each view's dimensions, in base's order: a.views[i] for views[i], except
// for a view with as_on_path and without prefix, whose entries go to a.byPath[i] keyed by the
// view's other dimensions and the route (explode then credits each AS of the route once per
// row there rather than once per first-stage entry). One pass over base, in chunks: the view
// keys of a chunk of entries are made and their index lines and entries prefetched before any
// is added to, and the path slots of the next chunk's routes prefetched (base's entries are
// read sequentially). Views marked direct are skipped (their rows are base's entries).
func (a *Aggregator) fanOut(base *sums, views []view, direct []bool) {
	if !slices.Contains(direct, false) {
		return
	}
	prefix := false
	for vi, v := range views {
		prefix = prefix || !direct[vi] && v.dims&dPrefix != 0
	}
	inChunks(base, func(lo, hi int) {
		if prefix {
			// the path slots of the next chunk's routes, read by the next call
			for i := hi; i < min(hi+batchChunk, base.len()); i++ {
				a.paths.prefetch(base.ents[i].route)
			}
		}
		p := a.fan[:0]
		for i := lo; i < hi; i++ {
			bk, bm, route := base.entry(i)
			for vi, v := range views {
				if direct[vi] {
					continue
				}
				q := fanned{k: project(bk, route, v.dims), m: bm, t: &a.views[vi]}
				if v.dims&dPrefix != 0 && q.k.attrs != nil {
					q.k.attrs = a.path(q.k.attrs).canon
				}
				switch {
				case v.dims&dASOnPath == 0:
					p = append(p, q)
				case v.dims&dPrefix == 0:
					q.k.attrs, q.t = route, &a.byPath[vi]
					p = append(p, q)
				default:
					p = a.appendPerAS(p, q, route)
				}
			}
		}
		a.fan = a.addFanned(p)
	})
}

// explode adds every entry of byPath (keyed by a view's dimensions but as_on_path, and the
// route) to t once per distinct AS of its route, and empties byPath.
func (a *Aggregator) explode(t, byPath *sums) {
	inChunks(byPath, func(lo, hi int) {
		p := a.fan[:0]
		for i := lo; i < hi; i++ {
			k, m, _ := byPath.entry(i)
			q := fanned{k: *k, m: m, t: t}
			q.k.attrs = nil
			p = a.appendPerAS(p, q, k.attrs)
		}
		a.fan = a.addFanned(p)
	})
	byPath.reset()
}

// inChunks calls f for the entries [lo, hi) of s, batchChunk at a time, in insertion order
// (the entries are dense: read sequentially).
func inChunks(s *sums, f func(lo, hi int)) {
	n := s.len()
	for lo := 0; lo < n; lo += batchChunk {
		f(lo, min(lo+batchChunk, n))
	}
}

// appendPerAS appends q once per distinct AS of attrs, as that AS.
func (a *Aggregator) appendPerAS(p []fanned, q fanned, attrs *routing.Attrs) []fanned {
	a.asns = enrich.AppendDistinctASNs(a.asns[:0], attrs)
	for _, asn := range a.asns {
		q.k.asn = asn
		p = append(p, q)
	}
	return p
}

// addFanned hashes the keys of p, prefetches their slots, then adds each to its table; it
// returns p emptied.
func (a *Aggregator) addFanned(p []fanned) []fanned {
	for j := range p {
		q := &p[j]
		q.h = hashKey(&q.k)
		q.t.prefetch(q.h)
	}
	for j := range p {
		q := &p[j]
		q.t.prefetchEntry(q.h)
	}
	for j := range p {
		q := &p[j]
		q.t.atHash(&q.k, q.h).Add(q.m)
	}
	return p[:0]
}

// fanned is a first-stage entry's contribution to a view row, waiting for its slot.
type fanned struct {
	k key
	h uint64
	m *record.Metrics
	t *sums
}

// path returns the path text of attrs and the attribute set standing for every set with the
// same path text (so that one prefix's rows with equal paths merge). The result is valid until
// the next call.
func (a *Aggregator) path(attrs *routing.Attrs) *pathInfo {
	p := a.paths.get(attrs)
	if p == nil {
		// the text is built in a reused buffer and made a string only when it is new: most
		// sets met in a flush share their path with another (other communities, MED)
		a.pathBuf = attrs.AppendPath(a.pathBuf[:0])
		canon, ok := a.byText[string(a.pathBuf)]
		var c *pathInfo
		if ok {
			c = a.paths.get(canon)
		}
		var text string
		if c != nil {
			text = c.text // one string per path text in the rows, whichever set they come from
		} else {
			text = string(a.pathBuf)
		}
		if !ok {
			canon = attrs
			a.byText[text] = attrs
		}
		p = a.paths.put(attrs, pathInfo{text: text, canon: canon})
	}
	p.used = a.gen
	return p
}

// prunePaths forgets the paths not used in the last 64 flushes.
func (a *Aggregator) prunePaths() {
	a.paths.keep(func(attrs *routing.Attrs, p *pathInfo) bool {
		if a.gen-p.used > 64 {
			if a.byText[p.text] == attrs {
				delete(a.byText, p.text)
			}
			return false
		}
		return true
	})
	// a canonical set may have been dropped while others of its text remain: they become
	// canonical again on their next use
	a.paths.each(func(_ *routing.Attrs, p *pathInfo) {
		if _, ok := a.byText[p.text]; !ok {
			a.byText[p.text] = p.canon
		}
	})
}

func (a *Aggregator) dims(k *key, m dim) record.Dims {
	var d record.Dims
	if m&dRouter != 0 {
		d.Router = "unknown"
		if int(k.router) < len(a.cfg.Routers) && k.router != enrich.NoRouter {
			d.Router = a.cfg.Routers[k.router]
		}
	}
	if m&dClass != 0 {
		name, ok := a.classes[k.class]
		if !ok {
			name = a.cfg.ClassName(k.class)
			a.classes[k.class] = name
		}
		d.Class = name
	}
	if m&dPrefix != 0 && k.pfxBits != 0 {
		d.Prefix = netip.PrefixFrom(wordsAddr(k.pfxHi, k.pfxLo, k.fam&famPfx4 != 0), int(k.pfxBits)-1)
		if k.attrs != nil {
			d.Path = a.path(k.attrs).text
		}
	}
	d.PeerAS, d.OriginAS, d.ASN = k.peer, k.origin, k.asn
	if m&dCountry != 0 {
		d.Country = a.code(k.country)
	}
	if m&dRegion != 0 {
		d.Region = a.code(k.region)
	}
	d.Proto = k.proto
	if k.fam&famSrc != 0 {
		d.SrcGroup = wordsAddr(k.srcHi, k.srcLo, k.fam&famSrc4 != 0)
	}
	if k.fam&famDst != 0 {
		d.DstGroup = wordsAddr(k.dstHi, k.dstLo, k.fam&famDst4 != 0)
	}
	d.Port = k.port
	return d
}

func (a *Aggregator) code(c [2]byte) string {
	if c == ([2]byte{}) {
		return ""
	}
	s, ok := a.codes[c]
	if !ok {
		s = string(c[:])
		a.codes[c] = s
	}
	return s
}
