package tcpinfo

import (
	"bufio"
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/netledger/netledger/internal/record"
	"github.com/netledger/netledger/internal/testenv"
)

const nginxConf = `worker_processes 1;
user root;
pid {{DIR}}/nginx.pid;
error_log {{DIR}}/error.log info;
events { worker_connections 1024; }
http {
  access_log {{DIR}}/access.log;
  client_body_temp_path {{DIR}}/tmp_body;
  proxy_temp_path       {{DIR}}/tmp_proxy;
  fastcgi_temp_path     {{DIR}}/tmp_fcgi;
  uwsgi_temp_path       {{DIR}}/tmp_uwsgi;
  scgi_temp_path        {{DIR}}/tmp_scgi;
  root {{DIR}}/www;
  server {
    listen 10.77.0.1:8080;
    listen [fd77::1]:8080;
    location /slow/ { limit_rate 100k; }
  }
  server {
    listen 10.77.0.1:9090;
  }
}
`

// startNginx runs Debian's nginx in namespace ns serving files of the given sizes (name → size)
// under dir/www, and stops it in t.Cleanup.
func startNginx(t *testing.T, ns string, files map[string]int) {
	t.Helper()
	nginx := testenv.Command(t, "nginx")
	ip := testenv.Command(t, "ip")
	ss := testenv.Command(t, "ss")
	dir := t.TempDir()
	for name, size := range files {
		p := filepath.Join(dir, "www", name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, bytes.Repeat([]byte("x"), size), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(strings.ReplaceAll(nginxConf, "{{DIR}}", dir)), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(ip, "netns", "exec", ns, nginx, "-p", dir, "-c", conf, "-e", filepath.Join(dir, "error.log"), "-g", "daemon off;")
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, _ := exec.Command(ip, "netns", "exec", ns, ss, "-Hltn").Output()
		if strings.Count(string(out), "LISTEN") >= 3 {
			return
		}
		select {
		case <-exited:
			t.Fatalf("nginx exited: %s", stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx not listening: %s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// retransSegs reads the namespace's TcpRetransSegs with nstat.
func retransSegs(t *testing.T, ns string) uint64 {
	t.Helper()
	out := run(t, testenv.Command(t, "ip"), "netns", "exec", ns, testenv.Command(t, "nstat"), "-az", "TcpRetransSegs")
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "TcpRetransSegs" {
			n, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no TcpRetransSegs in nstat output: %s", out)
	return 0
}

// download runs one curl in namespace ns fetching urls, one connection each, and returns what
// each connection received (response headers + body) by the client's address and port.
func download(t *testing.T, ns string, urls []string) map[netip.AddrPort]uint64 {
	t.Helper()
	args := []string{"netns", "exec", ns, testenv.Command(t, "curl"), "-sS", "-g", "--max-time", "60",
		"-H", "Connection: close", "-w", "%{local_ip} %{local_port} %{size_header} %{size_download} %{http_code}\n"}
	for _, u := range urls {
		args = append(args, "-o", "/dev/null", u)
	}
	out := run(t, testenv.Command(t, "ip"), args...)
	got := map[netip.AddrPort]uint64{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var ipStr, code string
		var port uint16
		var hdr, body uint64
		if _, err := fmt.Sscan(sc.Text(), &ipStr, &port, &hdr, &body, &code); err != nil {
			t.Fatalf("curl output %q: %v", sc.Text(), err)
		}
		if code != "200" {
			t.Fatalf("curl: HTTP %s", code)
		}
		got[netip.AddrPortFrom(netip.MustParseAddr(ipStr), port)] = hdr + body
	}
	if len(got) != len(urls) {
		t.Fatalf("curl reported %d connections for %d URLs: %s", len(got), len(urls), out)
	}
	return got
}

// TestNginx is the end-to-end check with the kernel as the oracle: Debian's nginx in one
// namespace, curl in another, 20 ms of delay and 1 % loss on the server's egress. Every
// connection gets exactly one first record, its records sum to what curl received (bytes_acked
// − 1), retransmits sum to the namespace's TcpRetransSegs delta, every RTT is ≥ 20 ms, long
// rate-limited downloads are split over the 1 s dumps, and the unconfigured port gives nothing.
func TestNginx(t *testing.T) {
	srv, cli := newNetNS(t), newNetNS(t)
	mode := link(t, srv, cli, 20*time.Millisecond, 1)
	t.Logf("link: %s", mode)
	files := map[string]int{"1k": 1000, "10k": 10_000, "100k": 100_000, "333k": 333_333, "slow/big": 300_000}
	startNginx(t, srv, files)
	src, col := startSource(t, Config{Interval: time.Second, ReceiveBuffer: 8 << 20, Ports: []uint16{8080}, NetNS: srv})

	// The unconfigured port first, and its sockets gone, so that its retransmits stay out
	// of the TcpRetransSegs delta below.
	download(t, cli, []string{"http://10.77.0.1:9090/10k", "http://10.77.0.1:9090/100k"})
	waitNoSockets(t, srv, "9090")
	before := retransSegs(t, srv)

	want := map[netip.AddrPort]uint64{}
	longConns := map[netip.AddrPort]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	fetch := func(urls []string, long bool) {
		defer wg.Done()
		got := download(t, cli, urls)
		mu.Lock()
		for k, v := range got {
			want[k] = v
			longConns[k] = long
		}
		mu.Unlock()
	}
	wg.Add(2)
	go fetch([]string{"http://10.77.0.1:8080/slow/big"}, true)
	go fetch([]string{"http://[fd77::1]:8080/slow/big"}, true)
	for p := 0; p < 4; p++ {
		var urls []string
		for i := 0; i < 15; i++ {
			host := "10.77.0.1"
			if (p+i)%2 == 1 {
				host = "[fd77::1]"
			}
			urls = append(urls, "http://"+host+":8080/"+[]string{"1k", "10k", "100k", "333k"}[(p*15+i)%4])
		}
		wg.Add(1)
		go fetch(urls, false)
	}
	wg.Wait()
	waitNoSockets(t, srv, "8080")

	var recs []record.Record
	deadline := time.Now().Add(60 * time.Second)
	for {
		recs = col.snapshot()
		closed := 0
		for _, r := range recs {
			closed += int(r.ConnsClosed)
		}
		if closed >= len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	after := retransSegs(t, srv)

	type conn struct {
		out, packets        uint64
		requests, closed, n int
	}
	got := map[netip.AddrPort]*conn{}
	var retrans uint64
	for _, r := range recs {
		if r.ServerPort != 8080 {
			t.Errorf("record for unconfigured port %d: %+v", r.ServerPort, r)
			continue
		}
		k := netip.AddrPortFrom(r.Client, r.ClientPort)
		c := got[k]
		if c == nil {
			c = &conn{}
			got[k] = c
		}
		c.out += r.BytesOut
		c.requests += int(r.Requests)
		c.closed += int(r.ConnsClosed)
		c.n++
		c.packets += r.PacketsOut
		retrans += uint64(r.Retransmits)
		if r.MinRTT < 20_000 || r.RTT < 20_000 {
			t.Errorf("%v: RTT %d µs, min RTT %d µs, want ≥ 20 ms", k, r.RTT, r.MinRTT)
		}
		if r.MSS == 0 {
			t.Errorf("%v: MSS 0", k)
		}
	}
	var long, sumGot uint64
	for k, w := range want {
		c := got[k]
		if c == nil {
			t.Errorf("%v: no record (client received %d bytes)", k, w)
			continue
		}
		sumGot += c.out
		if c.out != w || c.requests != 1 || c.closed != 1 || c.packets < w/1500 {
			t.Errorf("%v: Σ BytesOut %d (client received %d), Σ Requests %d, Σ ConnsClosed %d, Σ PacketsOut %d",
				k, c.out, w, c.requests, c.closed, c.packets)
		}
		if longConns[k] && c.n >= 3 {
			long++
		}
	}
	if len(got) != len(want) {
		t.Errorf("records for %d connections, curl made %d", len(got), len(want))
	}
	if long != 2 {
		t.Errorf("%d long downloads split over ≥ 3 records (2 dumps + destroy), want 2", long)
	}
	if retrans != after-before {
		t.Errorf("Σ Retransmits = %d, TcpRetransSegs delta = %d", retrans, after-before)
	}
	if retrans == 0 {
		t.Error("no retransmits with 1 % loss")
	}
	t.Logf("%d connections, %d records, %d bytes, %d retransmits; stats %+v", len(want), len(recs), sumGot, retrans, src.Stats())
}

// waitNoSockets waits until namespace ns has no TCP socket on port but TIME-WAIT ones.
func waitNoSockets(t *testing.T, ns, port string) {
	t.Helper()
	ip, ss := testenv.Command(t, "ip"), testenv.Command(t, "ss")
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, _ := exec.Command(ip, "netns", "exec", ns, ss, "-Htan", "state", "connected", "exclude", "time-wait",
			"( sport = :"+port+" )").Output()
		if len(bytes.TrimSpace(out)) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("sockets on port %s still open: %s", port, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
