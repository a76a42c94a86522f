package conntrack

import (
	"net/netip"
	"slices"

	"github.com/netledger/netledger/internal/export/ctcsv"
)

// flowState is what the table keeps per tracked connection: 56 bytes, no pointers, in one
// slab indexed from a map of uint64 keys, so that a million connections cost under 200 bytes
// each and the garbage collector has nothing to scan.
type flowState struct {
	key   uint64 // conntrack id << 32 | tuple hash
	group uint32 // index into Table.groups
	flags uint8
	gen   uint8 // dump generation that last saw the flow (or created it)
	_     [2]byte
	start int64 // Unix ns; 0 when unknown; the kernel's when fStamped
	// accounted so far
	origPackets, origBytes, replyPackets, replyBytes uint64
}

const (
	fConn      = 1 << iota // connection-oriented with a known start: counted when closed
	fClosed                // close already counted
	fDestroyed             // DESTROY seen: a tombstone until the next dump ends
	fUsed                  // slot in use
	fStamped               // start is the kernel's start timestamp of this connection
)

const pageSize = 4096

func (t *Table) flow(i uint32) *flowState { return &t.pages[i/pageSize][i%pageSize] }

type groupState struct {
	key  ctcsv.Key
	refs uint32 // live flows pointing here
	open uint32 // tracked connections not yet closed
	m    ctcsv.Row
}

// Stats are the table's counters since it was created.
type Stats struct {
	Events, Dumped, Filtered           uint64
	FromZero, Baselined, Stale, Closed uint64
	UnknownUpdates                     uint64
	// Replaced counts flows found replaced by a new connection with the same conntrack id
	// and tuple (a port reused at once, the kernel reusing the entry's memory): the old
	// one's DESTROY was lost, and its traffic after it was last seen is not accounted.
	Replaced uint64
}

// Table does the accounting: it keeps per-flow counters, accounts only deltas (so nothing
// is counted twice between events and dumps), and sums them per (proto, source group,
// destination group, port). It is not safe for concurrent use; the agent serialises it.
type Table struct {
	cfg   Config
	ports *Ports
	srcM  [4]byte
	dstM  [4]byte
	// agentStart is when accounting began (Unix ns): flows that started later are counted
	// from zero when first seen in a dump or a DESTROY; older ones from their first sight.
	agentStart int64
	dumps      int // dumps completed
	gen        uint8

	index  map[uint64]uint32
	pages  []*[pageSize]flowState // the slab, in fixed pages: growing it never copies
	nflows uint32                 // slots handed out
	free   []uint32
	groups []groupState
	gindex map[ctcsv.Key]uint32
	gfree  []uint32

	Stats Stats
}

// NewTable returns an empty table; agentStart is the agent's start in Unix nanoseconds.
func NewTable(cfg Config, agentStart int64) *Table {
	t := &Table{
		cfg:        cfg,
		agentStart: agentStart,
		index:      make(map[uint64]uint32),
		gindex:     make(map[ctcsv.Key]uint32),
		srcM:       cfg.SrcGroupMask.As4(),
		dstM:       cfg.DstGroupMask.As4(),
	}
	return t
}

// SetPorts replaces the ports set; flows seen from now on use it.
func (t *Table) SetPorts(p *Ports) { t.ports = p }

// Len returns the number of flows tracked (tombstones included).
func (t *Table) Len() int { return len(t.index) }

// Interesting reports whether the flow passes the filters.
func (t *Table) Interesting(f *Flow) bool {
	c := &t.cfg
	if (f.Proto == 1 || f.Proto == 58) && !c.IncludeICMP {
		return false
	}
	for _, a := range c.Exclude {
		if a == f.Src || a == f.Dst {
			return false
		}
	}
	if len(c.Src) > 0 && !containsAny(c.Src, f.Src) {
		return false
	}
	if len(c.Dst) > 0 && !containsAny(c.Dst, f.Dst) {
		return false
	}
	if len(c.Zones) > 0 && !slices.Contains(c.Zones, f.Zone) {
		return false
	}
	if c.MarkMask != 0 && f.Mark&c.MarkMask != c.Mark {
		return false
	}
	return true
}

func containsAny(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Group returns the group address of a with an IPv4 mask or an IPv6 prefix length.
func Group(a netip.Addr, mask4 [4]byte, prefix6 int) netip.Addr {
	if a.Is4() {
		b := a.As4()
		for i := range b {
			b[i] &= mask4[i]
		}
		return netip.AddrFrom4(b)
	}
	p, err := a.Prefix(prefix6)
	if err != nil {
		return a
	}
	return p.Addr()
}

// Key returns the accounting key of a flow.
func (t *Table) Key(f *Flow) ctcsv.Key {
	return ctcsv.Key{
		Proto: f.Proto,
		Port:  t.ports.Port(f.Proto, f.DstPort),
		Src:   Group(f.Src, t.srcM, t.cfg.SrcGroupPrefix6),
		Dst:   Group(f.Dst, t.dstM, t.cfg.DstGroupPrefix6),
	}
}

// flowKey is the conntrack id with a hash of the original tuple, so that a reused id of a
// different connection never matches.
func flowKey(f *Flow) uint64 {
	const prime = 1099511628211
	h := uint64(14695981039346656037)
	s, d := f.Src.As16(), f.Dst.As16()
	for _, b := range s {
		h = (h ^ uint64(b)) * prime
	}
	for _, b := range d {
		h = (h ^ uint64(b)) * prime
	}
	for _, v := range [...]uint64{uint64(f.Proto), uint64(f.SrcPort), uint64(f.DstPort), uint64(f.Zone)} {
		h = (h ^ v) * prime
	}
	return uint64(f.ID)<<32 | (h^h>>32)&0xffffffff
}

func connOriented(proto uint8) bool { return proto == 6 || proto == 33 || proto == 132 }

func closing(f *Flow) bool {
	switch f.TCPState {
	case tcpCloseWait, tcpLastAck, tcpTimeWait, tcpClose:
		return f.Proto == 6
	}
	return false
}

func (t *Table) group(k ctcsv.Key) uint32 {
	if g, ok := t.gindex[k]; ok {
		return g
	}
	var g uint32
	if n := len(t.gfree); n > 0 {
		g = t.gfree[n-1]
		t.gfree = t.gfree[:n-1]
		t.groups[g] = groupState{key: k}
	} else {
		g = uint32(len(t.groups))
		t.groups = append(t.groups, groupState{key: k})
	}
	t.gindex[k] = g
	return g
}

func (t *Table) add(f *Flow) (uint32, *flowState) {
	var i uint32
	if n := len(t.free); n > 0 {
		i = t.free[n-1]
		t.free = t.free[:n-1]
	} else {
		i = t.nflows
		if i%pageSize == 0 {
			t.pages = append(t.pages, new([pageSize]flowState))
		}
		t.nflows++
	}
	g := t.group(t.Key(f))
	t.groups[g].refs++
	s := t.flow(i)
	*s = flowState{key: flowKey(f), group: g, gen: t.gen, flags: fUsed}
	t.index[s.key] = i
	return i, s
}

func (t *Table) remove(i uint32) {
	s := t.flow(i)
	g := &t.groups[s.group]
	g.refs--
	if s.flags&(fConn|fClosed) == fConn {
		g.open--
	}
	delete(t.index, s.key)
	*s = flowState{}
	t.free = append(t.free, i)
}

// track marks a new flow as a connection whose close and duration are counted.
func (t *Table) track(s *flowState, start int64, proto uint8) {
	if start == 0 || !connOriented(proto) {
		return
	}
	s.start = start
	s.flags |= fConn
	t.groups[s.group].open++
}

func (t *Table) close(s *flowState, end int64) {
	if s.flags&(fConn|fClosed) != fConn {
		return
	}
	s.flags |= fClosed
	g := &t.groups[s.group]
	g.open--
	g.m.Connections++
	if d := end - s.start; d > 0 {
		g.m.ConnTimeMs += uint64(d / 1e6)
	}
	t.Stats.Closed++
}

// account adds the counters' growth since the last accounting to the flow's group.
func (t *Table) account(s *flowState, f *Flow) {
	if !f.HasCounters {
		return
	}
	m := &t.groups[s.group].m
	if f.OrigPackets > s.origPackets {
		m.SrcPackets += f.OrigPackets - s.origPackets
	}
	if f.OrigBytes > s.origBytes {
		m.SrcBytes += f.OrigBytes - s.origBytes
	}
	if f.ReplyPackets > s.replyPackets {
		m.DstPackets += f.ReplyPackets - s.replyPackets
	}
	if f.ReplyBytes > s.replyBytes {
		m.DstBytes += f.ReplyBytes - s.replyBytes
	}
	s.origPackets, s.origBytes = f.OrigPackets, f.OrigBytes
	s.replyPackets, s.replyBytes = f.ReplyPackets, f.ReplyBytes
}

// fromZero decides, for a flow first seen in a dump or a DESTROY, whether its counters
// are all new traffic: yes when the kernel's start timestamp is after the agent's start;
// without timestamps, yes once the first dump (which saw every older flow) has completed.
func (t *Table) fromZero(f *Flow) bool {
	if f.Start != 0 {
		return f.Start >= t.agentStart
	}
	return t.dumps > 0
}

// Handle accounts one event or dumped flow observed at now (Unix ns). It never allocates
// in steady state.
func (t *Table) Handle(f *Flow, now int64) {
	if f.Type == EventDump {
		t.Stats.Dumped++
	} else {
		t.Stats.Events++
	}
	if !t.Interesting(f) {
		t.Stats.Filtered++
		return
	}
	key := flowKey(f)
	i, known := t.index[key]
	if known && f.Start != 0 {
		if s := t.flow(i); s.flags&fStamped != 0 && s.start != f.Start {
			// Another connection with the same id and tuple: the one tracked has ended.
			if s.flags&fDestroyed == 0 {
				t.Stats.Replaced++ // its DESTROY was lost (an overrun without reliable events)
				t.close(s, now)
			}
			t.remove(i)
			known = false
		}
	}
	switch f.Type {
	case EventNew:
		if known {
			if t.flow(i).flags&fDestroyed == 0 {
				return // a dump saw it first
			}
			t.remove(i) // a new connection reusing the id and tuple of a destroyed one
		}
		_, s := t.add(f)
		start := f.Start
		if start == 0 {
			start = now
		}
		t.track(s, start, f.Proto)
		t.account(s, f)
	case EventUpdate:
		if !known {
			t.Stats.UnknownUpdates++ // the NEW was lost: the next dump or the DESTROY recovers it
			return
		}
		s := t.flow(i)
		if s.flags&fDestroyed != 0 {
			return
		}
		t.account(s, f)
		if closing(f) {
			t.close(s, now)
		}
	case EventDump:
		if !known {
			t.firstSight(f, now)
			return
		}
		s := t.flow(i)
		if s.flags&fDestroyed != 0 {
			if f.Start == 0 || f.Start == s.start {
				return // the dump's snapshot predates the DESTROY already accounted
			}
			t.remove(i) // a new connection reusing the id and tuple of a destroyed one
			t.firstSight(f, now)
			return
		}
		s.gen = t.gen
		stamp(s, f)
		t.account(s, f)
		if closing(f) {
			t.close(s, now)
		}
	case EventDestroy:
		var s *flowState
		if !known {
			s = t.firstSight(f, now)
		} else {
			s = t.flow(i)
			if s.flags&fDestroyed != 0 {
				return
			}
			t.account(s, f)
		}
		end := f.Stop
		if end == 0 {
			end = now
		}
		t.close(s, end)
		s.flags |= fDestroyed
		s.gen = t.gen
		stamp(s, f) // tells a later incarnation with the same id apart
	}
}

// stamp records the kernel's start timestamp of the flow, when the message has it: a
// message with another start is about another connection with the same id and tuple.
func stamp(s *flowState, f *Flow) {
	if f.Start != 0 {
		s.start = f.Start
		s.flags |= fStamped
	}
}

// firstSight starts tracking a flow first seen in a dump or a DESTROY (its NEW was lost or
// predates the agent).
func (t *Table) firstSight(f *Flow, now int64) *flowState {
	_, s := t.add(f)
	if t.fromZero(f) {
		t.Stats.FromZero++
		t.track(s, f.Start, f.Proto)
		t.account(s, f)
	} else {
		t.Stats.Baselined++
		s.origPackets, s.origBytes = f.OrigPackets, f.OrigBytes
		s.replyPackets, s.replyBytes = f.ReplyPackets, f.ReplyBytes
		t.track(s, f.Start, f.Proto)
	}
	stamp(s, f)
	if closing(f) {
		t.close(s, now)
	}
	return s
}

// BeginDump starts a dump generation: flows seen in it, or created or destroyed while it
// runs, are marked with it.
func (t *Table) BeginDump() { t.gen++ }

// EndDump ends a complete dump: tombstones of flows destroyed before the dump began are
// dropped (the dump could not contain them any more), and flows missing from this dump and
// the previous one are dropped as stale (their DESTROY was lost).
func (t *Table) EndDump() {
	t.dumps++
	for i := range t.nflows {
		s := t.flow(i)
		if s.flags&fUsed == 0 {
			continue
		}
		if s.flags&fDestroyed != 0 {
			if s.gen != t.gen {
				t.remove(i)
			}
			continue
		}
		if s.gen != t.gen && s.gen != t.gen-1 {
			t.Stats.Stale++
			t.remove(i)
		}
	}
}

// Flush returns the interval's rows (appended to rows, time ts) and resets the metrics.
// Open connections are filled when TrackOpen is set. Groups no flow refers to any more are
// forgotten.
func (t *Table) Flush(ts int64, rows []ctcsv.Row) []ctcsv.Row {
	for gi := range t.groups {
		g := &t.groups[gi]
		if !g.key.Src.IsValid() {
			continue // free
		}
		r := g.m
		if t.cfg.TrackOpen {
			r.Open = uint64(g.open)
		}
		if !r.Zero() {
			r.Time = ts
			r.Proto, r.Port, r.Src, r.Dst = g.key.Proto, g.key.Port, g.key.Src, g.key.Dst
			rows = append(rows, r)
		}
		g.m = ctcsv.Row{}
		if g.refs == 0 {
			delete(t.gindex, g.key)
			*g = groupState{}
			t.gfree = append(t.gfree, uint32(gi))
		}
	}
	return rows
}
