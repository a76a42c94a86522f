package udpreport

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/netledger/netledger/internal/report"
)

type metrics struct {
	accepted   prometheus.Counter
	rejected   [report.NumReasons]prometheus.Counter
	datagrams  [3]prometheus.Counter // v2, v1, unknown
	recvErrors prometheus.Counter
	sinkErrors prometheus.Counter
	senders    prometheus.Gauge
	reloads    *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		accepted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "netledger_reports_accepted_total",
			Help: "Reports accepted and handed to the spool.",
		}),
		recvErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "netledger_reports_receive_errors_total",
			Help: "Errors reading from the report sockets.",
		}),
		sinkErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "netledger_reports_sink_errors_total",
			Help: "Batches of verified reports the spool refused (reports lost).",
		}),
		senders: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "netledger_reports_senders",
			Help: "v2 senders whose replay window is tracked.",
		}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "netledger_reports_key_reloads_total",
			Help: "Key reloads, by result (ok, error).",
		}, []string{"result"}),
	}
	rejected := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "netledger_reports_rejected_total",
		Help: "Datagrams (datagram-level reasons) or reports (report-level reasons) rejected, by reason.",
	}, []string{"reason"})
	for r := report.Reason(1); int(r) < report.NumReasons; r++ {
		m.rejected[r] = rejected.WithLabelValues(r.String())
	}
	datagrams := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "netledger_reports_datagrams_total",
		Help: "Datagrams received, by protocol version (v2, v1, unknown).",
	}, []string{"version"})
	for i, v := range []string{"v2", "v1", "unknown"} {
		m.datagrams[i] = datagrams.WithLabelValues(v)
	}
	if reg != nil {
		reg.MustRegister(m.accepted, rejected, datagrams, m.recvErrors, m.sinkErrors, m.senders, m.reloads)
	}
	return m
}
