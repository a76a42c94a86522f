package sqlite

import (
	"context"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

// TestTopConcurrentBase checks that top's base parts fetched concurrently with the packs give
// the results of the sequential reading, on random queries over a random store.
func TestTopConcurrentBase(t *testing.T) {
	ctx := context.Background()
	const days = 4
	rng := rand.New(rand.NewPCG(5, 5))
	s, _ := openTest(t, WithClock(func() time.Time { return t0.Add(days * 24 * time.Hour) }))
	commitAll(t, s, randRows(rng, 3000, days), 700)
	defer func() { concurrentBase = true }()
	withBase := 0
	for i := range 150 {
		q := randQuery(rng, days)
		if q.From.Unix()%3600 != 0 || q.To.Unix()%3600 != 0 {
			withBase++
		}
		var res [2]any
		for j, on := range []bool{false, true} {
			concurrentBase = on
			got, err := s.Top(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			res[j] = got
		}
		if !reflect.DeepEqual(res[0], res[1]) {
			t.Fatalf("top %d %+v: concurrent\n%+v\nsequential\n%+v", i, q, res[1], res[0])
		}
	}
	if withBase < 30 {
		t.Fatalf("%d queries with base parts: the test should read more", withBase)
	}
}
