package sqlite

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/netledger/netledger/internal/record"
)

func TestPackRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	rows := randRows(rng, 500, 1)
	b := newPackBuilder()
	for i := range rows {
		b.add(int64(i*3+1), &rows[i].Metrics)
	}
	var r packReader
	data, blob := b.data(), encodeDims(len(rows), func(i int) *record.Dims { return &rows[i].Dims })
	all, err := decodeAllDims(blob, len(rows))
	if err != nil {
		t.Fatal(err)
	}
	for i := range rows {
		if all[i] != rows[i].Dims {
			t.Fatalf("point %d: dims %+v, want %+v", i, all[i], rows[i].Dims)
		}
	}
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
	b.add(5, &record.Metrics{Bytes: 300})
	data, dims := b.data(), encodeDims(1, func(int) *record.Dims { return &d })
	f.Add(data, dims)
	f.Add([]byte{packVersion, 1, 1, 0, 0}, []byte{packVersion, 1})
	f.Fuzz(func(t *testing.T, data, dims []byte) {
		var r packReader
		if r.reset(data) != nil {
			return
		}
		r.decodeDims(dims, needRouter|needClass|needCountry, needPrefix)
		r.addMetrics(make([]int32, r.n), make([][nMetrics]uint64, 1))
		decodeAllDims(dims, r.n)
		decodeSeries(dims)
	})
}

// TestSelectFirst checks top's bounded selection against a full sort, on values with many ties
// broken by a second key.
func TestSelectFirst(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	for range 200 {
		m := 1 + rng.IntN(50)
		vals := make([]int, m)
		for i := range vals {
			vals[i] = rng.IntN(5)
		}
		order := func(x, y int32) int {
			if c := cmp.Compare(vals[y], vals[x]); c != 0 {
				return c
			}
			return cmp.Compare(x, y)
		}
		all := make([]int32, m)
		for i := range all {
			all[i] = int32(m - 1 - i)
		}
		n := 1 + rng.IntN(m)
		got := selectFirst(slices.Clone(all), n, order)
		slices.SortFunc(got, order)
		slices.SortFunc(all, order)
		if !slices.Equal(got, all[:n]) {
			t.Fatalf("vals %v, n %d: %v, want %v", vals, n, got, all[:n])
		}
	}
}
