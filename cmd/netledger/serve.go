package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/netledger/netledger/internal/daemon"
)

// serveFlags are the flags of `netledger serve`; they override the file and the environment.
type serveFlags struct {
	config       string
	check        bool
	dumpConfig   bool
	dataDir      string
	reportListen string
	httpListen   string
	cpuProfile   string
}

func init() {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the collector and the pipeline",
		Long: `Run netledger: receive reports (UDP, protocol v2 and trafstat v1), keep them in the
spool, and run every configured component. Configuration: the file given by --config
(netledger.yaml), then NETLEDGER_* environment variables (NETLEDGER_ + the YAML path joined
with "_" in upper case, e.g. NETLEDGER_DATA_DIR, NETLEDGER_REPORT_LISTEN,
NETLEDGER_REPORT_V1_SECRET), then flags. SIGHUP re-reads the file and reloads the report keys.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runServe(cmd, f) },
	}
	cmd.Flags().StringVarP(&f.config, "config", "c", "", "configuration file (YAML; default: built-in defaults)")
	cmd.Flags().BoolVar(&f.check, "check", false, "validate the configuration and exit")
	cmd.Flags().BoolVar(&f.dumpConfig, "dump-config", false, "print the effective configuration (secrets redacted) and exit")
	cmd.Flags().StringVar(&f.dataDir, "data-dir", "", "override data_dir")
	cmd.Flags().StringVar(&f.reportListen, "report-listen", "", "override report.listen")
	cmd.Flags().StringVar(&f.httpListen, "http-listen", "", "override http.listen")
	cmd.Flags().StringVar(&f.cpuProfile, "cpu-profile", "", "write a CPU profile to this file until the daemon stops")
	cmd.Flags().MarkHidden("cpu-profile")
	rootCmd.AddCommand(cmd)
}

// loadServeConfig reads the file, then the environment, then the flags.
func loadServeConfig(f serveFlags) (daemon.Config, error) {
	cfg, err := daemon.LoadConfig(f.config)
	if err != nil {
		return cfg, err
	}
	unknown, err := daemon.ApplyEnv(&cfg, os.Environ())
	if err != nil {
		return cfg, err
	}
	for _, name := range unknown {
		slog.Warn("environment variable names no configuration key", "variable", name)
	}
	for _, o := range []struct {
		v   string
		dst *string
	}{{f.dataDir, &cfg.DataDir}, {f.reportListen, &cfg.Report.Listen}, {f.httpListen, &cfg.HTTP.Listen}} {
		if o.v != "" {
			*o.dst = o.v
		}
	}
	return cfg, nil
}

func runServe(cmd *cobra.Command, f serveFlags) error {
	cfg, err := loadServeConfig(f)
	if err != nil {
		return err
	}
	if f.dumpConfig {
		out, err := cfg.Redacted().Dump()
		if err != nil {
			return err
		}
		_, err = cmd.OutOrStdout().Write(out)
		return err
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid configuration: %w", err)
	}
	if f.check {
		fmt.Fprintln(cmd.OutOrStdout(), "configuration ok")
		return nil
	}
	log := slog.Default()
	d, err := daemon.New(cfg, log)
	if err != nil {
		return err
	}
	defer d.Close()
	if f.cpuProfile != "" {
		pf, err := os.Create(f.cpuProfile)
		if err != nil {
			return err
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			nc, err := loadServeConfig(f)
			if err == nil {
				err = d.Reload(nc)
			}
			if err != nil {
				log.Error("reload failed, keeping the previous keys", "err", err)
			}
		}
	}()
	log.Info("netledger serving", "version", version, "data_dir", cfg.DataDir)
	if err := d.Run(ctx); err != nil {
		return err
	}
	log.Info("netledger stopped")
	return d.Close()
}
