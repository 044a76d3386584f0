package rotation

// Takeover between replicas: two engines on one store stand for two
// replicas (the leader resumes every open rotation, including one another
// replica is still driving), and a scheduler pass that works from a due
// list read before a rotation finished.

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyhold/keyhold/internal/secrets"
)

// idle waits until the engine drives nothing.
func idle(t *testing.T, e *Engine) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		e.mu.Lock()
		n := len(e.running)
		e.mu.Unlock()
		if n == 0 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("the engine's drivers did not stop")
}

// TestTwoDriversOneEnd: a rotation started on one replica and resumed by
// the leader meanwhile is driven by both; it must still end once (one
// OnFinish, which the server turns into the audit record of its end).
func TestTwoDriversOneEnd(t *testing.T) {
	var mu sync.Mutex
	ends := map[string]int{}
	onFinish := func(r *Rotation) {
		mu.Lock()
		defer mu.Unlock()
		ends[r.ID]++
	}
	rg := newRig(t)
	rg.cfg.OnFinish = onFinish
	rg.cfg.ApplyTimeout = time.Hour
	rg.eng.Close()
	rg.start() // the replica that takes the API call
	leader := New(rg.cfg)
	t.Cleanup(leader.Close)

	rg.fleet.addHost(host1, "alice", oldPW).mode = agentSilent
	rg.createPassword(secret, host1, "alice", oldPW)
	if _, err := rg.sec.RotateSecret(context.Background(), acct, secret, "v2"); err != nil {
		t.Fatal(err)
	}
	id := rg.only(secret).ID
	waitSent(t, rg, applyID(&Rotation{ID: id}))
	if n, err := leader.Resume(context.Background()); err != nil || n != 1 {
		t.Fatalf("the leader resumed %d rotations: %v", n, err)
	}
	rg.fleet.setMode(host1, agentOK)
	if r := rg.wait(id, secret, host1); r.State != StateSucceeded {
		t.Fatalf("state %s", r.State)
	}
	idle(t, rg.eng)
	idle(t, leader)
	mu.Lock()
	defer mu.Unlock()
	if ends[id] != 1 {
		t.Fatalf("the rotation's end was reported %d times, want 1", ends[id])
	}
}

// staleDue answers DueForRotation with a list read earlier.
type staleDue struct {
	Secrets
	due []secrets.Due
}

func (s staleDue) DueForRotation(context.Context, time.Time) ([]secrets.Due, error) {
	return s.due, nil
}

// TestStaleDueListDoesNotRotateTwice: a scheduler pass whose due list was
// read while the slot's rotation was still open (it finished before the
// pass reached the secret) must not start a second rotation for the slot.
func TestStaleDueListDoesNotRotateTwice(t *testing.T) {
	var skew atomic.Int64
	clock := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	rg := newRigAt(t, clock)
	rg.fleet.addHost(host1, "alice", oldPW).mode = agentSilent
	v, _ := json.Marshal(ecsValue{UserName: "alice", Password: oldPW})
	cfg, _ := json.Marshal(map[string]any{"SecretSubType": "Password", "InstanceId": host1})
	_, err := rg.sec.CreateSecret(context.Background(), acct, secrets.CreateInput{
		Name: secret, VersionID: "v1", Data: string(v), Type: secrets.TypeECS, ExtendedConfig: string(cfg),
		EnableAutomaticRotation: true, RotationInterval: "1h"})
	must(t, err)
	skew.Store(int64(90 * time.Minute)) // the slot is due
	rg.eng.Pass(context.Background())
	first := rg.only(secret)
	waitSent(t, rg, applyID(first))
	stale, err := rg.sec.DueForRotation(context.Background(), clock())
	if err != nil || len(stale) != 1 {
		t.Fatalf("due while open: %d, %v", len(stale), err)
	}
	rg.fleet.setMode(host1, agentOK)
	if r := rg.wait(first.ID, secret, host1); r.State != StateSucceeded {
		t.Fatalf("state %s", r.State)
	}

	// Later than the first pass (its VersionId, auto-<second>, would make
	// a repeat an idempotent no-op), before the next slot.
	skew.Add(int64(10 * time.Second))
	late := New(Config{Store: rg.st, Secrets: staleDue{rg.sec, stale}, Fleet: rg.fleet, Now: clock})
	t.Cleanup(late.Close)
	if err := late.runDue(context.Background()); err != nil {
		t.Fatal(err)
	}
	if rs, n, _ := rg.eng.List(context.Background(), acct, ListFilter{SecretName: secret}, 1, 10); n != 1 {
		t.Fatalf("%d rotations for one slot: %v then %v", n, rs[len(rs)-1].ID, rs[0].ID)
	}
	// The next slot is still taken when it comes.
	skew.Store(int64(3 * time.Hour))
	rg.eng.Pass(context.Background())
	if _, n, _ := rg.eng.List(context.Background(), acct, ListFilter{SecretName: secret}, 1, 10); n != 2 {
		t.Fatalf("%d rotations after the next slot, want 2", n)
	}
	idle(t, rg.eng)
}

// noopRotate answers RotateSecret with success and starts nothing, as a
// repeat of an already open rotation of the same VersionId does.
type noopRotate struct {
	Secrets
	calls *atomic.Int32
}

func (n noopRotate) RotateSecret(context.Context, string, string, string) (*secrets.Secret, error) {
	n.calls.Add(1)
	return nil, nil
}

// TestSchedulerSlotWithoutDriver: a scheduled RotateSecret that starts no
// driver here gives its slot back; a kept one would stop the scheduler for
// good once Concurrency slots leaked.
func TestSchedulerSlotWithoutDriver(t *testing.T) {
	var skew atomic.Int64
	clock := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	rg := newRigAt(t, clock)
	rg.fleet.addHost(host1, "alice", oldPW)
	v, _ := json.Marshal(ecsValue{UserName: "alice", Password: oldPW})
	cfg, _ := json.Marshal(map[string]any{"SecretSubType": "Password", "InstanceId": host1})
	_, err := rg.sec.CreateSecret(context.Background(), acct, secrets.CreateInput{
		Name: secret, VersionID: "v1", Data: string(v), Type: secrets.TypeECS, ExtendedConfig: string(cfg),
		EnableAutomaticRotation: true, RotationInterval: "1h"})
	must(t, err)
	skew.Store(int64(90 * time.Minute))
	var calls atomic.Int32
	e := New(Config{Store: rg.st, Secrets: noopRotate{rg.sec, &calls}, Fleet: rg.fleet, Now: clock, Concurrency: 1})
	t.Cleanup(e.Close)
	for range 3 {
		must(t, e.runDue(context.Background()))
	}
	e.mu.Lock()
	held := e.scheduled
	e.mu.Unlock()
	if calls.Load() != 3 || held != 0 {
		t.Fatalf("RotateSecret called %d times of 3, %d scheduler slots held", calls.Load(), held)
	}
}
