// Package aggregate turns enriched records into view rows: per interval (1 minute by default,
// by record time), the metrics of the records summed per combination of a view's dimensions.
//
// Aggregation has two stages. Per record (Aggregator.AddBatch), one insert per source group
// (views taking the same sources; one group for the default trafstat views) into a first-stage
// table keyed by what the record contributes: the union of the dimensions of the group's views,
// that is the enrichment result they use (router, the route's prefix and attribute set, peer and
// origin AS, country, region) and the record dimensions (class, proto, masked client and server
// groups, port). When an interval is flushed, each first-stage key is fanned out into the views
// (projected on each view's dimensions; as_on_path: once per distinct AS of the path), at a cost
// per key rather than per record. Keys are compact comparable values (router index, class id,
// prefix as two words, the interned *routing.Attrs, ASNs…) held by value, never a reference
// into the enrichment cache, in open-addressing tables reused across intervals, so that adding
// a record allocates nothing. A first-stage key with a prefix leaves the route out and its slot
// holds it (see Aggregator.AddBatch), so that a view with all of its group's dimensions is
// written straight from the first-stage table.
//
// Semantics of the default views (trafstat's tables, DESIGN.md):
//
//   - prefix: (router, class, prefix, path). Unrouted clients are in the zero prefix with an
//     empty path; a route with an empty AS path (originated by the router's own AS) has a prefix
//     and an empty path.
//   - as_path: (router, class, as_on_path). Every distinct AS of the route's path is credited
//     once with the record's full metrics (trafstat's "pathmb", without its bugs): a prepended
//     AS once, each member of an AS_SET once. Confederation segments (AS_CONFED_SEQUENCE/SET)
//     are skipped: they are private member ASes of the router's own confederation, not ASes the
//     traffic crosses. An unrouted client or an empty path puts nothing in this view, so its
//     byte total is Σ bytes × distinct ASes of each path, as DESIGN.md defines it.
//   - origin: (router, class, origin_as). The last AS of the path (enrich.OriginAS): for a path
//     ending in an AS_SET the smallest member of the set (deterministic whatever the order the
//     set was encoded in); the router's own ASN for an empty path; 0 for unrouted clients.
//   - country: (router, country, region, peer_as, class). The peer AS is the first AS of the
//     path, or the router's ASN for an empty path, 0 when unrouted; country "" when unknown.
//   - router: (router, class) totals.
//   - conntrack: (proto, src_group, dst_group, port), conntrack and CSV-import records only
//     (the conntrack tool's vpn_traffic table). src_group is the record's client (the group of
//     the side that opened the connection), dst_group its server, port its server port; port 0
//     of TCP, UDP, SCTP or UDP-Lite (which the conntrack source writes for ports outside its
//     ports file) is the "other ports" bucket -1.
//
// The trafstat views take every source except conntrack and import, whose records are
// aggregates of internal groups rather than client traffic.
package aggregate

import (
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strings"

	"github.com/netledger/netledger/internal/record"
)

// Dimension names, as written in the configuration.
const (
	DimRouter   = "router"
	DimClass    = "class"
	DimPrefix   = "prefix" // the longest-match prefix, with its AS path
	DimPeerAS   = "peer_as"
	DimOriginAS = "origin_as"
	DimASOnPath = "as_on_path"
	DimCountry  = "country"
	DimRegion   = "region"
	DimProto    = "proto"
	DimSrcGroup = "src_group"
	DimDstGroup = "dst_group"
	DimPort     = "port"
)

// dim is a dimension as a bit of a mask.
type dim uint16

const (
	dRouter dim = 1 << iota
	dClass
	dPrefix
	dPeerAS
	dOriginAS
	dASOnPath
	dCountry
	dRegion
	dProto
	dSrcGroup
	dDstGroup
	dPort
)

var dimNames = []struct {
	name string
	d    dim
}{
	{DimRouter, dRouter}, {DimClass, dClass}, {DimPrefix, dPrefix}, {DimPeerAS, dPeerAS},
	{DimOriginAS, dOriginAS}, {DimASOnPath, dASOnPath}, {DimCountry, dCountry}, {DimRegion, dRegion},
	{DimProto, dProto}, {DimSrcGroup, dSrcGroup}, {DimDstGroup, dDstGroup}, {DimPort, dPort},
}

func dimByName(name string) (dim, bool) {
	for _, d := range dimNames {
		if d.name == name {
			return d.d, true
		}
	}
	return 0, false
}

// Dimensions returns the names of every dimension a view can have.
func Dimensions() []string {
	out := make([]string, len(dimNames))
	for i, d := range dimNames {
		out[i] = d.name
	}
	return out
}

// ViewConfig declares a view.
type ViewConfig struct {
	// Name identifies the view in the store and the API.
	Name string `yaml:"name"`
	// Dimensions are the dimension names the view's rows are keyed by (see Dimensions).
	Dimensions []string `yaml:"dimensions"`
	// Sources restricts the view to records of these sources (record.Source names such as
	// "report-v1", "conntrack"); a name prefixed with "!" excludes that source instead. Empty:
	// every source.
	Sources []string `yaml:"sources,omitempty"`
}

// trafstatSources are the sources of the default trafstat views: everything but the
// conntrack tool's group aggregates.
var trafstatSources = []string{"!" + record.SourceConntrack.String(), "!" + record.SourceImport.String()}

// DefaultViews returns the views netledger keeps when the configuration declares none:
// trafstat's tables and the conntrack tool's vpn_traffic (see the package documentation).
func DefaultViews() []ViewConfig {
	return []ViewConfig{
		{Name: "prefix", Dimensions: []string{DimRouter, DimClass, DimPrefix}, Sources: trafstatSources},
		{Name: "country", Dimensions: []string{DimRouter, DimCountry, DimRegion, DimPeerAS, DimClass}, Sources: trafstatSources},
		{Name: "as_path", Dimensions: []string{DimRouter, DimClass, DimASOnPath}, Sources: trafstatSources},
		{Name: "origin", Dimensions: []string{DimRouter, DimClass, DimOriginAS}, Sources: trafstatSources},
		{Name: "router", Dimensions: []string{DimRouter, DimClass}, Sources: trafstatSources},
		{Name: "conntrack", Dimensions: []string{DimProto, DimSrcGroup, DimDstGroup, DimPort},
			Sources: []string{record.SourceConntrack.String(), record.SourceImport.String()}},
	}
}

// sourceSet is a set of record sources as a bitmap.
type sourceSet [4]uint64

func (s *sourceSet) add(src record.Source)      { s[src>>6] |= 1 << (src & 63) }
func (s *sourceSet) del(src record.Source)      { s[src>>6] &^= 1 << (src & 63) }
func (s *sourceSet) has(src record.Source) bool { return s[src>>6]&(1<<(src&63)) != 0 }

func sourceByName(name string) (record.Source, bool) {
	for s := record.Source(0); s < 64; s++ {
		if s.String() == name {
			return s, true
		}
	}
	return 0, false
}

// view is a validated ViewConfig.
type view struct {
	name    string
	dims    dim
	sources sourceSet
}

func (c ViewConfig) compile() (view, error) {
	v := view{name: c.Name}
	if c.Name == "" {
		return v, errors.New("view without a name")
	}
	if len(c.Dimensions) == 0 {
		return v, fmt.Errorf("view %q has no dimensions", c.Name)
	}
	for _, n := range c.Dimensions {
		d, ok := dimByName(n)
		if !ok {
			return v, fmt.Errorf("view %q: unknown dimension %q (known: %s)", c.Name, n, strings.Join(Dimensions(), ", "))
		}
		if v.dims&d != 0 {
			return v, fmt.Errorf("view %q: dimension %q twice", c.Name, n)
		}
		v.dims |= d
	}
	include := false
	for _, n := range c.Sources {
		if !strings.HasPrefix(n, "!") {
			include = true
		}
	}
	if !include {
		for i := range v.sources {
			v.sources[i] = ^uint64(0)
		}
	}
	for _, n := range c.Sources {
		s, ok := sourceByName(strings.TrimPrefix(n, "!"))
		if !ok {
			return v, fmt.Errorf("view %q: unknown source %q", c.Name, n)
		}
		if strings.HasPrefix(n, "!") {
			v.sources.del(s)
		} else {
			v.sources.add(s)
		}
	}
	return v, nil
}

// Validate checks a list of views: known dimensions and sources, unique names.
func Validate(views []ViewConfig) error {
	_, err := compileViews(views)
	return err
}

func compileViews(views []ViewConfig) ([]view, error) {
	out := make([]view, 0, len(views))
	for _, c := range views {
		v, err := c.compile()
		if err != nil {
			return nil, err
		}
		if slices.ContainsFunc(out, func(o view) bool { return o.name == v.name }) {
			return nil, fmt.Errorf("two views named %q", v.name)
		}
		out = append(out, v)
	}
	return out, nil
}

// Merge returns the default views (unless noDefaults) followed by extra; an extra view with
// the name of a default view replaces it.
func Merge(noDefaults bool, extra []ViewConfig) []ViewConfig {
	var out []ViewConfig
	if !noDefaults {
		out = DefaultViews()
	}
	for _, v := range extra {
		if i := slices.IndexFunc(out, func(o ViewConfig) bool { return o.Name == v.Name }); i >= 0 {
			out[i] = v
			continue
		}
		out = append(out, v)
	}
	return out
}

// queryDims maps the names the CLI and the API group and filter by to dimensions.
var queryDims = map[string]dim{
	"asn": dASOnPath, "path-asn": dASOnPath, DimASOnPath: dASOnPath,
	"origin": dOriginAS, DimOriginAS: dOriginAS,
	"peer": dPeerAS, DimPeerAS: dPeerAS,
	DimCountry: dCountry, DimRegion: dRegion, DimPrefix: dPrefix, DimRouter: dRouter, DimClass: dClass,
	DimProto: dProto, DimPort: dPort,
	"src-group": dSrcGroup, DimSrcGroup: dSrcGroup, "dst-group": dDstGroup, DimDstGroup: dDstGroup,
}

// Pick returns the name of the view that answers a query grouped by by (a CLI name such as
// asn, origin, peer, path-asn, country, region, prefix, router, class, proto, port, src-group,
// dst-group, or a dimension name) and filtered on the dimensions filters (e.g. "router",
// "class", "country"): among the views holding all of them, the one with the fewest dimensions
// (the fewest rows to read), the first declared on a tie. A view with as_on_path credits each
// record once per AS of its path, so it only answers queries by AS on the path.
func Pick(views []ViewConfig, by string, filters ...string) (string, error) {
	want, ok := queryDims[by]
	if !ok {
		return "", fmt.Errorf("cannot group by %q", by)
	}
	for _, f := range filters {
		d, ok := queryDims[f]
		if !ok {
			return "", fmt.Errorf("cannot filter on %q", f)
		}
		want |= d
	}
	best, bestN := "", 0
	for _, c := range views {
		v, err := c.compile()
		if err != nil {
			return "", err
		}
		if v.dims&want != want || (v.dims&dASOnPath != 0 && want&dASOnPath == 0) {
			continue
		}
		if n := bits.OnesCount16(uint16(v.dims)); best == "" || n < bestN {
			best, bestN = v.name, n
		}
	}
	if best == "" {
		return "", fmt.Errorf("no view holds %s with the filters %v: declare one in the configuration", by, filters)
	}
	return best, nil
}
