package testenv

import (
	"testing"
	"time"
)

// WaitTimeout is how long WaitFor polls before failing: a ceiling against a hang, not a speed
// limit (under -race on a loaded CI machine a real component can take seconds), so it costs
// nothing when the condition holds early.
const WaitTimeout = 60 * time.Second

// WaitFor polls cond every 5 ms until it holds, failing the test with what after WaitTimeout.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(WaitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
