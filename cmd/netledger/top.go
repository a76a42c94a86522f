package main

import "github.com/spf13/cobra"

func init() {
	var f queryFlags
	cmd := &cobra.Command{
		Use:   "top",
		Short: "Print the largest groups (ASes, prefixes, countries, routers…) of the accounted traffic",
		Long: `Print the top groups of the accounted traffic over a time range, from the embedded store.

  netledger top --by peer --since 24h                  upstream (peer) ASes, last day
  netledger top --by origin --router edge-fra          origin ASes behind one router
  netledger top --by country --metric retransmit-rate  countries by packet loss
  netledger top --by prefix --from 2026-11-01 --to 2026-11-08 --format csv

Dimensions: asn (every AS on the path, each once per route), origin, peer, path-asn (= asn),
country, region (continent), prefix (longest match; "unrouted" for clients without a route),
router, class. Metrics: bytes, requests, packets, retransmit-rate (retransmits ÷ packets),
rtt (mean). The rate column is bits per second over the whole range. The answer comes from
the coarsest stored resolution that covers the range exactly (daily, hourly, 1 minute).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runQuery(cmd, &f, false) },
	}
	f.register(cmd, 20)
	rootCmd.AddCommand(cmd)
}
