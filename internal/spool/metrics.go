package spool

import "github.com/prometheus/client_golang/prometheus"

var (
	descAppended = prometheus.NewDesc("netledger_spool_records_appended_total",
		"Records appended to the spool.", nil, nil)
	descSyncs = prometheus.NewDesc("netledger_spool_syncs_total",
		"Group commits (fsyncs) of the spool.", nil, nil)
	descRemoved = prometheus.NewDesc("netledger_spool_segments_removed_total",
		"Spool segments deleted by retention.", nil, nil)
	descBytes = prometheus.NewDesc("netledger_spool_bytes",
		"Bytes in spool segment files, including unsynced data.", nil, nil)
	descSegments = prometheus.NewDesc("netledger_spool_segments",
		"Spool segment files kept, the current one included.", nil, nil)
	descLag = prometheus.NewDesc("netledger_spool_lag_bytes",
		"Synced spool bytes not yet read by the slowest open reader.", nil, nil)
	descHeld = prometheus.NewDesc("netledger_spool_retention_held_total",
		"Times retention kept an expired segment because a consumer has not committed past it.", nil, nil)
	descCorruptFrames = prometheus.NewDesc("netledger_spool_corrupt_frames_total",
		"Corrupt spool frames (checksum mismatch or undecodable records) readers skipped; a corrupt region counts once.", nil, nil)
	descCorruptBytes = prometheus.NewDesc("netledger_spool_corrupt_bytes_total",
		"Bytes of corrupt spool data readers skipped.", nil, nil)
	descUnsynced = prometheus.NewDesc("netledger_spool_unsynced_bytes",
		"Bytes appended to the spool and not yet synced.", nil, nil)
)

// Describe implements prometheus.Collector.
func (s *Spool) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descAppended, descSyncs, descRemoved, descBytes, descSegments, descLag, descUnsynced, descHeld, descCorruptFrames, descCorruptBytes} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: register the spool on the daemon's registry.
func (s *Spool) Collect(ch chan<- prometheus.Metric) {
	s.mu.Lock()
	bytes := s.written + int64(len(s.pending))
	for _, si := range s.sealed {
		bytes += si.size
	}
	var lag int64
	for r := range s.readers {
		lag = max(lag, s.lagLocked(Position{Segment: r.pubSeg.Load(), Offset: r.pubOff.Load()}))
	}
	unsynced := bytes
	if s.synced.Segment == s.seg {
		unsynced = s.written + int64(len(s.pending)) - s.synced.Offset
	}
	appended, syncs, removed, held, segs := s.appended, s.syncs, s.removed, s.held, len(s.sealed)+1
	cframes, cbytes := s.corruptFrames, s.corruptBytes
	s.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(descCorruptFrames, prometheus.CounterValue, float64(cframes))
	ch <- prometheus.MustNewConstMetric(descCorruptBytes, prometheus.CounterValue, float64(cbytes))
	ch <- prometheus.MustNewConstMetric(descAppended, prometheus.CounterValue, float64(appended))
	ch <- prometheus.MustNewConstMetric(descSyncs, prometheus.CounterValue, float64(syncs))
	ch <- prometheus.MustNewConstMetric(descRemoved, prometheus.CounterValue, float64(removed))
	ch <- prometheus.MustNewConstMetric(descBytes, prometheus.GaugeValue, float64(bytes))
	ch <- prometheus.MustNewConstMetric(descSegments, prometheus.GaugeValue, float64(segs))
	ch <- prometheus.MustNewConstMetric(descLag, prometheus.GaugeValue, float64(lag))
	ch <- prometheus.MustNewConstMetric(descUnsynced, prometheus.GaugeValue, float64(unsynced))
	ch <- prometheus.MustNewConstMetric(descHeld, prometheus.CounterValue, float64(held))
}
