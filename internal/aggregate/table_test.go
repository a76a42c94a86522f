package aggregate

import "testing"

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
