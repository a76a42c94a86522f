// Package pipeline is the accounting consumer of the spool: it reads records from the
// position committed in the store, enriches them (router, route, AS path, country), sums them
// into the views' rows per interval, and commits the rows together with the spool position
// after them, in one store transaction, every commit interval and at shutdown.
//
// Exactly once: the rows of a commit are exactly the records between the previous committed
// position and the new one — rows of intervals still open included (the store adds rows with
// equal keys), so the stored totals and the position always agree. A failed commit is retried
// with the same batch and nothing more is read meanwhile (the backlog stays in the spool, held
// from retention); after a crash, the records after the committed position are read again and
// counted for the first time.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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

// readBatch is the number of records read from the spool at once.
const readBatch = 4096

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
	agg  *aggregate.Aggregator

	buf   []record.Record
	enr   []enrich.Enriched
	cache *enrich.Cache
	rows  []record.Row

	committed atomic.Pointer[spool.Position]
	m         metrics

	// counted since the last commit, added to the counters when it succeeds
	unrouted, noRouter uint64
	recordsCommitted   uint64
	lastErrLog         time.Time
}

type metrics struct {
	records, rows, commits, commitErrors, unrouted, noRouter prometheus.Counter
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
	agg, err := aggregate.New(aggregate.Config{
		Views:     cfg.EffectiveViews(),
		Interval:  cfg.Interval,
		Routers:   names,
		ClassName: deps.ClassName,
	})
	if err != nil {
		return nil, err
	}
	p := &Pipeline{cfg: cfg, deps: deps, log: deps.Logger, agg: agg, buf: make([]record.Record, readBatch),
		enr: make([]enrich.Enriched, readBatch), cache: deps.Enricher.NewCache(0)}
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
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "netledger_accounting_commit_seconds",
			Help: "Time of successful commits.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 8)}),
	}
	if deps.Registerer != nil {
		lag := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "netledger_accounting_lag_bytes",
			Help: "Synced spool bytes after the committed accounting position."}, p.lag)
		hits := prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "netledger_accounting_enrich_cache_hits_total",
			Help: "Records enriched from the client cache (read, committed or not)."}, func() float64 { return float64(p.cache.Stats().Hits) })
		misses := prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "netledger_accounting_enrich_cache_misses_total",
			Help: "Records whose client was looked up in the routing and geo tables (read, committed or not)."}, func() float64 { return float64(p.cache.Stats().Misses) })
		for _, c := range []prometheus.Collector{p.m.records, p.m.rows, p.m.commits, p.m.commitErrors,
			p.m.unrouted, p.m.noRouter, p.m.commitSeconds, lag, hits, misses} {
			if err := deps.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("cannot register accounting metrics: %w", err)
			}
		}
	}
	return p, nil
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
	r, err := p.open(ctx)
	if err != nil {
		return err
	}
	defer r.Close()
	err = p.loop(ctx, r)
	// shutdown: the sources have stopped and the spool is synced; account the rest and
	// commit, retrying for a while if the store fails (what is not committed is read again
	// at the next start)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err == nil {
		err = p.drain(sctx, r)
	}
	if cerr := p.commit(sctx, r.Position()); err == nil {
		err = cerr
	}
	return err
}

// Drain accounts every record in the spool after the committed position, commits, and
// returns (netledger replay, benchmarks).
func (p *Pipeline) Drain(ctx context.Context) error {
	r, err := p.open(ctx)
	if err != nil {
		return err
	}
	defer r.Close()
	err = p.drain(ctx, r)
	if cerr := p.commit(ctx, r.Position()); err == nil {
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
	p.log.Info("accounting from spool position", "position", pos.String())
	return r, nil
}

// loop reads, accounts and commits until ctx is done.
func (p *Pipeline) loop(ctx context.Context, r *spool.Reader) error {
	last := time.Now()
	for {
		n, err := p.read(r)
		if err != nil {
			return err
		}
		if n == 0 {
			wctx, cancel := ctx, context.CancelFunc(func() {})
			if p.dirty(r) {
				wctx, cancel = context.WithDeadline(ctx, last.Add(p.cfg.CommitInterval))
			}
			err := r.Wait(wctx)
			cancel()
			switch {
			case ctx.Err() != nil || errors.Is(err, spool.ErrClosed):
				return nil
			case err != nil && !errors.Is(err, context.DeadlineExceeded):
				return err
			}
		}
		if p.dirty(r) && time.Since(last) >= p.cfg.CommitInterval {
			if err := p.commit(ctx, r.Position()); err != nil {
				return nil // ctx done while retrying: the final commit retries
			}
			last = time.Now()
		}
	}
}

// landed reports whether the store's saved position is pos.
func (p *Pipeline) landed(ctx context.Context, pos store.Position) bool {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	sp, err := p.deps.Store.Position(ctx, Consumer)
	return err == nil && sp == pos
}

// dirty reports whether records were read since the last commit.
func (p *Pipeline) dirty(r *spool.Reader) bool { return r.Position() != *p.committed.Load() }

// drain accounts records until the reader has caught up, committing every commit interval.
func (p *Pipeline) drain(ctx context.Context, r *spool.Reader) error {
	last := time.Now()
	for {
		n, err := p.read(r)
		if err != nil || n == 0 {
			return err
		}
		if time.Since(last) >= p.cfg.CommitInterval {
			if err := p.commit(ctx, r.Position()); err != nil {
				return err
			}
			last = time.Now()
		}
	}
}

// read reads one batch of records and accounts them.
func (p *Pipeline) read(r *spool.Reader) (int, error) {
	n, _, err := r.Read(p.buf)
	p.cache.EnrichBatch(p.buf[:n], p.enr)
	for i := range n {
		if e := &p.enr[i]; e.Router == enrich.NoRouter {
			p.noRouter++
		} else if !e.Prefix.IsValid() {
			p.unrouted++
		}
	}
	p.agg.AddBatch(p.buf[:n], p.enr)
	if err != nil {
		// the records before the damage are accounted; what follows cannot be read
		return n, fmt.Errorf("cannot read the spool: %w", err)
	}
	return n, nil
}

// commit writes the rows of everything accounted since the last commit with pos, retrying
// with the same batch until it succeeds or ctx is done.
func (p *Pipeline) commit(ctx context.Context, pos spool.Position) error {
	prev := *p.committed.Load()
	if pos == prev {
		return nil
	}
	records := p.agg.Records()
	// p.rows still holds the rows of a commit abandoned when ctx was done: they go with
	// this one (the store adds rows with equal keys)
	p.rows = p.agg.FlushAll(p.rows)
	b := store.Batch{Consumer: Consumer, Position: store.Position{Segment: pos.Segment, Offset: pos.Offset}, Rows: p.rows}
	delay := 50 * time.Millisecond
	for {
		t0 := time.Now()
		err := p.deps.Store.Commit(ctx, b)
		if err == nil {
			p.m.commitSeconds.Observe(time.Since(t0).Seconds())
			break
		}
		p.m.commitErrors.Inc()
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
			// p.rows is kept: committed with a later position, or, after a restart, the
			// records are read again from the committed position
			return ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Second)
	}
	p.committed.Store(&pos)
	p.deps.Spool.Hold(Consumer, pos)
	p.rows = p.rows[:0]
	p.m.commits.Inc()
	p.m.rows.Add(float64(len(b.Rows)))
	p.m.records.Add(float64(records - p.recordsCommitted))
	p.recordsCommitted = records
	p.m.unrouted.Add(float64(p.unrouted))
	p.m.noRouter.Add(float64(p.noRouter))
	p.unrouted, p.noRouter = 0, 0
	return nil
}
