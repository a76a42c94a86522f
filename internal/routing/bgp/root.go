// Package bgp is netledger's embedded, receive-only BGP speaker: one session per router, each
// feeding that router's RIB through routing.Updater. It holds no table of its own — every
// received route lives once, in the RIB — and never advertises anything (it sends only OPEN,
// KEEPALIVE and NOTIFICATION). Messages are encoded and decoded with gobgp's pkg/packet/bgp; the
// session state machine (RFC 4271 8, collision detection 6.8, TCP MD5) is our own.
//
// When an established session drops, the router's table is kept for the grace time and then
// cleared. A session re-established within the grace time refreshes the table:
//
//   - with a RIB implementing Walker (mark and sweep), the routes present at establishment are
//     marked stale, every route the new session announces or withdraws unmarks it, and at each
//     family's End-of-RIB marker the routes of that family still marked are withdrawn;
//   - with a RIB implementing Loader (routing.RIB does), the new session's routes go into a
//     fresh private table while readers keep seeing the old one, and the fresh table is
//     swapped in atomically at the last End-of-RIB (if the session drops first, the old table
//     stays and the grace time starts again);
//   - otherwise the old table is cleared when the new session is established.
//
// A peer that never sends End-of-RIB (we advertise the graceful-restart capability, which asks
// for it) is swept or swapped after the grace time.
package bgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/netledger/netledger/internal/routing"
)

// Walker is implemented by RIBs that can list their routes; it enables the stale-route sweep of
// a session re-established within the grace time. fn returns false to stop.
type Walker interface {
	Walk(fn func(p netip.Prefix, pathID uint32) bool)
}

// Loader is implemented by RIBs that can build a replacement table privately and swap it in
// atomically when fn returns nil (routing.RIB.Load); fn returning an error keeps the old table.
type Loader interface {
	Load(fn func(u routing.Updater) error) error
}

// Compacter is implemented by RIBs that can rewrite their table compactly after it grew one
// route at a time (routing.RIB.Compact); the session calls it at each End-of-RIB of a table
// transfer that was neither a stale sweep nor a Loader refresh.
type Compacter interface {
	Compact()
}

// Deps are the speaker's dependencies.
type Deps struct {
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Registerer receives the metrics (nil: not registered).
	Registerer prometheus.Registerer
}

// Component runs the BGP sessions of every configured router.
type Component struct {
	cfg     Config
	id      netip.Addr
	log     *slog.Logger
	metrics *metrics
	peers   []*peer
	byAddr  map[netip.Addr]*peer

	ready chan struct{}
	addr  net.Addr
}

// New validates the configuration and builds the sessions; nothing runs before Run.
func New(cfg Config, neighbors []Neighbor, deps Deps) (*Component, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	id, _ := cfg.routerID()
	c := &Component{
		cfg:     cfg,
		id:      id,
		log:     deps.Logger,
		metrics: newMetrics(),
		byAddr:  make(map[netip.Addr]*peer),
		ready:   make(chan struct{}),
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	c.log = c.log.With("component", "bgp")
	for _, n := range neighbors {
		if err := n.validate(); err != nil {
			return nil, err
		}
		n.Address = n.Address.Unmap()
		if _, dup := c.byAddr[n.Address]; dup {
			return nil, fmt.Errorf("bgp neighbor %v configured twice", n.Address)
		}
		if n.Port == 0 {
			n.Port = 179
		}
		p := newPeer(c, n)
		c.peers = append(c.peers, p)
		c.byAddr[n.Address] = p
	}
	if deps.Registerer != nil {
		if err := deps.Registerer.Register(c); err != nil {
			return nil, fmt.Errorf("cannot register bgp metrics: %w", err)
		}
	}
	return c, nil
}

// Addr returns the listener's address once Run has opened it (nil without neighbors); it
// waits for Run to get that far.
func (c *Component) Addr(ctx context.Context) net.Addr {
	select {
	case <-c.ready:
	case <-ctx.Done():
	}
	return c.addr
}

// SessionStatus describes one router's session.
type SessionStatus struct {
	Router   string
	Neighbor netip.Addr
	State    State
	// Since is when the session entered its current state (established or down).
	Since time.Time
}

// Status returns every session's state.
func (c *Component) Status() []SessionStatus {
	out := make([]SessionStatus, 0, len(c.peers))
	for _, p := range c.peers {
		p.mu.Lock()
		out = append(out, SessionStatus{Router: p.n.Name, Neighbor: p.n.Address, State: p.stateLocked(), Since: p.since})
		p.mu.Unlock()
	}
	return out
}

// Run listens for and dials the neighbors until ctx is cancelled, then closes every session
// with a Cease NOTIFICATION. Only a failure to listen is an error.
func (c *Component) Run(ctx context.Context) error {
	if len(c.peers) == 0 {
		close(c.ready)
		<-ctx.Done()
		return nil
	}
	keys := make(map[netip.Addr]string)
	for _, p := range c.peers {
		if p.n.Password != "" {
			keys[p.n.Address] = p.n.Password
		}
	}
	lc := net.ListenConfig{Control: md5Control(keys, true)}
	ln, err := lc.Listen(ctx, "tcp", c.cfg.Listen)
	if err != nil {
		close(c.ready)
		return fmt.Errorf("cannot listen for bgp on %s: %w", c.cfg.Listen, err)
	}
	c.addr = ln.Addr()
	close(c.ready)
	c.log.Info("bgp speaker listening", "address", c.addr.String(), "neighbors", len(c.peers))

	var wg sync.WaitGroup
	wg.Go(func() {
		<-ctx.Done()
		ln.Close()
	})
	wg.Go(func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
					return
				}
				c.log.Warn("cannot accept bgp connection", "error", err)
				time.Sleep(100 * time.Millisecond)
				continue
			}
			remote := addrOf(nc.RemoteAddr())
			p, ok := c.byAddr[remote]
			if !ok {
				c.metrics.errors.WithLabelValues("", "unknown_neighbor").Inc()
				c.log.Warn("refusing bgp connection from an unconfigured address", "remote", remote)
				nc.Close()
				continue
			}
			wg.Go(func() { p.serveConn(ctx, nc, false) })
		}
	})
	for _, p := range c.peers {
		p.setState(StateIdle)
		if !p.n.Passive {
			wg.Go(func() { p.dialLoop(ctx) })
		}
	}
	<-ctx.Done()
	wg.Wait()
	for _, p := range c.peers {
		p.stop()
	}
	return nil
}

func addrOf(a net.Addr) netip.Addr {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.AddrPort().Addr().Unmap()
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}
