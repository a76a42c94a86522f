// Package testenv lets tests find the shared real-world fixtures and the real components they
// talk to (bgpdump, BIRD, nginx, PostgreSQL, conntrack…). A test whose component is absent skips
// on a developer's machine and fails when CI=true, so CI never passes by skipping.
package testenv

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// CI reports whether the tests run in CI (CI=true), where nothing may be skipped for absence.
func CI() bool {
	v := os.Getenv("CI")
	return v == "true" || v == "1"
}

// Absent skips the test with reason, or fails it in CI.
func Absent(t testing.TB, format string, args ...any) {
	t.Helper()
	if CI() {
		t.Fatalf("required in CI: "+format, args...)
	}
	t.Skipf("skipped (absent here): "+format, args...)
}

// Root returns the repository root (the directory holding go.mod).
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// TestdataDir returns the shared fixtures directory: $NETLEDGER_TESTDATA, else
// ../shared/testdata relative to the repository root.
func TestdataDir() string {
	if d := os.Getenv("NETLEDGER_TESTDATA"); d != "" {
		return d
	}
	return filepath.Join(Root(), "..", "shared", "testdata")
}

// Testdata returns the path of a shared fixture (relative to the testdata directory), skipping
// the test (failing in CI) when it is absent.
func Testdata(t testing.TB, rel string) string {
	t.Helper()
	p := filepath.Join(TestdataDir(), rel)
	if _, err := os.Stat(p); err != nil {
		Absent(t, "fixture %s: %v (set NETLEDGER_TESTDATA)", rel, err)
	}
	return p
}

// Command returns the path of an executable, skipping (failing in CI) when it is not installed.
func Command(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Absent(t, "command %s not installed (scripts/test installs it)", name)
	}
	return p
}

// Root privileges are needed for network namespaces, netlink and conntrack tests.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Absent(t, "needs root")
	}
}

// TCP skips (fails in CI) unless something accepts TCP connections at addr.
func TCP(t testing.TB, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		Absent(t, "no server at %s: %v", addr, err)
		return
	}
	c.Close()
}
