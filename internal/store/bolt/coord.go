package bolt

import (
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/keyhold/keyhold/internal/store"
)

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
