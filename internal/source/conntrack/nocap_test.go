package conntrack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/netledger/netledger/internal/testenv"
)

// TestNoCapability runs the agent as user nobody (no CAP_NET_ADMIN): Run fails at once with
// an error that says which capability is missing and how to grant it, and neither hangs nor
// panics; entering another namespace fails clearly too.
func TestNoCapability(t *testing.T) {
	b, err := testenv.RunAsNobody(t, "^TestNoCapabilityHelper$", "NETLEDGER_CONNTRACK_NOCAP=1")
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

// TestExplain maps the kernel's answers to what the host lacks.
func TestExplain(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want error
	}{
		{unix.EPERM, ErrPermission},
		{unix.EACCES, ErrPermission},
		{unix.EPROTONOSUPPORT, ErrNoKernel},
		{unix.ENOENT, ErrNoKernel},
		{unix.EOPNOTSUPP, ErrNoKernel},
	} {
		err := explain("subscribe to conntrack events", tc.err)
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), "cannot subscribe to conntrack events") {
			t.Errorf("explain(%v) = %v, want %v", tc.err, err, tc.want)
		}
	}
	if err := explain("dump", unix.EINVAL); errors.Is(err, ErrPermission) || errors.Is(err, ErrNoKernel) || !errors.Is(err, unix.EINVAL) {
		t.Errorf("explain(EINVAL) = %v", err)
	}
	if _, err := enableSysctl("/proc/sys/net/netfilter/no_such_sysctl"); !errors.Is(err, ErrNoKernel) {
		t.Errorf("enableSysctl(missing) = %v, want ErrNoKernel", err)
	}
}
