package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/netledger/netledger/internal/daemon"
	"github.com/netledger/netledger/internal/geo"
)

// geoFlags are the flags of `netledger geo lookup`.
type geoFlags struct {
	config                           string
	countryDBs, asnDBs, rir, asNames []string
	format                           string
	verbose                          bool
}

func init() {
	geoCmd := &cobra.Command{
		Use:   "geo",
		Short: "Check the country, continent and AS data",
	}
	geoCmd.AddCommand(newGeoLookupCmd())
	rootCmd.AddCommand(geoCmd)
}

// newGeoLookupCmd builds `netledger geo lookup` with its own flag values.
func newGeoLookupCmd() *cobra.Command {
	var f geoFlags
	lookup := &cobra.Command{
		Use:   "lookup ADDRESS…",
		Short: "Print the country, continent, AS number and AS name of addresses",
		Long: `Look addresses up in the geo data of the configuration file (--config, its geo
section) or of the files given by flags (which replace the file's lists): mmdb country and ASN
databases, RIR delegated statistics files, asn<TAB>name files. Unknown values print as "-".
--verbose also prints what each file gave, with its first bad lines.`,
		Example: `  netledger geo lookup --country-db GeoLite2-Country.mmdb --asn-db GeoLite2-ASN.mmdb 1.1.1.1 2a00:1450::1
  netledger geo lookup --rir delegated-ripencc-extended-latest --as-names asn.txt 193.0.6.139
  netledger geo lookup -c /etc/netledger.yaml --format json 8.8.8.8`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runGeoLookup(cmd, f, args) },
	}
	fl := lookup.Flags()
	fl.StringVarP(&f.config, "config", "c", "", "configuration file whose geo section to use")
	fl.StringArrayVar(&f.countryDBs, "country-db", nil, "country mmdb database (repeatable, in precedence order)")
	fl.StringArrayVar(&f.asnDBs, "asn-db", nil, "ASN mmdb database (repeatable)")
	fl.StringArrayVar(&f.rir, "rir", nil, "RIR delegated(-extended) statistics file (repeatable)")
	fl.StringArrayVar(&f.asNames, "as-names", nil, "asn<TAB>name file (repeatable)")
	fl.StringVar(&f.format, "format", "table", "output format: table or json")
	fl.BoolVarP(&f.verbose, "verbose", "v", false, "print what each file gave")
	return lookup
}

// geoResult is one looked-up address (the JSON output).
type geoResult struct {
	Address   string `json:"address"`
	Country   string `json:"country"`
	Continent string `json:"continent"`
	ASN       uint32 `json:"asn"`
	ASName    string `json:"as_name"`
}

func runGeoLookup(cmd *cobra.Command, f geoFlags, args []string) error {
	if f.format != "table" && f.format != "json" {
		return fmt.Errorf("unknown format %q (table or json)", f.format)
	}
	addrs := make([]netip.Addr, len(args))
	for i, s := range args {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return fmt.Errorf("invalid address %q", s)
		}
		addrs[i] = a
	}
	cfg := geo.DefaultConfig()
	if f.config != "" {
		dc, err := daemon.LoadConfig(f.config)
		if err != nil {
			return err
		}
		cfg = dc.Geo
	}
	for _, o := range []struct{ flag, dst *[]string }{
		{&f.countryDBs, &cfg.CountryDatabases}, {&f.asnDBs, &cfg.ASNDatabases},
		{&f.rir, &cfg.RIRFiles}, {&f.asNames, &cfg.ASNames},
	} {
		if len(*o.flag) > 0 {
			*o.dst = *o.flag
		}
	}
	if len(cfg.CountryDatabases)+len(cfg.ASNDatabases)+len(cfg.RIRFiles)+len(cfg.ASNames) == 0 {
		return fmt.Errorf("no geo data: give --config or files (--country-db, --asn-db, --rir, --as-names)")
	}
	db, err := geo.Open(cfg)
	if err != nil {
		return err
	}
	if f.verbose {
		printGeoReports(cmd.ErrOrStderr(), db)
	}
	results := make([]geoResult, len(addrs))
	for i, a := range addrs {
		info := db.Lookup(a)
		results[i] = geoResult{
			Address: a.String(), Country: info.CountryCode(), Continent: info.ContinentCode(),
			ASN: info.ASN, ASName: db.ASName(info.ASN),
		}
	}
	out := cmd.OutOrStdout()
	if f.format == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(results)
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ADDRESS\tCOUNTRY\tCONTINENT\tASN\tAS NAME")
	for _, r := range results {
		asn := "-"
		if r.ASN != 0 {
			asn = "AS" + strconv.FormatUint(uint64(r.ASN), 10)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Address, dash(r.Country), dash(r.Continent), asn, dash(r.ASName))
	}
	return tw.Flush()
}

func printGeoReports(w io.Writer, db *geo.DB) {
	for _, r := range db.Reports() {
		fmt.Fprintf(w, "%s (%s): %d records, %d prefixes, %d ignored, %d bad\n",
			r.Path, r.Kind, r.Records, r.Prefixes, r.Ignored, r.Bad)
		for _, e := range r.Errors {
			fmt.Fprintf(w, "  %v\n", e)
		}
	}
	v4, v6 := db.Len()
	fmt.Fprintf(w, "table: %d IPv4 + %d IPv6 prefixes, %d AS names\n", v4, v6, db.Names())
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
