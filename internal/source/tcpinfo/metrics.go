package tcpinfo

import "github.com/prometheus/client_golang/prometheus"

var (
	descNotifications = prometheus.NewDesc("netledger_tcpinfo_notifications_total",
		"Socket destroy notifications received from the kernel.", nil, nil)
	descLost = prometheus.NewDesc("netledger_tcpinfo_notifications_lost_total",
		"Destroy notifications the kernel dropped because the netlink receive buffer was full.", nil, nil)
	descOverruns = prometheus.NewDesc("netledger_tcpinfo_overruns_total",
		"Netlink receive buffer overruns (ENOBUFS) of the destroy-notification socket.", nil, nil)
	descRecords = prometheus.NewDesc("netledger_tcpinfo_records_total",
		"Records handed to the sink.", nil, nil)
	descFiltered = prometheus.NewDesc("netledger_tcpinfo_filtered_total",
		"Sockets skipped by the port and address filters.", nil, nil)
	descDecodeErrors = prometheus.NewDesc("netledger_tcpinfo_decode_errors_total",
		"Netlink messages that could not be decoded.", nil, nil)
	descSinkErrors = prometheus.NewDesc("netledger_tcpinfo_sink_errors_total",
		"Batches of records the sink refused (the records are lost).", nil, nil)
	descDumps = prometheus.NewDesc("netledger_tcpinfo_dumps_total",
		"Dumps of established sockets.", nil, nil)
	descDumpErrors = prometheus.NewDesc("netledger_tcpinfo_dump_errors_total",
		"Dumps of established sockets that failed.", nil, nil)
	descDumpSockets = prometheus.NewDesc("netledger_tcpinfo_dump_sockets_total",
		"Sockets seen by dumps.", nil, nil)
	descDumpsOverlapped = prometheus.NewDesc("netledger_tcpinfo_dumps_overlapped_total",
		"BPF dumps whose iterator was read in a goroutine of its own while the records were accounted (chosen while it was the faster).", nil, nil)
	descVanished = prometheus.NewDesc("netledger_tcpinfo_vanished_total",
		"Sockets that disappeared between two dumps without a destroy notification (lost in an overrun); their traffic after the last dump is not accounted.", nil, nil)
	descTracked = prometheus.NewDesc("netledger_tcpinfo_tracked_sockets",
		"Open sockets remembered for delta accounting.", nil, nil)
	descDumpSeconds = prometheus.NewDesc("netledger_tcpinfo_last_dump_seconds",
		"Duration of the last dump of established sockets.", nil, nil)
	descRcvbuf = prometheus.NewDesc("netledger_tcpinfo_receive_buffer_bytes",
		"Receive buffer the kernel granted to the destroy-notification socket.", nil, nil)
	descDumpMethod = prometheus.NewDesc("netledger_tcpinfo_dump_method",
		"1 for the method the interval dumps use (bpf: the BPF socket iterator; netlink: sock_diag), 0 for the other.",
		[]string{"method"}, nil)
)

// Describe implements prometheus.Collector.
func (s *Source) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descNotifications, descLost, descOverruns, descRecords, descFiltered,
		descDecodeErrors, descSinkErrors, descDumps, descDumpErrors, descDumpSockets, descDumpsOverlapped, descVanished, descTracked,
		descDumpSeconds, descRcvbuf, descDumpMethod} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: register the source on the daemon's registry.
func (s *Source) Collect(ch chan<- prometheus.Metric) {
	st := s.Stats()
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	counter(descNotifications, st.Notifications)
	counter(descLost, st.Lost)
	counter(descOverruns, st.Overruns)
	counter(descRecords, st.Records)
	counter(descFiltered, st.Filtered)
	counter(descDecodeErrors, st.DecodeErrors)
	counter(descSinkErrors, st.SinkErrors)
	counter(descDumps, st.Dumps)
	counter(descDumpErrors, st.DumpErrors)
	counter(descDumpSockets, st.DumpSockets)
	counter(descDumpsOverlapped, st.DumpsOverlapped)
	counter(descVanished, st.Vanished)
	ch <- prometheus.MustNewConstMetric(descTracked, prometheus.GaugeValue, float64(st.Tracked))
	ch <- prometheus.MustNewConstMetric(descDumpSeconds, prometheus.GaugeValue, st.LastDump.Seconds())
	ch <- prometheus.MustNewConstMetric(descRcvbuf, prometheus.GaugeValue, float64(s.rcvbuf.Load()))
	for _, m := range []string{DumpBPF, DumpNetlink} {
		v := 0.0
		if st.DumpMethod == m {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(descDumpMethod, prometheus.GaugeValue, v, m)
	}
}
