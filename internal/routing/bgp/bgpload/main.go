// Command bgpload measures the embedded BGP speaker under a full table: it starts BIRD
// originating 1,000,000 IPv4 and 100,000 IPv6 routes (real prefixes from the shared LPM test
// data, synthetic 3–5-AS paths) and a collector process holding only the speaker and a RIB,
// then reports the time to receive the table and the collector's RSS per route once settled.
// It is not part of CI; see docs/benchmarks.md ("BGP sessions").
//
//	go run ./internal/routing/bgp/bgpload -prefixes ../shared/testdata/lpm/bart/prefixes.txt.gz
package main

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/netledger/netledger/internal/hugepage"
	"github.com/netledger/netledger/internal/routing"
	"github.com/netledger/netledger/internal/routing/bgp"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "collect" {
		if err := collect(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "bgpload collect:", err)
			os.Exit(1)
		}
		return
	}
	if err := drive(); err != nil {
		fmt.Fprintln(os.Stderr, "bgpload:", err)
		os.Exit(1)
	}
}

// sample is one progress line of the collector.
type sample struct {
	Elapsed   float64 `json:"elapsed_s"`
	V4        int     `json:"v4"`
	V6        int     `json:"v6"`
	RSS       int64   `json:"rss_bytes"`
	HeapInuse uint64  `json:"heap_inuse_bytes"`
	HugeBytes int64   `json:"anon_huge_bytes"`
	Final     bool    `json:"final,omitempty"`
}

func drive() error {
	prefixes := flag.String("prefixes", "../shared/testdata/lpm/bart/prefixes.txt.gz", "real prefixes, one a line (gzip)")
	n4 := flag.Int("v4", 1_000_000, "IPv4 routes")
	n6 := flag.Int("v6", 100_000, "IPv6 routes")
	port := flag.Int("port", 17900, "collector port on 127.0.0.1")
	ribKind := flag.String("rib", "routing", "collector RIB: routing (routing.NewRIB) or null (counts only)")
	cpuProfile := flag.String("cpuprofile", "", "collector CPU profile file")
	huge := flag.Bool("hugepages", false, "collector: put the heap on huge pages once the table is complete (hugepage.Collapse, as routers does after End-of-RIB)")
	flag.Parse()

	v4, v6, err := loadPrefixes(*prefixes, *n4, *n6)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "bgpload")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	conf := filepath.Join(dir, "bird.conf")
	paths, err := writeBirdConfig(conf, *port, v4, v6)
	if err != nil {
		return err
	}
	fmt.Printf("bird.conf: %d IPv4 + %d IPv6 routes, %d distinct AS paths\n", len(v4), len(v6), paths)

	self, err := os.Executable()
	if err != nil {
		return err
	}
	col := exec.Command(self, "collect", "-port", strconv.Itoa(*port), "-v4", strconv.Itoa(len(v4)),
		"-v6", strconv.Itoa(len(v6)), "-rib", *ribKind, "-cpuprofile", *cpuProfile, "-hugepages="+strconv.FormatBool(*huge))
	col.Stderr = os.Stderr
	out, err := col.StdoutPipe()
	if err != nil {
		return err
	}
	if err := col.Start(); err != nil {
		return err
	}
	defer col.Process.Kill()
	time.Sleep(500 * time.Millisecond)

	birdStart := time.Now()
	bird := exec.Command("bird", "-f", "-c", conf, "-s", filepath.Join(dir, "bird.ctl"), "-P", filepath.Join(dir, "bird.pid"))
	birdLog, _ := os.Create(filepath.Join(os.TempDir(), "bgpload-bird.log"))
	bird.Stdout, bird.Stderr = birdLog, birdLog
	if err := bird.Start(); err != nil {
		return fmt.Errorf("cannot start bird: %w", err)
	}
	defer func() {
		bird.Process.Signal(syscall.SIGTERM)
		bird.Wait()
	}()

	sc := bufio.NewScanner(out)
	var last sample
	for sc.Scan() {
		fmt.Println(sc.Text())
		if err := json.Unmarshal(sc.Bytes(), &last); err == nil && last.Final {
			break
		}
	}
	birdRSS := procRSS(bird.Process.Pid)
	total := last.V4 + last.V6
	fmt.Printf("bird started %s before the table settled\n", time.Since(birdStart).Round(time.Millisecond))
	if total > 0 {
		fmt.Printf("collector: %d routes, RSS %.1f MB = %.0f bytes/route, Go heap in use %.0f bytes/route, %.1f MB on huge pages\n",
			total, float64(last.RSS)/1e6, float64(last.RSS)/float64(total), float64(last.HeapInuse)/float64(total), float64(last.HugeBytes)/1e6)
		fmt.Printf("bird: RSS %.1f MB = %.0f bytes/route\n", float64(birdRSS)/1e6, float64(birdRSS)/float64(total))
	}
	return nil
}

func loadPrefixes(path string, n4, n6 int) (v4, v6 []netip.Prefix, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, nil, err
	}
	sc := bufio.NewScanner(zr)
	for sc.Scan() {
		p, err := netip.ParsePrefix(strings.TrimSpace(sc.Text()))
		if err != nil {
			continue
		}
		if p.Addr().Is4() && len(v4) < n4 {
			v4 = append(v4, p)
		} else if p.Addr().Is6() && len(v6) < n6 {
			v6 = append(v6, p)
		}
	}
	// The file has about 902,000 IPv4 prefixes: the rest are the lower halves (one bit longer)
	// of real ones, as more-specifics of real routes.
	seen := make(map[netip.Prefix]bool, len(v4))
	for _, p := range v4 {
		seen[p] = true
	}
	for i := 0; len(v4) < n4 && i < len(v4); i++ {
		p := v4[i]
		if p.Bits() >= 32 {
			continue
		}
		q := netip.PrefixFrom(p.Addr(), p.Bits()+1)
		if !seen[q] {
			seen[q] = true
			v4 = append(v4, q)
		}
	}
	return v4, v6, sc.Err()
}

// pathFor derives a synthetic 3–5-AS path from the prefix: about 75,000 origin ASes, two or
// three transit ASes determined by the origin, and a prepended origin for one in 13.
func pathFor(p netip.Prefix) []uint32 {
	h := fnv.New32a()
	b, _ := p.MarshalBinary()
	h.Write(b)
	origin := 1 + h.Sum32()%75000
	if origin >= 64496 && origin <= 65551 {
		origin += 2000 // avoid reserved/private ranges
	}
	path := []uint32{3000 + origin%20, 10000 + origin%700}
	if origin%3 == 0 {
		path = append(path, 20000+origin%5000)
	}
	path = append(path, origin)
	if origin%13 == 0 {
		path = append(path, origin)
	}
	return path
}

func writeBirdConfig(name string, port int, v4, v6 []netip.Prefix) (int, error) {
	f, err := os.Create(name)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	distinct := make(map[string]bool)
	fmt.Fprintf(w, "log stderr { warning, error, fatal };\nrouter id 127.0.0.2;\nprotocol device { }\n")
	for _, fam := range []struct {
		name, ch string
		ps       []netip.Prefix
	}{{"static4", "ipv4", v4}, {"static6", "ipv6", v6}} {
		fmt.Fprintf(w, "protocol static %s {\n  %s;\n", fam.name, fam.ch)
		for _, p := range fam.ps {
			path := pathFor(p)
			distinct[fmt.Sprint(path)] = true
			fmt.Fprintf(w, "  route %s blackhole {", p)
			for k := len(path) - 1; k >= 0; k-- {
				fmt.Fprintf(w, " bgp_path.prepend(%d);", path[k])
			}
			w.WriteString(" };\n")
		}
		w.WriteString("}\n")
	}
	fmt.Fprintf(w, `protocol bgp collector {
  local 127.0.0.2 as 65000;
  neighbor 127.0.0.1 port %d as 65001;
  strict bind yes;
  multihop 2;
  connect delay time 1;
  connect retry time 1;
  ipv4 { import none; export where source = RTS_STATIC; next hop address 198.51.100.1; };
  ipv6 { import none; export where source = RTS_STATIC; next hop address 2001:db8:ffff::1; };
}
`, port)
	return len(distinct), w.Flush()
}

// nullRIB only counts routes: it measures the speaker without a table.
type nullRIB struct{ v4, v6 int }

func (r *nullRIB) Announce(p netip.Prefix, _ uint32, _ routing.Attrs) {
	if p.Addr().Is4() {
		r.v4++
	} else {
		r.v6++
	}
}
func (r *nullRIB) Withdraw(netip.Prefix, uint32) {}
func (r *nullRIB) Clear()                        { r.v4, r.v6 = 0, 0 }

type lenner interface{ Len() (int, int) }

func collect(args []string) error {
	fs := flag.NewFlagSet("collect", flag.ExitOnError)
	port := fs.Int("port", 17900, "listen port on 127.0.0.1")
	want4 := fs.Int("v4", 0, "expected IPv4 routes")
	want6 := fs.Int("v6", 0, "expected IPv6 routes")
	ribKind := fs.String("rib", "routing", "routing or null")
	settle := fs.Duration("settle", 10*time.Second, "wait after the last route before measuring")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the table transfer")
	huge := fs.Bool("hugepages", false, "collapse the heap onto huge pages once the table is complete")
	fs.Parse(args)
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}

	var rib routing.Updater
	var count func() (int, int)
	switch *ribKind {
	case "null":
		n := &nullRIB{}
		rib, count = n, func() (int, int) { return n.v4, n.v6 } // racy read, progress only
	default:
		r, err := newRIB()
		if err != nil {
			return err
		}
		rib, count = r, r.(lenner).Len
	}
	cfg := bgp.DefaultConfig()
	cfg.Listen = "127.0.0.1:" + strconv.Itoa(*port)
	cfg.LocalASN = 65001
	c, err := bgp.New(cfg, []bgp.Neighbor{{Name: "bird", Address: netip.MustParseAddr("127.0.0.2"), PeerASN: 65000,
		Passive: true, RIB: rib}}, bgp.Deps{Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go c.Run(ctx)

	enc := json.NewEncoder(os.Stdout)
	start := time.Now()
	var first time.Time
	lastChange, last := time.Now(), -1
	collapsed := false
	for range time.Tick(time.Second) {
		v4, v6 := count()
		if v4+v6 > 0 && first.IsZero() {
			first = time.Now()
		}
		if v4+v6 != last {
			last, lastChange = v4+v6, time.Now()
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		s := sample{Elapsed: time.Since(start).Seconds(), V4: v4, V6: v6, RSS: procRSS(os.Getpid()), HeapInuse: ms.HeapInuse}
		complete := v4 >= *want4 && v6 >= *want6
		if complete && *huge && !collapsed {
			res, err := hugepage.Collapse(-1)
			fmt.Fprintf(os.Stderr, "hugepage.Collapse: %v %v\n", res, err)
			collapsed = true
		}
		if complete && !first.IsZero() && time.Since(lastChange) >= *settle {
			fmt.Fprintf(os.Stderr, "table received in %s (first route to last)\n", lastChange.Sub(first).Round(time.Millisecond))
			debug.FreeOSMemory()
			runtime.ReadMemStats(&ms)
			s.RSS, s.HeapInuse, s.HugeBytes, s.Final = procRSS(os.Getpid()), ms.HeapInuse, hugepage.AnonHugeBytes(), true
			return enc.Encode(s)
		}
		enc.Encode(s)
	}
	return nil
}

func procRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}
