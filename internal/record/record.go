// Package record defines Record, the source-agnostic observation that flows from every source
// through the spool, enrichment and aggregation. It depends on nothing else in netledger.
package record

import "net/netip"

// Source says which kind of input produced a record.
type Source uint8

// Sources known to netledger. The numeric values are stored in the spool: never renumber.
const (
	SourceUnknown   Source = 0
	SourceReportV2  Source = 1 // report protocol v2 (docs/protocol.md)
	SourceReportV1  Source = 2 // trafstat v1 datagrams
	SourceTCPInfo   Source = 3 // kernel sock_diag tcp_info
	SourceConntrack Source = 4 // Linux conntrack
	SourceSyslog    Source = 5 // stock nginx access_log to syslog
	SourceFlow      Source = 6 // NetFlow/IPFIX/sFlow
	SourceImport    Source = 7 // CSV import (conntrack tool format)
)

var sourceNames = [...]string{"unknown", "report-v2", "report-v1", "tcpinfo", "conntrack", "syslog", "flow", "import"}

// String returns the source's name as used in configuration and metrics.
func (s Source) String() string {
	if int(s) < len(sourceNames) {
		return sourceNames[s]
	}
	return "unknown"
}

// Record is one observation: a request served by a web server, a closed (or still open) TCP
// connection seen by the kernel, or a conntrack flow delta. A source fills what it knows; zero
// means unknown. Records are plain values: pass them by value or in reused slices, never allocate
// one per observation.
//
// Direction: the client is the remote side the traffic is accounted to (the requester of a web
// server, the side that opened a conntrack connection); the server is the local side whose
// address selects the router. "Out" is server → client (bytes delivered by a web server), "In"
// is client → server.
type Record struct {
	// Time is the observation time in Unix nanoseconds (end of request or interval).
	Time int64
	// Client is the remote address traffic is accounted to. Never IPv4-mapped IPv6.
	Client netip.Addr
	// Server is the local address; it selects the router. Never IPv4-mapped IPv6.
	Server netip.Addr
	// Exporter is the address of the host that reported the record (datagram source, agent).
	Exporter netip.Addr

	ClientPort uint16
	ServerPort uint16
	// Proto is the IP protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6); 0 when unknown.
	Proto uint8
	// Source is the kind of input that produced the record.
	Source Source
	// Class is the traffic class (trafstat's traffic type), a numeric id named in the config.
	Class uint16

	// Requests counts requests (reports) or flows this record stands for; usually 1.
	Requests uint32
	// BytesOut is bytes server → client (trafstat's bytes sent, tcpinfo bytes_acked).
	BytesOut uint64
	// BytesIn is bytes client → server.
	BytesIn uint64
	// PacketsOut is packets server → client; 0 when unknown (derive as BytesOut/MSS).
	PacketsOut uint64
	// PacketsIn is packets client → server.
	PacketsIn uint64
	// Retransmits is the TCP segments retransmitted (tcpi_total_retrans).
	Retransmits uint32
	// MSS is the sender's maximum segment size in bytes (tcpi_snd_mss).
	MSS uint32
	// RTT, RTTVar and MinRTT are in microseconds.
	RTT    uint32
	RTTVar uint32
	MinRTT uint32
	// DeliveryRate is in bytes per second (tcpi_delivery_rate).
	DeliveryRate uint64
	// Duration is the request or connection duration in microseconds.
	Duration uint64

	// ConnsClosed counts connections closed in this record's interval; ConnsOpen the
	// connections still open at its end (conntrack --track-open).
	ConnsClosed uint32
	ConnsOpen   uint32
}

// Packets returns PacketsOut, or BytesOut/MSS (rounded up) when the source gave no packet count
// (trafstat's rule), or 0 when neither is known.
func (r *Record) Packets() uint64 {
	if r.PacketsOut != 0 || r.MSS == 0 {
		return r.PacketsOut
	}
	return (r.BytesOut + uint64(r.MSS) - 1) / uint64(r.MSS)
}

// Unmap returns a with IPv4-mapped IPv6 addresses turned into IPv4. Sources call it once, at
// the door, so that nothing downstream sees ::ffff:a.b.c.d.
func Unmap(a netip.Addr) netip.Addr {
	if a.Is4In6() {
		return a.Unmap()
	}
	return a
}
