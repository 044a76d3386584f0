package bench

import (
	"context"
	"testing"
	"time"
)

// TestRotationFaultsNoLockout runs a small fault-injected rotation bench:
// every fault kind, server restarts included, and no lockout.
func TestRotationFaultsNoLockout(t *testing.T) {
	rep, err := RunRotation(context.Background(), RotationConfig{Agents: 2 * len(agentFaults), Faults: true, ApplyTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Lockouts != 0 || rep.Unfinished != 0 {
		t.Fatalf("lockouts %d unfinished %d: %v", rep.Lockouts, rep.Unfinished, rep.LockoutDetails)
	}
	if rep.ServerRestarts == 0 || rep.States["rolled-back"] == 0 || rep.States["succeeded"] == 0 || rep.States["failed"] == 0 {
		t.Fatalf("not every path ran: restarts %d, states %v", rep.ServerRestarts, rep.States)
	}
}

// TestRotationBenchSeesLockouts: an agent that applies and then claims it
// failed (without restoring) leaves its host on a password Keyhold
// dropped; the bench must count that as a lockout.
func TestRotationBenchSeesLockouts(t *testing.T) {
	rep, err := RunRotation(context.Background(), RotationConfig{Agents: 4, Faults: true, faults: []string{faultNone, faultLie}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Lockouts != 2 {
		t.Fatalf("lockouts %d, want 2 (the lying agents): %v", rep.Lockouts, rep.LockoutDetails)
	}
}
