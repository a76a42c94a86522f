package tcpinfo

// maxPartitions bounds Config.Partitions: every partition walks the kernel's whole table.
const maxPartitions = 64

// Port histograms count sockets in bins of 16 ports.
const (
	histShift = 4
	histBins  = 1 << 16 >> histShift
)

// portHist counts the sockets of a dump by local and by remote port: the next dump is cut
// where it splits them evenly.
type portHist struct {
	local, remote [histBins]uint32
	total         uint32
}

func (h *portHist) add(local, remote uint16) {
	h.local[local>>histShift]++
	h.remote[remote>>histShift]++
	h.total++
}

// plan is how one dump is split: partition i asks the kernel for the sockets whose local
// (local true) or remote port lies in bounds(i). The ranges are disjoint and cover every
// port, so every socket is dumped by exactly one partition.
type plan struct {
	local bool
	cuts  []uint16 // partition i starts at cuts[i-1] (0 for the first); strictly increasing, none 0
}

func (p plan) partitions() int { return len(p.cuts) + 1 }

// bounds returns the first and last port of partition i.
func (p plan) bounds(i int) (lo, hi uint16) {
	hi = 1<<16 - 1
	if i > 0 {
		lo = p.cuts[i-1]
	}
	if i < len(p.cuts) {
		hi = p.cuts[i] - 1
	}
	return lo, hi
}

// planFor cuts a dump in at most n partitions where the sockets of the last dump (h) were
// evenly split: by remote port (a server's clients' ephemeral ports), or by local port when
// that splits more evenly (a proxy's connections to one remote port). Without a last dump, the
// remote ports are cut evenly.
func planFor(h *portHist, n int) plan {
	if n <= 1 {
		return plan{}
	}
	if h.total == 0 {
		p := plan{cuts: make([]uint16, n-1)}
		for i := range p.cuts {
			p.cuts[i] = uint16((i + 1) << 16 / n)
		}
		return p
	}
	remote, rmax := cutHist(&h.remote, h.total, n)
	local, lmax := cutHist(&h.local, h.total, n)
	if lmax < rmax {
		return plan{local: true, cuts: local}
	}
	return plan{cuts: remote}
}

// cutHist returns the cuts splitting the total sockets counted in bins into at most n
// partitions at the bin boundaries where the running count first reaches k·total/n, and the
// count of the largest partition.
func cutHist(bins *[histBins]uint32, total uint32, n int) (cuts []uint16, largest uint32) {
	var acc, start uint64
	k := uint64(1)
	for b := 0; b < histBins-1 && k < uint64(n); b++ {
		acc += uint64(bins[b])
		if acc*uint64(n) < k*uint64(total) {
			continue
		}
		cuts = append(cuts, uint16((b+1)<<histShift))
		largest = max(largest, uint32(acc-start))
		start = acc
		for k < uint64(n) && acc*uint64(n) >= k*uint64(total) {
			k++
		}
	}
	if len(cuts) > 0 && start == uint64(total) {
		cuts = cuts[:len(cuts)-1] // the last partition would be empty
	}
	return cuts, max(largest, total-uint32(start))
}
