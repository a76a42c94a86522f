// Package tcpinfo is netledger's kernel TCP source: it reads the tcp_info of every TCP
// connection of the host (or of one network namespace) from the kernel's sock_diag netlink
// interface — the destroy notifications for connections as they close, and a dump of the
// established sockets every interval for long-lived ones — and turns them into records, with
// bytes, segments, retransmits, MSS and RTT, from any unmodified server.
package tcpinfo

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// Config configures the kernel TCP source.
type Config struct {
	// Enabled runs the source inside `netledger serve` (the `netledger tcpinfo` agent always
	// runs it).
	Enabled bool `yaml:"enabled"`
	// Interval is the period of the dump of established sockets: a long connection is
	// accounted in the interval its bytes flowed. 0 disables dumps (destroy notifications only).
	Interval time.Duration `yaml:"interval"`
	// ReceiveBuffer is the netlink receive buffer of the destroy-notification socket in bytes,
	// forced past net.core.rmem_max (SO_RCVBUFFORCE) when the process may.
	ReceiveBuffer int `yaml:"receive_buffer"`
	// Ports are the local ports to account (a web server's 80 and 443); empty means all.
	Ports []uint16 `yaml:"ports"`
	// Addresses are the local addresses or networks to account; empty means all.
	Addresses []netip.Prefix `yaml:"addresses"`
	// NetNS is a network namespace name (from `ip netns`, /run/netns/NAME) or path
	// (/proc/PID/ns/net); empty means the process's own namespace.
	NetNS string `yaml:"netns"`
	// Cgroup is a cgroup v2 directory (such as /sys/fs/cgroup/system.slice/nginx.service):
	// only connections of sockets created in it or in the cgroups below it (as they were when
	// the source started) are accounted — for accepted connections, those of a listener
	// created there. Closed connections are matched by their listener's local port, learnt at
	// every dump, so it needs an interval.
	Cgroup string `yaml:"cgroup"`
	// Classes assign a traffic class by local port and/or local address; the first match wins.
	Classes []ClassRule `yaml:"classes"`
	// Partitions splits each interval dump into this many dumps run at once on as many
	// netlink sockets, each asking the kernel for the sockets of one range of ports (remote or
	// local ports, whichever the previous dump showed to split more evenly; every socket falls in
	// exactly one range), so that several cores share the kernel's walk and copy of the sockets.
	// 0 means one per core the Go runtime uses (GOMAXPROCS); 1 dumps on one socket.
	Partitions int `yaml:"partitions"`
	// DumpOnly runs without destroy notifications (no CAP_NET_ADMIN): connections that open
	// and close between two dumps are then missed, and the rest of a connection after its
	// last dump too.
	DumpOnly bool `yaml:"dump_only"`
	// DumpMethod is how the interval dumps read the sockets: "bpf", a BPF TCP socket iterator
	// that copies only the fields netledger uses (Linux 5.9+ with BTF; CAP_BPF and CAP_PERFMON,
	// or CAP_SYS_ADMIN; about half the kernel CPU of a netlink dump, and one walk whatever
	// Partitions says); "netlink", the sock_diag dump (partitioned as Partitions says); "auto"
	// (or empty), the iterator where it loads, else netlink — the log and
	// netledger_tcpinfo_dump_method say which. Destroy notifications always come over netlink.
	DumpMethod string `yaml:"dump_method"`
}

// ClassRule assigns Class to connections whose local port is Port (0: any) and whose local
// address is in Prefix (invalid/unset: any).
type ClassRule struct {
	Port   uint16       `yaml:"port"`
	Prefix netip.Prefix `yaml:"prefix"`
	Class  uint16       `yaml:"class"`
}

// DefaultConfig returns the defaults: a dump every 10 s and a 32 MiB receive buffer (about
// 100,000 pending destroy notifications).
func DefaultConfig() Config {
	return Config{
		Interval:      10 * time.Second,
		ReceiveBuffer: 32 << 20,
		DumpMethod:    DumpAuto,
	}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	switch {
	case c.Interval < 0:
		return errors.New("tcpinfo interval must not be negative")
	case c.Interval > 0 && c.Interval < 100*time.Millisecond:
		return errors.New("tcpinfo interval must be at least 100ms")
	case c.ReceiveBuffer < 0:
		return errors.New("tcpinfo receive_buffer must not be negative")
	case c.Partitions < 0 || c.Partitions > maxPartitions:
		return fmt.Errorf("tcpinfo partitions must be between 0 (one per core) and %d", maxPartitions)
	case c.DumpOnly && c.Interval == 0:
		return errors.New("tcpinfo dump_only needs an interval")
	case c.Cgroup != "" && c.Interval == 0:
		return errors.New("tcpinfo cgroup needs an interval (listeners are dumped with the sockets)")
	}
	switch c.DumpMethod {
	case "", DumpAuto, DumpBPF, DumpNetlink:
	default:
		return fmt.Errorf("tcpinfo dump_method %q: want auto, bpf or netlink", c.DumpMethod)
	}
	for _, p := range c.Addresses {
		if !p.IsValid() {
			return fmt.Errorf("tcpinfo address %v is not a valid prefix", p)
		}
	}
	return nil
}

// filter decides which sockets are accounted and their class; built once, read-only.
type filter struct {
	ports   *[1 << 16 / 64]uint64 // bitset of local ports; nil: all
	addrs   []netip.Prefix
	classes []ClassRule
	cgroups map[uint64]struct{} // cgroup v2 ids; nil: all
}

// inCgroups reports whether id is one of the configured cgroups.
func (f *filter) inCgroups(id uint64) bool {
	_, ok := f.cgroups[id]
	return ok
}

// portSet is a bitset of local ports.
type portSet [1 << 16 / 64]uint64

func (p *portSet) add(port uint16)      { p[port/64] |= 1 << (port % 64) }
func (p *portSet) has(port uint16) bool { return p[port/64]&(1<<(port%64)) != 0 }

// cgroupIDs returns the ids of the cgroup v2 directory dir and of every cgroup below it: a
// cgroup's id is its directory's inode number.
func cgroupIDs(dir string) (map[uint64]struct{}, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return nil, fmt.Errorf("tcpinfo cgroup %s: %w", dir, err)
	}
	if st.Type != unix.CGROUP2_SUPER_MAGIC {
		return nil, fmt.Errorf("tcpinfo cgroup %s is not in a cgroup v2 hierarchy", dir)
	}
	ids := map[uint64]struct{}{}
	err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil || !e.IsDir() {
			return err
		}
		var st unix.Stat_t
		if err := unix.Stat(path, &st); err != nil {
			return err
		}
		ids[st.Ino] = struct{}{}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("tcpinfo cgroup %s: %w", dir, err)
	}
	return ids, nil
}

func newFilter(c Config) filter {
	f := filter{classes: c.Classes}
	if len(c.Ports) > 0 {
		f.ports = new([1 << 16 / 64]uint64)
		for _, p := range c.Ports {
			f.ports[p/64] |= 1 << (p % 64)
		}
	}
	for _, p := range c.Addresses {
		f.addrs = append(f.addrs, p.Masked())
	}
	return f
}

// match reports whether a socket with this (unmapped) local address and port is accounted.
func (f *filter) match(local netip.Addr, port uint16) bool {
	if f.ports != nil && f.ports[port/64]&(1<<(port%64)) == 0 {
		return false
	}
	if len(f.addrs) == 0 {
		return true
	}
	for _, p := range f.addrs {
		if p.Contains(local) {
			return true
		}
	}
	return false
}

// class returns the traffic class of a local address and port (0 when no rule matches).
func (f *filter) class(local netip.Addr, port uint16) uint16 {
	for _, r := range f.classes {
		if r.Port != 0 && r.Port != port {
			continue
		}
		if r.Prefix.IsValid() && !r.Prefix.Contains(local) {
			continue
		}
		return r.Class
	}
	return 0
}
