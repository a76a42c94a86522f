package routers

import (
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	loads    *prometheus.CounterVec
	prefixes *prometheus.Desc
	updated  *prometheus.Desc
	attrs    *prometheus.Desc
	paths    *prometheus.Desc
	updates  *prometheus.Desc
	invalid  *prometheus.Desc
}

func newMetrics() *metrics {
	const ns, sub = "netledger", "routing"
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(ns, sub, name), help, labels, nil)
	}
	return &metrics{
		loads: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "mrt_loads_total",
			Help: "MRT loads of a router's table (at start and through the API), by result."}, []string{"router", "result"}),
		prefixes: desc("prefixes", "Prefixes in the router's table, per address family.", "router", "afi"),
		updated:  desc("table_updated_timestamp_seconds", "When the router's table was last published.", "router"),
		attrs:    desc("attribute_sets", "Distinct (interned) attribute sets in the router's table.", "router"),
		paths:    desc("as_paths", "Distinct (interned) AS paths in the router's table.", "router"),
		updates:  desc("updates_total", "Announcements and withdrawals applied to the router's table.", "router"),
		invalid:  desc("invalid_prefixes_total", "Announcements and withdrawals of invalid prefixes (ignored).", "router"),
	}
}

// Describe implements prometheus.Collector.
func (c *Component) Describe(ch chan<- *prometheus.Desc) {
	m := c.metrics
	m.loads.Describe(ch)
	for _, d := range []*prometheus.Desc{m.prefixes, m.updated, m.attrs, m.paths, m.updates, m.invalid} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Component) Collect(ch chan<- prometheus.Metric) {
	m := c.metrics
	m.loads.Collect(ch)
	for _, r := range c.routers {
		name := r.cfg.Name
		v4, v6 := r.rib.Len()
		s := r.rib.Stats()
		ch <- prometheus.MustNewConstMetric(m.prefixes, prometheus.GaugeValue, float64(v4), name, "ipv4")
		ch <- prometheus.MustNewConstMetric(m.prefixes, prometheus.GaugeValue, float64(v6), name, "ipv6")
		ch <- prometheus.MustNewConstMetric(m.updated, prometheus.GaugeValue, float64(r.rib.Updated().UnixNano())/1e9, name)
		ch <- prometheus.MustNewConstMetric(m.attrs, prometheus.GaugeValue, float64(s.Attrs), name)
		ch <- prometheus.MustNewConstMetric(m.paths, prometheus.GaugeValue, float64(s.Paths), name)
		ch <- prometheus.MustNewConstMetric(m.updates, prometheus.CounterValue, float64(s.Updates), name)
		ch <- prometheus.MustNewConstMetric(m.invalid, prometheus.CounterValue, float64(s.Invalid), name)
	}
}
