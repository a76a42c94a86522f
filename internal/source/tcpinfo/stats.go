package tcpinfo

import "time"

// Stats is a snapshot of the source's counters (the values of its metrics).
type Stats struct {
	Notifications, Lost, Overruns, Records uint64
	Filtered, DecodeErrors, SinkErrors     uint64
	Dumps, DumpErrors, DumpSockets         uint64
	Vanished                               uint64
	// DumpsOverlapped counts the BPF dumps read in a goroutine of their own while their
	// records were accounted (readChooser).
	DumpsOverlapped uint64
	Tracked         int
	LastDump        time.Duration
	// DumpMethod is the interval dumps' method in use: "bpf", "netlink", or "none" before
	// Run chose (or without dumps).
	DumpMethod string
}

// Stats returns the current counters.
func (s *Source) Stats() Stats {
	s.refreshLost()
	s.mu.Lock()
	filtered, vanished, tracked := s.tr.filtered, s.tr.vanished, s.tr.socks.live
	s.mu.Unlock()
	return Stats{
		Notifications:   s.notifications.Load(),
		Lost:            s.lost.Load(),
		Overruns:        s.overruns.Load(),
		Records:         s.records.Load(),
		Filtered:        filtered,
		DecodeErrors:    s.decodeErrors.Load(),
		SinkErrors:      s.sinkErrors.Load(),
		Dumps:           s.dumps.Load(),
		DumpErrors:      s.dumpErrors.Load(),
		DumpSockets:     s.dumpSockets.Load(),
		DumpsOverlapped: s.dumpsOverlapped.Load(),
		Vanished:        vanished,
		Tracked:         tracked,
		LastDump:        time.Duration(s.lastDumpNanos.Load()),
		DumpMethod:      methodNames[s.method.Load()],
	}
}
