package client

import "github.com/prometheus/client_golang/prometheus"

var (
	descReports = prometheus.NewDesc("netledger_client_reports_total",
		"Reports given to the netledger client, by result (queued, dropped: queue full or closed).", []string{"result"}, nil)
	descDatagrams = prometheus.NewDesc("netledger_client_datagrams_total",
		"Report datagrams sent to the collector.", nil, nil)
	descSendErrors = prometheus.NewDesc("netledger_client_send_errors_total",
		"Report datagrams the socket refused (their reports are lost).", nil, nil)
)

// Describe implements prometheus.Collector, so that a web server can register its Client.
func (c *Client) Describe(ch chan<- *prometheus.Desc) {
	ch <- descReports
	ch <- descDatagrams
	ch <- descSendErrors
}

// Collect implements prometheus.Collector with the values of Stats.
func (c *Client) Collect(ch chan<- prometheus.Metric) {
	st := c.Stats()
	ch <- prometheus.MustNewConstMetric(descReports, prometheus.CounterValue, float64(st.Reported), "queued")
	ch <- prometheus.MustNewConstMetric(descReports, prometheus.CounterValue, float64(st.Dropped), "dropped")
	ch <- prometheus.MustNewConstMetric(descDatagrams, prometheus.CounterValue, float64(st.Datagrams))
	ch <- prometheus.MustNewConstMetric(descSendErrors, prometheus.CounterValue, float64(st.SendErrors))
}
