package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/netledger/netledger/internal/routing/mrt"
)

func init() {
	var short bool
	mrtCmd := &cobra.Command{
		Use:   "mrt",
		Short: "Read MRT routing dumps",
	}
	dumpCmd := &cobra.Command{
		Use:   "dump [-M] FILE…",
		Short: "Print MRT records in bgpdump's one-line format (-m; -M for the short form)",
		Long: "Print the records of MRT files (plain, gzip or bzip2) exactly as `bgpdump -m` does,\n" +
			"or as `bgpdump -M` with -M. A truncated or corrupt file ends with an error naming the\n" +
			"byte offset of the bad record, after every complete record before it.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			mode := mrt.ModeOneLine
			if short {
				mode = mrt.ModeShort
			}
			d := mrt.NewDumper(cmd.OutOrStdout(), mode)
			for _, name := range args {
				if err := dumpFile(d, name); err != nil {
					d.Flush()
					return err
				}
			}
			return d.Flush()
		},
	}
	dumpCmd.Flags().BoolVarP(&short, "short", "M", false, "bgpdump -M format (no attributes beyond the AS path)")
	mrtCmd.AddCommand(dumpCmd)
	rootCmd.AddCommand(mrtCmd)
}

func dumpFile(d *mrt.Dumper, name string) error {
	r, err := mrt.Open(name)
	if err != nil {
		return err
	}
	defer r.Close()
	if err := d.Dump(r); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}
