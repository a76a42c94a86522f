package sqlite

import (
	"encoding/binary"
	"errors"

	"github.com/netledger/netledger/internal/record"
)

// A pack holds the points of one view at one interval start, column-wise, in two blobs. data:
//
//	version byte (1), uvarint n (points)
//	uvarint length, then n series ids as uvarint deltas (ascending)
//	the eleven metrics in Metrics' order, each a byte 0 (all zero) or 1 followed by n uvarints
//
// dims, the points' dimensions, read only for series the reader has not met in an earlier pack:
//
//	version byte (1), uvarint n
//	for router, class, path, country and region a dictionary (uvarint count, strings as uvarint
//	  length + bytes) and n uvarint indices; the prefix, src_group and dst_group as n (length
//	  byte + bytes) as stored in series; peer_as, origin_as, asn, proto as n uvarints, port as n
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

type packBuilder struct {
	n       int
	lastSid int64
	sids    []byte
	dict    [nStrings]map[string]uint64
	words   [nStrings][]string
	strs    [nStrings][]byte
	prefix  []byte
	src     []byte
	dst     []byte
	ints    [5][]byte
	metrics [nMetrics][]byte
	nonzero [nMetrics]bool
}

func newPackBuilder() *packBuilder {
	b := &packBuilder{}
	for i := range b.dict {
		b.dict[i] = map[string]uint64{}
	}
	return b
}

// add appends a point; points come in ascending series id.
func (b *packBuilder) add(sid int64, d *record.Dims, m *record.Metrics) {
	b.sids = binary.AppendUvarint(b.sids, uint64(sid-b.lastSid))
	b.lastSid = sid
	for i, s := range [nStrings]string{d.Router, d.Class, d.Path, d.Country, d.Region} {
		w, ok := b.dict[i][s]
		if !ok {
			w = uint64(len(b.words[i]))
			b.dict[i][s] = w
			b.words[i] = append(b.words[i], s)
		}
		b.strs[i] = binary.AppendUvarint(b.strs[i], w)
	}
	b.prefix = appendBytes(b.prefix, encodePrefix(d.Prefix))
	b.src = appendBytes(b.src, encodeAddr(d.SrcGroup))
	b.dst = appendBytes(b.dst, encodeAddr(d.DstGroup))
	b.ints[0] = binary.AppendUvarint(b.ints[0], uint64(d.PeerAS))
	b.ints[1] = binary.AppendUvarint(b.ints[1], uint64(d.OriginAS))
	b.ints[2] = binary.AppendUvarint(b.ints[2], uint64(d.ASN))
	b.ints[3] = binary.AppendUvarint(b.ints[3], uint64(d.Proto))
	b.ints[4] = binary.AppendVarint(b.ints[4], int64(d.Port))
	for i, v := range metricArray(m) {
		b.metrics[i] = binary.AppendUvarint(b.metrics[i], v)
		b.nonzero[i] = b.nonzero[i] || v != 0
	}
	b.n++
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

// bytes returns the data and dims blobs.
func (b *packBuilder) bytes() (data, dims []byte) {
	dims = binary.AppendUvarint([]byte{packVersion}, uint64(b.n))
	for i := range nStrings {
		dims = binary.AppendUvarint(dims, uint64(len(b.words[i])))
		for _, w := range b.words[i] {
			dims = binary.AppendUvarint(dims, uint64(len(w)))
			dims = append(dims, w...)
		}
		dims = append(dims, b.strs[i]...)
	}
	dims = append(append(append(dims, b.prefix...), b.src...), b.dst...)
	for _, c := range b.ints {
		dims = append(dims, c...)
	}
	data = binary.AppendUvarint([]byte{packVersion}, uint64(b.n))
	data = binary.AppendUvarint(data, uint64(len(b.sids)))
	data = append(data, b.sids...)
	for i, c := range b.metrics {
		if !b.nonzero[i] {
			data = append(data, 0)
			continue
		}
		data = append(data, 1)
		data = append(data, c...)
	}
	return data, dims
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
