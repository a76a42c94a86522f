// Package pipeline is the accounting consumer of the spool: it reads records from the
// position committed in the store, enriches them (router, route, AS path, country), sums them
// into the views' rows per interval, and commits the rows together with the spool position
// after them, in one store transaction, every commit interval and at shutdown.
//
// Exactly once: the rows of a commit are exactly the records between the previous committed
// position and the new one — rows of intervals still open included (the store adds rows with
// equal keys), so the stored totals and the position always agree. A commit runs on a goroutine
// of its own while the accounting goroutine goes on adding batches to the views: one commit at
// a time, in spool order — a commit that falls due while one is in flight is handed over once
// that one has landed. A failed commit is retried with the same batch; meanwhile the accounting
// goes on until the next commit is due, then waits, and the reading stops once every batch is
// full (the backlog stays in the spool, held from retention). A commit abandoned at shutdown (still failing) has its rows
// committed with the final one, whose position covers both. After a crash, the records after
// the committed position are read again and counted for the first time.
//
// The work is shared so that every core is used and records never cross cores: the reading
// goroutine reads batches of whole spool frames (checked, not decoded: about 37 bytes a record),
// and each of the workers, one per core, decodes the batches it takes, enriches their records
// (with a client cache of its own) and adds them to an aggregator of its own, a small block at a
// time so that the records stay in its core's cache. The coordinating goroutine hands the
// batches from the reader to the workers and back, and commits: at a commit it stops handing
// out batches until the workers are idle, merges their aggregators into the first one and
// flushes that. Batches go one way, through channels, and come back empty through another: at
// most len(batches) batches are read and not yet accounted, and the position committed is always
// the position after the last batch accounted, never the reader's.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/netledger/netledger/internal/aggregate"
	"github.com/netledger/netledger/internal/enrich"
	"github.com/netledger/netledger/internal/record"
	"github.com/netledger/netledger/internal/spool"
	"github.com/netledger/netledger/internal/store"
)

// Consumer is the name the pipeline's spool position is saved under.
const Consumer = "accounting"

// readBatch is the most records a batch holds: whole spool frames (of at most
// spool.MaxFrameRecords records each) read at once.
const readBatch = 4 * spool.MaxFrameRecords

// readAhead is the number of batches in flight besides one per worker: enough for the reader to
// keep going while the workers account, few enough that a stalled commit holds little memory
// (about 150 kB a batch).
const readAhead = 6

// decodeChunk is the number of records a worker decodes, enriches and adds at once: its records
// (about 180 kB) stay in its core's cache from decoding to adding.
const decodeChunk = 1024

// batch is a block of spool frames on its way from the reading goroutine to a worker and back.
type batch struct {
	frames spool.Frames
	pos    spool.Position // the position after the frames
	// err stopped reading after the frames
	err error
	// set by the worker: the records accounted, and of them those without a route and those
	// without a router
	accounted, unrouted, noRouter uint64
}

// worker is the state of one worker goroutine: its own client cache and aggregator, and the
// buffers it decodes into.
type worker struct {
	agg   *aggregate.Aggregator
	cache *enrich.Cache
	recs  []record.Record
	enr   []enrich.Enriched
}

// Deps are what the pipeline reads from and writes to.
type Deps struct {
	Spool    *spool.Spool
	Store    store.Store
	Enricher *enrich.Enricher
	// Ready, when not nil, is closed once the routing tables are loaded: the pipeline waits
	// for it before accounting anything, so that a backlog is not accounted to empty tables.
	Ready <-chan struct{}
	// ClassName names traffic classes (nil: numbers).
	ClassName func(uint16) string
	// Registerer receives the pipeline's metrics (nil: none).
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// Pipeline is the accounting consumer. New builds it inert; Run runs it.
type Pipeline struct {
	cfg  Config
	deps Deps
	log  *slog.Logger

	batches []*batch       // readAhead + one per worker, reused
	workers []*worker      // each used by its worker goroutine, and by the coordinator while all are idle
	pos     spool.Position // after the last batch handed to a worker
	records uint64         // records accounted since the pipeline started

	// owned by the coordinating goroutine
	rows     []record.Row   // the next commit's rows buffer: it holds the rows of an abandoned commit
	spare    []record.Row   // the other rows buffer, when no commit holds it
	inflight *commitJob     // the commit under way, nil when none
	handed   spool.Position // the position of the last commit handed over (landed or in flight)

	committed atomic.Pointer[spool.Position]
	m         metrics

	// counted since the last commit handed over, added to the counters when it lands
	unrouted, noRouter uint64
	// used by the committing goroutine (one commit at a time)
	recordsCommitted uint64
	lastErrLog       time.Time
}

// commitJob is a commit handed from the accounting goroutine to a committing one: the rows of
// the records accounted after the previous commit's position, up to pos.
type commitJob struct {
	rows               []record.Row
	pos                spool.Position
	records            uint64 // records accounted since the pipeline started, at the flush
	unrouted, noRouter uint64
	err                error         // set when the commit was abandoned (ctx done)
	done               chan struct{} // closed when the commit has landed or been abandoned
	failed             atomic.Bool   // an attempt failed: the commit is being retried
}

// over reports whether the commit has landed or been abandoned.
func (j *commitJob) over() bool {
	select {
	case <-j.done:
		return true
	default:
		return false
	}
}

type metrics struct {
	records, rows, commits, commitErrors, unrouted, noRouter prometheus.Counter
	batches, readerStalls, accountingStalls                  prometheus.Counter
	commitSeconds                                            prometheus.Histogram
}

// New builds the pipeline without starting it.
func New(cfg Config, deps Deps) (*Pipeline, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Spool == nil || deps.Store == nil || deps.Enricher == nil {
		return nil, errors.New("accounting pipeline needs a spool, a store and an enricher")
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	var names []string
	for _, r := range deps.Enricher.Routers() {
		names = append(names, r.Name)
	}
	p := &Pipeline{cfg: cfg, deps: deps, log: deps.Logger}
	for range cfg.workers() {
		agg, err := aggregate.New(aggregate.Config{
			Views:     cfg.EffectiveViews(),
			Interval:  cfg.Interval,
			Routers:   names,
			ClassName: deps.ClassName,
		})
		if err != nil {
			return nil, err
		}
		p.workers = append(p.workers, &worker{agg: agg, cache: deps.Enricher.NewCache(0),
			recs: make([]record.Record, decodeChunk), enr: make([]enrich.Enriched, decodeChunk)})
	}
	for range readAhead + len(p.workers) {
		p.batches = append(p.batches, &batch{})
	}
	p.m = metrics{
		records: prometheus.NewCounter(prometheus.CounterOpts{Name: "netledger_accounting_records_total",
			Help: "Records accounted and committed to the store."}),
		rows: prometheus.NewCounter(prometheus.CounterOpts{Name: "netledger_accounting_rows_total",
			Help: "View rows committed to the store (base resolution)."}),
		commits: prometheus.NewCounter(prometheus.CounterOpts{Name: "netledger_accounting_commits_total",
			Help: "Successful commits of rows and spool position."}),
		commitErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "netledger_accounting_commit_errors_total",
			Help: "Failed commits (retried with the same batch)."}),
		unrouted: prometheus.NewCounter(prometheus.CounterOpts{Name: "netledger_accounting_unrouted_records_total",
			Help: "Committed records whose client has no route in its router's table (accounted to the unrouted bucket)."}),
		noRouter: prometheus.NewCounter(prometheus.CounterOpts{Name: "netledger_accounting_no_router_records_total",
			Help: "Committed records whose server address no configured router serves (accounted to router \"unknown\")."}),
		batches: prometheus.NewCounter(prometheus.CounterOpts{Name: "netledger_accounting_batches_total",
			Help: "Batches of records read from the spool (accounted or not)."}),
		readerStalls: prometheus.NewCounter(prometheus.CounterOpts{Name: "netledger_accounting_reader_stalls_total",
			Help: "Times the reading goroutine waited for a free batch (the workers or commits are the bottleneck)."}),
		accountingStalls: prometheus.NewCounter(prometheus.CounterOpts{Name: "netledger_accounting_accounting_stalls_total",
			Help: "Times an accounting worker waited for a batch (reading is the bottleneck, or a commit is waiting for the workers to finish)."}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "netledger_accounting_commit_seconds",
			Help: "Time of successful commits.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 8)}),
	}
	if deps.Registerer != nil {
		lag := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "netledger_accounting_lag_bytes",
			Help: "Synced spool bytes after the committed accounting position."}, p.lag)
		hits := prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "netledger_accounting_enrich_cache_hits_total",
			Help: "Records enriched from the client caches (read, committed or not)."}, func() float64 { return float64(p.cacheStats().Hits) })
		misses := prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "netledger_accounting_enrich_cache_misses_total",
			Help: "Records whose client was looked up in the routing and geo tables (read, committed or not)."}, func() float64 { return float64(p.cacheStats().Misses) })
		for _, c := range []prometheus.Collector{p.m.records, p.m.rows, p.m.commits, p.m.commitErrors,
			p.m.unrouted, p.m.noRouter, p.m.batches, p.m.readerStalls, p.m.accountingStalls, p.m.commitSeconds,
			lag, hits, misses} {
			if err := deps.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("cannot register accounting metrics: %w", err)
			}
		}
	}
	return p, nil
}

// cacheStats sums the workers' client cache statistics.
func (p *Pipeline) cacheStats() enrich.CacheStats {
	var s enrich.CacheStats
	for _, w := range p.workers {
		ws := w.cache.Stats()
		s.Hits += ws.Hits
		s.Misses += ws.Misses
	}
	return s
}

func (p *Pipeline) lag() float64 {
	pos := p.committed.Load()
	if pos == nil {
		return 0
	}
	return float64(p.deps.Spool.Lag(*pos))
}

// Run accounts records until ctx is done, then reads what the spool holds, commits and
// returns. It returns an error when the store cannot give the position at start or the
// spool cannot be read.
func (p *Pipeline) Run(ctx context.Context) error {
	if p.deps.Ready != nil {
		select {
		case <-p.deps.Ready:
		case <-ctx.Done():
			return nil
		}
	}
	return p.account(ctx, true)
}

// Drain accounts every record in the spool after the committed position, commits, and
// returns (netledger replay, benchmarks).
func (p *Pipeline) Drain(ctx context.Context) error {
	return p.account(ctx, false)
}

// account reads from the committed position and accounts what it reads until the reader has
// caught up (follow false) or, when following, until ctx is done and the reader has then
// caught up, committing every commit interval and at the end.
func (p *Pipeline) account(ctx context.Context, follow bool) error {
	r, err := p.open(ctx)
	if err != nil {
		return err
	}
	defer r.Close()
	// free → reading → read → coordinating → work → a worker → done → coordinating → free; every
	// channel has room for every batch, so that only taking a batch blocks
	n := len(p.batches)
	free, read, work, done := make(chan *batch, n), make(chan *batch, n), make(chan *batch, n), make(chan *batch, n)
	for _, b := range p.batches {
		free <- b
	}
	stop := make(chan struct{})
	fed := make(chan struct{})
	wctx, cancelWait := context.WithCancel(ctx)
	defer cancelWait()
	go func() {
		defer close(fed)
		p.feed(ctx, wctx, r, follow, stop, free, read)
	}()
	var workers sync.WaitGroup
	for _, w := range p.workers {
		workers.Go(func() { p.work(w, work, done) })
	}
	err = p.consume(ctx, follow, free, read, work, done)
	// the workers stop once idle, then the reading goroutine (it may be waiting for a free batch
	// or for the spool); what it read and no worker took is read again by the next run
	close(work)
	workers.Wait()
	for len(done) > 0 { // (consume returns with every batch handed out back)
		p.taken(<-done)
	}
	close(stop)
	cancelWait()
	for range read {
	}
	<-fed
	// shutdown: the sources have stopped and the spool is synced; commit what was accounted,
	// retrying for a while if the store fails (what is not committed is read again at the
	// next start)
	cctx := ctx
	if follow {
		var cancel context.CancelFunc
		cctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
	}
	// (an error of the commit in flight is that of a commit abandoned: its rows go with this one)
	_ = p.commitAsync(cctx, p.pos)
	if cerr := p.waitCommit(); err == nil {
		err = cerr
	}
	return err
}

func (p *Pipeline) open(ctx context.Context) (*spool.Reader, error) {
	sp, err := p.deps.Store.Position(ctx, Consumer)
	if err != nil {
		return nil, fmt.Errorf("cannot read the accounting position from the store: %w", err)
	}
	pos := spool.Position{Segment: sp.Segment, Offset: sp.Offset}
	p.deps.Spool.Hold(Consumer, pos)
	r, err := p.deps.Spool.NewReader(pos)
	if err != nil {
		return nil, fmt.Errorf("cannot read the spool from the accounting position: %w", err)
	}
	pos = r.Position()
	p.committed.Store(&pos)
	p.pos, p.handed = pos, pos
	p.log.Info("accounting from spool position", "position", pos.String())
	return r, nil
}

// feed is the reading goroutine: it takes empty batches from free, fills them from r and
// sends them to read, until the reader has caught up (follow false; when following, once ctx
// is done), a read fails (the batch carrying the error is the last), or stop is closed (wctx is
// then cancelled). It closes read when it returns.
func (p *Pipeline) feed(ctx, wctx context.Context, r *spool.Reader, follow bool, stop <-chan struct{}, free <-chan *batch, read chan<- *batch) {
	defer close(read)
	var b *batch // a batch read into and not sent yet
	sent := r.Position()
	for {
		if b == nil {
			select {
			case b = <-free:
			default:
				p.m.readerStalls.Inc()
				select {
				case b = <-free:
				case <-stop:
					return
				}
			}
		}
		n := p.read(r, b)
		if n > 0 || b.err != nil || b.pos != sent {
			// (a batch without records moves the position past skipped corrupt data)
			p.m.batches.Inc()
			read <- b // never blocks: read has room for every batch
			if b.err != nil {
				return
			}
			sent, b = b.pos, nil
			continue
		}
		// caught up
		if !follow || ctx.Err() != nil {
			return
		}
		err := r.Wait(wctx)
		select {
		case <-stop:
			return
		default:
		}
		switch {
		case errors.Is(err, spool.ErrClosed):
			return
		case ctx.Err() != nil:
			// shutdown: read what was synced before it, then stop
		case err != nil:
			b.err = err
			read <- b
			return
		}
	}
}

// consume is the coordinating goroutine: it hands the batches from read to the workers through
// work and returns those they are done with to free, committing every commit interval (while ctx
// is not done when following), until read is closed or a batch carries a read error. A commit
// waits for the workers to be idle: the batches handed out are then all accounted, and no more
// are until the commit is handed over. It returns with no batch at a worker.
func (p *Pipeline) consume(ctx context.Context, follow bool, free chan<- *batch, read <-chan *batch, work chan<- *batch, done <-chan *batch) error {
	last := time.Now()
	timer := time.NewTimer(p.cfg.CommitInterval)
	defer timer.Stop()
	out := 0          // batches at the workers
	over := false     // read is closed
	var readErr error // a batch carried a read error: it was the last
	for {
		if (over || readErr != nil) && out == 0 {
			return readErr
		}
		due := p.dirty() && time.Since(last) >= p.cfg.CommitInterval && (!follow || ctx.Err() == nil)
		if j := p.inflight; due && j != nil && !j.over() && !j.failed.Load() {
			// the commit in flight is under way: account on, and hand the next over once it
			// has landed; once it has failed, wait for it (a store that is down stops the
			// reading, as the backlog stays in the spool)
			due = false
		}
		if due && out == 0 {
			if err := p.commitAsync(ctx, p.pos); err != nil {
				if !follow {
					return err
				}
				// ctx done while retrying: the final commit retries
			} else {
				last = time.Now()
			}
			continue
		}
		in := read
		if due || over || readErr != nil {
			in = nil // the workers finish what they hold first
		}
		// wait for a batch, or for the commit interval to be over, or for the commit in flight
		// to land
		var tick <-chan time.Time
		var landed <-chan struct{}
		if !due && p.dirty() && (!follow || ctx.Err() == nil) {
			if j := p.inflight; j != nil && !j.over() {
				landed = j.done
			} else {
				timer.Reset(time.Until(last.Add(p.cfg.CommitInterval)))
				tick = timer.C
			}
		}
		select {
		case b, ok := <-in:
			if !ok {
				over = true
				continue
			}
			p.pos = b.pos
			if b.err != nil {
				// the records before the damage are accounted; what follows cannot be read
				readErr = fmt.Errorf("cannot read the spool: %w", b.err)
			}
			out++
			work <- b // never blocks: work has room for every batch
		case b := <-done:
			out--
			p.taken(b)
			free <- b
		case <-tick:
		case <-landed:
		}
	}
}

// taken counts the records of b, accounted by a worker.
func (p *Pipeline) taken(b *batch) {
	p.records += b.accounted
	p.unrouted += b.unrouted
	p.noRouter += b.noRouter
}

// landed reports whether the store's saved position is pos.
func (p *Pipeline) landed(ctx context.Context, pos store.Position) bool {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	sp, err := p.deps.Store.Position(ctx, Consumer)
	return err == nil && sp == pos
}

// dirty reports whether batches were handed to the workers since the last commit handed over.
func (p *Pipeline) dirty() bool { return p.pos != p.handed }

// read reads one batch of frames from r into b and returns its number of records.
func (p *Pipeline) read(r *spool.Reader, b *batch) int {
	var n int
	n, b.pos, b.err = r.ReadFrames(&b.frames, readBatch)
	return n
}

// work is a worker goroutine: it accounts the batches from work and sends them to done, until
// work is closed.
func (p *Pipeline) work(w *worker, work <-chan *batch, done chan<- *batch) {
	for {
		var b *batch
		ok := true
		select {
		case b, ok = <-work:
		default:
			p.m.accountingStalls.Inc()
			b, ok = <-work
		}
		if !ok {
			return
		}
		p.process(w, b)
		done <- b // never blocks: done has room for every batch
	}
}

// process decodes the records of b, enriches them and adds them to the worker's aggregator,
// decodeChunk records at a time, and counts them.
func (p *Pipeline) process(w *worker, b *batch) {
	b.accounted, b.unrouted, b.noRouter = 0, 0, 0
	for {
		n := b.frames.Decode(w.recs)
		if n == 0 {
			return
		}
		recs, enr := w.recs[:n], w.enr[:n]
		w.cache.EnrichBatch(recs, enr)
		for i := range enr {
			if e := &enr[i]; e.Router == enrich.NoRouter {
				b.noRouter++
			} else if !e.Prefix.IsValid() {
				b.unrouted++
			}
		}
		w.agg.AddBatch(recs, enr)
		b.accounted += uint64(n)
	}
}

// commitAsync waits for the commit in flight, if any, then hands the rows of everything
// accounted since the last commit handed over, with pos, to a committing goroutine, and
// returns. It returns the error of the commit it waited for: ctx was done while that commit was
// being retried, and its rows go with this one.
func (p *Pipeline) commitAsync(ctx context.Context, pos spool.Position) error {
	err := p.waitCommit()
	if pos == p.handed {
		return err
	}
	j := &commitJob{pos: pos, records: p.records, unrouted: p.unrouted, noRouter: p.noRouter,
		done: make(chan struct{})}
	// the workers are idle: their sums go into the first one's, whose flush has them all
	agg := p.workers[0].agg
	for _, w := range p.workers[1:] {
		agg.Merge(w.agg)
	}
	j.rows = agg.FlushAll(p.rows)
	p.rows, p.spare = p.spare, nil
	p.unrouted, p.noRouter = 0, 0
	p.handed, p.inflight = pos, j
	go func() {
		defer close(j.done)
		j.err = p.commit(ctx, j)
	}()
	return err
}

// waitCommit waits for the commit in flight, if any. When it was abandoned (ctx done while it
// was being retried) it returns ctx's error, and the commit's rows and counts are kept for the
// next commit, whose position is after them.
func (p *Pipeline) waitCommit() error {
	j := p.inflight
	if j == nil {
		return nil
	}
	<-j.done
	p.inflight = nil
	if j.err != nil {
		// p.rows is empty: rows are flushed only when a commit is handed over, after this wait
		p.rows, p.spare = j.rows, p.rows[:0]
		p.unrouted += j.unrouted
		p.noRouter += j.noRouter
		p.handed = *p.committed.Load()
		return j.err
	}
	p.spare = j.rows[:0]
	return nil
}

// commit writes the rows of j with its position, retrying with the same batch until it
// succeeds or ctx is done. It runs on the committing goroutine.
func (p *Pipeline) commit(ctx context.Context, j *commitJob) error {
	pos := j.pos
	b := store.Batch{Consumer: Consumer, Position: store.Position{Segment: pos.Segment, Offset: pos.Offset}, Rows: j.rows}
	delay := 50 * time.Millisecond
	for {
		t0 := time.Now()
		err := p.deps.Store.Commit(ctx, b)
		if err == nil {
			p.m.commitSeconds.Observe(time.Since(t0).Seconds())
			break
		}
		p.m.commitErrors.Inc()
		j.failed.Store(true)
		if time.Since(p.lastErrLog) > 10*time.Second {
			p.log.Error("cannot commit accounting rows, retrying with the same batch", "rows", len(b.Rows), "position", pos.String(), "err", err)
			p.lastErrLog = time.Now()
		}
		// a commit may fail after the store made it durable (a lost reply): the store's
		// position tells
		if p.landed(ctx, b.Position) {
			break
		}
		select {
		case <-ctx.Done():
			// the rows are kept: committed with a later position, or, after a restart, the
			// records are read again from the committed position
			return ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Second)
	}
	p.committed.Store(&pos)
	p.deps.Spool.Hold(Consumer, pos)
	p.m.commits.Inc()
	p.m.rows.Add(float64(len(b.Rows)))
	p.m.records.Add(float64(j.records - p.recordsCommitted))
	p.recordsCommitted = j.records
	p.m.unrouted.Add(float64(j.unrouted))
	p.m.noRouter.Add(float64(j.noRouter))
	return nil
}
