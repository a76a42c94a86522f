package tcpinfo

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

	"golang.org/x/sys/unix"

	"github.com/netledger/netledger/internal/record"
)

// Deps are the source's dependencies.
type Deps struct {
	// Sink receives batches of records; the slice is reused after Sink returns. The daemon
	// passes spool.Append, the agent a function handing each record to the report client.
	Sink func([]record.Record) error
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

const (
	batchSize   = 256
	recvBufSize = 64 << 10 // a datagram: one destroy notification, or ≤ 32 KiB of dump
	dumpTimeout = 30 * time.Second
)

// Source is the kernel TCP source. It is inert until Run.
type Source struct {
	cfg  Config
	deps Deps
	log  *slog.Logger

	mu sync.Mutex // serialises the tracker: a whole dump runs under it
	tr *tracker

	notifications, lost, overruns, records      atomic.Uint64
	decodeErrors, sinkErrors, dumps, dumpErrors atomic.Uint64
	dumpSockets                                 atomic.Uint64
	lastDumpNanos                               atomic.Int64
	rcvbuf                                      atomic.Int64

	destroyConn atomic.Pointer[conn] // for the drop counter
	started     chan struct{}        // closed once the sockets are open (tests)
	logs        rateLog
}

// New validates the configuration and builds an inert source.
func New(cfg Config, deps Deps) (*Source, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Sink == nil {
		return nil, errors.New("tcpinfo source needs a sink")
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	f := newFilter(cfg)
	if cfg.Cgroup != "" {
		ids, err := cgroupIDs(cfg.Cgroup)
		if err != nil {
			return nil, err
		}
		f.cgroups = ids
	}
	return &Source{
		cfg:     cfg,
		deps:    deps,
		log:     deps.Logger.With("component", "tcpinfo"),
		tr:      newTracker(f),
		started: make(chan struct{}),
	}, nil
}

// Run subscribes to destroy notifications, dumps established sockets every interval and sends
// records to the sink until ctx is cancelled. Errors opening the sockets are returned at once;
// later errors are counted and logged.
func (s *Source) Run(ctx context.Context) error {
	nsfd, err := openNetNS(s.cfg.NetNS)
	if err != nil {
		return err
	}
	var destroy, dump *conn
	if !s.cfg.DumpOnly {
		destroy, err = dialDiag(nsfd, recvBufSize)
		if err == nil {
			var granted int
			granted, err = destroy.subscribe(s.cfg.ReceiveBuffer)
			s.rcvbuf.Store(int64(granted))
			if err != nil {
				destroy.close()
			}
		}
	}
	if err == nil && s.cfg.Interval > 0 {
		dump, err = dialDiag(nsfd, recvBufSize)
		if err != nil && destroy != nil {
			destroy.close()
		}
	}
	if nsfd >= 0 {
		unix.Close(nsfd)
	}
	if err != nil {
		return fmt.Errorf("tcpinfo: %w", err)
	}
	if destroy != nil {
		s.destroyConn.Store(destroy)
		if granted := int(s.rcvbuf.Load()); granted < s.cfg.ReceiveBuffer {
			s.log.Warn("netlink receive buffer smaller than configured: without CAP_NET_ADMIN it is capped by "+
				"net.core.rmem_max (raise it with sysctl, or run as root); bursts of closing connections may "+
				"overrun it, see netledger_tcpinfo_notifications_lost_total",
				"configured", s.cfg.ReceiveBuffer, "granted", granted)
		}
	}
	s.log.Info("tcpinfo source started", "netns", s.cfg.NetNS, "interval", s.cfg.Interval,
		"receive_buffer", s.rcvbuf.Load(), "destroy_notifications", destroy != nil)
	close(s.started)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 2)
	if destroy != nil {
		wg.Go(func() {
			if err := s.readDestroys(ctx, destroy); err != nil {
				errc <- err
				cancel()
			}
		})
	}
	if dump != nil {
		wg.Go(func() { s.dumpLoop(ctx, dump) })
	}
	<-ctx.Done()
	if destroy != nil {
		destroy.close()
	}
	if dump != nil {
		dump.close()
	}
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}

// readDestroys receives destroy notifications until the socket is closed, handing records
// to the sink in batches of whatever arrived together (at most batchSize).
func (s *Source) readDestroys(ctx context.Context, c *conn) error {
	batch := make([]record.Record, 0, batchSize)
	var sock Socket
	for {
		n, err := c.read(len(batch) == 0)
		switch {
		case err == nil:
			now := time.Now().UnixNano()
			s.mu.Lock()
			batch = s.handleDestroys(c.buf[:n], now, &sock, batch)
			s.mu.Unlock()
			if len(batch) < cap(batch)-8 {
				continue
			}
		case err == unix.EAGAIN:
		case err == unix.ENOBUFS:
			s.overrun(c)
			continue
		case ctx.Err() != nil || errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrClosed):
			s.flush(batch)
			return nil
		default:
			return fmt.Errorf("tcpinfo: cannot receive destroy notifications: %w", err)
		}
		batch = s.flush(batch)
	}
}

// handleDestroys decodes the notifications of one datagram and appends their records to batch.
// The caller holds s.mu.
func (s *Source) handleDestroys(b []byte, now int64, sock *Socket, batch []record.Record) []record.Record {
	for len(b) > 0 {
		msg, typ, _, _, rest, err := nextMessage(b)
		if err != nil {
			s.decodeErrors.Add(1)
			s.logs.warn(s.log, "cannot decode destroy notification", err)
			return batch
		}
		b = rest
		if typ != sockDiagByFam {
			continue
		}
		s.notifications.Add(1)
		if err := decodeSocket(msg, sock); err != nil {
			s.decodeErrors.Add(1)
			s.logs.warn(s.log, "cannot decode destroy notification", err)
			continue
		}
		batch = batch[:len(batch)+1]
		if !s.tr.destroy(sock, now, &batch[len(batch)-1]) {
			batch = batch[:len(batch)-1]
		}
	}
	return batch
}

// overrun counts a receive-buffer overrun and the notifications it lost.
func (s *Source) overrun(c *conn) {
	s.overruns.Add(1)
	s.refreshLost()
	s.logs.warn(s.log, "destroy notifications lost: netlink receive buffer overrun (raise tcpinfo receive_buffer)",
		unix.ENOBUFS, "lost_total", s.lost.Load())
}

// refreshLost reads the kernel's drop counter of the destroy-notification socket: it counts
// every notification lost, also those dropped after the one ENOBUFS a congestion episode gives.
func (s *Source) refreshLost() {
	c := s.destroyConn.Load()
	if c == nil {
		return
	}
	d, err := c.drops()
	for err == nil {
		p := s.lost.Load()
		if d <= p || s.lost.CompareAndSwap(p, d) {
			break
		}
	}
}

// flush hands the batch to the sink and returns it emptied.
func (s *Source) flush(batch []record.Record) []record.Record {
	if len(batch) == 0 {
		return batch
	}
	if err := s.deps.Sink(batch); err != nil {
		s.sinkErrors.Add(1)
		s.logs.warn(s.log, "cannot hand tcpinfo records on", err, "records", len(batch))
	} else {
		s.records.Add(uint64(len(batch)))
	}
	return batch[:0]
}

// dumpLoop dumps the established sockets at once and then every interval.
func (s *Source) dumpLoop(ctx context.Context, c *conn) {
	d := newDumper(s, c)
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		if err := d.run(); err != nil && ctx.Err() == nil {
			s.dumpErrors.Add(1)
			s.logs.warn(s.log, "sock_diag dump failed", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

type dumper struct {
	s        *Source
	c        *conn
	seq      uint32
	req      []byte
	bytecode []byte // kernel-side local port filter
	batch    []record.Record
	sock     Socket
	now      int64
	n        uint64
	fn       func([]byte)
	cgPorts  *portSet // spare listener port set, swapped with the tracker's
}

func newDumper(s *Source, c *conn) *dumper {
	bc := portBytecode(s.cfg.Ports)
	d := &dumper{s: s, c: c, batch: make([]record.Record, 0, batchSize), bytecode: bc,
		req: make([]byte, nlmsgHdrLen+inetDiagReqLen+4+len(bc))}
	d.fn = d.handle
	return d
}

// run performs one dump of both families under the tracker lock, so that no destroy
// notification is accounted between the kernel's snapshot of a socket and its delta.
func (d *dumper) run() error {
	start := time.Now()
	d.now = start.UnixNano()
	d.n = 0
	s := d.s
	s.mu.Lock()
	var err error
	if s.tr.filter.cgroups != nil {
		err = d.listeners()
	}
	s.tr.beginDump()
	for _, fam := range []uint8{afInet, afInet6} {
		if err != nil && !errors.Is(err, errDumpInterrupted) {
			break
		}
		d.seq++
		err = d.c.dump(fam, d.seq, dumpStates, d.req, d.bytecode, dumpTimeout, d.fn)
	}
	if err == nil {
		s.tr.endDump()
	}
	s.mu.Unlock()
	d.batch = s.flush(d.batch)
	s.dumps.Add(1)
	s.dumpSockets.Add(d.n)
	s.refreshLost()
	s.lastDumpNanos.Store(int64(time.Since(start)))
	if errors.Is(err, errDumpInterrupted) {
		return nil
	}
	return err
}

// listeners dumps the listening sockets and notes the local ports of those created in the
// configured cgroups: a destroy notification carries no cgroup id, so a closed connection is
// matched by the cgroup of the listener that accepted it (an accepted socket inherits its
// listener's cgroup). s.mu is held.
func (d *dumper) listeners() error {
	if d.cgPorts == nil {
		d.cgPorts = new(portSet)
	}
	clear(d.cgPorts[:])
	var sock Socket
	fn := func(msg []byte) {
		if err := decodeSocket(msg, &sock); err != nil && err != errNoTCPInfo {
			return
		}
		if sock.HaveCgroup && d.s.tr.filter.inCgroups(sock.CgroupID) {
			d.cgPorts.add(sock.LocalPort)
		}
	}
	var err error
	for _, fam := range []uint8{afInet, afInet6} {
		d.seq++
		if err = d.c.dump(fam, d.seq, listenStates, d.req, d.bytecode, dumpTimeout, fn); err != nil && !errors.Is(err, errDumpInterrupted) {
			return err
		}
	}
	d.cgPorts, d.s.tr.cgPorts = d.s.tr.cgPorts, d.cgPorts
	return err
}

// handle accounts one dumped socket; s.mu is held.
func (d *dumper) handle(msg []byte) {
	if err := decodeSocket(msg, &d.sock); err != nil {
		if err == errNoTCPInfo {
			return // a TIME_WAIT minisocket reported in its FIN_WAIT2 substate: already destroyed
		}
		d.s.decodeErrors.Add(1)
		d.s.logs.warn(d.s.log, "cannot decode sock_diag dump message", err)
		return
	}
	d.n++
	d.batch = d.batch[:len(d.batch)+1]
	if !d.s.tr.dumped(&d.sock, d.now, &d.batch[len(d.batch)-1]) {
		d.batch = d.batch[:len(d.batch)-1]
	}
	if len(d.batch) == cap(d.batch) {
		d.batch = d.s.flush(d.batch)
	}
}

// rateLog logs a warning at most once per 10 seconds, counting what it suppressed.
type rateLog struct {
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

func (r *rateLog) warn(log *slog.Logger, msg string, err error, args ...any) {
	r.mu.Lock()
	now := time.Now()
	if now.Sub(r.last) < 10*time.Second {
		r.suppressed++
		r.mu.Unlock()
		return
	}
	n := r.suppressed
	r.last, r.suppressed = now, 0
	r.mu.Unlock()
	log.Warn(msg, append(args, "error", err, "suppressed", n)...)
}
