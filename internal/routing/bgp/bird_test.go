package bgp

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/netledger/netledger/internal/routing"
	"github.com/netledger/netledger/internal/testenv"
)

// birdRoute is one static route BIRD originates, with the attributes it attaches.
type birdRoute struct {
	prefix  netip.Prefix
	path    []uint32 // before BIRD prepends its own AS
	comm    uint32   // low half of the standard community (65000, comm)
	large   uint32   // local1 of the large community (65000, large, 7)
	removed bool
}

// birdRoutes builds n4 IPv4 and n6 IPv6 routes with 0–4-AS paths (with prepends) and
// communities; gen changes the paths of every 7th route and removes every 10th.
func birdRoutes(n4, n6, gen int) []birdRoute {
	var rs []birdRoute
	for i := range n4 + n6 {
		var p netip.Prefix
		if i < n4 {
			p = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}), 24)
		} else {
			j := i - n4
			p = netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(j >> 8), byte(j)}), 48)
		}
		r := birdRoute{prefix: p, comm: uint32(i % 97), large: uint32(i)}
		for k := range i % 5 {
			r.path = append(r.path, 64496+uint32((i+k)%13))
		}
		if i%11 == 3 && len(r.path) > 0 { // prepends
			r.path = append(r.path, r.path[len(r.path)-1], r.path[len(r.path)-1])
		}
		if i%17 == 0 {
			r.path = append(r.path, 4200000000+uint32(i))
		}
		if gen > 0 && i%7 == 0 {
			r.path = append([]uint32{65100}, r.path...)
			r.comm = 999
		}
		if gen > 0 && i%10 == 0 {
			r.removed = true
		}
		rs = append(rs, r)
	}
	return rs
}

func birdConfig(port int, password string, rs []birdRoute) string {
	var b strings.Builder
	fmt.Fprintf(&b, "log stderr all;\nrouter id 127.0.0.2;\nprotocol device { }\n")
	for _, v6 := range []bool{false, true} {
		name, ch := "static4", "ipv4"
		if v6 {
			name, ch = "static6", "ipv6"
		}
		fmt.Fprintf(&b, "protocol static %s {\n  %s;\n", name, ch)
		for _, r := range rs {
			if r.removed || r.prefix.Addr().Is6() != v6 {
				continue
			}
			fmt.Fprintf(&b, "  route %s blackhole {", r.prefix)
			for k := len(r.path) - 1; k >= 0; k-- {
				fmt.Fprintf(&b, " bgp_path.prepend(%d);", r.path[k])
			}
			fmt.Fprintf(&b, " bgp_community.add((65000, %d)); bgp_large_community.add((65000, %d, 7)); };\n", r.comm, r.large)
		}
		b.WriteString("}\n")
	}
	pw := ""
	if password != "" {
		pw = fmt.Sprintf("  password %q;\n", password)
	}
	fmt.Fprintf(&b, `protocol bgp collector {
  local 127.0.0.2 as 65000;
  neighbor 127.0.0.1 port %d as 65001;
  strict bind yes;
  multihop 2;
  hold time 9;
  keepalive time 3;
  connect delay time 1;
  connect retry time 1;
  error wait time 1, 2;
%s  ipv4 { import none; export where source = RTS_STATIC; next hop address 198.51.100.1; };
  ipv6 { import none; export where source = RTS_STATIC; next hop address 2001:db8:ffff::1; };
}
`, port, pw)
	return b.String()
}

// birdExpect renders what the RIB must hold, in mapRIB.dump's format.
func birdExpect(rs []birdRoute) string {
	var lines []string
	for _, r := range rs {
		if r.removed {
			continue
		}
		nh := "198.51.100.1"
		if r.prefix.Addr().Is6() {
			nh = "2001:db8:ffff::1"
		}
		path := []string{"65000"}
		for _, a := range r.path {
			path = append(path, fmt.Sprint(a))
		}
		lines = append(lines, fmt.Sprintf("%v 0 %s %s", r.prefix, strings.Join(path, " "), nh))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// syncBuffer collects BIRD's log.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestBIRD peers with a real BIRD 2 originating 1,000 IPv4 and 200 IPv6 routes over an
// MD5-signed session: the RIB holds exactly those routes with their paths and communities;
// after a reconfiguration withdrawing and changing some, it matches again within 5 s; when
// BIRD stops, the table is kept for the grace time and then cleared.
func TestBIRD(t *testing.T) {
	testenv.RequireRoot(t)
	birdPath := testenv.Command(t, "bird")
	birdc := testenv.Command(t, "birdc")
	const password = "netledger-md5"

	rib := newMapRIB()
	prod := routing.NewRIB() // the production table, fed the same updates
	cfg := testConfig()
	cfg.GraceTime = 2 * time.Second
	c, addr, _ := startSpeaker(t, cfg, Neighbor{Name: "bird", Address: netip.MustParseAddr("127.0.0.2"),
		PeerASN: 65000, Passive: true, Password: password, RIB: teeRIB{rib, prod}})
	_, portStr, _ := net.SplitHostPort(addr)
	var port int
	fmt.Sscan(portStr, &port)

	dir := t.TempDir()
	conf := filepath.Join(dir, "bird.conf")
	sock := filepath.Join(dir, "bird.ctl")
	gen0 := birdRoutes(1000, 200, 0)
	if err := os.WriteFile(conf, []byte(birdConfig(port, password, gen0)), 0o644); err != nil {
		t.Fatal(err)
	}
	var log syncBuffer
	cmd := exec.Command(birdPath, "-f", "-c", conf, "-s", sock, "-P", filepath.Join(dir, "bird.pid"))
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatalf("cannot start bird: %v", err)
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
		if t.Failed() {
			t.Logf("bird log:\n%s", log.String())
		}
	})

	want := birdExpect(gen0)
	start := time.Now()
	eventually(t, wait, "the full table from bird", func() bool { return rib.dump() == want })
	t.Logf("1,200 routes received %v after starting bird", time.Since(start).Round(time.Millisecond))
	eventually(t, wait, "routing.RIB to hold the full table", func() bool { return ribDump(prod) == want })
	checkAttrs(t, rib, gen0)
	if v4, v6 := rib.Len(); v4 != 1000 || v6 != 200 {
		t.Fatalf("rib holds %d/%d routes", v4, v6)
	}

	gen1 := birdRoutes(1000, 200, 1)
	if err := os.WriteFile(conf, []byte(birdConfig(port, password, gen1)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(birdc, "-s", sock, "configure").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Reconfigured") {
		t.Fatalf("birdc configure: %v\n%s", err, out)
	}
	want = birdExpect(gen1)
	eventually(t, wait, "the reconfigured table", func() bool { return rib.dump() == want && ribDump(prod) == want })
	checkAttrs(t, rib, gen1)
	if n := rib.size(); n != 1080 {
		t.Fatalf("rib holds %d routes after withdrawing 120", n)
	}

	// Timed from before the drop (the grace timer starts after it), not from when this
	// goroutine saw it: a loaded machine could delay that sight past the 200 ms of slack.
	down := time.Now()
	out, err = exec.Command(birdc, "-s", sock, "down").CombinedOutput()
	if err != nil {
		t.Fatalf("birdc down: %v\n%s", err, out)
	}
	eventually(t, wait, "the session to drop", func() bool { return c.Status()[0].State != StateEstablished })
	if n := rib.size(); n != 1080 {
		t.Fatalf("table not kept after the session dropped: %d routes", n)
	}
	eventually(t, wait, "the grace time to clear the table", func() bool { return rib.size() == 0 && ribDump(prod) == "" })
	if d := time.Since(down); d < cfg.GraceTime {
		t.Errorf("table cleared %v after the drop, grace is %v", d, cfg.GraceTime)
	}
}

func checkAttrs(t *testing.T, rib *mapRIB, rs []birdRoute) {
	t.Helper()
	for _, r := range rs {
		if r.removed {
			continue
		}
		a, ok := rib.get(r.prefix.String(), 0)
		if !ok {
			t.Fatalf("%v missing", r.prefix)
		}
		if len(a.Communities) != 1 || a.Communities[0] != 65000<<16|r.comm {
			t.Fatalf("%v communities %v, want (65000,%d)", r.prefix, a.Communities, r.comm)
		}
		if len(a.LargeCommunities) != 1 || a.LargeCommunities[0] != (routing.LargeCommunity{Global: 65000, Local1: r.large, Local2: 7}) {
			t.Fatalf("%v large communities %v", r.prefix, a.LargeCommunities)
		}
		if a.Origin != routing.OriginIGP {
			t.Fatalf("%v origin %d", r.prefix, a.Origin)
		}
	}
}

// teeRIB feeds a mapRIB (and walks it) and a routing.RIB with the same updates.
type teeRIB struct {
	*mapRIB
	real *routing.RIB
}

func (r teeRIB) Announce(p netip.Prefix, id uint32, a routing.Attrs) {
	r.mapRIB.Announce(p, id, a)
	r.real.Announce(p, id, a)
}

func (r teeRIB) Withdraw(p netip.Prefix, id uint32) {
	r.mapRIB.Withdraw(p, id)
	r.real.Withdraw(p, id)
}

func (r teeRIB) Clear() {
	r.mapRIB.Clear()
	r.real.Clear()
}

// ribDump renders what readers of a routing.RIB see as mapRIB.dump does.
func ribDump(r *routing.RIB) string {
	var lines []string
	r.All(func(p netip.Prefix, a *routing.Attrs) bool {
		lines = append(lines, fmt.Sprintf("%v 0 %s %v", p, pathString(a.Path), a.NextHop))
		return true
	})
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}
