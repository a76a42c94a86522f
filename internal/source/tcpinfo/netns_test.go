package tcpinfo

import (
	"fmt"
	"os"
	"os/exec"
	"sync/atomic"
	"testing"

	"github.com/netledger/netledger/internal/testenv"
)

var nsCounter atomic.Int32

// newNetNS creates a named network namespace with lo up, deleted in t.Cleanup.
func newNetNS(t testing.TB) string {
	t.Helper()
	testenv.RequireRoot(t)
	ip := testenv.Command(t, "ip")
	name := fmt.Sprintf("nltcpi%d-%d", os.Getpid(), nsCounter.Add(1))
	if out, err := exec.Command(ip, "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command(ip, "netns", "del", name).Run() })
	run(t, ip, "-n", name, "link", "set", "lo", "up")
	return name
}

// run runs a command and fails the test on error.
func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v: %s", name, args, err, out)
	}
	return string(out)
}

// inNetNS runs fn on a thread switched into the named namespace: sockets fn creates belong
// to it for their whole life.
func inNetNS(t testing.TB, name string, fn func()) {
	t.Helper()
	testenv.InNetNS(t, name, func() error { fn(); return nil })
}
