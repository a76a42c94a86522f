// Package prefetch asks the CPU to start loading a cache line that will be read soon, so that
// the misses of a batch of independent random accesses (hash table slots, cache entries)
// overlap instead of following one another.
package prefetch

import "unsafe"

// Slot prefetches every cache line of s[i].
func Slot[T any](s []T, i uint64) {
	p := unsafe.Pointer(unsafe.SliceData(s))
	var zero T
	size := unsafe.Sizeof(zero)
	a := unsafe.Add(p, uintptr(i)*size)
	off := uintptr(0)
	for ; off < size; off += 64 {
		Line(unsafe.Add(a, off))
	}
	// the element's last line, when it does not start at a multiple of 64 bytes from a
	if end := uintptr(a) + size - 1; end>>6 != (uintptr(a)+off-64)>>6 {
		Line(unsafe.Add(a, size-1))
	}
}
