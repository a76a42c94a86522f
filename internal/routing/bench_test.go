package routing

import (
	"hash/fnv"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/netledger/netledger/internal/hugepage"
	"github.com/netledger/netledger/internal/testenv"
	"golang.org/x/sys/unix"
)

// fullTablePaths gives every prefix of the table a path derived from the prefix the way
// bgpload does for BIRD (about 75,000 origin ASes, two or three transit ASes determined by
// the origin, a prepended origin for one in 13, a community for one origin in four): about
// 74,000 distinct paths, the order of a real full table seen from one peer.
func fullTablePaths(ps []netip.Prefix) []Attrs {
	out := make([]Attrs, len(ps))
	byOrigin := make(map[uint32]Attrs)
	for i, p := range ps {
		h := fnv.New32a()
		b, _ := p.MarshalBinary()
		h.Write(b)
		origin := 1 + h.Sum32()%75000
		if origin >= 64496 && origin <= 65551 {
			origin += 2000
		}
		a, ok := byOrigin[origin]
		if !ok {
			path := []uint32{3000 + origin%20, 10000 + origin%700}
			if origin%3 == 0 {
				path = append(path, 20000+origin%5000)
			}
			path = append(path, origin)
			if origin%13 == 0 {
				path = append(path, origin)
			}
			a = Attrs{Path: seq(path...), NextHop: netip.AddrFrom4([4]byte{198, 51, 100, 1}), Origin: OriginIGP}
			if origin%4 == 0 {
				a.Communities = []uint32{(3000+origin%20)<<16 | origin%1000}
			}
			byOrigin[origin] = a
		}
		if p.Addr().Is6() {
			a.NextHop = netip.MustParseAddr("2001:db8:ffff::1")
		}
		out[i] = a
	}
	return out
}

func heapInUse() uint64 {
	var ms runtime.MemStats
	for range 2 {
		runtime.GC()
	}
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// BenchmarkRIBFullTable loads the real 1,062,046-prefix table into one RIB (Load: a private
// table swapped in) and reports the time per prefix and the heap in use after GC per prefix,
// interned attribute sets and AS paths included.
func BenchmarkRIBFullTable(b *testing.B) {
	ps := loadPrefixes(b)
	as := fullTablePaths(ps)
	var r *RIB
	var perPrefix float64
	for b.Loop() {
		b.StopTimer()
		r = nil
		before := heapInUse()
		b.StartTimer()
		r = NewRIB()
		r.Load(func(u Updater) error {
			for i, p := range ps {
				u.Announce(p, 0, as[i])
			}
			return nil
		})
		b.StopTimer()
		perPrefix = float64(heapInUse()-before) / float64(len(ps))
		b.StartTimer()
	}
	s := r.Stats()
	v4, v6 := r.Len()
	if v4+v6 < 1_000_000 {
		b.Fatalf("%d+%d prefixes", v4, v6)
	}
	b.ReportMetric(perPrefix, "heap-B/prefix")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(ps)), "ns/prefix")
	b.ReportMetric(float64(s.Paths), "paths")
	b.ReportMetric(float64(s.Attrs), "attr-sets")
	runtime.KeepAlive(r)
}

// BenchmarkLookup looks up fixed-seed random addresses inside random prefixes of the real
// table, loaded as BenchmarkRIBFullTable loads it (IPv4 and IPv6 separately; every lookup
// matches): "cold" cycles through 65,536 addresses spread over the whole table (most lookups
// miss the CPU caches), "hot" through 1,024 (a server's busy clients); "+attrs" also builds
// the matched prefix and reads the origin AS from the returned attribute set, as the
// enrichment does (Lookup itself does neither); "+route" calls LookupRoute and builds the
// prefix (the route's peer and origin AS come with it, read from the interned set), and
// "+batch64" does the same through LookupBatch, 64 addresses a call (ns/op is per address).
// Each runs first on the heap as the Go runtime leaves it (4k: 4 KiB pages
// unless THP is "always"), then, in the same process, on a table loaded afresh and put on huge
// pages by hugepage.Collapse right after the load (2m).
//
// Besides wall time it reports cpu-ns/op, the CPU time of the benchmark's thread per lookup,
// which time spent waiting for the CPU on a shared machine does not inflate; best-ns/op, the
// wall time per lookup of the fastest batch of 4,096 (what a lookup costs when nothing else
// runs on the core); load1, the machine's load average when the run ended; and huge-MiB, the
// process's anonymous memory on huge pages (AnonHugePages).
func BenchmarkLookup(b *testing.B) {
	ps := loadPrefixes(b)
	var r *RIB
	type family struct {
		name  string
		addrs []netip.Addr
	}
	var fams []family
	for _, fam := range []struct {
		name string
		v4   bool
	}{{"ipv4", true}, {"ipv6", false}} {
		rnd := rand.New(rand.NewPCG(5, 6))
		addrs := make([]netip.Addr, 0, 1<<16)
		for len(addrs) < cap(addrs) {
			p := ps[rnd.IntN(len(ps))]
			if p.Addr().Is4() != fam.v4 {
				continue
			}
			bs := p.Addr().AsSlice()
			for j := range bs {
				bs[j] |= byte(rnd.Uint32()) & hostMask(p.Bits(), j)
			}
			a, _ := netip.AddrFromSlice(bs)
			addrs = append(addrs, a)
		}
		fams = append(fams, family{fam.name, addrs})
	}
	as := fullTablePaths(ps)
	for _, pages := range []string{"4k", "2m"} {
		r = nil
		runtime.GC()
		r = loadRIB(b, ps, as)
		if pages == "2m" {
			// A fresh table, collapsed right after its load as routers does (later, once the
			// runtime has returned the load's garbage to the kernel, the table is spread
			// over mostly sparse 2 MiB chunks that Collapse leaves alone).
			res, err := hugepage.Collapse(-1)
			if err != nil {
				b.Logf("no huge pages: %v", err)
				return
			}
			b.Logf("hugepage.Collapse: %v", res)
		}
		huge := hugepage.AnonHugeBytes()
		for _, fam := range fams {
			for _, set := range []struct {
				name string
				n    int
			}{{"cold", 1 << 16}, {"hot", 1 << 10}} {
				for _, mode := range []string{"", "+attrs", "+route", "+batch64"} {
					name := pages + "/" + fam.name + "-" + set.name + mode
					b.Run(name, func(b *testing.B) {
						switch mode {
						case "+route":
							benchLookupRoute(b, r, fam.addrs[:set.n], 1)
						case "+batch64":
							benchLookupRoute(b, r, fam.addrs[:set.n], 64)
						default:
							benchLookup(b, r, fam.addrs[:set.n], mode == "+attrs")
						}
						b.ReportMetric(float64(huge)/(1<<20), "huge-MiB")
					})
				}
			}
		}
	}
}

var sinkASN uint32

func benchLookup(b *testing.B, r *RIB, addrs []netip.Addr, read bool) {
	b.ReportAllocs()
	mask := len(addrs) - 1
	i, miss := 0, 0
	var asn uint32
	clock := testenv.StartBenchClock(4096)
	for b.Loop() {
		ip := addrs[i&mask]
		bits, a, ok := r.Lookup(ip)
		if !ok || a == nil {
			miss++
		} else if read {
			// the prefix first, as the enrichment does: its work overlaps the attribute
			// set's load
			pb := MatchedPrefix(ip, bits).Bits()
			o, _ := a.OriginAS()
			asn += o + uint32(pb)
		}
		i++
		clock.Tick()
	}
	clock.Report(b)
	b.ReportMetric(testenv.LoadAvg(), "load1")
	sinkASN = asn
	if miss > 0 {
		b.Fatalf("%d lookups missed", miss)
	}
}

// benchLookupRoute looks up addrs (a power of two, a multiple of batch) in turn with
// LookupRoute (batch 1) or LookupBatch, building each matched prefix; b.N counts addresses.
func benchLookupRoute(b *testing.B, r *RIB, addrs []netip.Addr, batch int) {
	b.ReportAllocs()
	mask := len(addrs) - 1
	out := make([]Route, batch)
	var asn uint32
	miss := 0
	b.ResetTimer()
	clock := testenv.StartBenchClock(4096)
	for i := 0; i < b.N; i += batch {
		lo := i & mask
		if batch == 1 {
			out[0] = r.LookupRoute(addrs[lo])
		} else {
			r.LookupBatch(addrs[lo:lo+batch], out)
		}
		for j := range out {
			if !out[j].OK {
				miss++
				continue
			}
			asn += out[j].OriginAS + uint32(MatchedPrefix(addrs[lo+j], int(out[j].Bits)).Bits())
			clock.Tick()
		}
	}
	b.StopTimer()
	clock.Report(b)
	b.ReportMetric(testenv.LoadAvg(), "load1")
	sinkASN = asn
	if miss > 0 {
		b.Fatalf("%d lookups missed", miss)
	}
}

// BenchmarkLookupTLBFlush measures what it costs to get the hot set back into the TLB: each op
// flushes the CPU's TLB (mprotect of 256 resident pages of a private mapping, as any large
// munmap or mprotect does; no cache line is touched) and then looks up the 1,024 hot addresses
// once, then once more. It
// reports the first pass's time per lookup (first-ns/lookup), the second's (next-ns/lookup) and
// the difference over the whole set (refill-µs/flush), medians of the ops, on 4 KiB pages and, in a table loaded
// afresh and collapsed right after the load as routers does, on huge pages: every interruption
// that costs the process its TLB (a context switch, a host exit in a VM) costs about that.
func BenchmarkLookupTLBFlush(b *testing.B) {
	ps := loadPrefixes(b)
	as := fullTablePaths(ps)
	region, err := unix.Mmap(-1, 0, 256*4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Munmap(region)
	for i := 0; i < len(region); i += 4096 {
		region[i] = 1 // resident, so that changing its protection changes page table entries
	}
	for _, pages := range []string{"4k", "2m"} {
		runtime.GC()
		r := loadRIB(b, ps, as)
		if pages == "2m" {
			if _, err := hugepage.Collapse(-1); err != nil {
				b.Logf("no huge pages: %v", err)
				return
			}
		}
		for _, v4 := range []bool{true, false} {
			name := pages + "/ipv6"
			if v4 {
				name = pages + "/ipv4"
			}
			addrs := make([]netip.Addr, 0, 1024)
			rnd := rand.New(rand.NewPCG(5, 6))
			for len(addrs) < cap(addrs) {
				if p := ps[rnd.IntN(len(ps))]; p.Addr().Is4() == v4 {
					addrs = append(addrs, testenv.RandomAddr(rnd, p))
				}
			}
			b.Run(name, func(b *testing.B) {
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				var first, next []time.Duration
				var sink int
				pass := func() time.Duration {
					t0 := time.Now()
					for _, a := range addrs {
						bits, _, _ := r.Lookup(a)
						sink += bits
					}
					return time.Since(t0)
				}
				for b.Loop() {
					// write-protecting 256 present pages flushes this CPU's whole TLB (more
					// than the kernel's 33-page ceiling for flushing page by page)
					if err := unix.Mprotect(region, unix.PROT_READ); err != nil {
						b.Fatal(err)
					}
					first = append(first, pass())
					next = append(next, pass())
					if err := unix.Mprotect(region, unix.PROT_READ|unix.PROT_WRITE); err != nil {
						b.Fatal(err)
					}
				}
				// medians: on a shared machine the means are the neighbours'
				slices.Sort(first)
				slices.Sort(next)
				f, x := first[len(first)/2], next[len(next)/2]
				b.ReportMetric(float64(f.Nanoseconds())/float64(len(addrs)), "first-ns/lookup")
				b.ReportMetric(float64(x.Nanoseconds())/float64(len(addrs)), "next-ns/lookup")
				b.ReportMetric(float64((f-x).Nanoseconds())/1000, "refill-µs/flush")
				sinkASN = uint32(sink)
			})
		}
		runtime.KeepAlive(r)
	}
}
