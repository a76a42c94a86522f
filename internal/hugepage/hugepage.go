// Package hugepage backs the long-lived part of the Go heap (a routing table just loaded) with
// 2 MiB transparent huge pages, so that lookups that miss the CPU caches stop missing the TLB
// as well.
//
// The Go runtime leaves its heap on 4 KiB pages when transparent huge pages are in "madvise"
// mode (the usual default), and a lookup over a large trie then takes a TLB miss per node on
// top of the cache miss; under nested paging (a virtual machine) each TLB miss walks two page
// tables. Collapse walks /proc/self/maps and, in every private anonymous writable mapping (the
// Go heap), asks the kernel to collapse each 2 MiB-aligned chunk whose pages are (nearly) all
// resident into one huge page with madvise(MADV_COLLAPSE) (Linux 6.1+), which does it at once
// (in THP mode "madvise" too, without MADV_HUGEPAGE: checked on Linux 6.18). It does not set
// MADV_HUGEPAGE: with it, page faults and khugepaged would also fill the chunks the runtime
// later returns to the kernel (khugepaged collapses a chunk with a single resident page under
// the default max_ptes_none of 511), a resident-set growth the Go runtime avoids by not setting
// it either. Chunks are handled one by one: a chunk that fails (EAGAIN: a page was busy, after
// two more tries; ENOMEM: no free 2 MiB of physical memory; EINVAL: nothing resident, or an
// unsupported kernel) is counted by its error and the others go on. Sparse chunks are left
// alone: collapsing fills their missing pages with zeroes, which would grow the resident set
// with memory the runtime gave back.
//
// Collapse copies memory (0.3–1 s for 300 MB on a loaded 2-core VM) and is meant to be called
// right after a bulk load, never on a lookup path; Collapser adds a switch, a rate limit and
// metrics. Right after a load nearly every chunk of the heap is resident and collapses; once
// the runtime has returned the load's garbage to the kernel, the live table is spread over
// mostly sparse chunks (the 67 MB of a 1.06 M-prefix RIB over 213 chunks: 15 of them dense),
// which are left alone. A single madvise(MADV_COLLAPSE) over a whole mapping stops at the
// first chunk it cannot collapse (an untouched one fails with EINVAL), hence one call per
// chunk.
package hugepage

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ChunkSize is the size of a (PMD) huge page on amd64 and arm64 with 4 KiB base pages.
const ChunkSize = 2 << 20

const pageSize = 4096

// Result is what one Collapse did.
type Result struct {
	// Mappings is the number of private anonymous writable mappings examined.
	Mappings int
	// Chunks is the number of 2 MiB-aligned chunks inside them.
	Chunks int
	// Sparse chunks had more than MaxEmpty non-resident pages and were left alone.
	Sparse int
	// Collapsed chunks are backed by a huge page (including those that already were).
	Collapsed int
	// Failed chunks could not be collapsed; Errors counts them by error.
	Failed int
	Errors map[syscall.Errno]int
	// HugeBefore and HugeAfter are the process's AnonHugePages (smaps_rollup) in bytes before
	// and after (-1: unknown).
	HugeBefore, HugeAfter int64
	// Duration is the time Collapse took.
	Duration time.Duration
}

// String summarises r in one line.
func (r Result) String() string {
	var errs []string
	for e, n := range r.Errors {
		errs = append(errs, fmt.Sprintf("%s:%d", errnoName(e), n))
	}
	return fmt.Sprintf("mappings=%d chunks=%d collapsed=%d sparse=%d failed=%d %v anon-huge=%d→%d MB in %v",
		r.Mappings, r.Chunks, r.Collapsed, r.Sparse, r.Failed, errs, r.HugeBefore>>20, r.HugeAfter>>20,
		r.Duration.Round(time.Millisecond))
}

// DefaultMaxEmpty is the default number of non-resident 4 KiB pages (of 512) a chunk may have
// and still be collapsed: at most 256 KiB of resident memory added per 2 MiB.
const DefaultMaxEmpty = 64

// Collapse collapses the dense 2 MiB chunks of the process's anonymous writable mappings into
// huge pages (see the package comment). A chunk with more than maxEmpty non-resident pages is
// skipped (negative: DefaultMaxEmpty). The error is about reading /proc/self/maps or about a
// kernel without MADV_COLLAPSE (every chunk failing with EINVAL); per-chunk failures are only
// counted in the Result.
func Collapse(maxEmpty int) (Result, error) {
	if maxEmpty < 0 {
		maxEmpty = DefaultMaxEmpty
	}
	start := time.Now()
	r := Result{Errors: make(map[syscall.Errno]int), HugeBefore: AnonHugeBytes()}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return r, fmt.Errorf("cannot read the process's mappings: %w", err)
	}
	ranges := anonRanges(maps)
	vec := make([]byte, ChunkSize/pageSize)
	for _, m := range ranges {
		r.Mappings++
		for c := alignUp(m.start); c+ChunkSize <= m.end; c += ChunkSize {
			r.Chunks++
			if err := mincore(c, vec); err != nil {
				r.fail(err)
				continue
			}
			empty := 0
			for _, v := range vec {
				if v&1 == 0 {
					empty++
				}
			}
			if empty > maxEmpty {
				r.Sparse++
				continue
			}
			err := madvise(c, ChunkSize, unix.MADV_COLLAPSE)
			for try := 0; err == unix.EAGAIN && try < 2; try++ { // a page was busy: transient
				err = madvise(c, ChunkSize, unix.MADV_COLLAPSE)
			}
			if err != nil {
				r.fail(err)
				continue
			}
			r.Collapsed++
		}
	}
	r.HugeAfter = AnonHugeBytes()
	r.Duration = time.Since(start)
	if r.Failed > 0 && r.Collapsed == 0 && r.Errors[unix.EINVAL] == r.Failed {
		return r, fmt.Errorf("cannot collapse huge pages (MADV_COLLAPSE needs Linux 6.1 and transparent huge pages): %w", unix.EINVAL)
	}
	return r, nil
}

func (r *Result) fail(err error) {
	r.Failed++
	var e syscall.Errno
	if !errors.As(err, &e) {
		e = 0
	}
	r.Errors[e]++
}

type span struct{ start, end uintptr }

// anonRanges returns the private anonymous writable mappings of a /proc/<pid>/maps text: no
// file (inode 0), no name or [heap] or a named anonymous mapping; never [stack] and the like.
func anonRanges(maps []byte) []span {
	var out []span
	sc := bufio.NewScanner(bytes.NewReader(maps))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 5 || f[1] != "rw-p" || f[4] != "0" {
			continue
		}
		if len(f) > 5 {
			name := strings.Join(f[5:], " ")
			if name != "[heap]" && !strings.HasPrefix(name, "[anon:") {
				continue
			}
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		if !ok {
			continue
		}
		s, err1 := strconv.ParseUint(lo, 16, 64)
		e, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || e <= s {
			continue
		}
		out = append(out, span{uintptr(s), uintptr(e)})
	}
	return out
}

func alignUp(a uintptr) uintptr { return (a + ChunkSize - 1) &^ (ChunkSize - 1) }

// madvise and mincore take addresses as integers: the ranges are the process's own mappings,
// not Go pointers, so they never pass through unsafe.Pointer.
func madvise(addr, n uintptr, advice int) error {
	if _, _, e := unix.Syscall(unix.SYS_MADVISE, addr, n, uintptr(advice)); e != 0 {
		return e
	}
	return nil
}

func mincore(addr uintptr, vec []byte) error {
	_, _, e := unix.Syscall(unix.SYS_MINCORE, addr, uintptr(len(vec))*pageSize, uintptr(unsafe.Pointer(&vec[0])))
	if e != 0 {
		return e
	}
	return nil
}

// AnonHugeBytes returns the process's anonymous memory backed by huge pages (AnonHugePages of
// /proc/self/smaps_rollup) in bytes, or -1 when it cannot be read.
func AnonHugeBytes() int64 {
	b, err := os.ReadFile("/proc/self/smaps_rollup")
	if err != nil {
		return -1
	}
	return smapsField(b, "AnonHugePages:")
}

func smapsField(b []byte, key string) int64 {
	for line := range strings.Lines(string(b)) {
		rest, ok := strings.CutPrefix(line, key)
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return -1
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return -1
		}
		return kb << 10
	}
	return -1
}

// Mode returns the system's transparent huge page mode ("always", "madvise" or "never"; ""
// when unknown).
func Mode() string {
	b, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	if err != nil {
		return ""
	}
	for _, w := range strings.Fields(string(b)) {
		if strings.HasPrefix(w, "[") && strings.HasSuffix(w, "]") {
			return strings.Trim(w, "[]")
		}
	}
	return ""
}

func errnoName(e syscall.Errno) string {
	if e == 0 {
		return "other"
	}
	if n := unix.ErrnoName(e); n != "" {
		return n
	}
	return strconv.Itoa(int(e))
}

// collapseMu serialises Collapse calls of all Collapsers: two at once would only compete.
var collapseMu sync.Mutex
