package hugepage

import (
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestAnonRanges(t *testing.T) {
	maps := `00400000-004ab000 r-xp 00000000 fe:00 9980413                            /tmp/exe
0058e000-00599000 rw-p 0018e000 fe:00 9980413                            /tmp/exe
00599000-005cf000 rw-p 00000000 00:00 0 
01000000-01200000 rw-p 00000000 00:00 0                                  [heap]
e16c8000000-e16ca400000 ---p 00000000 00:00 0 
e16ca400000-e16d7000000 rw-p 00000000 00:00 0 
7f0000000000-7f0000400000 rw-p 00000000 00:00 0                          [anon: Go: heap]
7f9bd3e2b000-7f9bd3e8b000 rw-s 00000000 00:01 1234                       /dev/zero (deleted)
7f9bd3e8b000-7f9bd3e8f000 r--p 00000000 00:00 0                          [vvar]
7ffefbefb000-7ffefbf1c000 rw-p 00000000 00:00 0                          [stack]
garbage
`
	got := anonRanges([]byte(maps))
	want := []span{
		{0x00599000, 0x005cf000},
		{0x01000000, 0x01200000},
		{0xe16ca400000, 0xe16d7000000},
		{0x7f0000000000, 0x7f0000400000},
	}
	if len(got) != len(want) {
		t.Fatalf("got %x, want %x", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("range %d: got %x, want %x", i, got[i], want[i])
		}
	}
}

func TestSmapsField(t *testing.T) {
	rollup := "Rss:              204800 kB\nAnonymous:        204000 kB\nAnonHugePages:    198656 kB\nShmemHugePages:        0 kB\n"
	for _, tc := range []struct {
		key  string
		want int64
	}{
		{"AnonHugePages:", 198656 << 10},
		{"Rss:", 204800 << 10},
		{"Swap:", -1},
	} {
		if got := smapsField([]byte(rollup), tc.key); got != tc.want {
			t.Errorf("%s: got %d, want %d", tc.key, got, tc.want)
		}
	}
}

func TestAlignUp(t *testing.T) {
	for _, tc := range []struct{ in, want uintptr }{
		{0, 0}, {1, ChunkSize}, {ChunkSize, ChunkSize}, {ChunkSize + 4096, 2 * ChunkSize},
	} {
		if got := alignUp(tc.in); got != tc.want {
			t.Errorf("alignUp(%#x) = %#x, want %#x", tc.in, got, tc.want)
		}
	}
}

// requireTHP skips when the system has no transparent huge pages; under CI=true a kernel that
// has them must collapse.
func requireTHP(t *testing.T) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("huge page collapse is Linux only")
	}
	switch Mode() {
	case "":
		t.Skip("no transparent huge pages in this kernel")
	case "never":
		t.Skip("transparent huge pages are disabled (never)")
	}
}

// skipOrFail skips locally and fails under CI=true.
func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// TestCollapseHeap fills 64 MiB of Go heap and checks that Collapse puts it on huge pages.
func TestCollapseHeap(t *testing.T) {
	requireTHP(t)
	const size = 64 << 20
	buf := make([]byte, size)
	for i := range buf {
		buf[i] = byte(i)
	}
	r, err := Collapse(-1)
	t.Log(r)
	if err != nil {
		t.Skipf("the kernel cannot collapse: %v", err)
	}
	if r.HugeAfter < 0 {
		t.Skip("no smaps_rollup")
	}
	// 64 MiB contiguous holds at least 31 aligned 2 MiB chunks, all resident.
	if r.HugeAfter < 31*ChunkSize {
		skipOrFail(t, "anonymous huge pages after collapse: %d MiB, want ≥ 62 MiB (%v)", r.HugeAfter>>20, r)
	}
	if r.Collapsed < 31 {
		t.Errorf("collapsed %d chunks, want ≥ 31", r.Collapsed)
	}
	for i := range buf { // the contents survive
		if buf[i] != byte(i) {
			t.Fatalf("byte %d changed", i)
		}
	}
	runtime.KeepAlive(buf)
}

// TestCollapseSkipsSparse checks that a mapping whose pages were never touched is not
// collapsed (that would make it resident).
func TestCollapseSkipsSparse(t *testing.T) {
	requireTHP(t)
	const size = 16 << 20
	mem, err := mmapAnon(size)
	if err != nil {
		t.Fatal(err)
	}
	defer munmap(mem)
	base := alignUp(addrOf(mem))
	// Touch one page per chunk only.
	for c := base; c+ChunkSize <= addrOf(mem)+size; c += ChunkSize {
		mem[c-addrOf(mem)] = 1
	}
	r, err := Collapse(DefaultMaxEmpty)
	if err != nil {
		t.Skipf("the kernel cannot collapse: %v", err)
	}
	vec := make([]byte, ChunkSize/pageSize)
	if err := mincore(base, vec); err != nil {
		t.Fatal(err)
	}
	resident := 0
	for _, v := range vec {
		resident += int(v & 1)
	}
	if resident != 1 {
		t.Errorf("%d pages of a sparse chunk resident after collapse, want 1 (%v)", resident, r)
	}
	if r.Sparse < 6 {
		t.Errorf("%d sparse chunks, want ≥ 6", r.Sparse)
	}
}

func TestCollapserDisabled(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Enable = false
	c, err := New(cfg, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	c.Request()
	if r := c.CollapseNow(); r.Chunks != 0 {
		t.Errorf("disabled collapser examined %d chunks", r.Chunks)
	}
	if got := testutil.ToFloat64(c.runs); got != 0 {
		t.Errorf("runs = %v, want 0", got)
	}
	var nilC *Collapser
	nilC.Request()
	nilC.CollapseNow()
}

// TestCollapserRateLimit checks that the first request runs at once, in the background, and
// that a request within MinInterval of it waits.
func TestCollapserRateLimit(t *testing.T) {
	requireTHP(t)
	reg := prometheus.NewPedanticRegistry()
	c, err := New(Config{Enable: true, MinInterval: time.Hour, MaxEmpty: DefaultMaxEmpty}, Deps{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	ran := make(chan Result, 4)
	c.done = func(r Result) { ran <- r }
	c.Request()
	c.Request() // coalesces with the first
	select {
	case r := <-ran:
		if r.Chunks == 0 {
			t.Errorf("collapse examined no chunk: %v", r)
		}
	case <-time.After(time.Minute):
		t.Fatal("no collapse after a minute")
	}
	for c.isPending() {
		time.Sleep(time.Millisecond)
	}
	c.Request() // within MinInterval: put off
	if !c.isPending() {
		t.Error("second request not pending")
	}
	select {
	case r := <-ran:
		t.Errorf("second collapse ran within MinInterval: %v", r)
	case <-time.After(50 * time.Millisecond):
	}
	if got := testutil.ToFloat64(c.runs); got != 1 {
		t.Errorf("runs = %v, want 1", got)
	}
	if n, err := testutil.GatherAndCount(reg, "netledger_hugepage_chunks_total"); err != nil || n != 3 {
		t.Errorf("chunks_total series: %d, %v; want 3", n, err)
	}
}

func (c *Collapser) isPending() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pending
}

// TestRequestBGP: by default a Collapser runs after MRT loads (Request) and not after a BGP
// session's bulk changes (RequestBGP) unless BGP is set.
func TestRequestBGP(t *testing.T) {
	def := DefaultConfig()
	if !def.Enable || def.BGP {
		t.Fatalf("DefaultConfig() = %+v, want Enable and not BGP", def)
	}
	cfg := def
	cfg.MinInterval = time.Hour
	c, err := New(cfg, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	c.last = time.Now() // any request is put off by an hour: nothing runs in this test
	c.RequestBGP()
	if c.isPending() {
		t.Error("RequestBGP scheduled a collapse with BGP off")
	}
	c.Request()
	if !c.isPending() {
		t.Error("Request scheduled no collapse with Enable on")
	}
	cfg.BGP = true
	c, err = New(cfg, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	c.last = time.Now()
	c.RequestBGP()
	if !c.isPending() {
		t.Error("RequestBGP scheduled no collapse with BGP on")
	}
	var nilC *Collapser
	nilC.RequestBGP()
}
