// Package routing holds the routers and their routing tables (RIBs): prefix → route attributes,
// longest-prefix match over IPv4 and IPv6, with attribute sets interned. Feeds (MRT files, the
// embedded BGP speaker) write through Updater; enrichment reads through Lookup.
package routing

import "net/netip"

// AS path segment types (RFC 4271, RFC 5065).
const (
	SegmentSet            uint8 = 1
	SegmentSequence       uint8 = 2
	SegmentConfedSequence uint8 = 3
	SegmentConfedSet      uint8 = 4
)

// Segment is one AS path segment.
type Segment struct {
	Type uint8
	ASNs []uint32
}

// LargeCommunity is an RFC 8092 large community.
type LargeCommunity struct {
	Global, Local1, Local2 uint32
}

// Origin attribute values.
const (
	OriginIGP        uint8 = 0
	OriginEGP        uint8 = 1
	OriginIncomplete uint8 = 2
)

// Attrs is the attribute set of a route. A RIB interns attribute sets: routes with equal
// attributes share one *Attrs, which must never be modified once handed to a RIB.
type Attrs struct {
	Path             []Segment
	NextHop          netip.Addr
	Origin           uint8
	MED              uint32
	HasMED           bool
	LocalPref        uint32
	HasLocalPref     bool
	Communities      []uint32
	LargeCommunities []LargeCommunity
}

// Updater is how feeds (MRT loader, BGP sessions) change one router's RIB. Implementations are
// safe for one writer; readers are never blocked. pathID is the ADD-PATH identifier (0 without
// ADD-PATH).
type Updater interface {
	Announce(p netip.Prefix, pathID uint32, a Attrs)
	Withdraw(p netip.Prefix, pathID uint32)
	// Clear removes every route (a session's grace time expired).
	Clear()
}

// PathWithdrawer is an Updater that also withdraws one path ID from every prefix at once: the
// routes of a peer whose session went down in an MRT update file. RIB implements it.
type PathWithdrawer interface {
	// WithdrawPath removes path pathID of every prefix and returns how many routes it removed.
	WithdrawPath(pathID uint32) int
}
