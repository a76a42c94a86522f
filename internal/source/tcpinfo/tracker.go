package tcpinfo

import (
	"time"

	"github.com/netledger/netledger/internal/record"
)

// seen is what the tracker remembers of a socket at its last dump: the cumulative counters
// already accounted.
type seen struct {
	acked, received, busy uint64
	segsOut, segsIn       uint32
	retrans               uint32
	gen                   uint64 // dump generation that saw it last
}

// tracker does the delta accounting: every byte, segment and retransmit of a socket is
// accounted once, in the record of the dump (or destroy notification) that first sees it.
// Sockets are keyed by their kernel cookie. It is not safe for concurrent use: the source
// serialises dumps and destroy notifications (a whole dump runs under one lock, see root.go).
//
// Requests is 1 in the first record of a connection (its first dump, or its destroy
// notification when no dump saw it) and 0 in later ones, so Σ Requests counts connections.
// ConnsClosed is 1 in the destroy record; ConnsOpen is 1 in dump records.
type tracker struct {
	filter filter
	// socks holds, by cookie, the sockets seen by a dump and not yet destroyed.
	socks cookieTable
	gen   uint64
	ends  [genRing]int64 // when each recent dump generation ended, by gen % genRing

	// vanished counts sockets that disappeared from a dump without a destroy notification
	// (lost in an overrun): what they did since their last dump is not accounted.
	vanished uint64
	filtered uint64

	// cgPorts are the local ports with a listener in the configured cgroups (cgroup filter).
	cgPorts *portSet
}

func newTracker(f filter) *tracker {
	return &tracker{filter: f}
}

// fill sets the record's identity and gauges from s.
func (t *tracker) fill(r *record.Record, s *Socket, now int64) {
	local, remote := record.Unmap(s.Local), record.Unmap(s.Remote)
	*r = record.Record{
		Time:         now,
		Client:       remote,
		Server:       local,
		ClientPort:   s.RemotePort,
		ServerPort:   s.LocalPort,
		Proto:        6,
		Source:       record.SourceTCPInfo,
		Class:        t.filter.class(local, s.LocalPort),
		MSS:          s.SndMSS,
		RTT:          s.RTT,
		RTTVar:       s.RTTVar,
		MinRTT:       s.MinRTT,
		DeliveryRate: s.DeliveryRate,
	}
}

// accept applies the filters and skips sockets that carry no connection (listeners, sockets
// that never connected).
func (t *tracker) accept(s *Socket) bool {
	if s.RemotePort == 0 || s.State == stateListen {
		return false
	}
	if !t.filter.match(record.Unmap(s.Local), s.LocalPort) || (t.filter.cgroups != nil && !t.inCgroups(s)) {
		t.filtered++
		return false
	}
	return true
}

// inCgroups reports whether a socket belongs to the configured cgroups: by its own cgroup id
// (dumps), or, for a destroy notification (which carries none), by an earlier dump having
// accepted it, or by a listener of the cgroups on its local port at the last dump.
func (t *tracker) inCgroups(s *Socket) bool {
	if s.HaveCgroup {
		return t.filter.inCgroups(s.CgroupID)
	}
	if trackable(s.Cookie) && t.socks.get(s.Cookie) >= 0 {
		return true // a dump accepted it (its own cgroup id matched)
	}
	return t.cgPorts != nil && t.cgPorts.has(s.LocalPort)
}

// destroy accounts a socket's destroy notification: the remainder since its last dump, or
// everything when no dump saw it. It returns false when the socket is filtered out.
func (t *tracker) destroy(s *Socket, now int64, r *record.Record) bool {
	if !t.accept(s) {
		return false
	}
	t.fill(r, s, now)
	var prev seen
	i := -1
	if trackable(s.Cookie) {
		i = t.socks.get(s.Cookie)
	}
	if i >= 0 {
		prev = t.socks.slots[i].seen
		t.socks.del(i)
	} else {
		r.Requests = 1
	}
	cur := current(s, true)
	delta(r, &prev, &cur)
	r.ConnsClosed = 1
	return true
}

// dumped accounts a socket seen in dump generation gen: the delta since its last sight. It
// returns false when the socket is filtered out or nothing moved since its last sight.
func (t *tracker) dumped(s *Socket, now int64, r *record.Record) bool {
	if s.State == stateTimeWait || s.State == stateNewSynRecv || !trackable(s.Cookie) || !t.accept(s) {
		return false
	}
	i, ok := t.socks.put(s.Cookie)
	e := &t.socks.slots[i].seen
	var prev seen
	if ok {
		prev = *e
	}
	*e = current(s, false)
	e.gen = t.gen
	if ok && prev.same(e) {
		return false
	}
	cur := *e
	t.fill(r, s, now)
	if !ok {
		r.Requests = 1
	}
	delta(r, &prev, &cur)
	r.ConnsOpen = 1
	return true
}

// beginDump starts a new dump generation.
func (t *tracker) beginDump() {
	t.gen++
	t.ends[t.gen%genRing] = 1<<63 - 1 // not ended yet
}

// forgetAfter is how long a socket must have been gone from the kernel's table before the
// tracker forgets it. Its destroy notification is not sent as it leaves the table: the kernel
// builds it on a work queue once the last reference is dropped, and the source reads it only
// between dumps (a dump holds the lock). On a loaded host (load 10 on two cores) that took longer
// than two 300 ms intervals: the sockets were forgotten, and their notifications then counted
// them a second time, from zero (TestKernelLoopback, 2 runs in 12, before this rule).
const forgetAfter = 5 * time.Second

// genRing is how many dump generations' end times the tracker remembers: at the shortest
// interval (100 ms), more than forgetAfter.
const genRing = 64

// endDump ends the dump generation at now (Unix nanoseconds). When sweep is true (the dump saw
// every socket: no partition failed), it forgets the sockets that the last two dumps did not
// see and that were gone from the table forgetAfter ago: they closed and their destroy
// notification was lost (an overrun). Two dumps, not one: a dump can skip a live socket when an
// earlier one in its hash bucket goes away between two reads (inet_diag resumes by position).
// A socket last seen by dump g left the table before dump g+1 ended, so it is forgotten once
// g+1 < gen and dump g+1 ended forgetAfter ago.
func (t *tracker) endDump(now int64, sweep bool) {
	t.ends[t.gen%genRing] = now
	if !sweep || t.gen < 2 {
		return
	}
	cut := uint64(0) // forget what was last seen by a dump ≤ cut
	for k := t.gen - 1; k >= 1; k-- {
		// Dump k ended long enough ago, or so long ago that the ring no longer holds its end
		// (more than genRing intervals).
		if k+genRing <= t.gen || now-t.ends[k%genRing] >= int64(forgetAfter) {
			cut = k - 1
			break
		}
	}
	if cut == 0 {
		return
	}
	for i := range t.socks.slots { // in memory order
		if t.socks.isLive(i) && t.socks.slots[i].gen <= cut {
			t.socks.del(i)
			t.vanished++
		}
	}
}

// same reports whether no counter moved between a and b.
func (a *seen) same(b *seen) bool {
	return a.acked == b.acked && a.received == b.received && a.busy == b.busy &&
		a.segsOut == b.segsOut && a.segsIn == b.segsIn && a.retrans == b.retrans
}

func current(s *Socket, closed bool) seen {
	return seen{
		acked:    s.DataAcked(closed),
		received: s.BytesReceived,
		busy:     s.BusyTime,
		segsOut:  s.SegsOut,
		segsIn:   s.SegsIn,
		retrans:  s.TotalRetrans,
	}
}

// BytesIn is tcpi_bytes_received, which counts the peer's FIN (1) when it arrived before the
// socket was destroyed: no tcp_info counter says whether it did (the destroy notification gives
// the state CLOSE either way), so it is left in — at most one byte per connection.
//
// delta sets the record's counters to cur − prev. Counters never go backwards in the kernel;
// should one appear to (a reused cookie, which the kernel does not do), the record carries 0.
func delta(r *record.Record, prev, cur *seen) {
	r.BytesOut = sub64(cur.acked, prev.acked)
	r.BytesIn = sub64(cur.received, prev.received)
	r.PacketsOut = uint64(sub32(cur.segsOut, prev.segsOut))
	r.PacketsIn = uint64(sub32(cur.segsIn, prev.segsIn))
	r.Retransmits = sub32(cur.retrans, prev.retrans)
	r.Duration = sub64(cur.busy, prev.busy)
}

func sub64(a, b uint64) uint64 {
	if a < b {
		return 0
	}
	return a - b
}

func sub32(a, b uint32) uint32 {
	if a < b {
		return 0
	}
	return a - b
}
