package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/netledger/netledger/internal/routing"
	"github.com/netledger/netledger/internal/routing/mrt"
	"github.com/netledger/netledger/internal/routing/routers"
)

// ribFlags are the flags shared by the rib commands.
type ribFlags struct {
	config string
	api    string
	router string
	peer   string
	mrt    []string
	json   bool
}

func init() { rootCmd.AddCommand(newRibCmd()) }

func newRibCmd() *cobra.Command {
	var f ribFlags
	ribCmd := &cobra.Command{
		Use:   "rib",
		Short: "Load, query and list the routers' routing tables of a running netledger serve",
		Long: `The rib commands talk to a running ` + "`netledger serve`" + ` over its HTTP API (http.listen of
the configuration given by --config, NETLEDGER_HTTP_LISTEN, or --api). The tables live in the
daemon: "rib load" replaces a router's table there, "rib lookup" and "rib status" read it.
A table loaded with "rib load" lasts until the daemon restarts, which loads the routers' mrt
files of the configuration again. "rib lookup --mrt FILE…" works without a daemon.`,
	}
	ribCmd.PersistentFlags().StringVarP(&f.config, "config", "c", "", "configuration file of the daemon (for http.listen)")
	ribCmd.PersistentFlags().StringVar(&f.api, "api", "", "address of the daemon's HTTP API (default: http.listen of the configuration)")
	ribCmd.PersistentFlags().BoolVar(&f.json, "json", false, "print JSON")

	loadCmd := &cobra.Command{
		Use:   "load --router R [--peer P] FILE…",
		Short: "Replace a router's table with MRT files: a RIB dump, then update files in order",
		Long: `Send MRT files (plain, gzip or bzip2) to the daemon, which builds the router's table from
them in order (a RIB dump, then BGP4MP update files) and swaps it in atomically; on error the
old table stays. --peer takes one peer of a multi-peer dump (its address, or its AS number as
3356 or AS3356); without it every peer's route is a path of the prefix and the best one is kept:
highest LOCAL_PREF, shortest AS path, lowest ORIGIN, lowest MED, then the peer seen first.
Routers with a BGP session refuse: the session is their table's only writer. The daemon takes
loads only from its own host, of at most 4 GiB.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return ribLoad(cmd, f, args) },
	}
	loadCmd.Flags().StringVarP(&f.router, "router", "r", "", "router name (required)")
	loadCmd.Flags().StringVar(&f.peer, "peer", "", "take only this peer of the dump (address or AS number)")
	loadCmd.MarkFlagRequired("router")

	lookupCmd := &cobra.Command{
		Use:   "lookup --router R ADDRESS…",
		Short: "Print the longest-match prefix, AS path, peer AS and origin AS of addresses",
		Long: `Look addresses up in a router's table: prefix, peer AS (first AS of the path), origin AS
(last AS; the lowest member of a final AS_SET) and AS path. An address without a route prints
"-". With --mrt FILE (repeatable, applied in order, --peer as for load) the table is built in
this process from the files instead, without a daemon.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return ribLookup(cmd, f, args) },
	}
	lookupCmd.Flags().StringVarP(&f.router, "router", "r", "", "router name (required without --mrt)")
	lookupCmd.Flags().StringArrayVar(&f.mrt, "mrt", nil, "build the table from this MRT file instead of asking the daemon (repeatable)")
	lookupCmd.Flags().StringVar(&f.peer, "peer", "", "with --mrt: take only this peer of the dump")

	statusCmd := &cobra.Command{
		Use:   "status",
		Short: "List the routers: sessions, prefix counts, table age",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return ribStatus(cmd, f) },
	}
	ribCmd.AddCommand(loadCmd, lookupCmd, statusCmd)
	return ribCmd
}

// apiBase returns the daemon's API URL.
func (f ribFlags) apiBase() (string, error) {
	addr := f.api
	if addr == "" {
		cfg, err := loadServeConfig(serveFlags{config: f.config})
		if err != nil {
			return "", err
		}
		addr = cfg.HTTP.Listen
	}
	if strings.Contains(addr, "://") {
		return strings.TrimRight(addr, "/"), nil
	}
	if strings.HasPrefix(addr, ":") {
		addr = "127.0.0.1" + addr
	}
	return "http://" + addr, nil
}

var ribClient = &http.Client{Timeout: 10 * time.Minute}

// ribCall sends a request to the daemon and decodes a JSON answer into out.
func ribCall(f ribFlags, method, path string, body io.Reader, contentType string, out any) error {
	base, err := f.apiBase()
	if err != nil {
		return err
	}
	req, err := http.NewRequest(method, base+path, body)
	if err != nil {
		return err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := ribClient.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach netledger serve at %s (is it running? --api/--config): %w", base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s", e.Error)
		}
		return fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	return json.Unmarshal(data, out)
}

func routerPath(pattern, router string) string {
	return strings.Replace(pattern, "{router}", url.PathEscape(router), 1)
}

func ribLoad(cmd *cobra.Command, f ribFlags, files []string) error {
	if _, err := mrt.ParsePeerSelector(f.peer); err != nil {
		return err
	}
	for _, name := range files {
		if _, err := os.Stat(name); err != nil {
			return err
		}
	}
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() { pw.CloseWithError(writeParts(mw, files)) }()
	path := routerPath(routers.LoadPath, f.router)
	if f.peer != "" {
		path += "?peer=" + url.QueryEscape(f.peer)
	}
	var res routers.LoadResult
	if err := ribCall(f, http.MethodPost, path, pr, mw.FormDataContentType(), &res); err != nil {
		pr.CloseWithError(err)
		return fmt.Errorf("router %s: %w", f.router, err)
	}
	if f.json {
		return printJSON(cmd.OutOrStdout(), res)
	}
	s := res.Load.Stats
	fmt.Fprintf(cmd.OutOrStdout(), "router %s: %d IPv4 + %d IPv6 prefixes from %d files in %s (%d announced, %d withdrawn, %d session drops, %d routes of other peers skipped, %d paths, %d records)\n",
		f.router, res.Router.IPv4, res.Router.IPv6, len(res.Load.Files), res.Load.Duration.Round(time.Millisecond),
		s.Announced, s.Withdrawn, s.SessionDrops, s.OtherPeers, s.Paths, s.Routes.Records)
	return nil
}

// writeParts streams the files as multipart parts, as they are (the daemon decompresses).
func writeParts(mw *multipart.Writer, files []string) error {
	for _, name := range files {
		part, err := mw.CreateFormFile("mrt", filepath.Base(name))
		if err != nil {
			return err
		}
		fh, err := os.Open(name)
		if err != nil {
			return err
		}
		_, err = io.Copy(part, fh)
		fh.Close()
		if err != nil {
			return err
		}
	}
	return mw.Close()
}

func ribLookup(cmd *cobra.Command, f ribFlags, args []string) error {
	addrs := make([]netip.Addr, len(args))
	for i, s := range args {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return fmt.Errorf("bad address %q", s)
		}
		addrs[i] = a
	}
	var routes []routers.Route
	if len(f.mrt) > 0 {
		peer, err := mrt.ParsePeerSelector(f.peer)
		if err != nil {
			return err
		}
		rib := routing.NewRIB()
		if _, err := mrt.LoadFiles(rib, peer, f.mrt...); err != nil {
			return err
		}
		for _, a := range addrs {
			routes = append(routes, routers.LookupRoute(rib, 0, a))
		}
	} else {
		if f.router == "" {
			return fmt.Errorf("--router is required (or --mrt FILE)")
		}
		q := url.Values{"address": args}
		if err := ribCall(f, http.MethodGet, routerPath(routers.LookupPath, f.router)+"?"+q.Encode(), nil, "", &routes); err != nil {
			return fmt.Errorf("router %s: %w", f.router, err)
		}
	}
	if f.json {
		return printJSON(cmd.OutOrStdout(), routes)
	}
	var b bytes.Buffer
	w := tabwriter.NewWriter(&b, 0, 8, 2, ' ', 0)
	fmt.Fprintln(w, "ADDRESS\tPREFIX\tPEER-AS\tORIGIN-AS\tAS-PATH")
	for _, r := range routes {
		if !r.Found {
			fmt.Fprintf(w, "%s\t-\t-\t-\t-\n", r.Address)
			continue
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", r.Address, r.Prefix, asText(r.PeerAS), asText(r.OriginAS), r.Path)
	}
	w.Flush()
	_, err := cmd.OutOrStdout().Write(b.Bytes())
	return err
}

func asText(asn uint32) string {
	if asn == 0 {
		return "-"
	}
	return strconv.FormatUint(uint64(asn), 10)
}

func ribStatus(cmd *cobra.Command, f ribFlags) error {
	var st []routers.Status
	if err := ribCall(f, http.MethodGet, routers.StatusPath, nil, "", &st); err != nil {
		return err
	}
	if f.json {
		return printJSON(cmd.OutOrStdout(), st)
	}
	now := time.Now()
	var b bytes.Buffer
	w := tabwriter.NewWriter(&b, 0, 8, 2, ' ', 0)
	fmt.Fprintln(w, "ROUTER\tASN\tIPV4\tIPV6\tTABLE-AGE\tFED-BY\tSESSION")
	for _, s := range st {
		var feeds []string
		if s.Load != nil {
			l := "mrt"
			if s.Load.Error != "" {
				l = "mrt(failed)"
			}
			feeds = append(feeds, l)
		}
		session := "-"
		if s.Session != nil {
			feeds = append(feeds, "bgp")
			session = fmt.Sprintf("%s AS%d %s for %s", s.Session.Neighbor, s.Session.PeerASN, s.Session.State, age(now, s.Session.Since))
		}
		if len(feeds) == 0 {
			feeds = append(feeds, "-")
		}
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%s\t%s\t%s\n", s.Name, s.ASN, s.IPv4, s.IPv6, age(now, s.Updated),
			strings.Join(feeds, "+"), session)
	}
	w.Flush()
	for _, s := range st {
		if s.Load != nil && s.Load.Error != "" {
			fmt.Fprintf(&b, "%s: last mrt load failed: %s\n", s.Name, s.Load.Error)
		}
	}
	_, err := cmd.OutOrStdout().Write(b.Bytes())
	return err
}

func age(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return now.Sub(t).Round(time.Second).String()
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
