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

--limit keeps the top groups over the whole range (0: every group). The rate column is bits
per second over each step. Without --step, the finest stored resolution that gives at most
1,440 points.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runQuery(cmd, &f, true) },
	}
	f.register(cmd, 10)
	cmd.Flags().DurationVar(&f.step, "step", 0, "bucket length (e.g. 1m, 1h, 24h; 0: the stored resolution)")
	rootCmd.AddCommand(cmd)
}
