package sqlite

import (
	"math/rand/v2"
	"testing"

	"github.com/netledger/netledger/internal/record"
)

func TestPackRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	rows := randRows(rng, 500, 1)
	b := newPackBuilder()
	for i := range rows {
		b.add(int64(i*3+1), &rows[i].Dims, &rows[i].Metrics)
	}
	var r packReader
	data, blob := b.bytes()
	if err := r.reset(data); err != nil {
		t.Fatal(err)
	}
	for _, by := range bys {
		dims, err := r.decodeDims(blob, needRouter|needClass|needCountry, dimensions[by].need)
		if err != nil {
			t.Fatal(err)
		}
		for i := range rows {
			d := &rows[i].Dims
			want := packDims{d.Router, d.Class, d.Country, groupKey(by, d)}
			if dims[i] != want || dimsFromKey(by, dims[i].key) != byValue(by, *d) {
				t.Fatalf("by %s, point %d: %+v, want %+v", by, i, dims[i], want)
			}
		}
	}
	ms := make([][nMetrics]uint64, r.n)
	slot := make([]int32, r.n)
	for k := range slot {
		slot[k] = int32(k)
	}
	if err := r.addMetrics(slot, ms); err != nil {
		t.Fatal(err)
	}
	if r.n != len(rows) {
		t.Fatalf("%d points, want %d", r.n, len(rows))
	}
	for i := range rows {
		if r.sids[i] != int64(i*3+1) || metricsFrom(&ms[i]) != rows[i].Metrics {
			t.Fatalf("point %d: %d %+v, want %+v", i, r.sids[i], ms[i], rows[i])
		}
	}
}

// FuzzPack feeds the pack decoder arbitrary bytes: errors, never a panic.
func FuzzPack(f *testing.F) {
	b := newPackBuilder()
	d := record.Dims{Router: "r1", Path: "1 2"}
	b.add(5, &d, &record.Metrics{Bytes: 300})
	data, dims := b.bytes()
	f.Add(data, dims)
	f.Add([]byte{packVersion, 1, 1, 0, 0}, []byte{packVersion, 1})
	f.Fuzz(func(t *testing.T, data, dims []byte) {
		var r packReader
		if r.reset(data) != nil {
			return
		}
		r.decodeDims(dims, needRouter|needClass|needCountry, needPrefix)
		r.addMetrics(make([]int32, r.n), make([][nMetrics]uint64, 1))
	})
}
