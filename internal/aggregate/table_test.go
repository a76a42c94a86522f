package aggregate

import (
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
		if len(sizes) == 0 || sizes[len(sizes)-1] != len(s.slots) {
			sizes = append(sizes, len(s.slots))
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
