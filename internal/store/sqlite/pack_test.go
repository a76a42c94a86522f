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
	dims, err := r.decodeDims(blob, needAll)
	if err != nil {
		t.Fatal(err)
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
		if r.sids[i] != int64(i*3+1) || dims[i] != rows[i].Dims || metricsFrom(&ms[i]) != rows[i].Metrics {
			t.Fatalf("point %d: %d %+v %+v, want %+v", i, r.sids[i], dims[i], ms[i], rows[i])
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
		r.decodeDims(dims, needAll)
		r.addMetrics(make([]int32, r.n), make([][nMetrics]uint64, 1))
	})
}
