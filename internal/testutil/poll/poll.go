// Package poll waits in tests for a condition on real components. The
// waits are generous on purpose: a 2-core CI machine is slow, and speed is
// measured by the benchmarks, never asserted by a test.
package poll

import (
	"testing"
	"time"
)

// Generous is how long Until waits.
const Generous = 60 * time.Second

// Until polls cond every 100 ms until it holds, failing the test after
// Generous.
func Until(t testing.TB, what string, cond func() bool) {
	t.Helper()
	Within(t, what, Generous, cond)
}

// Within is Until with another limit.
func Within(t testing.TB, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
