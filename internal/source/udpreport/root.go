// Package udpreport is the report collector: it receives report datagrams (protocol v2 and
// trafstat v1, docs/protocol.md) on UDP with batched reads on several SO_REUSEPORT sockets,
// verifies them, rejects replays and stale or bad input (counted by reason, logged at a bounded
// rate), and hands the accepted reports to its sink (the spool) one batch per read.
package udpreport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"github.com/netledger/netledger/internal/record"
	"github.com/netledger/netledger/internal/report"
)

// Deps are the collector's dependencies.
type Deps struct {
	// Sink receives accepted reports, one call per batch read; the slice is reused after the
	// call returns. The daemon passes the spool's Append.
	Sink func([]record.Record) error
	// Registerer receives the collector's metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Logger logs (slog.Default when nil).
	Logger *slog.Logger
}

// keyset is an immutable set of keys; workers rebuild their verifiers when it changes.
type keyset struct {
	keys []report.Key
	v1   V1Config
}

// Collector receives and verifies reports. New is inert; Run listens and works.
type Collector struct {
	cfg    Config
	deps   Deps
	log    *slog.Logger
	m      *metrics
	keys   atomic.Pointer[keyset]
	replay *report.ReplayFilter
	limit  logLimiter

	ready chan struct{}
	addr  netip.AddrPort
}

// New validates cfg and builds a collector.
func New(cfg Config, deps Deps) (*Collector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Sink == nil {
		return nil, errors.New("report collector needs a sink")
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	c := &Collector{
		cfg:    cfg,
		deps:   deps,
		log:    deps.Logger.With("component", "report"),
		m:      newMetrics(deps.Registerer),
		replay: report.NewReplayFilter(),
		ready:  make(chan struct{}),
	}
	c.keys.Store(&keyset{keys: cfg.keys(), v1: cfg.V1})
	if len(cfg.Keys) == 0 && !cfg.V1.Enabled {
		c.log.Warn("no report key configured and v1 disabled: every report will be rejected until keys are added (SIGHUP reloads them)")
	}
	return c, nil
}

// Reload replaces the accepted keys (v2 keys and the v1 setting) from cfg, which must validate;
// the listening parameters of cfg are ignored. Workers pick the new keys up at their next read.
func (c *Collector) Reload(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		c.m.reloads.WithLabelValues("error").Inc()
		return err
	}
	c.keys.Store(&keyset{keys: cfg.keys(), v1: cfg.V1})
	c.m.reloads.WithLabelValues("ok").Inc()
	c.log.Info("report keys reloaded", "keys", len(cfg.Keys), "v1", cfg.V1.Enabled)
	return nil
}

// Addr returns the bound address once Run listens (blocking until then or ctx is done).
func (c *Collector) Addr(ctx context.Context) (netip.AddrPort, error) {
	select {
	case <-c.ready:
		return c.addr, nil
	case <-ctx.Done():
		return netip.AddrPort{}, ctx.Err()
	}
}

// Run listens on cfg.Listen with cfg.Workers sockets and receives until ctx is done.
func (c *Collector) Run(ctx context.Context) error {
	conns, err := c.listen(ctx)
	if err != nil {
		return err
	}
	c.addr = conns[0].LocalAddr().(*net.UDPAddr).AddrPort()
	close(c.ready)
	c.log.Info("receiving reports", "listen", c.addr, "workers", len(conns))
	var wg sync.WaitGroup
	errs := make(chan error, len(conns))
	for _, conn := range conns {
		w := c.newWorker(conn)
		wg.Go(func() { errs <- w.run() })
	}
	t := time.NewTicker(c.cfg.Window)
	defer t.Stop()
	var runErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err := <-errs:
			runErr = err
			break loop
		case now := <-t.C:
			n := c.replay.Expire(now.UnixNano(), int64(3*c.cfg.Window))
			c.m.senders.Set(float64(n))
		}
	}
	for _, conn := range conns {
		conn.Close()
	}
	wg.Wait()
	return runErr
}

func (c *Collector) listen(ctx context.Context) ([]*net.UDPConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
			if serr == nil && c.cfg.ReceiveBuffer > 0 {
				if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, c.cfg.ReceiveBuffer) != nil {
					serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, c.cfg.ReceiveBuffer)
				}
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	addr := c.cfg.Listen
	var conns []*net.UDPConn
	for i := range c.cfg.Workers {
		pc, err := lc.ListenPacket(ctx, "udp", addr)
		if err != nil {
			for _, c := range conns {
				c.Close()
			}
			return nil, fmt.Errorf("cannot listen for reports on %s: %w", addr, err)
		}
		conns = append(conns, pc.(*net.UDPConn))
		if i == 0 {
			addr = pc.LocalAddr().String() // the same port for the others (":0" binds once)
		}
	}
	return conns, nil
}

// worker owns one socket and its verifiers.
type worker struct {
	c    *Collector
	conn *net.UDPConn
	msgs []ipv4.Message
	recs []record.Record

	ks  *keyset
	v2  *report.Verifier
	v1  *report.V1
	rej [report.NumReasons]uint64
	dg  [3]uint64 // v2, v1, unknown
}

func (c *Collector) newWorker(conn *net.UDPConn) *worker {
	w := &worker{c: c, conn: conn, msgs: make([]ipv4.Message, c.cfg.Batch)}
	for i := range w.msgs {
		// One byte more than the largest accepted datagram tells an oversized one.
		w.msgs[i].Buffers = [][]byte{make([]byte, c.cfg.MaxDatagram+1)}
	}
	return w
}

func (w *worker) loadKeys() {
	ks := w.c.keys.Load()
	if ks == w.ks {
		return
	}
	v2, err := report.NewVerifier(ks.keys)
	if err != nil { // validated before being stored
		panic(err)
	}
	w.ks, w.v2, w.v1 = ks, v2, nil
	if ks.v1.Enabled {
		w.v1, _ = report.NewV1(ks.v1.Secret)
	}
}

func (w *worker) run() error {
	pc := ipv4.NewPacketConn(w.conn)
	for {
		n, err := pc.ReadBatch(w.msgs, 0)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			w.c.m.recvErrors.Inc()
			w.c.limit.log(w.c.log, report.OK, "cannot receive reports", "err", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		w.loadKeys()
		now := w.c.deps.Now().UnixNano()
		for i := range w.msgs[:n] {
			m := &w.msgs[i]
			var src netip.Addr
			if ua, ok := m.Addr.(*net.UDPAddr); ok {
				src, _ = netip.AddrFromSlice(ua.IP)
				src = src.Unmap()
			}
			w.handle(m.Buffers[0][:m.N], src, now)
		}
		w.flush()
	}
}

// flush hands the batch to the sink and publishes the counters.
func (w *worker) flush() {
	m := w.c.m
	if len(w.recs) > 0 {
		if err := w.c.deps.Sink(w.recs); err != nil {
			m.sinkErrors.Inc()
			w.c.limit.log(w.c.log, report.OK, "cannot spool reports", "err", err, "reports", len(w.recs))
		} else {
			m.accepted.Add(float64(len(w.recs)))
		}
		w.recs = w.recs[:0]
	}
	for r, n := range w.rej {
		if n > 0 {
			m.rejected[r].Add(float64(n))
			w.rej[r] = 0
		}
	}
	for v, n := range w.dg {
		if n > 0 {
			m.datagrams[v].Add(float64(n))
			w.dg[v] = 0
		}
	}
}

func (w *worker) reject(r report.Reason, src netip.Addr) {
	w.rej[r]++
	if w.c.limit.allow(r) { // no log arguments built for suppressed messages
		w.c.limit.log(w.c.log, r, "report rejected", "reason", r.String(), "from", src)
	}
}

func (w *worker) stale(t, now int64) bool {
	d := t - now
	return d > int64(w.c.cfg.Window) || d < -int64(w.c.cfg.Window)
}

// handle verifies one datagram and appends its accepted reports to w.recs.
func (w *worker) handle(b []byte, src netip.Addr, now int64) {
	if len(b) > w.c.cfg.MaxDatagram {
		w.dg[2]++
		w.reject(report.Oversized, src)
		return
	}
	if len(b) >= 2 && b[0] == report.Magic0 && b[1] == report.Magic1 { // v2, or a future version
		h, err := w.v2.Verify(b)
		if err == nil {
			w.dg[0]++
			w.handleV2(b, h, src, now)
			return
		}
		if w.v1 == nil || len(b) != report.V1Size {
			w.dg[0]++
			w.reject(report.ReasonOf(err), src)
			return
		}
		// A v1 datagram whose time happens to start like a v2 magic: try v1.
	}
	if w.v1 == nil {
		w.dg[2]++
		w.reject(report.Version, src)
		return
	}
	w.dg[1]++
	h, err := w.v1.Verify(b)
	if err != nil {
		w.reject(report.ReasonOf(err), src)
		return
	}
	if d, win := h.Time-now/1e9, int64(w.c.cfg.Window/time.Second); d > win || d < -win { // seconds: no overflow
		w.reject(report.Stale, src)
		return
	}
	w.recs = append(w.recs, record.Record{})
	r := &w.recs[len(w.recs)-1]
	if err := report.DecodeV1(b, src, r); err != nil {
		w.recs = w.recs[:len(w.recs)-1]
		w.reject(report.ReasonOf(err), src)
	}
}

func (w *worker) handleV2(b []byte, h report.Header, src netip.Addr, now int64) {
	if w.stale(h.Time, now) {
		w.reject(report.Stale, src)
		return
	}
	if !w.c.replay.Accept(h.SenderID, h.Seq, now) {
		w.reject(report.Replay, src)
		return
	}
	it := report.NewReports(b, h, src)
	// Room for every report, so that each is decoded in place without zeroing it first.
	w.recs = slices.Grow(w.recs, min(int(h.Count), len(b)/report.MinReportSize))
	for {
		if len(w.recs) == cap(w.recs) {
			w.recs = append(w.recs, record.Record{})[:len(w.recs)]
		}
		w.recs = w.recs[:len(w.recs)+1]
		r := &w.recs[len(w.recs)-1]
		ok, err := it.Next(r)
		if !ok || err != nil {
			w.recs = w.recs[:len(w.recs)-1]
		}
		if err != nil {
			w.reject(report.ReasonOf(err), src)
		}
		if !ok {
			return
		}
	}
}

// logLimiter logs at most one message per reason every 10 seconds, saying how many it
// suppressed in between.
type logLimiter struct {
	last       [report.NumReasons]atomic.Int64
	suppressed [report.NumReasons]atomic.Int64
}

const logEvery = int64(10 * time.Second)

// allow reports whether a message for reason r would be logged now.
func (l *logLimiter) allow(r report.Reason) bool {
	if time.Now().UnixNano()-l.last[r].Load() >= logEvery {
		return true
	}
	l.suppressed[r].Add(1)
	return false
}

func (l *logLimiter) log(log *slog.Logger, r report.Reason, msg string, args ...any) {
	now := time.Now().UnixNano()
	last := l.last[r].Load()
	if now-last < logEvery || !l.last[r].CompareAndSwap(last, now) {
		l.suppressed[r].Add(1)
		return
	}
	if n := l.suppressed[r].Swap(0); n > 0 {
		args = append(args, "suppressed", n)
	}
	log.Warn(msg, args...)
}
