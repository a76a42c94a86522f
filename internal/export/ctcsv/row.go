// Package ctcsv reads and writes the conntrack accounting tool's CSV lines
// (time_ns,proto,src,dst,port,src_packets,dst_packets,src_bytes,dst_bytes,connection_count,
// connection_time_ms[,open_connections]) and delivers them to stdout, a FIFO and a folder of
// one file per interval, as the original tool did, so that its Telegraf configuration and
// importers keep working.
package ctcsv

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
)

// Row is one line: the traffic of one (proto, source group, destination group, port) in one
// interval, accounted to the side that opened the connections.
type Row struct {
	// Time is the end of the interval in Unix nanoseconds.
	Time int64
	// Proto is the IP protocol number.
	Proto uint8
	// Src and Dst are the source (originator) and destination group addresses.
	Src, Dst netip.Addr
	// Port is the destination port of the original direction, -1 for ports outside the
	// ports file.
	Port int32
	// SrcPackets and SrcBytes flow from the originator; DstPackets and DstBytes back to it.
	SrcPackets, DstPackets, SrcBytes, DstBytes uint64
	// Connections is the connections closed in the interval; ConnTimeMs their total duration.
	Connections, ConnTimeMs uint64
	// Open is the connections open at the end of the interval (written with --track-open).
	Open uint64
}

// Key is the identity of a row within an interval.
type Key struct {
	Proto    uint8
	Port     int32
	Src, Dst netip.Addr
}

// Key returns the row's identity.
func (r *Row) Key() Key { return Key{Proto: r.Proto, Port: r.Port, Src: r.Src, Dst: r.Dst} }

// Zero reports whether every metric of the row is zero (such rows are never written).
func (r *Row) Zero() bool {
	return r.SrcPackets|r.DstPackets|r.SrcBytes|r.DstBytes|r.Connections|r.ConnTimeMs|r.Open == 0
}

var protoNames = map[uint8]string{
	1: "icmp", 2: "igmp", 6: "tcp", 17: "udp", 33: "dccp", 47: "gre", 58: "ipv6-icmp",
	94: "ipip", 115: "l2tp", 132: "sctp", 136: "udplite",
}

var protoNumbers = func() map[string]uint8 {
	m := make(map[string]uint8, len(protoNames))
	for n, s := range protoNames {
		m[s] = n
	}
	return m
}()

// ProtoName returns the original tool's name of an IP protocol, or its number as text.
func ProtoName(p uint8) string {
	if s, ok := protoNames[p]; ok {
		return s
	}
	return strconv.Itoa(int(p))
}

// ParseProto accepts a protocol name as written by ProtoName, or a number.
func ParseProto(s string) (uint8, error) {
	if p, ok := protoNumbers[s]; ok {
		return p, nil
	}
	n, err := strconv.ParseUint(s, 10, 8)
	if err != nil {
		return 0, fmt.Errorf("unknown protocol %q", s)
	}
	return uint8(n), nil
}

// Append appends the row as one CSV line (with its newline) to b; open adds the
// open_connections column.
func (r *Row) Append(b []byte, open bool) []byte {
	b = strconv.AppendInt(b, r.Time, 10)
	b = append(b, ',')
	if s, ok := protoNames[r.Proto]; ok {
		b = append(b, s...)
	} else {
		b = strconv.AppendUint(b, uint64(r.Proto), 10)
	}
	b = append(b, ',')
	b = r.Src.AppendTo(b)
	b = append(b, ',')
	b = r.Dst.AppendTo(b)
	b = append(b, ',')
	b = strconv.AppendInt(b, int64(r.Port), 10)
	for _, v := range [...]uint64{r.SrcPackets, r.DstPackets, r.SrcBytes, r.DstBytes, r.Connections, r.ConnTimeMs} {
		b = append(b, ',')
		b = strconv.AppendUint(b, v, 10)
	}
	if open {
		b = append(b, ',')
		b = strconv.AppendUint(b, r.Open, 10)
	}
	return append(b, '\n')
}

// ErrFields is returned for a line without 11 or 12 fields.
var ErrFields = errors.New("want 11 or 12 comma-separated fields")

var fieldNames = [...]string{"time", "proto", "src", "dst", "port", "src_packets", "dst_packets",
	"src_bytes", "dst_bytes", "connection_count", "connection_time", "open_connections"}

// Parse parses one line (without its newline). It accepts what this package and the original
// tool write: 11 fields, or 12 with open connections; addresses IPv4 or IPv6; counters
// non-negative.
func Parse(line []byte) (Row, error) {
	var r Row
	var f [12][]byte
	n := 0
	for {
		i := bytes.IndexByte(line, ',')
		if n == len(f) {
			return r, ErrFields
		}
		if i < 0 {
			f[n] = line
			n++
			break
		}
		f[n] = line[:i]
		n++
		line = line[i+1:]
	}
	if n != 11 && n != 12 {
		return r, ErrFields
	}
	t, err := strconv.ParseInt(string(f[0]), 10, 64)
	if err != nil || t < 0 {
		return r, fmt.Errorf("field time: invalid %q", f[0])
	}
	r.Time = t
	if r.Proto, err = ParseProto(string(f[1])); err != nil {
		return r, fmt.Errorf("field proto: %w", err)
	}
	if r.Src, err = netip.ParseAddr(string(f[2])); err != nil {
		return r, fmt.Errorf("field src: %w", err)
	}
	if r.Dst, err = netip.ParseAddr(string(f[3])); err != nil {
		return r, fmt.Errorf("field dst: %w", err)
	}
	r.Src, r.Dst = r.Src.Unmap(), r.Dst.Unmap()
	port, err := strconv.ParseInt(string(f[4]), 10, 32)
	if err != nil || port < -1 || port > 65535 {
		return r, fmt.Errorf("field port: invalid %q", f[4])
	}
	r.Port = int32(port)
	dst := [...]*uint64{&r.SrcPackets, &r.DstPackets, &r.SrcBytes, &r.DstBytes, &r.Connections, &r.ConnTimeMs, &r.Open}
	for i := 5; i < n; i++ {
		v, err := strconv.ParseUint(string(f[i]), 10, 64)
		if err != nil {
			return r, fmt.Errorf("field %s: invalid %q", fieldNames[i], f[i])
		}
		*dst[i-5] = v
	}
	return r, nil
}
