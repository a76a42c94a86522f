// Command netledger is a traffic accounting and analysis system: it answers where traffic goes
// — over which router and upstream, to which prefixes, ASNs and countries — and with what TCP
// quality. Each subcommand lives in its own file and registers itself on rootCmd.
package main

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

var rootCmd = &cobra.Command{
	Use:           "netledger",
	Short:         "Traffic accounting per router, prefix, AS and country, with TCP quality",
	SilenceUsage:  true,
	SilenceErrors: true,
}

func init() {
	rootCmd.AddCommand(&cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), "netledger", version)
		},
	})
}

func main() {
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if err := rootCmd.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "netledger:", err)
		os.Exit(1)
	}
}
