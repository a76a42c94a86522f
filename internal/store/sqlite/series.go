package sqlite

import (
	"encoding/binary"

	"github.com/netledger/netledger/internal/record"
)

// A series pack holds the keys of the series with consecutive ids from its first, as one
// commit created them:
//
//	version byte (1), uvarint n
//	the views and the collectors as string columns (a dictionary and n indices, as in a dims
//	  blob), then a dims blob of the n series (pack.go)
const seriesVersion = 1

// encodeSeries returns the series pack of n keys, and its dims blob (a slice of it).
func encodeSeries(n int, key func(i int) *seriesKey) (pack, dims []byte) {
	var views, collectors strColumn
	for i := range n {
		k := key(i)
		views.add(k.view)
		collectors.add(k.collector)
	}
	b := binary.AppendUvarint([]byte{seriesVersion}, uint64(n))
	b = views.appendTo(b)
	b = collectors.appendTo(b)
	h := len(b)
	b = append(b, encodeDims(n, func(i int) *record.Dims { return &key(i).dims })...)
	return b, b[h:]
}

// decodeSeries decodes a series pack.
func decodeSeries(p []byte) ([]seriesKey, error) {
	if len(p) < 1 || p[0] != seriesVersion {
		return nil, errBadPack
	}
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
	dims, err := decodeAllDims(p, int(n))
	if err != nil {
		return nil, err
	}
	keys := make([]seriesKey, n)
	for i := range keys {
		keys[i] = seriesKey{views[i], collectors[i], dims[i]}
	}
	return keys, nil
}

// seriesPack returns the series pack of n keys.
func seriesPack(n int, key func(i int) *seriesKey) []byte {
	p, _ := encodeSeries(n, key)
	return p
}
