package bgp

import (
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	state         *prometheus.GaugeVec
	established   *prometheus.CounterVec
	updates       *prometheus.CounterVec
	announced     *prometheus.CounterVec
	withdrawn     *prometheus.CounterVec
	endOfRIB      *prometheus.CounterVec
	notifSent     *prometheus.CounterVec
	notifReceived *prometheus.CounterVec
	errors        *prometheus.CounterVec
	cleared       *prometheus.CounterVec
	swept         *prometheus.CounterVec
	prefixes      *prometheus.Desc
}

func newMetrics() *metrics {
	const ns, sub = "netledger", "bgp"
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help}, labels)
	}
	return &metrics{
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "session_state",
			Help: "BGP session state per router: 0 idle, 1 connect, 2 active, 3 opensent, 4 openconfirm, 5 established."},
			[]string{"router", "neighbor"}),
		established:   counter("sessions_established_total", "BGP sessions that reached Established.", "router"),
		updates:       counter("updates_received_total", "UPDATE messages received.", "router"),
		announced:     counter("prefixes_announced_total", "Routes announced by the neighbor.", "router", "afi"),
		withdrawn:     counter("prefixes_withdrawn_total", "Routes withdrawn by the neighbor.", "router", "afi"),
		endOfRIB:      counter("end_of_rib_total", "End-of-RIB markers received.", "router", "afi"),
		notifSent:     counter("notifications_sent_total", "NOTIFICATION messages sent.", "router", "code", "subcode"),
		notifReceived: counter("notifications_received_total", "NOTIFICATION messages received.", "router", "code", "subcode"),
		errors:        counter("errors_total", "Session and message errors.", "router", "reason"),
		cleared:       counter("tables_cleared_total", "Tables cleared after the grace time of a dropped session.", "router"),
		swept:         counter("stale_routes_swept_total", "Stale routes of a previous session withdrawn at End-of-RIB.", "router"),
		prefixes: prometheus.NewDesc(ns+"_"+sub+"_prefixes", "Routes in the router's RIB per address family.",
			[]string{"router", "afi"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *Component) Describe(ch chan<- *prometheus.Desc) {
	m := c.metrics
	for _, v := range []prometheus.Collector{m.state, m.established, m.updates, m.announced, m.withdrawn,
		m.endOfRIB, m.notifSent, m.notifReceived, m.errors, m.cleared, m.swept} {
		v.Describe(ch)
	}
	ch <- m.prefixes
}

// Collect implements prometheus.Collector. Prefix counts come from RIBs with a Len method.
func (c *Component) Collect(ch chan<- prometheus.Metric) {
	m := c.metrics
	for _, v := range []prometheus.Collector{m.state, m.established, m.updates, m.announced, m.withdrawn,
		m.endOfRIB, m.notifSent, m.notifReceived, m.errors, m.cleared, m.swept} {
		v.Collect(ch)
	}
	for _, p := range c.peers {
		l, ok := p.n.RIB.(interface{ Len() (int, int) })
		if !ok {
			continue
		}
		v4, v6 := l.Len()
		ch <- prometheus.MustNewConstMetric(m.prefixes, prometheus.GaugeValue, float64(v4), p.n.Name, "ipv4")
		ch <- prometheus.MustNewConstMetric(m.prefixes, prometheus.GaugeValue, float64(v6), p.n.Name, "ipv6")
	}
}
