package sqlite

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	ops     *prometheus.CounterVec
	rows    *prometheus.CounterVec
	seconds *prometheus.HistogramVec
	expired *prometheus.CounterVec
	// compactions counts the intervals whose delta packs were merged into one (in write
	// transactions, committed or not).
	compactions prometheus.Counter
	// checkpoints counts the checkpointer's runs by result, checkpointFrames the WAL frames
	// (pages) they copied into the database file.
	checkpoints      *prometheus.CounterVec
	checkpointFrames prometheus.Counter
	queries          *prometheus.CounterVec
	qseconds         *prometheus.HistogramVec
}

func newMetrics() *metrics {
	return &metrics{
		ops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "netledger_store_writes_total",
			Help: "Write transactions of the embedded store by operation and result.",
		}, []string{"op", "result"}),
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "netledger_store_rows_total",
			Help: "Rows written to the embedded store by operation (committed transactions only).",
		}, []string{"op"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "netledger_store_write_seconds",
			Help:    "Duration of the embedded store's write transactions.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 8),
		}, []string{"op"}),
		expired: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "netledger_store_expired_rows_total",
			Help: "Packs deleted by retention, by level (base, hour, day, week).",
		}, []string{"table"}),
		compactions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "netledger_store_compactions_total",
			Help: "Intervals whose delta packs the embedded store merged into one.",
		}),
		checkpoints: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "netledger_store_checkpoints_total",
			Help: "WAL checkpoints of the embedded store's checkpointer by result.",
		}, []string{"result"}),
		checkpointFrames: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "netledger_store_checkpoint_frames_total",
			Help: "WAL frames (pages) the embedded store's checkpointer copied into the database file.",
		}),
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "netledger_store_queries_total",
			Help: "Queries of the embedded store by kind and result.",
		}, []string{"kind", "result"}),
		qseconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "netledger_store_query_seconds",
			Help:    "Duration of the embedded store's queries.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 8),
		}, []string{"kind"}),
	}
}

func result(err error) string {
	if err != nil {
		return "error"
	}
	return "ok"
}

func (m *metrics) observe(op string, rows int, t0 time.Time, err error) {
	m.ops.WithLabelValues(op, result(err)).Inc()
	if err == nil {
		m.rows.WithLabelValues(op).Add(float64(rows))
		m.seconds.WithLabelValues(op).Observe(time.Since(t0).Seconds())
	}
}

func (m *metrics) query(kind string, t0 time.Time, err error) {
	m.queries.WithLabelValues(kind, result(err)).Inc()
	m.qseconds.WithLabelValues(kind).Observe(time.Since(t0).Seconds())
}

// Collectors returns the store's Prometheus metrics, for the daemon's registry.
func (s *Store) Collectors() []prometheus.Collector {
	m := s.metrics
	return []prometheus.Collector{m.ops, m.rows, m.seconds, m.expired, m.compactions, m.checkpoints, m.checkpointFrames, m.queries, m.qseconds}
}
