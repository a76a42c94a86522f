package geo

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Reloader holds the current DB and replaces it, without blocking readers, when the files
// change (Run) or when told to (Reload, Apply: the daemon calls Apply on SIGHUP). A failed
// reload keeps the previous DB. It is a prometheus.Collector of the netledger_geo_* metrics.
type Reloader struct {
	cfg Config
	log *slog.Logger
	cur atomic.Pointer[DB]

	mu      sync.Mutex // serialises loads
	stamps  map[string]fileStamp
	reloads *prometheus.CounterVec
	lastOK  prometheus.Gauge
}

// fileStamp identifies a version of a file.
type fileStamp struct {
	size    int64
	modTime time.Time
}

// NewReloader loads the configured files once; an error here is fatal at start. logger may be
// nil (slog.Default).
func NewReloader(cfg Config, logger *slog.Logger) (*Reloader, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.Default()
	}
	r := &Reloader{
		cfg: cfg,
		log: logger.With("component", "geo"),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "netledger_geo_reloads_total",
			Help: "Loads of the geo files, by result (success or failure; a failure keeps the previous data).",
		}, []string{"result"}),
		lastOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "netledger_geo_last_reload_success_timestamp_seconds",
			Help: "When the geo files were last loaded successfully.",
		}),
	}
	if err := r.Reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// DB returns the current snapshot. Callers looking up many addresses take it once.
func (r *Reloader) DB() *DB { return r.cur.Load() }

// Lookup looks a up in the current snapshot.
func (r *Reloader) Lookup(a netip.Addr) Info { return r.cur.Load().Lookup(a) }

// ASName returns the name of an AS in the current snapshot.
func (r *Reloader) ASName(asn uint32) string { return r.cur.Load().ASName(asn) }

// Reload reads the files again and swaps the new DB in. On error the current DB stays.
func (r *Reloader) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.load(r.cfg)
}

// Apply loads the files of a new configuration (the daemon calls it on SIGHUP, with the file
// re-read) and, when they load, adopts it. On error the current DB and configuration stay.
func (r *Reloader) Apply(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.load(cfg); err != nil {
		return err
	}
	r.cfg = cfg
	return nil
}

// load builds a DB from cfg and swaps it in; r.mu is held.
func (r *Reloader) load(cfg Config) error {
	stamps := statFiles(cfg.files())
	start := time.Now()
	db, err := Open(cfg)
	r.stamps = stamps // a broken file is retried when it changes again, not at every check
	if err != nil {
		r.reloads.WithLabelValues("failure").Inc()
		r.log.Error("cannot load geo data, keeping the previous data", "error", err)
		return err
	}
	r.cur.Store(db)
	r.reloads.WithLabelValues("success").Inc()
	r.lastOK.SetToCurrentTime()
	v4, v6 := db.Len()
	r.log.Info("geo data loaded", "ipv4_prefixes", v4, "ipv6_prefixes", v6, "as_names", db.Names(),
		"duration", time.Since(start).Round(time.Millisecond))
	for _, rep := range db.Reports() {
		r.log.Info("geo file loaded", "path", rep.Path, "kind", rep.Kind, "records", rep.Records,
			"prefixes", rep.Prefixes, "ignored", rep.Ignored, "bad_lines", rep.Bad)
		if rep.Bad > 0 {
			r.log.Warn("bad lines in geo file", "path", rep.Path, "bad_lines", rep.Bad,
				"first_errors", errors.Join(rep.Errors...).Error())
		}
	}
	return nil
}

// Changed reports whether a configured file changed (size, modification time, appeared or
// vanished) since the last load.
func (r *Reloader) Changed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := statFiles(r.cfg.files())
	if len(now) != len(r.stamps) {
		return true
	}
	for path, s := range now {
		if old, ok := r.stamps[path]; !ok || old != s {
			return true
		}
	}
	return false
}

func statFiles(paths []string) map[string]fileStamp {
	out := make(map[string]fileStamp, len(paths))
	for _, p := range paths {
		if fi, err := os.Stat(p); err == nil {
			out[p] = fileStamp{fi.Size(), fi.ModTime()}
		}
	}
	return out
}

// Run reloads when a file changes, checked every CheckInterval (the interval at start; without
// one Run only waits), until ctx is done. Reload failures are logged and counted, never fatal.
func (r *Reloader) Run(ctx context.Context) error {
	r.mu.Lock()
	interval := r.cfg.CheckInterval
	r.mu.Unlock()
	var tick <-chan time.Time
	if interval > 0 {
		t := time.NewTicker(interval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick:
			if r.Changed() {
				r.log.Info("geo files changed, reloading")
				_ = r.Reload()
			}
		}
	}
}

var (
	descPrefixes = prometheus.NewDesc("netledger_geo_prefixes",
		"Prefixes in the geo lookup table.", []string{"family"}, nil)
	descNames = prometheus.NewDesc("netledger_geo_as_names",
		"Known AS names.", nil, nil)
	descBadLines = prometheus.NewDesc("netledger_geo_file_bad_lines",
		"Malformed lines skipped in each geo file at the last successful load.", []string{"path"}, nil)
)

// Describe implements prometheus.Collector.
func (r *Reloader) Describe(ch chan<- *prometheus.Desc) {
	r.reloads.Describe(ch)
	r.lastOK.Describe(ch)
	ch <- descPrefixes
	ch <- descNames
	ch <- descBadLines
}

// Collect implements prometheus.Collector.
func (r *Reloader) Collect(ch chan<- prometheus.Metric) {
	r.reloads.Collect(ch)
	r.lastOK.Collect(ch)
	db := r.cur.Load()
	v4, v6 := db.Len()
	ch <- prometheus.MustNewConstMetric(descPrefixes, prometheus.GaugeValue, float64(v4), "ipv4")
	ch <- prometheus.MustNewConstMetric(descPrefixes, prometheus.GaugeValue, float64(v6), "ipv6")
	ch <- prometheus.MustNewConstMetric(descNames, prometheus.GaugeValue, float64(db.Names()))
	seen := map[string]bool{}
	for _, rep := range db.Reports() {
		if rep.Kind != "mmdb" && !seen[rep.Path] {
			seen[rep.Path] = true
			ch <- prometheus.MustNewConstMetric(descBadLines, prometheus.GaugeValue, float64(rep.Bad), rep.Path)
		}
	}
}
