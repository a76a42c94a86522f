//go:build netledger_accounting

package main

import "github.com/spf13/cobra"

func init() {
	var f queryFlags
	cmd := &cobra.Command{
		Use:   "series",
		Short: "Print the accounted traffic of the top groups per time step",
		Long: `Print a time series of the accounted traffic: for each step of the range, the groups of
--by (the same selection as netledger top).

  netledger series --by router --since 6h --step 10m
  netledger series --by country --country DE --since 7d --step 24h --format csv

The rate column is bits per second over each step. --step 0 uses the stored resolution.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runQuery(cmd, &f, true) },
	}
	f.register(cmd, 0)
	cmd.Flags().DurationVar(&f.step, "step", 0, "bucket length (e.g. 1m, 1h, 24h; 0: the stored resolution)")
	rootCmd.AddCommand(cmd)
}
