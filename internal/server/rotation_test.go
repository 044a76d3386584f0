package server_test

// Rotation of ECS secrets end to end, with the real pieces: a real sshd on
// a loopback port, throw-away users made with useradd, `keyhold agent` as
// a separate process (this test binary, so that its crash hooks can
// SIGKILL it), the server restarted on the same data directory, and every
// claim about a credential checked by logging in over SSH.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	kms "github.com/alibabacloud-go/kms-20160120/v3/client"
	"github.com/alibabacloud-go/tea/tea"
	"golang.org/x/crypto/ssh"

	"github.com/keyhold/keyhold/client"
	"github.com/keyhold/keyhold/internal/agent"
	"github.com/keyhold/keyhold/internal/rotation"
	"github.com/keyhold/keyhold/internal/server"
	"github.com/keyhold/keyhold/internal/testutil/rootcreds"
	"github.com/keyhold/keyhold/internal/testutil/sshdtest"
)

// envAgentChild makes this test binary run as `keyhold agent` with the
// JSON agent.Config it holds (init runs before TestMain).
const envAgentChild = "KEYHOLD_ROTATION_TEST_AGENT"

func init() {
	cfg := os.Getenv(envAgentChild)
	if cfg == "" {
		return
	}
	var c agent.Config
	if err := json.Unmarshal([]byte(cfg), &c); err != nil {
		panic(err)
	}
	c.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	a, err := agent.New(context.Background(), c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "agent:", err)
		os.Exit(3)
	}
	if err := a.Run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "agent:", err)
		os.Exit(4)
	}
	os.Exit(0)
}

// rotEnv is one deployment: a server on fixed loopback ports (so that it
// can be restarted where the agent expects it), an sshd, and an agent.
type rotEnv struct {
	t       *testing.T
	cfg     server.Config
	ts      *testServer
	sshd    *sshdtest.Server
	kc      *client.Client
	agentMu sync.Mutex
	agent   *agentProc
	adir    string
	hostID  string
	allow   []string
	procs   []*agentProc // every agent run, for the logs of a failed test
}

type agentProc struct {
	cmd  *exec.Cmd
	done chan struct{}
	log  *syncBuffer
	err  error
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// newRotEnv starts a deployment whose rotations wait a minute for an apply
// result: tests that expect success do not depend on this machine's speed.
func newRotEnv(t *testing.T, opts sshdtest.Options, allowUsers ...string) *rotEnv {
	return newRotEnvTimeout(t, opts, time.Minute, allowUsers...)
}

// newRotEnvTimeout is newRotEnv with the apply timeout after which an
// unanswered apply counts as "outcome unknown" (the fault tests shorten it;
// the engine's logic does not depend on its value).
func newRotEnvTimeout(t *testing.T, opts sshdtest.Options, applyTimeout time.Duration, allowUsers ...string) *rotEnv {
	t.Helper()
	sshd := sshdtest.Start(t, opts)
	e := &rotEnv{t: t, sshd: sshd, adir: filepath.Join(t.TempDir(), "agent"), allow: allowUsers}
	e.cfg = server.Config{
		DataDir: t.TempDir(), Listen: freeAddr(t), TLSListen: freeAddr(t),
		Rotation: server.RotationConfig{ApplyTimeout: applyTimeout, RetryMin: 200 * time.Millisecond,
			RetryMax: time.Second, ScanInterval: 500 * time.Millisecond},
	}
	e.startServer()
	creds := rootcreds.Read(t, e.cfg.DataDir)
	e.ts.keyID, e.ts.keySecret = creds.ID, creds.Secret
	var err error
	e.kc, err = client.New(client.Config{Endpoint: e.ts.HTTPSURL, AccessKeyID: creds.ID, AccessKeySecret: creds.Secret, CACertPEM: e.ts.CACertPEM()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.stopAgent()
		if e.ts.Server != nil {
			e.ts.Close()
		}
		if t.Failed() {
			for i, p := range e.procs {
				t.Logf("agent run %d log:\n%s", i+1, p.log.String())
			}
			t.Logf("server log:\n%s", e.ts.logs.String())
		}
	})
	return e
}

func (e *rotEnv) startServer() {
	e.t.Helper()
	logs := &syncBuffer{}
	e.cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := server.Start(context.Background(), e.cfg)
	if err != nil {
		e.t.Fatalf("start server: %v", err)
	}
	if e.ts == nil {
		e.ts = &testServer{dir: e.cfg.DataDir}
	}
	e.ts.Server, e.ts.logs = srv, logs
}

// restartServer stops the server and starts it again on the same data
// directory and ports; rotations in flight resume from storage.
func (e *rotEnv) restartServer() {
	e.t.Helper()
	if err := e.ts.Close(); err != nil {
		e.t.Fatal(err)
	}
	e.startServer()
}

// sdk is the official client over plain HTTP on loopback: the SDK caches
// its HTTPS transport (with the CA of the first server it met) per
// host:port, and these tests start many servers whose ports get reused.
func (e *rotEnv) sdk() *kms.Client { return e.ts.sdk(e.t, sdkModes[0]) }

// startAgent runs the agent process; env adds test hooks. The first run
// enrolls with a fresh token, later runs reuse the identity in adir.
func (e *rotEnv) startAgent(env ...string) {
	e.t.Helper()
	cfg := agent.Config{Server: e.ts.HTTPSURL, DataDir: e.adir, SSHDAddr: e.sshd.Addr, SSHDConfig: e.sshd.ConfigPath,
		AllowUsers: e.allow, PollTimeout: 2 * time.Second, DriftInterval: time.Hour}
	if e.hostID == "" {
		tok, err := e.ts.Fleet().CreateEnrollmentToken(context.Background(), e.ts.Account, 0, 0)
		if err != nil {
			e.t.Fatal(err)
		}
		cfg.Token = tok.Token
	}
	b, _ := json.Marshal(cfg)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), envAgentChild+"="+string(b)), env...)
	p := &agentProc{cmd: cmd, done: make(chan struct{}), log: &syncBuffer{}}
	cmd.Stderr = p.log
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	e.agentMu.Lock()
	e.agent = p
	e.procs = append(e.procs, p)
	e.agentMu.Unlock()
	if e.hostID == "" {
		e.hostID = e.waitIdentity(p)
	}
}

func (e *rotEnv) waitIdentity(p *agentProc) string {
	e.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		var id struct {
			HostID string `json:"host_id"`
		}
		if b, err := os.ReadFile(filepath.Join(e.adir, "identity.json")); err == nil && json.Unmarshal(b, &id) == nil && id.HostID != "" {
			return id.HostID
		}
		select {
		case <-p.done:
			e.t.Fatalf("agent exited while enrolling: %v\n%s", p.err, p.log.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	e.t.Fatal("the agent did not enroll")
	return ""
}

// waitAgentDied waits for the agent to kill itself at its crash hook. If
// the rotation ends first (it rolled back before the hook's command was
// sent, which a slow machine can cause), the fault did not happen: that is
// logged, and the agent is left running.
func (e *rotEnv) waitAgentDied(name string) {
	e.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-e.agent.done:
			return
		case <-time.After(100 * time.Millisecond):
		}
		if r := e.rotationOf(name); terminalStates[r.State] {
			select {
			case <-e.agent.done:
				return
			case <-time.After(2 * time.Second):
			}
			e.t.Logf("the crash hook was not reached: the rotation ended %s first", r.State)
			e.stopAgent()
			return
		}
	}
	e.t.Fatalf("the agent did not reach its crash hook:\n%s", e.agent.log.String())
}

// restartAgent stops the agent and starts it with the given hooks.
func (e *rotEnv) restartAgent(env ...string) {
	e.t.Helper()
	e.stopAgent()
	e.startAgent(env...)
}

func (e *rotEnv) stopAgent() {
	e.agentMu.Lock()
	p := e.agent
	e.agentMu.Unlock()
	if p == nil {
		return
	}
	p.cmd.Process.Kill()
	<-p.done
}

// waitUser waits until the agent has reported the user in its inventory.
func (e *rotEnv) waitUser(user string) {
	e.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		h, err := e.ts.Fleet().Host(context.Background(), e.ts.Account, e.hostID)
		if err == nil {
			for _, u := range h.LocalUsers {
				if u.Name == user {
					return
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.t.Fatalf("the agent never reported user %s", user)
}

func (e *rotEnv) createSecret(name, sub string, value map[string]string, extra map[string]any) {
	e.t.Helper()
	cfg := map[string]any{"SecretSubType": sub, "RegionId": "cn-hangzhou", "InstanceId": e.hostID}
	for k, v := range extra {
		cfg[k] = v
	}
	data, _ := json.Marshal(value)
	_, err := e.sdk().CreateSecret(&kms.CreateSecretRequest{
		SecretName: tea.String(name), SecretType: tea.String("ECS"), VersionId: tea.String("v1"),
		SecretData: tea.String(string(data)), ExtendedConfig: cfg,
	})
	if err != nil {
		e.t.Fatalf("create ECS secret: %v", err)
	}
}

func (e *rotEnv) rotate(name, versionID string) {
	e.t.Helper()
	if _, err := e.sdk().RotateSecret(&kms.RotateSecretRequest{SecretName: tea.String(name), VersionId: tea.String(versionID)}); err != nil {
		e.t.Fatalf("RotateSecret: %v", err)
	}
}

// stage returns the ECS value at a stage, or ok=false when no version has it.
func (e *rotEnv) stage(name, stage string) (v ecsValue, ok bool) {
	e.t.Helper()
	out, err := e.sdk().GetSecretValue(&kms.GetSecretValueRequest{SecretName: tea.String(name), VersionStage: tea.String(stage)})
	if err != nil {
		if errCode(err) == "Forbidden.ResourceNotFound" {
			return v, false
		}
		e.t.Fatalf("GetSecretValue %s: %v", stage, err)
	}
	if err := json.Unmarshal([]byte(tea.StringValue(out.Body.SecretData)), &v); err != nil {
		e.t.Fatal(err)
	}
	return v, true
}

type ecsValue struct {
	UserName   string
	Password   string `json:",omitempty"`
	PublicKey  string `json:",omitempty"`
	PrivateKey string `json:",omitempty"`
}

func (v ecsValue) login(t *testing.T, sshd *sshdtest.Server) error {
	t.Helper()
	if v.PrivateKey != "" {
		signer, err := ssh.ParsePrivateKey([]byte(v.PrivateKey))
		if err != nil {
			t.Fatalf("stored private key does not parse: %v", err)
		}
		return sshd.LoginKey(v.UserName, signer)
	}
	return sshd.LoginPassword(v.UserName, v.Password)
}

// rotationOf returns the secret's newest rotation.
func (e *rotEnv) rotationOf(name string) *client.Rotation {
	e.t.Helper()
	out, err := e.kc.ListRotations(context.Background(), &client.ListRotationsRequest{SecretName: name})
	if err != nil {
		e.t.Fatal(err)
	}
	if len(out.Rotations.Rotation) == 0 {
		e.t.Fatal("no rotation listed")
	}
	return &out.Rotations.Rotation[0]
}

var terminalStates = map[string]bool{"succeeded": true, "failed": true, "rolled-back": true, "abandoned": true}

// waitRotation waits until the secret's newest rotation reaches one of
// states (any terminal state when none given).
func (e *rotEnv) waitRotation(name string, states ...string) *client.Rotation {
	e.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	var r *client.Rotation
	for time.Now().Before(deadline) {
		out, err := e.kc.ListRotations(context.Background(), &client.ListRotationsRequest{SecretName: name})
		if err == nil && len(out.Rotations.Rotation) > 0 {
			r = &out.Rotations.Rotation[0]
			if len(states) == 0 && terminalStates[r.State] {
				return r
			}
			for _, s := range states {
				if r.State == s {
					return r
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.t.Fatalf("rotation of %s did not reach %v: %+v", name, states, r)
	return nil
}

// holdsWorking asserts the invariant at this instant with real logins:
// ACSCurrent logs in, or (between apply and promote) ACSPending does.
func (e *rotEnv) holdsWorking(name string) {
	e.t.Helper()
	cur, _ := e.stage(name, "ACSCurrent")
	if cur.login(e.t, e.sshd) == nil {
		return
	}
	if pend, ok := e.stage(name, "ACSPending"); ok && pend.login(e.t, e.sshd) == nil {
		return
	}
	e.t.Fatal("lockout: neither ACSCurrent nor ACSPending logs in")
}

// converged asserts the end state: one of (old, new) is ACSCurrent and
// logs in, no ACSPending is left, and the other value is refused.
func (e *rotEnv) converged(name string, old ecsValue) *client.Rotation {
	e.t.Helper()
	r := e.waitRotation(name)
	if r.State != "succeeded" && r.State != "rolled-back" && r.State != "failed" {
		e.t.Fatalf("rotation ended %s: %+v", r.State, r)
	}
	cur, _ := e.stage(name, "ACSCurrent")
	if err := cur.login(e.t, e.sshd); err != nil {
		e.t.Fatalf("lockout after %s: ACSCurrent does not log in: %v", r.State, err)
	}
	if _, ok := e.stage(name, "ACSPending"); ok {
		e.t.Fatalf("ACSPending left after %s", r.State)
	}
	if r.State == "succeeded" {
		if cur == old {
			e.t.Fatal("succeeded but ACSCurrent is the old value")
		}
		if err := old.login(e.t, e.sshd); !errors.Is(err, sshdtest.ErrRefused) {
			e.t.Fatalf("the old credential still logs in after the rotation: %v", err)
		}
	} else if cur != old {
		e.t.Fatalf("%s but ACSCurrent changed", r.State)
	}
	return r
}

// passwordSetup makes a user with a password, enrolls the agent and
// creates the secret; it returns the secret name and its initial value.
func passwordSetup(t *testing.T, e *rotEnv, agentEnv ...string) (string, ecsValue) {
	t.Helper()
	const oldPW = "Initial-Passw0rd-for-tests"
	u := sshdtest.NewUser(t, sshdtest.UserOptions{Password: oldPW})
	e.startAgent(agentEnv...)
	e.waitUser(u.Name)
	name := "acs/ecs/" + e.hostID + "/" + u.Name
	old := ecsValue{UserName: u.Name, Password: oldPW}
	e.createSecret(name, "Password", map[string]string{"UserName": u.Name, "Password": oldPW}, nil)
	return name, old
}

func TestRotatePasswordEndToEnd(t *testing.T) {
	t.Parallel()
	e := newRotEnv(t, sshdtest.Options{})
	name, old := passwordSetup(t, e)
	if err := old.login(t, e.sshd); err != nil {
		t.Fatalf("the initial password does not log in: %v", err)
	}
	e.rotate(name, "v2")
	r := e.converged(name, old)
	if r.State != "succeeded" || r.Check != "ssh-login" {
		t.Fatalf("state %s check %q", r.State, r.Check)
	}
	var steps []string
	for _, s := range r.Steps.Step {
		steps = append(steps, s.Name+"="+s.State)
	}
	if got := strings.Join(steps, ","); got != "store-pending=ok,apply=ok,verify=ok,promote=ok" {
		t.Fatalf("steps %s", got)
	}
	// The end is in the audit trail, with the state and no value.
	var ends []auditRecord
	for deadline := time.Now().Add(30 * time.Second); len(ends) == 0 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		ends = auditEvents(t, e.kc, map[string]string{"EventAction": "keyhold:RotationFinished"})
	}
	if len(ends) != 1 || ends[0].Result != "OK" || ends[0].Params["State"] != "succeeded" || ends[0].Params["SecretName"] != name {
		t.Fatalf("audit of the rotation's end: %+v", ends)
	}
	cur, _ := e.stage(name, "ACSCurrent")
	if len(cur.Password) != 32 {
		t.Fatalf("generated password has %d characters", len(cur.Password))
	}
	if prev, _ := e.stage(name, "ACSPrevious"); prev != old {
		t.Fatal("ACSPrevious is not the old password")
	}
	// A repeated VersionId is an idempotent success and starts nothing.
	e.rotate(name, "v2")
	if out, _ := e.kc.ListRotations(context.Background(), &client.ListRotationsRequest{SecretName: name}); out.TotalCount != 1 {
		t.Fatalf("%d rotations after a repeated VersionId", out.TotalCount)
	}
	// A supplied value goes through the same steps.
	const mine = "Operator-chosen-Passw0rd-42"
	if _, err := e.kc.RotateSecret(context.Background(), &client.RotateSecretRequest{SecretName: name, VersionId: "v3",
		SecretData: `{"UserName":"` + old.UserName + `","Password":"` + mine + `"}`}); err != nil {
		t.Fatal(err)
	}
	if r := e.converged(name, cur); r.State != "succeeded" || !r.Supplied {
		t.Fatalf("supplied rotation: %s supplied=%v", r.State, r.Supplied)
	}
	if now, _ := e.stage(name, "ACSCurrent"); now.Password != mine {
		t.Fatal("the supplied password is not current")
	}
	// Nothing of the values reached the server's log.
	for _, v := range []string{old.Password, cur.Password, mine} {
		if strings.Contains(e.ts.logs.String(), v) {
			t.Fatal("a password appears in the server log")
		}
	}
}

// keySetup makes a key-only user with an authorized key, enrolls the agent
// and creates the SSHKey secret.
func keySetup(t *testing.T, e *rotEnv, extra map[string]any, agentEnv ...string) (string, ecsValue, *sshdtest.User) {
	t.Helper()
	u := sshdtest.NewUser(t, sshdtest.UserOptions{})
	signer, pub, priv := newSSHKey(t)
	u.AuthorizeKeys(t, signer.PublicKey())
	e.startAgent(agentEnv...)
	e.waitUser(u.Name)
	name := "acs/ecs/" + e.hostID + "/" + u.Name + "-key"
	old := ecsValue{UserName: u.Name, PublicKey: pub, PrivateKey: priv}
	e.createSecret(name, "SSHKey", map[string]string{"UserName": u.Name, "PublicKey": pub, "PrivateKey": priv}, extra)
	return name, old, u
}

func newSSHKey(t *testing.T) (ssh.Signer, string, string) {
	t.Helper()
	priv, pub, err := rotationKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey([]byte(priv))
	if err != nil {
		t.Fatal(err)
	}
	return signer, pub, priv
}

func TestRotateSSHKeyEndToEnd(t *testing.T) {
	t.Parallel()
	e := newRotEnv(t, sshdtest.Options{})
	name, old, u := keySetup(t, e, nil)
	akPath := filepath.Join(u.Home, ".ssh", "authorized_keys")
	before, err := os.Stat(akPath)
	if err != nil {
		t.Fatal(err)
	}
	e.rotate(name, "v2")
	r := e.converged(name, old)
	if r.State != "succeeded" || r.Check != "ssh-login" {
		t.Fatalf("state %s check %q error %q", r.State, r.Check, r.Error)
	}
	cur, _ := e.stage(name, "ACSCurrent")
	if !strings.HasPrefix(cur.PublicKey, "ssh-ed25519 ") {
		t.Fatalf("new key is not ed25519: %.20s", cur.PublicKey)
	}
	b, err := os.ReadFile(akPath)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), strings.Fields(old.PublicKey)[1]) {
		t.Fatal("the old public key is still in authorized_keys")
	}
	if !strings.Contains(string(b), strings.Fields(cur.PublicKey)[1]) {
		t.Fatal("the new public key is not in authorized_keys")
	}
	after, err := os.Stat(akPath)
	if err != nil {
		t.Fatal(err)
	}
	if after.Mode() != before.Mode() || fileOwner(after) != fileOwner(before) || fileOwner(after) != u.UID {
		t.Fatalf("authorized_keys mode/owner changed: %v/%d → %v/%d", before.Mode(), fileOwner(before), after.Mode(), fileOwner(after))
	}
}

// TestRotateStrictSSHD: sshd forbids password logins and root passwords,
// as real hosts often do. The agent verifies the password locally and says
// so; the key rotation still verifies by logging in.
func TestRotateStrictSSHD(t *testing.T) {
	t.Parallel()
	e := newRotEnv(t, sshdtest.Options{PermitRootLogin: "prohibit-password", NoPassword: true})
	name, old := passwordSetup(t, e)
	e.rotate(name, "v2")
	r := e.waitRotation(name)
	if r.State != "succeeded" || r.Check != "local" {
		t.Fatalf("state %s check %q error %q", r.State, r.Check, r.Error)
	}
	cur, _ := e.stage(name, "ACSCurrent")
	if !shadowMatches(t, old.UserName, cur.Password) || shadowMatches(t, old.UserName, old.Password) {
		t.Fatal("the shadow entry does not hold the new password (and only it)")
	}
	kname, kold, _ := keySetup(t, e, map[string]any{"KeyType": "RSA2048"})
	e.rotate(kname, "v2")
	kr := e.converged(kname, kold)
	if kr.State != "succeeded" || kr.Check != "ssh-login" {
		t.Fatalf("key rotation: state %s check %q", kr.State, kr.Check)
	}
	if cur, _ := e.stage(kname, "ACSCurrent"); !strings.HasPrefix(cur.PublicKey, "ssh-rsa ") {
		t.Fatal("KeyType RSA2048 did not give an RSA key")
	}
}

// shadowMatches checks a password against the user's shadow hash with the
// system's crypt(3) (perl's crypt), the password passed on stdin.
func shadowMatches(t *testing.T, user, pw string) bool {
	t.Helper()
	out, err := exec.Command("getent", "shadow", user).Output()
	if err != nil {
		t.Fatal(err)
	}
	hash := strings.Split(string(out), ":")[1]
	cmd := exec.Command("perl", "-e", `chomp(my $p = <STDIN>); print crypt($p, $ARGV[0]) eq $ARGV[0] ? "yes" : "no"`, hash)
	cmd.Stdin = strings.NewReader(pw + "\n")
	res, err := cmd.Output()
	if err != nil {
		t.Fatalf("perl crypt: %v", err)
	}
	return string(res) == "yes"
}

func rotationKeyPair() (string, string, error) { return rotation.NewKeyPair(rotation.KeyEd25519) }

func fileOwner(fi os.FileInfo) int { return int(fi.Sys().(*syscall.Stat_t).Uid) }

// TestRotationFaults kills the agent at each point of applying (its own
// crash hook SIGKILLs it), restarts the server at each step boundary, and
// cuts the agent's report after apply. Each time the invariant is checked
// with a real login while the fault holds, and again once the rotation
// converged. The faults run one after the other on one secret (a password,
// and an SSH key in parallel), each starting from where the last ended.
func TestRotationFaults(t *testing.T) {
	t.Parallel()
	crash := func(point string) []string { return []string{agent.EnvCrashAt + "=" + point} }
	type fault struct {
		name string
		run  func(t *testing.T, e *rotEnv, name, vid string)
	}
	passwordFaults := [][]fault{{
		// The agent dies at each point of a password apply; it comes back.
		{"agent killed after-receive", agentCrash(crash("after-receive:password.apply"))},
		{"agent killed after-apply", agentCrash(crash("after-apply:password.apply"))},
		{"agent killed after-verify", agentCrash(crash("after-verify:password.apply"))},
	}, {
		{"agent killed before-report", agentCrash(crash("before-report:password.apply"))},
		// The agent's report of the apply is cut; it reconnects.
		{"apply report cut", func(t *testing.T, e *rotEnv, name, vid string) {
			e.restartAgent(agent.EnvDropReport + "=after-apply")
			e.rotate(name, vid)
			e.holdsWorking(name)
		}},
		// The server restarts at each boundary.
		{"server restart after the agent applied", func(t *testing.T, e *rotEnv, name, vid string) {
			e.restartAgent(crash("before-report:password.apply")...)
			e.rotate(name, vid)
			e.waitAgentDied(name) // applied and journaled; no report
			e.restartServer()
			e.holdsWorking(name)
			e.startAgent()
		}},
	}, {
		// The agent is gone when apply is sent: the rotation rolls back
		// and the restore is confirmed only when the agent returns; the
		// restore itself is interrupted once.
		{"agent gone, restore interrupted", func(t *testing.T, e *rotEnv, name, vid string) {
			e.stopAgent()
			e.rotate(name, vid)
			e.waitRotation(name, "rolling-back")
			e.holdsWorking(name)
			e.startAgent(crash("after-receive:password.restore")...)
			e.waitAgentDied(name)
			e.holdsWorking(name)
			e.startAgent()
		}},
		{"server restart while apply is queued", func(t *testing.T, e *rotEnv, name, vid string) {
			e.stopAgent()
			e.rotate(name, vid)
			e.waitRotation(name, "applying", "rolling-back")
			e.restartServer()
			e.holdsWorking(name)
			e.startAgent()
		}},
		{"server restart while rolling back", func(t *testing.T, e *rotEnv, name, vid string) {
			e.stopAgent()
			e.rotate(name, vid)
			e.waitRotation(name, "rolling-back")
			e.restartServer()
			e.holdsWorking(name)
			e.startAgent()
		}},
	}}
	keyFaults := []fault{
		{"agent killed after-apply of a key", agentCrash(crash("after-apply:sshkey.apply"))},
		{"agent killed before reporting cleanup", agentCrash(crash("before-report:sshkey.cleanup"))},
		{"server restart during key cleanup", func(t *testing.T, e *rotEnv, name, vid string) {
			e.restartAgent(crash("after-receive:sshkey.cleanup")...)
			e.rotate(name, vid)
			e.waitAgentDied(name)
			e.restartServer()
			e.holdsWorking(name)
			e.startAgent()
		}},
	}
	type chain struct {
		name   string
		key    bool
		faults []fault
	}
	chains := []chain{{"ssh-key", true, keyFaults}}
	for i, fs := range passwordFaults {
		chains = append(chains, chain{fmt.Sprintf("password-%d", i+1), false, fs})
	}
	for _, chain := range chains {
		t.Run(chain.name, func(t *testing.T) {
			t.Parallel()
			e := newRotEnvTimeout(t, sshdtest.Options{}, 3*time.Second)
			var name string
			var old ecsValue
			if chain.key {
				name, old, _ = keySetup(t, e, nil)
			} else {
				name, old = passwordSetup(t, e)
			}
			for i, f := range chain.faults {
				start := time.Now()
				f.run(t, e, name, fmt.Sprintf("f%d", i+1))
				r := e.converged(name, old)
				t.Logf("%s: converged on %s in %s", f.name, r.State, time.Since(start).Round(100*time.Millisecond))
				old, _ = e.stage(name, "ACSCurrent")
			}
		})
	}
}

// agentCrash restarts the agent with a crash hook, rotates, waits for the
// agent to kill itself, checks the invariant, and starts it again.
func agentCrash(env []string) func(t *testing.T, e *rotEnv, name, vid string) {
	return func(t *testing.T, e *rotEnv, name, vid string) {
		e.restartAgent(env...)
		e.rotate(name, vid)
		e.waitAgentDied(name)
		e.holdsWorking(name)
		e.startAgent()
	}
}
