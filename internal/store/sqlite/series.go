package sqlite

import (
	"encoding/binary"
	"hash/maphash"

	"github.com/netledger/netledger/internal/record"
)

// A series pack holds the keys of the series with consecutive ids from its first, as one
// commit created them:
//
//	version byte (1 or 2), uvarint n
//	the views and the collectors as string columns (a dictionary and n indices, as in a dims
//	  blob), then, in version 1, a dims blob of the n series (pack.go)
//
// A version 2 pack's dims blob is the blob series_packs.dims names (migration 0006), shared
// with the packs of the same series.
const (
	seriesVersion     = 1
	seriesVersionDims = 2
)

// seriesHead returns a series pack's views and collectors (version 2: all of it; its dims blob
// is encodeDims's of the keys' dims).
func seriesHead(version byte, n int, key func(i int) *seriesKey) []byte {
	var (
		views, collectors strColumn
		vi                = make([]byte, 0, n)
		ci                = make([]byte, 0, n)
	)
	for i := range n {
		k := key(i)
		vi = appendUvarint(vi, views.word(k.view))
		ci = appendUvarint(ci, collectors.word(k.collector))
	}
	b := binary.AppendUvarint([]byte{version}, uint64(n))
	b = views.appendTo(b, vi)
	return collectors.appendTo(b, ci)
}

// seriesPack returns the series pack of n keys in version 1, dims inline (migration 0005).
func seriesPack(n int, key func(i int) *seriesKey) []byte {
	return append(seriesHead(seriesVersion, n, key), encodeDims(n, func(i int) *record.Dims { return &key(i).dims })...)
}

// decodeSeries decodes a series pack, with its dims blob when of version 2.
func decodeSeries(p, dims []byte) ([]seriesKey, error) {
	if len(p) < 1 || (p[0] != seriesVersion && p[0] != seriesVersionDims) {
		return nil, errBadPack
	}
	version := p[0]
	p = p[1:]
	n, err := uvarint(&p)
	if err != nil || n > uint64(len(p)) {
		return nil, errBadPack
	}
	views, collectors := make([]string, n), make([]string, n)
	if err := readStrColumn(&p, int(n), views); err != nil {
		return nil, err
	}
	if err := readStrColumn(&p, int(n), collectors); err != nil {
		return nil, err
	}
	if version == seriesVersionDims {
		if len(p) != 0 {
			return nil, errBadPack
		}
		p = dims
	}
	ds, err := decodeAllDims(p, int(n))
	if err != nil {
		return nil, err
	}
	keys := make([]seriesKey, n)
	for i := range keys {
		keys[i] = seriesKey{views[i], collectors[i], ds[i]}
	}
	return keys, nil
}

// seriesIndex maps series keys to ids by a 64-bit hash of the key. A map keyed by the whole
// key (≈ 220 bytes: view, collector and every dimension) was Commit's largest cost: hashing
// and comparing the key in the map, and growing a table of such keys. An id found by its hash
// is checked against the key index (the full key); a key whose hash an earlier key holds
// (possible, never expected) is kept in a small map keyed by the whole key.
type seriesIndex struct {
	byHash hashTable
	more   map[seriesKey]int64 // the keys whose hash byHash gives another key's id
	seed   maphash.Seed
	mask   uint64 // the hash bits kept: all but in tests that force collisions
}

func newSeriesIndex() seriesIndex {
	return seriesIndex{more: map[seriesKey]int64{}, seed: maphash.MakeSeed(), mask: ^uint64(0)}
}

// len returns the number of keys in the index.
func (x *seriesIndex) len() int { return x.byHash.len() + len(x.more) }

// reset empties the index, keeping room for n keys.
func (x *seriesIndex) reset(n int) {
	x.byHash, x.more = makeHashTable(n), map[seriesKey]int64{}
}

// hashKey hashes every field of k (the strings with their lengths, so that no two keys
// encode alike).
func (x *seriesIndex) hashKey(k *seriesKey) uint64 {
	d := &k.dims
	var buf [256]byte // on the stack: a field would cost a write barrier a key while the GC runs
	b := buf[:0]
	for _, s := range [...]string{k.view, k.collector, d.Router, d.Class, d.Path, d.Country, d.Region} {
		b = append(binary.AppendUvarint(b, uint64(len(s))), s...)
	}
	b = appendPrefix(b, d.Prefix)
	b = appendAddr(appendAddr(b, d.SrcGroup), d.DstGroup)
	b = binary.LittleEndian.AppendUint32(b, d.PeerAS)
	b = binary.LittleEndian.AppendUint32(b, d.OriginAS)
	b = binary.LittleEndian.AppendUint32(b, d.ASN)
	b = binary.LittleEndian.AppendUint32(b, uint32(d.Port))
	b = append(b, d.Proto)
	return maphash.Bytes(x.seed, b) & x.mask
}

// id returns the id of k, whose hash is h, and whether k was in the index; a key not in it is
// added under next.
func (x *seriesIndex) id(keys *keyIndex, k *seriesKey, h uint64, next int64) (int64, bool) {
	id, ok := x.byHash.get(h)
	switch {
	case !ok:
		x.byHash.set(h, next)
		return next, false
	case *keys.at(id) == *k:
		return id, true
	}
	if id, ok := x.more[*k]; ok {
		return id, true
	}
	x.more[*k] = next
	return next, false
}

// lookup returns the id of k.
func (x *seriesIndex) lookup(keys *keyIndex, k *seriesKey) (int64, bool) {
	id, ok := x.byHash.get(x.hashKey(k))
	if ok && *keys.at(id) != *k {
		id, ok = x.more[*k]
	}
	return id, ok
}

// add records k under id (a key added again, as the empty keys of gaps in old stores' ids,
// takes the later id).
func (x *seriesIndex) add(keys *keyIndex, k *seriesKey, id int64) {
	h := x.hashKey(k)
	if old, taken := x.byHash.get(h); taken && *keys.at(old) != *k {
		x.more[*k] = id
		return
	}
	x.byHash.set(h, id)
}

// forget removes the key of id (keys.at(id)) from the index. The ids forgotten are the newest
// (a failed write's), so a hash whose byHash entry goes has no older key in more.
func (x *seriesIndex) forget(keys *keyIndex, id int64) {
	k := keys.at(id)
	h := x.hashKey(k)
	if old, _ := x.byHash.get(h); old == id {
		x.byHash.del(h)
		return
	}
	delete(x.more, *k)
}
