package sqlite

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/netledger/netledger/internal/record"
	"github.com/netledger/netledger/internal/store"
)

// withParallelRows sets the size from which writes take the parallel path, for one test.
func withParallelRows(t *testing.T, n int) {
	old := parallelRows
	parallelRows = n
	t.Cleanup(func() { parallelRows = old })
}

// tableBytes returns every row of the store's tables, blobs by id with a hash of their bytes.
func tableBytes(t *testing.T, s *Store) []string {
	t.Helper()
	var out []string
	for _, q := range []string{
		`SELECT 'blob', id, data FROM blobs ORDER BY id`,
		`SELECT 'pack', level, start, view, res, data, dims FROM packs ORDER BY level, view, start, data`,
		`SELECT 'series', first, n, data, dims FROM series_packs ORDER BY first`,
		`SELECT 'dirty', level, start, view, until FROM dirty ORDER BY level, view, start`,
		`SELECT 'position', consumer, segment, offset FROM positions ORDER BY consumer`,
	} {
		rows, err := s.r.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for i, v := range vals {
				if b, ok := v.([]byte); ok {
					vals[i] = fmt.Sprintf("%d bytes %x", len(b), sha256.Sum256(b))
				}
			}
			out = append(out, fmt.Sprint(vals...))
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// parallelBatches returns batches of random rows large enough for several series packs per
// view (runs of ≥ minViewPack new series), over several minutes, hours and days, so that
// groups are derived, merged and compacted; later batches repeat earlier series.
func parallelBatches(rng *rand.Rand) [][]record.Row {
	var out [][]record.Row
	for b := range 4 {
		var rows []record.Row
		for v, view := range views {
			for i := range 1500 + 400*b {
				r := randRows(rng, 1, 2)[0]
				r.View = view
				r.Dims.Port = int32(i + 1000*b*(v%2)) // new series, and (odd views) old ones again
				r.Start = t0.Add(time.Duration(b*24*60+rng.IntN(3*60)) * time.Minute)
				rows = append(rows, r)
			}
		}
		out = append(out, rows)
	}
	return out
}

// TestParallelCommitSameBytes commits the same batches into a store writing serially and one
// taking the parallel path (hashing and encoding on a pool) for every write: the tables are
// equal byte for byte (blob ids included), and so are the totals of every level. A commit that
// fails in the middle of the parallel path (a row without view: the grouper fails while the
// series are being encoded) leaves nothing, as a failed commit on the serial path.
func TestParallelCommitSameBytes(t *testing.T) {
	ctx := context.Background()
	batches := parallelBatches(rand.New(rand.NewPCG(41, 42)))
	bad := slices.Clone(batches[1])
	bad[len(bad)/2].View, bad[len(bad)/2].Metrics.Bytes = "", 1
	stores := map[bool]*Store{}
	for _, parallel := range []bool{false, true} {
		withParallelRows(t, map[bool]int{false: 1 << 40, true: 1}[parallel])
		s, _ := openTest(t)
		stores[parallel] = s
		for i, rows := range batches {
			if i == 1 {
				before, index := tableBytes(t, s), s.keys.len()
				if err := s.Commit(ctx, store.Batch{Consumer: "accounting", Position: store.Position{Segment: 99}, Rows: bad}); err == nil {
					t.Fatal("commit of a row without view succeeded")
				}
				if after := tableBytes(t, s); !slices.Equal(before, after) || s.keys.len() != index {
					t.Fatalf("parallel %v: a failed commit changed the store (first difference %v)", parallel, firstDiff(before, after))
				}
			}
			commitAll(t, s, rows, len(rows))
		}
	}
	serial, par := tableBytes(t, stores[false]), tableBytes(t, stores[true])
	if !slices.Equal(serial, par) {
		t.Fatalf("parallel path stored other bytes (%d vs %d rows; first difference %v)", len(serial), len(par), firstDiff(serial, par))
	}
	if n := tableCounts(t, stores[true]); n["series packs"] < 2*len(views) || n["blobs"] < 10 {
		t.Fatalf("%v: want several series packs and blobs", n)
	}
	for _, level := range levelName {
		var totals [2]map[string]Totals
		for k, parallel := range []bool{false, true} {
			var err error
			if totals[k], err = ReadTotals(ctx, stores[parallel].cfg.Path, level); err != nil {
				t.Fatal(err)
			}
		}
		if !maps.Equal(totals[0], totals[1]) || len(totals[0]) != len(views) {
			t.Fatalf("level %s: totals %v serial, %v parallel", level, totals[0], totals[1])
		}
	}
	var all []record.Row
	for _, rows := range batches {
		all = append(all, rows...)
	}
	checkPoints(t, stores[true], all)
}

// TestBlobJobs takes the blobs of a pool in an order of the writer's, skips some, and stops
// early: every blob is the job's, and wait returns once the pool is idle (-race: no job
// touches what the writer changes after wait).
func TestBlobJobs(t *testing.T) {
	for _, parallel := range []bool{false, true} {
		for _, n := range []int{0, 1, 2, 7, 100} {
			encoded := make([]int, n) // per job: how many times it ran (parallel: written by the pool)
			j := newBlobJobs(n, parallel, func(i int) []byte {
				encoded[i]++
				return bytes.Repeat([]byte{byte(i)}, i%5)
			})
			for i := 0; i < n/2; i += 2 {
				if b := j.get(i); !bytes.Equal(b, bytes.Repeat([]byte{byte(i)}, i%5)) {
					t.Fatalf("parallel %v, n %d: blob %d is %v", parallel, n, i, b)
				}
			}
			j.wait()
			for i, c := range encoded {
				want := 0
				if parallel || (i < n/2 && i%2 == 0) {
					want = 1
				}
				if c != want {
					t.Fatalf("parallel %v, n %d: job %d ran %d times", parallel, n, i, c)
				}
			}
		}
	}
}

func TestHashAll(t *testing.T) {
	for _, n := range []int{0, 1, 3, 1000} {
		hs := make([]uint64, n)
		hashAll(n, hs, func(i int) uint64 { return uint64(i)*7 + 1 })
		for i, h := range hs {
			if h != uint64(i)*7+1 {
				t.Fatalf("n %d: hs[%d] = %d", n, i, h)
			}
		}
	}
}
