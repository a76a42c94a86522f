package tcpinfo

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// fixturePath holds real destroy notifications recorded from this kernel by
// TestRecordFixture (NETLEDGER_RECORD_FIXTURE=1): each datagram as a little-endian u32 length
// and the bytes the kernel sent.
var fixturePath = filepath.Join("testdata", "destroy-notifications.bin")

func readFixture(t testing.TB) [][]byte {
	t.Helper()
	b, err := os.ReadFile(fixturePath)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for len(b) >= 4 {
		n := int(binary.LittleEndian.Uint32(b))
		if 4+n > len(b) {
			t.Fatalf("fixture truncated")
		}
		out = append(out, b[4:4+n])
		b = b[4+n:]
	}
	return out
}

// TestRecordFixture records destroy notifications of 48 loopback connections (IPv4 and IPv6,
// 1–40 kB each) into testdata. It runs only when asked to.
func TestRecordFixture(t *testing.T) {
	if os.Getenv("NETLEDGER_RECORD_FIXTURE") == "" {
		t.Skip("set NETLEDGER_RECORD_FIXTURE=1 to record testdata/destroy-notifications.bin")
	}
	ns := newNetNS(t)
	fd, err := openNetNS(ns)
	if err != nil {
		t.Fatal(err)
	}
	c, err := dialDiag(fd, recvBufSize)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	if _, err := c.subscribe(1 << 20); err != nil {
		t.Fatal(err)
	}
	const conns = 48
	inNetNS(t, ns, func() {
		for i := 0; i < conns; i++ {
			addr := []string{"127.0.0.1:0", "[::1]:0"}[i%2]
			l, err := net.Listen("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			cl, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			s, _ := l.Accept()
			l.Close()
			s.Write(make([]byte, 1000+i*800))
			s.Close()
			io.Copy(io.Discard, cl)
			cl.Close()
		}
	})
	var out []byte
	// Each connection destroys two sockets (both ends) and the listener one more.
	c.nl.SetReadDeadline(time.Now().Add(3 * time.Second))
	for got := 0; got < 3*conns; got++ {
		n, err := c.read(true)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		out = binary.LittleEndian.AppendUint32(out, uint32(n))
		out = append(out, c.buf[:n]...)
	}
	if err := os.WriteFile(fixturePath, out, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("recorded %d bytes", len(out))
}

// dialAccept connects to listener l at dial (its own address when empty) and returns both ends
// of the connection.
func dialAccept(t testing.TB, l net.Listener, dial string) (client, server net.Conn) {
	t.Helper()
	if dial == "" {
		dial = l.Addr().String()
	}
	c, err := net.Dial("tcp", dial)
	if err != nil {
		t.Fatal(err)
	}
	s, err := l.Accept()
	if err != nil {
		c.Close()
		t.Fatal(err)
	}
	return c, s
}
