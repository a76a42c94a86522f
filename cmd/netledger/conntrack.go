package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/sync/errgroup"

	"github.com/netledger/netledger/internal/api"
	"github.com/netledger/netledger/internal/export/ctcsv"
	"github.com/netledger/netledger/internal/source/conntrack"
)

// conntrackFlags mirror the original conntrack_accounting tool's flags (same names; the
// original's single-dash spelling -src=… is accepted too).
type conntrackFlags struct {
	src, dst               []string
	srcMask, dstMask       string
	srcPrefix6, dstPrefix6 int
	exclude                []string
	includeICMP            bool
	pipe, output, ports    string
	interval               int64
	trackOpen              bool
	netns                  string
	zones                  []uint
	mark, markMask         uint32
	rcvbuf                 int
	reliableEvents         bool
	listen                 string
}

func addConntrackFlags(fs *pflag.FlagSet, f *conntrackFlags) {
	d := conntrack.DefaultConfig()
	fs.StringSliceVar(&f.src, "src", nil, "source network filter(s), CIDR, comma-separated or repeated")
	fs.StringVar(&f.srcMask, "src-group-mask", "255.255.255.255", "IPv4 source group mask, may be non-contiguous (255.239.255.0)")
	fs.IntVar(&f.srcPrefix6, "src-group-prefix6", 128, "IPv6 source group prefix length")
	fs.StringSliceVar(&f.dst, "dst", nil, "destination network filter(s), CIDR")
	fs.StringVar(&f.dstMask, "dst-group-mask", "255.255.255.255", "IPv4 destination group mask")
	fs.IntVar(&f.dstPrefix6, "dst-group-prefix6", 128, "IPv6 destination group prefix length")
	fs.StringSliceVar(&f.exclude, "exclude-ip", nil, "exclude connections from or to these addresses")
	fs.BoolVar(&f.includeICMP, "include-icmp", false, "include ICMP and ICMPv6 flows")
	fs.StringVar(&f.pipe, "pipe", "", "FIFO to write rows to instead of stdout (created with a 32 MiB buffer)")
	fs.StringVar(&f.output, "output", "", "folder receiving one traffic_<time>.csv per interval")
	fs.Int64Var(&f.interval, "interval", int64(d.Interval/time.Second), "output interval in seconds")
	fs.StringVar(&f.ports, "ports", "", "file of proto:port lines to account by port (others: -1); reloaded on change")
	fs.BoolVar(&f.trackOpen, "track-open", false, "track open connections (adds open_connections)")
	fs.StringVar(&f.netns, "netns", "", "network namespace to account (path such as /run/netns/NAME)")
	fs.UintSliceVar(&f.zones, "zone", nil, "account only these conntrack zones")
	fs.Uint32Var(&f.mark, "mark", 0, "account only flows with ct mark & mark-mask == mark")
	fs.Uint32Var(&f.markMask, "mark-mask", 0, "mask for -mark (0: no mark filter)")
	fs.IntVar(&f.rcvbuf, "receive-buffer", d.ReceiveBuffer, "event socket receive buffer in bytes")
	fs.BoolVar(&f.reliableEvents, "reliable-events", d.ReliableEvents, "deliver DESTROY events reliably: exact final counters, but a full event socket holds back the host's packets (off: overruns lose events, dumps recover)")
	fs.StringVar(&f.listen, "listen", "127.0.0.1:8792", "address of /metrics and /healthz: events, overruns, flows, rows (empty: none)")
}

// config turns the flags into the agent's and the writer's configuration.
func (f *conntrackFlags) config() (conntrack.Config, ctcsv.Config, error) {
	cfg := conntrack.DefaultConfig()
	var err error
	parse := func(list []string) ([]netip.Prefix, error) {
		var out []netip.Prefix
		for _, s := range list {
			p, err := netip.ParsePrefix(strings.TrimSpace(s))
			if err != nil {
				return nil, fmt.Errorf("invalid network filter: %w", err)
			}
			out = append(out, p.Masked())
		}
		return out, nil
	}
	if cfg.Src, err = parse(f.src); err != nil {
		return cfg, ctcsv.Config{}, err
	}
	if cfg.Dst, err = parse(f.dst); err != nil {
		return cfg, ctcsv.Config{}, err
	}
	if cfg.SrcGroupMask, err = netip.ParseAddr(f.srcMask); err != nil {
		return cfg, ctcsv.Config{}, fmt.Errorf("invalid -src-group-mask: %w", err)
	}
	if cfg.DstGroupMask, err = netip.ParseAddr(f.dstMask); err != nil {
		return cfg, ctcsv.Config{}, fmt.Errorf("invalid -dst-group-mask: %w", err)
	}
	cfg.SrcGroupPrefix6, cfg.DstGroupPrefix6 = f.srcPrefix6, f.dstPrefix6
	for _, s := range f.exclude {
		a, err := netip.ParseAddr(strings.TrimSpace(s))
		if err != nil {
			return cfg, ctcsv.Config{}, fmt.Errorf("invalid -exclude-ip: %w", err)
		}
		cfg.Exclude = append(cfg.Exclude, a.Unmap())
	}
	cfg.IncludeICMP, cfg.Ports, cfg.TrackOpen, cfg.NetNS = f.includeICMP, f.ports, f.trackOpen, f.netns
	if f.interval > 0 {
		cfg.Interval = time.Duration(f.interval) * time.Second
	}
	for _, z := range f.zones {
		cfg.Zones = append(cfg.Zones, uint16(z))
	}
	cfg.Mark, cfg.MarkMask, cfg.ReceiveBuffer, cfg.ReliableEvents = f.mark, f.markMask, f.rcvbuf, f.reliableEvents
	out := ctcsv.Config{Stdout: f.pipe == "", Pipe: f.pipe, Dir: f.output, TrackOpen: f.trackOpen, PipeSize: ctcsv.DefaultPipeSize}
	return cfg, out, cfg.Validate()
}

// singleDash rewrites the original's -flag=value spelling to --flag=value.
func singleDash(args []string) []string {
	out := make([]string, 0, len(args))
	for i, a := range args {
		if a == "--" {
			return append(out, args[i:]...)
		}
		if len(a) > 2 && a[0] == '-' && a[1] != '-' {
			a = "-" + a
		}
		out = append(out, a)
	}
	return out
}

func init() {
	var f conntrackFlags
	cmd := &cobra.Command{
		Use:   "conntrack",
		Short: "Account conntrack traffic per group, as the saarCTF conntrack accounting tool",
		Long: `Listen to Linux conntrack (events and a dump every interval) and write, every interval,
one CSV line per (proto, source group, destination group, port):
time_ns,proto,src,dst,port,src_packets,dst_packets,src_bytes,dst_bytes,connection_count,connection_time_ms[,open_connections]
Traffic is accounted to the side that opened the connection. Lines go to stdout, or to a FIFO
(-pipe) for Telegraf, and to one file per interval in -output. Needs CAP_NET_ADMIN; turns on
nf_conntrack_acct and nf_conntrack_timestamp. Example (saarCTF, a group per team /24):
  netledger conntrack -src=10.32.0.0/11 -src-group-mask=255.239.255.0 -dst=10.32.0.0/11 \
    -dst-group-mask=255.239.255.0 -pipe=/tmp/conntrack_acct -output=/root/conntrack_data/new -track-open`,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := cmd.Flags().Parse(singleDash(args)); err != nil {
				return err
			}
			if h, _ := cmd.Flags().GetBool("help"); h {
				return cmd.Help()
			}
			if cmd.Flags().NArg() > 0 {
				return fmt.Errorf("unexpected arguments: %v", cmd.Flags().Args())
			}
			return runConntrack(cmd, &f)
		},
	}
	addConntrackFlags(cmd.Flags(), &f)
	cmd.Flags().BoolP("help", "h", false, "help for conntrack")
	rootCmd.AddCommand(cmd)
}

func runConntrack(cmd *cobra.Command, f *conntrackFlags) error {
	cfg, out, err := f.config()
	if err != nil {
		return err
	}
	w, err := ctcsv.Open(out, cmd.OutOrStdout(), nil)
	if err != nil {
		return err
	}
	defer w.Close()
	reg := prometheus.NewRegistry()
	agent, err := conntrack.New(cfg, conntrack.Deps{Rows: w.Write, Registerer: reg})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	return runServing(ctx, f.listen, reg, agent.Run)
}

// runServing runs run until ctx is done, serving reg's metrics and /healthz on listen beside it
// (none when listen is empty). A cancelled context is a clean stop.
func runServing(ctx context.Context, listen string, reg prometheus.Gatherer, run func(context.Context) error) error {
	g, ctx := errgroup.WithContext(ctx)
	if listen != "" {
		srv, err := api.New(api.Config{Listen: listen}, api.Deps{Gatherer: reg, Logger: slog.Default()})
		if err != nil {
			return err
		}
		g.Go(func() error { return srv.Run(ctx) })
	}
	g.Go(func() error { return run(ctx) })
	if err := g.Wait(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
