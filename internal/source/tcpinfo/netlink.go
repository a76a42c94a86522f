package tcpinfo

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// conn is a NETLINK_SOCK_DIAG socket opened with mdlayher/netlink (which enters the network
// namespace on a locked thread) and read through its raw file descriptor into one reused
// buffer: mdlayher/netlink's Receive allocates a []Message per call, which the destroy path
// cannot afford. Reads go through the Go poller, so Close interrupts them.
type conn struct {
	nl   *netlink.Conn
	rc   syscall.RawConn
	buf  []byte
	rbuf []byte // where the next read goes: buf, or a dump pipeline buffer

	pipe *dumpPipe // created by the first dump

	// Results of readFn, kept here so that the callback is built once and reading allocates
	// nothing.
	n      int
	err    error
	wait   bool
	readFn func(fd uintptr) bool
}

// errPermission explains a refused subscription. Linux lets unprivileged processes join the
// sock_diag groups (NL_CFG_F_NONROOT_RECV); a security module or an older kernel may not.
var errPermission = errors.New("subscribing to sock_diag destroy notifications was refused: run as root " +
	"or with CAP_NET_ADMIN (`setcap cap_net_admin+ep netledger`); or set tcpinfo dump_only (--dump-only) to " +
	"account only what the interval dumps see, which misses connections that open and close between two " +
	"dumps and the end of every other connection")

// openNetNS opens a network namespace by name (/run/netns/NAME) or path; "" gives -1.
func openNetNS(ns string) (int, error) {
	if ns == "" {
		return -1, nil
	}
	path := ns
	if !strings.ContainsRune(ns, '/') {
		path = filepath.Join("/run/netns", ns)
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("cannot open network namespace %s (entering another namespace needs root or CAP_SYS_ADMIN): %w", path, err)
	}
	return fd, nil
}

// dialDiag opens a sock_diag netlink socket in the namespace nsfd (-1: the current one) with a
// read buffer of bufSize bytes.
func dialDiag(nsfd, bufSize int) (*conn, error) {
	cfg := &netlink.Config{}
	if nsfd >= 0 {
		cfg.NetNS = nsfd
	}
	nl, err := netlink.Dial(unix.NETLINK_SOCK_DIAG, cfg)
	if err != nil {
		return nil, fmt.Errorf("cannot open sock_diag netlink socket: %w", err)
	}
	rc, err := nl.SyscallConn()
	if err != nil {
		nl.Close()
		return nil, fmt.Errorf("cannot get netlink socket descriptor: %w", err)
	}
	c := &conn{nl: nl, rc: rc, buf: make([]byte, bufSize)}
	c.rbuf = c.buf
	c.readFn = func(fd uintptr) bool {
		c.n, c.err = unix.Read(int(fd), c.rbuf)
		if c.err == unix.EINTR || (c.err == unix.EAGAIN && c.wait) {
			return false
		}
		return true
	}
	return c, nil
}

// subscribe joins the TCP destroy multicast groups and sizes the receive buffer: forced
// (SO_RCVBUFFORCE, CAP_NET_ADMIN) when allowed, else capped by net.core.rmem_max. It returns
// the buffer the kernel granted (which counts its overhead: twice what was asked).
func (c *conn) subscribe(rcvbuf int) (int, error) {
	for _, g := range []uint32{groupInetTCPDestroy, groupInet6TCPDestroy} {
		if err := c.nl.JoinGroup(g); err != nil {
			if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
				return 0, errPermission
			}
			return 0, fmt.Errorf("cannot join sock_diag group %d: %w", g, err)
		}
	}
	if rcvbuf > 0 {
		var serr error
		if err := c.rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvbuf)
		}); err != nil {
			return 0, err
		}
		if serr != nil {
			if err := c.nl.SetReadBuffer(rcvbuf); err != nil {
				return 0, fmt.Errorf("cannot set netlink receive buffer: %w", err)
			}
		}
	}
	return c.nl.ReadBuffer()
}

// read receives one datagram into c.buf. With wait false it returns unix.EAGAIN at once
// when nothing is queued.
func (c *conn) read(wait bool) (int, error) {
	c.wait = wait
	if err := c.rc.Read(c.readFn); err != nil {
		return 0, err
	}
	return c.n, c.err
}

// drops returns the socket's drop counter (SK_MEMINFO_DROPS of SO_MEMINFO): the number of
// multicast messages the kernel could not queue because the receive buffer was full.
func (c *conn) drops() (uint64, error) {
	var mem [9]uint32 // SK_MEMINFO_VARS
	l := uint32(unsafe.Sizeof(mem))
	var errno syscall.Errno
	if err := c.rc.Control(func(fd uintptr) {
		_, _, errno = unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_SOCKET, unix.SO_MEMINFO,
			uintptr(unsafe.Pointer(&mem[0])), uintptr(unsafe.Pointer(&l)), 0)
	}); err != nil {
		return 0, err
	}
	if errno != 0 {
		return 0, os.NewSyscallError("getsockopt SO_MEMINFO", errno)
	}
	return uint64(mem[8]), nil // SK_MEMINFO_DROPS
}

func (c *conn) close() error { return c.nl.Close() }

// dumpStates are the TCP states dumped: every state of a full socket with a peer. TIME_WAIT
// and SYN_RECV minisockets carry no tcp_info (and a TIME_WAIT socket was already reported by
// its destroy notification).
const dumpStates = 1<<1 | 1<<4 | 1<<5 | 1<<8 | 1<<9 | 1<<11 // ESTABLISHED, FIN_WAIT1/2, CLOSE_WAIT, LAST_ACK, CLOSING

// listenStates selects listening sockets (the cgroup filter's listener dump).
const listenStates = 1 << stateListen

// Inet_diag bytecode (include/uapi/linux/inet_diag.h, net/ipv4/inet_diag.c): each op is
// {code u8, yes u8, no u16}; a comparison's operand is the no field of the next op. The kernel
// runs the program jumping by yes when a condition holds and by no when not, and accepts a
// socket when it lands exactly on the end. Its audit requires every no target to lie on the
// chain of yes jumps from the start, or 4 past the end (reject), so yes always falls through to
// the next op here. Ports are compared in host order.
const (
	attrReqBytecode  = 1  // INET_DIAG_REQ_BYTECODE
	bcJmp            = 1  // INET_DIAG_BC_JMP: jump by no
	bcSGE            = 2  // INET_DIAG_BC_S_GE: local port ≥ operand
	bcSLE            = 3  // INET_DIAG_BC_S_LE: local port ≤ operand
	bcDGE            = 4  // INET_DIAG_BC_D_GE: remote port ≥ operand
	bcDLE            = 5  // INET_DIAG_BC_D_LE: remote port ≤ operand
	bcSEq            = 11 // INET_DIAG_BC_S_EQ: local port equal
	maxBytecodePorts = 4096
)

// portBytecode returns a filter program accepting the local ports in ports, or nil when there
// are none or too many (the userspace filter, which always runs, then does all the work). Per
// port: S_EQ port (yes: to the JMP, no: to the next port's test), JMP to the end (accept). The
// last test's no jumps past the end (reject).
func portBytecode(ports []uint16) []byte {
	if len(ports) == 0 || len(ports) > maxBytecodePorts {
		return nil
	}
	l := 12 * len(ports)
	b := make([]byte, l)
	ne := binary.NativeEndian
	for i, p := range ports {
		op := b[12*i:]
		op[0], op[1] = bcSEq, 8
		no := uint16(12) // the next port's test
		if i == len(ports)-1 {
			no = 16 // 4 past the end: reject
		}
		ne.PutUint16(op[2:], no)
		ne.PutUint16(op[6:], p)
		op[8], op[9] = bcJmp, 4
		ne.PutUint16(op[10:], uint16(l-12*i-8)) // to the end: accept
	}
	return b
}

// rangeBytecode writes into b (reused when large enough) a program accepting the sockets whose
// local (local true) or remote port lies in [lo, hi] and that the program rest accepts: a
// partition of a dump. Each bound is one comparison whose no rejects (4 past the end of the
// whole program); a bound at the end of the port space is left out.
func rangeBytecode(b []byte, local bool, lo, hi uint16, rest []byte) []byte {
	ge, le := uint8(bcDGE), uint8(bcDLE)
	if local {
		ge, le = bcSGE, bcSLE
	}
	var ops [2]struct {
		code uint8
		port uint16
	}
	n := 0
	if lo > 0 {
		ops[n].code, ops[n].port = ge, lo
		n++
	}
	if hi < 1<<16-1 {
		ops[n].code, ops[n].port = le, hi
		n++
	}
	l := 8*n + len(rest)
	if cap(b) < l {
		b = make([]byte, l)
	}
	b = b[:l]
	ne := binary.NativeEndian
	for i := 0; i < n; i++ {
		op := b[8*i:]
		op[0], op[1] = ops[i].code, 8
		ne.PutUint16(op[2:], uint16(l-8*i+4)) // reject
		ne.PutUint16(op[4:], 0)
		ne.PutUint16(op[6:], ops[i].port)
	}
	copy(b[8*n:], rest)
	return b
}

// afUnspec asks dumpRequest for both address families in one walk of the kernel's socket
// table. SOCK_DIAG_BY_FAMILY needs one family per request (the kernel walks the whole
// established hash once per request, whatever the family), so this goes through the older
// TCPDIAG_GETSOCK request, whose dump takes any family (net/ipv4/inet_diag.c,
// inet_diag_dump_compat) and whose replies carry the same inet_diag_msg and attributes.
const afUnspec = 0

// dumpRequest writes into b a dump request for TCP sockets of family (afInet, afInet6, or
// afUnspec for both) in the states (a bitmask, dumpStates or listenStates) asking for
// INET_DIAG_INFO only, with an optional bytecode filter.
func dumpRequest(b []byte, family uint8, seq, states uint32, bytecode []byte) []byte {
	typ, hdr := uint16(sockDiagByFam), inetDiagReqLen
	if family == afUnspec {
		typ, hdr = tcpDiagGetSock, inetDiagReqCompatLen
	}
	n := nlmsgHdrLen + hdr
	if len(bytecode) > 0 {
		n += 4 + len(bytecode)
	}
	if cap(b) < n {
		b = make([]byte, n)
	}
	b = b[:n]
	clear(b)
	if len(bytecode) > 0 {
		a := b[nlmsgHdrLen+hdr:]
		binary.NativeEndian.PutUint16(a[0:], uint16(4+len(bytecode)))
		binary.NativeEndian.PutUint16(a[2:], attrReqBytecode)
		copy(a[4:], bytecode)
	}
	binary.NativeEndian.PutUint32(b[0:], uint32(len(b)))
	binary.NativeEndian.PutUint16(b[4:], typ)
	binary.NativeEndian.PutUint16(b[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	binary.NativeEndian.PutUint32(b[8:], seq)
	r := b[nlmsgHdrLen:]
	r[0] = family
	if family == afUnspec {
		// struct inet_diag_req: family, src_len, dst_len, ext, id (48 bytes), states, dbs;
		// the protocol is the request type's.
		r[3] = 1 << (attrInfo - 1) // idiag_ext
		binary.NativeEndian.PutUint32(r[52:], states)
		return b
	}
	// struct inet_diag_req_v2: family, protocol, ext, pad, states, id.
	r[1] = unix.IPPROTO_TCP
	r[2] = 1 << (attrInfo - 1) // idiag_ext
	binary.NativeEndian.PutUint32(r[4:], states)
	return b
}

// errDumpInterrupted says the kernel's socket tables changed during the dump (NLM_F_DUMP_INTR):
// the messages are still valid, a socket may have been missed or seen twice.
var errDumpInterrupted = errors.New("sock_diag dump interrupted")

// dumpPipe overlaps the kernel's work with ours during a dump: a reader goroutine receives
// datagrams (the kernel fills the next one inside that recvmsg) into a few reused buffers while
// the caller decodes the previous ones.
type dumpPipe struct {
	bufs [][]byte
	free chan int
	full chan filled
}

type filled struct {
	i, n int
	err  error
	last bool // the datagram holds the dump's NLMSG_DONE or NLMSG_ERROR
}

const pipeDepth = 4

func (c *conn) pipeline() *dumpPipe {
	if c.pipe == nil {
		p := &dumpPipe{free: make(chan int, pipeDepth), full: make(chan filled, pipeDepth)}
		for i := 0; i < pipeDepth; i++ {
			p.bufs = append(p.bufs, make([]byte, len(c.buf)))
			p.free <- i
		}
		c.pipe = p
	}
	return c.pipe
}

// readDump receives the datagrams of dump seq until its end or an error.
func (c *conn) readDump(p *dumpPipe, seq uint32) {
	for {
		i := <-p.free
		c.rbuf = p.bufs[i]
		n, err := c.read(true)
		c.rbuf = c.buf
		if err != nil {
			p.full <- filled{i: i, err: err, last: true}
			return
		}
		last := false
		for b := p.bufs[i][:n]; len(b) > 0; {
			_, typ, _, mseq, rest, err := nextMessage(b)
			if err != nil {
				break // the decoding side reports it
			}
			b = rest
			if mseq == seq && (typ == nlmsgDone || typ == nlmsgError) {
				last = true
			}
		}
		p.full <- filled{i: i, n: n, last: last}
		if last {
			return
		}
	}
}

// dump sends a dump request and calls fn with every SOCK_DIAG_BY_FAMILY message of the reply.
// The kernel fills the next datagram inside the recvmsg that returns the previous one. With
// overlap, a reader goroutine receives the datagrams into the pipeline's buffers while the
// caller handles the previous ones, so that the kernel's work and ours run on two cores; when
// no core is spare (every core dumps a partition), overlap only adds two goroutine handoffs a
// datagram, and the caller receives and handles in turn.
func (c *conn) dump(family uint8, seq, states uint32, req, bytecode []byte, overlap bool, fn func(msg []byte)) error {
	req = dumpRequest(req, family, seq, states, bytecode)
	var werr error
	if err := c.rc.Write(func(fd uintptr) bool {
		_, werr = unix.Write(int(fd), req)
		return werr != unix.EAGAIN
	}); err != nil {
		return fmt.Errorf("cannot send sock_diag dump request: %w", err)
	}
	if werr != nil {
		return fmt.Errorf("cannot send sock_diag dump request: %w", werr)
	}
	if err := c.nl.SetReadDeadline(time.Now().Add(dumpTimeout)); err != nil {
		return err
	}
	defer c.nl.SetReadDeadline(time.Time{})
	var result error
	done, interrupted := false, false
	if overlap {
		p := c.pipeline()
		go c.readDump(p, seq)
		for {
			f := <-p.full
			if f.err != nil && result == nil && !done {
				result = fmt.Errorf("cannot read sock_diag dump: %w", f.err)
			}
			if result == nil && !done {
				done, result = handleDump(p.bufs[f.i][:f.n], seq, &interrupted, fn)
			}
			p.free <- f.i
			if f.last {
				break
			}
		}
	} else {
		for result == nil && !done {
			n, err := c.read(true)
			if err != nil {
				result = fmt.Errorf("cannot read sock_diag dump: %w", err)
				break
			}
			done, result = handleDump(c.buf[:n], seq, &interrupted, fn)
		}
	}
	if result == nil && !done {
		result = errors.New("sock_diag dump ended without NLMSG_DONE")
	}
	if result == nil && interrupted {
		result = errDumpInterrupted
	}
	return result
}

// handleDump handles the messages of one dump datagram; done is true at the dump's end.
func handleDump(b []byte, seq uint32, interrupted *bool, fn func(msg []byte)) (done bool, err error) {
	for len(b) > 0 {
		msg, typ, flags, mseq, rest, err := nextMessage(b)
		if err != nil {
			return false, fmt.Errorf("cannot read sock_diag dump: %w", err)
		}
		b = rest
		if mseq != seq {
			continue // left over from an abandoned dump
		}
		if flags&nlmFDumpIntr != 0 {
			*interrupted = true
		}
		switch typ {
		case nlmsgDone:
			return true, nil
		case nlmsgError:
			if len(msg) >= nlmsgHdrLen+4 {
				if e := int32(binary.NativeEndian.Uint32(msg[nlmsgHdrLen:])); e != 0 {
					return true, fmt.Errorf("sock_diag dump failed: %w", unix.Errno(-e))
				}
			}
			return true, nil
		case sockDiagByFam, tcpDiagGetSock:
			fn(msg)
		}
	}
	return false, nil
}
