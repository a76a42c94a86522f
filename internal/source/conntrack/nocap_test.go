package conntrack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netledger/netledger/internal/testenv"
)

// TestNoCapability runs the agent as user nobody (no CAP_NET_ADMIN): Run fails at once with
// an error that says which capability is missing and how to grant it, and neither hangs nor
// panics; entering another namespace fails clearly too.
func TestNoCapability(t *testing.T) {
	testenv.RequireRoot(t)
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	os.Chmod(filepath.Dir(dir), 0o755) // t.TempDir's parent is private
	bin := filepath.Join(dir, "conntrack.test")
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
	cmd.Env = append(os.Environ(), "NETLEDGER_CONNTRACK_NOCAP=1")
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper as nobody: %v\n%s", err, b)
	}
	for _, want := range []string{"run error: cannot", "CAP_NET_ADMIN", "setcap cap_net_admin+ep",
		"netns error: cannot open network namespace (entering one needs root or CAP_SYS_ADMIN)"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("helper output lacks %q:\n%s", want, b)
		}
	}
}

// TestNoCapabilityHelper is TestNoCapability's unprivileged side.
func TestNoCapabilityHelper(t *testing.T) {
	if os.Getenv("NETLEDGER_CONNTRACK_NOCAP") == "" {
		t.Skip("helper of TestNoCapability")
	}
	cfg := DefaultConfig()
	a, err := New(cfg, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	err = a.Run(context.Background())
	if !errors.Is(err, ErrPermission) {
		t.Fatalf("Run() as nobody = %v, want ErrPermission", err)
	}
	fmt.Println("run error:", err)
	cfg.NetNS = "/proc/1/ns/net"
	if a, err = New(cfg, Deps{}); err != nil {
		t.Fatal(err)
	}
	if err = a.Run(context.Background()); err == nil {
		t.Fatal("Run() in PID 1's namespace as nobody: no error")
	}
	fmt.Println("netns error:", err)
}
