package client

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"sync"
	"time"
)

// SecretCacheConfig configures a SecretCache; zero values take defaults.
type SecretCacheConfig struct {
	// TTL is how long a value is served before it is fetched again;
	// default one hour (the Secrets Manager client's default).
	TTL time.Duration
	// StaleIfError is how long past its expiry a value may still be served
	// while the server cannot be reached; default 24 hours. Answers that
	// settle the question (not found, no permission, in delete window) are
	// never masked by a stale value.
	StaleIfError time.Duration
	// RotationPoll is the refresh interval once a secret's NextRotationDate
	// has passed and the new version has not shown up yet; default 1 minute.
	RotationPoll time.Duration
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
}

// SecretCache serves GetSecretValue from memory. It is rotation-aware: an
// entry expires no later than the secret's NextRotationDate, and is polled
// briefly after it until the rotated version arrives. When a refresh fails
// for a transient reason (network, 5xx, throttling) it serves the last value
// for up to StaleIfError. Safe for concurrent use; concurrent misses for the
// same secret make one request.
type SecretCache struct {
	c   *Client
	cfg SecretCacheConfig

	mu      sync.Mutex
	entries map[cacheKey]*cacheEntry
}

type cacheKey struct{ name, stage, version string }

type cacheEntry struct {
	mu      sync.Mutex // held while refreshing, so one request serves all waiters
	val     *GetSecretValueResponse
	expires time.Time
}

// NewSecretCache returns a cache over c.
func NewSecretCache(c *Client, cfg SecretCacheConfig) *SecretCache {
	if cfg.TTL <= 0 {
		cfg.TTL = time.Hour
	}
	if cfg.StaleIfError <= 0 {
		cfg.StaleIfError = 24 * time.Hour
	}
	if cfg.RotationPoll <= 0 {
		cfg.RotationPoll = time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &SecretCache{c: c, cfg: cfg, entries: map[cacheKey]*cacheEntry{}}
}

// GetSecretValue returns the ACSCurrent value of name.
func (s *SecretCache) GetSecretValue(ctx context.Context, name string) (*GetSecretValueResponse, error) {
	return s.Get(ctx, &GetSecretValueRequest{SecretName: name})
}

// Get returns the version r selects, from the cache when it is fresh.
func (s *SecretCache) Get(ctx context.Context, r *GetSecretValueRequest) (*GetSecretValueResponse, error) {
	e := s.entry(r)
	e.mu.Lock()
	defer e.mu.Unlock()
	now := s.cfg.Now()
	if e.val != nil && now.Before(e.expires) {
		return copyValue(e.val), nil
	}
	v, err := s.c.GetSecretValue(ctx, r)
	if err != nil {
		if e.val != nil && transient(err) && now.Before(e.expires.Add(s.cfg.StaleIfError)) {
			return copyValue(e.val), nil
		}
		if !transient(err) {
			e.val = nil // deleted or forbidden now: forget the old value
		}
		return nil, err
	}
	e.val, e.expires = v, s.expiry(v, now)
	return copyValue(v), nil
}

// Refresh drops the cached value of name (all stages and versions), e.g.
// after a login with it failed, so that the next Get asks the server.
func (s *SecretCache) Refresh(name string) {
	var hit []*cacheEntry
	s.mu.Lock()
	for k, e := range s.entries {
		if k.name == name {
			hit = append(hit, e)
		}
	}
	s.mu.Unlock()
	// Entry locks are taken outside s.mu: a refresh in flight holds one
	// across a network call and must not stall every other secret.
	for _, e := range hit {
		e.mu.Lock()
		e.expires = time.Time{}
		e.mu.Unlock()
	}
}

func (s *SecretCache) entry(r *GetSecretValueRequest) *cacheEntry {
	k := cacheKey{r.SecretName, r.VersionStage, r.VersionId}
	if k.stage == "" && k.version == "" {
		k.stage = "ACSCurrent"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries[k]
	if e == nil {
		e = &cacheEntry{}
		s.entries[k] = e
	}
	return e
}

// expiry is now+TTL, cut short by a scheduled rotation; once the rotation
// is due and the value has not changed yet, poll at RotationPoll.
func (s *SecretCache) expiry(v *GetSecretValueResponse, now time.Time) time.Time {
	exp := now.Add(s.cfg.TTL)
	if v.NextRotationDate == "" {
		return exp
	}
	next, err := time.Parse(time.RFC3339, v.NextRotationDate)
	if err != nil {
		return exp
	}
	if !next.After(now) {
		return now.Add(min(s.cfg.RotationPoll, s.cfg.TTL))
	}
	if next.Before(exp) {
		return next
	}
	return exp
}

// transient reports whether an error says nothing about the secret itself,
// so that serving the last known value is better than failing.
func transient(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var e *Error
	if !errors.As(err, &e) {
		return true // transport failure: the server was not reached
	}
	return e.HTTPStatus >= 500 || e.HTTPStatus == http.StatusTooManyRequests
}

func copyValue(v *GetSecretValueResponse) *GetSecretValueResponse {
	c := *v
	c.VersionStages.VersionStage = slices.Clone(v.VersionStages.VersionStage)
	return &c
}
