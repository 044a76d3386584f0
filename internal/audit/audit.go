// Package audit owns Keyhold's tamper-evident audit trail: one append-only,
// hash-chained sequence of records per account, kept in the store beside
// the data it describes.
//
// Each record carries MAC = HMAC-SHA256(K, prevMAC || canonical(record)),
// with K derived from the root key, so that whoever can write the storage
// (but does not hold the root key) cannot alter, insert or remove a record
// without Verify noticing. The chain head (last seq and MAC) is itself a
// row, read and rewritten in the same store transaction as the append:
// appends from any replica are serialized by the storage, never by a
// leader. Concurrent appends of one Trail are batched into one store
// transaction (one head read and write per account per batch), and the bolt
// backend's group commit lets concurrent transactions share one fsync. A signed checkpoint of the head, exported by the operator,
// later proves that a tail was not cut off.
//
// The package knows neither HTTP nor a storage engine. It never stores a
// parameter value that is not on its allow-list (see Redact).
//
// Storage layout:
//
//	audit/<account>/<seq, 20 digits>  -> Record (JSON, with Mac)
//	audit_head/<account>              -> head {Seq, Mac}
package audit

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"time"

	"github.com/keyhold/keyhold/internal/errs"
	"github.com/keyhold/keyhold/internal/store"
)

// Tables used by this package.
const (
	TableRecords = "audit"
	TableHead    = "audit_head"
)

// Key-derivation purposes. Changing one invalidates every existing chain
// or checkpoint, so they carry a version.
const (
	purposeMAC        = "keyhold/audit/mac/v1"
	purposeCheckpoint = "keyhold/audit/checkpoint/v1"
)

// Stages of a record. A call that may change state is recorded twice: an
// Attempt before its handler runs (so that a change can never happen
// unrecorded) and an Outcome after it; every other call once, as Outcome.
const (
	StageAttempt = "Attempt"
	StageOutcome = "Outcome"
)

// ResultPending is the Result of an Attempt record.
const ResultPending = "Pending"

// KeyDeriver derives purpose-bound keys from the root key; *keys.Service
// implements it.
type KeyDeriver interface {
	DeriveKey(purpose string) []byte
}

// Event is what the caller reports of one API call. Params are raw; Append
// redacts them before anything is kept.
type Event struct {
	Time          time.Time
	Account       string // "" when no account is known (unknown access key)
	PrincipalType string // "root", "user", ...; "" unless the signature verified
	PrincipalName string
	AccessKeyID   string // as claimed by the request
	SourceIP      string
	OnBehalfOf    string // x-keyhold-on-behalf-of
	APIVersion    string
	Action        string // e.g. "kms:GetSecretValue"
	Resource      string
	RequestID     string
	Stage         string // StageAttempt or StageOutcome ("" means Outcome)
	Result        string // "OK" or the error code; ResultPending for an attempt
	HTTPStatus    int
	Params        map[string]string
}

// Record is one link of an account's chain, as stored and as listed.
type Record struct {
	Seq           uint64            `json:"Seq"`
	Time          string            `json:"Time"`
	Account       string            `json:"Account"`
	PrincipalType string            `json:"PrincipalType,omitempty"`
	PrincipalName string            `json:"PrincipalName,omitempty"`
	PrincipalArn  string            `json:"PrincipalArn,omitempty"`
	AccessKeyId   string            `json:"AccessKeyId,omitempty"`
	SourceIp      string            `json:"SourceIp,omitempty"`
	OnBehalfOf    string            `json:"OnBehalfOf,omitempty"`
	ApiVersion    string            `json:"ApiVersion,omitempty"`
	Action        string            `json:"Action,omitempty"`
	Resource      string            `json:"Resource,omitempty"`
	RequestId     string            `json:"RequestId"`
	Stage         string            `json:"Stage"`
	Result        string            `json:"Result"`
	HttpStatus    int               `json:"HttpStatus"`
	Params        map[string]string `json:"Params,omitempty"`
	// Mac is hex HMAC-SHA256(K, previous Mac || canonical record).
	Mac string `json:"Mac,omitempty"`
}

// head is the chain's last link.
type head struct {
	Seq uint64 `json:"Seq"`
	Mac string `json:"Mac"`
}

// Forwarder receives every record after it is durable (a SIEM feed). Its
// failures are logged by the caller's choice, never fatal: the store is the
// record of truth.
type Forwarder interface {
	Forward(r Record) error
}

// Option configures New.
type Option func(*Trail)

// WithDefaultAccount names the account whose chain receives records of
// calls that no account can be attributed to (an unknown access key): the
// deployment's owner.
func WithDefaultAccount(uid string) Option { return func(t *Trail) { t.defaultAccount = uid } }

// WithForwarder copies every appended record to f.
func WithForwarder(f Forwarder, onErr func(error)) Option {
	return func(t *Trail) { t.fwd, t.fwdErr = f, onErr }
}

// WithFault makes every append first call fault and fail with its error
// when non-nil (tests: the fail-closed rule).
func WithFault(fault func() error) Option { return func(t *Trail) { t.fault = fault } }

// WithClock replaces time.Now (checkpoint times; tests).
func WithClock(now func() time.Time) Option { return func(t *Trail) { t.now = now } }

// Trail appends to, lists and verifies the audit chains.
type Trail struct {
	st             store.Store
	macKey         []byte
	cpKey          ed25519.PrivateKey
	defaultAccount string
	fwd            Forwarder
	fwdErr         func(error)
	fault          func() error
	now            func() time.Time
	batch          batcher
}

// New returns the trail over st with keys derived through kd.
func New(st store.Store, kd KeyDeriver, opts ...Option) *Trail {
	t := &Trail{
		st:     st,
		macKey: kd.DeriveKey(purposeMAC),
		cpKey:  ed25519.NewKeyFromSeed(kd.DeriveKey(purposeCheckpoint)),
		now:    time.Now,
	}
	for _, o := range opts {
		o(t)
	}
	return t
}

func recordKey(account string, seq uint64) string {
	return store.Key(account, fmt.Sprintf("%020d", seq))
}

// errUnavailable is what every caller of Append sees when the trail cannot
// be written: the wire layer answers ServiceUnavailableTemporary.
func errUnavailable(cause error) error {
	return errs.Wrap(errs.KindUnavailable, cause, "The audit trail cannot be written; the request was not performed.")
}

// Append redacts e, links it to its account's chain and returns once the
// record is durable. Concurrent appends are batched (see batcher): each
// returns its own record once the one store Update carrying the batch has
// committed, or the error of that Update, with nothing of the batch kept.
// A caller whose ctx ends before its batch is taken gets ctx's error and
// nothing of its record is written; once taken, it waits for the outcome.
func (t *Trail) Append(ctx context.Context, e Event) (Record, error) {
	if t.fault != nil {
		if err := t.fault(); err != nil {
			return Record{}, errUnavailable(err)
		}
	}
	if err := ctx.Err(); err != nil {
		return Record{}, errUnavailable(err)
	}
	rec := t.newRecord(e)
	canon, err := canonicalTemplate(rec)
	if err != nil {
		return Record{}, errUnavailable(err)
	}
	p := &pending{ctx: ctx, rec: rec, canon: canon, done: make(chan struct{})}
	t.submit(p)
	select {
	case <-p.done:
	case <-ctx.Done():
		if t.withdraw(p) {
			return Record{}, errUnavailable(ctx.Err())
		}
		<-p.done // taken by a batch: its outcome is this record's
	}
	if p.err != nil {
		return Record{}, errUnavailable(p.err)
	}
	if t.fwd != nil {
		if err := t.fwd.Forward(p.out); err != nil && t.fwdErr != nil {
			t.fwdErr(err)
		}
	}
	return p.out, nil
}

func (t *Trail) newRecord(e Event) Record {
	account := e.Account
	if account == "" {
		account = t.defaultAccount
	}
	stage := e.Stage
	if stage == "" {
		stage = StageOutcome
	}
	ts := e.Time
	if ts.IsZero() {
		ts = t.now()
	}
	return Record{
		Time:          ts.UTC().Format(time.RFC3339Nano),
		Account:       account,
		PrincipalType: e.PrincipalType,
		PrincipalName: e.PrincipalName,
		PrincipalArn:  PrincipalARN(e.Account, e.PrincipalType, e.PrincipalName),
		AccessKeyId:   clip(e.AccessKeyID, 128),
		SourceIp:      e.SourceIP,
		OnBehalfOf:    e.OnBehalfOf,
		ApiVersion:    clip(e.APIVersion, 64),
		Action:        clip(e.Action, 128),
		Resource:      clip(e.Resource, maxValueLen),
		RequestId:     e.RequestID,
		Stage:         stage,
		Result:        e.Result,
		HttpStatus:    e.HTTPStatus,
		Params:        Redact(e.Params),
	}
}

// PrincipalARN is the RAM ARN of a principal: acs:ram::{uid}:root for the
// account root, acs:ram::{uid}:{kind}/{name} otherwise; "" when unknown.
func PrincipalARN(account, kind, name string) string {
	switch {
	case account == "" || kind == "":
		return ""
	case kind == "root":
		return "acs:ram::" + account + ":root"
	}
	return "acs:ram::" + account + ":" + kind + "/" + name
}

// readHead returns the account's head; an empty chain has Seq 0 and no Mac.
func readHead(tx store.Tx, account string) (head, error) {
	b, err := tx.Get(TableHead, account)
	if err == store.ErrNotFound {
		return head{}, nil
	}
	if err != nil {
		return head{}, err
	}
	var h head
	if err := json.Unmarshal(b, &h); err != nil {
		return head{}, fmt.Errorf("audit: chain head of %s is unreadable: %w", account, err)
	}
	return h, nil
}

// canonical is the byte form the MAC covers: the record's JSON without its
// Mac (encoding/json writes struct fields in order and map keys sorted, so
// the same record always encodes the same way).
func canonical(r Record) ([]byte, error) {
	r.Mac = ""
	return json.Marshal(r)
}

// mac computes the link of r after the link prevHex ("" for the first).
func (t *Trail) mac(prevHex string, r Record) (string, error) {
	c, err := canonical(r)
	if err != nil {
		return "", err
	}
	return t.macOf(prevHex, c)
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
