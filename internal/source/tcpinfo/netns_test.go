package tcpinfo

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"

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

// newNetNSOwnTable creates a named network namespace, deleted in t.Cleanup, with its own TCP
// established hash table of the given number of buckets (net.ipv4.tcp_child_ehash_entries,
// set in a throwaway parent namespace) instead of the host's shared one.
func newNetNSOwnTable(t testing.TB, buckets int) string {
	t.Helper()
	parent := newNetNS(t)
	ip := testenv.Command(t, "ip")
	name := fmt.Sprintf("nltcpi%d-%d", os.Getpid(), nsCounter.Add(1))
	path := filepath.Join("/run/netns", name)
	testenv.InNetNS(t, parent, func() error {
		err := os.WriteFile("/proc/sys/net/ipv4/tcp_child_ehash_entries", []byte(fmt.Sprint(buckets)), 0)
		if err != nil {
			return err
		}
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return err
		}
		f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
		if err != nil {
			return err
		}
		f.Close()
		return unix.Mount("/proc/thread-self/ns/net", path, "none", unix.MS_BIND, "")
	})
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
