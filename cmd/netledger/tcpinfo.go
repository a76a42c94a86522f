package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/netledger/netledger/client"
	"github.com/netledger/netledger/internal/api"
	"github.com/netledger/netledger/internal/record"
	"github.com/netledger/netledger/internal/source/tcpinfo"
)

// tcpinfoFlags are the flags of `netledger tcpinfo`.
type tcpinfoFlags struct {
	addr, key, keyFile, listen string
	keyID                      uint32
	senderID                   uint64
	ports                      []uint
	addresses, classes         []string
	cfg                        tcpinfo.Config
}

func init() {
	f := tcpinfoFlags{cfg: tcpinfo.DefaultConfig()}
	cmd := &cobra.Command{
		Use:   "tcpinfo",
		Short: "Agent: report every TCP connection of this host from the kernel (sock_diag) to a collector",
		Long: `Report the bytes, segments, retransmits, MSS and RTT of every TCP connection of this host
(or of one network namespace) to a netledger collector, as signed v2 reports — from the
kernel's sock_diag interface, for any unmodified server (nginx, HAProxy, Caddy, Apache…).

Closed connections come from the kernel's destroy notifications, long-lived ones from a dump
of the established sockets every --interval, accounted by delta. Needs CAP_NET_ADMIN (root)
for the destroy notifications; --dump-only works without it and misses what closes between
two dumps.

  netledger tcpinfo --addr collector:8789 --key-file /etc/netledger/key --ports 80,443
  netledger tcpinfo --addr collector:8789 --key S --netns web --class 443=2 --class 2001:db8::/32=3
  netledger tcpinfo --addr collector:8789 --key-file K --cgroup /sys/fs/cgroup/system.slice/nginx.service

/metrics (--listen) shows notifications received and lost, overruns and records sent.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runTCPInfo(cmd, f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.addr, "addr", "127.0.0.1:8789", "collector UDP address")
	fl.StringVar(&f.key, "key", "", "v2 key secret")
	fl.StringVar(&f.keyFile, "key-file", "", "read the secret from this file (trailing newline removed)")
	fl.Uint32Var(&f.keyID, "key-id", 1, "v2 key id")
	fl.Uint64Var(&f.senderID, "sender-id", 0, "v2 sender id (0: random)")
	fl.StringVar(&f.listen, "listen", "127.0.0.1:8791", "address of /metrics and /healthz (empty: none)")
	fl.DurationVar(&f.cfg.Interval, "interval", f.cfg.Interval, "dump of established sockets every interval (0: destroy notifications only)")
	fl.IntVar(&f.cfg.ReceiveBuffer, "receive-buffer", f.cfg.ReceiveBuffer, "netlink receive buffer in bytes")
	fl.UintSliceVar(&f.ports, "ports", nil, "local ports to account (default: all)")
	fl.StringSliceVar(&f.addresses, "addresses", nil, "local addresses or prefixes to account (default: all)")
	fl.StringVar(&f.cfg.NetNS, "netns", "", "network namespace name (ip netns) or path (/proc/PID/ns/net)")
	fl.StringArrayVar(&f.classes, "class", nil, "traffic class by local port, prefix or both: 443=2, 192.0.2.0/24=3, 192.0.2.0/24:443=4 (first match wins)")
	fl.StringVar(&f.cfg.Cgroup, "cgroup", "", "account only connections of this cgroup v2 and below (e.g. /sys/fs/cgroup/system.slice/nginx.service)")
	fl.IntVar(&f.cfg.Partitions, "partitions", f.cfg.Partitions, "split each dump into this many concurrent dumps over port ranges (0: one per core)")
	fl.BoolVar(&f.cfg.DumpOnly, "dump-only", false, "no destroy notifications (no CAP_NET_ADMIN): interval dumps only")
	fl.StringVar(&f.cfg.DumpMethod, "dump-method", f.cfg.DumpMethod, "how the interval dumps read the sockets: bpf (the BPF socket iterator), netlink (sock_diag), auto (bpf where it loads, else netlink)")
	rootCmd.AddCommand(cmd)
}

// tcpinfoConfig turns the flags into the source's configuration.
func tcpinfoConfig(f tcpinfoFlags) (tcpinfo.Config, error) {
	cfg := f.cfg
	for _, p := range f.ports {
		if p == 0 || p > 65535 {
			return cfg, fmt.Errorf("--ports: %d is not a port", p)
		}
		cfg.Ports = append(cfg.Ports, uint16(p))
	}
	for _, a := range f.addresses {
		p, err := parsePrefix(a)
		if err != nil {
			return cfg, fmt.Errorf("--addresses: %w", err)
		}
		cfg.Addresses = append(cfg.Addresses, p)
	}
	for _, c := range f.classes {
		r, err := parseClassRule(c)
		if err != nil {
			return cfg, fmt.Errorf("--class %q: %w", c, err)
		}
		cfg.Classes = append(cfg.Classes, r)
	}
	return cfg, cfg.Validate()
}

// parsePrefix accepts a prefix or a single address.
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		return netip.ParsePrefix(s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = record.Unmap(a)
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// parseClassRule parses PORT=CLASS, PREFIX=CLASS or PREFIX:PORT=CLASS ([IPv6]:PORT too).
func parseClassRule(s string) (tcpinfo.ClassRule, error) {
	var r tcpinfo.ClassRule
	match, class, ok := strings.Cut(s, "=")
	if !ok {
		return r, errors.New("want MATCH=CLASS")
	}
	c, err := strconv.ParseUint(class, 10, 16)
	if err != nil {
		return r, fmt.Errorf("class: %w", err)
	}
	r.Class = uint16(c)
	if p, err := strconv.ParseUint(match, 10, 16); err == nil {
		r.Port = uint16(p)
		return r, nil
	}
	prefix := match
	if i := strings.LastIndex(match, ":"); i > 0 && (strings.HasPrefix(match, "[") || strings.Count(match, ":") == 1) {
		p, err := strconv.ParseUint(match[i+1:], 10, 16)
		if err != nil {
			return r, fmt.Errorf("port: %w", err)
		}
		r.Port, prefix = uint16(p), strings.Trim(match[:i], "[]")
	}
	if r.Prefix, err = parsePrefix(prefix); err != nil {
		return r, err
	}
	return r, nil
}

// clientCollector exposes the report client's counters on /metrics.
type clientCollector struct{ c *client.Client }

var (
	descAgentReported = prometheus.NewDesc("netledger_tcpinfo_agent_reports_total", "Records queued as reports.", nil, nil)
	descAgentDropped  = prometheus.NewDesc("netledger_tcpinfo_agent_reports_dropped_total", "Records dropped because the report queue was full.", nil, nil)
	descAgentSent     = prometheus.NewDesc("netledger_tcpinfo_agent_datagrams_total", "Report datagrams sent.", nil, nil)
	descAgentErrors   = prometheus.NewDesc("netledger_tcpinfo_agent_send_errors_total", "Report datagrams the socket refused.", nil, nil)
)

func (c clientCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descAgentReported
	ch <- descAgentDropped
	ch <- descAgentSent
	ch <- descAgentErrors
}

func (c clientCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.c.Stats()
	ch <- prometheus.MustNewConstMetric(descAgentReported, prometheus.CounterValue, float64(st.Reported))
	ch <- prometheus.MustNewConstMetric(descAgentDropped, prometheus.CounterValue, float64(st.Dropped))
	ch <- prometheus.MustNewConstMetric(descAgentSent, prometheus.CounterValue, float64(st.Datagrams))
	ch <- prometheus.MustNewConstMetric(descAgentErrors, prometheus.CounterValue, float64(st.SendErrors))
}

func runTCPInfo(cmd *cobra.Command, f tcpinfoFlags) error {
	key, err := loadKey(f.key, f.keyFile)
	if err != nil {
		return err
	}
	f.key = key
	cfg, err := tcpinfoConfig(f)
	if err != nil {
		return err
	}
	c, err := client.New(client.Config{Addr: f.addr, KeyID: f.keyID, Key: []byte(f.key), SenderID: f.senderID})
	if err != nil {
		return fmt.Errorf("cannot create report client: %w", err)
	}
	defer c.Close()
	log := slog.Default()
	src, err := tcpinfo.New(cfg, tcpinfo.Deps{Logger: log, Sink: func(recs []record.Record) error {
		for i := range recs {
			c.Report(recs[i])
		}
		return nil
	}})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	g, ctx := errgroup.WithContext(ctx)
	if f.listen != "" {
		reg := prometheus.NewRegistry()
		reg.MustRegister(src, clientCollector{c})
		srv, err := api.New(api.Config{Listen: f.listen}, api.Deps{Gatherer: reg, Logger: log})
		if err != nil {
			return err
		}
		g.Go(func() error { return srv.Run(ctx) })
	}
	g.Go(func() error { return src.Run(ctx) })
	err = g.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}
