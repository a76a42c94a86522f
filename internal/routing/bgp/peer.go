package bgp

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"github.com/netledger/netledger/internal/routing"
)

// State is a BGP session state (RFC 4271 8.2.2).
type State int

// Session states, in the order of the session_state metric.
const (
	StateIdle State = iota
	StateConnect
	StateActive
	StateOpenSent
	StateOpenConfirm
	StateEstablished
)

func (s State) String() string {
	switch s {
	case StateIdle:
		return "idle"
	case StateConnect:
		return "connect"
	case StateActive:
		return "active"
	case StateOpenSent:
		return "opensent"
	case StateOpenConfirm:
		return "openconfirm"
	case StateEstablished:
		return "established"
	}
	return "state" + strconv.Itoa(int(s))
}

// peer is one configured neighbor: its connections (at most one established), its grace timer
// and the RIB writes (serialised by ribMu: one writer).
type peer struct {
	c     *Component
	n     Neighbor
	hold  time.Duration
	grace time.Duration
	log   *slog.Logger

	mu         sync.Mutex
	sessions   map[*session]struct{}
	current    *session // established
	dialing    bool
	since      time.Time
	generation uint64 // bumped on every establishment and drop
	graceTimer *time.Timer
	sweepTimer *time.Timer

	ribMu     sync.Mutex
	hasRoutes bool                // the RIB may hold routes of this neighbor
	stale     map[route]struct{}  // Walker refresh: routes of a previous session not yet refreshed
	staleFams map[bgp.Family]bool // families still awaiting End-of-RIB (both refresh kinds)
	load      *loading            // Loader refresh: the replacement table being built
}

// loading is a replacement table being built through a Loader until End-of-RIB.
type loading struct {
	u      routing.Updater // the private table
	finish chan error      // nil: swap it in; an error: keep the old table
	done   chan struct{}   // Load returned
}

// rib is where the session's changes go: the replacement table while one is being built.
// ribMu is held.
func (p *peer) rib() routing.Updater {
	if p.load != nil {
		return p.load.u
	}
	return p.n.RIB
}

// endLoadLocked swaps the replacement table in (err nil) or drops it. ribMu is held.
func (p *peer) endLoadLocked(err error) {
	if p.load == nil {
		return
	}
	p.load.finish <- err
	<-p.load.done
	p.load = nil
	p.staleFams = nil
	if err == nil {
		p.c.metrics.swapped.WithLabelValues(p.n.Name).Inc()
		p.log.Info("bgp table refreshed and swapped in")
	}
}

func newPeer(c *Component, n Neighbor) *peer {
	p := &peer{
		c:        c,
		n:        n,
		hold:     c.cfg.HoldTime,
		grace:    c.cfg.GraceTime,
		log:      c.log.With("router", n.Name, "neighbor", n.Address.String()),
		sessions: make(map[*session]struct{}),
		// hasRoutes: the RIB may hold routes of this neighbor (or seeded ones)
		hasRoutes: n.Seeded,
	}
	if n.HoldTime != 0 {
		p.hold = n.HoldTime
	}
	if n.GraceTime != 0 {
		p.grace = n.GraceTime
	}
	return p
}

// stateLocked is the most advanced state of the neighbor's connections.
func (p *peer) stateLocked() State {
	st := StateIdle
	if p.dialing {
		st = StateConnect
	}
	for s := range p.sessions {
		st = max(st, s.state)
	}
	return st
}

func (p *peer) publishLocked() {
	p.c.metrics.state.WithLabelValues(p.n.Name, p.n.Address.String()).Set(float64(p.stateLocked()))
}

func (p *peer) setState(st State) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.since = time.Now()
	p.publishLocked()
}

// dialLoop connects to an active neighbor whenever it has no session, with exponential
// backoff between attempts.
func (p *peer) dialLoop(ctx context.Context) {
	backoff := p.c.cfg.ConnectRetry
	var keys map[netip.Addr]string
	if p.n.Password != "" {
		keys = map[netip.Addr]string{p.n.Address: p.n.Password}
	}
	d := net.Dialer{Timeout: 30 * time.Second, Control: md5Control(keys, false)}
	if p.n.LocalAddress.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: p.n.LocalAddress.AsSlice()}
	}
	target := netip.AddrPortFrom(p.n.Address, p.n.Port).String()
	for ctx.Err() == nil {
		p.mu.Lock()
		busy := len(p.sessions) > 0
		if !busy {
			p.dialing = true
			p.publishLocked()
		}
		p.mu.Unlock()
		if busy {
			if !sleep(ctx, p.c.cfg.ConnectRetry) {
				return
			}
			continue
		}
		nc, err := d.DialContext(ctx, "tcp", target)
		p.mu.Lock()
		p.dialing = false
		p.publishLocked()
		p.mu.Unlock()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			p.c.metrics.errors.WithLabelValues(p.n.Name, "connect").Inc()
			p.log.Debug("cannot connect to bgp neighbor", "error", err, "retry", backoff)
			if !sleep(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, p.c.cfg.ConnectRetryMax)
			continue
		}
		if p.serveConn(ctx, nc, true) {
			backoff = p.c.cfg.ConnectRetry
		} else {
			backoff = min(2*backoff, p.c.cfg.ConnectRetryMax)
		}
		if !sleep(ctx, backoff) {
			return
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// serveConn runs one connection through the state machine; it reports whether the session
// reached Established.
func (p *peer) serveConn(ctx context.Context, nc net.Conn, outgoing bool) bool {
	s := newSession(p, nc, outgoing)
	p.mu.Lock()
	p.sessions[s] = struct{}{}
	s.state = StateOpenSent
	p.publishLocked()
	p.mu.Unlock()
	stop := context.AfterFunc(ctx, func() {
		s.fail(notification(bgp.BGP_ERROR_CEASE, bgp.BGP_ERROR_SUB_ADMINISTRATIVE_SHUTDOWN, "shutting down"))
	})
	err := s.run()
	stop()
	s.close()

	p.mu.Lock()
	delete(p.sessions, s)
	wasCurrent := p.current == s
	if wasCurrent {
		p.current = nil
		p.generation++
		p.since = time.Now()
		if ctx.Err() == nil {
			p.startGraceLocked()
		}
	}
	p.publishLocked()
	p.mu.Unlock()
	if wasCurrent {
		p.log.Warn("bgp session down", "error", err, "grace", p.grace)
		p.ribMu.Lock()
		p.stale, p.staleFams = nil, nil
		p.endLoadLocked(errors.New("session dropped during the refresh"))
		p.ribMu.Unlock()
	} else {
		p.log.Info("bgp connection closed", "error", err, "outgoing", outgoing)
	}
	return s.reached
}

// startGraceLocked arms the timer clearing the table if no session comes back in time.
func (p *peer) startGraceLocked() {
	gen := p.generation
	if p.graceTimer != nil {
		p.graceTimer.Stop()
	}
	p.graceTimer = time.AfterFunc(p.grace, func() {
		p.ribMu.Lock()
		defer p.ribMu.Unlock()
		p.mu.Lock()
		current := p.generation == gen && p.current == nil
		p.mu.Unlock()
		if !current || !p.hasRoutes {
			return
		}
		p.n.RIB.Clear()
		p.hasRoutes = false
		p.c.metrics.cleared.WithLabelValues(p.n.Name).Inc()
		p.log.Info("bgp grace time expired, table cleared")
	})
}

// stop cancels the timers at shutdown: the table is left as it is.
func (p *peer) stop() {
	p.ribMu.Lock()
	p.endLoadLocked(errors.New("shutting down"))
	p.ribMu.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.generation++
	if p.graceTimer != nil {
		p.graceTimer.Stop()
	}
	if p.sweepTimer != nil {
		p.sweepTimer.Stop()
	}
}

// openReceived resolves connection collisions (RFC 4271 6.8) once s has a valid OPEN: against
// an established session the new connection loses; between two connections in OpenConfirm the
// one initiated by the side with the higher BGP identifier survives.
func (p *peer) openReceived(s *session) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for o := range p.sessions {
		if o == s {
			continue
		}
		switch o.state {
		case StateEstablished:
			return false
		case StateOpenConfirm:
			loser := s
			if o.outgoing != s.outgoing {
				local := ipUint32(p.c.id)
				remote := ipUint32(s.remoteID)
				if local < remote { // keep the connection the neighbor initiated
					if o.outgoing {
						loser = o
					}
				} else if !o.outgoing {
					loser = o
				}
			}
			if loser == s {
				return false
			}
			go o.fail(notification(bgp.BGP_ERROR_CEASE, bgp.BGP_ERROR_SUB_CONNECTION_COLLISION_RESOLUTION, "connection collision"))
		}
	}
	s.state = StateOpenConfirm
	p.publishLocked()
	return true
}

func ipUint32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// established makes s the neighbor's session and prepares the table: routes kept from a
// previous session are marked stale (Walker), or a replacement table is built until
// End-of-RIB (Loader), or the table is cleared.
func (p *peer) established(s *session) bool {
	p.mu.Lock()
	for o := range p.sessions {
		if o != s && o.state == StateEstablished {
			p.mu.Unlock()
			return false
		}
	}
	s.state = StateEstablished
	s.reached = true
	p.current = s
	p.generation++
	gen := p.generation
	p.since = time.Now()
	if p.graceTimer != nil {
		p.graceTimer.Stop()
	}
	p.publishLocked()
	p.mu.Unlock()
	p.c.metrics.established.WithLabelValues(p.n.Name).Inc()
	p.log.Info("bgp session established", "peer_id", s.remoteID.String(), "hold", s.hold,
		"families", len(s.families), "four_byte_as", !s.as2)

	p.ribMu.Lock()
	defer p.ribMu.Unlock()
	p.stale, p.staleFams = nil, nil
	p.endLoadLocked(errors.New("new session"))
	if !p.hasRoutes {
		return true
	}
	w, ok := p.n.RIB.(Walker)
	if l, isLoader := p.n.RIB.(Loader); !ok && isLoader {
		p.startLoadLocked(l, s, gen)
		return true
	}
	if !ok {
		p.n.RIB.Clear()
		p.hasRoutes = false
		p.c.metrics.cleared.WithLabelValues(p.n.Name).Inc()
		return true
	}
	p.stale = make(map[route]struct{})
	w.Walk(func(pfx netip.Prefix, id uint32) bool {
		p.stale[route{pfx, id}] = struct{}{}
		return true
	})
	p.staleFams = make(map[bgp.Family]bool)
	for _, f := range s.families {
		p.staleFams[f] = true
	}
	// Routes of families the new session does not carry are gone now.
	p.sweepLocked(func(r route) bool { return !p.staleFams[familyOf(r.Prefix)] })
	if len(p.stale) > 0 {
		p.mu.Lock()
		if p.sweepTimer != nil {
			p.sweepTimer.Stop()
		}
		p.sweepTimer = time.AfterFunc(p.grace, func() {
			p.ribMu.Lock()
			defer p.ribMu.Unlock()
			p.mu.Lock()
			current := p.generation == gen
			p.mu.Unlock()
			if current && p.stale != nil {
				p.log.Warn("no end-of-rib within the grace time, sweeping stale routes", "stale", len(p.stale))
				p.sweepLocked(func(route) bool { return true })
			}
		})
		p.mu.Unlock()
	}
	return true
}

func familyOf(p netip.Prefix) bgp.Family {
	if p.Addr().Is4() {
		return bgp.RF_IPv4_UC
	}
	return bgp.RF_IPv6_UC
}

// startLoadLocked starts building a replacement table: the session writes into it and it is
// swapped in at the last End-of-RIB (or after the grace time). ribMu is held.
func (p *peer) startLoadLocked(l Loader, s *session, gen uint64) {
	ld := &loading{finish: make(chan error), done: make(chan struct{})}
	ready := make(chan routing.Updater)
	go func() {
		defer close(ld.done)
		err := l.Load(func(u routing.Updater) error {
			ready <- u
			return <-ld.finish
		})
		if err != nil {
			p.log.Info("bgp replacement table dropped", "reason", err)
		}
	}()
	ld.u = <-ready
	p.load = ld
	p.staleFams = make(map[bgp.Family]bool)
	for _, f := range s.families {
		p.staleFams[f] = true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sweepTimer != nil {
		p.sweepTimer.Stop()
	}
	p.sweepTimer = time.AfterFunc(p.grace, func() {
		p.ribMu.Lock()
		defer p.ribMu.Unlock()
		p.mu.Lock()
		current := p.generation == gen
		p.mu.Unlock()
		if current && p.load != nil {
			p.log.Warn("no end-of-rib within the grace time, swapping the table in as it is")
			p.endLoadLocked(nil)
		}
	})
}

// sweepLocked withdraws the stale routes selected by which. ribMu is held.
func (p *peer) sweepLocked(which func(route) bool) {
	n := 0
	for r := range p.stale {
		if which(r) {
			p.n.RIB.Withdraw(r.Prefix, r.PathID)
			delete(p.stale, r)
			n++
		}
	}
	if n > 0 {
		p.c.metrics.swept.WithLabelValues(p.n.Name).Add(float64(n))
		p.log.Info("swept stale bgp routes", "routes", n)
	}
	if len(p.stale) == 0 {
		p.stale, p.staleFams = nil, nil
	}
}

// endOfRIB sweeps the stale routes of family f. ribMu is held.
func (p *peer) endOfRIBLocked(f bgp.Family) {
	if p.load != nil {
		delete(p.staleFams, f)
		if len(p.staleFams) == 0 {
			p.endLoadLocked(nil)
		}
		return
	}
	if p.stale == nil {
		if c, ok := p.n.RIB.(Compacter); ok {
			c.Compact()
		}
		return
	}
	delete(p.staleFams, f)
	p.sweepLocked(func(r route) bool { return familyOf(r.Prefix) == f })
}
