package record

import (
	"net/netip"
	"time"
)

// Dims are the dimensions a view row is keyed by. A view uses some of them; the others stay
// zero. The zero Prefix is the unrouted bucket.
type Dims struct {
	// Router is the router's name ("unknown" when no router serves the server address).
	Router string
	// Class is the traffic class's name from the config (or its number as text).
	Class string
	// Prefix is the longest-match prefix of the client in the router's table.
	Prefix netip.Prefix
	// Path is the matched route's AS path in bgpdump's text form (the (router, class, prefix)
	// view carries it, as trafstat's table did).
	Path string
	// PeerAS is the first AS of the path (the router's ASN for an empty path).
	PeerAS uint32
	// OriginAS is the last AS of the path.
	OriginAS uint32
	// ASN is one AS on the path (the as_on_path view: each distinct AS of a path once).
	ASN uint32
	// Country and Region (continent) of the client, ISO codes; "" when unknown.
	Country string
	Region  string
	// Proto, SrcGroup, DstGroup and Port are the conntrack dimensions (Port -1: other ports).
	Proto    uint8
	SrcGroup netip.Addr
	DstGroup netip.Addr
	Port     int32
}

// Metrics are the sums a view row holds for one interval.
type Metrics struct {
	Requests    uint64 // requests or flows
	Bytes       uint64 // server → client (BytesOut)
	BytesIn     uint64 // client → server
	Packets     uint64 // server → client (Record.Packets)
	PacketsIn   uint64
	Retransmits uint64
	Duration    uint64 // µs, summed
	RTTSum      uint64 // µs, summed over records that have an RTT
	RTTCount    uint64 // records with an RTT
	Conns       uint64 // connections closed
	Open        uint64 // open connections at the interval's end (summed over exporters)
}

// Add adds m2 to m.
func (m *Metrics) Add(m2 *Metrics) {
	m.Requests += m2.Requests
	m.Bytes += m2.Bytes
	m.BytesIn += m2.BytesIn
	m.Packets += m2.Packets
	m.PacketsIn += m2.PacketsIn
	m.Retransmits += m2.Retransmits
	m.Duration += m2.Duration
	m.RTTSum += m2.RTTSum
	m.RTTCount += m2.RTTCount
	m.Conns += m2.Conns
	m.Open += m2.Open
}

// Zero reports whether every metric is zero (such rows are never written).
func (m *Metrics) Zero() bool { return *m == Metrics{} }

// Row is one row of a view: its dimensions and metrics for one interval.
type Row struct {
	// View is the view's name from the config ("prefix", "country", "as_path", …).
	View string
	// Start is the interval's start (UTC); Resolution its length (1m, 1h, 24h).
	Start      time.Time
	Resolution time.Duration
	Dims       Dims
	Metrics    Metrics
}
