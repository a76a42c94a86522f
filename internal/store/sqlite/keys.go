package sqlite

import (
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/netledger/netledger/internal/prefetch"
	"github.com/netledger/netledger/internal/record"
)

// Levels of resolution, finest first: the views' base interval, hourly and daily roll-ups.
const (
	levelBase = iota
	levelHour
	levelDay
	levels
)

// levelWeek holds the daily points of the weeks since the epoch (Thursday to Wednesday)
// summed per series, so that a month is read from four packs instead of thirty.
const (
	levelWeek  = levels
	packLevels = levels + 1
)

// levelName names the levels in metrics and Totals.
var levelName = [packLevels]string{"base", "hour", "day", "week"}

const weekSeconds = 7 * 86400

// packSeconds is the interval length of a pack level.
func packSeconds(level int) int64 {
	if level == levelWeek {
		return weekSeconds
	}
	return levelSeconds[level]
}

var (
	// levelSeconds is the interval length of the roll-ups (the base interval is the rows' own).
	levelSeconds = [levels]int64{0, 3600, 86400}
)

// levelOf returns the level a row of resolution res is written to.
func levelOf(res time.Duration) (int, error) {
	switch {
	case res == 24*time.Hour:
		return levelDay, nil
	case res == time.Hour:
		return levelHour, nil
	case res >= time.Second && res < time.Hour && time.Hour%res == 0 && res%time.Second == 0:
		return levelBase, nil
	}
	return 0, fmt.Errorf("unsupported row resolution %v (want a divisor of 1h, 1h or 24h)", res)
}

func floorTo(t, r int64) int64 {
	m := t % r
	if m < 0 {
		m += r
	}
	return t - m
}

func ceilTo(t, r int64) int64 {
	f := floorTo(t, r)
	if f == t {
		return t
	}
	return f + r
}

// seriesKey identifies a series: a view's dimensions under one collector.
type seriesKey struct {
	view, collector string
	dims            record.Dims
}

// pointKey identifies a point: a series at one level and interval start.
type pointKey struct {
	level int
	start int64
	sid   int64
}

type point struct {
	pointKey
	res int64
	m   record.Metrics
}

// encodePrefix stores a prefix as its address bytes (4 or 16) and its length; the zero prefix
// (the unrouted bucket) as no bytes.
func encodePrefix(p netip.Prefix) []byte { return appendPrefix(nil, p)[1:] }

// appendPrefix appends the length of p's encodePrefix bytes (one byte) and the bytes.
func appendPrefix(dst []byte, p netip.Prefix) []byte {
	if !p.IsValid() {
		return append(dst, 0)
	}
	a := p.Addr()
	if a.Is4() {
		b := a.As4()
		return append(dst, 5, b[0], b[1], b[2], b[3], byte(p.Bits()))
	}
	b := a.As16()
	return append(append(append(dst, 17), b[:]...), byte(p.Bits()))
}

func decodePrefix(b []byte) (netip.Prefix, error) {
	switch len(b) {
	case 0:
		return netip.Prefix{}, nil
	case 5:
		return netip.PrefixFrom(netip.AddrFrom4([4]byte(b[:4])), int(b[4])), nil
	case 17:
		return netip.PrefixFrom(netip.AddrFrom16([16]byte(b[:16])), int(b[16])), nil
	}
	return netip.Prefix{}, fmt.Errorf("bad stored prefix of %d bytes", len(b))
}

// decodeAddrs sets d's prefix, source and destination group from their stored bytes.
func decodeAddrs(d *record.Dims, prefix, src, dst []byte) error {
	var err error
	if d.Prefix, err = decodePrefix(prefix); err != nil {
		return err
	}
	if d.SrcGroup, err = decodeAddr(src); err != nil {
		return err
	}
	d.DstGroup, err = decodeAddr(dst)
	return err
}

func encodeAddr(a netip.Addr) []byte { return appendAddr(nil, a)[1:] }

// appendAddr appends the length of a's encodeAddr bytes (one byte) and the bytes.
func appendAddr(dst []byte, a netip.Addr) []byte {
	if !a.IsValid() {
		return append(dst, 0)
	}
	if a.Is4() {
		b := a.As4()
		return append(append(dst, 4), b[:]...)
	}
	b := a.As16()
	return append(append(dst, 16), b[:]...)
}

func decodeAddr(b []byte) (netip.Addr, error) {
	switch len(b) {
	case 0:
		return netip.Addr{}, nil
	case 4:
		return netip.AddrFrom4([4]byte(b)), nil
	case 16:
		return netip.AddrFrom16([16]byte(b)), nil
	}
	return netip.Addr{}, fmt.Errorf("bad stored address of %d bytes", len(b))
}

// dimension describes a group-by dimension of queries: its series column and how its value is
// kept in Dims and printed.
type dimension struct {
	column string
	kind   byte // 't' text, 'i' integer, 'p' prefix, 'a' address
	need   int  // the pack field (decodeDims)
}

var dimensions = map[string]dimension{
	"asn":       {"asn", 'i', needASN},
	"path-asn":  {"asn", 'i', needASN},
	"origin":    {"origin_as", 'i', needOrigin},
	"peer":      {"peer_as", 'i', needPeer},
	"country":   {"country", 't', needCountry},
	"region":    {"region", 't', needRegion},
	"prefix":    {"prefix", 'p', needPrefix},
	"router":    {"router", 't', needRouter},
	"class":     {"class", 't', needClass},
	"path":      {"path", 't', needPath},
	"proto":     {"proto", 'i', needProto},
	"port":      {"port", 'i', needPort},
	"src-group": {"src_group", 'a', needSrc},
	"dst-group": {"dst_group", 'a', needDst},
}

// keyText prints a group's value: "203.0.113.0/24" or "unrouted", "AS64500", "DE" ("unknown"
// when empty), router and class names, "other" for port -1.
func keyText(by string, d *record.Dims) string {
	switch dimensions[by].column {
	case "asn":
		return "AS" + strconv.FormatUint(uint64(d.ASN), 10)
	case "origin_as":
		return "AS" + strconv.FormatUint(uint64(d.OriginAS), 10)
	case "peer_as":
		return "AS" + strconv.FormatUint(uint64(d.PeerAS), 10)
	case "country":
		return orUnknown(d.Country)
	case "region":
		return orUnknown(d.Region)
	case "prefix":
		if !d.Prefix.IsValid() {
			return "unrouted"
		}
		return d.Prefix.String()
	case "router":
		return orUnknown(d.Router)
	case "class":
		return orUnknown(d.Class)
	case "path":
		return d.Path
	case "proto":
		return strconv.Itoa(int(d.Proto))
	case "port":
		if d.Port < 0 {
			return "other"
		}
		return strconv.Itoa(int(d.Port))
	case "src_group":
		return addrText(d.SrcGroup)
	case "dst_group":
		return addrText(d.DstGroup)
	}
	return ""
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func addrText(a netip.Addr) string {
	if !a.IsValid() {
		return "unknown"
	}
	return a.String()
}

// keyIndex holds the series' keys by id, in chunks: appending never copies the keys.
type keyIndex struct {
	chunks [][]seriesKey
	n      int
}

const (
	keyShift = 12
	keyMask  = 1<<keyShift - 1
)

func (x *keyIndex) len() int { return x.n }

// at returns the key of id (0 ≤ id < len).
func (x *keyIndex) at(id int64) *seriesKey { return &x.chunks[id>>keyShift][id&keyMask] }

// prefetch starts loading the key of id (0 ≤ id < len).
func (x *keyIndex) prefetch(id int64) { prefetch.Slot(x.chunks[id>>keyShift], uint64(id&keyMask)) }

func (x *keyIndex) add(k seriesKey) {
	c := x.n >> keyShift
	if c == len(x.chunks) {
		x.chunks = append(x.chunks, make([]seriesKey, 0, 1<<keyShift))
	}
	x.chunks[c] = append(x.chunks[c], k)
	x.n++
}

// truncate drops the keys from id n on.
func (x *keyIndex) truncate(n int) {
	for c := n >> keyShift; c < len(x.chunks); c++ {
		lo := 0
		if c == n>>keyShift {
			lo = n & keyMask
		}
		clear(x.chunks[c][lo:])
		x.chunks[c] = x.chunks[c][:lo]
	}
	x.chunks = x.chunks[:(n+keyMask)>>keyShift]
	x.n = n
}
