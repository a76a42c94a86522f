package tcpinfo

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"runtime"
	"time"

	"github.com/cilium/ebpf"
	bpflink "github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"
)

// Dump methods (Config.DumpMethod).
const (
	// DumpAuto uses the BPF socket iterator where the kernel and the process's privileges
	// allow it, else the netlink sock_diag dump.
	DumpAuto = "auto"
	// DumpBPF uses the BPF socket iterator (Linux 5.9+ with BTF, CAP_BPF and CAP_PERFMON or
	// CAP_SYS_ADMIN), and fails at start without it.
	DumpBPF = "bpf"
	// DumpNetlink uses the netlink sock_diag dump.
	DumpNetlink = "netlink"
)

// The BPF iterator's record (struct tcp_rec in bpf/iter.c; tcpIterTcpRec is bpf2go's Go
// rendering of it, which the layout test compares with these offsets).
const (
	tcpRecLen         = 136
	recCookie         = 0
	recBytesAcked     = 8
	recBytesReceived  = 16
	recBytesSent      = 24
	recBytesRetrans   = 32
	recDeliveryRate   = 40
	recBusyTime       = 48
	recCgroupID       = 56
	recLocal          = 64
	recRemote         = 80
	recSegsOut        = 96
	recSegsIn         = 100
	recTotalRetrans   = 104
	recMSS            = 108
	recRTT            = 112
	recRTTVar         = 116
	recMinRTT         = 120
	recLocalPort      = 124
	recRemotePort     = 126
	recFamily         = 128
	recState          = 129
	iterReadSize      = 64 << 10 // the kernel hands at most its seq_file buffer (32 KiB) a read
	iterPortBitsWords = 1 << 16 / 64
)

var errRecShort = errors.New("BPF iterator record truncated")

// decodeRec decodes one BPF iterator record into s. It allocates nothing. A record carries
// every counter the tracker uses (the iterator runs only on kernels that have them all), and
// the cgroup id when the iterator was loaded for the cgroup filter.
func decodeRec(b []byte, s *Socket, cgroup bool) error {
	if len(b) < tcpRecLen {
		return errRecShort
	}
	ne := binary.NativeEndian
	*s = Socket{
		Family:        b[recFamily],
		State:         b[recState],
		LocalPort:     ne.Uint16(b[recLocalPort:]),
		RemotePort:    ne.Uint16(b[recRemotePort:]),
		Cookie:        ne.Uint64(b[recCookie:]),
		SndMSS:        ne.Uint32(b[recMSS:]),
		RTT:           ne.Uint32(b[recRTT:]),
		RTTVar:        ne.Uint32(b[recRTTVar:]),
		MinRTT:        ne.Uint32(b[recMinRTT:]),
		TotalRetrans:  ne.Uint32(b[recTotalRetrans:]),
		SegsOut:       ne.Uint32(b[recSegsOut:]),
		SegsIn:        ne.Uint32(b[recSegsIn:]),
		BytesAcked:    ne.Uint64(b[recBytesAcked:]),
		BytesReceived: ne.Uint64(b[recBytesReceived:]),
		DeliveryRate:  ne.Uint64(b[recDeliveryRate:]),
		BusyTime:      ne.Uint64(b[recBusyTime:]),
		BytesSent:     ne.Uint64(b[recBytesSent:]),
		BytesRetrans:  ne.Uint64(b[recBytesRetrans:]),
		HaveBytesSent: true, HaveBusyTime: true, HaveMinRTT: true, HaveDeliveryRate: true,
	}
	if cgroup {
		s.CgroupID, s.HaveCgroup = ne.Uint64(b[recCgroupID:]), true
	}
	switch s.Family {
	case afInet:
		s.Local = netip.AddrFrom4([4]byte(b[recLocal : recLocal+4]))
		s.Remote = netip.AddrFrom4([4]byte(b[recRemote : recRemote+4]))
	case afInet6:
		s.Local = netip.AddrFrom16([16]byte(b[recLocal : recLocal+16]))
		s.Remote = netip.AddrFrom16([16]byte(b[recRemote : recRemote+16]))
	default:
		return errFamily
	}
	return nil
}

// sockIter is the BPF TCP socket iterator, loaded and attached: every open of it is one walk
// of the TCP sockets of the namespace it is opened in, read as a stream of records.
type sockIter struct {
	objs   tcpIterObjects
	link   *bpflink.Iter
	nsfd   int // the namespace walked (a descriptor of our own), or -1: the process's
	cgroup bool
	buf    []byte
	rs     recStream
	pipe   *recPipe // the overlapped reader, made by the first walk that uses it
	read   readMode // readAuto, or the reader the tests and benchmarks force
	choose readChooser
	piped  uint64 // walks read with the pipe
}

// readMode says how a walk reads the iterator.
type readMode uint8

const (
	readAuto   readMode = iota // readChooser's pick
	readPipe                   // the overlapped reader (recPipe)
	readSerial                 // in the walk's goroutine
)

// loadSockIter loads the iterator for the states (a bitmask, dumpStates or with
// listenStates), the local ports (none: all) and, with cgroup, the cgroup ids, and checks that
// it can be opened in the namespace nsfd (-1: the process's; duplicated, the caller keeps its
// own).
func loadSockIter(states uint32, ports []uint16, cgroup bool, nsfd int) (*sockIter, error) {
	// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK, later ones do not. Where
	// raising it is refused, the load says what is wrong.
	_ = rlimit.RemoveMemlock()
	jiffy, err := usecPerJiffy()
	if err != nil {
		return nil, fmt.Errorf("cannot load the BPF socket iterator: %w", err)
	}
	spec, err := loadTcpIter()
	if err != nil {
		return nil, fmt.Errorf("cannot load the BPF socket iterator: %w", err)
	}
	var bits [iterPortBitsWords]uint64
	for _, p := range ports {
		bits[p/64] |= 1 << (p % 64)
	}
	for name, v := range map[string]any{
		"wanted_states":  states,
		"usec_per_jiffy": jiffy,
		"filter_ports":   b2u8(len(ports) > 0),
		"want_cgroup":    b2u8(cgroup),
		"port_bits":      bits,
	} {
		if err := spec.Variables[name].Set(v); err != nil {
			return nil, fmt.Errorf("cannot set BPF iterator variable %s: %w", name, err)
		}
	}
	it := &sockIter{nsfd: -1, cgroup: cgroup, buf: make([]byte, iterReadSize)}
	if err := spec.LoadAndAssign(&it.objs, nil); err != nil {
		var verr *ebpf.VerifierError
		if errors.As(err, &verr) {
			return nil, fmt.Errorf("cannot load the BPF socket iterator: %+v", verr)
		}
		return nil, fmt.Errorf("cannot load the BPF socket iterator: %w", err)
	}
	if it.link, err = bpflink.AttachIter(bpflink.IterOptions{Program: it.objs.DumpTcp}); err != nil {
		it.objs.Close()
		return nil, fmt.Errorf("cannot attach the BPF socket iterator: %w", err)
	}
	if nsfd >= 0 {
		if it.nsfd, err = unix.FcntlInt(uintptr(nsfd), unix.F_DUPFD_CLOEXEC, 0); err != nil {
			it.close()
			return nil, fmt.Errorf("cannot keep the network namespace open: %w", err)
		}
	}
	f, err := it.open()
	if err != nil {
		it.close()
		return nil, err
	}
	f.Close()
	return it, nil
}

func b2u8(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

// usecPerJiffy returns USEC_PER_SEC / HZ, the kernel's scale of tcp_info's busy time. The
// resolution of the coarse clocks is one tick (TICK_NSEC, kernel/time/posix-timers.c).
func usecPerJiffy() (uint32, error) {
	var ts unix.Timespec
	if err := unix.ClockGetres(unix.CLOCK_MONOTONIC_COARSE, &ts); err != nil {
		return 0, fmt.Errorf("cannot read the kernel's tick: %w", err)
	}
	tick := ts.Nano()
	if tick <= 0 || tick > 1e8 {
		return 0, fmt.Errorf("implausible kernel tick %d ns", tick)
	}
	hz := uint32(math.Round(1e9 / float64(tick)))
	return 1e6 / hz, nil
}

// open creates one walk of the sockets. The kernel binds an iterator to the network namespace
// of the thread that creates it, so in another namespace it is created on a thread switched
// into it, which is never switched back: it ends with its goroutine.
func (it *sockIter) open() (io.ReadCloser, error) {
	if it.nsfd < 0 {
		return it.openHere()
	}
	type result struct {
		f   io.ReadCloser
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		if err := unix.Setns(it.nsfd, unix.CLONE_NEWNET); err != nil {
			done <- result{err: fmt.Errorf("cannot enter the network namespace: %w", err)}
			return
		}
		f, err := it.openHere()
		done <- result{f, err}
	}()
	r := <-done
	return r.f, r.err
}

func (it *sockIter) openHere() (io.ReadCloser, error) {
	rc, err := it.link.Open()
	if err != nil {
		return nil, fmt.Errorf("cannot open the BPF socket iterator: %w", err)
	}
	return rc, nil
}

// walk runs one walk, calling fn with every record. The kernel walks the sockets inside each
// read: with a core to spare, a goroutine of its own reads while fn handles what the earlier
// reads gave (recPipe), so that a walk takes about the longer of the kernel's walk and our
// accounting instead of their sum. Without one (GOMAXPROCS 1, or other processes keeping both
// cores busy) the handovers only add to it: readChooser picks the reader.
func (it *sockIter) walk(fn func(rec []byte)) error {
	f, err := it.open()
	if err != nil {
		return err
	}
	defer f.Close()
	it.rs.have = 0 // what a failed walk left
	pipe := it.read == readPipe || (it.read == readAuto && runtime.GOMAXPROCS(0) > 1 && it.choose.pipe())
	recs := 0
	count := func(rec []byte) { recs++; fn(rec) }
	start := time.Now()
	if pipe {
		it.piped++
		if it.pipe == nil {
			it.pipe = newRecPipe(pipeChunks, pipeChunkSize)
		}
		err = it.pipe.readRecs(f, &it.rs, count)
	} else {
		err = readRecs(f, it.buf, &it.rs, count)
	}
	if err != nil {
		return fmt.Errorf("cannot read the BPF socket iterator: %w", err)
	}
	if it.read == readAuto {
		it.choose.done(pipe, time.Since(start), recs)
	}
	return nil
}

// readChooser picks the reader of each walk by how long each took per record lately: the
// overlapped reader is faster only while a core is free for its second goroutine; on a machine
// whose cores other processes keep busy it was slower and cost 5–15 % more CPU (docs/benchmarks.md,
// "Session 6"). Both are timed as they run; the faster is used, and the other tried again every
// exploreEvery walks, so that the choice follows the machine's load. The first walk (every
// socket new, not timed) overlaps; a walk of fewer than minPipeRecs records reads serially: it
// spans too few of the pipe's buffers to overlap much.
type readChooser struct {
	nsPerRec [2]float64 // recent walks' time per record: [0] overlapped, [1] serial; 0: not yet timed
	walks    uint64
	lastRecs int
}

const (
	exploreEvery = 8
	minPipeRecs  = 4 * pipeChunkSize / tcpRecLen
)

// pipe reports whether the next walk overlaps.
func (c *readChooser) pipe() bool {
	c.walks++
	switch {
	case c.walks == 1:
		return true
	case c.lastRecs < minPipeRecs:
		return false
	case c.nsPerRec[1] == 0:
		return false
	case c.nsPerRec[0] == 0:
		return true
	}
	best := c.nsPerRec[0] <= c.nsPerRec[1]
	if c.walks%exploreEvery == 0 {
		return !best
	}
	return best
}

// done records a walk that succeeded: it took d for recs records.
func (c *readChooser) done(pipe bool, d time.Duration, recs int) {
	first := c.walks == 1
	c.lastRecs = recs
	if first || recs < minPipeRecs {
		return
	}
	i := 0
	if !pipe {
		i = 1
	}
	v := float64(d) / float64(recs)
	if c.nsPerRec[i] == 0 {
		c.nsPerRec[i] = v
	} else {
		c.nsPerRec[i] += (v - c.nsPerRec[i]) / 2
	}
}

// The overlapped reader's buffers: each is filled by several reads (the kernel hands at most
// seqBufSize a read) before it is handed over, so that a dump of 100,000 sockets (13.6 MB) takes
// 14 handovers, not 420 (one per read): handovers of 64 KiB were slower, and of 256 KiB cost
// more CPU (docs/benchmarks.md, "Session 6").
const (
	seqBufSize    = 32 << 10 // bpf_seq_read's buffer (PAGE_SIZE << 3, kernel/bpf/bpf_iter.c)
	pipeChunkSize = 32 * seqBufSize
	pipeChunks    = 3
)

// recPipe reads an iterator in a goroutine of its own while the caller's goroutine handles the
// records: the reader fills free buffers with whole reads and hands each over full; the caller
// cuts it into records and gives it back. Its buffers and channels are made once and reused by
// every walk: a walk ends only when the reader has handed over its last buffer (at the end of
// the stream or on an error), and every buffer is back in free by then.
type recPipe struct {
	free    chan []byte
	full    chan pipeChunk
	minRead int // the room a read is made with
}

type pipeChunk struct {
	b   []byte
	err error // the read that ended the chunk failed (io.EOF: the stream ended)
}

// newRecPipe makes a pipe of chunks buffers of size bytes, read into while they have room for
// a whole kernel buffer (or, when smaller, for size bytes).
func newRecPipe(chunks, size int) *recPipe {
	p := &recPipe{free: make(chan []byte, chunks), full: make(chan pipeChunk, chunks),
		minRead: min(size, seqBufSize)}
	for range chunks {
		p.free <- make([]byte, 0, size)
	}
	return p
}

// readRecs reads r to its end, calling fn with every record (in the caller's goroutine, in
// order, as readRecs does).
func (p *recPipe) readRecs(r io.Reader, rs *recStream, fn func(rec []byte)) error {
	go p.fill(r)
	for {
		c := <-p.full
		rs.feed(c.b, fn)
		p.free <- c.b[:0]
		if c.err == io.EOF {
			return rs.end()
		}
		if c.err != nil {
			rs.have = 0
			return c.err
		}
	}
}

// fill reads r into the free buffers until r ends or fails. A read is made only with room for a
// whole kernel buffer (with less, the kernel keeps the rest for the next read).
func (p *recPipe) fill(r io.Reader) {
	for {
		b := <-p.free
		var err error
		for err == nil && cap(b)-len(b) >= p.minRead {
			var n int
			n, err = r.Read(b[len(b):cap(b)])
			b = b[:len(b)+n]
		}
		p.full <- pipeChunk{b, err}
		if err != nil {
			return
		}
	}
}

// recStream cuts a stream of reads into records. The kernel writes whole records into each
// read; a record split across reads is put together all the same.
type recStream struct {
	carry [tcpRecLen]byte
	have  int
}

// feed calls fn with every record that b completes.
func (rs *recStream) feed(b []byte, fn func(rec []byte)) {
	if rs.have > 0 {
		k := copy(rs.carry[rs.have:], b)
		rs.have += k
		b = b[k:]
		if rs.have < tcpRecLen {
			return
		}
		fn(rs.carry[:])
		rs.have = 0
	}
	whole := len(b) - len(b)%tcpRecLen
	for off := 0; off < whole; off += tcpRecLen {
		fn(b[off : off+tcpRecLen])
	}
	rs.have = copy(rs.carry[:], b[whole:])
}

// end returns errRecShort when the stream ended inside a record.
func (rs *recStream) end() error {
	if rs.have != 0 {
		rs.have = 0
		return errRecShort
	}
	return nil
}

// readRecs reads r to its end into buf, calling fn with every record. rs holds a record split
// across reads (a value of its own would escape: fn may keep what it is given).
func readRecs(r io.Reader, buf []byte, rs *recStream, fn func(rec []byte)) error {
	for {
		n, err := r.Read(buf)
		rs.feed(buf[:n], fn)
		if err == io.EOF {
			return rs.end()
		}
		if err != nil {
			return err
		}
	}
}

func (it *sockIter) close() {
	if it.link != nil {
		it.link.Close()
	}
	it.objs.Close()
	if it.nsfd >= 0 {
		unix.Close(it.nsfd)
	}
}
