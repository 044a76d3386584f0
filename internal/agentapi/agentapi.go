// Package agentapi is the HTTP side of the agent protocol, mounted by the
// server under /agent/v1/: enroll (token + the agent's Ed25519 key), poll
// (long-poll for the host's commands) and report (results, drift,
// inventory).
//
// Every request after enrollment is signed with the agent's key over the
// method, path, timestamp, nonce, body hash and host id; timestamps must be
// within five minutes and nonces are single use. An agent only ever sees
// its own host's commands, and a removed host is refused. Nothing of a
// request or response body is logged.
package agentapi

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/keyhold/keyhold/internal/agentapi/wire"
	"github.com/keyhold/keyhold/internal/errs"
	"github.com/keyhold/keyhold/internal/fleet"
)

// Options configure the handler.
type Options struct {
	Logger *slog.Logger
	// MaxWait bounds a long-poll (default fleet.PollTimeout).
	MaxWait time.Duration
}

// Handler serves the agent protocol. Close releases held polls (call it
// when the server shuts down, so that shutdown does not wait for them).
type Handler struct {
	svc  *fleet.Service
	log  *slog.Logger
	max  time.Duration
	mux  *http.ServeMux
	done chan struct{}
	once sync.Once
}

// New returns the agent protocol handler.
func New(svc *fleet.Service, opts Options) *Handler {
	h := &Handler{svc: svc, log: opts.Logger, max: opts.MaxWait, done: make(chan struct{})}
	if h.log == nil {
		h.log = slog.Default()
	}
	if h.max <= 0 {
		h.max = fleet.PollTimeout
	}
	h.mux = http.NewServeMux()
	h.mux.HandleFunc("POST "+wire.PathEnroll, h.enroll)
	h.mux.HandleFunc("POST "+wire.PathPoll, h.authed(h.poll))
	h.mux.HandleFunc("POST "+wire.PathReport, h.authed(h.report))
	return h
}

// Close ends held polls now; they answer with no commands.
func (h *Handler) Close() { h.once.Do(func() { close(h.done) }) }

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// Body limits.
const (
	maxEnrollBody = 4 << 20
	maxReportBody = 8 << 20
)

type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string { return e.message }

func fail(status int, code, msg string) error { return &apiError{status, code, msg} }

func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = &apiError{http.StatusInternalServerError, "InternalFailure", "The request failed."}
		var de *errs.Error
		if errors.As(err, &de) {
			ae.message = de.Message
			switch de.Kind {
			case errs.KindInvalidParameter, errs.KindMissingParameter:
				ae.status, ae.code = http.StatusBadRequest, "InvalidParameter"
			case errs.KindForbidden:
				ae.status, ae.code = http.StatusForbidden, "Forbidden"
			case errs.KindNotFound:
				ae.status, ae.code = http.StatusForbidden, "Forbidden.HostNotFound"
			case errs.KindInvalidState:
				ae.status, ae.code = http.StatusForbidden, "Forbidden.HostRemoved"
			case errs.KindUnavailable:
				ae.status, ae.code = http.StatusServiceUnavailable, "ServiceUnavailableTemporary"
			default:
				ae.message = "The request failed."
			}
		}
		if ae.status >= 500 {
			h.log.Error("agent api", "path", r.URL.Path, "err", err)
		}
	}
	h.log.Info("agent request refused", "path", r.URL.Path, "host", r.Header.Get(wire.HeaderHostID), "status", ae.status, "code", ae.code)
	writeJSON(w, ae.status, wire.ErrorResponse{Code: ae.code, Message: ae.message})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func readBody(r *http.Request, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, fail(http.StatusBadRequest, "InvalidParameter", "The request body cannot be read.")
	}
	if int64(len(b)) > limit {
		return nil, fail(http.StatusRequestEntityTooLarge, "InvalidParameter", "The request body is too large.")
	}
	return b, nil
}

func (h *Handler) enroll(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r, maxEnrollBody)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	var req wire.EnrollRequest
	if err := json.Unmarshal(body, &req); err != nil {
		h.writeError(w, r, fail(http.StatusBadRequest, "InvalidParameter", "The request body is not valid JSON."))
		return
	}
	pub, err := base64.StdEncoding.DecodeString(req.PublicKey)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		h.writeError(w, r, fail(http.StatusBadRequest, "InvalidParameter", "The public key must be a base64 Ed25519 public key."))
		return
	}
	proof, err := base64.StdEncoding.DecodeString(req.Proof)
	if err != nil || !ed25519.Verify(pub, []byte(wire.EnrollProof(req.Token)), proof) {
		h.writeError(w, r, fail(http.StatusForbidden, "Forbidden", "The proof of key possession does not verify."))
		return
	}
	host, err := h.svc.Enroll(r.Context(), req.Token, pub, inventory(req.Inventory))
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.log.Info("host enrolled", "host", host.ID, "account", host.Account, "host_name", host.HostName)
	writeJSON(w, http.StatusOK, wire.EnrollResponse{HostID: host.ID, Account: host.Account})
}

func inventory(in wire.Inventory) fleet.Inventory {
	out := fleet.Inventory{HostName: in.HostName, SSHAddress: in.SSHAddress, SSHHostKeys: in.SSHHostKeys,
		AllowUsers: in.AllowUsers, AgentVersion: in.AgentVersion}
	for _, u := range in.LocalUsers {
		out.LocalUsers = append(out.LocalUsers, fleet.LocalUser{Name: u.Name, UID: u.UID, Allowed: u.Allowed,
			PasswordLogin: u.PasswordLogin, PubkeyLogin: u.PubkeyLogin})
	}
	return out
}

type authedFunc func(w http.ResponseWriter, r *http.Request, id *fleet.Identity, body []byte)

// authed checks an agent request's signature before fn runs.
func (h *Handler) authed(fn authedFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := readBody(r, maxReportBody)
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		id, err := h.authenticate(r, body)
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		fn(w, r, id, body)
	}
}

func (h *Handler) authenticate(r *http.Request, body []byte) (*fleet.Identity, error) {
	hostID := r.Header.Get(wire.HeaderHostID)
	ts := r.Header.Get(wire.HeaderTimestamp)
	nonce := r.Header.Get(wire.HeaderNonce)
	sig := r.Header.Get(wire.HeaderSignature)
	bodyHash := r.Header.Get(wire.HeaderBodyHash)
	unauth := func(msg string) error { return fail(http.StatusUnauthorized, "InvalidSignature", msg) }
	if hostID == "" || ts == "" || nonce == "" || sig == "" || bodyHash == "" {
		return nil, unauth("The request is not signed: a signature header is missing.")
	}
	if !fleet.ValidHostID(hostID) || len(nonce) > 64 {
		return nil, unauth("The request's host id or nonce is malformed.")
	}
	t, err := time.Parse(time.RFC3339, ts)
	if err != nil {
		return nil, unauth("The request timestamp is malformed.")
	}
	now := h.svc.Now()
	if d := now.Sub(t); d > wire.MaxSkew || d < -wire.MaxSkew {
		return nil, unauth("The request timestamp is more than 5 minutes from the server's clock.")
	}
	if wire.BodyHash(body) != bodyHash {
		return nil, unauth("The body hash does not match the body.")
	}
	signature, err := base64.StdEncoding.DecodeString(sig)
	if err != nil {
		return nil, unauth("The signature is malformed.")
	}
	id, err := h.svc.AgentIdentity(r.Context(), hostID)
	if err != nil {
		if errs.Is(err, errs.KindNotFound) {
			return nil, unauth("The host is not enrolled.")
		}
		return nil, err
	}
	msg := wire.StringToSign(r.Method, r.URL.Path, ts, nonce, bodyHash, hostID)
	if !ed25519.Verify(id.PublicKey, []byte(msg), signature) {
		return nil, unauth("The signature does not verify with the host's key.")
	}
	if id.Removed {
		return nil, fail(http.StatusForbidden, "Forbidden.HostRemoved", "The host was removed; its identity is revoked.")
	}
	fresh, err := h.svc.Store().PutNonce(r.Context(), "agent/"+hostID+"/"+nonce, now.Add(2*wire.MaxSkew))
	if err != nil {
		return nil, err
	}
	if !fresh {
		return nil, unauth("The request nonce was already used.")
	}
	return id, nil
}

// secureTransport: credentials only go inside TLS, or to a loopback peer.
func secureTransport(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (h *Handler) poll(w http.ResponseWriter, r *http.Request, id *fleet.Identity, body []byte) {
	var req wire.PollRequest
	if len(body) > 0 {
		if err := json.Unmarshal(body, &req); err != nil {
			h.writeError(w, r, fail(http.StatusBadRequest, "InvalidParameter", "The request body is not valid JSON."))
			return
		}
	}
	wait := h.max
	if req.WaitSeconds > 0 && time.Duration(req.WaitSeconds)*time.Second < wait {
		wait = time.Duration(req.WaitSeconds) * time.Second
	}
	ctx := r.Context()
	if err := h.svc.Touch(ctx, id.Account, id.HostID); err != nil {
		h.writeError(w, r, err)
		return
	}
	// Subscribe before reading, so that a command queued in between wakes us.
	ch, cancel := h.svc.Store().Subscribe(h.svc.CommandsTopic(id.Account, id.HostID))
	defer cancel()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		cmds, err := h.svc.Pending(ctx, id.Account, id.HostID, 100)
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		if len(cmds) > 0 {
			h.sendCommands(w, r, id, cmds)
			return
		}
		select {
		case <-ch:
			continue
		case <-timer.C:
		case <-h.done:
		case <-ctx.Done():
			return
		}
		writeJSON(w, http.StatusOK, wire.PollResponse{Commands: []wire.Command{}})
		return
	}
}

func (h *Handler) sendCommands(w http.ResponseWriter, r *http.Request, id *fleet.Identity, cmds []fleet.Command) {
	out := wire.PollResponse{Commands: make([]wire.Command, 0, len(cmds))}
	secure := secureTransport(r)
	for _, c := range cmds {
		if c.HasCredential() && !secure {
			h.writeError(w, r, fail(http.StatusForbidden, "Forbidden.InsecureTransport",
				"A command carries a credential and is only sent over HTTPS: point the agent at the server's https:// URL."))
			return
		}
		out.Commands = append(out.Commands, wire.Command{ID: c.ID, RotationID: c.RotationID, Op: c.Op, User: c.User,
			Password: c.Password, PublicKey: c.PublicKey, PrivateKey: c.PrivateKey})
	}
	h.log.Debug("agent commands sent", "host", id.HostID, "count", len(out.Commands))
	writeJSON(w, http.StatusOK, out)
}

func (h *Handler) report(w http.ResponseWriter, r *http.Request, id *fleet.Identity, body []byte) {
	var req wire.ReportRequest
	if err := json.Unmarshal(body, &req); err != nil {
		h.writeError(w, r, fail(http.StatusBadRequest, "InvalidParameter", "The request body is not valid JSON."))
		return
	}
	ctx := context.WithoutCancel(r.Context())
	if req.Inventory != nil {
		if err := h.svc.UpdateInventory(ctx, id.Account, id.HostID, inventory(*req.Inventory)); err != nil {
			h.writeError(w, r, err)
			return
		}
	}
	if len(req.Results) > 0 {
		res := make([]fleet.Result, 0, len(req.Results))
		for _, x := range req.Results {
			res = append(res, fleet.Result{CommandID: x.CommandID, Status: x.Status, Check: x.Check, Error: x.Error, Time: x.Time})
		}
		if err := h.svc.ReportResults(ctx, id.Account, id.HostID, res); err != nil {
			h.writeError(w, r, err)
			return
		}
	}
	if len(req.Drift) > 0 {
		evs := make([]fleet.DriftEvent, 0, len(req.Drift))
		for _, d := range req.Drift {
			evs = append(evs, fleet.DriftEvent{User: d.User, What: d.What, Time: d.Time})
		}
		if err := h.svc.ReportDrift(ctx, id.Account, id.HostID, evs); err != nil {
			h.writeError(w, r, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, struct{}{})
}
