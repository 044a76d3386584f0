package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/keyhold/keyhold/internal/store"
)

// --- replay nonces ---

// PutNonce is an insert-if-absent in its own bucket, group-committed with
// every other write: a replay is refused even across a crash, and under
// load many nonces share one fsync. A second bucket indexes nonces by
// expiry so that purging reads only what has expired.
func (s *Store) PutNonce(ctx context.Context, key string, expires time.Time) (bool, error) {
	if key == "" {
		return false, errEmptyKey
	}
	var fresh bool
	err := s.Update(ctx, func(stx store.Tx) error {
		fresh = false // fn may run more than once
		t := stx.(*tx)
		nonces := t.btx.Bucket(bucketNonces)
		index := t.btx.Bucket(bucketNonceExp)
		k := []byte(key)
		now := t.now().UnixNano()
		if v := nonces.Get(k); v != nil {
			old := int64(u64(v))
			if now < old {
				return nil // replay
			}
			if err := index.Delete(expKey(old, k)); err != nil {
				return err
			}
		}
		fresh = true
		exp := expires.UnixNano()
		if exp <= now {
			// Already expired: nothing to remember, and storing it
			// would only add purge work.
			return nonces.Delete(k)
		}
		if err := nonces.Put(k, putU64(uint64(exp))); err != nil {
			return err
		}
		return index.Put(expKey(exp, k), nil)
	})
	return fresh, err
}

func expKey(exp int64, key []byte) []byte {
	b := make([]byte, 8, 8+len(key))
	binary.BigEndian.PutUint64(b, uint64(exp))
	return append(b, key...)
}

// maybePurgeNonces deletes up to purgeLimit expired nonces inside a commit
// that is happening anyway. When the limit is hit it runs again at the next
// commit, so the backlog cannot outgrow the insert rate. Failures are
// ignored: an unpurged nonce is harmless (expired ones count as absent).
func (s *Store) maybePurgeNonces(btx *bbolt.Tx) {
	now := s.opts.now()
	if now.Sub(s.lastPurg) < s.opts.purgeInterval {
		return
	}
	index := btx.Bucket(bucketNonceExp)
	nonces := btx.Bucket(bucketNonces)
	var victims [][]byte
	c := index.Cursor()
	for k, _ := c.First(); k != nil && len(victims) < s.opts.purgeLimit; k, _ = c.Next() {
		if int64(u64(k[:8])) > now.UnixNano() {
			break
		}
		victims = append(victims, k) // valid until the tx ends
	}
	if len(victims) < s.opts.purgeLimit {
		s.lastPurg = now
	}
	// Delete after iterating: deleting under a bbolt cursor skips keys.
	for _, k := range victims {
		exp, key := k[:8], k[8:]
		if v := nonces.Get(key); v != nil && bytes.Equal(v, exp) {
			_ = nonces.Delete(key)
		}
		_ = index.Delete(k)
	}
}

// --- leases ---

// lease record: token (8) | expires unix ns (8) | holder. The record is
// kept after release so the token counter survives and keeps increasing.
func getLease(btx *bbolt.Tx, name string) (store.Lease, bool) {
	v := btx.Bucket(bucketLeases).Get([]byte(name))
	if len(v) < 16 {
		return store.Lease{Name: name}, false
	}
	l := store.Lease{Name: name, Token: u64(v[:8]), Holder: string(v[16:])}
	if ns := int64(u64(v[8:16])); ns != 0 {
		l.Expires = time.Unix(0, ns)
	}
	return l, true
}

func putLease(btx *bbolt.Tx, l store.Lease) error {
	v := make([]byte, 16, 16+len(l.Holder))
	binary.BigEndian.PutUint64(v[:8], l.Token)
	if !l.Expires.IsZero() {
		binary.BigEndian.PutUint64(v[8:16], uint64(l.Expires.UnixNano()))
	}
	v = append(v, l.Holder...)
	return btx.Bucket(bucketLeases).Put([]byte(l.Name), v)
}

func live(l store.Lease, now time.Time) bool { return l.Holder != "" && now.Before(l.Expires) }

var errNoHolder = errors.New("bolt: lease holder must not be empty")

// AcquireLease takes or renews a lease. Any acquisition that is not the
// renewal of a live lease — even by the previous holder after it let the
// lease lapse — gets a new token, so writes fenced with a lapsed token stay
// refused.
func (s *Store) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (store.Lease, error) {
	if holder == "" || name == "" {
		return store.Lease{}, errNoHolder
	}
	var out store.Lease
	var held bool
	err := s.Update(ctx, func(stx store.Tx) error {
		t := stx.(*tx)
		out, held = store.Lease{}, false
		now := t.now()
		l, _ := getLease(t.btx, name)
		switch {
		case live(l, now) && l.Holder != holder:
			held = true // not an error for fn: nothing to roll back
			return nil
		case live(l, now):
			l.Expires = now.Add(ttl)
		default:
			l = store.Lease{Name: name, Holder: holder, Token: l.Token + 1, Expires: now.Add(ttl)}
		}
		out = l
		return putLease(t.btx, l)
	})
	if err != nil {
		return store.Lease{}, err
	}
	if held {
		return store.Lease{}, store.ErrLeaseHeld
	}
	return out, nil
}

// ReleaseLease ends the lease early if holder holds it with token; any
// other call is a no-op, so a stale leader cannot release its successor.
func (s *Store) ReleaseLease(ctx context.Context, name, holder string, token uint64) error {
	return s.Update(ctx, func(stx store.Tx) error {
		t := stx.(*tx)
		l, ok := getLease(t.btx, name)
		if !ok || !live(l, t.now()) || l.Holder != holder || l.Token != token {
			return nil
		}
		return putLease(t.btx, store.Lease{Name: name, Token: l.Token})
	})
}

// GetLease returns the lease as stored; a released lease has no holder and
// a zero Expires but keeps its last token.
func (s *Store) GetLease(ctx context.Context, name string) (store.Lease, error) {
	var out store.Lease
	err := s.View(ctx, func(stx store.Tx) error {
		l, ok := getLease(stx.(*tx).btx, name)
		if !ok {
			return store.ErrNotFound
		}
		out = l
		return nil
	})
	return out, err
}

// --- notifications ---

type subscriber struct{ ch chan struct{} }

// Subscribe registers for topic. The channel is never closed (not even by
// cancel), so receivers should also watch their own context.
func (s *Store) Subscribe(topic string) (<-chan struct{}, func()) {
	sub := &subscriber{ch: make(chan struct{}, 1)}
	s.subMu.Lock()
	if s.subs[topic] == nil {
		s.subs[topic] = make(map[*subscriber]struct{})
	}
	s.subs[topic][sub] = struct{}{}
	s.subMu.Unlock()
	var once sync.Once
	return sub.ch, func() {
		once.Do(func() {
			s.subMu.Lock()
			delete(s.subs[topic], sub)
			if len(s.subs[topic]) == 0 {
				delete(s.subs, topic)
			}
			s.subMu.Unlock()
		})
	}
}

// notify runs after a successful commit. Sends never block: a subscriber
// that has not consumed the previous signal already has one pending, which
// is all "coalesced" promises.
func (s *Store) notify(calls []*call) {
	s.subMu.Lock()
	defer s.subMu.Unlock()
	if len(s.subs) == 0 {
		return
	}
	for _, c := range calls {
		for _, topic := range c.topics {
			for sub := range s.subs[topic] {
				select {
				case sub.ch <- struct{}{}:
				default:
				}
			}
		}
	}
}

// --- set-up lock ---

// Lock is an in-process mutex per name: bbolt's exclusive file lock already
// guarantees that a single process uses the database.
func (s *Store) Lock(ctx context.Context, name string) (func(), error) {
	s.lockMu.Lock()
	ch := s.locks[name]
	if ch == nil {
		ch = make(chan struct{}, 1)
		s.locks[name] = ch
	}
	s.lockMu.Unlock()
	select {
	case ch <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	var once sync.Once
	return func() { once.Do(func() { <-ch }) }, nil
}
