package agent_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/keyhold/keyhold/internal/agent"
	"github.com/keyhold/keyhold/internal/agentapi/wire"
	"github.com/keyhold/keyhold/internal/fleet"
	"github.com/keyhold/keyhold/internal/testutil/sshdtest"
)

func shadowField(t *testing.T, user string) string {
	t.Helper()
	out, err := exec.Command("getent", "shadow", user).Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(string(out), ":")[1]
}

func TestEnrollReportAndPasswordRotation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sshdtest.Options{})
	u := sshdtest.NewUser(t, sshdtest.UserOptions{Password: "Old-passw0rd!"})
	cfg := e.config(t, t.TempDir())
	a := e.start(t, cfg)
	if !fleet.ValidHostID(a.HostID()) {
		t.Fatalf("host id %q", a.HostID())
	}

	h := e.waitHost(t, a.HostID(), func(h *fleet.Host) bool { return len(h.LocalUsers) > 0 })
	lu, ok := h.User(u.Name)
	if !ok || !lu.Allowed || !lu.PasswordLogin || !lu.PubkeyLogin || lu.UID != u.UID {
		t.Fatalf("user in report: %+v (found %v)", lu, ok)
	}
	if root, _ := h.User("root"); root.Allowed {
		t.Fatal("root allowed without --allow-users")
	}
	wantKey := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(e.sshd.HostKey)))
	if len(h.SSHHostKeys) != 1 || h.SSHHostKeys[0] != wantKey {
		t.Fatalf("host keys %v, want %s", h.SSHHostKeys, wantKey)
	}
	if h.SSHAddress != e.sshd.Addr || h.AgentVersion != agent.Version || h.HostName == "" || !h.Online {
		t.Fatalf("host %+v", h)
	}

	const newPW = "N3w-Passw0rd-from-Keyhold"
	r := e.run(t, a.HostID(), fleet.Command{ID: "c1", RotationID: "r1", Op: fleet.OpPasswordApply, User: u.Name, Password: newPW})
	if r.Status != "ok" || r.Check != "ssh-login" || r.RotationID != "r1" {
		t.Fatalf("apply: %+v", r)
	}
	if err := e.sshd.LoginPassword(u.Name, newPW); err != nil {
		t.Fatalf("new password: %v", err)
	}
	if err := e.sshd.LoginPassword(u.Name, "Old-passw0rd!"); err != sshdtest.ErrRefused {
		t.Fatalf("old password after apply: %v", err)
	}

	r = e.run(t, a.HostID(), fleet.Command{ID: "c2", RotationID: "r1", Op: fleet.OpPasswordRestore, User: u.Name})
	if r.Status != "ok" {
		t.Fatalf("restore: %+v", r)
	}
	if err := e.sshd.LoginPassword(u.Name, "Old-passw0rd!"); err != nil {
		t.Fatalf("old password after restore: %v", err)
	}
	if err := e.sshd.LoginPassword(u.Name, newPW); err != sshdtest.ErrRefused {
		t.Fatalf("new password after restore: %v", err)
	}
	// A restore of a rotation that applied nothing is a no-op success.
	before := shadowField(t, u.Name)
	r = e.run(t, a.HostID(), fleet.Command{ID: "c3", RotationID: "r-none", Op: fleet.OpPasswordRestore, User: u.Name})
	if r.Status != "ok" || shadowField(t, u.Name) != before {
		t.Fatalf("restore without apply: %+v", r)
	}

	// Nothing of the password reached the logs or the agent's files.
	if strings.Contains(e.logs.String(), newPW) {
		t.Fatal("password in logs")
	}
	filepath.Walk(cfg.DataDir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			if b, _ := os.ReadFile(p); strings.Contains(string(b), newPW) {
				t.Errorf("password in %s", p)
			}
		}
		return nil
	})
}

func TestSSHKeyApplyCleanupRestore(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sshdtest.Options{})
	u := sshdtest.NewUser(t, sshdtest.UserOptions{})
	oldSigner, oldPub, _ := newKey(t)
	path := u.AuthorizeKeys(t, oldSigner.PublicKey())
	os.Chmod(path, 0o640) // an unusual but valid mode must survive the rewrite
	a := e.start(t, e.config(t, t.TempDir()))

	newSigner, newPub, newPriv := newKey(t)
	r := e.run(t, a.HostID(), fleet.Command{ID: "k1", RotationID: "r1", Op: fleet.OpSSHKeyApply, User: u.Name, PublicKey: newPub, PrivateKey: newPriv})
	if r.Status != "ok" || r.Check != "ssh-login" {
		t.Fatalf("apply: %+v", r)
	}
	for name, s := range map[string]ssh.Signer{"old": oldSigner, "new": newSigner} {
		if err := e.sshd.LoginKey(u.Name, s); err != nil {
			t.Fatalf("%s key after apply: %v", name, err)
		}
	}
	checkOwnerMode(t, path, u, 0o640)

	r = e.run(t, a.HostID(), fleet.Command{ID: "k2", RotationID: "r1", Op: fleet.OpSSHKeyCleanup, User: u.Name, PublicKey: oldPub})
	if r.Status != "ok" {
		t.Fatalf("cleanup: %+v", r)
	}
	if err := e.sshd.LoginKey(u.Name, oldSigner); err != sshdtest.ErrRefused {
		t.Fatalf("old key after cleanup: %v", err)
	}
	if err := e.sshd.LoginKey(u.Name, newSigner); err != nil {
		t.Fatalf("new key after cleanup: %v", err)
	}
	checkOwnerMode(t, path, u, 0o640)
	if b, _ := os.ReadFile(path); strings.Contains(string(b), strings.Fields(oldPub)[1]) {
		t.Fatal("old key still in authorized_keys")
	}

	// A second rotation rolled back: its key is gone again, the current works.
	thirdSigner, thirdPub, thirdPriv := newKey(t)
	r = e.run(t, a.HostID(), fleet.Command{ID: "k3", RotationID: "r2", Op: fleet.OpSSHKeyApply, User: u.Name, PublicKey: thirdPub, PrivateKey: thirdPriv})
	if r.Status != "ok" {
		t.Fatalf("apply 2: %+v", r)
	}
	r = e.run(t, a.HostID(), fleet.Command{ID: "k4", RotationID: "r2", Op: fleet.OpSSHKeyRestore, User: u.Name})
	if r.Status != "ok" {
		t.Fatalf("restore: %+v", r)
	}
	if err := e.sshd.LoginKey(u.Name, thirdSigner); err != sshdtest.ErrRefused {
		t.Fatalf("rolled-back key: %v", err)
	}
	if err := e.sshd.LoginKey(u.Name, newSigner); err != nil {
		t.Fatalf("current key after rollback: %v", err)
	}
	checkOwnerMode(t, path, u, 0o640)

	// A private key that does not match the public key is refused and
	// changes nothing.
	_, otherPub, _ := newKey(t)
	before, _ := os.ReadFile(path)
	r = e.run(t, a.HostID(), fleet.Command{ID: "k5", RotationID: "r3", Op: fleet.OpSSHKeyApply, User: u.Name, PublicKey: otherPub, PrivateKey: thirdPriv})
	if after, _ := os.ReadFile(path); r.Status != "failed" || string(after) != string(before) {
		t.Fatalf("mismatched key pair: %+v", r)
	}
	if strings.Contains(e.logs.String(), "PRIVATE KEY") {
		t.Fatal("private key in logs")
	}
}

func checkOwnerMode(t *testing.T, path string, u *sshdtest.User, mode os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if int(st.Uid) != u.UID || int(st.Gid) != u.GID || fi.Mode().Perm() != mode {
		t.Fatalf("%s: owner %d:%d mode %v, want %d:%d %v", path, st.Uid, st.Gid, fi.Mode().Perm(), u.UID, u.GID, mode)
	}
}

func TestAllowList(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sshdtest.Options{})
	sys := sshdtest.NewUser(t, sshdtest.UserOptions{Password: "Sys-passw0rd!", System: true})
	sys2 := sshdtest.NewUser(t, sshdtest.UserOptions{Password: "Sys-passw0rd!", System: true})
	cfg := e.config(t, t.TempDir())
	cfg.AllowUsers = []string{sys.Name}
	a := e.start(t, cfg)

	for _, user := range []string{"root", sys2.Name} {
		before := shadowField(t, user)
		r := e.run(t, a.HostID(), fleet.Command{ID: "c-" + user, RotationID: "r", Op: fleet.OpPasswordApply, User: user, Password: "Whatever-1234"})
		if r.Status != "failed" || r.Error != "user not allowed" {
			t.Fatalf("%s: %+v", user, r)
		}
		if shadowField(t, user) != before {
			t.Fatalf("%s changed", user)
		}
	}
	r := e.run(t, a.HostID(), fleet.Command{ID: "c-nobody-here", RotationID: "r", Op: fleet.OpPasswordRestore, User: "no-such-user"})
	if r.Status != "failed" {
		t.Fatalf("unknown user: %+v", r)
	}
	r = e.run(t, a.HostID(), fleet.Command{ID: "c-sys", RotationID: "r", Op: fleet.OpPasswordApply, User: sys.Name, Password: "Named-Sys-passw0rd"})
	if r.Status != "ok" {
		t.Fatalf("named system user: %+v", r)
	}
	if err := e.sshd.LoginPassword(sys.Name, "Named-Sys-passw0rd"); err != nil {
		t.Fatal(err)
	}
	h, _ := e.fleet.Host(context.Background(), e.acct, a.HostID())
	if lu, _ := h.User(sys.Name); !lu.Allowed {
		t.Fatal("named system user not reported as allowed")
	}
	if lu, _ := h.User(sys2.Name); lu.Allowed {
		t.Fatal("unnamed system user reported as allowed")
	}
}

// With a strict sshd (no passwords, root by key only) the agent verifies a
// password locally and says so.
func TestStrictSSHDLocalCheck(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sshdtest.Options{NoPassword: true, PermitRootLogin: "prohibit-password"})
	u := sshdtest.NewUser(t, sshdtest.UserOptions{Password: "Old-passw0rd!"})
	a := e.start(t, e.config(t, t.TempDir()))
	h := e.waitHost(t, a.HostID(), func(h *fleet.Host) bool { _, ok := h.User(u.Name); return ok })
	if lu, _ := h.User(u.Name); lu.PasswordLogin || !lu.PubkeyLogin {
		t.Fatalf("effective settings: %+v", lu)
	}
	r := e.run(t, a.HostID(), fleet.Command{ID: "c1", RotationID: "r1", Op: fleet.OpPasswordApply, User: u.Name, Password: "Local-check-Passw0rd"})
	if r.Status != "ok" || r.Check != "local" {
		t.Fatalf("apply: %+v", r)
	}
	// The password works where sshd is not asked: su as another user.
	before := shadowField(t, u.Name)
	if before == "" || strings.HasPrefix(before, "!") {
		t.Fatalf("shadow %q", before)
	}
	// Key rotation on the strict sshd still logs in.
	signer, pub, priv := newKey(t)
	r = e.run(t, a.HostID(), fleet.Command{ID: "k1", RotationID: "r2", Op: fleet.OpSSHKeyApply, User: u.Name, PublicKey: pub, PrivateKey: priv})
	if r.Status != "ok" || r.Check != "ssh-login" {
		t.Fatalf("key apply: %+v", r)
	}
	if err := e.sshd.LoginKey(u.Name, signer); err != nil {
		t.Fatal(err)
	}
}

// countingSystem counts executions: the journal must apply a command once
// however often it is delivered.
type countingSystem struct {
	n atomic.Int32
}

func (c *countingSystem) Inventory(context.Context) (wire.Inventory, error) {
	return wire.Inventory{HostName: "sim", AgentVersion: "test"}, nil
}

func (c *countingSystem) Execute(_ context.Context, cmd wire.Command, _ func(string)) wire.Result {
	c.n.Add(1)
	return wire.Result{CommandID: cmd.ID, Status: "ok", Check: "local", Time: time.Now()}
}

func (c *countingSystem) Drift(context.Context) ([]wire.DriftEvent, error) { return nil, nil }

func TestJournalAppliesOnceAndReReports(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sshdtest.Options{})
	sys := &countingSystem{}
	cfg := e.config(t, t.TempDir())
	cfg.System = sys
	cfg.DropReport = "after-apply" // the first report is lost; the server re-sends
	a := e.start(t, cfg)
	r := e.run(t, a.HostID(), fleet.Command{ID: "once", RotationID: "r", Op: fleet.OpPasswordApply, User: "x", Password: "Pw-123456789"})
	if r.Status != "ok" {
		t.Fatalf("%+v", r)
	}
	if n := sys.n.Load(); n != 1 {
		t.Fatalf("executed %d times, want 1", n)
	}
	if !strings.Contains(e.logs.String(), "re-reporting") {
		t.Fatal("the command was not delivered twice")
	}
}

// An agent killed right after applying is restarted: the re-delivered
// command is applied again without losing the undo state, so a restore
// still brings back the password from before the rotation.
func TestCrashAfterApplyKeepsUndo(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sshdtest.Options{})
	u := sshdtest.NewUser(t, sshdtest.UserOptions{Password: "Old-passw0rd!"})
	cfg := e.config(t, t.TempDir())
	_, wait := child(t, cfg, agent.EnvCrashAt+"=after-apply:password.apply")
	// Enroll happens in the child; find its host id.
	hostID := waitIdentity(t, cfg.DataDir)
	if err := e.fleet.Enqueue(context.Background(), e.acct, hostID, fleet.Command{ID: "c1", RotationID: "r1", Op: fleet.OpPasswordApply, User: u.Name, Password: "Crash-Passw0rd-1"}); err != nil {
		t.Fatal(err)
	}
	err := wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("agent did not die by the hook: %v", err)
	}
	if err := e.sshd.LoginPassword(u.Name, "Crash-Passw0rd-1"); err != nil {
		t.Fatalf("applied password before the crash: %v", err)
	}
	if r, _ := e.fleet.Result(context.Background(), e.acct, hostID, "c1"); r != nil {
		t.Fatalf("result reported before the crash: %+v", r)
	}
	// Restart (no token: the identity is reused).
	cfg.Token = ""
	e.start(t, cfg)
	r := e.waitResult(t, hostID, "c1")
	if r.Status != "ok" {
		t.Fatalf("after restart: %+v", r)
	}
	r = e.run(t, hostID, fleet.Command{ID: "c2", RotationID: "r1", Op: fleet.OpPasswordRestore, User: u.Name})
	if r.Status != "ok" {
		t.Fatalf("restore: %+v", r)
	}
	if err := e.sshd.LoginPassword(u.Name, "Old-passw0rd!"); err != nil {
		t.Fatalf("old password after crash and restore: %v", err)
	}
}

func waitIdentity(t *testing.T, dir string) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(filepath.Join(dir, "identity.json")); err == nil {
			var id struct {
				HostID string `json:"host_id"`
			}
			if jsonUnmarshal(b, &id) == nil && id.HostID != "" {
				return id.HostID
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("agent did not enroll")
	return ""
}

func (e *env) waitResult(t *testing.T, hostID, id string) *fleet.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ch, unsub := e.fleet.Store().Subscribe(e.fleet.ResultsTopic(e.acct, hostID))
	defer unsub()
	for {
		if r, _ := e.fleet.Result(ctx, e.acct, hostID, id); r != nil {
			return r
		}
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("no result for %s", id)
		}
	}
}

func TestDriftAfterManualChange(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sshdtest.Options{})
	defer func() { t.Log(e.logs.String()) }()
	u := sshdtest.NewUser(t, sshdtest.UserOptions{Password: "Old-passw0rd!"})
	cfg := e.config(t, t.TempDir())
	cfg.DriftInterval = 100 * time.Millisecond
	a := e.start(t, cfg)
	// Keyhold's own change is not drift.
	r := e.run(t, a.HostID(), fleet.Command{ID: "c1", RotationID: "r1", Op: fleet.OpPasswordApply, User: u.Name, Password: "Keyhold-Passw0rd-1"})
	if r.Status != "ok" {
		t.Fatal(r)
	}
	signer, _, _ := newKey(t)
	sshdtest.SetPassword(t, u.Name, "Someone-Else-1")
	u.AuthorizeKeys(t, signer.PublicKey())
	h := e.waitHost(t, a.HostID(), func(h *fleet.Host) bool { return len(h.UserDrift(u.Name)) >= 2 })
	kinds := map[string]bool{}
	for _, d := range h.UserDrift(u.Name) {
		kinds[d.What] = true
	}
	if !kinds[fleet.DriftPassword] || !kinds[fleet.DriftAuthorizedKeys] || len(h.UserDrift(u.Name)) != 2 {
		t.Fatalf("drift %+v", h.Drift)
	}
}

func TestRestartReusesIdentityAndRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sshdtest.Options{})
	dir := t.TempDir()
	cfg := e.config(t, dir)
	a, err := agent.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"agent.key", "identity.json"} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", f, fi, err)
		}
	}
	cfg.Token = ""
	b, err := agent.New(context.Background(), cfg)
	if err != nil || b.HostID() != a.HostID() {
		t.Fatalf("restart: %v, %s vs %s", err, b.HostID(), a.HostID())
	}
	e.start(t, cfg)
	e.waitHost(t, a.HostID(), func(h *fleet.Host) bool { return h.Online })

	// A fresh directory without a token cannot start.
	if _, err := agent.New(context.Background(), agent.Config{Server: e.srv.HTTPSURL, DataDir: t.TempDir()}); err == nil {
		t.Fatal("enrolled without a token")
	}
	// Plain http to a non-loopback server is refused before anything is sent.
	bad := e.config(t, t.TempDir())
	bad.Server = "http://192.0.2.1:8080"
	if _, err := agent.New(context.Background(), bad); err == nil || !strings.Contains(err.Error(), "plain http") {
		t.Fatalf("plain http: %v", err)
	}
	// A token pinning another CA: the TLS handshake fails and the token is
	// not consumed.
	good := e.config(t, t.TempDir())
	parts := strings.Split(good.Token, ".")
	forged := good
	forged.Token = parts[0] + "." + parts[1] + "." + wire.CAPin([]byte("another CA"))
	if _, err := agent.New(context.Background(), forged); err == nil || !strings.Contains(err.Error(), "pinned") {
		t.Fatalf("foreign pin: %v", err)
	}
	// An expired or used token is refused.
	if _, err := agent.New(context.Background(), good); err != nil {
		t.Fatal(err)
	}
	good.DataDir = t.TempDir()
	if _, err := agent.New(context.Background(), good); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("reused token: %v", err)
	}

	// Removing the host revokes the identity: Run ends with ErrRevoked.
	if err := e.fleet.RemoveHost(context.Background(), e.acct, a.HostID()); err != nil {
		t.Fatal(err)
	}
	c, err := agent.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Run(ctx); err != agent.ErrRevoked {
		t.Fatalf("run after removal: %v", err)
	}
}
