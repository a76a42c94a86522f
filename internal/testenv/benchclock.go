package testenv

import (
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// BenchClock measures a benchmark loop on a shared machine, beside the wall time per op:
// cpu-ns/op, the CPU time of the benchmark's OS thread per op (waiting for a CPU does not
// count), and best-ns/op, the wall time per op of the fastest batch of ops (what an op costs
// while nothing else runs on the core). Start it right before the loop, call Tick once per
// op, and Report after the loop. It locks the goroutine to its OS thread until Report.
type BenchClock struct {
	batch, i int
	best     time.Duration
	last     time.Time
	cpu0     int64
}

// StartBenchClock starts a clock whose best-ns/op is taken over batches of batch ops.
func StartBenchClock(batch int) *BenchClock {
	runtime.LockOSThread()
	return &BenchClock{batch: batch, best: time.Duration(math.MaxInt64), cpu0: ThreadCPU(), last: time.Now()}
}

// Tick counts one op.
func (c *BenchClock) Tick() {
	if c.i++; c.i%c.batch == 0 {
		now := time.Now()
		c.best = min(c.best, now.Sub(c.last))
		c.last = now
	}
}

// Report reports cpu-ns/op, and best-ns/op when a whole batch ran, and unlocks the thread.
func (c *BenchClock) Report(b *testing.B) {
	b.ReportMetric(float64(ThreadCPU()-c.cpu0)/float64(b.N), "cpu-ns/op")
	if c.i >= c.batch {
		b.ReportMetric(float64(c.best.Nanoseconds())/float64(c.batch), "best-ns/op")
	}
	runtime.UnlockOSThread()
}

// ThreadCPU returns the CPU time of the calling OS thread in nanoseconds.
func ThreadCPU() int64 {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// LoadAvg returns the machine's one-minute load average (0 when unknown).
func LoadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}
