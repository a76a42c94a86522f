package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/netledger/netledger/internal/source/ctimport"
	"github.com/netledger/netledger/internal/store/sqlite"
)

type importFlags struct {
	watch, move     string
	config, dataDir string
	storePath       string
	interval        time.Duration
	poll, settle    time.Duration
	once            bool
	listen          string
}

func init() {
	var f importFlags
	d := ctimport.DefaultConfig()
	cmd := &cobra.Command{
		Use:   "import --watch DIR --move DIR",
		Short: "Import conntrack CSV files from a watched folder into the store",
		Long: `Import conntrack accounting CSV files — written by 'netledger conntrack --output DIR' or by
the original conntrack_accounting tool — into the store's conntrack view, then move them to
--move. Files already in the folder are imported first (those that arrived while the importer
was down). Importing is idempotent: a file is identified by the SHA-256 of its content and marked
imported in the same transaction as its rows, so a file imported twice changes nothing (it is
moved as a duplicate). A file with one malformed line is moved to MOVE/rejected with a
NAME.error.txt report naming the line, and none of its rows are imported.

The store is the one 'netledger serve' uses: store.path from --config, by default
<data_dir>/netledger.db.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runImport(cmd, f) },
	}
	fs := cmd.Flags()
	fs.StringVar(&f.watch, "watch", "", "folder new CSV files arrive in (required)")
	fs.StringVar(&f.move, "move", "", "folder imported files are moved to; rejected ones go to MOVE/rejected (required)")
	fs.StringVarP(&f.config, "config", "c", "", "netledger serve configuration file, for the store")
	fs.StringVar(&f.dataDir, "data-dir", "", "override data_dir")
	fs.StringVar(&f.storePath, "store", "", "override store.path (the SQLite database file)")
	fs.DurationVar(&f.interval, "interval", 15*time.Second, "the interval the CSV rows sum (the agent's --interval); a row stamped t is stored at [t-interval, t)")
	fs.DurationVar(&f.poll, "poll", d.Poll, "how often the folder is scanned")
	fs.DurationVar(&f.settle, "settle", d.Settle, "how long a file must be unmodified before it is read (files written in place)")
	fs.StringVar(&f.listen, "listen", "127.0.0.1:8793", "address of /metrics and /healthz: files imported, rejected, rows, store commits (empty: none; not with --once)")
	fs.BoolVar(&f.once, "once", false, "import what the folder holds now, print one line per file, and exit (1 if a file was rejected)")
	cmd.MarkFlagRequired("watch")
	cmd.MarkFlagRequired("move")
	rootCmd.AddCommand(cmd)
}

func runImport(cmd *cobra.Command, f importFlags) error {
	cfg, err := loadServeConfig(serveFlags{config: f.config, dataDir: f.dataDir})
	if err != nil {
		return err
	}
	sc := cfg.StoreConfig()
	if f.storePath != "" {
		sc.Path = f.storePath
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	db, err := sqlite.Open(ctx, sc)
	if err != nil {
		return err
	}
	defer db.Close()
	target, err := ctimport.NewStoreTarget(db, f.interval)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(db.Collectors()...)
	im, err := ctimport.New(ctimport.Config{Watch: f.watch, Move: f.move, Poll: f.poll, Settle: f.settle}, target, reg, slog.Default())
	if err != nil {
		return err
	}
	if !f.once {
		return runServing(ctx, f.listen, reg, im.Run)
	}
	res, err := im.Scan(ctx, time.Now())
	rejected := 0
	for _, r := range res {
		switch r.Status {
		case "rejected":
			rejected++
			fmt.Fprintf(cmd.OutOrStdout(), "rejected  %s: %v\n", r.Name, r.Err)
		case "imported":
			fmt.Fprintf(cmd.OutOrStdout(), "imported  %s (%d rows)\n", r.Name, r.Rows)
		default:
			fmt.Fprintf(cmd.OutOrStdout(), "%-9s %s\n", r.Status, r.Name)
		}
	}
	if err != nil {
		return err
	}
	if rejected > 0 {
		return fmt.Errorf("%d file(s) rejected, see %s/rejected", rejected, f.move)
	}
	return nil
}
