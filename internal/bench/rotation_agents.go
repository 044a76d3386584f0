package bench

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keyhold/keyhold/internal/agentapi/wire"
)

// Simulated agents speak the agent protocol (enroll, signed long-poll,
// signed report) to the server's real handler, but act on an in-memory
// host: no user, file or sshd of this machine is touched. Their requests go
// to the handler in memory rather than over sockets, so that 10,000
// long-polls do not need 20,000 file descriptors.

// Agent faults for rotation-faults.
const (
	faultNone          = ""
	faultCrashReceive  = "crash-after-receive"  // journaled as started, nothing applied; restarts
	faultCrashApply    = "crash-after-apply"    // applied, no result; restarts and re-runs apply
	faultCrashReport   = "crash-before-report"  // result journaled, not sent; restarts and re-reports
	faultDropReport    = "drop-report"          // report lost with the connection; re-delivered
	faultSilent        = "silent"               // unreachable before applying, longer than the apply timeout
	faultSilentApplied = "silent-after-apply"   // applied, then unreachable longer than the apply timeout
	faultFailVerify    = "fail-verify"          // verification fails; restores and reports failed
	faultServerRestart = "server-restart-apply" // the server restarts while this host applies
	// faultLie is a broken agent, for the bench's own test: it applies,
	// then reports a failure, and confirms restores without restoring.
	faultLie = "lie"
)

var agentFaults = []string{faultNone, faultCrashReceive, faultCrashApply, faultCrashReport, faultDropReport,
	faultSilent, faultSilentApplied, faultFailVerify, faultServerRestart}

// handlerRef is the server's handler, swapped when the server restarts;
// nil while it is down (requests then fail as a refused connection would).
// Requests in flight when it is swapped are cancelled, as a closed
// connection would end them.
type handlerRef struct{ p atomic.Pointer[served] }

type served struct {
	h      http.Handler
	ctx    context.Context
	cancel context.CancelFunc
}

func (h *handlerRef) set(x http.Handler) {
	var next *served
	if x != nil {
		ctx, cancel := context.WithCancel(context.Background())
		next = &served{x, ctx, cancel}
	}
	if old := h.p.Swap(next); old != nil {
		old.cancel()
	}
}

// RoundTrip serves the request with the current handler in memory.
func (h *handlerRef) RoundTrip(req *http.Request) (*http.Response, error) {
	s := h.p.Load()
	if s == nil {
		return nil, errors.New("connection refused (server restarting)")
	}
	ctx, cancel := context.WithCancel(req.Context())
	defer cancel()
	stop := context.AfterFunc(s.ctx, cancel)
	defer stop()
	req = req.WithContext(ctx)
	req.RemoteAddr = "127.0.0.1:1"
	rec := httptest.NewRecorder()
	s.h.ServeHTTP(rec, req)
	return rec.Result(), nil
}

type simAgent struct {
	hostID string
	key    ed25519.PrivateKey
	user   string
	hc     *http.Client
	fault  string
	// silence is how long faultSilent* agents stay unreachable.
	silence time.Duration
	// serverRestart is called by faultServerRestart agents after applying.
	serverRestart func()

	mu       sync.Mutex
	password string                  // what logs in on the simulated host now
	saved    map[string]string       // rotation id -> old password (undo state)
	journal  map[string]*wire.Result // command id -> result (durable)
	started  map[string]bool         // command id journaled as started
	faulted  bool                    // the fault fired already (once per agent)
	polls    atomic.Int64
}

func newSimAgent(user, password string, hc *http.Client) *simAgent {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	return &simAgent{key: key, user: user, hc: hc, password: password,
		saved: map[string]string{}, journal: map[string]*wire.Result{}, started: map[string]bool{}}
}

func (a *simAgent) Password() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.password
}

func (a *simAgent) inventory() wire.Inventory {
	return wire.Inventory{HostName: "sim-" + a.user, SSHAddress: "192.0.2.1:22", AgentVersion: "bench-sim",
		LocalUsers: []wire.LocalUser{{Name: a.user, UID: 1000, Allowed: true, PasswordLogin: true, PubkeyLogin: true}}}
}

func (a *simAgent) enroll(ctx context.Context, token string) error {
	req := wire.EnrollRequest{Token: token, PublicKey: base64.StdEncoding.EncodeToString(a.key.Public().(ed25519.PublicKey)),
		Inventory: a.inventory(), Proof: base64.StdEncoding.EncodeToString(ed25519.Sign(a.key, []byte(wire.EnrollProof(token))))}
	var resp wire.EnrollResponse
	if err := a.do(ctx, wire.PathEnroll, req, &resp, false); err != nil {
		return err
	}
	a.hostID = resp.HostID
	return nil
}

func (a *simAgent) do(ctx context.Context, path string, in, out any, signed bool) error {
	body, _ := json.Marshal(in)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://127.0.0.1"+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if signed {
		ts := time.Now().UTC().Format(time.RFC3339)
		nonce := wire.NewNonce()
		bh := wire.BodyHash(body)
		sig := ed25519.Sign(a.key, []byte(wire.StringToSign(http.MethodPost, path, ts, nonce, bh, a.hostID)))
		req.Header.Set(wire.HeaderHostID, a.hostID)
		req.Header.Set(wire.HeaderTimestamp, ts)
		req.Header.Set(wire.HeaderNonce, nonce)
		req.Header.Set(wire.HeaderBodyHash, bh)
		req.Header.Set(wire.HeaderSignature, base64.StdEncoding.EncodeToString(sig))
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		var e wire.ErrorResponse
		json.Unmarshal(data, &e)
		return fmt.Errorf("agent protocol: %d %s: %s", resp.StatusCode, e.Code, e.Message)
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

// run long-polls and handles commands until ctx ends.
func (a *simAgent) run(ctx context.Context) {
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		var resp wire.PollResponse
		a.polls.Add(1)
		if err := a.do(ctx, wire.PathPoll, wire.PollRequest{WaitSeconds: 20}, &resp, true); err != nil {
			sleepCtx(ctx, jitter(backoff))
			backoff = min(backoff*2, 2*time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		for _, cmd := range resp.Commands {
			res, send, down := a.handle(cmd)
			if down > 0 { // the agent "died": it comes back after down
				sleepCtx(ctx, down)
				break
			}
			if !send {
				break // the report was lost with the connection; poll again
			}
			if err := a.do(ctx, wire.PathReport, wire.ReportRequest{Results: []wire.Result{*res}}, nil, true); err != nil {
				break
			}
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func jitter(d time.Duration) time.Duration {
	n, _ := rand.Int(rand.Reader, big.NewInt(int64(d)))
	return d/2 + time.Duration(n.Int64())/2
}

// handle runs one command through the journal, with the agent's fault. It
// returns the result, whether to send it, and how long the agent is down
// (a simulated crash; the journal survives it, memory does not matter).
func (a *simAgent) handle(cmd wire.Command) (*wire.Result, bool, time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if r := a.journal[cmd.ID]; r != nil {
		return r, true, 0
	}
	isApply := cmd.Op == "password.apply"
	fire := func(f string) bool {
		if isApply && a.fault == f && !a.faulted {
			a.faulted = true
			return true
		}
		return false
	}
	if fire(faultSilent) {
		return nil, false, a.silence
	}
	a.started[cmd.ID] = true
	if fire(faultCrashReceive) {
		return nil, false, jitter(time.Second)
	}
	res := &wire.Result{CommandID: cmd.ID, Status: "ok", Time: time.Now().UTC()}
	switch cmd.Op {
	case "password.apply":
		if _, ok := a.saved[cmd.RotationID]; !ok { // a re-run keeps the first undo state
			a.saved[cmd.RotationID] = a.password
		}
		a.password = cmd.Password
		if fire(faultCrashApply) {
			return nil, false, jitter(time.Second)
		}
		if fire(faultSilentApplied) {
			return nil, false, a.silence
		}
		if fire(faultLie) {
			res.Status, res.Error = "failed", "simulated lie"
			break
		}
		if fire(faultFailVerify) {
			a.password = a.saved[cmd.RotationID]
			res.Status, res.Error = "failed", "verification failed (simulated); the old password was restored"
			break
		}
		res.Check = "ssh-login"
		if fire(faultServerRestart) && a.serverRestart != nil {
			go a.serverRestart()
		}
	case "password.restore":
		if old, ok := a.saved[cmd.RotationID]; ok && a.fault != faultLie {
			a.password = old
		}
		res.Check = "local"
	default:
		res.Status, res.Error = "failed", "operation not simulated"
	}
	a.journal[cmd.ID] = res
	if fire(faultCrashReport) {
		return nil, false, jitter(time.Second)
	}
	if fire(faultDropReport) {
		return res, false, 0
	}
	return res, true, 0
}
