// Package agent is `keyhold agent`, the program that runs as root on an
// enrolled host. It connects only outbound to the Keyhold server (a signed
// long-poll over HTTPS that trusts only the CA pinned in the enrollment
// token), carries out password and SSH-key commands on local accounts in
// its allow-list, verifies them by logging in to the local sshd, and keeps
// a durable journal so that a repeated command is applied once and a
// rotation can always be undone. It also reports changes to managed
// accounts that Keyhold did not make (drift).
//
// It depends on no server package: only the protocol's shared wire types.
package agent

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/keyhold/keyhold/internal/agentapi/wire"
)

// Version is the agent's version, reported to the server.
var Version = "dev"

// Config is what `keyhold agent` takes from its flags.
type Config struct {
	// Server is the server's URL, or several replicas' URLs separated by
	// commas; Servers adds more (the repeatable --server flag). Each is
	// https://… (http:// only to loopback).
	Server        string
	Servers       []string
	Token         string // needed on the first run only
	DataDir       string
	SSHDAddr      string // default 127.0.0.1:22
	SSHDConfig    string // sshd_config for `sshd -T` ("" = sshd's default)
	AdvertiseAddr string
	AllowUsers    []string
	PollTimeout   time.Duration // how long the server may hold a poll (default 25s)
	DriftInterval time.Duration // default 1m
	Logger        *slog.Logger
	// System is the host the agent acts on (nil: this Unix host).
	System System
	// Fault and DropReport are test hooks (also read from the environment,
	// KEYHOLD_AGENT_TEST_CRASH_AT and KEYHOLD_AGENT_TEST_DROP_REPORT):
	//   Fault "<point>[:<op>]" SIGKILLs the agent itself at point, one of
	//   after-receive (journaled as started, nothing applied), after-apply
	//   (applied, not verified), after-verify (verified, result not
	//   journaled), before-report (result journaled, not sent);
	//   DropReport "after-apply[:<op>]" skips sending the first report of
	//   each such command and drops the connection, as if the network cut
	//   it; the server re-delivers and the journal re-reports.
	Fault      string
	DropReport string
}

// Environment variables of the test hooks.
const (
	EnvCrashAt    = "KEYHOLD_AGENT_TEST_CRASH_AT"
	EnvDropReport = "KEYHOLD_AGENT_TEST_DROP_REPORT"
)

// identity is what the agent keeps in its data directory after enrolling.
// Server is the first replica's URL, kept for data directories written
// before Servers (the full replica list) existed.
type identity struct {
	HostID  string   `json:"host_id"`
	Account string   `json:"account"`
	Server  string   `json:"server"`
	Servers []string `json:"servers,omitempty"`
	CAPin   string   `json:"ca_pin"`
	CAPEM   string   `json:"ca_pem,omitempty"`
}

func (id *identity) servers() []string {
	if len(id.Servers) > 0 {
		return id.Servers
	}
	return []string{id.Server}
}

// serverList is the replica list given in the config (nil: none given).
func (c *Config) serverList() ([]*url.URL, error) {
	var raw []string
	if c.Server != "" {
		raw = append(raw, c.Server)
	}
	return parseServers(append(raw, c.Servers...))
}

func sameServers(a []*url.URL, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	in := map[string]bool{}
	for _, s := range b {
		in[s] = true
	}
	for _, u := range a {
		if !in[u.String()] {
			return false
		}
	}
	return true
}

const (
	keyFile      = "agent.key"
	identityFile = "identity.json"
)

// Agent is a running agent.
type Agent struct {
	cfg     Config
	log     *slog.Logger
	sys     System
	journal *journal
	id      identity
	api     *apiClient

	dropped        sync.Map // command id → dropped once (DropReport)
	freshInventory bool     // the enrollment just carried the inventory
	driftMu        sync.Mutex
	pending        []wire.DriftEvent // drift not yet delivered
}

// ErrRevoked is returned by Run when the server says the host was removed.
var ErrRevoked = errors.New("this host was removed from Keyhold: its identity is revoked; enroll again with a new token and a fresh --data-dir")

// New prepares an agent: it loads the identity from the data directory or,
// on a first run, generates a key pair and enrolls with the token.
func New(ctx context.Context, cfg Config) (*Agent, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("--data-dir is required")
	}
	// A bad --server is refused before anything is written.
	if _, err := cfg.serverList(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.PollTimeout <= 0 {
		cfg.PollTimeout = 25 * time.Second
	}
	if cfg.DriftInterval <= 0 {
		cfg.DriftInterval = time.Minute
	}
	if cfg.Fault == "" {
		cfg.Fault = os.Getenv(EnvCrashAt)
	}
	if cfg.DropReport == "" {
		cfg.DropReport = os.Getenv(EnvDropReport)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, err
	}
	if err := os.Chmod(cfg.DataDir, 0o700); err != nil {
		return nil, err
	}
	j, err := openJournal(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	a := &Agent{cfg: cfg, log: cfg.Logger, journal: j, sys: cfg.System}
	if a.sys == nil {
		a.sys = &Unix{SSHDAddr: cfg.SSHDAddr, SSHDConfig: cfg.SSHDConfig, AdvertiseAddr: cfg.AdvertiseAddr,
			AllowUsers: cfg.AllowUsers, Version: Version}
	}
	if u, ok := a.sys.(*Unix); ok {
		u.init(cfg.DataDir, j)
	}
	key, err := loadOrCreateKey(filepath.Join(cfg.DataDir, keyFile))
	if err != nil {
		return nil, err
	}
	if err := a.loadIdentity(); err != nil {
		return nil, err
	}
	if a.id.HostID == "" {
		if err := a.enroll(ctx, key); err != nil {
			return nil, err
		}
		a.freshInventory = true
	} else {
		given, err := cfg.serverList()
		if err != nil {
			return nil, err
		}
		var ca *x509.Certificate
		if a.id.CAPEM != "" {
			if ca, err = decodeCA([]byte(a.id.CAPEM)); err != nil {
				return nil, fmt.Errorf("stored CA: %w", err)
			}
		}
		bases, err := a.chooseServers(ctx, given, ca)
		if err != nil {
			return nil, err
		}
		a.api = newAPIClient(bases, a.id.CAPin, ca, a.log)
		a.api.hostID, a.api.key = a.id.HostID, key
	}
	return a, nil
}

// chooseServers decides which replicas a restarted agent talks to. A given
// --server list replaces the stored one (replicas were added, moved or
// removed): every connection is checked against the CA pinned at
// enrollment, which only this deployment's replicas satisfy, so the new
// list cannot lead the agent to another deployment. It is refused when it
// names only other deployments (none of its URLs presents a certificate
// under the pinned CA though at least one answered): that is a data
// directory started against the wrong server. When none answers the check
// cannot be made: the agent runs with the given list, each request still
// pin-checked, and stores it once a later start verifies it.
func (a *Agent) chooseServers(ctx context.Context, given []*url.URL, ca *x509.Certificate) ([]*url.URL, error) {
	stored, err := parseServers(a.id.servers())
	if err != nil {
		return nil, fmt.Errorf("stored identity: %w", err)
	}
	if len(given) == 0 || sameServers(given, a.id.servers()) {
		if len(given) > 0 {
			return given, nil // the order given is the order tried
		}
		return stored, nil
	}
	verified, answered := probe(ctx, given, a.id.CAPin, ca)
	switch {
	case verified:
		a.id.Servers = urlStrings(given)
		a.id.Server = a.id.Servers[0]
		if err := a.saveIdentity(); err != nil {
			return nil, err
		}
		a.log.Info("server list updated", "servers", strings.Join(a.id.Servers, ","), "was", strings.Join(urlStrings(stored), ","))
	case answered:
		return nil, fmt.Errorf("this data directory belongs to the deployment of server %s, and none of %s presents a certificate from its CA",
			strings.Join(urlStrings(stored), ","), strings.Join(urlStrings(given), ","))
	default:
		a.log.Warn("no server in --server could be checked against the pinned CA now; using it without storing it",
			"servers", strings.Join(urlStrings(given), ","))
	}
	return given, nil
}

func (a *Agent) saveIdentity() error {
	b, _ := json.MarshalIndent(a.id, "", "  ")
	return writeFileAtomic(filepath.Join(a.cfg.DataDir, identityFile), b, 0o600, -1, -1)
}

// HostID is the host id the server gave this agent.
func (a *Agent) HostID() string { return a.id.HostID }

func loadOrCreateKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		blk, _ := pem.Decode(b)
		if blk == nil {
			return nil, fmt.Errorf("%s: not a PEM key", path)
		}
		k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		ek, ok := k.(ed25519.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("%s: not an Ed25519 key", path)
		}
		return ek, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600, -1, -1); err != nil {
		return nil, err
	}
	return priv, nil
}

func (a *Agent) loadIdentity() error {
	b, err := os.ReadFile(filepath.Join(a.cfg.DataDir, identityFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	return json.Unmarshal(b, &a.id)
}

func (a *Agent) enroll(ctx context.Context, key ed25519.PrivateKey) error {
	if a.cfg.Token == "" {
		return errors.New("this host is not enrolled yet: pass --token (from `keyhold host token create`)")
	}
	bases, err := a.cfg.serverList()
	if err != nil {
		return err
	}
	if len(bases) == 0 {
		return errors.New("--server is required to enroll")
	}
	pin, err := wire.ParseToken(a.cfg.Token)
	if err != nil {
		return errors.New("--token is not a Keyhold enrollment token")
	}
	inv, err := a.sys.Inventory(ctx)
	if err != nil {
		return fmt.Errorf("inventory: %w", err)
	}
	// The first replica that answers enrolls the host; all share one
	// database, so the others know it too.
	c := newAPIClient(bases, pin, nil, a.log)
	c.key = key
	req := wire.EnrollRequest{
		Token:     a.cfg.Token,
		PublicKey: base64.StdEncoding.EncodeToString(key.Public().(ed25519.PublicKey)),
		Inventory: inv,
		Proof:     base64.StdEncoding.EncodeToString(ed25519.Sign(key, []byte(wire.EnrollProof(a.cfg.Token)))),
	}
	var resp wire.EnrollResponse
	hr, err := c.do(ctx, wire.PathEnroll, req, &resp, false)
	if err != nil {
		return fmt.Errorf("enroll: %w", err)
	}
	servers := urlStrings(bases)
	id := identity{HostID: resp.HostID, Account: resp.Account, Server: servers[0], Servers: servers, CAPin: pin}
	if ca := caFromChain(hr.TLS, pin); ca != nil {
		id.CAPEM = string(encodeCA(ca))
	}
	a.id = id
	if err := a.saveIdentity(); err != nil {
		return err
	}
	c.hostID = id.HostID
	a.api = c
	_, cur := c.current()
	a.log.Info("enrolled", "host_id", id.HostID, "server", cur)
	return nil
}

// Run polls for commands until ctx ends or the host is removed.
func (a *Agent) Run(ctx context.Context) error {
	// The drift loop writes its baseline into the data dir: stop it and
	// wait for it before Run returns, so nothing writes after shutdown.
	ctx, stop := context.WithCancel(ctx)
	driftDone := make(chan struct{})
	go func() { defer close(driftDone); a.driftLoop(ctx) }()
	defer func() { stop(); <-driftDone }()
	invDue := time.Time{}
	if a.freshInventory {
		invDue = time.Now().Add(10 * time.Minute)
	}
	backoff := time.Duration(0)
	for ctx.Err() == nil {
		if time.Now().After(invDue) {
			if err := a.reportInventory(ctx); err != nil {
				if revoked(err) {
					return ErrRevoked
				}
				a.log.Warn("inventory report failed", "err", err)
			} else {
				invDue = time.Now().Add(10 * time.Minute)
			}
		}
		err := a.pollOnce(ctx)
		switch {
		case err == nil:
			backoff = 0
			continue
		case revoked(err):
			return ErrRevoked
		case ctx.Err() != nil:
			return nil
		}
		backoff = nextBackoff(backoff)
		a.log.Warn("server unreachable; retrying", "err", err, "in", backoff.Round(time.Millisecond))
		a.api.closeIdle()
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
	}
	return nil
}

// nextBackoff doubles up to a minute, with full jitter so that many agents
// do not reconnect in step after a server restart.
func nextBackoff(prev time.Duration) time.Duration {
	const lo, hi = 500 * time.Millisecond, time.Minute
	d := prev * 2
	if d < lo {
		d = lo
	}
	if d > hi {
		d = hi
	}
	n, _ := rand.Int(rand.Reader, big.NewInt(int64(d)))
	return d/2 + time.Duration(n.Int64())/2
}

func (a *Agent) reportInventory(ctx context.Context) error {
	inv, err := a.sys.Inventory(ctx)
	if err != nil {
		return err
	}
	_, err = a.api.do(ctx, wire.PathReport, wire.ReportRequest{Inventory: &inv}, nil, true)
	return err
}

func (a *Agent) pollOnce(ctx context.Context) error {
	pctx, cancel := context.WithTimeout(ctx, a.cfg.PollTimeout+30*time.Second)
	defer cancel()
	var resp wire.PollResponse
	idx, _ := a.api.current()
	if _, err := a.api.do(pctx, wire.PathPoll, wire.PollRequest{WaitSeconds: int(a.cfg.PollTimeout / time.Second)}, &resp, true); err != nil {
		if pctx.Err() != nil && ctx.Err() == nil {
			// The replica held the poll past its own limit: it hangs (no
			// connection error will come); the next poll tries another.
			a.api.switchFrom(idx, err)
		}
		return err
	}
	for i := range resp.Commands {
		res, send := a.handle(ctx, resp.Commands[i])
		clearCommand(&resp.Commands[i])
		if !send {
			a.api.closeIdle()
			return errors.New("test hook: report dropped")
		}
		a.fault("before-report", res.op)
		if _, err := a.api.do(ctx, wire.PathReport, wire.ReportRequest{Results: []wire.Result{res.Result}}, nil, true); err != nil {
			return err
		}
	}
	return nil
}

func clearCommand(c *wire.Command) {
	c.Password, c.PrivateKey = "", ""
}

type handled struct {
	wire.Result
	op string
}

// handle runs one command through the journal: a command already done is
// not applied again, its recorded result is re-sent.
func (a *Agent) handle(ctx context.Context, cmd wire.Command) (handled, bool) {
	e, err := a.journal.entry(cmd.ID)
	if err != nil {
		a.log.Error("journal unreadable", "command", cmd.ID, "err", err)
		return handled{Result: failed(cmd, "the agent's journal cannot be read"), op: cmd.Op}, true
	}
	if e != nil && e.State == "done" && e.Result != nil {
		a.log.Info("command already done; re-reporting", "command", cmd.ID, "op", cmd.Op, "status", e.Result.Status)
		return handled{Result: *e.Result, op: cmd.Op}, true
	}
	// "started" without a result: a crash interrupted it; running it again
	// is safe (the undo state from the first attempt is kept).
	if e == nil {
		e = &journalEntry{ID: cmd.ID, RotationID: cmd.RotationID, Op: cmd.Op, User: cmd.User, State: "started", Started: time.Now().UTC()}
		if err := a.journal.put(e); err != nil {
			return handled{Result: failed(cmd, "the agent's journal cannot be written"), op: cmd.Op}, true
		}
	}
	a.fault("after-receive", cmd.Op)
	res := a.sys.Execute(ctx, cmd, func(point string) { a.fault(point, cmd.Op) })
	res.CommandID = cmd.ID
	e.State, e.Result = "done", &res
	if err := a.journal.put(e); err != nil {
		a.log.Error("journal write failed", "command", cmd.ID, "err", err)
	}
	a.log.Info("command done", "command", cmd.ID, "rotation", cmd.RotationID, "op", cmd.Op, "user", cmd.User,
		"status", res.Status, "check", res.Check, "error", res.Error)
	if a.shouldDrop(cmd) {
		a.log.Warn("test hook: dropping the report", "command", cmd.ID)
		return handled{Result: res, op: cmd.Op}, false
	}
	return handled{Result: res, op: cmd.Op}, true
}

func hookMatches(spec, point, op string) bool {
	p, o, hasOp := strings.Cut(spec, ":")
	return p == point && (!hasOp || o == op)
}

// fault kills the process at a test hook point.
func (a *Agent) fault(point, op string) {
	if a.cfg.Fault != "" && hookMatches(a.cfg.Fault, point, op) {
		a.log.Warn("test hook: killing the agent", "at", point, "op", op)
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // never returns
	}
}

func (a *Agent) shouldDrop(cmd wire.Command) bool {
	// Without an op, "after-apply" means any of the apply operations.
	_, _, hasOp := strings.Cut(a.cfg.DropReport, ":")
	if !hookMatches(a.cfg.DropReport, "after-apply", cmd.Op) || !hasOp && !strings.HasSuffix(cmd.Op, ".apply") {
		return false
	}
	_, seen := a.dropped.LoadOrStore(cmd.ID, true)
	return !seen
}

func (a *Agent) driftLoop(ctx context.Context) {
	t := time.NewTicker(a.cfg.DriftInterval)
	defer t.Stop()
	for {
		a.checkDrift(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// CheckDrift scans once and reports what changed (tests; the loop calls it).
func (a *Agent) checkDrift(ctx context.Context) {
	evs, err := a.sys.Drift(ctx)
	if err != nil {
		a.log.Warn("drift scan failed", "err", err)
	}
	a.driftMu.Lock()
	defer a.driftMu.Unlock()
	a.pending = append(a.pending, evs...)
	if len(a.pending) == 0 {
		return
	}
	for _, ev := range evs {
		a.log.Warn("drift: an account changed outside Keyhold", "user", ev.User, "what", ev.What)
	}
	if _, err := a.api.do(ctx, wire.PathReport, wire.ReportRequest{Drift: a.pending}, nil, true); err != nil {
		a.log.Warn("drift report failed; will retry", "err", err)
		return
	}
	a.pending = nil
}
