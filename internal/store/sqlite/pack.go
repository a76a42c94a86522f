package sqlite

import (
	"encoding/binary"
	"errors"
	"slices"

	"github.com/netledger/netledger/internal/record"
)

// A pack holds the points of one view at one interval start, column-wise, in two blobs. data:
//
//	version byte (1), uvarint n (points)
//	uvarint length, then n series ids as uvarint deltas (ascending)
//	the eleven metrics in Metrics' order, each a byte 0 (all zero) or 1 followed by n uvarints
//
// dims, the points' dimensions, read only for series the reader has not met in an earlier pack
// (the same encoding holds the keys of a series pack, series.go):
//
//	version byte (1), uvarint n
//	for router, class, path, country and region a dictionary (uvarint count, strings as uvarint
//	  length + bytes) and n uvarint indices; the prefix, src_group and dst_group as n (length
//	  byte + bytes: encodePrefix, encodeAddr); peer_as, origin_as, asn, proto as n uvarints, port as n
//	  zig-zag varints
const packVersion = 1

const (
	strRouter = iota
	strClass
	strPath
	strCountry
	strRegion
	nStrings
)

const nMetrics = 11

// packBuilder builds a pack's data blob from points added in ascending series id; the dims
// blob is encoded apart (encodeDims), from the series index.
type packBuilder struct {
	res int64 // the longest resolution of the points (the pack's res column)
	ids []int64
	ms  []*record.Metrics
}

func newPackBuilder() *packBuilder { return &packBuilder{} }

// add appends a point (m is read by data); points come in ascending series id.
func (b *packBuilder) add(sid int64, m *record.Metrics) {
	b.ids = append(b.ids, sid)
	b.ms = append(b.ms, m)
}

// sameAs reports whether b holds the same points as o.
func (b *packBuilder) sameAs(o *packBuilder) bool {
	if o == nil || !slices.Equal(b.ids, o.ids) {
		return false
	}
	for k, m := range b.ms {
		if *m != *o.ms[k] {
			return false
		}
	}
	return true
}

// metricField reads the metrics of a pack's columns, in their order.
var metricField = [nMetrics]func(*record.Metrics) uint64{
	func(m *record.Metrics) uint64 { return m.Requests },
	func(m *record.Metrics) uint64 { return m.Bytes },
	func(m *record.Metrics) uint64 { return m.BytesIn },
	func(m *record.Metrics) uint64 { return m.Packets },
	func(m *record.Metrics) uint64 { return m.PacketsIn },
	func(m *record.Metrics) uint64 { return m.Retransmits },
	func(m *record.Metrics) uint64 { return m.Duration },
	func(m *record.Metrics) uint64 { return m.RTTSum },
	func(m *record.Metrics) uint64 { return m.RTTCount },
	func(m *record.Metrics) uint64 { return m.Conns },
	func(m *record.Metrics) uint64 { return m.Open },
}

func appendBytes(dst, b []byte) []byte {
	return append(append(dst, byte(len(b))), b...)
}

func metricArray(m *record.Metrics) [nMetrics]uint64 {
	return [nMetrics]uint64{m.Requests, m.Bytes, m.BytesIn, m.Packets, m.PacketsIn, m.Retransmits,
		m.Duration, m.RTTSum, m.RTTCount, m.Conns, m.Open}
}

func metricsFrom(a *[nMetrics]uint64) record.Metrics {
	return record.Metrics{Requests: a[0], Bytes: a[1], BytesIn: a[2], Packets: a[3], PacketsIn: a[4],
		Retransmits: a[5], Duration: a[6], RTTSum: a[7], RTTCount: a[8], Conns: a[9], Open: a[10]}
}

// data returns the data blob, written column by column.
func (b *packBuilder) data() []byte {
	n := len(b.ids)
	sids := make([]byte, 0, 2*n)
	var last int64
	for _, id := range b.ids {
		sids = binary.AppendUvarint(sids, uint64(id-last))
		last = id
	}
	data := make([]byte, 0, 24+len(sids)+8*n)
	data = binary.AppendUvarint(append(data, packVersion), uint64(n))
	data = binary.AppendUvarint(data, uint64(len(sids)))
	data = append(data, sids...)
	for c := range nMetrics {
		field := metricField[c]
		nonzero := false
		for _, m := range b.ms {
			if field(m) != 0 {
				nonzero = true
				break
			}
		}
		if !nonzero {
			data = append(data, 0)
			continue
		}
		data = append(data, 1)
		for _, m := range b.ms {
			data = binary.AppendUvarint(data, field(m))
		}
	}
	return data
}

// strColumn is a column of strings: a dictionary and an index per value.
type strColumn struct {
	dict  map[string]uint64
	words []string
	idx   []byte
}

func (c *strColumn) add(s string) {
	if c.dict == nil {
		c.dict = map[string]uint64{}
	}
	w, ok := c.dict[s]
	if !ok {
		w = uint64(len(c.words))
		c.dict[s] = w
		c.words = append(c.words, s)
	}
	c.idx = binary.AppendUvarint(c.idx, w)
}

// appendTo appends the dictionary (uvarint count, strings as uvarint length + bytes) and the
// indices.
func (c *strColumn) appendTo(dst []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(c.words)))
	for _, w := range c.words {
		dst = binary.AppendUvarint(dst, uint64(len(w)))
		dst = append(dst, w...)
	}
	return append(dst, c.idx...)
}

// readStrColumn decodes n values of a strColumn.
func readStrColumn(p *[]byte, n int, out []string) error {
	nw, err := uvarint(p)
	if err != nil || nw > uint64(len(*p)) {
		return errBadPack
	}
	words := make([]string, nw)
	for i := range words {
		l, err := uvarint(p)
		if err != nil || l > uint64(len(*p)) {
			return errBadPack
		}
		words[i] = string((*p)[:l])
		*p = (*p)[l:]
	}
	for k := range n {
		w, err := uvarint(p)
		if err != nil || w >= uint64(len(words)) {
			return errBadPack
		}
		out[k] = words[w]
	}
	return nil
}

// encodeDims returns the dims blob of n points whose dimensions dims returns.
func encodeDims(n int, dims func(i int) *record.Dims) []byte {
	var (
		strs        [nStrings]strColumn
		prefix, src []byte
		dst         []byte
		ints        [5][]byte
	)
	for i := range n {
		d := dims(i)
		for c, s := range [nStrings]string{d.Router, d.Class, d.Path, d.Country, d.Region} {
			strs[c].add(s)
		}
		prefix = appendBytes(prefix, encodePrefix(d.Prefix))
		src = appendBytes(src, encodeAddr(d.SrcGroup))
		dst = appendBytes(dst, encodeAddr(d.DstGroup))
		ints[0] = binary.AppendUvarint(ints[0], uint64(d.PeerAS))
		ints[1] = binary.AppendUvarint(ints[1], uint64(d.OriginAS))
		ints[2] = binary.AppendUvarint(ints[2], uint64(d.ASN))
		ints[3] = binary.AppendUvarint(ints[3], uint64(d.Proto))
		ints[4] = binary.AppendVarint(ints[4], int64(d.Port))
	}
	blob := binary.AppendUvarint([]byte{packVersion}, uint64(n))
	for i := range strs {
		blob = strs[i].appendTo(blob)
	}
	blob = append(append(append(blob, prefix...), src...), dst...)
	for _, c := range ints {
		blob = append(blob, c...)
	}
	return blob
}

// decodeAllDims decodes a dims blob of n points completely.
func decodeAllDims(p []byte, n int) ([]record.Dims, error) {
	if len(p) < 1 || p[0] != packVersion {
		return nil, errBadPack
	}
	p = p[1:]
	if m, err := uvarint(&p); err != nil || m != uint64(n) {
		return nil, errBadPack
	}
	ds := make([]record.Dims, n)
	col := make([]string, n)
	for i := range nStrings {
		if err := readStrColumn(&p, n, col); err != nil {
			return nil, err
		}
		for k := range ds {
			switch i {
			case strRouter:
				ds[k].Router = col[k]
			case strClass:
				ds[k].Class = col[k]
			case strPath:
				ds[k].Path = col[k]
			case strCountry:
				ds[k].Country = col[k]
			case strRegion:
				ds[k].Region = col[k]
			}
		}
	}
	var addrs [3][][]byte
	for c := range addrs {
		addrs[c] = make([][]byte, n)
		for k := range n {
			if len(p) < 1 || int(p[0]) >= len(p) {
				return nil, errBadPack
			}
			addrs[c][k] = p[1 : 1+int(p[0])]
			p = p[1+int(p[0]):]
		}
	}
	for k := range ds {
		if err := decodeAddrs(&ds[k], addrs[0][k], addrs[1][k], addrs[2][k]); err != nil {
			return nil, err
		}
	}
	for c := range 5 {
		for k := range ds {
			if c == 4 {
				v, err := varint(&p)
				if err != nil {
					return nil, err
				}
				ds[k].Port = int32(v)
				continue
			}
			v, err := uvarint(&p)
			if err != nil {
				return nil, err
			}
			switch c {
			case 0:
				ds[k].PeerAS = uint32(v)
			case 1:
				ds[k].OriginAS = uint32(v)
			case 2:
				ds[k].ASN = uint32(v)
			case 3:
				ds[k].Proto = uint8(v)
			}
		}
	}
	return ds, nil
}

var errBadPack = errors.New("corrupt pack")

// packReader decodes a pack; its buffers are reused from pack to pack.
type packReader struct {
	n       int
	sids    []int64
	metrics []byte
	words   [nStrings][]string
	decoded []packDims
}

func (r *packReader) reset(data []byte) error {
	if len(data) < 1 || data[0] != packVersion {
		return errBadPack
	}
	p := data[1:]
	n, err := uvarint(&p)
	if err != nil || n > uint64(len(data)) {
		return errBadPack
	}
	r.n = int(n)
	sec, err := section(&p)
	if err != nil {
		return err
	}
	if cap(r.sids) < r.n {
		r.sids = make([]int64, 0, r.n)
	}
	r.sids = r.sids[:0]
	var sid int64
	for range r.n {
		d, err := uvarint(&sec)
		if err != nil {
			return err
		}
		sid += int64(d)
		r.sids = append(r.sids, sid)
	}
	r.metrics = p
	return nil
}

// addMetrics adds each point's metrics to sums[slot[k]] (points whose slot is negative are
// skipped).
func (r *packReader) addMetrics(slot []int32, sums [][nMetrics]uint64) error {
	p := r.metrics
	slot = slot[:r.n]
	for c := range nMetrics {
		if len(p) == 0 {
			return errBadPack
		}
		flag := p[0]
		p = p[1:]
		if flag == 0 {
			continue
		}
		for _, si := range slot {
			// Inlined uvarint: this loop is the hot path of a query.
			var v uint64
			if len(p) > 0 && p[0] < 0x80 {
				v = uint64(p[0])
				p = p[1:]
			} else {
				var s uint
				for i := 0; ; i++ {
					if i >= len(p) || i == binary.MaxVarintLen64 {
						return errBadPack
					}
					b := p[i]
					if b < 0x80 {
						v |= uint64(b) << s
						p = p[i+1:]
						break
					}
					v |= uint64(b&0x7f) << s
					s += 7
				}
			}
			if si >= 0 {
				sums[si][c] += v
			}
		}
	}
	return nil
}

// Fields of Dims for decodeDims' need mask.
const (
	needRouter = 1 << iota
	needClass
	needPath
	needCountry
	needRegion
	needPrefix
	needSrc
	needDst
	needPeer
	needOrigin
	needASN
	needProto
	needPort
)

// packDims is what a query needs of a point's dimensions: the filtered ones and the group key.
type packDims struct {
	router, class, country string
	key                    gkey
}

// decodeDims decodes the pack's dims blob: the router, class and country when need has them,
// and the group key from the field keyField (one need bit).
func (r *packReader) decodeDims(p []byte, need, keyField int) ([]packDims, error) {
	if len(p) < 1 || p[0] != packVersion {
		return nil, errBadPack
	}
	p = p[1:]
	if n, err := uvarint(&p); err != nil || n != uint64(r.n) {
		return nil, errBadPack
	}
	if cap(r.decoded) < r.n {
		r.decoded = make([]packDims, r.n)
	}
	ds := r.decoded[:r.n]
	need |= keyField
	for i := range nStrings {
		nw, err := uvarint(&p)
		if err != nil || nw > uint64(len(p)) {
			return nil, errBadPack
		}
		r.words[i] = r.words[i][:0]
		for range nw {
			l, err := uvarint(&p)
			if err != nil || l > uint64(len(p)) {
				return nil, errBadPack
			}
			if need&(1<<i) != 0 {
				r.words[i] = append(r.words[i], string(p[:l]))
			}
			p = p[l:]
		}
		for k := range ds {
			w, err := uvarint(&p)
			if err != nil {
				return nil, err
			}
			if need&(1<<i) == 0 {
				continue
			}
			if w >= uint64(len(r.words[i])) {
				return nil, errBadPack
			}
			s := r.words[i][w]
			switch i {
			case strRouter:
				ds[k].router = s
			case strClass:
				ds[k].class = s
			case strCountry:
				ds[k].country = s
			}
			if keyField == 1<<i {
				ds[k].key = gkey{s: s}
			}
		}
	}
	for c := range 3 {
		for k := range ds {
			if len(p) < 1 || int(p[0]) >= len(p) {
				return nil, errBadPack
			}
			b := p[1 : 1+int(p[0])]
			p = p[1+int(p[0]):]
			if keyField != needPrefix<<c {
				continue
			}
			if c == 0 {
				pf, err := decodePrefix(b)
				if err != nil {
					return nil, err
				}
				ds[k].key = gkey{a: pf.Addr(), bits: pf.Bits()}
				continue
			}
			a, err := decodeAddr(b)
			if err != nil {
				return nil, err
			}
			ds[k].key = gkey{a: a}
		}
	}
	for c := range 5 {
		for k := range ds {
			var v int64
			if c == 4 {
				sv, err := varint(&p)
				if err != nil {
					return nil, err
				}
				v = int64(int32(sv))
			} else {
				u, err := uvarint(&p)
				if err != nil {
					return nil, err
				}
				v = int64(u)
				if c == 3 {
					v = int64(uint8(u))
				} else {
					v = int64(uint32(u))
				}
			}
			if keyField == needPeer<<c {
				ds[k].key = gkey{n: v}
			}
		}
	}
	return ds, nil
}

func uvarint(p *[]byte) (uint64, error) {
	v, n := binary.Uvarint(*p)
	if n <= 0 {
		return 0, errBadPack
	}
	*p = (*p)[n:]
	return v, nil
}

func varint(p *[]byte) (int64, error) {
	v, n := binary.Varint(*p)
	if n <= 0 {
		return 0, errBadPack
	}
	*p = (*p)[n:]
	return v, nil
}

func section(p *[]byte) ([]byte, error) {
	l, err := uvarint(p)
	if err != nil || l > uint64(len(*p)) {
		return nil, errBadPack
	}
	s := (*p)[:l]
	*p = (*p)[l:]
	return s, nil
}
