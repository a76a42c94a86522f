// Package prefetch asks the CPU to start loading a cache line that will be read soon, so that
// the misses of a batch of independent random accesses (hash table slots, cache entries)
// overlap instead of following one another.
package prefetch

import "unsafe"

// Slot prefetches the cache lines of s[i] (an element up to two lines long).
func Slot[T any](s []T, i uint64) {
	p := unsafe.Pointer(unsafe.SliceData(s))
	var zero T
	size := unsafe.Sizeof(zero)
	a := unsafe.Add(p, uintptr(i)*size)
	Line(a)
	if size > 64 || (uintptr(a)&63)+size > 64 {
		Line(unsafe.Add(a, size-1))
	}
}
