package bgp

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/netledger/netledger/internal/routing"
)

// Config configures the embedded BGP speaker shared by every router's session. Neighbors
// themselves come from the routers' configuration (see Neighbor).
type Config struct {
	// Listen is where passive (and colliding active) sessions are accepted. It is only opened
	// when at least one neighbor is configured. The default is loopback: exposing the speaker
	// needs an explicit address (and MD5 passwords).
	Listen string `yaml:"listen"`
	// RouterID is our BGP identifier (an IPv4 address, not 0.0.0.0).
	RouterID string `yaml:"router_id"`
	// LocalASN is our AS number (4-byte ASNs are sent as AS_TRANS in the OPEN's 2-byte field).
	LocalASN uint32 `yaml:"local_asn"`
	// HoldTime is the hold time we propose (the smaller of both sides applies; 0 or ≥ 3 s).
	HoldTime time.Duration `yaml:"hold_time"`
	// ConnectRetry is the first delay before an active session dials again; it doubles on
	// each failure up to ConnectRetryMax and resets once a session is established.
	ConnectRetry    time.Duration `yaml:"connect_retry"`
	ConnectRetryMax time.Duration `yaml:"connect_retry_max"`
	// GraceTime is how long the last table of a dropped session is kept before the router's
	// RIB is cleared, unless the neighbor sets its own.
	GraceTime time.Duration `yaml:"grace_time"`
}

// DefaultConfig returns the speaker's defaults.
func DefaultConfig() Config {
	return Config{
		Listen:          "127.0.0.1:179",
		RouterID:        "127.0.0.1",
		LocalASN:        64512,
		HoldTime:        90 * time.Second,
		ConnectRetry:    5 * time.Second,
		ConnectRetryMax: 2 * time.Minute,
		GraceTime:       5 * time.Minute,
	}
}

// Neighbor is one router's BGP session: the router's name (a metric label), the RIB the session
// feeds, and how to reach the peer.
type Neighbor struct {
	// Name is the router's name.
	Name string
	// Address is the neighbor's address; only connections from it are accepted.
	Address netip.Addr
	// Port is the neighbor's TCP port when dialing (default 179).
	Port uint16
	// LocalAddress optionally binds the dialing side.
	LocalAddress netip.Addr
	// PeerASN is the neighbor's AS number; an OPEN announcing another is refused.
	PeerASN uint32
	// Passive sessions only accept; active ones also dial, with backoff.
	Passive bool
	// Password enables TCP MD5 signatures (RFC 2385) on the listener and the dialer.
	Password string
	// HoldTime overrides Config.HoldTime when non-zero.
	HoldTime time.Duration
	// GraceTime overrides Config.GraceTime when non-zero.
	GraceTime time.Duration
	// RIB receives the routes. It is written only by this session (one writer). If it also
	// implements Walker, a session re-established within the grace time sweeps stale routes at
	// End-of-RIB; otherwise the old table is cleared when the new session is established.
	RIB routing.Updater
	// Seeded says the RIB already holds routes from elsewhere (MRT files loaded at start): the
	// first session then refreshes the table as a re-established one does (see the package
	// documentation) instead of adding to it.
	Seeded bool
}

// Validate checks the speaker's configuration without opening anything.
func (c Config) Validate() error { return c.validate() }

func (c Config) routerID() (netip.Addr, error) {
	id, err := netip.ParseAddr(c.RouterID)
	if err != nil || !id.Is4() || id.IsUnspecified() {
		return netip.Addr{}, fmt.Errorf("bgp router_id %q must be a non-zero IPv4 address", c.RouterID)
	}
	return id, nil
}

func (c Config) validate() error {
	if _, err := c.routerID(); err != nil {
		return err
	}
	if c.LocalASN == 0 {
		return fmt.Errorf("bgp local_asn must be set")
	}
	if c.HoldTime != 0 && c.HoldTime < 3*time.Second {
		return fmt.Errorf("bgp hold_time %v must be 0 or at least 3s", c.HoldTime)
	}
	if c.HoldTime > 65535*time.Second {
		return fmt.Errorf("bgp hold_time %v is too long", c.HoldTime)
	}
	if c.ConnectRetry <= 0 || c.ConnectRetryMax < c.ConnectRetry {
		return fmt.Errorf("bgp connect_retry %v / connect_retry_max %v are invalid", c.ConnectRetry, c.ConnectRetryMax)
	}
	if c.GraceTime < 0 {
		return fmt.Errorf("bgp grace_time must not be negative")
	}
	return nil
}

// Validate checks the neighbor's settings.
func (n Neighbor) Validate() error { return n.validate() }

func (n Neighbor) validate() error {
	if n.Name == "" {
		return fmt.Errorf("bgp neighbor %v has no router name", n.Address)
	}
	if !n.Address.IsValid() {
		return fmt.Errorf("bgp neighbor of router %s has no address", n.Name)
	}
	if n.PeerASN == 0 {
		return fmt.Errorf("bgp neighbor %v of router %s has no peer ASN", n.Address, n.Name)
	}
	if n.RIB == nil {
		return fmt.Errorf("bgp neighbor %v of router %s has no RIB", n.Address, n.Name)
	}
	if len(n.Password) > 80 {
		return fmt.Errorf("bgp neighbor %v: MD5 password longer than 80 bytes", n.Address)
	}
	if n.HoldTime != 0 && n.HoldTime < 3*time.Second {
		return fmt.Errorf("bgp neighbor %v: hold time must be at least 3s", n.Address)
	}
	return nil
}
