// Package conntrack accounts Linux conntrack flows: per-connection packet and byte counters
// from the kernel, accounted to the side that opened the connection and summed per interval
// and (protocol, source group, destination group, port), as the saarCTF conntrack
// accounting tool did — for IPv4 and IPv6, and without losing traffic when events are lost.
//
// Events (NEW, UPDATE, DESTROY) arrive on one netlink socket and the table is dumped every
// interval on a second one. Only counter deltas are accounted, so a flow seen by events and
// dumps is never counted twice. DESTROY events can be made reliable (ReliableEvents,
// NETLINK_BROADCAST_ERROR) at the price of the host's packets waiting for the agent; a flow
// whose NEW was lost is counted from zero when the kernel's start timestamp says it started
// after the agent, and from its first sight otherwise.
package conntrack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/netledger/netledger/internal/export/ctcsv"
	"github.com/netledger/netledger/internal/record"
)

// Deps are the agent's outputs: Rows receives every interval's rows (the CSV writer), Sink
// the same as records (netledger serve's spool). Either may be nil.
type Deps struct {
	Rows       func(t time.Time, rows []ctcsv.Row) error
	Sink       func([]record.Record) error
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// Agent is the conntrack accounting component. New is inert; Run does the work.
type Agent struct {
	cfg     Config
	deps    Deps
	log     *slog.Logger
	metrics *metrics

	mu    sync.Mutex
	table *Table

	overruns atomic.Uint64
	flushReq chan chan error
	ready    chan struct{}

	portsStat    os.FileInfo
	lastFromZero uint64
	lastReplaced uint64
	rows         []ctcsv.Row
	recs         []record.Record
}

// New validates the configuration and loads the ports file; it opens nothing.
func New(cfg Config, deps Deps) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	a := &Agent{
		cfg: cfg, deps: deps, log: deps.Logger, metrics: newMetrics(deps.Registerer),
		flushReq: make(chan chan error),
		ready:    make(chan struct{}),
	}
	a.table = NewTable(cfg, 0)
	if cfg.Ports != "" {
		p, err := LoadPorts(cfg.Ports)
		if err != nil {
			return nil, err
		}
		a.table.SetPorts(p)
		a.portsStat, _ = os.Stat(cfg.Ports)
	}
	return a, nil
}

// Overruns returns the event socket overruns seen so far.
func (a *Agent) Overruns() uint64 { return a.overruns.Load() }

// Ready is closed once the agent listens to events and has taken its first dump.
func (a *Agent) Ready() <-chan struct{} { return a.ready }

// Flush dumps the table now and emits the rows accounted so far (timestamped now), as at
// the end of an interval. Tests and shutdown use it.
func (a *Agent) Flush(ctx context.Context) error {
	done := make(chan error, 1)
	select {
	case a.flushReq <- done:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stats returns a copy of the table's counters.
func (a *Agent) Stats() Stats {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.table.Stats
}

func (a *Agent) enableKernel() error {
	return inNetNS(a.cfg.NetNS, func() error {
		for _, s := range []struct{ path, what string }{
			{sysctlAcct, "conntrack accounting (packet and byte counters)"},
			{sysctlTimestamp, "conntrack timestamps (flow start and stop)"},
		} {
			changed, err := enableSysctl(s.path)
			switch {
			case errors.Is(err, ErrNoKernel):
				return fmt.Errorf("cannot find %s: %w", s.path, ErrNoKernel)
			case err != nil:
				a.log.Warn("cannot check or enable "+s.what+"; run: echo 1 > "+s.path, "error", err)
			case changed:
				a.log.Info("enabled "+s.what+"; connections already open have none", "sysctl", s.path)
			default:
				a.log.Info(s.what+" already enabled", "sysctl", s.path)
			}
		}
		return nil
	})
}

// Run accounts until ctx is done, then emits a last interval.
func (a *Agent) Run(ctx context.Context) error {
	if err := a.enableKernel(); err != nil {
		return err
	}
	start := time.Now().UnixNano()
	ev, err := openEvents(a.cfg.NetNS, a.cfg.ReceiveBuffer, a.cfg.ReliableEvents)
	if err != nil {
		return err
	}
	defer ev.close()
	dump, err := openDump(a.cfg.NetNS)
	if err != nil {
		return err
	}
	defer dump.close()
	a.mu.Lock()
	a.table.agentStart = start
	a.mu.Unlock()

	evDone := make(chan error, 1)
	go func() { evDone <- a.readEvents(ev) }()

	var f Flow
	if err := a.dump(dump, &f); err != nil {
		return err
	}
	a.log.Info("conntrack accounting running", "interval", a.cfg.Interval, "netns", a.cfg.NetNS,
		"reliable_events", a.cfg.ReliableEvents)
	close(a.ready)

	tick := time.NewTimer(time.Until(nextTick(time.Now(), a.cfg.Interval)))
	defer tick.Stop()
	poll := time.NewTicker(time.Second)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			err := a.dumpAndFlush(dump, &f, time.Now())
			return err
		case err := <-evDone:
			return fmt.Errorf("conntrack event socket: %w", err)
		case done := <-a.flushReq:
			done <- a.dumpAndFlush(dump, &f, time.Now())
		case now := <-tick.C:
			ts := nextTick(now.Add(-a.cfg.Interval/2), a.cfg.Interval)
			if err := a.dumpAndFlush(dump, &f, ts); err != nil {
				a.log.Error("cannot account interval", "error", err)
			}
			tick.Reset(time.Until(nextTick(time.Now(), a.cfg.Interval)))
		case <-poll.C:
			a.checkPorts()
		}
	}
}

// nextTick returns the next multiple of interval after t (wall clock aligned).
func nextTick(t time.Time, interval time.Duration) time.Time {
	return t.Truncate(interval).Add(interval)
}

func (a *Agent) readEvents(s *socket) error {
	var f Flow
	for {
		b, err := s.recv()
		if err != nil {
			if errors.Is(err, unix.ENOBUFS) {
				if a.overruns.Add(1) == 1 {
					a.log.Warn("conntrack event socket overrun; lost events are recovered from dumps (consider a larger receive_buffer)",
						"reliable_events", a.cfg.ReliableEvents)
				}
				a.metrics.overruns.Inc()
				continue
			}
			if errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrClosed) {
				return nil
			}
			return err
		}
		now := time.Now().UnixNano()
		a.mu.Lock()
		for len(b) >= nlmsgHdrLen {
			l, err := DecodeMessage(b, &f)
			if l <= 0 {
				a.metrics.decodeErrors.Inc()
				break
			}
			if err == nil {
				a.table.Handle(&f, now)
				a.metrics.events.Inc()
			} else if !errors.Is(err, ErrNotCT) {
				a.metrics.decodeErrors.Inc()
			}
			al := (l + 3) &^ 3
			if al > len(b) {
				al = len(b)
			}
			b = b[al:]
		}
		a.mu.Unlock()
	}
}

// dump takes one dump of the table into the accounting.
func (a *Agent) dump(s *socket, f *Flow) error {
	a.mu.Lock()
	a.table.BeginDump()
	a.mu.Unlock()
	n, err := s.dump(f, func(f *Flow) {
		now := time.Now().UnixNano()
		a.mu.Lock()
		a.table.Handle(f, now)
		a.mu.Unlock()
	})
	a.metrics.dumped.Add(float64(n))
	if err != nil {
		a.metrics.dumpErrors.Inc()
		return err
	}
	a.mu.Lock()
	before := a.table.Stats.Stale
	a.table.EndDump()
	a.metrics.stale.Add(float64(a.table.Stats.Stale - before))
	a.metrics.flows.Set(float64(a.table.Len()))
	a.mu.Unlock()
	a.metrics.dumps.Inc()
	return nil
}

func (a *Agent) dumpAndFlush(s *socket, f *Flow, ts time.Time) error {
	derr := a.dump(s, f)
	a.mu.Lock()
	fz, rp := a.table.Stats.FromZero, a.table.Stats.Replaced
	a.rows = a.table.Flush(ts.UnixNano(), a.rows[:0])
	a.mu.Unlock()
	a.metrics.fromZero.Add(float64(fz - a.lastFromZero))
	a.metrics.replaced.Add(float64(rp - a.lastReplaced))
	a.lastFromZero, a.lastReplaced = fz, rp
	err := a.emit(ts, a.rows)
	return errors.Join(derr, err)
}

func (a *Agent) emit(ts time.Time, rows []ctcsv.Row) error {
	a.metrics.rows.Add(float64(len(rows)))
	var errs []error
	if a.deps.Rows != nil {
		if err := a.deps.Rows(ts, rows); err != nil {
			a.metrics.outputErrors.Add(float64(len(rows)))
			errs = append(errs, err)
		}
	}
	if a.deps.Sink != nil && len(rows) > 0 {
		a.recs = a.recs[:0]
		for i := range rows {
			a.recs = append(a.recs, RowRecord(&rows[i]))
		}
		if err := a.deps.Sink(a.recs); err != nil {
			a.metrics.outputErrors.Add(float64(len(rows)))
			errs = append(errs, fmt.Errorf("cannot hand conntrack records to the sink: %w", err))
		}
	}
	return errors.Join(errs...)
}

// RowRecord turns an interval row into a netledger record: the client is the side that
// opened the connections (the source group), the server the destination group; BytesIn is
// the original direction, BytesOut the reply.
func RowRecord(r *ctcsv.Row) record.Record {
	rec := record.Record{
		Time:        r.Time,
		Client:      record.Unmap(r.Src),
		Server:      record.Unmap(r.Dst),
		Proto:       r.Proto,
		Source:      record.SourceConntrack,
		Requests:    uint32(r.Connections),
		BytesIn:     r.SrcBytes,
		BytesOut:    r.DstBytes,
		PacketsIn:   r.SrcPackets,
		PacketsOut:  r.DstPackets,
		Duration:    r.ConnTimeMs * 1000,
		ConnsClosed: uint32(r.Connections),
		ConnsOpen:   uint32(r.Open),
	}
	if r.Port >= 0 {
		rec.ServerPort = uint16(r.Port)
	}
	return rec
}

func (a *Agent) checkPorts() {
	if a.cfg.Ports == "" {
		return
	}
	st, err := os.Stat(a.cfg.Ports)
	if err != nil || (a.portsStat != nil && st.ModTime().Equal(a.portsStat.ModTime()) && st.Size() == a.portsStat.Size() && os.SameFile(st, a.portsStat)) {
		return
	}
	a.portsStat = st
	p, err := LoadPorts(a.cfg.Ports)
	if err != nil {
		a.metrics.portReloads.WithLabelValues("error").Inc()
		a.log.Error("cannot reload ports file, keeping the previous one", "error", err)
		return
	}
	a.mu.Lock()
	a.table.SetPorts(p)
	a.mu.Unlock()
	a.metrics.portReloads.WithLabelValues("ok").Inc()
	a.log.Info("reloaded ports file", "path", a.cfg.Ports, "entries", p.Len())
}
