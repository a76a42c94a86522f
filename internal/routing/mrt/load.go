package mrt

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/netledger/netledger/internal/routing"
)

// PeerSelector chooses the peers of a multi-peer dump whose routes a table takes: a peer
// address, a peer AS, or (the zero value) every peer.
type PeerSelector struct {
	Addr netip.Addr
	ASN  uint32
}

// ParsePeerSelector parses "" (every peer), an IPv4 or IPv6 address, or an AS number
// ("3356" or "AS3356").
func ParsePeerSelector(s string) (PeerSelector, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return PeerSelector{}, nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return PeerSelector{Addr: a.Unmap()}, nil
	}
	n, err := strconv.ParseUint(strings.TrimPrefix(strings.ToUpper(s), "AS"), 10, 32)
	if err != nil || n == 0 {
		return PeerSelector{}, fmt.Errorf("peer %q is neither an address nor an AS number", s)
	}
	return PeerSelector{ASN: uint32(n)}, nil
}

// All reports whether the selector takes every peer.
func (s PeerSelector) All() bool { return !s.Addr.IsValid() && s.ASN == 0 }

func (s PeerSelector) match(p *Peer) bool {
	switch {
	case s.Addr.IsValid():
		return p.Addr == s.Addr
	case s.ASN != 0:
		return p.ASN == s.ASN
	}
	return true
}

// String returns the selector as ParsePeerSelector reads it ("" for every peer).
func (s PeerSelector) String() string {
	switch {
	case s.Addr.IsValid():
		return s.Addr.String()
	case s.ASN != 0:
		return "AS" + strconv.FormatUint(uint64(s.ASN), 10)
	}
	return ""
}

// pathKey identifies one path of a dump: the peer it was learnt from and its ADD-PATH ID.
type pathKey struct {
	peer netip.Addr
	id   uint32
}

// LoadStats counts what a Loader applied.
type LoadStats struct {
	// Announced and Withdrawn count the routes applied to the table.
	Announced, Withdrawn int64
	// OtherPeers counts routes of peers the selector did not take.
	OtherPeers int64
	// Paths is the number of distinct (peer, ADD-PATH ID) pairs taken.
	Paths int
	// SessionDrops counts state changes out of Established of the peers taken; their routes
	// are withdrawn (and counted in Withdrawn).
	SessionDrops int64
	// Routes are the counters of the MRT decoder, summed over the files.
	Routes RouteStats
}

// Loader applies MRT files to one router's table, in order: RIB dumps (TABLE_DUMP,
// TABLE_DUMP_V2) announce their entries, BGP4MP update files announce and withdraw. Each peer
// of the files (and each ADD-PATH ID of a peer) is one path of a prefix; with several, the
// table keeps the best by routing's rule (Attrs.Better: highest LOCAL_PREF, shortest AS path,
// lowest ORIGIN, lowest MED), ties going to the peer seen first in the files (for
// TABLE_DUMP_V2: the lowest peer index). Peer selects the peers taken. A BGP4MP state change
// out of Established (6) withdraws every route of that peer (all its ADD-PATH IDs), as the
// router did when the session dropped; other state changes change nothing.
type Loader struct {
	Peer  PeerSelector
	ids   map[pathKey]uint32
	last  pathKey
	lastI uint32
	stats LoadStats
}

// Stats returns the counters so far.
func (l *Loader) Stats() LoadStats {
	s := l.stats
	s.Paths = len(l.ids)
	return s
}

// id maps a route's peer and ADD-PATH ID to the table's path ID: the first pair seen is 0 (so
// a single-peer dump without ADD-PATH keeps every prefix on the RIB's single-path fast path),
// the next ones 1, 2, … in order of appearance.
func (l *Loader) id(p *Peer, pathID uint32) uint32 {
	k := pathKey{p.Addr, pathID}
	if l.ids != nil && k == l.last {
		return l.lastI
	}
	if l.ids == nil {
		l.ids = make(map[pathKey]uint32)
	}
	i, ok := l.ids[k]
	if !ok {
		i = uint32(len(l.ids))
		l.ids[k] = i
	}
	l.last, l.lastI = k, i
	return i
}

// Apply reads every route of r into u. It stops at the first framing error of r (an *Error
// naming the offset), after applying every complete record before it.
func (l *Loader) Apply(r *Reader, u routing.Updater) error {
	err := r.Routes(func(rt *Route) error {
		if rt.Kind == State {
			if rt.OldState == stateEstablished && rt.NewState != stateEstablished && l.Peer.match(&rt.Peer) {
				return l.sessionDrop(rt.Peer.Addr, u)
			}
			return nil
		}
		if !l.Peer.match(&rt.Peer) {
			l.stats.OtherPeers++
			return nil
		}
		id := l.id(&rt.Peer, rt.PathID)
		if rt.Kind == Announce {
			l.stats.Announced++
			u.Announce(rt.Prefix, id, *rt.Attrs)
		} else {
			l.stats.Withdrawn++
			u.Withdraw(rt.Prefix, id)
		}
		return nil
	})
	s := r.RouteStats()
	l.stats.Routes.Records += s.Records
	l.stats.Routes.Skipped += s.Skipped
	l.stats.Routes.BadPrefixes += s.BadPrefixes
	l.stats.Routes.BadAttributes += s.BadAttributes
	return err
}

// stateEstablished is the BGP FSM's Established state in BGP4MP state changes (RFC 6396).
const stateEstablished = 6

// sessionDrop withdraws every route of peer (each of its paths) from u, which must be a
// routing.PathWithdrawer (a RIB is): keeping the routes would credit traffic to a dead session.
func (l *Loader) sessionDrop(peer netip.Addr, u routing.Updater) error {
	pw, ok := u.(routing.PathWithdrawer)
	if !ok {
		return fmt.Errorf("session of peer %s dropped, but the table cannot withdraw a peer's routes", peer)
	}
	l.stats.SessionDrops++
	for k, id := range l.ids {
		if k.peer == peer {
			l.stats.Withdrawn += int64(pw.WithdrawPath(id))
		}
	}
	return nil
}

// ApplyFile opens one file (plain, gzip or bzip2) and applies it.
func (l *Loader) ApplyFile(name string, u routing.Updater) error {
	r, err := Open(name)
	if err != nil {
		return err
	}
	defer r.Close()
	if err := l.Apply(r, u); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// Load replaces rib's table with what fn applies (through l, say) to a fresh table swapped in
// atomically (routing.RIB.Load); on error, or when l announced no route at all (no file, an
// empty or truncated-to-nothing file, a peer selector that took nothing), the old table stays.
func (l *Loader) Load(rib *routing.RIB, fn func(u routing.Updater) error) error {
	return rib.Load(func(u routing.Updater) error {
		if err := fn(u); err != nil {
			return err
		}
		if !l.Peer.All() && len(l.ids) == 0 {
			return fmt.Errorf("no route of peer %s in the files", l.Peer)
		}
		if l.stats.Announced == 0 {
			return errors.New("no route announced in the files")
		}
		return nil
	})
}

// LoadFiles replaces rib's table with the routes of the files, applied in order (Load).
func LoadFiles(rib *routing.RIB, peer PeerSelector, names ...string) (LoadStats, error) {
	l := &Loader{Peer: peer}
	err := l.Load(rib, func(u routing.Updater) error {
		for _, name := range names {
			if err := l.ApplyFile(name, u); err != nil {
				return err
			}
		}
		return nil
	})
	return l.Stats(), err
}
