package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/netledger/netledger/internal/aggregate"
	"github.com/netledger/netledger/internal/daemon"
	"github.com/netledger/netledger/internal/geo"
	"github.com/netledger/netledger/internal/query"
	"github.com/netledger/netledger/internal/store"
	"github.com/netledger/netledger/internal/store/sqlite"
)

// queryFlags are the flags `netledger top` and `netledger series` share.
type queryFlags struct {
	by, metric             string
	since, from, to        string
	router, class, country string
	limit                  int
	step                   time.Duration
	format                 string
	dataDir, config        string
}

func (f *queryFlags) register(cmd *cobra.Command, limit int) {
	fl := cmd.Flags()
	fl.StringVar(&f.by, "by", "prefix", "group by: asn (every AS on the path), origin, peer, path-asn (= asn), country, region, prefix, router, class; conntrack: proto, port, src-group, dst-group")
	fl.StringVar(&f.metric, "metric", "bytes", "order by: bytes, requests, packets, retransmit-rate, rtt")
	fl.StringVar(&f.since, "since", "24h", "range: the last DURATION (e.g. 90m, 24h, 7d)")
	fl.StringVar(&f.from, "from", "", "range start (RFC 3339, \"YYYY-MM-DD[ HH:MM]\" UTC, Unix seconds or a duration ago); overrides --since")
	fl.StringVar(&f.to, "to", "", "range end (default: now)")
	fl.StringVar(&f.router, "router", "", "only this router")
	fl.StringVar(&f.class, "class", "", "only this traffic class (its configured name)")
	fl.StringVar(&f.country, "country", "", "only clients in this country (ISO code)")
	fl.IntVar(&f.limit, "limit", limit, "number of groups (0: all)")
	fl.StringVar(&f.format, "format", "table", "output: table, json or csv")
	fl.StringVar(&f.dataDir, "data-dir", "", "data directory (default: the configuration's data_dir; its netledger.yaml is read when --config is not given)")
	fl.StringVarP(&f.config, "config", "c", "", "configuration file of netledger serve")
}

// loadQueryConfig returns the configuration of the store to read: --config, else the
// netledger.yaml inside --data-dir (netledger demo leaves one), else the defaults.
func loadQueryConfig(configPath, dataDir string) (daemon.Config, error) {
	if configPath == "" && dataDir != "" {
		if p := filepath.Join(dataDir, "netledger.yaml"); fileExists(p) {
			configPath = p
		}
	}
	cfg, err := daemon.LoadConfig(configPath)
	if err != nil {
		return cfg, err
	}
	if dataDir != "" {
		cfg.DataDir = dataDir // an unset store.path follows it
	}
	return cfg, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// openQueryStore opens the embedded store of cfg for reading; it does not create one.
func openQueryStore(ctx context.Context, cfg daemon.Config) (*sqlite.Store, error) {
	sc := cfg.StoreConfig()
	if !fileExists(sc.Path) {
		return nil, fmt.Errorf("no store at %s: run `netledger serve` (or `netledger demo`) first, or point --data-dir/--config at its data", sc.Path)
	}
	return sqlite.Open(ctx, sc)
}

// asNames returns the AS names of cfg's geo data (nil when none are configured or they
// cannot be read: names are a convenience).
func asNames(cfg daemon.Config) query.Names {
	if len(cfg.Geo.ASNames) == 0 && len(cfg.Geo.ASNDatabases) == 0 {
		return nil
	}
	db, err := geo.Open(geo.Config{ASNames: cfg.Geo.ASNames, ASNDatabases: cfg.Geo.ASNDatabases}) // names only
	if err != nil {
		return nil
	}
	return db.ASName
}

// buildQuery turns the flags into a store query on the view that answers it.
func (f *queryFlags) buildQuery(cfg daemon.Config, now time.Time) (store.Query, error) {
	from, to, err := query.Range(f.since, f.from, f.to, now)
	if err != nil {
		return store.Query{}, err
	}
	if err := query.CheckFormat(f.format); err != nil {
		return store.Query{}, err
	}
	if f.limit < 0 {
		return store.Query{}, errors.New("--limit must not be negative")
	}
	by := f.by
	if by == "path-asn" {
		by = "asn"
	}
	q := store.Query{By: by, From: from, To: to, Router: f.router, Class: f.class, Country: f.country,
		Limit: f.limit, Metric: f.metric, Step: f.step}
	if err := query.CheckQuery(q); err != nil {
		return q, err
	}
	var filters []string
	for name, v := range map[string]string{"router": f.router, "class": f.class, "country": f.country} {
		if v != "" {
			filters = append(filters, name)
		}
	}
	q.View, err = aggregate.Pick(cfg.Accounting.EffectiveViews(), by, filters...)
	return q, err
}

// runQuery answers top (series false) or series.
func runQuery(cmd *cobra.Command, f *queryFlags, series bool) error {
	cfg, err := loadQueryConfig(f.config, f.dataDir)
	if err != nil {
		return err
	}
	q, err := f.buildQuery(cfg, time.Now())
	if err != nil {
		return err
	}
	if series && q.Step == 0 {
		q.Step = seriesStep(q.From, q.To, time.Now(), cfg.StoreConfig().Retention)
	}
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	st, err := openQueryStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	out := query.Output{Query: q, Names: asNames(cfg), Format: f.format}
	if series {
		res, err := st.Series(ctx, q)
		if err != nil {
			return err
		}
		return query.Series(cmd.OutOrStdout(), out, res)
	}
	res, err := st.Top(ctx, q)
	if err != nil {
		return err
	}
	return query.Top(cmd.OutOrStdout(), out, res)
}

// seriesStep is the step of a series without --step: the finest resolution (1m, 1h, 1d) still
// kept at from that gives at most 1,440 points, as the store would choose. It is chosen here
// and passed on so that the rates are over the step the buckets really have (the answer only
// says which stored resolution it was read from, and a sparse series shows no step).
func seriesStep(from, to, now time.Time, ret sqlite.Retention) time.Duration {
	span := to.Sub(from)
	for _, c := range []struct{ step, ret time.Duration }{{time.Minute, ret.Base}, {time.Hour, ret.Hourly}} {
		if span <= 1440*c.step && (c.ret == 0 || !from.Before(now.Add(-c.ret))) {
			return c.step
		}
	}
	return 24 * time.Hour
}
