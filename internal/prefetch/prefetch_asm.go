//go:build amd64 || arm64

package prefetch

import "unsafe"

// Line starts loading the cache line holding p into every cache level. It never faults and
// has no effect on the program's results; p may be any address, even invalid.
//
//go:noescape
func Line(p unsafe.Pointer)
