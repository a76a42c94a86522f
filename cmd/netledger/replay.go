package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/netledger/netledger/internal/aggregate"
	"github.com/netledger/netledger/internal/daemon"
	"github.com/netledger/netledger/internal/enrich"
	"github.com/netledger/netledger/internal/geo"
	"github.com/netledger/netledger/internal/pipeline"
	"github.com/netledger/netledger/internal/query"
	"github.com/netledger/netledger/internal/record"
	"github.com/netledger/netledger/internal/replay"
	"github.com/netledger/netledger/internal/routing/mrt"
	"github.com/netledger/netledger/internal/routing/routers"
	"github.com/netledger/netledger/internal/spool"
	"github.com/netledger/netledger/internal/store"
)

// replayFlags are the flags of `netledger replay`.
type replayFlags struct {
	from, to        string
	dataDir, config string
}

func init() {
	var f replayFlags
	cmd := &cobra.Command{
		Use:   "replay --from T [--to T]",
		Short: "Re-account the spooled records of a time range (after loading a better routing table)",
		Long: `Re-account the records the spool still keeps for a time range: each interval of the range
is rebuilt from the records, with the routers' tables (their MRT files), geo data and views
of the current configuration, and replaces the stored rows of that interval at every
resolution in one transaction — nothing is counted twice, and replaying twice changes nothing.

Stop netledger serve first: replay takes the spool and rewrites intervals the running
pipeline also writes. Records the pipeline had not committed yet are left to it; it adds
them when it runs again.

The spool keeps records for spool.retention (7 days by default). A range reaching back to
records in segments already deleted is refused, with the earliest start that can be
replayed: rebuilding those intervals from what is left would drop traffic from the store.

  netledger replay --config /etc/netledger.yaml --from 2026-11-20
  netledger replay --data-dir ./netledger-demo --from 1h`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runReplay(cmd, f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.from, "from", "", "range start (RFC 3339, \"YYYY-MM-DD[ HH:MM]\" UTC, Unix seconds or a duration ago); required")
	fl.StringVar(&f.to, "to", "", "range end (default: now)")
	fl.StringVar(&f.dataDir, "data-dir", "", "data directory (default: the configuration's data_dir; its netledger.yaml is read when --config is not given)")
	fl.StringVarP(&f.config, "config", "c", "", "configuration file of netledger serve")
	rootCmd.AddCommand(cmd)
}

func runReplay(cmd *cobra.Command, f replayFlags) error {
	if f.from == "" {
		return errors.New("--from is required")
	}
	now := time.Now()
	from, err := query.ParseTime(f.from, now)
	if err != nil {
		return fmt.Errorf("--from: %w", err)
	}
	to := now
	if f.to != "" {
		if to, err = query.ParseTime(f.to, now); err != nil {
			return fmt.Errorf("--to: %w", err)
		}
	}
	cfg, err := loadQueryConfig(f.config, f.dataDir)
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid configuration: %w", err)
	}
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	res, err := replayRange(ctx, cfg, from, to)
	if err != nil {
		return err
	}
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "replayed %s to %s: read %d records from spool segment %d on, %d in the range, %d rows written\n",
		res.From.Format(time.RFC3339), res.To.Format(time.RFC3339), res.Read, res.FirstSegment, res.Replayed, res.Rows)
	fmt.Fprintf(w, "before: %d requests, %d bytes; after: %d requests, %d bytes\n",
		res.Before.Requests, res.Before.Bytes, res.After.Requests, res.After.Bytes)
	return nil
}

// replayRange replays [from, to) of cfg's data with cfg's routers, geo data and views.
func replayRange(ctx context.Context, cfg daemon.Config, from, to time.Time) (replay.Result, error) {
	var res replay.Result
	// The routers' tables, from their MRT files (a BGP session's table is not available
	// offline).
	var missing []string
	for _, r := range cfg.Routers {
		if len(r.MRT) == 0 {
			missing = append(missing, r.Name)
		}
	}
	if len(missing) > 0 {
		return res, fmt.Errorf("replay needs every router's table offline, and a table fed only by BGP is not kept on disk: "+
			"give these routers mrt: files (e.g. a dump of their RIB): %s", strings.Join(missing, ", "))
	}
	sp, err := spool.Open(replaySpoolConfig(cfg))
	if err != nil {
		return res, fmt.Errorf("cannot open the spool (is netledger serve running on it? stop it first): %w", err)
	}
	defer sp.Close()
	st, err := openQueryStore(ctx, cfg)
	if err != nil {
		return res, err
	}
	defer st.Close()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	// Offline, a router's MRT files are its table, also for one that a BGP session keeps
	// current while the daemon runs (LoadFiles refuses session-fed routers).
	offline := slices.Clone(cfg.Routers)
	for i := range offline {
		offline[i].BGP = nil
	}
	rc, err := routers.New(offline, cfg.BGP, routers.Deps{Logger: log})
	if err != nil {
		return res, err
	}
	for _, r := range cfg.Routers {
		peer, err := mrt.ParsePeerSelector(r.MRTPeer)
		if err != nil {
			return res, err
		}
		if _, err := rc.LoadFiles(r.Name, peer, r.MRT...); err != nil {
			return res, fmt.Errorf("cannot load the table of router %s: %w", r.Name, err)
		}
	}
	g, err := geo.Open(cfg.Geo)
	if err != nil {
		return res, err
	}
	acc, err := newAccountant(cfg, enrich.New(daemon.EnrichRouters(rc), g))
	if err != nil {
		return res, err
	}

	view, err := aggregate.Pick(cfg.Accounting.EffectiveViews(), "router")
	if err != nil {
		return res, err
	}
	totals := func(ctx context.Context, from, to time.Time) (record.Metrics, error) {
		var m record.Metrics
		rows, err := st.Top(ctx, store.Query{View: view, By: "router", From: from, To: to, Metric: "bytes"})
		for _, r := range rows {
			m.Add(&r.Metrics)
		}
		return m, err
	}
	return replay.Run(ctx, replay.Config{Spool: sp, Store: st, Consumer: pipeline.Consumer, From: from, To: to,
		Interval: cfg.Accounting.Interval, Window: cfg.Report.Window, Totals: totals}, acc)
}

// replaySpoolConfig is the spool configuration replay opens the spool with: the daemon's,
// without retention. An open spool expires segments in the background, and only the running
// pipeline holds (Spool.Hold) the segments it has not committed past: with retention, replay
// would delete the records a stopped pipeline has yet to account, and segments it is reading.
func replaySpoolConfig(cfg daemon.Config) spool.Config {
	sc := cfg.Spool
	if sc.Dir == "" {
		sc.Dir = filepath.Join(cfg.DataDir, "spool")
	}
	sc.Retention = 0
	return sc
}

// accountant is the pipeline's enrichment and aggregation (a client cache's EnrichBatch and
// the views' AddBatch), for replay.
type accountant struct {
	cache *enrich.Cache
	agg   *aggregate.Aggregator
	enr   []enrich.Enriched
}

func newAccountant(cfg daemon.Config, e *enrich.Enricher) (*accountant, error) {
	var names []string
	for _, r := range e.Routers() {
		names = append(names, r.Name)
	}
	agg, err := aggregate.New(aggregate.Config{Views: cfg.Accounting.EffectiveViews(), Interval: cfg.Accounting.Interval,
		Routers: names, ClassName: cfg.Report.ClassName})
	if err != nil {
		return nil, err
	}
	return &accountant{cache: e.NewCache(0), agg: agg}, nil
}

func (a *accountant) AddBatch(recs []record.Record) {
	if len(a.enr) < len(recs) {
		a.enr = make([]enrich.Enriched, len(recs))
	}
	a.cache.EnrichBatch(recs, a.enr)
	a.agg.AddBatch(recs, a.enr)
}

func (a *accountant) Rows(dst []record.Row) []record.Row { return a.agg.FlushAll(dst) }
