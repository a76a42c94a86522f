package hugepage

import (
	"os"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mmapAnon maps n bytes of private anonymous memory outside the Go heap.
func mmapAnon(n int) ([]byte, error) {
	return unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
}

func munmap(b []byte) { _ = unix.Munmap(b) }

func addrOf(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }

func readFile(name string) ([]byte, error) { return os.ReadFile(name) }

func splitLines(b []byte) []string { return strings.Split(string(b), "\n") }
