package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/netledger/netledger/internal/api"
	"github.com/netledger/netledger/internal/enrich"
	"github.com/netledger/netledger/internal/geo"
	"github.com/netledger/netledger/internal/hugepage"
	"github.com/netledger/netledger/internal/pipeline"
	"github.com/netledger/netledger/internal/routing/routers"
	"github.com/netledger/netledger/internal/source/conntrack"
	"github.com/netledger/netledger/internal/source/tcpinfo"
	"github.com/netledger/netledger/internal/source/udpreport"
	"github.com/netledger/netledger/internal/spool"
	"github.com/netledger/netledger/internal/store/sqlite"
)

// Daemon is the pipeline of `netledger serve`, built from a Config. New builds and validates
// every component; Run starts them; Close releases what New opened. Each component is wired in
// its own block below: add yours the same way (a source gets Deps{Sink: d.Spool.Append}, a
// consumer reads d.Spool with a reader from its committed position, an API mounts on d.API).
type Daemon struct {
	Config   Config
	Logger   *slog.Logger
	Registry *prometheus.Registry

	// Spool is the durable log every source appends to.
	Spool *spool.Spool
	// Report is the UDP report collector.
	Report *udpreport.Collector
	// API serves /metrics, /healthz and the handlers components mount.
	API *api.Server
	// Geo holds the country, continent and AS data; the enrichment looks up Geo.DB().
	Geo *geo.Reloader
	// Routing holds every configured router's table and runs their BGP sessions; the
	// enrichment takes Routers().
	Routing *routers.Component
	// Store is the embedded store the accounting pipeline commits to.
	Store *sqlite.Store
	// Accounting is the pipeline from the spool to the store.
	Accounting *pipeline.Pipeline

	// sources stop first on shutdown; then consumers (everything else) drain.
	sources    []Component
	consumers  []Component
	closers    []func() error
	reloadable []func(Config) error
}

// Validate checks the whole configuration without opening anything (`serve --check`).
func (c Config) Validate() error {
	if c.DataDir == "" {
		return errors.New("data_dir not set")
	}
	if c.HTTP.Listen == "" {
		return errors.New("http.listen not set")
	}
	// --- ingest: spool and report collector ---
	if err := c.spoolConfig().Validate(); err != nil {
		return err
	}
	if err := c.Report.Validate(); err != nil {
		return err
	}
	// --- geo ---
	if err := c.Geo.Validate(); err != nil {
		return err
	}
	// --- tcpinfo: kernel TCP source ---
	if c.TCPInfo.Enabled {
		if err := c.TCPInfo.Validate(); err != nil {
			return err
		}
	}
	// --- conntrack accounting source ---
	if c.Conntrack.Enabled {
		if err := c.Conntrack.Validate(); err != nil {
			return err
		}
	}
	// --- embedded store ---
	if err := c.StoreConfig().Validate(); err != nil {
		return err
	}
	// --- routing: routers, their MRT files and BGP sessions ---
	if err := routers.Validate(c.Routers, c.BGP); err != nil {
		return err
	}
	// --- accounting: intervals, commits, views ---
	if err := c.Accounting.Validate(); err != nil {
		return err
	}
	// --- other components: validate your configuration here ---
	return nil
}

func (c Config) spoolConfig() spool.Config {
	sc := c.Spool
	if sc.Dir == "" {
		sc.Dir = filepath.Join(c.DataDir, "spool")
	}
	return sc
}

// New builds the daemon: it validates cfg, opens the spool and builds every component
// without starting any.
func New(cfg Config, logger *slog.Logger) (*Daemon, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration: %w", err)
	}
	if logger == nil {
		logger = slog.Default()
	}
	d := &Daemon{Config: cfg, Logger: logger, Registry: prometheus.NewRegistry()}
	d.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	ok := false
	defer func() {
		if !ok {
			d.Close()
		}
	}()

	// --- HTTP endpoint (/metrics, /healthz) ---
	var err error
	d.API, err = api.New(api.Config{Listen: cfg.HTTP.Listen}, api.Deps{Gatherer: d.Registry, Logger: logger})
	if err != nil {
		return nil, err
	}
	d.consumers = append(d.consumers, d.API)

	// --- ingest: spool ---
	d.Spool, err = spool.Open(cfg.spoolConfig())
	if err != nil {
		return nil, fmt.Errorf("cannot open spool: %w", err)
	}
	d.closers = append(d.closers, d.Spool.Close)
	d.Registry.MustRegister(d.Spool)
	d.API.AddHealthCheck("spool", d.Spool.Err)

	// --- ingest: report collector (UDP, v2 + trafstat v1) ---
	d.Report, err = udpreport.New(cfg.Report, udpreport.Deps{
		Sink:       d.Spool.Append,
		Registerer: d.Registry,
		Logger:     logger,
	})
	if err != nil {
		return nil, fmt.Errorf("cannot build report collector: %w", err)
	}
	d.sources = append(d.sources, d.Report)
	d.reloadable = append(d.reloadable, func(c Config) error { return d.Report.Reload(c.Report) })

	// --- geo: country, continent and AS data, a side input of the enrichment; reloaded when
	// its files change (Run) and on SIGHUP ---
	d.Geo, err = geo.NewReloader(cfg.Geo, logger)
	if err != nil {
		return nil, fmt.Errorf("cannot load geo data: %w", err)
	}
	d.Registry.MustRegister(d.Geo)
	d.consumers = append(d.consumers, d.Geo)
	d.reloadable = append(d.reloadable, func(c Config) error { return d.Geo.Apply(c.Geo) })
	// --- tcpinfo: kernel TCP source (sock_diag destroy notifications + interval dumps) ---
	if cfg.TCPInfo.Enabled {
		src, err := tcpinfo.New(cfg.TCPInfo, tcpinfo.Deps{Sink: d.Spool.Append, Logger: logger})
		if err != nil {
			return nil, fmt.Errorf("cannot build tcpinfo source: %w", err)
		}
		d.Registry.MustRegister(src)
		d.sources = append(d.sources, src)
	}

	// --- conntrack: accounting source (ctnetlink events + interval dumps); each interval's
	// rows become records (client = the group that opened the connections, server = the
	// responder's group) ---
	if cfg.Conntrack.Enabled {
		src, err := conntrack.New(cfg.Conntrack, conntrack.Deps{Sink: d.Spool.Append, Registerer: d.Registry, Logger: logger})
		if err != nil {
			return nil, fmt.Errorf("cannot build conntrack source: %w", err)
		}
		d.sources = append(d.sources, src)
	}

	// --- routing: one table per router, loaded from its MRT files when Run starts, then fed
	// by its BGP session; a side input of the enrichment (Routers) ---
	hp, err := hugepage.New(cfg.Hugepages, hugepage.Deps{Logger: logger, Registerer: d.Registry})
	if err != nil {
		return nil, fmt.Errorf("cannot build hugepages: %w", err)
	}
	d.Routing, err = routers.New(cfg.Routers, cfg.BGP, routers.Deps{Logger: logger, Registerer: d.Registry, Hugepages: hp})
	if err != nil {
		return nil, fmt.Errorf("cannot build routing: %w", err)
	}
	d.Routing.Mount(d.API.Handle)
	d.consumers = append(d.consumers, d.Routing)

	// --- accounting: spool → enrichment → views → embedded store (rows and spool position
	// in one transaction) ---
	if err := d.addAccounting(); err != nil {
		return nil, err
	}

	// --- other components: build yours here ---

	ok = true
	return d, nil
}

// Routers returns the configured routers with their live tables, in configuration order, as
// the enrichment takes them: enrich.New(d.Routers(), d.Geo). The tables fill once Run has
// loaded the MRT files and the BGP sessions deliver; lookups never block.
func (d *Daemon) Routers() []enrich.Router { return tables(d.Routing) }

// AddSource adds a component that appends to the spool; sources stop before consumers.
func (d *Daemon) AddSource(c Component) { d.sources = append(d.sources, c) }

// AddConsumer adds a component that reads the spool or serves data; it stops after sources.
func (d *Daemon) AddConsumer(c Component) { d.consumers = append(d.consumers, c) }

// AddCloser registers a function Close calls (in reverse order of registration).
func (d *Daemon) AddCloser(f func() error) { d.closers = append(d.closers, f) }

// OnReload registers a function Reload calls with the new configuration (SIGHUP).
func (d *Daemon) OnReload(f func(Config) error) { d.reloadable = append(d.reloadable, f) }

// Run runs every component until ctx is done or one fails. On the way out, sources stop first
// and the spool syncs what they appended; then consumers stop.
func (d *Daemon) Run(ctx context.Context) error {
	consumerCtx, stopConsumers := context.WithCancel(context.Background())
	defer stopConsumers()
	srcCtx, stopSources := context.WithCancel(ctx)
	defer stopSources()
	consumersDone := make(chan error, 1)
	go func() {
		consumersDone <- RunAll(consumerCtx, d.consumers...)
		stopSources() // a failed consumer stops everything
	}()
	srcErr := RunAll(srcCtx, d.sources...)
	if d.Spool != nil {
		if err := d.Spool.Sync(); err != nil && srcErr == nil {
			srcErr = err
		}
	}
	stopConsumers()
	if err := <-consumersDone; err != nil && srcErr == nil {
		srcErr = err
	}
	return srcErr
}

// Reload applies a new configuration's reloadable parts (report keys).
func (d *Daemon) Reload(cfg Config) error {
	var errs []error
	for _, f := range d.reloadable {
		errs = append(errs, f(cfg))
	}
	return errors.Join(errs...)
}

// Close releases what New opened (the spool is synced and closed last).
func (d *Daemon) Close() error {
	var errs []error
	for i := len(d.closers) - 1; i >= 0; i-- {
		errs = append(errs, d.closers[i]())
	}
	d.closers = nil
	return errors.Join(errs...)
}

// Redacted returns a copy of the configuration with secrets replaced, for --dump-config.
func (c Config) Redacted() Config {
	const mask = "<redacted>"
	keys := make([]udpreport.KeyConfig, len(c.Report.Keys))
	for i, k := range c.Report.Keys {
		keys[i] = udpreport.KeyConfig{ID: k.ID, Secret: mask}
	}
	c.Report.Keys = keys
	if c.Report.V1.Secret != "" {
		c.Report.V1.Secret = mask
	}
	rs := make([]routers.RouterConfig, len(c.Routers))
	for i, r := range c.Routers {
		if r.BGP != nil && r.BGP.Password != "" {
			s := *r.BGP
			s.Password = mask
			r.BGP = &s
		}
		rs[i] = r
	}
	c.Routers = rs
	return c
}
