package conntrack

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// writeAtomic replaces path's content the way an operator's editor or config management does.
func writeAtomic(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// waitReload waits until the agent has counted n port reloads with result (it polls the file
// every second); the deadline only bounds a broken test.
func waitReload(t *testing.T, a *Agent, result string, n float64) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if testutil.ToFloat64(a.metrics.portReloads.WithLabelValues(result)) >= n {
			return
		}
	}
	t.Fatalf("ports file change not picked up (%s reloads: %v, want %v)", result,
		testutil.ToFloat64(a.metrics.portReloads.WithLabelValues(result)), n)
}

// TestKernelPortsReload changes the ports file while the agent runs: flows after the change
// are accounted by the new set (port 9002 by number instead of -1), and a malformed file is
// counted as an error and leaves the previous set in force. Every phase is checked against
// the kernel's own counters (`conntrack -L`), the table being flushed between phases.
func TestKernelPortsReload(t *testing.T) {
	ports := filepath.Join(t.TempDir(), "ports.txt")
	writeAtomic(t, ports, "# accounted by number\ntcp:9000\n")
	cfg := saarConfig()
	cfg.Ports = ports
	l := newLab(t, cfg)
	tcpServer(t, l.b, "10.32.7.2:9000", 100, 1000)
	tcpServer(t, l.b, "10.32.7.2:9002", 50, 500)
	connect := func(dst string, n int) {
		for range n {
			c := dialTCP(t, l.a, "10.32.5.2", dst)
			exchange(t, c, 2, 100, 1000)
			c.Close()
		}
	}
	only9000 := func(_ uint8, p uint16) int32 {
		if p == 9000 {
			return 9000
		}
		return -1
	}
	// nextPhase flushes the kernel table (its DESTROY events carry counters already
	// accounted: the interval after must be empty) so that the next phase's kernel totals
	// hold only its own flows.
	nextPhase := func() {
		t.Helper()
		sh(t, l.ip, "netns", "exec", l.b, l.ct, "-F")
		if rows := l.flush(); len(rows) != 0 {
			t.Fatalf("after the kernel table was flushed, rows = %v, want none", rows)
		}
	}

	// Phase 1: only 9000 by number.
	connect("10.32.7.2:9000", 2)
	connect("10.32.7.2:9002", 2)
	want, _ := l.kernelTotals(saarGroups, only9000)
	compare(t, sum(l.flush()), want)
	nextPhase()

	// Phase 2: the file now lists 9002 too.
	writeAtomic(t, ports, "tcp:9000\ntcp:9002\n")
	waitReload(t, l.agent, "ok", 1)
	connect("10.32.7.2:9000", 1)
	connect("10.32.7.2:9002", 2)
	want, _ = l.kernelTotals(saarGroups, allPorts)
	got := sum(l.flush())
	compare(t, got, want)
	for k := range got {
		if k.Port == -1 {
			t.Errorf("after the reload, a row for other ports: %+v", k)
		}
	}
	nextPhase()

	// Phase 3: a malformed file is refused; 9002 stays accounted by number.
	writeAtomic(t, ports, "tcp:9000\ntcp:nine-thousand\n")
	waitReload(t, l.agent, "error", 1)
	connect("10.32.7.2:9002", 1)
	want, _ = l.kernelTotals(saarGroups, allPorts)
	compare(t, sum(l.flush()), want)
	if ok := testutil.ToFloat64(l.agent.metrics.portReloads.WithLabelValues("ok")); ok != 1 {
		t.Errorf("ok reloads = %v, want 1", ok)
	}
}
