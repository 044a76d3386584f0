package rotation

import (
	"context"
	"encoding/json"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/keyhold/keyhold/internal/errs"
	"github.com/keyhold/keyhold/internal/keys"
	"github.com/keyhold/keyhold/internal/secrets"
	"github.com/keyhold/keyhold/internal/store"
	"github.com/keyhold/keyhold/internal/store/bolt"
)

// Agent behaviours of the fake host.
const (
	agentOK         = "ok"          // applies, verifies, reports
	agentFail       = "fail"        // apply fails verification, restores, reports failed
	agentSilent     = "silent"      // takes no command until woken
	agentLostReport = "lost-report" // applies, but the apply report never arrives
	// agentFailStuck reports a failed apply whose own restore failed: the
	// host keeps the new credential until a restore command comes.
	agentFailStuck = "fail-restore-failed"
)

// fakeHost is a host with one user and the agent's behaviour: the
// credential it accepts now, the undo state per rotation, and a journal.
type fakeHost struct {
	host     Host
	mode     string
	password string            // what logs in now (Password secrets)
	keys     map[string]bool   // authorized public keys (SSHKey secrets)
	saved    map[string]string // rotation id -> old password
	savedKey map[string]map[string]bool
	undone   map[string]bool // rotation ids restored (a later apply is refused)
	journal  map[string]*Result
	queue    []Command
}

// fakeFleet is an in-memory fleet whose results notify through the real
// store, as internal/fleet does.
type fakeFleet struct {
	st      store.Store
	mu      sync.Mutex
	hosts   map[string]*fakeHost
	results map[string]*Result
	sent    []Command
}

func newFakeFleet(st store.Store) *fakeFleet {
	return &fakeFleet{st: st, hosts: map[string]*fakeHost{}, results: map[string]*Result{}}
}

func (f *fakeFleet) addHost(id, user, password string, pubkeys ...string) *fakeHost {
	f.mu.Lock()
	defer f.mu.Unlock()
	h := &fakeHost{
		host: Host{ID: id, Account: acct, Online: true, LocalUsers: []LocalUser{
			{Name: user, UID: 1001, Allowed: true, PasswordLogin: true, PubkeyLogin: true},
			{Name: "root", UID: 0, Allowed: false},
		}},
		mode: agentOK, password: password, keys: map[string]bool{},
		saved: map[string]string{}, savedKey: map[string]map[string]bool{},
		undone: map[string]bool{}, journal: map[string]*Result{},
	}
	for _, k := range pubkeys {
		h.keys[k] = true
	}
	f.hosts[id] = h
	return h
}

func (f *fakeFleet) ResultsTopic(account, hostID string) string {
	return "fleet-results/" + account + "/" + hostID
}

func (f *fakeFleet) Host(_ context.Context, account, hostID string) (*Host, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	h := f.hosts[hostID]
	if h == nil {
		return nil, errs.E(errs.KindNotFound, "The specified host is not found.")
	}
	cp := h.host
	return &cp, nil
}

func (f *fakeFleet) Result(_ context.Context, account, hostID, id string) (*Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r := f.results[hostID+"/"+id]; r != nil {
		cp := *r
		return &cp, nil
	}
	return nil, nil
}

func (f *fakeFleet) Enqueue(_ context.Context, account, hostID string, cmd Command) error {
	f.mu.Lock()
	h := f.hosts[hostID]
	if h == nil {
		f.mu.Unlock()
		return errs.E(errs.KindNotFound, "The specified host is not found.")
	}
	for _, q := range h.queue {
		if q.ID == cmd.ID {
			f.mu.Unlock()
			return nil
		}
	}
	f.sent = append(f.sent, cmd)
	h.queue = append(h.queue, cmd)
	f.mu.Unlock()
	f.deliver(hostID)
	return nil
}

// setMode changes the agent's behaviour and delivers what is queued.
func (f *fakeFleet) setMode(hostID, mode string) {
	f.mu.Lock()
	f.hosts[hostID].mode = mode
	f.mu.Unlock()
	f.deliver(hostID)
}

// deliver runs the host's queued commands in order, as the agent does.
func (f *fakeFleet) deliver(hostID string) {
	f.mu.Lock()
	h := f.hosts[hostID]
	if h.mode == agentSilent || h.host.Removed {
		f.mu.Unlock()
		return
	}
	var reports []*Result
	for _, cmd := range h.queue {
		if prev := h.journal[cmd.ID]; prev != nil {
			reports = append(reports, prev) // journaled: re-report, do not re-apply
			continue
		}
		res := h.run(cmd)
		h.journal[cmd.ID] = res
		if h.mode == agentLostReport && (cmd.Op == OpPasswordApply || cmd.Op == OpSSHKeyApply) {
			continue
		}
		reports = append(reports, res)
	}
	h.queue = nil
	for _, r := range reports {
		f.results[hostID+"/"+r.CommandID] = r
	}
	f.mu.Unlock()
	if len(reports) > 0 {
		f.st.Update(context.Background(), func(tx store.Tx) error {
			tx.Notify(f.ResultsTopic(acct, hostID))
			return nil
		})
	}
}

func (h *fakeHost) run(cmd Command) *Result {
	res := &Result{CommandID: cmd.ID, HostID: h.host.ID, RotationID: cmd.RotationID, Op: cmd.Op, Status: StatusOK, Time: time.Now()}
	fail := func(msg string) *Result { res.Status, res.Error = StatusFailed, msg; return res }
	switch cmd.Op {
	case OpPasswordApply, OpSSHKeyApply:
		if h.undone[cmd.RotationID] {
			return fail("rotation already rolled back")
		}
		if cmd.Op == OpPasswordApply {
			h.saved[cmd.RotationID] = h.password
			h.password = cmd.Password
		} else {
			cp := map[string]bool{}
			for k := range h.keys {
				cp[k] = true
			}
			h.savedKey[cmd.RotationID] = cp
			h.keys[cmd.PublicKey] = true
		}
		res.Check = "ssh-login"
		if h.mode == agentFail {
			h.restore(cmd.RotationID)
			return fail("verify: ssh login with the new credential was refused")
		}
		if h.mode == agentFailStuck {
			return fail("verify failed; restoring the old password also failed")
		}
	case OpPasswordRestore, OpSSHKeyRestore:
		h.restore(cmd.RotationID)
		h.undone[cmd.RotationID] = true
	case OpSSHKeyCleanup:
		delete(h.keys, cmd.PublicKey)
	default:
		return fail("unknown op")
	}
	return res
}

func (h *fakeHost) restore(rid string) {
	if old, ok := h.saved[rid]; ok {
		h.password = old
	}
	if old, ok := h.savedKey[rid]; ok {
		h.keys = old
	}
}

const acct = "1234567890"

type rig struct {
	t     *testing.T
	st    store.Store
	sec   *secrets.Service
	fleet *fakeFleet
	eng   *Engine
	cfg   Config
}

func newRig(t *testing.T) *rig { t.Helper(); return newRigAt(t, nil) }

// newRigAt is newRig with one clock for the engine and the secrets
// service (nil: the real one), so that "due" means the same to both.
func newRigAt(t *testing.T, clock func() time.Time) *rig {
	t.Helper()
	dir := t.TempDir()
	st, err := bolt.Open(filepath.Join(dir, "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ks, err := keys.Open(context.Background(), st, keys.FileSource{Path: filepath.Join(dir, "root.key"), Create: true}, "cn-hangzhou")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ks.Close() })
	var opts []secrets.Option
	if clock != nil {
		opts = append(opts, secrets.WithClock(clock))
	}
	rg := &rig{t: t, st: st, sec: secrets.New(st, ks, opts...), fleet: newFakeFleet(st)}
	rg.cfg = Config{
		Store: st, Secrets: rg.sec, Fleet: rg.fleet, Now: clock,
		ApplyTimeout: 150 * time.Millisecond, RetryMin: 20 * time.Millisecond, RetryMax: 80 * time.Millisecond,
		ScanInterval: time.Hour,
	}
	rg.start()
	return rg
}

// start (re)starts the engine, as a server start does.
func (rg *rig) start() {
	rg.eng = New(rg.cfg)
	ecs := NewECS(rg.eng)
	rg.sec.SetRotator(secrets.TypeECS, ecs)
	rg.sec.SetValidator(secrets.TypeECS, ecs)
	rg.t.Cleanup(rg.eng.Close)
}

func (rg *rig) createPassword(name, host, user, pw string) {
	rg.t.Helper()
	v, _ := json.Marshal(ecsValue{UserName: user, Password: pw})
	cfg, _ := json.Marshal(map[string]any{"SecretSubType": "Password", "RegionId": "cn-hangzhou", "InstanceId": host})
	if _, err := rg.sec.CreateSecret(context.Background(), acct, secrets.CreateInput{
		Name: name, VersionID: "v1", Data: string(v), Type: secrets.TypeECS, ExtendedConfig: string(cfg),
	}); err != nil {
		rg.t.Fatal(err)
	}
}

func (rg *rig) value(name, stage string) (ecsValue, bool) {
	rg.t.Helper()
	plain, _, err := rg.sec.ReadVersion(context.Background(), acct, name, "", stage)
	if errs.Is(err, errs.KindSecretNotFound) {
		return ecsValue{}, false
	}
	if err != nil {
		rg.t.Fatal(err)
	}
	var v ecsValue
	if err := json.Unmarshal(plain, &v); err != nil {
		rg.t.Fatal(err)
	}
	return v, true
}

// hostPassword is what logs in on the fake host now.
func (rg *rig) hostPassword(id string) string {
	rg.fleet.mu.Lock()
	defer rg.fleet.mu.Unlock()
	return rg.fleet.hosts[id].password
}

// checkInvariant: Keyhold holds the credential the host accepts, as
// ACSCurrent or ACSPending. The host is held still while the stages are
// read (in one transaction), so that the two are seen at one instant.
func (rg *rig) checkInvariant(name, host string) {
	rg.t.Helper()
	ctx := context.Background()
	rg.fleet.mu.Lock()
	pw := rg.fleet.hosts[host].password
	_, vs, _, err := rg.sec.ListSecretVersionIds(ctx, acct, name, false, 1, 100)
	rg.fleet.mu.Unlock()
	if err != nil {
		rg.t.Fatal(err)
	}
	for _, v := range vs {
		if !v.HasStage(secrets.StageCurrent) && !v.HasStage(secrets.StagePending) {
			continue
		}
		plain, _, err := rg.sec.ReadVersion(ctx, acct, name, v.ID, "")
		if err != nil {
			rg.t.Fatal(err)
		}
		var val ecsValue
		json.Unmarshal(plain, &val)
		if val.Password == pw {
			return
		}
	}
	rg.t.Fatalf("lockout: the host accepts a password that is neither ACSCurrent nor ACSPending")
}

// wait polls until the rotation is terminal, checking the invariant on the
// way, and returns it.
func (rg *rig) wait(id, name, host string) *Rotation {
	rg.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		rg.checkInvariant(name, host)
		r, err := rg.eng.Get(context.Background(), acct, id)
		if err != nil {
			rg.t.Fatal(err)
		}
		if Terminal(r.State) {
			return r
		}
		time.Sleep(5 * time.Millisecond)
	}
	r, _ := rg.eng.Get(context.Background(), acct, id)
	rg.t.Fatalf("rotation did not finish: state %s steps %+v", r.State, r.Steps)
	return nil
}

func (rg *rig) only(name string) *Rotation {
	rg.t.Helper()
	rs, _, err := rg.eng.List(context.Background(), acct, ListFilter{SecretName: name}, 1, 100)
	if err != nil {
		rg.t.Fatal(err)
	}
	if len(rs) == 0 {
		rg.t.Fatal("no rotation recorded")
	}
	return rs[0]
}
