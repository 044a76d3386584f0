package bastion_test

// End-to-end tests with real components on both sides: the real Keyhold
// server (in process), a real enrolled agent, a real OpenSSH sshd as the
// target with throw-away users, and the real OpenSSH ssh, scp and sftp
// clients as the operator.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/keyhold/keyhold/client"
	"github.com/keyhold/keyhold/internal/agent"
	"github.com/keyhold/keyhold/internal/bastion"
	"github.com/keyhold/keyhold/internal/server"
	"github.com/keyhold/keyhold/internal/testutil/logbuf"
	"github.com/keyhold/keyhold/internal/testutil/rootcreds"
	"github.com/keyhold/keyhold/internal/testutil/sshdtest"
)

// syncBuffer collects a component's log for the test to read.
type syncBuffer = logbuf.Buffer

// env is one deployment: server, target sshd with an agent, bastion.
type env struct {
	t          testing.TB
	tmp        string
	srv        *server.Server
	root       *client.Client // the account root (secret administrator)
	bc         *client.Client // the bastion's own key (KeyholdBastionAccess)
	sshd       *sshdtest.Server
	hostID     string
	pwUser     *sshdtest.User
	keyUser    *sshdtest.User
	pwSecret   string
	keySecret  string
	dir        *bastion.Dir
	b          *bastion.Server
	port       string
	aliceKey   string // private key file of operator alice
	bobKey     string // operator bob, no grants
	strangerKy string // a key no operator holds
	knownHosts string
	keyUserKey string // the key user's private key, for direct logins in benchmarks
	agentCfg   agent.Config
	agentStop  func()

	serverLogs, bastionLogs, agentLogs *syncBuffer
	clientOut                          *syncBuffer // every ssh/scp/sftp output
	values                             []string    // every credential value used
}

func writeKey(t testing.TB, dir, name string) (string, ssh.PublicKey) {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	blk, err := ssh.MarshalPrivateKey(priv, name)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(blk), 0o600); err != nil {
		t.Fatal(err)
	}
	pub, _ := ssh.NewPublicKey(priv.Public())
	return path, pub
}

// keyPair returns an ECS SSHKey secret value for a fresh key pair.
func keyPair(t testing.TB, user string) (value string, pub ssh.PublicKey, privPEM string) {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	blk, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	pub, _ = ssh.NewPublicKey(priv.Public())
	privPEM = string(pem.EncodeToMemory(blk))
	b, _ := json.Marshal(map[string]string{"UserName": user, "PublicKey": bastion.KeyString(pub), "PrivateKey": privPEM})
	return string(b), pub, privPEM
}

func newEnv(t testing.TB) *env {
	t.Helper()
	sshdtest.Require(t)
	for _, bin := range []string{"ssh", "scp", "sftp"} {
		if _, err := exec.LookPath(bin); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is not installed (apt-get install -y openssh-client)", bin)
			}
			t.Skipf("%s is not installed (apt-get install -y openssh-client)", bin)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	e := &env{t: t, tmp: t.TempDir(), serverLogs: &syncBuffer{}, bastionLogs: &syncBuffer{}, agentLogs: &syncBuffer{}, clientOut: &syncBuffer{}}

	// Server.
	sdir := t.TempDir()
	srv, err := server.Start(ctx, server.Config{DataDir: sdir, Listen: "127.0.0.1:0", TLSListen: "127.0.0.1:0",
		Logger:   slog.New(slog.NewTextHandler(e.serverLogs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Rotation: server.RotationConfig{ApplyTimeout: 20 * time.Second, RetryMin: 100 * time.Millisecond, RetryMax: time.Second, ScanInterval: 200 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	e.srv = srv
	creds := rootcreds.Read(t, sdir)
	e.root = must(client.New(client.Config{Endpoint: srv.HTTPURL, AccessKeyID: creds.ID, AccessKeySecret: creds.Secret}))

	// Target sshd with two throw-away users.
	e.sshd = sshdtest.Start(t, sshdtest.Options{Extra: []string{"Subsystem sftp internal-sftp"}})
	pw := "Pw-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "-x9!"
	e.values = append(e.values, pw)
	e.pwUser = sshdtest.NewUser(t, sshdtest.UserOptions{Password: pw})
	e.keyUser = sshdtest.NewUser(t, sshdtest.UserOptions{})
	keyValue, keyPub, keyPriv := keyPair(t, e.keyUser.Name)
	e.values = append(e.values, privBody(keyPriv))
	e.keyUserKey = filepath.Join(e.tmp, "keyuser")
	check(t, os.WriteFile(e.keyUserKey, []byte(keyPriv), 0o600))
	e.keyUser.AuthorizeKeys(t, keyPub)

	// Real agent, enrolled with a token.
	tok, err := e.root.CreateEnrollmentToken(ctx, "1h", 1)
	if err != nil {
		t.Fatal(err)
	}
	e.agentCfg = agent.Config{Server: srv.HTTPSURL, Token: tok.Token, DataDir: t.TempDir(),
		SSHDAddr: e.sshd.Addr, SSHDConfig: e.sshd.ConfigPath, AdvertiseAddr: e.sshd.Addr,
		AllowUsers: []string{e.pwUser.Name, e.keyUser.Name}, PollTimeout: 2 * time.Second,
		Logger: slog.New(slog.NewTextHandler(e.agentLogs, nil))}
	e.startAgent()
	t.Cleanup(func() { e.stopAgent() })

	// ECS secrets for both accounts.
	e.pwSecret = "acs/ecs/" + e.hostID + "/" + e.pwUser.Name
	e.keySecret = "acs/ecs/" + e.hostID + "/" + e.keyUser.Name
	pwValue, _ := json.Marshal(map[string]string{"UserName": e.pwUser.Name, "Password": pw})
	for _, s := range []struct{ name, sub, value string }{{e.pwSecret, "Password", string(pwValue)}, {e.keySecret, "SSHKey", keyValue}} {
		_, err := e.root.CreateSecret(ctx, &client.CreateSecretRequest{SecretName: s.name, SecretType: "ECS", VersionId: "v1",
			SecretData: s.value, ExtendedConfig: map[string]any{"SecretSubType": s.sub, "RegionId": "cn-hangzhou", "InstanceId": e.hostID}})
		if err != nil {
			t.Fatalf("create %s: %v", s.name, err)
		}
	}

	// The bastion's own key, holding only KeyholdBastionAccess.
	if err := e.root.RAM(ctx, "CreateUser", map[string]string{"UserName": "bastion"}, &client.UserResponse{}); err != nil {
		t.Fatal(err)
	}
	var ak client.CreateAccessKeyResponse
	if err := e.root.RAM(ctx, "CreateAccessKey", map[string]string{"UserName": "bastion"}, &ak); err != nil {
		t.Fatal(err)
	}
	if err := e.root.RAM(ctx, "AttachPolicyToUser", map[string]string{"PolicyType": "System", "PolicyName": "KeyholdBastionAccess", "UserName": "bastion"}, &client.Response{}); err != nil {
		t.Fatal(err)
	}
	e.values = append(e.values, ak.AccessKey.AccessKeySecret)
	e.bc = must(client.New(client.Config{Endpoint: srv.HTTPURL, AccessKeyID: ak.AccessKey.AccessKeyId, AccessKeySecret: ak.AccessKey.AccessKeySecret}))

	// Bastion: import, operators, grants, start.
	e.dir = must(bastion.OpenDir(filepath.Join(e.tmp, "bastion")))
	imported, err := bastion.Import(ctx, e.bc, e.dir, nil)
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	if len(imported) != 2 || !imported[0].Agent || imported[0].Address != e.sshd.Addr || imported[0].HostKeys == 0 {
		t.Fatalf("imported %+v", imported)
	}
	var alicePub, bobPub ssh.PublicKey
	e.aliceKey, alicePub = writeKey(t, e.tmp, "alice")
	e.bobKey, bobPub = writeKey(t, e.tmp, "bob")
	e.strangerKy, _ = writeKey(t, e.tmp, "stranger")
	check(t, e.dir.AddOperator("alice", []ssh.PublicKey{alicePub}))
	check(t, e.dir.AddOperator("bob", []ssh.PublicKey{bobPub}))
	for _, u := range []string{e.pwUser.Name, e.keyUser.Name} {
		_, err := e.dir.AddGrant(bastion.Grant{Operator: "alice", Host: e.hostID, Account: u})
		check(t, err)
	}
	e.b = must(bastion.Start(bastion.Config{Dir: e.dir, Client: e.bc, Listen: "127.0.0.1:0", WatchInterval: 100 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(e.bastionLogs, &slog.HandlerOptions{Level: slog.LevelDebug}))}))
	t.Cleanup(func() { e.b.Close() })
	_, e.port, _ = net.SplitHostPort(e.b.Addr())
	// The operator's client trusts the bastion's key (no TOFU warning in
	// the output the tests read).
	e.knownHosts = filepath.Join(e.tmp, "known_hosts")
	check(t, os.WriteFile(e.knownHosts, []byte("[127.0.0.1]:"+e.port+" "+bastion.KeyString(must(e.b.HostKey()))+"\n"), 0o600))
	return e
}

// startAgent runs the host's agent (enrolling on the first call).
func (e *env) startAgent() {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ag, err := agent.New(ctx, e.agentCfg)
	if err != nil {
		e.t.Fatal(err)
	}
	e.hostID = ag.HostID()
	done := make(chan struct{})
	go func() { ag.Run(ctx); close(done) }()
	e.agentStop = func() { cancel(); <-done }
}

func (e *env) stopAgent() {
	if e.agentStop != nil {
		e.agentStop()
		e.agentStop = nil
	}
}

func privBody(p string) string {
	lines := strings.Split(strings.TrimSpace(p), "\n")
	return lines[len(lines)/2] // one full base64 line from the middle of the key
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func check(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func (e *env) sshOpts(key string) []string {
	return []string{"-F", "/dev/null", "-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=" + e.knownHosts,
		"-o", "IdentitiesOnly=yes", "-o", "LogLevel=INFO", "-o", "ConnectTimeout=20", "-i", key}
}

// run runs an OpenSSH client and returns its combined output and exit code.
func (e *env) run(stdin io.Reader, name string, args ...string) (string, int) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = stdin
	cmd.Env = append(os.Environ(), "SSH_AUTH_SOCK=")
	out, err := cmd.CombinedOutput()
	e.clientOut.Write(out)
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("%s: %v", name, err)
	}
	return string(out), code
}

func (e *env) ssh(key, user string, stdin io.Reader, cmd ...string) (string, int) {
	e.t.Helper()
	args := append(e.sshOpts(key), "-p", e.port, user+"@127.0.0.1")
	return e.run(stdin, "ssh", append(args, cmd...)...)
}

func TestBastion(t *testing.T) {
	e := newEnv(t)
	pw, ky := e.pwUser.Name+"@"+e.hostID, e.keyUser.Name+"@"+e.hostID

	t.Run("exec", func(t *testing.T) {
		out, code := e.ssh(e.aliceKey, pw, nil, "echo hi; whoami; exit 3")
		if code != 3 || !strings.Contains(out, "hi\n"+e.pwUser.Name+"\n") {
			t.Fatalf("exit %d, output %q", code, out)
		}
		out, code = e.ssh(e.aliceKey, ky, nil, "whoami")
		if code != 0 || strings.TrimSpace(out) != e.keyUser.Name {
			t.Fatalf("key user: exit %d, output %q", code, out)
		}
	})

	t.Run("shell", func(t *testing.T) {
		out, code := e.ssh(e.aliceKey, pw, strings.NewReader("echo hi-from-shell; exit\n"), "-T")
		if code != 0 || !strings.Contains(out, "hi-from-shell") {
			t.Fatalf("exit %d, output %q", code, out)
		}
	})

	t.Run("pty", func(t *testing.T) {
		// A PTY with a window change, driven by the Go client as the
		// operator (OpenSSH's client needs a real terminal for SIGWINCH).
		signer := must(ssh.ParsePrivateKey(must(os.ReadFile(e.aliceKey))))
		c := must(ssh.Dial("tcp", e.b.Addr(), &ssh.ClientConfig{User: pw, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, HostKeyCallback: ssh.InsecureIgnoreHostKey()}))
		defer c.Close()
		s := must(c.NewSession())
		check(t, s.RequestPty("xterm", 24, 80, ssh.TerminalModes{ssh.ECHO: 0}))
		in := must(s.StdinPipe())
		var out syncBuffer
		s.Stdout = &out
		check(t, s.Shell())
		check(t, s.WindowChange(50, 132))
		fmt.Fprint(in, "tty; stty size; exit 5\n")
		err := s.Wait()
		var ee *ssh.ExitError
		if !asExit(err, &ee) || ee.ExitStatus() != 5 {
			t.Fatalf("wait: %v; output %q", err, out.String())
		}
		if !strings.Contains(out.String(), "/dev/pts/") || !strings.Contains(out.String(), "50 132") {
			t.Fatalf("output %q", out.String())
		}
	})

	t.Run("scp", func(t *testing.T) {
		src := filepath.Join(e.tmp, "up.bin")
		data := make([]byte, 1<<20+17)
		rand.Read(data)
		check(t, os.WriteFile(src, data, 0o600))
		base := append(e.sshOpts(e.aliceKey), "-P", e.port)
		// Upload with the SFTP-based scp, download with the legacy protocol.
		if out, code := e.run(nil, "scp", append(base, src, pw+"@127.0.0.1:up.bin")...); code != 0 {
			t.Fatalf("scp up: %d %s", code, out)
		}
		got := must(os.ReadFile(filepath.Join(e.pwUser.Home, "up.bin")))
		if !bytes.Equal(got, data) {
			t.Fatal("uploaded file differs")
		}
		dst := filepath.Join(e.tmp, "down.bin")
		if out, code := e.run(nil, "scp", append(append([]string{"-O"}, base...), pw+"@127.0.0.1:up.bin", dst)...); code != 0 {
			t.Fatalf("scp -O down: %d %s", code, out)
		}
		if !bytes.Equal(must(os.ReadFile(dst)), data) {
			t.Fatal("downloaded file differs")
		}
	})

	t.Run("sftp", func(t *testing.T) {
		src := filepath.Join(e.tmp, "big.bin")
		data := make([]byte, 10<<20)
		rand.Read(data)
		check(t, os.WriteFile(src, data, 0o600))
		back := filepath.Join(e.tmp, "big.back")
		batch := filepath.Join(e.tmp, "batch")
		check(t, os.WriteFile(batch, []byte(fmt.Sprintf("put %s big.bin\nget big.bin %s\n", src, back)), 0o600))
		out, code := e.run(nil, "sftp", append(e.sshOpts(e.aliceKey), "-P", e.port, "-b", batch, ky+"@127.0.0.1")...)
		if code != 0 {
			t.Fatalf("sftp: %d %s", code, out)
		}
		if sha(must(os.ReadFile(back))) != sha(data) || sha(must(os.ReadFile(filepath.Join(e.keyUser.Home, "big.bin")))) != sha(data) {
			t.Fatal("checksum mismatch")
		}
	})

	t.Run("forwarding", func(t *testing.T) {
		// ssh -W opens a direct-tcpip channel: refused without the grant.
		out, code := e.ssh(e.aliceKey, pw, nil, "-W", e.sshd.Addr)
		if code == 0 || !strings.Contains(out, "port forwarding is not allowed by your grant") {
			t.Fatalf("exit %d, output %q", code, out)
		}
		_, err := e.dir.AddGrant(bastion.Grant{Operator: "alice", Host: e.hostID, Account: e.pwUser.Name, PortForwarding: true})
		check(t, err)
		out, _ = e.ssh(e.aliceKey, pw, strings.NewReader(""), "-W", e.sshd.Addr)
		if !strings.HasPrefix(out, "SSH-2.0-OpenSSH") {
			t.Fatalf("forwarded connection got %q", out)
		}
		_, err = e.dir.AddGrant(bastion.Grant{Operator: "alice", Host: e.hostID, Account: e.pwUser.Name})
		check(t, err)
	})

	t.Run("agent forwarding", func(t *testing.T) {
		sock := filepath.Join(e.tmp, "agent.sock")
		ag := exec.Command("ssh-agent", "-D", "-a", sock)
		check(t, ag.Start())
		defer func() { ag.Process.Kill(); ag.Wait() }()
		waitUntil(t, func() bool { _, err := os.Stat(sock); return err == nil })
		add := exec.Command("ssh-add", e.aliceKey)
		add.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
		if out, err := add.CombinedOutput(); err != nil {
			t.Fatalf("ssh-add: %v %s", err, out)
		}
		withAgent := func() (string, int) {
			args := append(e.sshOpts(e.aliceKey), "-o", "IdentityAgent="+sock, "-A", "-p", e.port, pw+"@127.0.0.1", `ssh-add -l; echo "sock=[$SSH_AUTH_SOCK]"`)
			return e.run(nil, "ssh", args...)
		}
		out, _ := withAgent()
		if !strings.Contains(out, "agent forwarding is not allowed by your grant") || !strings.Contains(out, "sock=[]") {
			t.Fatalf("without the grant: %q", out)
		}
		_, err := e.dir.AddGrant(bastion.Grant{Operator: "alice", Host: e.hostID, Account: e.pwUser.Name, AgentForwarding: true})
		check(t, err)
		defer e.dir.AddGrant(bastion.Grant{Operator: "alice", Host: e.hostID, Account: e.pwUser.Name})
		alicePub := must(ssh.ParsePrivateKey(must(os.ReadFile(e.aliceKey)))).PublicKey()
		out, code := withAgent()
		if code != 0 || !strings.Contains(out, ssh.FingerprintSHA256(alicePub)) {
			t.Fatalf("with the grant: exit %d %q", code, out)
		}
	})

	t.Run("refused", func(t *testing.T) {
		// A host account whose secret the bastion's key may not read.
		ctx := context.Background()
		_, err := e.root.CreateSecret(ctx, &client.CreateSecretRequest{SecretName: "team/db", SecretData: "not-for-bastion-Zq81", VersionId: "v1"})
		check(t, err)
		e.values = append(e.values, "not-for-bastion-Zq81")
		check(t, e.dir.AddHost(bastion.Host{ID: e.hostID, Address: e.sshd.Addr, Accounts: []bastion.Account{{User: "dbuser", Secret: "team/db"}}}))
		_, err = e.dir.AddGrant(bastion.Grant{Operator: "alice", Host: e.hostID, Account: "dbuser"})
		check(t, err)
		// A host that is down, and one whose pinned key is not the sshd's.
		dead := deadAddr(t)
		check(t, e.dir.AddHost(bastion.Host{ID: "down", Address: dead, Accounts: []bastion.Account{{User: e.pwUser.Name, Secret: e.pwSecret}}}))
		_, other := writeKey(t, e.tmp, "otherhost")
		check(t, e.dir.AddHost(bastion.Host{ID: "impostor", Address: e.sshd.Addr, HostKeys: []string{bastion.KeyString(other)}, Agent: true,
			Accounts: []bastion.Account{{User: e.pwUser.Name, Secret: e.pwSecret}}}))
		for _, h := range []string{"down", "impostor"} {
			_, err := e.dir.AddGrant(bastion.Grant{Operator: "alice", Host: h, Account: e.pwUser.Name})
			check(t, err)
		}
		cases := []struct{ name, key, user, want string }{
			{"unknown key", e.strangerKy, pw, "none of the offered public keys belongs to an operator"},
			{"no grant", e.bobKey, pw, "operator bob has no grant for " + pw},
			{"unknown host", e.aliceKey, e.pwUser.Name + "@nosuchhost", `unknown host "nosuchhost"`},
			{"unknown account", e.aliceKey, "nobody@" + e.hostID, `has no account "nobody"`},
			{"malformed user", e.aliceKey, "justauser", `malformed user "justauser"`},
			{"secret not readable", e.aliceKey, "dbuser@" + e.hostID, "the bastion may not read secret team/db (Forbidden."},
			{"host down", e.aliceKey, e.pwUser.Name + "@down", "host down (" + dead + ") is unreachable"},
			{"wrong host key", e.aliceKey, e.pwUser.Name + "@impostor", "host key of impostor (" + e.sshd.Addr + ") changed"},
		}
		for _, c := range cases {
			out, code := e.ssh(c.key, c.user, nil, "echo should-not-run")
			if code != 255 || !strings.Contains(out, c.want) || strings.Contains(out, "should-not-run") {
				t.Errorf("%s: exit %d, output %q, want %q", c.name, code, out, c.want)
			}
			if n := strings.Count(out, "keyhold bastion:"); n != 1 {
				t.Errorf("%s: %d reasons, want one line: %q", c.name, n, out)
			}
		}
		// The bastion writes a refusal's log line after the operator has
		// read the reason and hung up, so the last one may trail the
		// client's exit: wait for it (bounded) rather than race it.
		refused := 0
		for deadline := time.Now().Add(10 * time.Second); ; {
			refused = 0
			for _, s := range must(e.dir.Sessions()) {
				if s.State == "refused" {
					refused++
				}
			}
			if refused >= len(cases) || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if refused < len(cases) {
			t.Errorf("session log has %d refused entries, want ≥ %d", refused, len(cases))
		}
	})

	t.Run("rotation", func(t *testing.T) {
		for _, acct := range []struct{ user, secret string }{{pw, e.pwSecret}, {ky, e.keySecret}} {
			// An open session: a shell reading commands from a pipe.
			s := e.startSession(acct.user)
			s.send("echo before")
			s.waitFor("before")
			e.rotate(acct.secret)
			s.send("echo after-rotation")
			s.waitFor("after-rotation")
			s.close()
			out, code := e.ssh(e.aliceKey, acct.user, nil, "echo next-connection")
			if code != 0 || !strings.Contains(out, "next-connection") {
				t.Fatalf("%s after rotation: exit %d %q", acct.secret, code, out)
			}
		}
	})

	t.Run("fallback to ACSPrevious", func(t *testing.T) {
		// Put the previous password back on the host, as a rotation
		// rolled back on the host after promoting would leave it: the host
		// refuses ACSCurrent and the bastion logs in with ACSPrevious.
		// (Keyhold refuses to move ECS stages by hand, so the host moves.)
		ctx := context.Background()
		pwOf := func(stage string) string {
			v := must(e.root.GetSecretValue(ctx, &client.GetSecretValueRequest{SecretName: e.pwSecret, VersionStage: stage}))
			var c struct{ Password string }
			json.Unmarshal([]byte(v.SecretData), &c)
			return c.Password
		}
		cur, prev := pwOf("ACSCurrent"), pwOf("ACSPrevious")
		if cur == prev || prev == "" {
			t.Fatal("no distinct ACSPrevious (the rotation subtest must run first)")
		}
		sshdtest.SetPassword(t, e.pwUser.Name, prev)
		defer sshdtest.SetPassword(t, e.pwUser.Name, cur)
		out, code := e.ssh(e.aliceKey, pw, nil, "echo via-fallback")
		if code != 0 || !strings.Contains(out, "via-fallback") {
			t.Fatalf("exit %d %q", code, out)
		}
		if !strings.Contains(e.bastionLogs.String(), "stage=ACSPrevious") {
			t.Error("the bastion did not log the fallback")
		}
	})

	t.Run("tofu and repin", func(t *testing.T) {
		// A host without an agent: its key is pinned at the first login.
		check(t, e.dir.AddHost(bastion.Host{ID: "lab", Name: "lab-1", Address: e.sshd.Addr, Accounts: []bastion.Account{{User: e.pwUser.Name, Secret: e.pwSecret}}}))
		_, err := e.dir.AddGrant(bastion.Grant{Operator: "alice", Host: "lab-1", Account: e.pwUser.Name})
		check(t, err)
		out, code := e.ssh(e.aliceKey, e.pwUser.Name+"@lab-1", nil, "echo tofu-ok")
		if code != 0 || !strings.Contains(out, "tofu-ok") {
			t.Fatalf("first login: exit %d %q", code, out)
		}
		h := must(e.dir.Load()).Host("lab")
		if len(h.HostKeys) != 1 || h.HostKeys[0] != bastion.KeyString(e.sshd.HostKey) {
			t.Fatalf("pinned %v", h.HostKeys)
		}
		// A changed key is refused, never silently re-pinned...
		_, other := writeKey(t, e.tmp, "otherlab")
		check(t, e.dir.Update(func(st *bastion.State) error {
			st.Host("lab").HostKeys = []string{bastion.KeyString(other)}
			return nil
		}))
		out, code = e.ssh(e.aliceKey, e.pwUser.Name+"@lab", nil, "true")
		if code != 255 || !strings.Contains(out, "host key of lab") || !strings.Contains(out, "hosts repin lab") {
			t.Fatalf("changed key: exit %d %q", code, out)
		}
		// ...until an administrator repins.
		keys := must(e.dir.Repin(context.Background(), nil, "lab"))
		if len(keys) != 1 || keys[0] != bastion.KeyString(e.sshd.HostKey) {
			t.Fatalf("repinned %v", keys)
		}
		if out, code = e.ssh(e.aliceKey, e.pwUser.Name+"@lab", nil, "true"); code != 0 {
			t.Fatalf("after repin: exit %d %q", code, out)
		}
		// An agent host repins from its agent's report.
		keys = must(e.dir.Repin(context.Background(), e.bc, e.hostID))
		if len(keys) == 0 || !strings.Contains(strings.Join(keys, "\n"), bastion.KeyString(e.sshd.HostKey)) {
			t.Fatalf("agent repin %v", keys)
		}
	})

	t.Run("fallback to ACSPending", func(t *testing.T) {
		// A rotation in flight whose new password is already on the host
		// (the agent applied it but has not reported yet): ACSCurrent is
		// refused and the bastion logs in with ACSPending. The agent is
		// stopped so that the rotation waits, and the host is changed as
		// the agent would have.
		ctx := context.Background()
		e.stopAgent()
		_, err := e.root.RotateSecret(ctx, &client.RotateSecretRequest{SecretName: e.pwSecret, VersionId: "pend" + strconv.FormatInt(time.Now().UnixNano(), 36)})
		check(t, err)
		var pending string
		waitUntil(t, func() bool {
			v, err := e.root.GetSecretValue(ctx, &client.GetSecretValueRequest{SecretName: e.pwSecret, VersionStage: "ACSPending"})
			if err != nil {
				return false
			}
			var c struct{ Password string }
			json.Unmarshal([]byte(v.SecretData), &c)
			pending = c.Password
			return pending != ""
		})
		e.values = append(e.values, pending)
		sshdtest.SetPassword(t, e.pwUser.Name, pending)
		out, code := e.ssh(e.aliceKey, pw, nil, "echo via-pending")
		if code != 0 || !strings.Contains(out, "via-pending") {
			t.Fatalf("exit %d %q", code, out)
		}
		if !strings.Contains(e.bastionLogs.String(), "stage=ACSPending") {
			t.Error("the bastion did not log the ACSPending fallback")
		}
		// The agent comes back and the rotation completes.
		e.startAgent()
		waitUntil(t, func() bool {
			l, err := e.root.ListRotations(ctx, &client.ListRotationsRequest{SecretName: e.pwSecret})
			return err == nil && len(l.Rotations.Rotation) > 0 && l.Rotations.Rotation[0].State == "succeeded"
		})
		if out, code := e.ssh(e.aliceKey, pw, nil, "echo after-pending"); code != 0 {
			t.Fatalf("after the rotation: exit %d %q", code, out)
		}
	})

	t.Run("revoke and kill", func(t *testing.T) {
		s := e.startSession(pw)
		s.send("echo up")
		s.waitFor("up")
		check(t, e.dir.Revoke("alice", e.hostID, e.pwUser.Name))
		s.waitFor("session ended: grant revoked")
		s.waitExit()
		out, code := e.ssh(e.aliceKey, pw, nil, "true")
		if code != 255 || !strings.Contains(out, "has no grant") {
			t.Fatalf("after revoke: %d %q", code, out)
		}
		_, err := e.dir.AddGrant(bastion.Grant{Operator: "alice", Host: e.hostID, Account: e.pwUser.Name})
		check(t, err)

		s = e.startSession(pw)
		s.send("echo up2")
		s.waitFor("up2")
		var id string
		for _, x := range must(e.dir.Sessions()) {
			if x.State == "open" {
				id = x.ID
			}
		}
		if id == "" {
			t.Fatal("no open session in the log")
		}
		check(t, e.dir.RequestKill(id))
		s.waitFor("killed by an administrator")
		s.waitExit()
		waitUntil(t, func() bool {
			for _, x := range must(e.dir.Sessions()) {
				if x.ID == id {
					return x.State == "closed"
				}
			}
			return false
		})
		if err := e.dir.RequestKill(id); err == nil || !strings.Contains(err.Error(), "not open") {
			t.Fatalf("second kill: %v", err)
		}
		if err := e.dir.RequestKill("../../etc"); err == nil {
			t.Fatal("a path as session id was accepted")
		}

		// Removing the operator ends their sessions as well.
		s = e.startSession(ky)
		s.send("echo up3")
		s.waitFor("up3")
		check(t, e.dir.RemoveOperator("alice"))
		s.waitFor("session ended: operator removed")
		s.waitExit()
	})

	t.Run("session log", func(t *testing.T) {
		ss := must(e.dir.Sessions())
		var exec3 *bastion.Session
		for i := range ss {
			if ss[i].ExitStatus != nil && *ss[i].ExitStatus == 3 {
				exec3 = &ss[i]
			}
		}
		if exec3 == nil || exec3.Operator != "alice" || exec3.Host != e.hostID || exec3.Account != e.pwUser.Name ||
			exec3.End == nil || exec3.BytesOut == 0 || !strings.HasPrefix(exec3.Source, "127.0.0.1:") {
			t.Fatalf("exec session record: %+v", exec3)
		}
		// The server's audit names the operator behind the bastion's key.
		if !strings.Contains(e.serverLogs.String()+auditText(t, e), "alice/"+exec3.ID) {
			t.Error("the server's audit does not name alice/<session>")
		}
	})

	t.Run("invisibility", func(t *testing.T) {
		// Every credential value used, including those rotation created.
		ctx := context.Background()
		for _, name := range []string{e.pwSecret, e.keySecret} {
			for _, stage := range []string{"ACSCurrent", "ACSPrevious"} {
				v, err := e.root.GetSecretValue(ctx, &client.GetSecretValueRequest{SecretName: name, VersionStage: stage})
				if err != nil {
					continue
				}
				var c struct{ Password, PrivateKey string }
				json.Unmarshal([]byte(v.SecretData), &c)
				if c.Password != "" {
					e.values = append(e.values, c.Password)
				}
				if c.PrivateKey != "" {
					e.values = append(e.values, privBody(c.PrivateKey))
				}
			}
		}
		if len(e.values) < 6 {
			t.Fatalf("only %d values collected", len(e.values))
		}
		sources := map[string]string{"bastion log": e.bastionLogs.String(), "server log": e.serverLogs.String(),
			"agent log": e.agentLogs.String(), "operator client output": e.clientOut.String()}
		filepath.Walk(e.dir.Path, func(p string, fi os.FileInfo, err error) error {
			if err == nil && !fi.IsDir() {
				sources[p] = string(must(os.ReadFile(p)))
			}
			return nil
		})
		if !strings.Contains(sources[filepath.Join(e.dir.Path, "sessions.jsonl")], `"event":"end"`) {
			t.Fatal("the scan did not see the session log")
		}
		for name, text := range sources {
			for _, v := range e.values {
				if strings.Contains(text, v) {
					t.Errorf("a credential value appears in %s", name)
				}
			}
		}
	})
}

func auditText(t *testing.T, e *env) string {
	var all strings.Builder
	tok := ""
	for range 50 {
		var out struct{ NextToken string }
		var raw json.RawMessage
		p := map[string]string{"MaxResults": "100", "EventAction": "GetSecretValue", "NextToken": tok}
		if err := e.root.Keyhold(context.Background(), "ListAuditEvents", p, &raw); err != nil {
			t.Fatalf("ListAuditEvents: %v", err)
		}
		all.Write(raw)
		json.Unmarshal(raw, &out)
		if tok = out.NextToken; tok == "" {
			break
		}
	}
	return all.String()
}

func asExit(err error, target **ssh.ExitError) bool {
	ee, ok := err.(*ssh.ExitError)
	if ok {
		*target = ee
	}
	return ok
}

func sha(b []byte) string { return fmt.Sprintf("%x", sha256.Sum256(b)) }

func deadAddr(t *testing.T) string {
	ln := must(net.Listen("tcp", "127.0.0.1:0"))
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func waitUntil(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// rotate rotates an ECS secret through the server and its agent and waits
// until the rotation has finished.
func (e *env) rotate(secret string) {
	e.t.Helper()
	ctx := context.Background()
	before := must(e.root.GetSecretValue(ctx, &client.GetSecretValueRequest{SecretName: secret}))
	if _, err := e.root.RotateSecret(ctx, &client.RotateSecretRequest{SecretName: secret, VersionId: "r" + strconv.FormatInt(time.Now().UnixNano(), 36)}); err != nil {
		e.t.Fatalf("rotate %s: %v", secret, err)
	}
	var last string
	waitUntil(e.t, func() bool {
		l, err := e.root.ListRotations(ctx, &client.ListRotationsRequest{SecretName: secret})
		if err != nil || len(l.Rotations.Rotation) == 0 {
			return false
		}
		last = l.Rotations.Rotation[0].State
		if last == "failed" || last == "rolled-back" || last == "abandoned" {
			e.t.Fatalf("rotation of %s ended %s: %s", secret, last, l.Rotations.Rotation[0].Error)
		}
		return last == "succeeded"
	})
	after := must(e.root.GetSecretValue(ctx, &client.GetSecretValueRequest{SecretName: secret}))
	if after.VersionId == before.VersionId {
		e.t.Fatalf("%s: ACSCurrent did not change", secret)
	}
}

// liveSession is an OpenSSH client with a shell fed through a pipe.
type liveSession struct {
	t    testing.TB
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *syncBuffer
	done chan error
}

func (e *env) startSession(user string) *liveSession {
	e.t.Helper()
	args := append(e.sshOpts(e.aliceKey), "-T", "-p", e.port, user+"@127.0.0.1")
	cmd := exec.Command("ssh", args...)
	cmd.Env = append(os.Environ(), "SSH_AUTH_SOCK=")
	s := &liveSession{t: e.t, cmd: cmd, out: &syncBuffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = io.MultiWriter(s.out, e.clientOut), io.MultiWriter(s.out, e.clientOut)
	s.in = must(cmd.StdinPipe())
	check(e.t, cmd.Start())
	go func() { s.done <- cmd.Wait() }()
	e.t.Cleanup(func() { cmd.Process.Kill() })
	return s
}

func (s *liveSession) send(line string) { fmt.Fprintln(s.in, line) }

func (s *liveSession) waitFor(text string) {
	s.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(s.out.String(), text) {
		if time.Now().After(deadline) {
			s.t.Fatalf("no %q in session output %q", text, s.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *liveSession) waitExit() {
	s.t.Helper()
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		s.t.Fatal("ssh did not exit")
	}
}

func (s *liveSession) close() {
	s.t.Helper()
	s.send("exit")
	s.in.Close()
	s.waitExit()
}
