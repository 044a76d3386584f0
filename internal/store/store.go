// Package store defines Keyhold's storage contract: an ordered key-value
// space split into tables, with serializable transactions, plus the few
// coordination primitives that several server replicas need (replay nonces,
// leases with fencing tokens, change notification).
//
// Everything stored is opaque bytes: encryption happens above this layer
// (internal/keys is the barrier), so a backend never sees a secret in plain
// form. Backends live in sub-packages (store/bolt, store/postgres) and must
// pass the conformance suite in store/storetest unchanged.
//
// Account scoping: records that belong to an account are keyed
// "<accountUID>/<rest>" (see Key); tables that hold deployment-wide state
// (meta, accounts) use plain keys.
package store

import (
	"context"
	"errors"
	"strings"
	"time"
)

// Errors returned by every backend.
var (
	ErrNotFound = errors.New("store: not found")
	ErrExists   = errors.New("store: already exists")
	// ErrFenced is returned when a fencing token is no longer the current
	// holder's token for a lease: the caller lost leadership and must not act.
	ErrFenced = errors.New("store: fencing token is stale")
	// ErrLeaseHeld is returned by AcquireLease when another holder owns an
	// unexpired lease.
	ErrLeaseHeld = errors.New("store: lease held by another holder")
)

// KV is one record returned by a listing.
type KV struct {
	Key   string
	Value []byte
}

// Tx is a transaction. Values passed to Put are copied by the backend;
// values returned are owned by the caller.
type Tx interface {
	Get(table, key string) ([]byte, error) // ErrNotFound when absent
	Put(table, key string, value []byte) error
	// Insert writes only if the key is absent; ErrExists otherwise.
	Insert(table, key string, value []byte) error
	Delete(table, key string) error // deleting an absent key is not an error
	// List returns up to limit records (limit <= 0: all) whose key starts
	// with prefix and sorts strictly after `after`, in ascending byte order
	// of the key.
	List(table, prefix, after string, limit int) ([]KV, error)
	// ListOffset returns up to limit records (limit <= 0: all) whose key
	// starts with prefix, in ascending byte order of the key, after
	// skipping the first offset such keys (offset < 0 counts as 0). The
	// skipped records' values are neither read nor copied, so page N of a
	// listing costs a walk over keys, not a decode of every record before
	// it.
	ListOffset(table, prefix string, offset, limit int) ([]KV, error)
	// Count returns the number of keys with the prefix.
	Count(table, prefix string) (int, error)
	// CheckFence fails with ErrFenced unless token is the current token of
	// an unexpired lease named name. Writers acting as a leader call it in
	// the same transaction as their writes.
	CheckFence(name string, token uint64) error
	// Notify queues a change notification on topic, delivered to
	// subscribers after (and only if) the transaction commits.
	Notify(topic string)
}

// Lease is the state of a named lease.
type Lease struct {
	Name    string
	Holder  string
	Token   uint64 // strictly increases every time the holder changes
	Expires time.Time
}

// Store is the full storage contract implemented by every backend.
type Store interface {
	// View runs fn in a read-only transaction.
	View(ctx context.Context, fn func(Tx) error) error
	// Update runs fn in a read-write transaction and commits durably
	// (fsync) before returning nil. If fn returns an error, nothing it wrote
	// is kept. Concurrent Updates may be committed together (group commit),
	// so fn may run more than once: it must only act through tx and must
	// reset any outer variables it sets.
	Update(ctx context.Context, fn func(Tx) error) error

	// PutNonce records key until expires. It returns false when the key is
	// already recorded and not yet expired (a replay). Expired nonces are
	// purged by the backend.
	PutNonce(ctx context.Context, key string, expires time.Time) (bool, error)

	// AcquireLease takes or renews the lease for holder for ttl. Renewal by
	// the current holder keeps the token; a new holder (after expiry) gets
	// a larger token. ErrLeaseHeld when another holder's lease is live.
	AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (Lease, error)
	// ReleaseLease gives up the lease if holder holds it with token.
	ReleaseLease(ctx context.Context, name, holder string, token uint64) error
	// GetLease returns the lease state (ErrNotFound if never taken).
	GetLease(ctx context.Context, name string) (Lease, error)

	// Subscribe returns a channel that receives a value (coalesced: at
	// most one pending) after each commit that called Notify(topic), on
	// this replica or, for shared backends, any replica. cancel releases it.
	Subscribe(topic string) (ch <-chan struct{}, cancel func())

	// Lock takes a deployment-wide exclusive lock for one-time set-up
	// (first start); the returned func releases it.
	Lock(ctx context.Context, name string) (unlock func(), err error)

	Close() error
}

// Key joins an account UID and the rest of a record's key.
func Key(account string, parts ...string) string {
	return account + "/" + strings.Join(parts, "/")
}
