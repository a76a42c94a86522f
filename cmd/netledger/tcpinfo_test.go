package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"testing"
	"time"

	"github.com/netledger/netledger/internal/record"
	"github.com/netledger/netledger/internal/report"
	"github.com/netledger/netledger/internal/source/tcpinfo"
	"github.com/netledger/netledger/internal/testenv"
)

func TestParseClassRule(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want tcpinfo.ClassRule
		err  bool
	}{
		{in: "443=2", want: tcpinfo.ClassRule{Port: 443, Class: 2}},
		{in: "192.0.2.0/24=3", want: tcpinfo.ClassRule{Prefix: netip.MustParsePrefix("192.0.2.0/24"), Class: 3}},
		{in: "192.0.2.1=3", want: tcpinfo.ClassRule{Prefix: netip.MustParsePrefix("192.0.2.1/32"), Class: 3}},
		{in: "192.0.2.0/24:443=4", want: tcpinfo.ClassRule{Prefix: netip.MustParsePrefix("192.0.2.0/24"), Port: 443, Class: 4}},
		{in: "2001:db8::/32=5", want: tcpinfo.ClassRule{Prefix: netip.MustParsePrefix("2001:db8::/32"), Class: 5}},
		{in: "[2001:db8::/32]:80=6", want: tcpinfo.ClassRule{Prefix: netip.MustParsePrefix("2001:db8::/32"), Port: 80, Class: 6}},
		{in: "443", err: true},
		{in: "443=x", err: true},
		{in: "nowhere=1", err: true},
		{in: "443=70000", err: true},
	} {
		got, err := parseClassRule(tc.in)
		if (err != nil) != tc.err {
			t.Errorf("parseClassRule(%q) error = %v, want error %v", tc.in, err, tc.err)
			continue
		}
		if err == nil && got != tc.want {
			t.Errorf("parseClassRule(%q):\n-got  %+v\n+want %+v", tc.in, got, tc.want)
		}
	}
}

// TestTCPInfoAgent runs `netledger tcpinfo` on this host's loopback against a UDP socket: a
// connection to the configured port arrives as a signed v2 report with its bytes.
func TestTCPInfoAgent(t *testing.T) {
	testenv.RequireRoot(t)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	const key = "0123456789abcdef0123"

	ml, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	metrics := ml.Addr().String()
	ml.Close()

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		rootCmd.SetArgs([]string{"tcpinfo", "--addr", pc.LocalAddr().String(), "--key", key, "--key-id", "7",
			"--ports", fmt.Sprint(port), "--listen", metrics, "--class", fmt.Sprintf("%d=9", port)})
		done <- rootCmd.ExecuteContext(ctx)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("netledger tcpinfo: %v", err)
		}
		rootCmd.SetArgs(nil)
		resetCLI() // a second run (-count=2) got this run's cancelled context and stopped at once
	}()
	// The connection must close after the agent subscribed to destroy notifications (a fixed
	// 300 ms sleep was not enough on a loaded machine: the report never came). The agent says
	// it has subscribed by its granted receive buffer on /metrics.
	subscribed := regexp.MustCompile(`(?m)^netledger_tcpinfo_receive_buffer_bytes [1-9]`)
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		select {
		case err := <-done:
			done <- err // for the deferred wait
			t.Fatalf("netledger tcpinfo ended before subscribing: %v", err)
		default:
		}
		if resp, err := http.Get("http://" + metrics + "/metrics"); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if subscribed.Match(b) {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("netledger tcpinfo did not subscribe to destroy notifications in 60 s")
		}
	}

	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		c.Write(make([]byte, 12345))
		c.Close()
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, c)
	client := c.LocalAddr().(*net.TCPAddr).AddrPort()
	c.Close()

	v, err := report.NewVerifier([]report.Key{{ID: 7, Secret: []byte(key)}})
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65536)
	var total uint64
	pc.SetReadDeadline(time.Now().Add(60 * time.Second))
	for total < 12345 {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatalf("no report: %v (got %d bytes so far)", err, total)
		}
		h, err := v.Verify(buf[:n])
		if err != nil {
			t.Fatalf("report does not verify: %v", err)
		}
		it := report.NewReports(buf[:n], h, from.(*net.UDPAddr).AddrPort().Addr())
		var r record.Record
		for {
			ok, err := it.Next(&r)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				break
			}
			if r.Client != client.Addr() || r.Class != 9 || r.Requests != 1 || r.MSS == 0 {
				t.Errorf("report %+v", r)
			}
			total += r.BytesOut
		}
	}
	if total != 12345 {
		t.Errorf("Σ BytesOut = %d, want 12345", total)
	}
}
