package pipeline

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// collapseHeap is a throwaway stand-in for the internal/hugepage package being written on
// another branch, called only by the benchmarks when NETLEDGER_BENCH_HUGEPAGE=1: it asks the
// kernel to back the process's anonymous read-write mappings of 2 MiB or more (the Go heap)
// with huge pages (MADV_HUGEPAGE, then MADV_COLLAPSE, kernel >= 6.1), so that random accesses
// into the big tables miss the TLB less. It reports the bytes the kernel collapsed.
func collapseHeap(b *testing.B) {
	if os.Getenv("NETLEDGER_BENCH_HUGEPAGE") != "1" || b.N == 1 {
		return
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	var total, failed uint64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 5 || fields[1] != "rw-p" { // anonymous: no path
			continue
		}
		lo, hi, _ := strings.Cut(fields[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		start = (start + 1<<21 - 1) &^ (1<<21 - 1)
		end &^= 1<<21 - 1
		if end <= start {
			continue
		}
		unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_HUGEPAGE)
		for p := start; p < end; p += 1 << 21 {
			// one huge page at a time: a range with unpopulated parts fails as a whole
			if _, _, e := unix.Syscall(unix.SYS_MADVISE, uintptr(p), 1<<21, unix.MADV_COLLAPSE); e != 0 {
				failed += 1 << 21
			}
			total += 1 << 21
		}
	}
	rollup, _ := os.ReadFile("/proc/self/smaps_rollup")
	var huge string
	for _, l := range strings.Split(string(rollup), "\n") {
		if strings.HasPrefix(l, "AnonHugePages:") {
			huge = strings.Join(strings.Fields(l)[1:], " ")
		}
	}
	b.Logf("hugepage: MADV_COLLAPSE on %d MB, %d MB failed (unpopulated); AnonHugePages %s", total>>20, failed>>20, huge)
}
