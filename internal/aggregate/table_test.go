package aggregate

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestSumsKeysOnce: every key has one slot, found again after the table grew (a key added
// twice would be summed correctly by the views but waste slots and flush time).
func TestSumsKeysOnce(t *testing.T) {
	var s sums
	const n = 50_000
	for round := range 3 {
		for i := range n {
			k := key{peer: uint32(i), class: uint16(i % 7)}
			s.at(&k).Requests++
		}
		if s.len() != n {
			t.Fatalf("round %d: %d keys, want %d", round, s.len(), n)
		}
	}
	for i := range n {
		k := key{peer: uint32(i), class: uint16(i % 7)}
		if got := s.at(&k).Requests; got != 3 {
			t.Fatalf("key %d: %d requests, want 3", i, got)
		}
	}
	s.reset()
	if s.len() != 0 {
		t.Fatalf("%d keys after reset", s.len())
	}
	k := key{peer: 1}
	if s.at(&k).Requests != 0 {
		t.Fatal("a key kept its metrics after reset")
	}
}

// TestSumsGrowsFourfoldWhileSmall: a fresh table grows fourfold up to 2^18 slots, then twofold,
// keeping every key (the growth garbage of a fresh pipeline's first stage is a third of what
// doubling leaves).
func TestSumsGrowsFourfoldWhileSmall(t *testing.T) {
	var s sums
	var sizes []int
	const n = 300_000
	for i := range n {
		k := key{peer: uint32(i), class: uint16(i % 5)}
		s.at(&k).Requests++
		if len(sizes) == 0 || sizes[len(sizes)-1] != len(s.index) {
			sizes = append(sizes, len(s.index))
		}
	}
	want := []int{1 << 10, 1 << 12, 1 << 14, 1 << 16, 1 << 18, 1 << 19}
	if !slices.Equal(sizes, want) {
		t.Fatalf("table sizes %v, want %v", sizes, want)
	}
	for i := range n {
		k := key{peer: uint32(i), class: uint16(i % 5)}
		if got := s.at(&k).Requests; got != 1 {
			t.Fatalf("key %d: %d requests after growing, want 1", i, got)
		}
	}
	if s.len() != n {
		t.Fatalf("%d keys, want %d", s.len(), n)
	}
}

// TestSumsOracle: random keys added with random metrics, the table reset at random points
// (after loads large and small, so that both ways of emptying the index run), against a map:
// after every step the entries are the map's keys in the order they were first added, each
// with the map's sums, and every index slot points to its entry.
func TestSumsOracle(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var s sums
	want := map[key]uint64{}
	var order []key
	check := func(step int) {
		t.Helper()
		if s.len() != len(order) {
			t.Fatalf("step %d: %d entries, want %d", step, s.len(), len(order))
		}
		for i, k := range order {
			ek, em, _ := s.entry(i)
			if *ek != k || em.Bytes != want[k] {
				t.Fatalf("step %d: entry %d is %+v with %d bytes, want %+v with %d", step, i, *ek, em.Bytes, k, want[k])
			}
		}
		n := 0
		for i, v := range s.index {
			if v == 0 {
				continue
			}
			n++
			e := &s.ents[uint32(v)-1]
			if e.h&tagMask != v&tagMask || uint32(v)-1 >= uint32(s.len()) {
				t.Fatalf("step %d: index slot %d points to a stale or wrong entry", step, i)
			}
		}
		if n != s.len() {
			t.Fatalf("step %d: %d index slots used, want %d", step, n, s.len())
		}
	}
	for step := range 40 {
		n := []int{10, 100, 3000, 20_000}[rng.IntN(4)]
		space := uint32(1 + rng.IntN(2*n))
		for range n {
			k := key{peer: rng.Uint32N(space), class: uint16(rng.IntN(3))}
			b := rng.Uint64N(1000)
			if _, ok := want[k]; !ok {
				order = append(order, k)
			}
			want[k] += b
			s.at(&k).Bytes += b
		}
		check(step)
		if rng.IntN(2) == 0 {
			s.reset()
			clear(want)
			order = order[:0]
			check(step)
		}
	}
}
