package hugepage

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/netledger/netledger/internal/testenv"
)

// BenchmarkPointerChase measures the memory latency floor of this machine: each step loads
// the next index from a random cache line of a buffer (one random cycle through all its
// lines, so every load depends on the one before and prefetchers cannot help), on 4 KiB pages
// (MADV_NOHUGEPAGE) and on 2 MiB pages (MADV_COLLAPSE). ns/op is one dependent load; a trie
// lookup that misses the caches pays it once per level. cpu-ns/op is the thread's CPU time per
// load, best-ns/op the wall time per load of the fastest batch of 4,096 (see
// routing.BenchmarkLookup).
//
// "-xK" walks K chains in lockstep (K places of the same cycle, n/K lines apart), still one
// load per op: each chain's loads depend on each other, the chains' do not, so up to K misses
// are in flight at once. It is the floor of a batched lookup that walks K independent
// addresses level by level: what overlapping misses can bring on this machine.
func BenchmarkPointerChase(b *testing.B) {
	type variant struct {
		size   int
		chains int
	}
	var variants []variant
	for _, size := range []int{256 << 20, 32 << 20, 4 << 20} {
		variants = append(variants, variant{size, 1})
	}
	for _, k := range []int{4, 8, 16, 32} {
		variants = append(variants, variant{256 << 20, k})
	}
	for _, v := range variants {
		size, chains := v.size, v.chains
		for _, pages := range []string{"4k", "2m"} {
			name := fmt.Sprintf("%dMiB-%s", size>>20, pages)
			if chains > 1 {
				name += fmt.Sprintf("-x%d", chains)
			}
			b.Run(name, func(b *testing.B) {
				if pages == "2m" && Mode() == "never" {
					b.Skip("transparent huge pages are disabled")
				}
				mem, err := mmapAnon(size + ChunkSize)
				if err != nil {
					b.Fatal(err)
				}
				defer munmap(mem)
				off := alignUp(addrOf(mem)) - addrOf(mem)
				buf := mem[off : off+uintptr(size)]
				advice := unix.MADV_NOHUGEPAGE
				if pages == "2m" {
					advice = unix.MADV_HUGEPAGE
				}
				if err := unix.Madvise(buf, advice); err != nil {
					b.Fatal(err)
				}
				const line = 64
				n := size / line
				next := func(i int) *uint64 { return (*uint64)(unsafe.Pointer(&buf[i*line])) }
				// Sattolo's algorithm: a random permutation that is one cycle.
				perm := make([]uint32, n)
				for i := range perm {
					perm[i] = uint32(i)
				}
				rnd := rand.New(rand.NewPCG(1, 2))
				for i := n - 1; i > 0; i-- {
					j := rnd.IntN(i)
					perm[i], perm[j] = perm[j], perm[i]
				}
				for i := range n {
					*next(int(perm[i])) = uint64(perm[(i+1)%n])
				}
				perm = nil
				if pages == "2m" {
					if err := unix.Madvise(buf, unix.MADV_COLLAPSE); err != nil {
						b.Logf("MADV_COLLAPSE: %v", err)
					}
				}
				huge := smapsHuge(addrOf(buf))
				if pages == "2m" && huge < int64(size)/2 {
					b.Logf("only %d MiB of %d on huge pages", huge>>20, size>>20)
				}
				p := uint64(0)
				ps := make([]uint64, chains)
				for i := range n { // warm the caches as far as they go
					if i%(n/chains) == 0 && i/(n/chains) < chains {
						ps[i/(n/chains)] = p
					}
					p = *next(int(p))
				}
				b.ResetTimer()
				clock := testenv.StartBenchClock(4096)
				if chains == 1 {
					for b.Loop() {
						p = *next(int(p))
						clock.Tick()
					}
				} else {
					for i := 0; b.Loop(); i++ {
						j := i % chains
						ps[j] = *next(int(ps[j]))
						clock.Tick()
					}
					p = ps[0]
				}
				clock.Report(b)
				b.ReportMetric(float64(huge>>20), "huge-MiB")
				sink = p
			})
		}
	}
}

var sink uint64

// smapsHuge returns the AnonHugePages of the mapping holding addr (/proc/self/smaps).
func smapsHuge(addr uintptr) int64 {
	b, err := readFile("/proc/self/smaps")
	if err != nil {
		return -1
	}
	in := false
	for _, line := range splitLines(b) {
		var lo, hi uintptr
		if n, _ := fmt.Sscanf(line, "%x-%x", &lo, &hi); n == 2 && len(line) > 0 && line[0] != ' ' {
			in = lo <= addr && addr < hi
			continue
		}
		if in {
			if v := smapsField([]byte(line), "AnonHugePages:"); v >= 0 {
				return v
			}
		}
	}
	return -1
}
