package tcpinfo

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netledger/netledger/internal/record"
	"github.com/netledger/netledger/internal/testenv"
)

// TestNoCapability runs the source as user nobody (no capabilities). Linux lets it subscribe to
// destroy notifications, but not force its receive buffer past net.core.rmem_max (it says so),
// nor enter another namespace (a clear error); dump_only mode works too.
func TestNoCapability(t *testing.T) {
	testenv.RequireRoot(t)
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	os.Chmod(filepath.Dir(dir), 0o755) // t.TempDir's parent is private
	bin := filepath.Join(dir, "tcpinfo.test")
	in, err := os.Open(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(out, in)
	in.Close()
	out.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-test.run=^TestNoCapabilityHelper$", "-test.v")
	cmd.Env = append(os.Environ(), "NETLEDGER_TCPINFO_NOCAP=1")
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper as nobody: %v\n%s", err, b)
	}
	for _, want := range []string{"capped by net.core.rmem_max", "netns error: cannot open network namespace",
		"CAP_SYS_ADMIN", "dumps ok"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("helper output lacks %q:\n%s", want, b)
		}
	}
}

// TestNoCapabilityHelper is TestNoCapability's unprivileged side.
func TestNoCapabilityHelper(t *testing.T) {
	if os.Getenv("NETLEDGER_TCPINFO_NOCAP") == "" {
		t.Skip("helper of TestNoCapability")
	}
	sink := func([]record.Record) error { return nil }
	cfg := DefaultConfig()
	cfg.ReceiveBuffer = 1 << 30
	src, err := New(cfg, Deps{Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := src.Run(ctx); err != nil {
		t.Fatalf("Run() = %v", err)
	}
	cfg.NetNS = "/proc/1/ns/net"
	if src, err = New(cfg, Deps{Sink: sink}); err != nil {
		t.Fatal(err)
	}
	err = src.Run(context.Background())
	if err == nil {
		t.Fatal("Run() in PID 1's namespace as nobody: no error")
	}
	fmt.Println("netns error:", err)
	src, err = New(Config{Interval: 100 * time.Millisecond, DumpOnly: true}, Deps{Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 350*time.Millisecond)
	defer cancel()
	if err := src.Run(ctx); err != nil {
		t.Fatalf("dump-only Run() = %v", err)
	}
	if st := src.Stats(); st.Dumps < 2 || st.DumpErrors != 0 {
		t.Fatalf("dump-only stats %+v", st)
	}
	fmt.Println("dumps ok")
}
