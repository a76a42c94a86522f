package sqlite

import (
	"encoding/binary"
	"errors"
	"slices"
	"unsafe"

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

// Metrics is its eleven uint64 sums in a pack's column order (TestMetricColumns): the
// encoder reads them as an array instead of field by field.
var _ [unsafe.Sizeof(record.Metrics{}) - 8*nMetrics]struct{}
var _ [8*nMetrics - unsafe.Sizeof(record.Metrics{})]struct{}

func metricCols(m *record.Metrics) *[nMetrics]uint64 {
	return (*[nMetrics]uint64)(unsafe.Pointer(m))
}

func metricsFrom(a *[nMetrics]uint64) record.Metrics {
	return record.Metrics{Requests: a[0], Bytes: a[1], BytesIn: a[2], Packets: a[3], PacketsIn: a[4],
		Retransmits: a[5], Duration: a[6], RTTSum: a[7], RTTCount: a[8], Conns: a[9], Open: a[10]}
}

// data returns the data blob, written column by column.
func (b *packBuilder) data() []byte {
	n := len(b.ids)
	// One pass over the points (the batch's rows: scattered) writes every column.
	var (
		cols    [nMetrics][]byte
		nonzero [nMetrics]uint64
	)
	for c := range cols {
		cols[c] = make([]byte, 0, 3*n)
	}
	for _, m := range b.ms {
		for c, v := range metricCols(m) {
			nonzero[c] |= v
			cols[c] = appendUvarint(cols[c], v)
		}
	}
	size := 32 + binary.MaxVarintLen64*n
	for c := range cols {
		size += len(cols[c])
	}
	data := binary.AppendUvarint(append(make([]byte, 0, size), packVersion), uint64(n))
	h := len(data)
	data = append(data, 0, 0, 0, 0, 0) // the ids' length, moved when shorter
	var last int64
	for _, id := range b.ids {
		data = appendUvarint(data, uint64(id-last))
		last = id
	}
	l := len(data) - h - 5
	lb := binary.AppendUvarint(nil, uint64(l))
	copy(data[h:], lb)
	data = append(data[:h+len(lb)], data[h+5:]...)
	for c := range cols {
		if nonzero[c] == 0 {
			data = append(data, 0)
			continue
		}
		data = append(append(data, 1), cols[c]...)
	}
	return data
}

// appendUvarint is binary.AppendUvarint with the one-byte case inlined: most values of a
// pack are small.
func appendUvarint(b []byte, v uint64) []byte {
	if v < 0x80 {
		return append(b, byte(v))
	}
	return binary.AppendUvarint(b, v)
}

// strColumn is the dictionary of a column of strings; the values' indices (uvarints) are the
// caller's, in a local slice: appending them to a field of a heap object costs a write barrier
// each while the garbage collector runs.
type strColumn struct {
	dict  map[string]uint64
	words []string
	last  uint64 // the index of the word returned last (when words is not empty)
	// byData finds the words of many-word columns (AS paths) by the address and length of
	// their bytes, without reading them: the rows of a route share its path's string. A
	// direct-mapped cache (a slot per address hash, the last word seen there), not a map: a
	// new word costs no insertion into a second growing map, and a miss only a look-up in dict.
	byData *[byDataSlots]strData
}

type strData struct {
	p    *byte
	n    int
	word uint64
}

// byDataSlots is the number of slots of a strColumn's byData (24 bytes each).
const byDataSlots = 1 << 12

// byDataSlot returns the byData slot of a string's bytes at p.
func byDataSlot(p *byte) int {
	return int(uint64(uintptr(unsafe.Pointer(p))) * 0x9e3779b97f4a7c15 >> (64 - 12))
}

// smallDict is the number of words a strColumn finds by comparing before it uses its map:
// routers, classes, countries, regions are few.
const smallDict = 8

// word returns the index of s in the dictionary, adding it when new.
func (c *strColumn) word(s string) uint64 {
	// Neighbouring points mostly share their path, router, class…
	if len(c.words) > 0 && s == c.words[c.last] {
		return c.last
	}
	if len(c.words) <= smallDict {
		for w, x := range c.words {
			if x == s {
				c.last = uint64(w)
				return c.last
			}
		}
		if len(c.words) < smallDict {
			c.last = uint64(len(c.words))
			c.words = append(c.words, s)
			return c.last
		}
	}
	if c.dict == nil {
		c.dict = make(map[string]uint64, 2*smallDict)
		for w, x := range c.words {
			c.dict[x] = uint64(w)
		}
		c.byData = new([byDataSlots]strData)
	}
	p := unsafe.StringData(s)
	sd := &c.byData[byDataSlot(p)]
	if sd.p == p && sd.n == len(s) && p != nil {
		c.last = sd.word
		return sd.word
	}
	w, ok := c.dict[s]
	if !ok {
		w = uint64(len(c.words))
		c.dict[s] = w
		c.words = append(c.words, s)
	}
	*sd = strData{p, len(s), w}
	c.last = w
	return w
}

// appendTo appends the dictionary (uvarint count, strings as uvarint length + bytes) and the
// indices idx.
func (c *strColumn) appendTo(dst, idx []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(c.words)))
	for _, w := range c.words {
		dst = binary.AppendUvarint(dst, uint64(len(w)))
		dst = append(dst, w...)
	}
	return append(dst, idx...)
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
	return append(dimsFront(n, dims), dimsBack(n, dims)...)
}

// dimsSplit is the string column at which a dims blob is encoded in two halves (dimsFront and
// dimsBack) that two goroutines encode at once for a large write (writeRows): the router, class
// and path columns — the AS paths are most of the work, their dictionary of thousands of words —
// and the rest.
const dimsSplit = strCountry

// dimsFront returns the head of a dims blob (version, n) and its string columns before
// dimsSplit; dimsBack's bytes follow.
func dimsFront(n int, dims func(i int) *record.Dims) []byte {
	b := binary.AppendUvarint([]byte{packVersion}, uint64(n))
	return appendStrColumns(b, n, dims, 0, dimsSplit)
}

// dimsBack returns the rest of a dims blob after dimsFront's bytes: the string columns from
// dimsSplit, then the addresses and the integers.
func dimsBack(n int, dims func(i int) *record.Dims) []byte {
	var (
		prefix = make([]byte, 0, 6*n)
		src    = make([]byte, 0, n)
		dst    = make([]byte, 0, n)
		ints   [5][]byte
	)
	for c := range ints {
		ints[c] = make([]byte, 0, n)
	}
	for i := range n {
		d := dims(i)
		prefix = appendPrefix(prefix, d.Prefix)
		src = appendAddr(src, d.SrcGroup)
		dst = appendAddr(dst, d.DstGroup)
		ints[0] = binary.AppendUvarint(ints[0], uint64(d.PeerAS))
		ints[1] = binary.AppendUvarint(ints[1], uint64(d.OriginAS))
		ints[2] = binary.AppendUvarint(ints[2], uint64(d.ASN))
		ints[3] = binary.AppendUvarint(ints[3], uint64(d.Proto))
		ints[4] = binary.AppendVarint(ints[4], int64(d.Port))
	}
	size := len(prefix) + len(src) + len(dst)
	for _, c := range ints {
		size += len(c)
	}
	blob := appendStrColumns(make([]byte, 0, size+n*2*(nStrings-dimsSplit)), n, dims, dimsSplit, nStrings)
	blob = append(append(append(blob, prefix...), src...), dst...)
	for _, c := range ints {
		blob = append(blob, c...)
	}
	return blob
}

// appendStrColumns appends the string columns from to to (exclusive) of n points.
func appendStrColumns(blob []byte, n int, dims func(i int) *record.Dims, from, to int) []byte {
	var (
		strs [nStrings]strColumn
		idx  [nStrings][]byte
	)
	for c := from; c < to; c++ {
		idx[c] = make([]byte, 0, 3*n) // an index of up to 2M words in 3 bytes
	}
	for i := range n {
		d := dims(i)
		for c, s := range [nStrings]string{d.Router, d.Class, d.Path, d.Country, d.Region} {
			if c >= from && c < to {
				idx[c] = appendUvarint(idx[c], strs[c].word(s))
			}
		}
	}
	size := 0
	for c := from; c < to; c++ {
		size += 8 + len(idx[c])
		for _, w := range strs[c].words {
			size += 2 + len(w)
		}
	}
	blob = slices.Grow(blob, size)
	for c := from; c < to; c++ {
		blob = strs[c].appendTo(blob, idx[c])
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
