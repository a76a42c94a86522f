// Package enrich turns a record into what the views are keyed by: the router that carried it
// (selected by the server address), the longest-match prefix and route of the client in that
// router's table, the peer and origin AS of the route, and the client's country and continent.
// Clients without a route are kept, in the unrouted bucket (the zero Prefix); nothing is
// dropped. Enrich allocates nothing.
package enrich

import (
	"net/netip"

	"github.com/gaissmai/bart"

	"github.com/netledger/netledger/internal/geo"
	"github.com/netledger/netledger/internal/record"
	"github.com/netledger/netledger/internal/routing"
)

// NoRouter is the router index of a record whose server address no router serves (with
// several routers configured).
const NoRouter = 0xffff

// Table is a router's routing table: the longest-match route of an address (the length of its
// prefix, which is routing.MatchedPrefix(a, bits)), with interned attributes (routing.RIB
// implements it).
type Table interface {
	Lookup(a netip.Addr) (bits int, attrs *routing.Attrs, ok bool)
}

// RouteTable is a Table that also gives the first and last AS of a route's path without the
// caller reading the path, one address or a batch at a time (routing.RIB implements it):
// Cache.EnrichBatch looks up the routes of a batch's new clients through LookupBatch, their
// cache misses overlapping.
type RouteTable interface {
	Table
	LookupRoute(a netip.Addr) routing.Route
	LookupBatch(addrs []netip.Addr, out []routing.Route)
}

// Geo maps an address to its country, continent and AS (geo.DB and geo.Reloader implement it).
type Geo interface {
	Lookup(a netip.Addr) geo.Info
}

// Router is a router as the enrichment sees it.
type Router struct {
	// Name identifies the router in the views.
	Name string
	// ASN is the router's own AS: the peer AS of routes with an empty AS path.
	ASN uint32
	// Networks are the server networks it carries; a server address inside selects it.
	Networks []netip.Prefix
	// Table is its routing table; nil means every client is unrouted.
	Table Table
}

// Enriched is what enrichment adds to a record.
type Enriched struct {
	// Prefix is the longest-match prefix of the client; the zero Prefix means unrouted.
	Prefix netip.Prefix
	// Attrs is the matched route's interned attributes (nil when unrouted).
	Attrs *routing.Attrs
	// PeerAS is the first AS of the path, or the router's ASN when the path is empty; 0 when
	// unrouted.
	PeerAS uint32
	// OriginAS is the last AS of the path (see OriginAS), or the router's ASN when the path is
	// empty; 0 when unrouted.
	OriginAS uint32
	// Packets is record.Packets(): the packet count, or bytes ÷ MSS when unknown.
	Packets uint64
	// Router is the index of the router in the Enricher's list, or NoRouter.
	Router uint16
	// Country and Continent of the client; zero when unknown.
	Country, Continent [2]byte
}

// Enricher enriches records. It is safe for concurrent use once built; its routers are fixed.
type Enricher struct {
	routers []Router
	fast    []RouteTable // routers[i].Table when it is a RouteTable, else nil
	servers *bart.Table[uint16]
	geo     Geo
}

// New returns an Enricher over routers (at most 65,534) and geo data (nil for none). With one
// router, every record goes to it; with several, a record goes to the router whose networks
// hold the server address (longest match), or to NoRouter.
func New(routers []Router, g Geo) *Enricher {
	e := &Enricher{routers: routers, fast: make([]RouteTable, len(routers)),
		servers: new(bart.Table[uint16]), geo: g}
	for i, r := range routers {
		e.fast[i], _ = r.Table.(RouteTable)
		for _, n := range r.Networks {
			e.servers.Insert(n.Masked(), uint16(i))
		}
	}
	return e
}

// Routers returns the routers, indexed as Enriched.Router.
func (e *Enricher) Routers() []Router { return e.routers }

// RouterName returns the name of router index i ("unknown" for NoRouter).
func (e *Enricher) RouterName(i uint16) string {
	if int(i) < len(e.routers) {
		return e.routers[i].Name
	}
	return "unknown"
}

// Enrich fills out for r. It allocates nothing.
func (e *Enricher) Enrich(r *record.Record, out *Enriched) {
	*out = Enriched{Router: NoRouter, Packets: r.Packets()}
	if e.geo != nil {
		info := e.geo.Lookup(r.Client)
		out.Country, out.Continent = info.Country, info.Continent
	}
	out.Router = e.router(r.Server)
	e.route(r.Client, out)
}

// router returns the index of the router of a record with server address server.
func (e *Enricher) router(server netip.Addr) uint16 {
	if len(e.routers) == 1 {
		return 0
	}
	if i, ok := e.servers.Lookup(server); ok {
		return i
	}
	return NoRouter
}

// route fills the route fields of out (router out.Router) for client.
func (e *Enricher) route(client netip.Addr, out *Enriched) {
	if out.Router == NoRouter {
		return
	}
	rt := &e.routers[out.Router]
	// one address at a time, LookupRoute measured no faster than Lookup and the path's ends
	// (slower in most runs: BenchmarkLookup's +route against +attrs); only a batch gains
	// (Cache.EnrichBatch)
	if rt.Table == nil {
		return
	}
	bits, a, ok := rt.Table.Lookup(client)
	if !ok {
		return
	}
	out.Prefix, out.Attrs = routing.MatchedPrefix(client, bits), a
	peer, ok := PeerAS(a)
	if !ok {
		peer = rt.ASN
	}
	origin, ok := OriginAS(a)
	if !ok {
		origin = rt.ASN
	}
	out.PeerAS, out.OriginAS = peer, origin
}

// setRoute fills the route fields of out from r, client's route in a table of a router of
// AS asn: what route does with Table.Lookup, PeerAS and OriginAS.
func setRoute(out *Enriched, client netip.Addr, r routing.Route, asn uint32) {
	if !r.OK {
		return
	}
	out.Prefix, out.Attrs = routing.MatchedPrefix(client, int(r.Bits)), r.Attrs
	out.PeerAS, out.OriginAS = asn, asn
	if r.HasPeer {
		out.PeerAS = r.PeerAS
	}
	if r.HasOrigin {
		out.OriginAS = r.OriginAS
	}
}

// PeerAS returns the first AS of the path (the neighbour the traffic leaves through). A path
// starting with an AS_SET gives its smallest member. Confederation segments are skipped (they
// are internal to the local confederation). ok is false for an empty path.
func PeerAS(a *routing.Attrs) (uint32, bool) {
	if a == nil {
		return 0, false
	}
	return routing.FirstAS(a.Path)
}

// OriginAS returns the last AS of the path. When the path ends in an AS_SET (an aggregate of
// routes from several origins), the smallest member of the set is taken: a deterministic choice
// independent of the order the set was encoded in. ok is false for an empty path.
func OriginAS(a *routing.Attrs) (uint32, bool) {
	if a == nil {
		return 0, false
	}
	return routing.LastAS(a.Path)
}

// AppendDistinctASNs appends every distinct AS of the path to dst, once each, in path order:
// a prepended AS appears once, the members of an AS_SET once each. Confederation segments are
// skipped.
func AppendDistinctASNs(dst []uint32, a *routing.Attrs) []uint32 {
	if a == nil {
		return dst
	}
	start := len(dst)
	for _, s := range a.Path {
		if s.Type == routing.SegmentConfedSequence || s.Type == routing.SegmentConfedSet {
			continue
		}
	next:
		for _, asn := range s.ASNs {
			for _, seen := range dst[start:] {
				if seen == asn {
					continue next
				}
			}
			dst = append(dst, asn)
		}
	}
	return dst
}
