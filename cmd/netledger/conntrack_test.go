package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/netledger/netledger/internal/export/ctcsv"
	"github.com/netledger/netledger/internal/testenv"
)

// TestConntrackFlags parses the original tool's saarCTF command line (single-dash flags).
func TestConntrackFlags(t *testing.T) {
	var f conntrackFlags
	fs := pflag.NewFlagSet("conntrack", pflag.ContinueOnError)
	addConntrackFlags(fs, &f)
	args := []string{"-src=10.32.0.0/11", "-src-group-mask=255.239.255.0", "-dst=10.32.0.0/11", "-dst-group-mask=255.239.255.0",
		"-pipe=/tmp/conntrack_acct", "-output=/root/conntrack_data/new", "-track-open", "-interval=1", "-exclude-ip=10.32.0.1,::ffff:10.32.0.2"}
	if err := fs.Parse(singleDash(args)); err != nil {
		t.Fatal(err)
	}
	cfg, out, err := f.config()
	if err != nil {
		t.Fatal(err)
	}
	saar := netip.MustParseAddr("255.239.255.0")
	if len(cfg.Src) != 1 || cfg.Src[0] != netip.MustParsePrefix("10.32.0.0/11") || cfg.SrcGroupMask != saar || cfg.DstGroupMask != saar ||
		!cfg.TrackOpen || cfg.Interval != time.Second || len(cfg.Exclude) != 2 || cfg.Exclude[1] != netip.MustParseAddr("10.32.0.2") {
		t.Errorf("agent configuration %+v", cfg)
	}
	if out.Stdout || out.Pipe != "/tmp/conntrack_acct" || out.Dir != "/root/conntrack_data/new" || !out.TrackOpen {
		t.Errorf("output configuration %+v", out)
	}
	if f.listen != "127.0.0.1:8792" {
		t.Errorf("metrics listen %q, want loopback by default", f.listen)
	}
	if cfg.ReliableEvents {
		t.Errorf("reliable events on by default: a full event socket would hold back the host's packets")
	}
	for _, tc := range []struct {
		arg  string
		want bool
	}{{"-reliable-events", true}, {"-reliable-events=false", false}} {
		var f conntrackFlags
		fs := pflag.NewFlagSet("conntrack", pflag.ContinueOnError)
		addConntrackFlags(fs, &f)
		if err := fs.Parse(singleDash([]string{tc.arg})); err != nil {
			t.Fatal(err)
		}
		if cfg, _, err := f.config(); err != nil || cfg.ReliableEvents != tc.want {
			t.Errorf("%s: reliable events %v (%v), want %v", tc.arg, cfg.ReliableEvents, err, tc.want)
		}
	}
	for _, bad := range [][]string{{"-src-group-mask=255.0.0"}, {"-src=10.0.0.0/33"}, {"-src-group-prefix6=129"}} {
		var f conntrackFlags
		fs := pflag.NewFlagSet("conntrack", pflag.ContinueOnError)
		addConntrackFlags(fs, &f)
		if err := fs.Parse(singleDash(bad)); err != nil {
			continue
		}
		if _, _, err := f.config(); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

// TestConntrackAgentFIFO runs `netledger conntrack` (the original's flags) as a process in a
// fresh network namespace and reads its FIFO with a plain `cat` while it runs: a TCP
// connection opened by 127.0.0.2 to 127.0.0.3 arrives as a CSV line accounted to its opener,
// the same interval is in the output folder as a complete file, and SIGTERM stops the agent
// cleanly.
func TestConntrackAgentFIFO(t *testing.T) {
	testenv.RequireRoot(t)
	ip, nft, cat := testenv.Command(t, "ip"), testenv.Command(t, "nft"), testenv.Command(t, "cat")
	ns := fmt.Sprintf("nlcta%d", os.Getpid())
	if out, err := exec.Command(ip, "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command(ip, "netns", "del", ns).Run() })
	exec.Command(ip, "-n", ns, "link", "set", "lo", "up").Run()
	rules := exec.Command(ip, "netns", "exec", ns, nft, "-f", "-")
	rules.Stdin = strings.NewReader("add table inet nlcta\nadd chain inet nlcta out { type filter hook output priority 0; }\nadd rule inet nlcta out ct state new counter\n")
	if out, err := rules.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v: %s", err, out)
	}

	dir := t.TempDir()
	fifo, outDir := filepath.Join(dir, "conntrack_acct"), filepath.Join(dir, "new")
	agent := exec.Command(os.Args[0], "-test.run=^TestConntrackAgentHelper$")
	agent.Env = append(os.Environ(), "NETLEDGER_CONNTRACK_AGENT=conntrack -netns=/run/netns/"+ns+
		" -src=127.0.0.0/8 -pipe="+fifo+" -output="+outDir+" -interval=1 -track-open -listen=")
	stderr, err := agent.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	defer agent.Process.Kill()
	logs, running := bufio.NewScanner(stderr), false
	var log []string
	for !running && logs.Scan() {
		log = append(log, logs.Text())
		running = strings.Contains(logs.Text(), "conntrack accounting running")
	}
	if !running {
		t.Fatalf("agent did not start:\n%s", strings.Join(log, "\n"))
	}
	go io.Copy(io.Discard, stderr)

	reader := exec.Command(cat, fifo)
	catOut, err := reader.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := reader.Start(); err != nil {
		t.Fatal(err)
	}
	defer reader.Process.Kill()

	var ln net.Listener
	testenv.InNetNS(t, ns, func() (err error) { ln, err = net.Listen("tcp", "127.0.0.3:0"); return })
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			io.ReadFull(c, make([]byte, 1000))
			c.Write(make([]byte, 5000))
			c.Close()
		}
	}()
	testenv.InNetNS(t, ns, func() error {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
		c, err := d.Dial("tcp", ln.Addr().String())
		if err != nil {
			return err
		}
		defer c.Close()
		c.Write(make([]byte, 1000))
		_, err = io.ReadFull(c, make([]byte, 5000))
		return err
	})
	port := ln.Addr().(*net.TCPAddr).Port

	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(catOut)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	// With -track-open an interval boundary can fall inside the connection: its handshake
	// is then one interval's line and its payload the next one's. Sum the connection's
	// lines until they hold the test's bytes; every one of them must be the opener's.
	timeout := time.After(30 * time.Second)
	var sum ctcsv.Row
	for sum.SrcBytes < 1000 || sum.DstBytes < 5000 {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatal("cat saw the FIFO end while the agent runs")
			}
			r, err := ctcsv.Parse([]byte(line))
			if err != nil || strings.Count(line, ",") != 11 {
				t.Fatalf("cat read %q: %v (want 12 fields with -track-open)", line, err)
			}
			if r.Proto != 6 || r.Port != int32(port) {
				continue
			}
			if r.Src != netip.MustParseAddr("127.0.0.2") || r.Dst != netip.MustParseAddr("127.0.0.3") {
				t.Fatalf("line not accounted to the opener: %+v", r)
			}
			sum.SrcBytes += r.SrcBytes
			sum.DstBytes += r.DstBytes
			sum.SrcPackets += r.SrcPackets
			sum.DstPackets += r.DstPackets
		case <-timeout:
			t.Fatalf("the FIFO's lines for the test's connection hold %+v, not the test's bytes", sum)
		}
	}
	if sum.SrcPackets == 0 || sum.DstPackets == 0 {
		t.Errorf("the test's connection has no packets: %+v", sum)
	}

	agent.Process.Signal(syscall.SIGTERM)
	if err := agent.Wait(); err != nil {
		t.Errorf("agent after SIGTERM: %v", err)
	}
	files, _ := filepath.Glob(filepath.Join(outDir, "*"))
	var csv int
	for _, f := range files {
		if !strings.HasSuffix(f, ".csv") {
			t.Errorf("output folder holds %s (a temporary file?)", f)
		}
		csv++
	}
	if csv == 0 {
		t.Error("no interval file in the output folder")
	}
}

// TestConntrackAgentHelper is TestConntrackAgentFIFO's agent process.
func TestConntrackAgentHelper(t *testing.T) {
	args := os.Getenv("NETLEDGER_CONNTRACK_AGENT")
	if args == "" {
		t.Skip("helper of TestConntrackAgentFIFO")
	}
	rootCmd.SetArgs(strings.Fields(args))
	if err := rootCmd.Execute(); err != nil {
		t.Fatal(err)
	}
}
