package sqlite

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
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
		decodeSeries(dims, nil)
		decodeSeries(data, dims)
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

// TestMetricColumns checks that metricCols reads Metrics in the pack's column order (the order
// of metricsFrom).
func TestMetricColumns(t *testing.T) {
	var a [nMetrics]uint64
	for i := range a {
		a[i] = uint64(i + 1)
	}
	m := metricsFrom(&a)
	if got := *metricCols(&m); got != a {
		t.Fatalf("columns %v, want %v", got, a)
	}
}

// TestStrColumn round-trips string columns of few and of many distinct words (found by
// comparison, then through byData and the map), with runs and repeats: values made afresh
// (equal words in other bytes: found by the map), and values taken from a pool of words (the
// same bytes again: found by byData; more words than byData's slots, and the empty word).
func TestStrColumn(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	for _, pooled := range []bool{false, true} {
		for _, words := range []int{1, smallDict - 1, smallDict, smallDict + 1, 1000, 3 * byDataSlots} {
			pool := make([]string, words)
			for i := range pool {
				pool[i] = fmt.Sprint("w", i)
				if i%2 == 1 { // the bytes of the previous word, but one shorter
					pool[i] = pool[i-1][:len(pool[i-1])-1]
				}
			}
			pool[0] = ""
			var c strColumn
			var idx []byte
			vals := make([]string, 5*words+5000)
			for i := range vals {
				switch w := rng.IntN(words); {
				case i > 0 && rng.IntN(3) == 0:
					vals[i] = vals[i-1]
				case pooled:
					vals[i] = pool[w]
				default:
					vals[i] = strings.Clone(pool[w])
				}
				idx = appendUvarint(idx, c.word(vals[i]))
			}
			p := c.appendTo(nil, idx)
			got := make([]string, len(vals))
			if err := readStrColumn(&p, len(vals), got); err != nil || len(p) != 0 {
				t.Fatalf("%d words: %v, %d bytes left", words, err, len(p))
			}
			if !slices.Equal(got, vals) || len(c.words) > words {
				t.Fatalf("pooled %v, %d words: %d in the dictionary, values differ: %v", pooled, words, len(c.words), !slices.Equal(got, vals))
			}
		}
	}
}
