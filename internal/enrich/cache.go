package enrich

import (
	"net/netip"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/netledger/netledger/internal/geo"
	"github.com/netledger/netledger/internal/prefetch"
	"github.com/netledger/netledger/internal/record"
	"github.com/netledger/netledger/internal/routing"
)

// Versioned is a Table or Geo that tells when what it returns changes: Updated returns a
// different value after every change readers can see. routing.RIB (the time its table was
// published) and StaticTable implement it. A *geo.DB never changes; a geo.Reloader's
// changes are seen as a new *geo.DB.
type Versioned interface {
	Updated() time.Time
}

// geoVersion is a Geo whose data is an immutable *geo.DB swapped whole (geo.Reloader).
type geoVersion interface {
	DB() *geo.DB
}

// DefaultCacheEntries is the default maximum number of entries of a Cache (48 bytes each).
const DefaultCacheEntries = 1 << 21

const (
	minCacheEntries = 1 << 12
	// cacheChunk is the number of records whose cache lines are prefetched before any of
	// them is read: enough misses in flight to fill the memory pipeline, few enough lines
	// (two per record at most) to stay in the L1 cache until they are used.
	cacheChunk = 64
)

// Cache is an enrichment cache for one goroutine: client address and router → everything
// Enrich derives from them (route, peer and origin AS, country). Real traffic repeats clients:
// a hit reads one cache entry instead of walking a trie of a million prefixes, reading the
// route's attributes and walking the geo trie (about seven dependent memory misses).
//
// The cache is invalidated whenever a router's table or the geo data changes (checked at the
// start of each EnrichBatch through Versioned, and the *geo.DB a geo.Reloader serves); a batch
// is enriched with the tables as they were at its start, or fresher. When a table or the geo
// data cannot tell its changes, the cache is not used and EnrichBatch enriches every record.
// It grows with the number of distinct clients up to its maximum size, then starts over.
type Cache struct {
	e       *Enricher
	entries []cacheEntry
	mask    uint64
	max     int
	live    int    // entries of generation gen
	gen     uint32 // entries of other generations are empty
	usable  bool

	tables  []time.Time // the versions the entries were looked up in
	geoTime time.Time
	geo     *geo.DB

	hash   [cacheChunk]uint64
	router [cacheChunk]uint16
	// the records of a batch not found in the cache, and a batch lookup of their routes
	pend   []pending
	addrs  [routing.BatchSize]netip.Addr
	routes [routing.BatchSize]routing.Route

	hits, misses atomic.Uint64
}

// cacheEntry is a cached enrichment: 48 bytes, no padding inside.
type cacheEntry struct {
	hi, lo             uint64 // client address, 16-byte form
	attrs              *routing.Attrs
	peer, origin       uint32
	gen                uint32
	router             uint16
	country, continent [2]byte
	bits               uint8 // prefix length
	flags              uint8
}

const (
	entryIs4    = 1 << iota // the client is IPv4
	entryRouted             // the client has a route (prefix, attrs)
)

// NewCache returns an empty cache of at most maxEntries entries (DefaultCacheEntries when 0;
// rounded up to a power of two) over e's routers and geo data.
func (e *Enricher) NewCache(maxEntries int) *Cache {
	if maxEntries <= 0 {
		maxEntries = DefaultCacheEntries
	}
	n := 1
	for n < maxEntries {
		n *= 2
	}
	c := &Cache{e: e, max: n, tables: make([]time.Time, len(e.routers)), gen: 1}
	c.entries = make([]cacheEntry, min(n, minCacheEntries))
	c.mask = uint64(len(c.entries) - 1)
	c.usable = true
	for _, r := range e.routers {
		if _, ok := r.Table.(Versioned); r.Table != nil && !ok {
			c.usable = false
		}
	}
	switch e.geo.(type) {
	case nil, Versioned, *geo.DB, geoVersion:
	default:
		c.usable = false
	}
	return c
}

// CacheStats are a Cache's counters.
type CacheStats struct {
	// Hits and Misses count the records found and not found in the cache (all records are
	// misses when the cache cannot be used).
	Hits, Misses uint64
}

// Stats returns the counters. It may be called from any goroutine.
func (c *Cache) Stats() CacheStats {
	return CacheStats{Hits: c.hits.Load(), Misses: c.misses.Load()}
}

func (c *Cache) geoDB() *geo.DB {
	switch g := c.e.geo.(type) {
	case *geo.DB:
		return g
	case geoVersion:
		return g.DB()
	}
	return nil
}

// check forgets every entry when a table or the geo data changed since they were looked up.
func (c *Cache) check() {
	changed := false
	for i := range c.e.routers {
		if v, ok := c.e.routers[i].Table.(Versioned); ok {
			if u := v.Updated(); u != c.tables[i] {
				c.tables[i], changed = u, true
			}
		}
	}
	if v, ok := c.e.geo.(Versioned); ok {
		if u := v.Updated(); u != c.geoTime {
			c.geoTime, changed = u, true
		}
	} else if c.e.geo != nil {
		if db := c.geoDB(); db != c.geo {
			c.geo, changed = db, true
		}
	}
	if changed {
		c.clear()
	}
}

// clear forgets every entry (a new generation: older entries read as empty).
func (c *Cache) clear() {
	c.live = 0
	c.gen++
	if c.gen == 0 { // wrapped: entries of generation 1 could look valid again
		clear(c.entries)
		c.gen = 1
	}
}

func hashClient(hi, lo uint64, router uint16) uint64 {
	h := (hi ^ 0x9E3779B97F4A7C15) * 0xBF58476D1CE4E5B9
	h = (h ^ h>>31 ^ lo) * 0x94D049BB133111EB
	h = (h ^ h>>29 ^ uint64(router)) * 0xBF58476D1CE4E5B9
	return h ^ h>>32
}

// cacheable reports whether a's enrichment can be cached (its key is its 16-byte form and
// family: a zone would be lost).
func cacheable(a netip.Addr) bool { return a.IsValid() && (a.Is4() || a.Zone() == "") }

// EnrichBatch enriches recs into out (len(out) >= len(recs)), with the results Enrich would
// give. It allocates nothing once the cache has grown to the number of distinct clients (and
// its list of pending misses to the largest batch).
//
// The records are looked up in the cache cacheChunk at a time, their entries prefetched
// first. The misses wait until the whole batch has been looked up; then the routes of each
// router's misses are looked up routing.BatchSize at a time through LookupBatch, when its table is a
// RouteTable, so that their cache misses overlap (a batch of 4,096 records from 50,000
// clients has about 200 misses per router; a chunk of 64, only three).
func (c *Cache) EnrichBatch(recs []record.Record, out []Enriched) {
	out = out[:len(recs)]
	if !c.usable {
		for i := range recs {
			c.e.Enrich(&recs[i], &out[i])
		}
		c.misses.Add(uint64(len(recs)))
		return
	}
	c.check()
	hits := uint64(0)
	c.pend = c.pend[:0]
	for base := 0; base < len(recs); base += cacheChunk {
		n := min(len(recs)-base, cacheChunk)
		chunk := recs[base : base+n]
		// first pass: where each record's entry is, and start loading it
		for i := range chunk {
			r := &chunk[i]
			idx := c.e.router(r.Server)
			hi, lo := routing.AddrWords(r.Client)
			h := hashClient(hi, lo, idx)
			c.hash[i], c.router[i] = h, idx
			prefetch.Slot(c.entries, h&c.mask)
		}
		for i := range chunk {
			if c.probe(&chunk[i], c.hash[i], c.router[i], &out[base+i]) {
				hits++
			} else {
				c.pend = append(c.pend, pending{h: c.hash[i], i: int32(base + i), router: c.router[i]})
			}
		}
	}
	if len(c.pend) > 0 {
		hits += c.resolve(recs, out)
	}
	c.hits.Add(hits)
	c.misses.Add(uint64(len(recs)) - hits)
}

// pending is a record not found in the cache.
type pending struct {
	h      uint64
	i      int32 // its index in the batch
	router uint16
	done   bool
}

// probe enriches r from its entry and reports whether it found one.
func (c *Cache) probe(r *record.Record, h uint64, router uint16, out *Enriched) bool {
	a := r.Client
	var flags uint8
	if a.Is4() {
		flags = entryIs4
	}
	hi, lo := routing.AddrWords(a)
	for i := h & c.mask; ; i = (i + 1) & c.mask {
		en := &c.entries[i]
		if en.gen != c.gen {
			return false
		}
		if en.hi == hi && en.lo == lo && en.router == router && en.flags&entryIs4 == flags {
			*out = Enriched{Router: router, Packets: r.Packets(), Country: en.country, Continent: en.continent}
			if en.flags&entryRouted != 0 {
				out.Prefix = routing.MatchedPrefix(a, int(en.bits))
				out.Attrs, out.PeerAS, out.OriginAS = en.attrs, en.peer, en.origin
			}
			return true
		}
	}
}

// resolve enriches the pending records of a batch, in order within each router, and keeps
// the results; it returns how many of them turned out to be hits (a client that missed
// earlier in the same batch is in the cache by then). The routes of the misses of a router
// with a RouteTable are looked up routing.BatchSize at a time (LookupBatch).
func (c *Cache) resolve(recs []record.Record, out []Enriched) (hits uint64) {
	p := c.pend
	var grp [routing.BatchSize]int32 // indexes in p
	for k := range p {
		if p[k].done {
			continue
		}
		router := p[k].router
		var f RouteTable
		if router != NoRouter {
			f = c.e.fast[router]
		}
		if f == nil {
			p[k].done = true
			if c.probe(&recs[p[k].i], p[k].h, router, &out[p[k].i]) {
				hits++
			} else {
				c.miss1(&recs[p[k].i], p[k].h, router, nil, &out[p[k].i])
			}
			continue
		}
		// the next routing.BatchSize misses of this router
		n := 0
		for j := k; j < len(p) && n < routing.BatchSize; j++ {
			if !p[j].done && p[j].router == router {
				grp[n] = int32(j)
				c.addrs[n] = recs[p[j].i].Client
				p[j].done = true
				n++
			}
		}
		f.LookupBatch(c.addrs[:n], c.routes[:n])
		for m, j := range grp[:n] {
			q := &p[j]
			r, o := &recs[q.i], &out[q.i]
			if c.probe(r, q.h, router, o) {
				hits++
				continue
			}
			c.miss1(r, q.h, router, &c.routes[m], o)
		}
	}
	return hits
}

// miss1 enriches r, not in the cache, and keeps the result; route is its route when already
// looked up.
func (c *Cache) miss1(r *record.Record, h uint64, router uint16, route *routing.Route, out *Enriched) {
	a := r.Client
	var flags uint8
	if a.Is4() {
		flags = entryIs4
	}
	hi, lo := routing.AddrWords(a)
	*out = Enriched{Router: router, Packets: r.Packets()}
	if c.e.geo != nil {
		info := c.e.geo.Lookup(a)
		out.Country, out.Continent = info.Country, info.Continent
	}
	if route != nil {
		setRoute(out, a, *route, c.e.routers[router].ASN)
	} else {
		c.e.route(a, out)
	}
	if !cacheable(a) {
		return
	}
	en := cacheEntry{hi: hi, lo: lo, gen: c.gen, router: router, flags: flags, country: out.Country, continent: out.Continent}
	if out.Prefix.IsValid() {
		// the prefix is rebuilt from the client address on a hit, as route built it
		en.flags |= entryRouted
		en.bits = uint8(out.Prefix.Bits())
		en.attrs, en.peer, en.origin = out.Attrs, out.PeerAS, out.OriginAS
	} else if out.Attrs != nil || out.PeerAS != 0 || out.OriginAS != 0 {
		return
	}
	c.insert(&en, h)
}

// insert adds en (not in the table) at its place.
func (c *Cache) insert(en *cacheEntry, h uint64) {
	if 4*(c.live+1) > 3*len(c.entries) {
		if len(c.entries) < c.max {
			c.grow()
		} else {
			c.clear()
		}
	}
	i := h & c.mask
	for c.entries[i].gen == c.gen {
		i = (i + 1) & c.mask
	}
	c.entries[i] = *en
	c.live++
}

// grow enlarges the table, keeping the valid entries: fourfold up to 2^18 entries (12 MB), so
// that a fresh cache filling up allocates and reinserts less on the way, then twofold.
func (c *Cache) grow() {
	old := c.entries
	n := 2 * len(old)
	if 4*len(old) <= 1<<18 {
		n = 4 * len(old)
	}
	c.entries = make([]cacheEntry, min(n, c.max))
	c.mask = uint64(len(c.entries) - 1)
	for j := range old {
		en := &old[j]
		if en.gen != c.gen {
			continue
		}
		i := hashClient(en.hi, en.lo, en.router) & c.mask
		for c.entries[i].gen == c.gen {
			i = (i + 1) & c.mask
		}
		c.entries[i] = *en
	}
}

func init() {
	if unsafe.Sizeof(cacheEntry{}) != 48 {
		panic("enrich: cacheEntry is not 48 bytes")
	}
}
