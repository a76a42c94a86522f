package hugepage

import (
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Config configures a Collapser.
type Config struct {
	// Enable turns collapsing on after MRT loads (Request). It is on by default: on the
	// 2-core PVM guest where it was measured, hot lookups over a full table took 43 ns on huge
	// pages against 67 on 4 KiB pages (IPv4, wall time, quiet machine, session 4), and 5–7 ns
	// less once the TLB had been flushed and refilled (session 5, docs/benchmarks.md
	// "Lookups"); a table loaded from MRT files keeps part of its huge pages once the runtime
	// has returned the load's garbage (82 of 304 MB in one measurement).
	Enable bool `yaml:"enable"`
	// BGP also collapses after a BGP session's bulk changes (RequestBGP: End-of-RIB
	// compaction, replacement table). Off by default: a table fed by a session keeps changing,
	// and once the runtime returns the transfer's garbage in pieces the kernel splits nearly
	// every collapsed chunk (0–2 MB of 170–210 MB left, session 4), so the copying buys nothing
	// that lasts. It does not cost resident memory either (same RSS per route, bgpload).
	BGP bool `yaml:"bgp"`
	// MinInterval is the least time between two collapses: a request sooner than that after
	// the last one is put off until it has passed (several coalesce into one).
	MinInterval time.Duration `yaml:"min_interval"`
	// MaxEmpty is the number of non-resident 4 KiB pages (of 512) a 2 MiB chunk may have and
	// still be collapsed (see Collapse).
	MaxEmpty int `yaml:"max_empty"`
}

// DefaultConfig returns the default configuration: on after MRT loads, off after BGP bulk
// changes, at most once a minute.
func DefaultConfig() Config {
	return Config{Enable: true, MinInterval: time.Minute, MaxEmpty: DefaultMaxEmpty}
}

// Deps are a Collapser's dependencies.
type Deps struct {
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Registerer receives the metrics (nil: not registered).
	Registerer prometheus.Registerer
}

// Collapser collapses the heap into huge pages on request (Request, after a bulk load of a
// large table), at most once per MinInterval, in the background. A nil *Collapser does
// nothing.
type Collapser struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	last    time.Time
	pending bool // a collapse is scheduled or running
	unsup   bool // the kernel cannot collapse: stop trying
	done    func(Result)

	runs   prometheus.Counter
	chunks *prometheus.CounterVec
	errs   *prometheus.CounterVec
	huge   prometheus.Gauge
}

// New returns a Collapser; nothing happens before Request.
func New(cfg Config, deps Deps) (*Collapser, error) {
	c := &Collapser{cfg: cfg, log: deps.Logger}
	if c.log == nil {
		c.log = slog.Default()
	}
	c.log = c.log.With("component", "hugepage")
	const ns, sub = "netledger", "hugepage"
	c.runs = prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "collapses_total",
		Help: "Runs of the huge page collapse over the heap (after bulk table loads)."})
	c.chunks = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "chunks_total",
		Help: "2 MiB heap chunks examined by huge page collapses, by result (collapsed, sparse, failed)."}, []string{"result"})
	c.errs = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "failures_total",
		Help: "2 MiB heap chunks that could not be collapsed into a huge page, by error."}, []string{"error"})
	c.huge = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "anon_huge_bytes",
		Help: "The process's anonymous memory on huge pages after the last collapse (AnonHugePages)."})
	for _, r := range []string{"collapsed", "sparse", "failed"} {
		c.chunks.WithLabelValues(r)
	}
	if deps.Registerer != nil {
		for _, m := range []prometheus.Collector{c.runs, c.chunks, c.errs, c.huge} {
			if err := deps.Registerer.Register(m); err != nil {
				return nil, err
			}
		}
	}
	return c, nil
}

// Request asks for a collapse: it starts in the background at once, or when MinInterval has
// passed since the last one. It never blocks.
func (c *Collapser) Request() {
	if c == nil || !c.cfg.Enable {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending || c.unsup {
		return
	}
	c.pending = true
	wait := time.Until(c.last.Add(c.cfg.MinInterval))
	if wait < 0 {
		wait = 0
	}
	time.AfterFunc(wait, c.run)
}

// RequestBGP is Request for a BGP session's bulk changes: it does nothing unless BGP is set
// too.
func (c *Collapser) RequestBGP() {
	if c == nil || !c.cfg.BGP {
		return
	}
	c.Request()
}

// CollapseNow collapses at once, in the caller, regardless of the rate limit (tests,
// benchmarks, a command). A disabled or nil Collapser returns a zero Result.
func (c *Collapser) CollapseNow() Result {
	if c == nil || !c.cfg.Enable {
		return Result{}
	}
	collapseMu.Lock()
	defer collapseMu.Unlock()
	r, err := Collapse(c.cfg.MaxEmpty)
	c.mu.Lock()
	c.last = time.Now()
	if err != nil && !c.unsup {
		c.unsup = true
		c.log.Warn("huge pages unavailable: the heap stays on small pages", "error", err)
	}
	done := c.done
	c.mu.Unlock()
	c.runs.Inc()
	c.chunks.WithLabelValues("collapsed").Add(float64(r.Collapsed))
	c.chunks.WithLabelValues("sparse").Add(float64(r.Sparse))
	c.chunks.WithLabelValues("failed").Add(float64(r.Failed))
	for e, n := range r.Errors {
		c.errs.WithLabelValues(errnoName(e)).Add(float64(n))
	}
	if r.HugeAfter >= 0 {
		c.huge.Set(float64(r.HugeAfter))
	}
	if err == nil {
		c.log.Debug("heap collapsed into huge pages", "result", r.String())
	}
	if done != nil {
		done(r)
	}
	return r
}

func (c *Collapser) run() {
	c.CollapseNow()
	c.mu.Lock()
	c.pending = false
	c.mu.Unlock()
}
