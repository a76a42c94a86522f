// Package demo builds what `netledger demo` runs on: a small but realistic world (two routers
// with a few thousand IPv4 and IPv6 routes, AS paths with prepending, more-specifics, an
// AS_SET and internal routes; geo data for the same address space), written as the files a
// real deployment would have (MRT TABLE_DUMP_V2 RIB dumps, an RIR delegated-extended file, an
// AS names file, a configuration), and a synthetic web-server load over it. Everything is
// derived from one seed: the same seed gives the same world and the same load.
package demo

import (
	"math/rand/v2"
	"net/netip"
	"slices"

	"github.com/netledger/netledger/internal/geo"
	"github.com/netledger/netledger/internal/routing"
)

// OwnASN is the demo network's own AS (from the documentation range, RFC 5398).
const OwnASN = 64500

// AS is an AS of the demo's transit topology.
type AS struct {
	ASN  uint32
	Name string
}

// Transits are the neighbours and transit providers of the demo: documentation AS numbers
// (RFC 5398), so that they are never mistaken for real ones.
var Transits = []AS{
	{64496, "Demo Transit Alpha"}, {64497, "Demo Transit Beta"}, {64498, "Demo IX Peering"},
	{64499, "Demo Transit Gamma"}, {64501, "Demo Carrier Delta"}, {64502, "Demo Backbone Epsilon"},
	{64503, "Demo Regional Zeta"}, {64504, "Demo Regional Eta"}, {64505, "Demo Cable Theta"},
	{64506, "Demo Mobile Iota"}, {64507, "Demo Access Kappa"}, {64508, "Demo Access Lambda"},
}

// Route is one route of a router's table.
type Route struct {
	Prefix netip.Prefix
	Path   []routing.Segment
}

// Router is one of the demo's routers: its name, the server networks it carries, the servers
// in them, and its table.
type Router struct {
	Name string
	ASN  uint32
	// ID is its address (the MRT peer and BGP identifier).
	ID netip.Addr
	// Networks are the server networks it serves; Servers are the web servers in them.
	Networks []netip.Prefix
	Servers  []netip.Addr
	// Upstreams are the first ASes of its paths, with weights.
	Upstreams []uint32
	Weights   []int
	Routes    []Route
}

// World is the demo's routing and geo data.
type World struct {
	// Networks are the client networks with their country and origin AS (geo data).
	Networks []geo.DemoNetwork
	// Routers are the two routers.
	Routers []*Router
	// Unrouted are the networks no router has a route for (their clients go to the unrouted
	// bucket); Internal are networks routed with an empty AS path (our own customers).
	Unrouted []geo.DemoNetwork
	Internal []geo.DemoNetwork
}

// NewWorld generates the world: n client networks (about four in five IPv4), routed by two
// routers with different upstreams.
func NewWorld(seed uint64, n int) *World {
	rng := rand.New(rand.NewPCG(seed, 0x776f726c64)) // "world"
	w := &World{Networks: geo.DemoNetworks(seed, n)}
	w.Routers = []*Router{
		{
			Name: "edge-fra", ASN: OwnASN, ID: netip.MustParseAddr("192.0.2.1"),
			Networks:  []netip.Prefix{netip.MustParsePrefix("198.51.100.0/25"), netip.MustParsePrefix("2001:db8:100::/48")},
			Servers:   []netip.Addr{netip.MustParseAddr("198.51.100.10"), netip.MustParseAddr("198.51.100.11"), netip.MustParseAddr("2001:db8:100::10")},
			Upstreams: []uint32{64496, 64497, 64498}, Weights: []int{5, 3, 2},
		},
		{
			Name: "edge-ams", ASN: OwnASN, ID: netip.MustParseAddr("192.0.2.2"),
			Networks:  []netip.Prefix{netip.MustParsePrefix("198.51.100.128/25"), netip.MustParsePrefix("2001:db8:200::/48")},
			Servers:   []netip.Addr{netip.MustParseAddr("198.51.100.140"), netip.MustParseAddr("2001:db8:200::10")},
			Upstreams: []uint32{64497, 64499, 64505}, Weights: []int{4, 4, 2},
		},
	}
	middles := []uint32{64501, 64502, 64503, 64504, 64506, 64507, 64508}
	var routed []geo.DemoNetwork
	for i, nw := range w.Networks {
		switch {
		case i%50 == 17:
			w.Unrouted = append(w.Unrouted, nw)
			continue
		case i%97 == 5:
			w.Internal = append(w.Internal, nw)
		}
		routed = append(routed, nw)
	}
	for _, r := range w.Routers {
		for i, nw := range routed {
			if slices.Contains(w.Internal, nw) {
				r.Routes = append(r.Routes, Route{Prefix: nw.Prefix}) // empty path: our own
				continue
			}
			path := r.path(rng, middles, nw.ASN)
			if i == len(routed)/3 {
				// An aggregate of two origins: the path ends in an AS_SET.
				other := routed[i-1].ASN
				path[len(path)-1] = routing.Segment{Type: routing.SegmentSet, ASNs: []uint32{nw.ASN, other}}
				path = slices.Insert(path, len(path)-1, routing.Segment{Type: routing.SegmentSequence, ASNs: []uint32{middles[0]}})
			}
			r.Routes = append(r.Routes, Route{Prefix: nw.Prefix, Path: merge(path)})
			// Some networks also announce more-specifics (traffic engineering), over
			// another upstream, with the origin prepended on the covering route.
			if rng.IntN(25) == 0 && nw.Prefix.Bits() < maxBits(nw.Prefix) {
				half := netip.PrefixFrom(nw.Prefix.Addr(), nw.Prefix.Bits()+1)
				r.Routes = append(r.Routes, Route{Prefix: half, Path: merge(r.path(rng, middles, nw.ASN))})
			}
		}
	}
	return w
}

func maxBits(p netip.Prefix) int {
	if p.Addr().Is4() {
		return 24
	}
	return 48
}

// path draws an AS path from r to origin: an upstream, zero to two transit ASes, the origin,
// sometimes prepended.
func (r *Router) path(rng *rand.Rand, middles []uint32, origin uint32) []routing.Segment {
	total := 0
	for _, w := range r.Weights {
		total += w
	}
	x := rng.IntN(total)
	up := r.Upstreams[0]
	for i, w := range r.Weights {
		if x < w {
			up = r.Upstreams[i]
			break
		}
		x -= w
	}
	asns := []uint32{up}
	if rng.IntN(8) == 0 {
		asns = append(asns, up) // the upstream prepends itself
	}
	for k := rng.IntN(3); k > 0; k-- {
		m := middles[rng.IntN(len(middles))]
		if !slices.Contains(asns, m) {
			asns = append(asns, m)
		}
	}
	asns = append(asns, origin)
	if rng.IntN(8) == 0 {
		for k := 1 + rng.IntN(3); k > 0; k-- {
			asns = append(asns, origin) // the origin prepends
		}
	}
	return []routing.Segment{{Type: routing.SegmentSequence, ASNs: asns}}
}

// merge joins adjacent AS_SEQUENCE segments.
func merge(path []routing.Segment) []routing.Segment {
	var out []routing.Segment
	for _, s := range path {
		if l := len(out) - 1; l >= 0 && s.Type == routing.SegmentSequence && out[l].Type == routing.SegmentSequence {
			out[l].ASNs = append(out[l].ASNs, s.ASNs...)
			continue
		}
		out = append(out, routing.Segment{Type: s.Type, ASNs: slices.Clone(s.ASNs)})
	}
	return out
}

// Names returns the AS names of the world: the client networks' and the transits'.
func (w *World) Names() []geo.DemoNetwork {
	out := slices.Clone(w.Networks)
	for _, t := range Transits {
		out = append(out, geo.DemoNetwork{ASN: t.ASN, ASName: t.Name})
	}
	return append(out, geo.DemoNetwork{ASN: OwnASN, ASName: "Demo Hosting (us)"})
}
