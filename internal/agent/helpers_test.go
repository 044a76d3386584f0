package agent_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/keyhold/keyhold/internal/agent"
	"github.com/keyhold/keyhold/internal/fleet"
	"github.com/keyhold/keyhold/internal/server"
	"github.com/keyhold/keyhold/internal/testutil/logbuf"
	"github.com/keyhold/keyhold/internal/testutil/sshdtest"
)

// The test binary doubles as an agent process (for the crash hooks, which
// SIGKILL the agent): KEYHOLD_AGENT_CHILD carries its Config as JSON.
func TestMain(m *testing.M) {
	if cfg := os.Getenv("KEYHOLD_AGENT_CHILD"); cfg != "" {
		var c agent.Config
		if err := json.Unmarshal([]byte(cfg), &c); err != nil {
			panic(err)
		}
		c.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
		a, err := agent.New(context.Background(), c)
		if err != nil {
			os.Stderr.WriteString("agent: " + err.Error() + "\n")
			os.Exit(3)
		}
		if err := a.Run(context.Background()); err != nil {
			os.Stderr.WriteString("agent: " + err.Error() + "\n")
			os.Exit(4)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

type env struct {
	srv   *server.Server
	fleet *fleet.Service
	sshd  *sshdtest.Server
	acct  string
	logs  *syncBuffer
}

// syncBuffer collects a component's log for the test to read.
type syncBuffer = logbuf.Buffer

func newEnv(t *testing.T, opts sshdtest.Options) *env {
	t.Helper()
	sshd := sshdtest.Start(t, opts)
	logs := &syncBuffer{}
	srv, err := server.Start(context.Background(), server.Config{
		DataDir: t.TempDir(), Listen: "127.0.0.1:0", TLSListen: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return &env{srv: srv, fleet: srv.Fleet(), sshd: sshd, acct: srv.Account, logs: logs}
}

func (e *env) token(t *testing.T) string {
	t.Helper()
	tok, err := e.fleet.CreateEnrollmentToken(context.Background(), e.acct, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	return tok.Token
}

func (e *env) config(t *testing.T, dir string) agent.Config {
	return agent.Config{Server: e.srv.HTTPSURL, Token: e.token(t), DataDir: dir, SSHDAddr: e.sshd.Addr,
		SSHDConfig: e.sshd.ConfigPath, PollTimeout: 5 * time.Second, DriftInterval: time.Hour,
		Logger: slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
}

// start enrolls an in-process agent and runs it until the test ends.
func (e *env) start(t *testing.T, cfg agent.Config) *agent.Agent {
	t.Helper()
	a, err := agent.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return a
}

// run enqueues cmd and waits for its result.
func (e *env) run(t *testing.T, hostID string, cmd fleet.Command) *fleet.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ch, unsub := e.srv.Fleet().Store().Subscribe(e.fleet.ResultsTopic(e.acct, hostID))
	defer unsub()
	if err := e.fleet.Enqueue(ctx, e.acct, hostID, cmd); err != nil {
		t.Fatal(err)
	}
	for {
		r, err := e.fleet.Result(ctx, e.acct, hostID, cmd.ID)
		if err != nil {
			t.Fatal(err)
		}
		if r != nil {
			return r
		}
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("no result for %s (%s)", cmd.ID, cmd.Op)
		}
	}
}

// waitHost waits until cond holds for the host record.
func (e *env) waitHost(t *testing.T, hostID string, cond func(*fleet.Host) bool) *fleet.Host {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ch, unsub := e.srv.Fleet().Store().Subscribe(e.fleet.HostsTopic(e.acct))
	defer unsub()
	for {
		h, err := e.fleet.Host(ctx, e.acct, hostID)
		if err != nil {
			t.Fatal(err)
		}
		if cond(h) {
			return h
		}
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("host %s never reached the expected state: %+v", hostID, h)
		}
	}
}

func newKey(t *testing.T) (ssh.Signer, string, string) {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	blk, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	return signer, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))), string(pem.EncodeToMemory(blk))
}

// child runs the agent as a separate process (this test binary) with
// extra environment; it returns a func that waits for it to exit.
func child(t *testing.T, cfg agent.Config, extraEnv ...string) (*exec.Cmd, func() error) {
	t.Helper()
	cfg.Logger = nil
	b, _ := json.Marshal(cfg)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append([]string{"KEYHOLD_AGENT_CHILD=" + string(b)}, extraEnv...)...)
	var stderr syncBuffer
	cmd.Stderr = io.MultiWriter(&stderr)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("agent process log:\n%s", stderr.String())
		}
	})
	var res error
	waited := false
	return cmd, func() error {
		if !waited {
			res, waited = <-done, true
			done <- res
		}
		return res
	}
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
