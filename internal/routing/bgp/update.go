package bgp

import (
	"errors"
	"net/netip"

	"github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"github.com/netledger/netledger/internal/routing"
)

// route identifies one path of one prefix (pathID is 0 without ADD-PATH).
type route struct {
	Prefix netip.Prefix
	PathID uint32
}

// announce is one announced route and which attribute set of its update applies to it.
type announce struct {
	route
	Attrs uint8 // attrsNextHop, attrsMP4 or attrsMP6
}

const (
	attrsNextHop = iota // NLRI field, next hop from NEXT_HOP
	attrsMP4            // IPv4 NLRI in MP_REACH_NLRI
	attrsMP6            // IPv6 NLRI in MP_REACH_NLRI
)

// update is one UPDATE message converted once for the RIB: up to three attribute sets (they only
// differ by next hop), the announced and the withdrawn routes, and an End-of-RIB marker.
type update struct {
	Attrs    [3]routing.Attrs
	Announce []announce
	Withdraw []route
	// EndOfRIB is the family an End-of-RIB marker closes (0: not a marker).
	EndOfRIB bgp.Family
	// Ignored counts NLRI of families we did not negotiate (never IPv4/IPv6 unicast).
	Ignored int
}

// Errors of an UPDATE that are handled as "treat-as-withdraw" (RFC 7606).
var (
	errMissingAttribute = errors.New("update announces routes without ORIGIN, AS_PATH or next hop")
)

func (u *update) reset() {
	u.Attrs = [3]routing.Attrs{}
	u.Announce = u.Announce[:0]
	u.Withdraw = u.Withdraw[:0]
	u.EndOfRIB = 0
	u.Ignored = 0
}

// convert turns a decoded UPDATE into u. as2 is set for peers without the 4-byte AS capability
// (AS4_PATH is then merged into AS_PATH, RFC 6793 4.2.3); with withdraw set (a treat-as-withdraw
// error, RFC 7606) every announced route is withdrawn instead. The returned error reports a
// missing mandatory attribute; the routes concerned are then withdrawn too. Attribute slices
// are freshly allocated per message: the RIB may keep them.
func convert(msg *bgp.BGPUpdate, as2, withdraw bool, u *update) error {
	u.reset()
	if eor, family := msg.IsEndOfRib(); eor {
		u.EndOfRIB = family
		return nil
	}
	var (
		hasOrigin bool
		asPath    *bgp.PathAttributeAsPath
		as4Path   *bgp.PathAttributeAs4Path
		nextHop   netip.Addr
		base      routing.Attrs
		mpReach   []*bgp.PathAttributeMpReachNLRI
	)
	for _, pa := range msg.PathAttributes {
		switch a := pa.(type) {
		case *bgp.PathAttributeOrigin:
			base.Origin, hasOrigin = a.Value, true
		case *bgp.PathAttributeAsPath:
			asPath = a
		case *bgp.PathAttributeAs4Path:
			as4Path = a
		case *bgp.PathAttributeNextHop:
			nextHop = a.Value.Unmap()
		case *bgp.PathAttributeMultiExitDisc:
			base.MED, base.HasMED = a.Value, true
		case *bgp.PathAttributeLocalPref:
			base.LocalPref, base.HasLocalPref = a.Value, true
		case *bgp.PathAttributeCommunities:
			if len(a.Value) > 0 {
				base.Communities = a.Value
			}
		case *bgp.PathAttributeLargeCommunities:
			if len(a.Values) > 0 {
				lc := make([]routing.LargeCommunity, 0, len(a.Values))
				for _, v := range a.Values {
					if v != nil {
						lc = append(lc, routing.LargeCommunity{Global: v.ASN, Local1: v.LocalData1, Local2: v.LocalData2})
					}
				}
				base.LargeCommunities = lc
			}
		case *bgp.PathAttributeMpReachNLRI:
			mpReach = append(mpReach, a)
		case *bgp.PathAttributeMpUnreachNLRI:
			family := bgp.NewFamily(a.AFI, a.SAFI)
			if family != bgp.RF_IPv4_UC && family != bgp.RF_IPv6_UC {
				u.Ignored += len(a.Value)
				continue
			}
			for _, n := range a.Value {
				if r, ok := toRoute(n); ok {
					u.Withdraw = append(u.Withdraw, r)
				}
			}
		}
	}
	for _, n := range msg.WithdrawnRoutes {
		if r, ok := toRoute(n); ok {
			u.Withdraw = append(u.Withdraw, r)
		}
	}
	if asPath != nil {
		base.Path = mergePath(asPath, as4Path, as2)
	}

	var missing error
	add := func(n bgp.PathNLRI, kind uint8, hasNextHop bool) {
		r, ok := toRoute(n)
		if !ok {
			return
		}
		if withdraw || !hasOrigin || asPath == nil || !hasNextHop {
			if !withdraw {
				missing = errMissingAttribute
			}
			u.Withdraw = append(u.Withdraw, r)
			return
		}
		u.Announce = append(u.Announce, announce{route: r, Attrs: kind})
	}
	if len(msg.NLRI) > 0 {
		u.Attrs[attrsNextHop] = base
		u.Attrs[attrsNextHop].NextHop = nextHop
		for _, n := range msg.NLRI {
			add(n, attrsNextHop, nextHop.IsValid())
		}
	}
	for _, mp := range mpReach {
		var kind uint8
		switch bgp.NewFamily(mp.AFI, mp.SAFI) {
		case bgp.RF_IPv4_UC:
			kind = attrsMP4
		case bgp.RF_IPv6_UC:
			kind = attrsMP6
		default:
			u.Ignored += len(mp.Value)
			continue
		}
		u.Attrs[kind] = base
		u.Attrs[kind].NextHop = mp.Nexthop.Unmap()
		for _, n := range mp.Value {
			add(n, kind, mp.Nexthop.IsValid())
		}
	}
	return missing
}

// toRoute extracts an IPv4 or IPv6 unicast prefix.
func toRoute(n bgp.PathNLRI) (route, bool) {
	p, ok := n.NLRI.(*bgp.IPAddrPrefix)
	if !ok || p == nil || !p.Prefix.IsValid() {
		return route{}, false
	}
	return route{Prefix: p.Prefix.Masked(), PathID: n.ID}, true
}

// pathLen counts a path's length the way RFC 4271 9.1.2.2 and RFC 6793 4.2.3 do: an AS_SET
// counts one, confederation segments count zero.
func pathLen(segs []routing.Segment) int {
	n := 0
	for _, s := range segs {
		switch s.Type {
		case routing.SegmentSequence:
			n += len(s.ASNs)
		case routing.SegmentSet:
			n++
		}
	}
	return n
}

// mergePath converts AS_PATH and, for a 2-byte peer, merges AS4_PATH into it (RFC 6793 4.2.3):
// when AS4_PATH is not longer than AS_PATH, the leading AS_PATH ASes beyond AS4_PATH's length
// are kept and AS4_PATH follows (confederation segments of AS4_PATH are dropped). 4-byte peers'
// AS4_PATH is ignored.
func mergePath(asPath *bgp.PathAttributeAsPath, as4Path *bgp.PathAttributeAs4Path, as2 bool) []routing.Segment {
	segs := make([]routing.Segment, 0, len(asPath.Value))
	for _, p := range asPath.Value {
		if p == nil {
			continue
		}
		asns := p.GetAS()
		if len(asns) == 0 {
			continue
		}
		segs = append(segs, routing.Segment{Type: p.GetType(), ASNs: asns})
	}
	if !as2 || as4Path == nil {
		return segs
	}
	as4 := make([]routing.Segment, 0, len(as4Path.Value))
	for _, p := range as4Path.Value {
		if p == nil || len(p.AS) == 0 {
			continue
		}
		if p.Type != routing.SegmentSequence && p.Type != routing.SegmentSet {
			continue
		}
		as4 = append(as4, routing.Segment{Type: p.Type, ASNs: p.AS})
	}
	n, n4 := pathLen(segs), pathLen(as4)
	if n < n4 {
		return segs
	}
	keep := n - n4
	merged := make([]routing.Segment, 0, len(segs)+len(as4))
	for _, s := range segs {
		if keep == 0 {
			break
		}
		switch s.Type {
		case routing.SegmentSequence:
			k := min(keep, len(s.ASNs))
			merged = append(merged, routing.Segment{Type: s.Type, ASNs: s.ASNs[:k:k]})
			keep -= k
		case routing.SegmentSet:
			merged = append(merged, s)
			keep--
		default:
			merged = append(merged, s)
		}
	}
	for _, s := range as4 {
		last := len(merged) - 1
		if s.Type == routing.SegmentSequence && last >= 0 && merged[last].Type == routing.SegmentSequence {
			joined := make([]uint32, 0, len(merged[last].ASNs)+len(s.ASNs))
			joined = append(append(joined, merged[last].ASNs...), s.ASNs...)
			merged[last].ASNs = joined
			continue
		}
		merged = append(merged, s)
	}
	return merged
}
