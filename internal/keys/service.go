// Package keys is Keyhold's barrier: the one place that encrypts. It owns
// the root key (loaded from a RootKeySource, kept only in memory), customer
// master keys (CMKs: metadata, versions, aliases, tags, their material
// wrapped by the root key) and envelope encryption of secret values.
// Everything above it sees plaintext; everything below it (internal/store)
// sees only ciphertext.
//
// It must know neither HTTP nor a storage engine: the wire layer calls it
// through interfaces, and storage is reached only through store.Store.
package keys

import (
	"context"
	"sync"
	"time"

	"github.com/keyhold/keyhold/internal/store"
)

// Option configures Open.
type Option func(*Service)

// WithClock replaces time.Now (tests).
func WithClock(now func() time.Time) Option { return func(s *Service) { s.now = now } }

// WithCacheSize bounds how many CMKs keep their unwrapped material in
// memory (default 1024; 0 disables caching).
func WithCacheSize(n int) Option { return func(s *Service) { s.cache.max = n } }

// Service manages CMKs and encrypts on behalf of the other packages.
type Service struct {
	st      store.Store
	barrier *Barrier
	region  string
	now     func() time.Time

	cache      *keyCache
	defaultIDs sync.Map // account -> service key id; never changes once set

	unsubscribe func()
	done        chan struct{}
	closeOnce   sync.Once
}

// Open loads the root key from src, checks it against the storage (or
// initialises the storage with it on first start) and returns the service.
// A wrong root key fails with ErrRootKeyMismatch. region is the
// deployment's region id, used in ARNs.
func Open(ctx context.Context, st store.Store, src RootKeySource, region string, opts ...Option) (*Service, error) {
	key, err := src.Load(ctx)
	if err != nil {
		return nil, err
	}
	b, err := NewBarrier(key) // zeroes key
	if err != nil {
		return nil, err
	}
	if err := b.InitRootKey(ctx, st); err != nil {
		return nil, err
	}
	if region == "" {
		region = "cn-hangzhou"
	}
	s := &Service{
		st:      st,
		barrier: b,
		region:  region,
		now:     time.Now,
		cache:   newKeyCache(1024, 5*time.Minute),
		done:    make(chan struct{}),
	}
	for _, o := range opts {
		o(s)
	}
	// Another replica (or this one) changing a key flushes the cache, so
	// a disabled key stops working everywhere without waiting for the TTL.
	ch, cancel := st.Subscribe(topicKeys)
	s.unsubscribe = cancel
	go func() {
		for {
			select {
			case <-ch:
				s.cache.flush()
			case <-s.done:
				return
			}
		}
	}()
	return s, nil
}

// Close stops the cache invalidation listener. The store is the caller's.
func (s *Service) Close() error {
	s.closeOnce.Do(func() {
		s.unsubscribe()
		close(s.done)
		s.cache.flush()
	})
	return nil
}

// Region is the region id used in ARNs.
func (s *Service) Region() string { return s.region }

// SealWithRoot encrypts a small record (an access key secret, the CA
// private key) under the root key, bound to aad.
func (s *Service) SealWithRoot(aad, plaintext []byte) ([]byte, error) {
	return s.barrier.SealWithRoot(aad, plaintext)
}

// DeriveKey returns a 32-byte key derived from the root key for purpose
// (e.g. "keyhold/audit/mac/v1"); see Barrier.DeriveKey.
func (s *Service) DeriveKey(purpose string) []byte { return s.barrier.DeriveKey(purpose) }

// OpenWithRoot reverses SealWithRoot (errs.KindDecryptFailed on mismatch).
func (s *Service) OpenWithRoot(aad, sealed []byte) ([]byte, error) {
	return s.barrier.OpenWithRoot(aad, sealed)
}
