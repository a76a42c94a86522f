package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/netledger/netledger/client"
	"github.com/netledger/netledger/internal/record"
	"github.com/netledger/netledger/internal/spool"
)

const crashSecret = "crash-test-secret-0123456789abcdef"

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// buildBinary builds netledger once per test run into a temporary directory.
func buildBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "netledger-test-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "netledger")
		if out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// daemon is a `netledger serve` subprocess.
type daemonProc struct {
	cmd        *exec.Cmd
	reportAddr string
	httpAddr   string
}

var listenRe = regexp.MustCompile(`msg="(receiving reports|serving http)".* listen=(\S+)`)

func startServe(t *testing.T, bin, config string) *daemonProc {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--config", config)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	d := &daemonProc{cmd: cmd}
	sc := bufio.NewScanner(stderr)
	deadline := time.AfterFunc(60*time.Second, func() { cmd.Process.Kill() })
	defer deadline.Stop()
	for (d.reportAddr == "" || d.httpAddr == "") && sc.Scan() {
		if m := listenRe.FindStringSubmatch(sc.Text()); m != nil {
			if m[1] == "receiving reports" {
				d.reportAddr = m[2]
			} else {
				d.httpAddr = m[2]
			}
		}
	}
	if d.reportAddr == "" || d.httpAddr == "" {
		t.Fatal("serve did not start listening")
	}
	go io.Copy(io.Discard, stderr)
	return d
}

func (d *daemonProc) accepted(t *testing.T) int {
	return d.metric(t, "netledger_reports_accepted_total ")
}

// metric returns the value of the /metrics line starting with prefix.
func (d *daemonProc) metric(t *testing.T, prefix string) int {
	resp, err := http.Get("http://" + d.httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return int(f)
		}
	}
	return 0
}

// load sends reports with ids (BytesOut) from next until stopped, about rate per second.
func load(t *testing.T, addr string, next *atomic.Uint64, stop <-chan struct{}, max uint64) {
	c, err := client.New(client.Config{Addr: addr, KeyID: 1, Key: []byte(crashSecret), FlushInterval: 5 * time.Millisecond})
	if err != nil {
		t.Error(err)
		return
	}
	defer c.Close()
	for {
		for range 200 {
			id := next.Load()
			if id > max {
				return
			}
			next.Add(1)
			c.Report(client.Record{Client: netip.AddrFrom4([4]byte{10, 0, byte(id >> 8), byte(id)}), BytesOut: id, MSS: 1448})
		}
		select {
		case <-stop:
			return
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// readSpool opens the spool (as the next process would) and reads from p.
func readSpool(t *testing.T, dir string, from spool.Position, limit int) ([]uint64, spool.Position) {
	t.Helper()
	cfg := spool.DefaultConfig()
	cfg.Dir = dir
	s, err := spool.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r, err := s.NewReader(from)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var ids []uint64
	buf := make([]record.Record, 100)
	pos := from
	for len(ids) < limit {
		n, next, err := r.Read(buf[:min(len(buf), limit-len(ids))])
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		for _, rec := range buf[:n] {
			ids = append(ids, rec.BytesOut)
		}
		pos = next
	}
	return ids, pos
}

// crashSetup builds the binary and writes the crash tests' serve config (extra: more YAML lines)
// in a fresh data directory.
func crashSetup(t *testing.T, extra string) (bin, dir, config string) {
	t.Helper()
	bin = buildBinary(t)
	dir = t.TempDir()
	config = filepath.Join(dir, "netledger.yaml")
	yaml := fmt.Appendf(nil, `data_dir: %s
http: {listen: "127.0.0.1:0"}
spool: {sync_interval: 20ms}
report:
  listen: "127.0.0.1:0"
  keys: [{id: 1, secret: %q}]
%s`, dir, crashSecret, extra)
	if err := os.WriteFile(config, yaml, 0o600); err != nil {
		t.Fatal(err)
	}
	return bin, dir, config
}

// loadAndKill sends reports numbered from next to d until ready holds (failing after timeout,
// naming what it waited for), then kills d with SIGKILL in the middle of the load and stops it.
func loadAndKill(t *testing.T, d *daemonProc, next *atomic.Uint64, timeout time.Duration, what string, ready func() bool) {
	t.Helper()
	stop := make(chan struct{})
	loaded := make(chan struct{})
	go func() { load(t, d.reportAddr, next, stop, 1<<40); close(loaded) }()
	for deadline := time.Now().Add(timeout); !ready(); {
		if time.Now().After(deadline) {
			t.Fatalf("serve did not %s in %s", what, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	d.cmd.Wait()
	close(stop)
	<-loaded
}

// runMore starts serve again on config, sends it more reports numbered from next, stops it
// cleanly, and returns the first id it sent, how many it accepted, and the ids the spool then
// holds (checked unique).
func runMore(t *testing.T, bin, config, spoolDir string, next *atomic.Uint64, more int) (start uint64, accepted int, ids []uint64) {
	t.Helper()
	d := startServe(t, bin, config)
	start = next.Load()
	load(t, d.reportAddr, next, nil, start+uint64(more)-1)
	accepted = waitReports(t, d, more)
	d.cmd.Process.Signal(syscall.SIGTERM)
	if err := d.cmd.Wait(); err != nil {
		t.Fatalf("serve after SIGTERM: %v", err)
	}
	ids, _ = readSpool(t, spoolDir, spool.Position{}, 1<<30)
	checkUnique(t, "spool after run 2", ids)
	return start, accepted, ids
}

// waitReports waits until d has accepted want reports or its count has stopped moving with
// nothing left in its socket's receive queue (UDP may drop a datagram on a loaded machine),
// and returns the count; fewer than half is a failure. The count alone was not enough: a
// daemon busy for half a second (GC, fsync, a loaded CI machine) left datagrams queued, the
// count read was short of what the spool then held, and the exact spool check failed.
func waitReports(t *testing.T, d *daemonProc, want int) int {
	t.Helper()
	got, same := 0, 0
	for deadline := time.Now().Add(60 * time.Second); got < want && same < 10 && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		n := d.accepted(t)
		if n == got && udpQueued(t, d.reportAddr) == 0 {
			same++
		} else {
			got, same = n, 0
		}
	}
	if got < want/2 {
		t.Fatalf("serve accepted %d of %d reports", got, want)
	}
	return got
}

// udpQueued returns the bytes waiting in the receive queues of the UDP sockets bound to addr
// (an IPv4 address:port of this host), from /proc/net/udp.
func udpQueued(t *testing.T, addr string) int {
	t.Helper()
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || !ap.Addr().Is4() {
		t.Fatalf("report address %q: want IPv4 address:port", addr)
	}
	b := ap.Addr().As4()
	local := fmt.Sprintf("%02X%02X%02X%02X:%04X", b[3], b[2], b[1], b[0], ap.Port())
	tab, err := os.ReadFile("/proc/net/udp")
	if err != nil {
		t.Fatal(err)
	}
	queued, found := 0, false
	for line := range strings.Lines(string(tab)) {
		f := strings.Fields(line)
		if len(f) > 4 && f[1] == local { // one line per SO_REUSEPORT socket
			_, rx, _ := strings.Cut(f[4], ":")
			n, err := strconv.ParseInt(rx, 16, 64)
			if err != nil {
				t.Fatalf("/proc/net/udp: %q", line)
			}
			queued += int(n)
			found = true
		}
	}
	if !found {
		t.Fatalf("no UDP socket %s in /proc/net/udp", local)
	}
	return queued
}

func checkUnique(t *testing.T, what string, ids []uint64) {
	t.Helper()
	seen := map[uint64]bool{}
	for _, id := range ids {
		if seen[id] {
			t.Fatalf("%s: report %d twice", what, id)
		}
		seen[id] = true
	}
}

// TestCrashRecovery kills `netledger serve` with SIGKILL during a load, restarts it on the same
// spool, and checks that the committed reports are all there exactly once and that a consumer
// resumes at its checkpoint.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin, dir, config := crashSetup(t, "")
	spoolDir := filepath.Join(dir, "spool")

	// Run 1: load, then SIGKILL in the middle of it.
	d := startServe(t, bin, config)
	var next atomic.Uint64
	next.Store(1)
	loadAndKill(t, d, &next, 30*time.Second, "accept 20,000 reports", func() bool { return d.accepted(t) >= 20_000 })

	// A consumer reads part of what was committed and checkpoints.
	all1, _ := readSpool(t, spoolDir, spool.Position{}, 1<<30)
	if len(all1) < 10_000 {
		t.Fatalf("only %d reports survived the crash", len(all1))
	}
	checkUnique(t, "after crash", all1)
	ck := spool.Checkpoint{Path: filepath.Join(dir, "consumer.checkpoint")}
	half := len(all1) / 2
	first, pos := readSpool(t, spoolDir, spool.Position{}, half)
	if err := ck.Save(pos); err != nil {
		t.Fatal(err)
	}

	// Run 2 on the same spool: more reports, then a clean stop.
	const more = 10_000
	start2, accepted2, all2 := runMore(t, bin, config, spoolDir, &next, more)

	// Everything committed before the crash is still there, once, followed by the reports run 2
	// accepted (UDP on a loaded machine may drop a datagram: those are not in its count).
	if len(all2) != len(all1)+accepted2 {
		t.Fatalf("spool holds %d reports, want %d committed before the crash + %d accepted by run 2", len(all2), len(all1), accepted2)
	}
	for i, id := range all1 {
		if all2[i] != id {
			t.Fatalf("report %d changed: %d, was %d", i, all2[i], id)
		}
	}
	prev := start2 - 1
	for i, id := range all2[len(all1):] {
		if id <= prev || id >= start2+more {
			t.Fatalf("run 2 report %d = %d, want ids rising within [%d, %d)", i, id, start2, start2+more)
		}
		prev = id
	}
	// The consumer resumes at its checkpoint: the rest, nothing it had read.
	from, err := ck.Load()
	if err != nil {
		t.Fatal(err)
	}
	rest, _ := readSpool(t, spoolDir, from, 1<<30)
	if len(first)+len(rest) != len(all2) {
		t.Fatalf("consumer read %d then %d reports, want %d in all", len(first), len(rest), len(all2))
	}
	for i, id := range rest {
		if all2[half+i] != id {
			t.Fatalf("resumed report %d = %d, want %d", i, id, all2[half+i])
		}
	}
}

// TestSIGHUPReloadsKeys adds a key to the configuration file of a running `netledger serve`
// and sends SIGHUP: reports signed with the new key are rejected before, accepted after.
func TestSIGHUPReloadsKeys(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	config := filepath.Join(dir, "netledger.yaml")
	write := func(keys string) {
		os.WriteFile(config, fmt.Appendf(nil, "data_dir: %s\nhttp: {listen: \"127.0.0.1:0\"}\nreport:\n  listen: \"127.0.0.1:0\"\n  keys: [%s]\n", dir, keys), 0o600)
	}
	write(`{id: 1, secret: "` + crashSecret + `"}`)
	d := startServe(t, bin, config)
	send := func() {
		c, err := client.New(client.Config{Addr: d.reportAddr, KeyID: 2, Key: []byte("the-new-key-0123456789abcdef")})
		if err != nil {
			t.Fatal(err)
		}
		c.Report(client.Record{Client: netip.MustParseAddr("2001:db8::7"), BytesOut: 7})
		c.Close()
	}
	waitMetric := func(prefix string, want int) {
		deadline := time.Now().Add(60 * time.Second)
		for d.metric(t, prefix) != want {
			if time.Now().After(deadline) {
				t.Fatalf("%s= %d, want %d", prefix, d.metric(t, prefix), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	send()
	waitMetric(`netledger_reports_rejected_total{reason="unknown_key"} `, 1)
	write(`{id: 1, secret: "` + crashSecret + `"}, {id: 2, secret: "the-new-key-0123456789abcdef"}`)
	d.cmd.Process.Signal(syscall.SIGHUP)
	waitMetric(`netledger_reports_key_reloads_total{result="ok"} `, 1)
	send()
	waitMetric("netledger_reports_accepted_total ", 1)
	// A broken file keeps the previous keys.
	write(`{id: 3, secret: "short"}`)
	d.cmd.Process.Signal(syscall.SIGHUP)
	waitMetric(`netledger_reports_key_reloads_total{result="error"} `, 1)
	send()
	waitMetric("netledger_reports_accepted_total ", 2)
}
