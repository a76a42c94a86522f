package routers

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/netledger/netledger/internal/routing"
	"github.com/netledger/netledger/internal/routing/bgp"
	"github.com/netledger/netledger/internal/routing/mrt"
)

// RouterConfig is one router of the configuration: who it is, which servers it carries, and
// how its routing table is fed (MRT files at start, a BGP session, or both).
type RouterConfig struct {
	// Name identifies the router in views, metrics and the rib commands.
	Name string `yaml:"name"`
	// ASN is the router's own AS: the peer and origin AS of routes with an empty AS path.
	ASN uint32 `yaml:"asn"`
	// Networks are the server networks the router serves: a report whose server address lies
	// inside one is accounted to this router (longest match over all routers). With a single
	// router, every report is.
	Networks []netip.Prefix `yaml:"networks"`
	// MRT files (plain, gzip or bzip2) build the table at start, in order: a RIB dump, then
	// update files.
	MRT []string `yaml:"mrt,omitempty"`
	// MRTPeer chooses one peer of a multi-peer dump: its address or AS number ("AS3356").
	// Empty: every peer, the best path kept per prefix (see mrt.Loader).
	MRTPeer string `yaml:"mrt_peer,omitempty"`
	// BGP is the router's session with the embedded speaker (nil: none).
	BGP *SessionConfig `yaml:"bgp,omitempty"`
}

// SessionConfig is a router's BGP session; the speaker's own settings (listen address, router
// ID, local AS, default timers) are bgp.Config.
type SessionConfig struct {
	// Neighbor is the router's address; only connections from it are accepted.
	Neighbor netip.Addr `yaml:"neighbor"`
	// PeerASN is the router's AS number in the session.
	PeerASN uint32 `yaml:"peer_asn"`
	// Passive sessions wait for the router to connect; active ones (the default) also dial.
	Passive bool `yaml:"passive"`
	// Password enables TCP MD5 signatures (RFC 2385).
	Password string `yaml:"password,omitempty"`
	// Port is the router's port when dialing (default 179).
	Port uint16 `yaml:"port,omitempty"`
	// LocalAddress binds the dialing side.
	LocalAddress netip.Addr `yaml:"local_address,omitempty"`
	// HoldTime and GraceTime override the speaker's defaults when set.
	HoldTime  time.Duration `yaml:"hold_time,omitempty"`
	GraceTime time.Duration `yaml:"grace_time,omitempty"`
}

// Validate checks the routers (and the speaker's settings when a router has a session)
// without opening anything.
func Validate(routers []RouterConfig, speaker bgp.Config) error {
	names := make(map[string]bool, len(routers))
	neighbors := make(map[netip.Addr]string)
	sessions := false
	for i, r := range routers {
		if r.Name == "" {
			return fmt.Errorf("routers[%d] has no name", i)
		}
		if names[r.Name] {
			return fmt.Errorf("router %q configured twice", r.Name)
		}
		names[r.Name] = true
		if len(routers) > 1 && len(r.Networks) == 0 {
			return fmt.Errorf("router %q serves no networks: with several routers, each needs the server networks it carries", r.Name)
		}
		for _, n := range r.Networks {
			if !n.IsValid() {
				return fmt.Errorf("router %q: invalid network", r.Name)
			}
		}
		if _, err := mrt.ParsePeerSelector(r.MRTPeer); err != nil {
			return fmt.Errorf("router %q: mrt_peer: %w", r.Name, err)
		}
		if r.MRTPeer != "" && len(r.MRT) == 0 {
			return fmt.Errorf("router %q: mrt_peer without mrt files", r.Name)
		}
		if s := r.BGP; s != nil {
			sessions = true
			if err := s.neighbor(r.Name, nil).Validate(); err != nil {
				return err
			}
			if other, dup := neighbors[s.Neighbor.Unmap()]; dup {
				return fmt.Errorf("bgp neighbor %v is configured for routers %q and %q", s.Neighbor, other, r.Name)
			}
			neighbors[s.Neighbor.Unmap()] = r.Name
		}
	}
	if sessions {
		return speaker.Validate()
	}
	return nil
}

func (s *SessionConfig) neighbor(router string, rib routing.Updater) bgp.Neighbor {
	n := bgp.Neighbor{
		Name:         router,
		Address:      s.Neighbor,
		Port:         s.Port,
		LocalAddress: s.LocalAddress,
		PeerASN:      s.PeerASN,
		Passive:      s.Passive,
		Password:     s.Password,
		HoldTime:     s.HoldTime,
		GraceTime:    s.GraceTime,
		RIB:          rib,
	}
	if n.RIB == nil { // validation only
		n.RIB = nopUpdater{}
	}
	return n
}

type nopUpdater struct{}

func (nopUpdater) Announce(netip.Prefix, uint32, routing.Attrs) {}
func (nopUpdater) Withdraw(netip.Prefix, uint32)                {}
func (nopUpdater) Clear()                                       {}
