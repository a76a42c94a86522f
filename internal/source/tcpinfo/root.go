package tcpinfo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
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
	dumpsOverlapped                             atomic.Uint64
	lastDumpNanos                               atomic.Int64
	rcvbuf                                      atomic.Int64
	method                                      atomic.Int32 // the dump method in use: methodNone until Run chose

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
	var destroy *conn
	var dumps []*conn
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
	var iter *sockIter
	if err == nil && s.cfg.Interval > 0 {
		iter, err = s.openIter(nsfd)
	}
	if err == nil && s.cfg.Interval > 0 && iter == nil {
		for i := 0; i < s.partitions() && err == nil; i++ {
			var c *conn
			if c, err = dialDiag(nsfd, recvBufSize); err == nil {
				dumps = append(dumps, c)
			}
		}
		if err != nil {
			for _, c := range dumps {
				c.close()
			}
			if destroy != nil {
				destroy.close()
			}
		}
	}
	if nsfd >= 0 {
		unix.Close(nsfd)
	}
	if err != nil {
		if destroy != nil {
			destroy.close()
		}
		return fmt.Errorf("tcpinfo: %w", err)
	}
	if iter != nil {
		defer iter.close()
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
		"receive_buffer", s.rcvbuf.Load(), "destroy_notifications", destroy != nil,
		"dump_method", methodNames[s.method.Load()], "dump_partitions", len(dumps))
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
	if len(dumps) > 0 || iter != nil {
		wg.Go(func() { s.dumpLoop(ctx, dumps, iter) })
	}
	<-ctx.Done()
	if destroy != nil {
		destroy.close()
	}
	for _, c := range dumps {
		c.close()
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

// partitions is the number of concurrent dumps an interval dump is split into.
func (s *Source) partitions() int {
	if s.cfg.Partitions > 0 {
		return s.cfg.Partitions
	}
	return min(runtime.GOMAXPROCS(0), maxPartitions)
}

// Dump methods in use (Source.method).
const (
	methodNone int32 = iota
	methodNetlink
	methodBPF
)

var methodNames = [...]string{methodNone: "none", methodNetlink: DumpNetlink, methodBPF: DumpBPF}

// openIter loads the BPF socket iterator unless the configuration asks for netlink dumps. When
// the iterator cannot be loaded, it returns the error with dump_method bpf, and nil (netlink
// dumps) with auto, saying why in the log.
func (s *Source) openIter(nsfd int) (*sockIter, error) {
	s.method.Store(methodNetlink)
	if s.cfg.DumpMethod == DumpNetlink {
		return nil, nil
	}
	states := uint32(dumpStates)
	cgroup := s.tr.filter.cgroups != nil
	if cgroup {
		states |= listenStates // the listeners' local ports, for the closed connections
	}
	it, err := loadSockIter(states, s.cfg.Ports, cgroup, nsfd)
	if err != nil {
		if s.cfg.DumpMethod == DumpBPF {
			return nil, err
		}
		s.log.Info("BPF socket iterator unavailable: dumping sockets over netlink sock_diag (slower; "+
			"the iterator needs Linux 5.9+ with BTF and CAP_BPF with CAP_PERFMON, or CAP_SYS_ADMIN)", "error", err)
		return nil, nil
	}
	s.method.Store(methodBPF)
	return it, nil
}

// dumpLoop dumps the established sockets at once and then every interval, with the BPF
// iterator when there is one, else on the netlink sockets.
func (s *Source) dumpLoop(ctx context.Context, conns []*conn, iter *sockIter) {
	d := newDumper(s, conns)
	d.iter = iter
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

// dumper runs the interval dumps: one logical dump is split into partitions (ranges of ports,
// see plan), dumped at once on their own netlink sockets, and accounted as one under the
// tracker lock.
type dumper struct {
	s        *Source
	iter     *sockIter // the BPF iterator; nil: netlink dumps
	parts    []*part   // one per netlink socket, or one without (the iterator's)
	bytecode []byte    // kernel-side local port filter
	noUnspec atomic.Bool
	// overlap receives each partition's datagrams in a goroutine of their own while the
	// partition decodes (see conn.dump): set by runPlan when a core is spare.
	overlap  bool
	prefetch uint64 // what cookieTable.prefetch read, kept

	// During a dump s.mu is held by run; mu serialises the partitions' accounting.
	mu      sync.Mutex
	batch   []record.Record
	now     int64
	n       uint64
	hist    portHist // the last dump's sockets by port: where the next dump is cut
	next    portHist // the current dump's
	lastPl  plan
	cgPorts *portSet // spare listener port set, swapped with the tracker's
}

// part is one partition's netlink socket and buffers.
type part struct {
	d        *dumper
	c        *conn
	seq      uint32
	req      []byte
	bytecode []byte   // the partition's range, then the port filter
	socks    []Socket // decoded, waiting to be accounted
	fn       func([]byte)
	recFn    func([]byte) // handleRec
	err      error
}

// partBatch is the number of sockets a partition decodes before taking the tracker lock to
// account them.
const partBatch = 64

func newDumper(s *Source, conns []*conn) *dumper {
	bc := portBytecode(s.cfg.Ports)
	d := &dumper{s: s, batch: make([]record.Record, 0, batchSize), bytecode: bc}
	for _, c := range conns {
		d.addPart(c)
	}
	if len(conns) == 0 {
		d.addPart(nil) // the BPF iterator's
	}
	return d
}

func (d *dumper) addPart(c *conn) {
	p := &part{d: d, c: c, req: make([]byte, nlmsgHdrLen+inetDiagReqCompatLen+4+16+len(d.bytecode)),
		socks: make([]Socket, 0, partBatch)}
	p.fn, p.recFn = p.handle, p.handleRec
	d.parts = append(d.parts, p)
}

// run performs one dump of both families, cut in as many partitions as the dumper has sockets,
// along the ports the previous dump saw.
func (d *dumper) run() error {
	return d.runPlan(planFor(&d.hist, len(d.parts)))
}

// runPlan performs one dump split as pl says, all of it under the tracker lock, so that no
// destroy notification is accounted between the kernel's snapshot of a socket and its delta.
func (d *dumper) runPlan(pl plan) error {
	start := time.Now()
	d.now = start.UnixNano()
	d.n = 0
	d.lastPl = pl
	d.overlap = pl.partitions() < runtime.GOMAXPROCS(0)
	clear(d.next.local[:])
	clear(d.next.remote[:])
	d.next.total = 0
	s := d.s
	s.mu.Lock()
	var err error
	if d.iter != nil {
		s.tr.beginDump()
		err = d.walkIter()
		s.tr.endDump(time.Now().UnixNano(), err == nil)
	} else if s.tr.filter.cgroups != nil {
		err = d.listeners()
	}
	if d.iter == nil && (err == nil || errors.Is(err, errDumpInterrupted)) {
		s.tr.beginDump()
		n := pl.partitions()
		if n == 1 {
			err = joinDumpErrors(err, d.parts[0].dump(pl, 0))
		} else {
			var wg sync.WaitGroup
			for i, p := range d.parts[:n] {
				wg.Go(func() { p.err = p.dump(pl, i) })
			}
			wg.Wait()
			for _, p := range d.parts[:n] {
				err = joinDumpErrors(err, p.err)
			}
		}
		s.tr.endDump(time.Now().UnixNano(), err == nil)
	}
	if err == nil || errors.Is(err, errDumpInterrupted) {
		d.hist, d.next = d.next, d.hist
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

// joinDumpErrors keeps the first failure; an interruption is kept unless a failure follows.
func joinDumpErrors(err, next error) error {
	if err == nil || (errors.Is(err, errDumpInterrupted) && next != nil) {
		return next
	}
	return err
}

// dump dumps partition i of pl on p's socket and accounts what it saw.
func (p *part) dump(pl plan, i int) error {
	bc := p.d.bytecode
	if pl.partitions() > 1 {
		lo, hi := pl.bounds(i)
		p.bytecode = rangeBytecode(p.bytecode, pl.local, lo, hi, bc)
		bc = p.bytecode
	}
	err := p.d.dumpOn(p, dumpStates, bc, p.fn)
	p.account()
	return err
}

// dumpOn dumps the TCP sockets in states that bytecode accepts on p's socket, both families in
// one walk of the kernel's table (afUnspec) unless the kernel refused that once; then one dump
// per family.
func (d *dumper) dumpOn(p *part, states uint32, bytecode []byte, fn func([]byte)) error {
	if !d.noUnspec.Load() {
		p.seq++
		err := p.c.dump(afUnspec, p.seq, states, p.req, bytecode, d.overlap, fn)
		var errno unix.Errno
		if !errors.As(err, &errno) || (errno != unix.EINVAL && errno != unix.ENOENT && errno != unix.EOPNOTSUPP) {
			return err
		}
		if !d.noUnspec.Swap(true) {
			d.s.log.Info("the kernel refused a TCPDIAG_GETSOCK dump of both families: dumping one family at a time", "error", err)
		}
	}
	var err error
	for _, fam := range []uint8{afInet, afInet6} {
		p.seq++
		if err = joinDumpErrors(err, p.c.dump(fam, p.seq, states, p.req, bytecode, d.overlap, fn)); err != nil && !errors.Is(err, errDumpInterrupted) {
			return err
		}
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
	err := d.dumpOn(d.parts[0], listenStates, d.bytecode, fn)
	if err != nil && !errors.Is(err, errDumpInterrupted) {
		return err
	}
	d.cgPorts, d.s.tr.cgPorts = d.s.tr.cgPorts, d.cgPorts
	return err
}

// walkIter runs one dump with the BPF iterator: a single walk of the namespace's TCP sockets
// (both families; and the listeners, for the cgroup filter), accounted by the one part.
func (d *dumper) walkIter() error {
	cg := d.s.tr.filter.cgroups != nil
	if cg {
		if d.cgPorts == nil {
			d.cgPorts = new(portSet)
		}
		clear(d.cgPorts[:])
	}
	p := d.parts[0]
	piped := d.iter.piped
	err := d.iter.walk(p.recFn)
	p.account()
	d.s.dumpsOverlapped.Add(d.iter.piped - piped)
	if err == nil && cg {
		d.cgPorts, d.s.tr.cgPorts = d.s.tr.cgPorts, d.cgPorts
	}
	return err
}

// handleRec decodes one record of the BPF iterator; every partBatch of them are accounted
// together. A listener (dumped for the cgroup filter only) notes its port when it is in the
// configured cgroups, as listeners does.
func (p *part) handleRec(rec []byte) {
	n := len(p.socks)
	p.socks = p.socks[:n+1]
	sock := &p.socks[n]
	if err := decodeRec(rec, sock, p.d.iter.cgroup); err != nil {
		p.socks = p.socks[:n]
		p.d.s.decodeErrors.Add(1)
		p.d.s.logs.warn(p.d.s.log, "cannot decode BPF socket iterator record", err)
		return
	}
	if sock.State == stateListen {
		p.socks = p.socks[:n]
		if p.d.s.tr.filter.inCgroups(sock.CgroupID) {
			p.d.cgPorts.add(sock.LocalPort)
		}
		return
	}
	if len(p.socks) == cap(p.socks) {
		p.account()
	}
}

// handle decodes one dumped socket; every partBatch of them are accounted together.
func (p *part) handle(msg []byte) {
	n := len(p.socks)
	p.socks = p.socks[:n+1]
	if err := decodeSocket(msg, &p.socks[n]); err != nil {
		p.socks = p.socks[:n]
		if err == errNoTCPInfo {
			return // a TIME_WAIT minisocket reported in its FIN_WAIT2 substate: already destroyed
		}
		p.d.s.decodeErrors.Add(1)
		p.d.s.logs.warn(p.d.s.log, "cannot decode sock_diag dump message", err)
		return
	}
	if len(p.socks) == cap(p.socks) {
		p.account()
	}
}

// account hands the partition's decoded sockets to the tracker (s.mu is held by run).
func (p *part) account() {
	if len(p.socks) == 0 {
		return
	}
	d := p.d
	d.mu.Lock()
	d.prefetch += d.s.tr.socks.prefetch(p.socks)
	for i := range p.socks {
		sock := &p.socks[i]
		d.n++
		d.next.add(sock.LocalPort, sock.RemotePort)
		d.batch = d.batch[:len(d.batch)+1]
		if !d.s.tr.dumped(sock, d.now, &d.batch[len(d.batch)-1]) {
			d.batch = d.batch[:len(d.batch)-1]
		}
		if len(d.batch) == cap(d.batch) {
			d.batch = d.s.flush(d.batch)
		}
	}
	d.mu.Unlock()
	p.socks = p.socks[:0]
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
