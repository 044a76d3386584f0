package rotation

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/keyhold/keyhold/internal/errs"
	"github.com/keyhold/keyhold/internal/secrets"
	"github.com/keyhold/keyhold/internal/store"
)

const (
	host1  = "i-aaaaaaaaaaaaaaaaaaaa"
	secret = "acs/ecs/web-1/alice"
	oldPW  = "Old-passw0rd!"
)

func stepState(r *Rotation, name string) string {
	for _, s := range r.Steps {
		if s.Name == name {
			return s.State
		}
	}
	return ""
}

// TestOutcomes runs a password rotation against each agent behaviour and
// checks where it ends: which value is current, what the host accepts,
// and that no pending value is left.
func TestOutcomes(t *testing.T) {
	for _, tc := range []struct {
		mode       string
		wantState  string
		wantNew    bool   // the new password is current and logs in
		wantError  string // in the rotation's error
		wantRestor bool   // a restore was sent
	}{
		{mode: agentOK, wantState: StateSucceeded, wantNew: true},
		{mode: agentFail, wantState: StateFailed, wantError: "ssh login with the new credential was refused", wantRestor: true},
		{mode: agentFailStuck, wantState: StateFailed, wantError: "restoring the old password also failed", wantRestor: true},
		{mode: agentLostReport, wantState: StateRolledBack, wantError: "outcome of apply was unknown", wantRestor: true},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			rg := newRig(t)
			rg.fleet.addHost(host1, "alice", oldPW).mode = tc.mode
			rg.createPassword(secret, host1, "alice", oldPW)
			if _, err := rg.sec.RotateSecret(context.Background(), acct, secret, "v2"); err != nil {
				t.Fatal(err)
			}
			r := rg.wait(rg.only(secret).ID, secret, host1)
			if r.State != tc.wantState {
				t.Fatalf("state %s, want %s (steps %+v)", r.State, tc.wantState, r.Steps)
			}
			cur, _ := rg.value(secret, secrets.StageCurrent)
			if _, pending := rg.value(secret, secrets.StagePending); pending {
				t.Error("ACSPending left behind")
			}
			if got := rg.hostPassword(host1); got != cur.Password {
				t.Error("the host does not accept ACSCurrent")
			}
			if tc.wantNew {
				if cur.Password == oldPW || len(cur.Password) != 32 {
					t.Errorf("ACSCurrent is not a new 32-character password")
				}
				prev, _ := rg.value(secret, secrets.StagePrevious)
				if prev.Password != oldPW {
					t.Error("ACSPrevious is not the old password")
				}
				if r.Check != "ssh-login" || stepState(r, StepVerify) != StepOK || stepState(r, StepPromote) != StepOK {
					t.Errorf("check %q steps %+v", r.Check, r.Steps)
				}
			} else if cur.Password != oldPW {
				t.Error("ACSCurrent changed although the rotation did not succeed")
			}
			if !strings.Contains(r.Error, tc.wantError) {
				t.Errorf("error %q, want %q", r.Error, tc.wantError)
			}
			if strings.Contains(r.Error, cur.Password) {
				t.Error("the error names a password")
			}
			if got := stepState(r, StepRestore) == StepOK; got != tc.wantRestor {
				t.Errorf("restore step ok = %v, want %v", got, tc.wantRestor)
			}
			if o, _ := rg.eng.Open(context.Background(), acct, secret); o != nil {
				t.Error("the secret's rotation slot is still taken")
			}
		})
	}
}

// TestSilentAgentRollsBack: the agent is unreachable when apply is sent.
// The rotation rolls back, keeps the pending value meanwhile, ignores the
// late "applied" report, and converges on the old value once the restore
// is confirmed.
func TestSilentAgentRollsBack(t *testing.T) {
	rg := newRig(t)
	rg.fleet.addHost(host1, "alice", oldPW).mode = agentSilent
	rg.createPassword(secret, host1, "alice", oldPW)
	if _, err := rg.sec.RotateSecret(context.Background(), acct, secret, "v2"); err != nil {
		t.Fatal(err)
	}
	id := rg.only(secret).ID
	waitState(t, rg, id, StateRollingBack)
	if _, pending := rg.value(secret, secrets.StagePending); !pending {
		t.Fatal("the pending value was dropped while the outcome is unknown")
	}
	// A second rotation is refused while this one is open.
	if _, err := rg.sec.RotateSecret(context.Background(), acct, secret, "v3"); !errs.Is(err, errs.KindInUse) {
		t.Fatalf("second rotation: %v, want KindInUse", err)
	}
	rg.fleet.setMode(host1, agentOK) // comes back: runs apply, then restore(s)
	r := rg.wait(id, secret, host1)
	if r.State != StateRolledBack {
		t.Fatalf("state %s", r.State)
	}
	// The apply did run and report ok; it was ignored.
	if res, _ := rg.fleet.Result(context.Background(), acct, host1, applyID(r)); res == nil || res.Status != StatusOK {
		t.Fatal("the late apply result should have been reported")
	}
	cur, _ := rg.value(secret, secrets.StageCurrent)
	if cur.Password != oldPW || rg.hostPassword(host1) != oldPW {
		t.Fatal("did not converge on the old password")
	}
}

func waitState(t *testing.T, rg *rig, id, state string) *Rotation {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		r, err := rg.eng.Get(context.Background(), acct, id)
		if err != nil {
			t.Fatal(err)
		}
		if r.State == state {
			return r
		}
		if Terminal(r.State) {
			t.Fatalf("reached %s, waiting for %s", r.State, state)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("state %s not reached", state)
	return nil
}

// TestRestartResumes stops the engine (a server restart) at each waiting
// point and checks that a new engine on the same storage converges.
func TestRestartResumes(t *testing.T) {
	t.Run("applied while the server was down", func(t *testing.T) {
		rg := newRig(t)
		rg.cfg.ApplyTimeout = time.Hour
		rg.eng.Close()
		rg.start()
		rg.fleet.addHost(host1, "alice", oldPW).mode = agentSilent
		rg.createPassword(secret, host1, "alice", oldPW)
		if _, err := rg.sec.RotateSecret(context.Background(), acct, secret, "v2"); err != nil {
			t.Fatal(err)
		}
		id := rg.only(secret).ID
		waitSent(t, rg, applyID(&Rotation{ID: id}))
		rg.eng.Close()
		rg.fleet.setMode(host1, agentOK) // applied and reported with no server
		rg.checkInvariant(secret, host1)
		rg.start()
		if n, err := rg.eng.Resume(context.Background()); err != nil || n != 1 {
			t.Fatalf("resume: %d, %v", n, err)
		}
		if r := rg.wait(id, secret, host1); r.State != StateSucceeded {
			t.Fatalf("state %s", r.State)
		}
	})
	t.Run("rolling back across a restart", func(t *testing.T) {
		rg := newRig(t)
		rg.fleet.addHost(host1, "alice", oldPW).mode = agentSilent
		rg.createPassword(secret, host1, "alice", oldPW)
		if _, err := rg.sec.RotateSecret(context.Background(), acct, secret, "v2"); err != nil {
			t.Fatal(err)
		}
		id := rg.only(secret).ID
		waitState(t, rg, id, StateRollingBack)
		waitSent(t, rg, id+"-restore-1")
		rg.eng.Close()
		rg.fleet.setMode(host1, agentLostReport) // apply lands, restore too
		rg.start()
		rg.eng.Resume(context.Background())
		if r := rg.wait(id, secret, host1); r.State != StateRolledBack {
			t.Fatalf("state %s", r.State)
		}
	})
	t.Run("interrupted while storing", func(t *testing.T) {
		for _, stored := range []bool{false, true} {
			rg := newRig(t)
			rg.fleet.addHost(host1, "alice", oldPW)
			rg.createPassword(secret, host1, "alice", oldPW)
			old := time.Now().Add(-time.Hour)
			r := &Rotation{ID: "rot-x", Account: acct, SecretName: secret, SecretType: secrets.TypeECS,
				SubType: SubTypePassword, HostID: host1, User: "alice", VersionID: "v2",
				State: StateStoring, Created: old, Updated: old, Rev: 1}
			must(t, rg.st.Update(context.Background(), func(tx store.Tx) error {
				tx.Put(tableOpen, store.Key(acct, secret), []byte(r.ID))
				return putRotation(tx, r)
			}))
			if stored {
				v, _ := json.Marshal(ecsValue{UserName: "alice", Password: "N3w-password-from-before-crash"})
				if _, err := rg.sec.AddPendingVersion(context.Background(), acct, secret, "v2", v); err != nil {
					t.Fatal(err)
				}
			}
			rg.eng.Resume(context.Background())
			got := rg.wait(r.ID, secret, host1)
			want := StateFailed
			if stored {
				want = StateSucceeded
			}
			if got.State != want {
				t.Fatalf("stored=%v: state %s, want %s", stored, got.State, want)
			}
		}
	})
	t.Run("crash after promote", func(t *testing.T) {
		rg := newRig(t)
		rg.fleet.addHost(host1, "alice", oldPW)
		rg.createPassword(secret, host1, "alice", oldPW)
		const newPW = "N3w-passw0rd-applied-on-host"
		v, _ := json.Marshal(ecsValue{UserName: "alice", Password: newPW})
		rg.sec.AddPendingVersion(context.Background(), acct, secret, "v2", v)
		rg.fleet.hosts[host1].password = newPW
		must(t, rg.sec.PromoteVersion(context.Background(), acct, secret, "v2"))
		now := time.Now()
		r := &Rotation{ID: "rot-y", Account: acct, SecretName: secret, SecretType: secrets.TypeECS,
			SubType: SubTypePassword, HostID: host1, User: "alice", VersionID: "v2",
			State: StatePromoting, ApplySent: now, Created: now, Updated: now, Rev: 3}
		must(t, rg.st.Update(context.Background(), func(tx store.Tx) error {
			tx.Put(tableOpen, store.Key(acct, secret), []byte(r.ID))
			return putRotation(tx, r)
		}))
		rg.eng.Resume(context.Background())
		if got := rg.wait(r.ID, secret, host1); got.State != StateSucceeded {
			t.Fatalf("state %s", got.State)
		}
		prev, _ := rg.value(secret, secrets.StagePrevious)
		if prev.Password != oldPW {
			t.Fatal("a repeated promote lost ACSPrevious")
		}
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func waitSent(t *testing.T, rg *rig, cmdID string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		rg.fleet.mu.Lock()
		for _, c := range rg.fleet.sent {
			if c.ID == cmdID {
				rg.fleet.mu.Unlock()
				return
			}
		}
		rg.fleet.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("command %s never sent", cmdID)
}

func TestIdempotentAndInUse(t *testing.T) {
	rg := newRig(t)
	rg.fleet.addHost(host1, "alice", oldPW).mode = agentSilent
	rg.createPassword(secret, host1, "alice", oldPW)
	ctx := context.Background()
	must(t, errOnly(rg.sec.RotateSecret(ctx, acct, secret, "v2")))
	must(t, errOnly(rg.sec.RotateSecret(ctx, acct, secret, "v2"))) // repeat: success
	if _, err := rg.sec.RotateSecret(ctx, acct, secret, "v3"); !errs.Is(err, errs.KindInUse) {
		t.Fatalf("concurrent rotation: %v", err)
	}
	rs, total, _ := rg.eng.List(ctx, acct, ListFilter{}, 1, 10)
	if total != 1 || len(rs) != 1 {
		t.Fatalf("%d rotations recorded, want 1", total)
	}
	rg.fleet.setMode(host1, agentOK)
	rg.wait(rs[0].ID, secret, host1)
	// Once done, the same VersionId exists: success without a new rotation.
	must(t, errOnly(rg.sec.RotateSecret(ctx, acct, secret, "v2")))
	if _, total, _ := rg.eng.List(ctx, acct, ListFilter{}, 1, 10); total != 1 {
		t.Fatal("a repeated VersionId started a rotation")
	}
	if rs, _, _ := rg.eng.List(ctx, acct, ListFilter{State: StateFailed}, 1, 10); len(rs) != 0 {
		t.Fatal("State filter")
	}
}

func errOnly(_ any, err error) error { return err }

func TestSSHKeyRotation(t *testing.T) {
	for _, keyType := range []string{"", "RSA2048"} {
		t.Run("keytype="+keyType, func(t *testing.T) {
			rg := newRig(t)
			oldPriv, oldPub, err := NewKeyPair("")
			must(t, err)
			h := rg.fleet.addHost(host1, "alice", "", oldPub)
			cfg := map[string]any{"SecretSubType": "SSHKey", "InstanceId": host1}
			if keyType != "" {
				cfg["KeyType"] = keyType
			}
			cb, _ := json.Marshal(cfg)
			v, _ := json.Marshal(ecsValue{UserName: "alice", PublicKey: oldPub, PrivateKey: oldPriv})
			_, err = rg.sec.CreateSecret(context.Background(), acct, secrets.CreateInput{
				Name: secret, VersionID: "v1", Data: string(v), Type: secrets.TypeECS, ExtendedConfig: string(cb)})
			must(t, err)
			must(t, errOnly(rg.sec.RotateSecret(context.Background(), acct, secret, "v2")))
			r := rg.wait(rg.only(secret).ID, secret, host1)
			if r.State != StateSucceeded || stepState(r, StepCleanup) != StepOK {
				t.Fatalf("state %s steps %+v", r.State, r.Steps)
			}
			cur, _ := rg.value(secret, secrets.StageCurrent)
			key, err := ssh.ParsePrivateKey([]byte(cur.PrivateKey))
			must(t, err)
			wantType := ssh.KeyAlgoED25519
			if keyType != "" {
				wantType = ssh.KeyAlgoRSA
			}
			if key.PublicKey().Type() != wantType {
				t.Fatalf("key type %s", key.PublicKey().Type())
			}
			rg.fleet.mu.Lock()
			defer rg.fleet.mu.Unlock()
			if !h.keys[cur.PublicKey] || h.keys[oldPub] || len(h.keys) != 1 {
				t.Fatalf("authorized keys after rotation: new present %v, old present %v, %d keys", h.keys[cur.PublicKey], h.keys[oldPub], len(h.keys))
			}
		})
	}
}

func TestSuppliedValue(t *testing.T) {
	rg := newRig(t)
	rg.fleet.addHost(host1, "alice", oldPW)
	rg.createPassword(secret, host1, "alice", oldPW)
	ctx := context.Background()
	for _, bad := range []string{
		`{"UserName":"alice"}`,
		`{"UserName":"bob","Password":"x-Passw0rd-long"}`,
		`not json`,
		`{"UserName":"alice","PrivateKey":"-----BEGIN"}`,
	} {
		if _, err := rg.sec.RotateSecretWithValue(ctx, acct, secret, "v2", []byte(bad)); !errs.Is(err, errs.KindInvalidParameter) {
			t.Errorf("supplied %.20q: %v, want InvalidParameter", bad, err)
		}
	}
	const mine = "My-own-Passw0rd-chosen-by-an-operator"
	must(t, errOnly(rg.sec.RotateSecretWithValue(ctx, acct, secret, "v2", []byte(`{"UserName":"alice","Password":"`+mine+`"}`))))
	r := rg.wait(rg.only(secret).ID, secret, host1)
	if r.State != StateSucceeded || !r.Supplied || rg.hostPassword(host1) != mine {
		t.Fatalf("state %s supplied %v", r.State, r.Supplied)
	}
}

func TestBadInput(t *testing.T) {
	rg := newRig(t)
	rg.fleet.addHost(host1, "alice", oldPW)
	ctx := context.Background()
	create := func(name, host, data string) error {
		cfg, _ := json.Marshal(map[string]any{"SecretSubType": "Password", "InstanceId": host})
		_, err := rg.sec.CreateSecret(ctx, acct, secrets.CreateInput{
			Name: name, VersionID: "v1", Data: data, Type: secrets.TypeECS, ExtendedConfig: string(cfg)})
		return err
	}
	for _, tc := range []struct{ name, host, data string }{
		{"unknown host", "i-bbbbbbbbbbbbbbbbbbbb", `{"UserName":"alice","Password":"x"}`},
		{"unknown user", host1, `{"UserName":"mallory","Password":"x"}`},
		{"root not allowed", host1, `{"UserName":"root","Password":"x"}`},
		{"missing password", host1, `{"UserName":"alice"}`},
		{"ssh fields on a password secret", host1, `{"UserName":"alice","Password":"x","PrivateKey":"k"}`},
	} {
		if err := create("acs/ecs/"+strings.ReplaceAll(tc.name, " ", "-"), tc.host, tc.data); !errs.Is(err, errs.KindInvalidParameter) {
			t.Errorf("%s: %v, want InvalidParameter", tc.name, err)
		}
	}
	if all, _ := rg.sec.AllSecrets(ctx, acct); len(all) != 0 {
		t.Fatalf("%d secrets stored from bad input", len(all))
	}
	// A host removed after the secret was created: nothing is started.
	rg.createPassword(secret, host1, "alice", oldPW)
	rg.fleet.hosts[host1].host.Removed = true
	if _, err := rg.sec.RotateSecret(ctx, acct, secret, "v2"); !errs.Is(err, errs.KindInvalidState) {
		t.Fatalf("removed host: %v", err)
	}
	if _, err := rg.sec.RotateSecret(ctx, acct, "acs/ecs/nope", "v2"); !errs.Is(err, errs.KindSecretNotFound) {
		t.Fatalf("unknown secret: %v", err)
	}
	if _, err := rg.sec.PutSecretValue(ctx, acct, secrets.PutValueInput{Name: secret, VersionID: "v9", Data: "x"}); !errs.Is(err, errs.KindInvalidParameter) {
		t.Fatalf("PutSecretValue on ECS: %v", err)
	}
}

// TestOfflineHost: nothing is sent to an agent known to be offline; the
// rotation fails cleanly and the pending value goes.
func TestOfflineHost(t *testing.T) {
	rg := newRig(t)
	rg.fleet.addHost(host1, "alice", oldPW).host.Online = false
	rg.createPassword(secret, host1, "alice", oldPW)
	must(t, errOnly(rg.sec.RotateSecret(context.Background(), acct, secret, "v2")))
	r := rg.wait(rg.only(secret).ID, secret, host1)
	if r.State != StateFailed || !strings.Contains(r.Error, "offline") || len(rg.fleet.sent) != 0 {
		t.Fatalf("state %s error %q sent %d", r.State, r.Error, len(rg.fleet.sent))
	}
}

func TestScheduled(t *testing.T) {
	rg := newRig(t)
	rg.fleet.addHost(host1, "alice", oldPW)
	v, _ := json.Marshal(ecsValue{UserName: "alice", Password: oldPW})
	cfg, _ := json.Marshal(map[string]any{"SecretSubType": "Password", "InstanceId": host1})
	_, err := rg.sec.CreateSecret(context.Background(), acct, secrets.CreateInput{
		Name: secret, VersionID: "v1", Data: string(v), Type: secrets.TypeECS, ExtendedConfig: string(cfg),
		EnableAutomaticRotation: true, RotationInterval: "1h"})
	must(t, err)
	rg.eng.Pass(context.Background())
	if rs, _, _ := rg.eng.List(context.Background(), acct, ListFilter{}, 1, 10); len(rs) != 0 {
		t.Fatal("rotated before it was due")
	}
	rg.eng.cfg.Now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	notLeader := true
	rg.eng.cfg.Leader = func() (uint64, bool) { return 0, !notLeader }
	rg.eng.Pass(context.Background())
	if rs, _, _ := rg.eng.List(context.Background(), acct, ListFilter{}, 1, 10); len(rs) != 0 {
		t.Fatal("a replica that does not lead ran the scheduler")
	}
	notLeader = false
	rg.eng.Pass(context.Background())
	r := rg.wait(rg.only(secret).ID, secret, host1)
	if r.State != StateSucceeded || r.Trigger != "schedule" {
		t.Fatalf("state %s trigger %s", r.State, r.Trigger)
	}
}

// A scheduled rotation that does not succeed moves its slot RetryMax on
// before it ends, so no scheduler (here or on another replica after a
// failover) starts the next attempt at once; a success is not deferred.
func TestFailedScheduledRotationIsDeferred(t *testing.T) {
	for _, mode := range []string{agentFail, agentSilent} {
		t.Run(mode, func(t *testing.T) {
			rg := newRig(t)
			h := rg.fleet.addHost(host1, "alice", oldPW)
			h.mode = mode
			v, _ := json.Marshal(ecsValue{UserName: "alice", Password: oldPW})
			cfg, _ := json.Marshal(map[string]any{"SecretSubType": "Password", "InstanceId": host1})
			_, err := rg.sec.CreateSecret(context.Background(), acct, secrets.CreateInput{
				Name: secret, VersionID: "v1", Data: string(v), Type: secrets.TypeECS, ExtendedConfig: string(cfg),
				EnableAutomaticRotation: true, RotationInterval: "1h"})
			must(t, err)
			skew := 2 * time.Hour // the slot is due
			rg.eng.cfg.Now = func() time.Time { return time.Now().Add(skew) }
			t0 := time.Now()
			rg.eng.Pass(context.Background())
			id := rg.only(secret).ID
			if mode == agentSilent {
				waitState(t, rg, id, StateRollingBack)
				rg.fleet.setMode(host1, agentOK) // back: the restore is confirmed
			}
			r := rg.wait(id, secret, host1)
			if r.State != StateFailed && r.State != StateRolledBack {
				t.Fatalf("state %s, want failed or rolled-back", r.State)
			}
			sec, err := rg.sec.DescribeSecret(context.Background(), acct, secret)
			must(t, err)
			lo, hi := t0.Add(skew+rg.eng.cfg.RetryMax), time.Now().Add(skew+rg.eng.cfg.RetryMax)
			if next := sec.Rotation.NextRotation; next.Before(lo) || next.After(hi) {
				t.Fatalf("next rotation %v, want RetryMax after the end, in [%v, %v]", next, lo, hi)
			}
			// A fresh engine (another replica) does not start it again now.
			rg.eng.failedAt = map[string]time.Time{}
			rg.eng.Pass(context.Background())
			if rs, _, _ := rg.eng.List(context.Background(), acct, ListFilter{}, 1, 10); len(rs) != 1 {
				t.Fatalf("%d rotations after the deferred slot, want 1", len(rs))
			}
		})
	}
}

func TestConfigOverrides(t *testing.T) {
	c, err := parseConfig(map[string]any{"SecretSubType": "Password", "InstanceId": "i-x", "PasswordLength": 12.0, "ExcludeCharacters": "!@#"})
	must(t, err)
	v, err := generate(c, "u")
	must(t, err)
	if len(v.Password) != 12 || strings.ContainsAny(v.Password, "!@#") {
		t.Fatalf("password rules not applied: len %d", len(v.Password))
	}
	for _, bad := range []map[string]any{
		{"SecretSubType": "Password", "InstanceId": "i-x", "PasswordLength": 4.0},
		{"SecretSubType": "Password", "InstanceId": "i-x", "PasswordLength": "32"},
		{"SecretSubType": "SSHKey", "InstanceId": "i-x", "KeyType": "dsa"},
		{"SecretSubType": "Other", "InstanceId": "i-x"},
		{"SecretSubType": "Password"},
	} {
		if _, err := parseConfig(bad); !errs.Is(err, errs.KindInvalidParameter) {
			t.Errorf("%v: %v", bad, err)
		}
	}
}
