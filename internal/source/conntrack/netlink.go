package conntrack

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"strings"
	"syscall"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Errors explaining what the host lacks.
var (
	ErrPermission = errors.New("conntrack needs CAP_NET_ADMIN (run as root or grant the capability: setcap cap_net_admin+ep netledger)")
	ErrNoKernel   = errors.New("the kernel has no conntrack netlink support (modprobe nf_conntrack nf_conntrack_netlink, and make sure a firewall rule tracks connections)")
)

func explain(op string, err error) error {
	switch {
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return fmt.Errorf("cannot %s: %w (%v)", op, ErrPermission, err)
	case errors.Is(err, unix.EPROTONOSUPPORT), errors.Is(err, unix.ENOENT), errors.Is(err, unix.EOPNOTSUPP):
		return fmt.Errorf("cannot %s: %w (%v)", op, ErrNoKernel, err)
	}
	return fmt.Errorf("cannot %s: %w", op, err)
}

// inNetNS runs fn on a thread inside the network namespace at path ("" = the current one).
func inNetNS(path string, fn func() error) error {
	if path == "" {
		return fn()
	}
	target, err := os.Open(path)
	if errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("cannot open network namespace (entering one needs root or CAP_SYS_ADMIN): %w", err)
	}
	if err != nil {
		return fmt.Errorf("cannot open network namespace: %w", err)
	}
	defer target.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// The thread is not unlocked: it leaves with the goroutine, so no other goroutine
		// ever runs in the wrong namespace.
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("cannot enter network namespace %s (needs root or CAP_SYS_ADMIN): %w", path, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// sysctl names the agent turns on, as the original did for accounting.
const (
	sysctlAcct      = "/proc/sys/net/netfilter/nf_conntrack_acct"
	sysctlTimestamp = "/proc/sys/net/netfilter/nf_conntrack_timestamp"
)

// enableSysctl sets a 0/1 sysctl to 1 when it is 0; it returns whether it changed it.
func enableSysctl(path string) (changed bool, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, ErrNoKernel
		}
		return false, err
	}
	if strings.TrimSpace(string(b)) != "0" {
		return false, nil
	}
	if err := os.WriteFile(path, []byte("1"), 0o644); err != nil {
		return false, err
	}
	return true, nil
}

// socket is a raw ctnetlink socket read without allocation.
type socket struct {
	c    *netlink.Conn
	rc   syscall.RawConn
	buf  []byte
	n    int
	err  error
	read func(fd uintptr) bool
}

func newSocket(c *netlink.Conn, bufSize int) (*socket, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		c.Close()
		return nil, err
	}
	s := &socket{c: c, rc: rc, buf: make([]byte, bufSize)}
	s.read = func(fd uintptr) bool {
		s.n, s.err = unix.Read(int(fd), s.buf)
		return s.err != unix.EAGAIN
	}
	return s, nil
}

// recv reads one datagram; it returns its bytes (valid until the next call).
func (s *socket) recv() ([]byte, error) {
	if err := s.rc.Read(s.read); err != nil {
		return nil, err
	}
	if s.err != nil {
		return nil, s.err
	}
	return s.buf[:s.n], nil
}

func (s *socket) setsockopt(level, opt, v int) error {
	var serr error
	err := s.rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), level, opt, v) })
	if err != nil {
		return err
	}
	return serr
}

func (s *socket) close() error { return s.c.Close() }

// conntrack multicast groups NEW, UPDATE, DESTROY (NFNLGRP_CONNTRACK_*).
const eventGroups = 1<<0 | 1<<1 | 1<<2

func dialNS(nsPath string, groups uint32) (*netlink.Conn, error) {
	var c *netlink.Conn
	err := inNetNS(nsPath, func() error {
		var err error
		c, err = netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{Groups: groups})
		return err
	})
	return c, err
}

// openEvents subscribes to conntrack events with a receive buffer of rcvbuf bytes. With
// reliable, DESTROY events are made reliable with NETLINK_BROADCAST_ERROR: when our buffer is
// full the kernel keeps the dying entry and delivers its DESTROY again later, so final
// counters are never lost, but a packet that needs the entry gone (a SYN reopening its
// tuple) is dropped until then. Without it, and for NEW and UPDATE events always, a full
// buffer loses events (ENOBUFS), which dumps recover.
func openEvents(nsPath string, rcvbuf int, reliable bool) (*socket, error) {
	c, err := dialNS(nsPath, eventGroups)
	if err != nil {
		return nil, explain("subscribe to conntrack events", err)
	}
	s, err := newSocket(c, 1<<16)
	if err != nil {
		return nil, err
	}
	if rcvbuf > 0 {
		if err := s.setsockopt(unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvbuf); err != nil {
			if err := s.setsockopt(unix.SOL_SOCKET, unix.SO_RCVBUF, rcvbuf); err != nil {
				s.close()
				return nil, fmt.Errorf("cannot set event receive buffer: %w", err)
			}
		}
	}
	if reliable {
		if err := c.SetOption(netlink.BroadcastError, true); err != nil {
			s.close()
			return nil, fmt.Errorf("cannot set NETLINK_BROADCAST_ERROR: %w", err)
		}
	}
	return s, nil
}

// openDump opens the socket the table is dumped on (a listening socket cannot dump too).
func openDump(nsPath string) (*socket, error) {
	c, err := dialNS(nsPath, 0)
	if err != nil {
		return nil, explain("open a conntrack socket", err)
	}
	s, err := newSocket(c, 1<<20)
	if err != nil {
		return nil, err
	}
	_ = s.setsockopt(unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4<<20)
	return s, nil
}

// dump asks for the whole table (IPv4 and IPv6) and calls fn for every entry, in the
// order the kernel sends them. f is reused.
func (s *socket) dump(f *Flow, fn func(*Flow)) (n int, err error) {
	var m netlink.Message
	m.Header.Type = netlink.HeaderType(subsysCT<<8 | msgCTGet)
	m.Header.Flags = netlink.Request | netlink.Dump
	m.Data = []byte{unix.AF_UNSPEC, 0, 0, 0}
	_, err = s.c.Send(m)
	if err != nil {
		return 0, explain("dump the conntrack table", err)
	}
	for {
		b, err := s.recv()
		if err != nil {
			return n, explain("read the conntrack dump", err)
		}
		for len(b) >= nlmsgHdrLen {
			l := int(binary.NativeEndian.Uint32(b))
			if l < nlmsgHdrLen || l > len(b) {
				return n, ErrShort
			}
			switch binary.NativeEndian.Uint16(b[4:]) {
			case nlmsgDone:
				return n, nil
			case nlmsgError:
				if l >= nlmsgHdrLen+4 {
					if code := int32(binary.NativeEndian.Uint32(b[nlmsgHdrLen:])); code != 0 {
						return n, explain("dump the conntrack table", unix.Errno(-code))
					}
				}
				return n, nil
			case nlmsgNoop:
			default:
				if _, err := DecodeMessage(b[:l], f); err == nil {
					f.Type = EventDump
					fn(f)
					n++
				}
			}
			al := (l + 3) &^ 3
			if al > len(b) {
				al = len(b)
			}
			b = b[al:]
		}
	}
}
