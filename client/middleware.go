package client

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

type connKey struct{}

// connState is what the middleware keeps per connection: the connection, and the TCP
// retransmit counter at the end of its previous request (TCP_INFO counts per connection).
type connState struct {
	conn net.Conn
	mu   sync.Mutex
	last uint32
}

// ConnContext remembers each connection in its requests' context; set it as the
// http.Server's ConnContext so that Middleware can read TCP_INFO:
//
//	srv := &http.Server{Handler: client.Middleware(c, classify, mux), ConnContext: client.ConnContext}
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, &connState{conn: c})
}

// TCPInfo is what the middleware reads from a connection's TCP_INFO.
type TCPInfo struct {
	// TotalRetrans is tcpi_total_retrans (cumulative for the connection).
	TotalRetrans uint32
	// MSS is tcpi_snd_mss in bytes; RTT, RTTVar and MinRTT are in µs.
	MSS, RTT, RTTVar, MinRTT uint32
	// DeliveryRate is tcpi_delivery_rate in bytes per second.
	DeliveryRate uint64
}

// ReadTCPInfo returns the TCP_INFO of a TCP connection (unwrapping TLS).
func ReadTCPInfo(c net.Conn) (TCPInfo, error) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return TCPInfo{}, errors.New("connection has no file descriptor")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return TCPInfo{}, err
	}
	var info *unix.TCPInfo
	var serr error
	if err := rc.Control(func(fd uintptr) {
		info, serr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	}); err != nil {
		return TCPInfo{}, err
	}
	if serr != nil {
		return TCPInfo{}, serr
	}
	return TCPInfo{
		TotalRetrans: info.Total_retrans, MSS: info.Snd_mss, RTT: info.Rtt, RTTVar: info.Rttvar,
		MinRTT: info.Min_rtt, DeliveryRate: info.Delivery_rate,
	}, nil
}

// Middleware reports every request next serves through c, when the handler returns: client
// address, server address, bytes written, duration, and from TCP_INFO the retransmits during the
// request, MSS, RTT and RTT variance. classify chooses the traffic class (nil: class 0). The
// server must set ConnContext (see there) for TCP_INFO; without it the report goes without.
func Middleware(c *Client, classify func(*http.Request) uint16, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		cw := &countingWriter{ResponseWriter: w}
		next.ServeHTTP(cw, r)
		end := time.Now()
		rec := Record{
			Time:     end.UnixNano(),
			BytesOut: cw.n,
			Duration: uint64(end.Sub(start) / time.Microsecond),
			Requests: 1,
			Proto:    6,
		}
		if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
			rec.Client, rec.ClientPort = ap.Addr().Unmap(), ap.Port()
		}
		if classify != nil {
			rec.Class = classify(r)
		}
		if st, ok := r.Context().Value(connKey{}).(*connState); ok {
			if la, ok := st.conn.LocalAddr().(*net.TCPAddr); ok {
				ap := la.AddrPort()
				rec.Server, rec.ServerPort = ap.Addr().Unmap(), ap.Port()
			}
			if info, err := ReadTCPInfo(st.conn); err == nil {
				st.mu.Lock()
				rec.Retransmits = info.TotalRetrans - st.last
				st.last = info.TotalRetrans
				st.mu.Unlock()
				rec.MSS, rec.RTT, rec.RTTVar, rec.MinRTT = info.MSS, info.RTT, info.RTTVar, info.MinRTT
				rec.DeliveryRate = info.DeliveryRate
			}
		}
		c.Report(rec)
	})
}

// countingWriter counts the body bytes a handler writes.
type countingWriter struct {
	http.ResponseWriter
	n uint64
}

func (w *countingWriter) Write(b []byte) (int, error) {
	n, err := w.ResponseWriter.Write(b)
	w.n += uint64(n)
	return n, err
}

// ReadFrom keeps the sendfile path of the underlying writer.
func (w *countingWriter) ReadFrom(r io.Reader) (int64, error) {
	var n int64
	var err error
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(r)
	} else {
		n, err = io.Copy(w.ResponseWriter, r)
	}
	w.n += uint64(n)
	return n, err
}

// Flush forwards to the underlying writer when it flushes.
func (w *countingWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Hijack forwards to the underlying writer (websockets); hijacked bytes are not counted.
func (w *countingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *countingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
