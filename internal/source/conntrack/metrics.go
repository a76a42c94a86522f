package conntrack

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	overruns     prometheus.Counter
	events       prometheus.Counter
	dumped       prometheus.Counter
	dumps        prometheus.Counter
	dumpErrors   prometheus.Counter
	decodeErrors prometheus.Counter
	fromZero     prometheus.Counter
	stale        prometheus.Counter
	replaced     prometheus.Counter
	rows         prometheus.Counter
	outputErrors prometheus.Counter
	portReloads  *prometheus.CounterVec
	flows        prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "netledger_conntrack_" + name, Help: help})
	}
	m := &metrics{
		overruns: c("overruns_total", "Event socket overruns (ENOBUFS): events lost, recovered from dumps "+
			"(and, with reliable_events, from the DESTROY events the kernel delivers again)."),
		events:       c("events_total", "Conntrack events received."),
		dumped:       c("dumped_flows_total", "Flows read from periodic table dumps."),
		dumps:        c("dumps_total", "Table dumps completed."),
		dumpErrors:   c("dump_errors_total", "Table dumps that failed."),
		decodeErrors: c("decode_errors_total", "Netlink messages that could not be decoded."),
		fromZero:     c("recovered_flows_total", "Flows first seen in a dump or DESTROY that started after the agent (their NEW was lost), counted from zero."),
		stale:        c("stale_flows_total", "Flows dropped because two dumps missed them (their DESTROY was lost)."),
		replaced: c("replaced_flows_total", "Flows found replaced by a new connection with the same conntrack id and tuple "+
			"(their DESTROY was lost); their traffic after they were last seen is not accounted."),
		rows:         c("rows_total", "Interval rows emitted."),
		outputErrors: c("output_errors_total", "Interval rows that could not be delivered."),
		portReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "netledger_conntrack_port_reloads_total", Help: "Ports file reloads, by result (ok, error).",
		}, []string{"result"}),
		flows: prometheus.NewGauge(prometheus.GaugeOpts{Name: "netledger_conntrack_flows", Help: "Flows tracked."}),
	}
	m.portReloads.WithLabelValues("ok")
	m.portReloads.WithLabelValues("error")
	if reg != nil {
		reg.MustRegister(m.overruns, m.events, m.dumped, m.dumps, m.dumpErrors, m.decodeErrors, m.fromZero,
			m.stale, m.replaced, m.rows, m.outputErrors, m.portReloads, m.flows)
	}
	return m
}
