package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/netledger/netledger/client"
	"github.com/netledger/netledger/internal/daemon"
	"github.com/netledger/netledger/internal/demo"
	"github.com/netledger/netledger/internal/query"
	"github.com/netledger/netledger/internal/record"
)

// demoFlags are the flags of `netledger demo`.
type demoFlags struct {
	dataDir  string
	duration time.Duration
	rate     int
	clients  int
	networks int
	seed     uint64
}

func init() {
	var f demoFlags
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run netledger on generated routers, geo data and web-server load, then print top tables",
		Long: `Run netledger end to end on this machine, with no network and no server to install: generate
two routers' tables (MRT RIB dumps with a few thousand IPv4 and IPv6 routes), geo data and a
configuration into --data-dir, start the collector and the accounting pipeline in this process
on loopback ports, send a synthetic web-server load (many clients, heavy-tailed, several
traffic classes, retransmits and RTTs) through the report protocol for --duration, wait until
everything is committed to the embedded store, and print the top tables. The data directory
stays for netledger top, series, replay and serve. Running the demo again resets it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			_, err := runDemo(ctx, cmd.OutOrStdout(), f)
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.dataDir, "data-dir", "netledger-demo", "directory for the generated files, the spool and the store")
	fl.DurationVar(&f.duration, "duration", 10*time.Second, "how long to send the load")
	fl.IntVar(&f.rate, "rate", 20000, "requests reported per second")
	fl.IntVar(&f.clients, "clients", 20000, "distinct client addresses")
	fl.IntVar(&f.networks, "networks", 3000, "client networks (routes before more-specifics)")
	fl.Uint64Var(&f.seed, "seed", 1, "seed of the generated world and load")
	rootCmd.AddCommand(cmd)
}

// demoResult is what the demo sent and what the store holds.
type demoResult struct {
	Files                  *demo.Files
	Sent, SentBytes        uint64
	Accepted               uint64
	StoredRequests, Stored uint64 // Σ requests and bytes of the router view
	From, To               time.Time
}

func runDemo(ctx context.Context, w io.Writer, f demoFlags) (*demoResult, error) {
	if f.duration <= 0 || f.rate <= 0 || f.clients < 2 || f.networks < 10 {
		return nil, errors.New("--duration, --rate, --clients (≥ 2) and --networks (≥ 10) must be positive")
	}
	res := &demoResult{}
	if err := demo.Prepare(f.dataDir); err != nil {
		return nil, err
	}
	world := demo.NewWorld(f.seed, f.networks)
	files, err := demo.Setup(f.dataDir, world, time.Now())
	if err != nil {
		return nil, err
	}
	res.Files = files
	fmt.Fprintf(w, "netledger demo in %s\n", files.Dir)
	for _, r := range world.Routers {
		fmt.Fprintf(w, "  router %s (AS%d): %d routes in %s, serving %s\n", r.Name, r.ASN, len(r.Routes),
			rel(filepath.Join(files.Dir, "rib", r.Name+".mrt")), joinPrefixes(r.Networks))
	}
	fmt.Fprintf(w, "  geo: %d client networks in %s, AS names in %s\n", len(world.Networks), rel(files.RIR), rel(files.ASNames))

	// The collector and the pipeline, as `netledger serve --config` would run them, but on
	// free loopback ports and with their log in the data directory.
	cfg, err := daemon.LoadConfig(files.Config)
	if err != nil {
		return nil, err
	}
	cfg.Report.Listen, cfg.HTTP.Listen = "127.0.0.1:0", "127.0.0.1:0"
	logFile, err := os.Create(filepath.Join(files.Dir, "demo.log"))
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	d, err := daemon.New(cfg, slog.New(slog.NewTextHandler(logFile, nil)))
	if err != nil {
		return nil, err
	}
	defer d.Close()
	runCtx, stopDaemon := context.WithCancel(context.WithoutCancel(ctx))
	defer stopDaemon()
	done := make(chan error, 1)
	go func() { done <- d.Run(runCtx) }()
	fail := func(err error) (*demoResult, error) {
		stopDaemon()
		<-done
		return nil, err
	}
	addr, err := d.Report.Addr(ctx)
	if err != nil {
		return fail(err)
	}
	if err := waitRouting(ctx, d, world); err != nil {
		return fail(err)
	}
	fmt.Fprintf(w, "  collector listening on %s (reports, protocol v2); log in %s\n", addr, rel(logFile.Name()))

	// The load: web servers reporting every request through the client package.
	fmt.Fprintf(w, "\nSending %d requests/s from %d clients for %s…\n", f.rate, f.clients, f.duration)
	res.From = time.Now().UTC()
	c, err := client.New(client.Config{Addr: addr.String(), KeyID: files.KeyID, Key: []byte(files.Key), QueueSize: 1 << 17})
	if err != nil {
		return fail(err)
	}
	load := demo.NewLoad(world, f.seed, f.clients)
	var r record.Record
	start := time.Now()
	tick := time.NewTicker(10 * time.Millisecond)
	total := uint64(float64(f.rate) * f.duration.Seconds())
	for now := start; res.Sent < total && ctx.Err() == nil; now = <-tick.C {
		due := min(uint64(float64(f.rate)*now.Sub(start).Seconds()), total)
		for ; res.Sent < due; res.Sent++ {
			load.Next(&r, time.Now().UnixNano())
			res.SentBytes += r.BytesOut
			c.Report(r)
		}
	}
	tick.Stop()
	sendEnd := time.Now().UTC()
	if err := c.Close(); err != nil {
		return fail(err)
	}
	if st := c.Stats(); st.Dropped > 0 || st.SendErrors > 0 {
		return fail(fmt.Errorf("the load generator dropped %d reports and had %d send errors: lower --rate", st.Dropped, st.SendErrors))
	}
	if ctx.Err() != nil {
		return fail(ctx.Err())
	}
	// Wait until the collector has taken every datagram, then stop: sources stop first, the
	// spool syncs, and the pipeline accounts and commits everything before Run returns.
	res.Accepted = waitAccepted(ctx, d.Registry, res.Sent)
	if res.Accepted < res.Sent {
		fmt.Fprintf(w, "Warning: %d reports did not arrive or were refused (%s); the totals below are what was accepted.\n",
			res.Sent-res.Accepted, rejected(d.Registry))
	}
	stopDaemon()
	if err := <-done; err != nil {
		return nil, fmt.Errorf("netledger stopped with an error: %w", err)
	}
	if err := d.Close(); err != nil {
		return nil, err
	}
	res.To = time.Now().UTC().Truncate(time.Minute).Add(time.Minute)
	res.From = res.From.Truncate(time.Minute)
	fmt.Fprintf(w, "Sent %s requests (%s) in %s; the collector accepted %s; all committed to %s.\n"+
		"(Rates in the tables are over the %s the load ran.)\n",
		query.Count(res.Sent), query.Bytes(res.SentBytes), f.duration, query.Count(res.Accepted), rel(cfg.StoreConfig().Path), f.duration)

	qcfg, err := loadQueryConfig(files.Config, "")
	if err != nil {
		return nil, err
	}
	st, err := openQueryStore(ctx, qcfg)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	names := asNames(qcfg)
	for _, t := range []struct {
		title, by, metric string
		limit             int
	}{
		{"Upstream (peer) ASes", "peer", "bytes", 8},
		{"Origin ASes", "origin", "bytes", 10},
		{"Every AS on the path (each counted once per route)", "asn", "bytes", 10},
		{"Countries", "country", "bytes", 10},
		{"Prefixes (longest match)", "prefix", "bytes", 10},
		{"Routers", "router", "bytes", 0},
		{"Traffic classes", "class", "bytes", 0},
		{"Worst retransmit rate, by country", "country", "retransmit-rate", 8},
	} {
		qf := queryFlags{by: t.by, metric: t.metric, from: res.From.Format(time.RFC3339), to: res.To.Format(time.RFC3339), limit: t.limit, format: "table"}
		q, err := qf.buildQuery(qcfg, time.Now())
		if err != nil {
			return nil, err
		}
		rows, err := st.Top(ctx, q)
		if err != nil {
			return nil, err
		}
		if t.by == "router" {
			for _, x := range rows {
				res.StoredRequests += x.Metrics.Requests
				res.Stored += x.Metrics.Bytes
			}
		}
		fmt.Fprintf(w, "\n== %s ==\n", t.title)
		shown := q // rates over the time the load ran, not the whole minutes queried
		shown.From, shown.To = start, sendEnd
		if err := query.Top(w, query.Output{Query: shown, Names: names, Format: "table"}, rows); err != nil {
			return nil, err
		}
	}
	if res.Accepted == res.Sent && (res.Stored != res.SentBytes || res.StoredRequests != res.Sent) {
		return res, fmt.Errorf("the store holds %d requests and %d bytes, but %d requests and %d bytes were sent and accepted", res.StoredRequests, res.Stored, res.Sent, res.SentBytes)
	}
	if res.StoredRequests != res.Accepted {
		return res, fmt.Errorf("the store holds %d requests, the collector accepted %d", res.StoredRequests, res.Accepted)
	}
	fmt.Fprintf(w, "\nThe store holds exactly what was sent: %s requests, %d bytes.\n", query.Count(res.StoredRequests), res.Stored)
	printNext(w, files, world)
	return res, nil
}

// waitRouting waits until every router's table answers for its first route (the MRT files
// load when the daemon starts).
func waitRouting(ctx context.Context, d *daemon.Daemon, world *demo.World) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		ready := true
		for i, r := range d.Routers() {
			if _, _, ok := r.Table.Lookup(world.Routers[i].Routes[0].Prefix.Addr()); !ok {
				ready = false
			}
		}
		if ready {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("the routers' tables did not load within 30 s: see demo.log")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// waitAccepted waits until the collector accepted want reports, or until the count stops
// moving (reports lost on the way), and returns the count.
func waitAccepted(ctx context.Context, g prometheus.Gatherer, want uint64) uint64 {
	var last uint64
	still := 0
	for {
		n := counter(g, "netledger_reports_accepted_total")
		if n >= want || still >= 100 || ctx.Err() != nil {
			return n
		}
		if n == last {
			still++
		} else {
			still = 0
		}
		last = n
		time.Sleep(50 * time.Millisecond)
	}
}

// rejected describes the collector's rejections and receive-buffer drops.
func rejected(g prometheus.Gatherer) string {
	mfs, err := g.Gather()
	if err != nil {
		return err.Error()
	}
	var parts []string
	for _, mf := range mfs {
		if mf.GetName() != "netledger_reports_rejected_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if v := m.GetCounter().GetValue(); v > 0 {
				parts = append(parts, fmt.Sprintf("%s %.0f", m.GetLabel()[0].GetValue(), v))
			}
		}
	}
	if len(parts) == 0 {
		return "none rejected: lost on the way, see netstat -su receive buffer errors"
	}
	return "rejected: " + strings.Join(parts, ", ")
}

// counter returns the sum of a counter's series.
func counter(g prometheus.Gatherer, name string) uint64 {
	mfs, err := g.Gather()
	if err != nil {
		return 0
	}
	var v float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				v += m.GetCounter().GetValue()
			}
		}
	}
	return uint64(v)
}

func rel(p string) string {
	wd, err := os.Getwd()
	if err != nil {
		return p
	}
	if r, err := filepath.Rel(wd, p); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return p
}

func joinPrefixes[T fmt.Stringer](l []T) string {
	s := make([]string, len(l))
	for i, p := range l {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}

func printNext(w io.Writer, files *demo.Files, world *demo.World) {
	dir := rel(files.Dir)
	fmt.Fprintf(w, `
Explore the data the demo left in %[1]s:
  netledger top --data-dir %[1]s --by origin --since 1h
  netledger top --data-dir %[1]s --by prefix --router %[2]s --class video --limit 10
  netledger top --data-dir %[1]s --by peer --country DE --format json
  netledger series --data-dir %[1]s --by class --since 1h --step 1m

Keep collecting, with the demo's routers and geo data:
  netledger serve --config %[3]s

Point real web servers at it (reports on UDP 127.0.0.1:8789; set report.listen to
"[::]:8789" in %[3]s to take them from other hosts):
  - Go servers: the client package (client.New with key id %[4]d and the key in %[5]s) and its
    net/http middleware, which reads TCP_INFO per request;
  - any server: netledger tcpinfo --addr COLLECTOR:8789 --key-file %[5]s --ports 80,443 on the
    server host reports every TCP connection from the kernel;
  - trafstat's nginx module unchanged: enable report.v1 with its secret;
  - test by hand: netledger send --key-file %[5]s --client 203.0.113.7 --bytes 1500000
Point your routers at it: in %[3]s, give each router its server networks and its table,
from MRT RIB dumps (mrt: [files], e.g. from bgpdump-compatible collectors) or from a BGP
session with the embedded speaker (bgp: {neighbor: ROUTER-ADDRESS, peer_asn: ASN}); geo data
from MaxMind/DB-IP/IPinfo mmdb files or RIR delegated files (docs/configuration.md).
`, dir, world.Routers[0].Name, rel(files.Config), files.KeyID, rel(files.KeyFile))
}
