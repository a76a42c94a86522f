package routing

import (
	"slices"
	"strconv"
)

// PeerAS returns the first AS of the path: the neighbour AS that announced the route.
// Confederation segments at the head of the path (RFC 5065, member ASes inside our own
// confederation) are skipped; a path starting with an AS_SET has no single peer AS and
// reports false, as does an empty path (a route originated inside our own AS).
func (a *Attrs) PeerAS() (uint32, bool) {
	for _, s := range a.Path {
		switch s.Type {
		case SegmentConfedSequence, SegmentConfedSet:
			continue
		case SegmentSequence:
			if len(s.ASNs) > 0 {
				return s.ASNs[0], true
			}
			continue
		}
		return 0, false
	}
	return 0, false
}

// OriginAS returns the last AS of the path, the AS that originated the route. When the path
// ends in an AS_SET (an aggregate, RFC 4271 §5.1.2), there is no single origin: OriginAS
// returns the lowest member of the set and true, the convention operators know from route
// collectors' "origin AS of an aggregate" listings and stable across announcements whose sets
// only differ in order. Trailing confederation segments are ignored (they are ASes of our own
// confederation, not origins); an empty path reports false.
func (a *Attrs) OriginAS() (uint32, bool) {
	for i := len(a.Path) - 1; i >= 0; i-- {
		s := a.Path[i]
		if len(s.ASNs) == 0 {
			continue
		}
		switch s.Type {
		case SegmentSequence:
			return s.ASNs[len(s.ASNs)-1], true
		case SegmentSet:
			return slices.Min(s.ASNs), true
		}
	}
	return 0, false
}

// FirstAS returns the first AS of path, as the enrichment counts a route's peer AS: a path
// starting with an AS_SET gives its smallest member; confederation segments and empty
// segments are skipped; ok is false when no AS is left. Unlike PeerAS, an AS_SET at the head
// gives an AS: traffic is always counted under some peer.
func FirstAS(path []Segment) (asn uint32, ok bool) {
	for _, s := range path {
		if len(s.ASNs) == 0 || s.Type == SegmentConfedSequence || s.Type == SegmentConfedSet {
			continue
		}
		if s.Type == SegmentSet {
			return slices.Min(s.ASNs), true
		}
		return s.ASNs[0], true
	}
	return 0, false
}

// LastAS returns the last AS of path, as the enrichment counts a route's origin AS: a path
// ending in an AS_SET gives its smallest member; confederation segments and empty segments
// are skipped; ok is false when no AS is left.
func LastAS(path []Segment) (asn uint32, ok bool) {
	for i := len(path) - 1; i >= 0; i-- {
		s := path[i]
		if len(s.ASNs) == 0 || s.Type == SegmentConfedSequence || s.Type == SegmentConfedSet {
			continue
		}
		if s.Type == SegmentSet {
			return slices.Min(s.ASNs), true
		}
		return s.ASNs[len(s.ASNs)-1], true
	}
	return 0, false
}

// AppendDistinctASNs appends every distinct AS of the path to dst, once each, in path order
// (prepending and loops collapse; the members of an AS_SET count each once). Confederation
// segments are skipped: their ASes are private member ASes of our own confederation, not
// ASes the traffic crosses on the Internet. Nothing is allocated when dst has room.
func (a *Attrs) AppendDistinctASNs(dst []uint32) []uint32 {
	start := len(dst)
	for _, s := range a.Path {
		if s.Type == SegmentConfedSequence || s.Type == SegmentConfedSet {
			continue
		}
		for _, asn := range s.ASNs {
			if !slices.Contains(dst[start:], asn) {
				dst = append(dst, asn)
			}
		}
	}
	return dst
}

// String returns the AS path in bgpdump's notation: sequences as space-separated ASes, AS_SETs
// as {a,b}, confederation sequences as (a b) and confederation sets as [a,b].
func (a *Attrs) String() string {
	return string(a.AppendPath(nil))
}

// AppendPath appends the AS path in the notation of String to dst.
func (a *Attrs) AppendPath(dst []byte) []byte {
	for i, s := range a.Path {
		if i > 0 {
			dst = append(dst, ' ')
		}
		sep := byte(' ')
		switch s.Type {
		case SegmentSet:
			dst, sep = append(dst, '{'), ','
		case SegmentConfedSequence:
			dst = append(dst, '(')
		case SegmentConfedSet:
			dst, sep = append(dst, '['), ','
		}
		for j, asn := range s.ASNs {
			if j > 0 {
				dst = append(dst, sep)
			}
			dst = strconv.AppendUint(dst, uint64(asn), 10)
		}
		switch s.Type {
		case SegmentSet:
			dst = append(dst, '}')
		case SegmentConfedSequence:
			dst = append(dst, ')')
		case SegmentConfedSet:
			dst = append(dst, ']')
		}
	}
	return dst
}

// PathLen is the AS path length of the best-path rule (RFC 4271 §9.1.2.2): each AS of an
// AS_SEQUENCE counts one, an AS_SET counts one, confederation segments count nothing
// (RFC 5065 §5.3).
func (a *Attrs) PathLen() int {
	n := 0
	for _, s := range a.Path {
		switch s.Type {
		case SegmentSequence:
			n += len(s.ASNs)
		case SegmentSet:
			n++
		}
	}
	return n
}

// Better reports whether a is preferred over b by netledger's best-path rule, applied between
// the paths of one prefix (ADD-PATH, or several peers of one dump): highest LOCAL_PREF
// (missing counts as 100, the RFC 4271 default), then shortest AS path (PathLen), then lowest
// ORIGIN (IGP < EGP < incomplete), then lowest MED (missing counts as 0, compared regardless
// of the neighbour AS, like "always-compare-med"). Equal paths are not better: the caller
// breaks ties by the lowest path ID (for dumps: the lowest peer index).
func (a *Attrs) Better(b *Attrs) bool {
	if la, lb := a.localPref(), b.localPref(); la != lb {
		return la > lb
	}
	if pa, pb := a.PathLen(), b.PathLen(); pa != pb {
		return pa < pb
	}
	if a.Origin != b.Origin {
		return a.Origin < b.Origin
	}
	return a.med() < b.med()
}

func (a *Attrs) localPref() uint32 {
	if a.HasLocalPref {
		return a.LocalPref
	}
	return 100
}

func (a *Attrs) med() uint32 {
	if a.HasMED {
		return a.MED
	}
	return 0
}
