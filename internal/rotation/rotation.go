// Package rotation runs the rotation of managed secrets on their targets as
// a persisted state machine (DESIGN.md "Rotation"), so that a crash of the
// server, the agent or the network at any point resumes or rolls back and
// never leaves a host without a working credential that Keyhold knows:
//
//	storing      the new value is being stored as ACSPending
//	applying     the apply command may have been sent; awaiting the result
//	promoting    the agent applied and verified; ACSCurrent moves to it
//	cleaning-up  the old SSH public key is being removed from the host
//	rolling-back the outcome of apply is unknown (or the agent reported a
//	             failure): restore is re-sent until the agent confirms it,
//	             the pending value is kept meanwhile
//	succeeded | failed | rolled-back | abandoned   (terminal)
//
// A rotation record never holds a credential: the new value lives only in
// the secret's ACSPending version, sealed by the secrets service, and is
// read from there whenever a command needs it.
package rotation

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/keyhold/keyhold/internal/errs"
	"github.com/keyhold/keyhold/internal/secrets"
	"github.com/keyhold/keyhold/internal/store"
)

// Storage tables.
const (
	tableRotations = "rotations"       // account/id -> Rotation
	tableOpen      = "rotation_active" // account/secret name -> id of its non-terminal rotation
)

// Rotation states.
const (
	StateStoring     = "storing"
	StateApplying    = "applying"
	StatePromoting   = "promoting"
	StateCleaningUp  = "cleaning-up"
	StateRollingBack = "rolling-back"
	StateSucceeded   = "succeeded"
	StateFailed      = "failed"
	StateRolledBack  = "rolled-back"
	// StateAbandoned: the host was removed while its outcome was unknown;
	// the pending value is kept (ACSPending) for the operator.
	StateAbandoned = "abandoned"
)

// Step names and states.
const (
	StepStore   = "store-pending"
	StepApply   = "apply"
	StepVerify  = "verify"
	StepPromote = "promote"
	StepCleanup = "cleanup"
	StepRestore = "restore"

	StepRunning = "running"
	StepOK      = "ok"
	StepFailed  = "failed"
)

// Terminal reports whether a state is final.
func Terminal(state string) bool {
	switch state {
	case StateSucceeded, StateFailed, StateRolledBack, StateAbandoned:
		return true
	}
	return false
}

// Step is one step of a rotation as shown by DescribeRotation. Error never
// holds a value.
type Step struct {
	Name  string    `json:"name"`
	State string    `json:"state"`
	Time  time.Time `json:"time"`
	Error string    `json:"error,omitempty"`
}

// Rotation is the persisted record of one rotation. It holds no credential:
// OldPublicKey is a public key, kept to remove it from the host afterwards.
type Rotation struct {
	ID           string    `json:"id"`
	Account      string    `json:"account"`
	SecretName   string    `json:"secret"`
	SecretType   string    `json:"type"`
	SubType      string    `json:"sub_type"`
	HostID       string    `json:"host"`
	User         string    `json:"user"`
	VersionID    string    `json:"version"`
	Supplied     bool      `json:"supplied,omitempty"`
	Trigger      string    `json:"trigger"` // "api" or "schedule"
	OldPublicKey string    `json:"old_public_key,omitempty"`
	State        string    `json:"state"`
	Steps        []Step    `json:"steps"`
	Check        string    `json:"check,omitempty"` // ssh-login or local, as the agent reported
	Error        string    `json:"error,omitempty"`
	ApplySent    time.Time `json:"apply_sent,omitzero"`
	ApplyFailed  bool      `json:"apply_failed,omitempty"` // the agent reported apply failed; rolling back to confirm
	Attempts     int       `json:"attempts,omitempty"`     // restore or cleanup commands sent
	LastAttempt  time.Time `json:"last_attempt,omitzero"`
	Created      time.Time `json:"created"`
	Updated      time.Time `json:"updated"`
	Rev          uint64    `json:"rev"`
}

// ARN returns the rotation's resource name.
func ARN(region, account, id string) string {
	return "acs:keyhold:" + region + ":" + account + ":rotation/" + id
}

func (r *Rotation) step(name, state string, at time.Time, msg string) {
	for i := len(r.Steps) - 1; i >= 0; i-- {
		if r.Steps[i].Name == name {
			r.Steps[i].State, r.Steps[i].Time, r.Steps[i].Error = state, at, msg
			return
		}
	}
	r.Steps = append(r.Steps, Step{Name: name, State: state, Time: at, Error: msg})
}

func (r *Rotation) stepError(name string) string {
	for i := len(r.Steps) - 1; i >= 0; i-- {
		if r.Steps[i].Name == name {
			return r.Steps[i].Error
		}
	}
	return ""
}

// applyID and friends name the commands of a rotation. Restore and cleanup
// get a new id per attempt: a command id the agent has journaled is never
// executed again, so only a fresh id is re-delivered for certain (say the
// fleet handed the first one out and the agent died before journaling it).
// Both are idempotent on the host, so running several is harmless.
func applyID(r *Rotation) string { return r.ID + "-apply" }
func attemptID(r *Rotation, kind string, n int) string {
	return fmt.Sprintf("%s-%s-%d", r.ID, kind, n)
}

func newID(now time.Time) string {
	b := make([]byte, 5)
	rand.Read(b)
	// Time first so that ids sort by creation.
	return fmt.Sprintf("rot-%012x%s", now.UnixMilli(), hex.EncodeToString(b))
}

func rotKey(account, id string) string { return store.Key(account, id) }

func getRotation(tx store.Tx, account, id string) (*Rotation, error) {
	b, err := tx.Get(tableRotations, rotKey(account, id))
	if errors.Is(err, store.ErrNotFound) {
		return nil, errs.E(errs.KindNotFound, "The specified rotation is not found.")
	}
	if err != nil {
		return nil, errs.Wrap(errs.KindInternal, err, "reading a rotation")
	}
	var r Rotation
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, errs.Wrap(errs.KindInternal, err, "decoding a rotation")
	}
	return &r, nil
}

func putRotation(tx store.Tx, r *Rotation) error {
	b, err := json.Marshal(r)
	if err != nil {
		return errs.Wrap(errs.KindInternal, err, "encoding a rotation")
	}
	if err := tx.Put(tableRotations, rotKey(r.Account, r.ID), b); err != nil {
		return errs.Wrap(errs.KindInternal, err, "writing a rotation")
	}
	return nil
}

// errStale aborts a transition whose record changed since it was read
// (another driver, e.g. on another replica, moved it on).
var errStale = errors.New("rotation: record changed")

// ListFilter selects rotations for List.
type ListFilter struct {
	SecretName string
	State      string
}

// Get returns one rotation of the account.
func (e *Engine) Get(ctx context.Context, account, id string) (*Rotation, error) {
	var r *Rotation
	err := e.st.View(ctx, func(tx store.Tx) error {
		var err error
		r, err = getRotation(tx, account, id)
		return err
	})
	return r, err
}

// List returns the account's rotations, newest first, filtered, one page
// (pageNumber from 1), and the total that match.
func (e *Engine) List(ctx context.Context, account string, f ListFilter, pageNumber, pageSize int) ([]*Rotation, int, error) {
	var all []*Rotation
	err := e.st.View(ctx, func(tx store.Tx) error {
		all = nil
		kvs, err := tx.List(tableRotations, account+"/", "", 0)
		if err != nil {
			return errs.Wrap(errs.KindInternal, err, "listing rotations")
		}
		for i := len(kvs) - 1; i >= 0; i-- {
			var r Rotation
			if err := json.Unmarshal(kvs[i].Value, &r); err != nil {
				return errs.Wrap(errs.KindInternal, err, "decoding a rotation")
			}
			if f.SecretName != "" && r.SecretName != f.SecretName && !strings.HasSuffix(f.SecretName, ":secret/"+r.SecretName) {
				continue
			}
			if f.State != "" && r.State != f.State {
				continue
			}
			all = append(all, &r)
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	total := len(all)
	start := (pageNumber - 1) * pageSize
	if start >= total {
		return nil, total, nil
	}
	end := min(start+pageSize, total)
	return all[start:end], total, nil
}

// Secrets is what the engine needs from the secrets service; implemented
// by *secrets.Service.
type Secrets interface {
	AddPendingVersion(ctx context.Context, account, name, versionID string, value []byte) (*secrets.Version, error)
	PromoteVersion(ctx context.Context, account, name, versionID string) error
	DiscardPending(ctx context.Context, account, name, versionID string) error
	DeferRotation(ctx context.Context, account, name string, until time.Time) error
	ReadVersion(ctx context.Context, account, name, versionID, stage string) ([]byte, *secrets.Version, error)
	DueForRotation(ctx context.Context, now time.Time) ([]secrets.Due, error)
	DescribeSecret(ctx context.Context, account, nameOrARN string) (*secrets.Secret, error)
	RotateSecret(ctx context.Context, account, nameOrARN, versionID string) (*secrets.Secret, error)
}

var _ Secrets = (*secrets.Service)(nil)
