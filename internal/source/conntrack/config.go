package conntrack

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Config configures conntrack accounting. The zero filters accept everything; the default
// masks keep every address apart.
type Config struct {
	// Enabled runs the source inside `netledger serve` (the `netledger conntrack` agent always
	// runs it). Its records go to the spool: the client is the group of the side that opened
	// the connections, the server the responder's group.
	Enabled bool `yaml:"enabled"`
	// Interval is how often the table is dumped and rows are emitted, aligned to the wall
	// clock (the original's -interval, 15 s).
	Interval time.Duration `yaml:"interval"`
	// Src and Dst filter the original direction's addresses: a flow is accounted when its
	// source is in one of Src (any when empty) and its destination in one of Dst.
	Src []netip.Prefix `yaml:"src"`
	Dst []netip.Prefix `yaml:"dst"`
	// SrcGroupMask and DstGroupMask group IPv4 addresses; they may be non-contiguous
	// (255.239.255.0 puts 10.32.5.7 and 10.48.5.9 into 10.32.5.0).
	SrcGroupMask netip.Addr `yaml:"src_group_mask"`
	DstGroupMask netip.Addr `yaml:"dst_group_mask"`
	// SrcGroupPrefix6 and DstGroupPrefix6 group IPv6 addresses by prefix length.
	SrcGroupPrefix6 int `yaml:"src_group_prefix6"`
	DstGroupPrefix6 int `yaml:"dst_group_prefix6"`
	// Exclude drops flows from or to these addresses (the original's -exclude-ip).
	Exclude []netip.Addr `yaml:"exclude"`
	// IncludeICMP accounts ICMP and ICMPv6 flows too.
	IncludeICMP bool `yaml:"include_icmp"`
	// Ports is a file of `proto:port` lines; when set, other destination ports are
	// accounted as port -1. It is reloaded when it changes.
	Ports string `yaml:"ports"`
	// Zones, when not empty, accounts only flows in these conntrack zones.
	Zones []uint16 `yaml:"zones"`
	// Mark and MarkMask, when MarkMask is not zero, account only flows whose
	// ct mark & MarkMask == Mark.
	Mark     uint32 `yaml:"mark"`
	MarkMask uint32 `yaml:"mark_mask"`
	// TrackOpen counts the connections open at the end of every interval.
	TrackOpen bool `yaml:"track_open"`
	// NetNS is the path of a network namespace to account (e.g. /run/netns/x); empty
	// means the agent's own.
	NetNS string `yaml:"netns"`
	// ReceiveBuffer is the event socket's receive buffer in bytes (forced past rmem_max).
	ReceiveBuffer int `yaml:"receive_buffer"`
	// ReliableEvents makes the kernel deliver DESTROY events reliably
	// (NETLINK_BROADCAST_ERROR): when the event socket is full, the kernel keeps the dying
	// connection and retries, so its final counters are never lost, but the host's packets
	// that need that connection gone (a SYN reusing its ports) are dropped meanwhile. Off
	// (the default, as conntrackd's NetlinkEventsReliable): a full socket loses the events,
	// the overrun is counted and dumps recover the counters, and the host's traffic never
	// waits for the agent.
	ReliableEvents bool `yaml:"reliable_events"`
}

// DefaultConfig returns the original tool's defaults: 15 s, every address its own group,
// ICMP off, a 26 MiB event buffer, lossy events (the host's traffic never waits for the
// agent).
func DefaultConfig() Config {
	return Config{
		Interval:        15 * time.Second,
		SrcGroupMask:    netip.AddrFrom4([4]byte{255, 255, 255, 255}),
		DstGroupMask:    netip.AddrFrom4([4]byte{255, 255, 255, 255}),
		SrcGroupPrefix6: 128,
		DstGroupPrefix6: 128,
		ReceiveBuffer:   212992 * 128,
	}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.Interval < time.Second {
		return fmt.Errorf("conntrack interval %s: want at least 1s", c.Interval)
	}
	for _, m := range []netip.Addr{c.SrcGroupMask, c.DstGroupMask} {
		if !m.Is4() {
			return errors.New("conntrack group masks must be IPv4 masks such as 255.255.255.0")
		}
	}
	for _, p := range []int{c.SrcGroupPrefix6, c.DstGroupPrefix6} {
		if p < 0 || p > 128 {
			return fmt.Errorf("conntrack IPv6 group prefix %d: want 0..128", p)
		}
	}
	for _, p := range append(append([]netip.Prefix(nil), c.Src...), c.Dst...) {
		if !p.IsValid() {
			return errors.New("conntrack filter: invalid prefix")
		}
	}
	if c.ReceiveBuffer < 0 {
		return errors.New("conntrack receive_buffer must not be negative")
	}
	return nil
}
