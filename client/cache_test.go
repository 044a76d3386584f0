package client

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// cacheServer serves GetSecretValue with a value and NextRotationDate the
// test controls, or fails with the configured status.
type cacheServer struct {
	mu     sync.Mutex
	body   string
	status int
	calls  atomic.Int32
}

func (s *cacheServer) set(status int, body string) {
	s.mu.Lock()
	s.status, s.body = status, body
	s.mu.Unlock()
}

func newCacheFixture(t *testing.T) (*cacheServer, *SecretCache, *time.Time) {
	t.Helper()
	cs := &cacheServer{status: 200}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cs.calls.Add(1)
		cs.mu.Lock()
		status, body := cs.status, cs.body
		cs.mu.Unlock()
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	c := newTestClient(t, srv.URL, "")
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	sc := NewSecretCache(c, SecretCacheConfig{TTL: 10 * time.Minute, StaleIfError: time.Hour, Now: func() time.Time { return now }})
	return cs, sc, &now
}

func mustValue(t *testing.T, sc *SecretCache, want string) {
	t.Helper()
	v, err := sc.GetSecretValue(context.Background(), "db")
	if err != nil {
		t.Fatal(err)
	}
	if v.SecretData != want {
		t.Fatalf("value %q, want %q", v.SecretData, want)
	}
}

func TestCacheServesFreshValueWithoutCalling(t *testing.T) {
	cs, sc, now := newCacheFixture(t)
	cs.set(200, `{"SecretName":"db","SecretData":"one","VersionId":"v1"}`)
	mustValue(t, sc, "one")
	cs.set(200, `{"SecretName":"db","SecretData":"two","VersionId":"v2"}`)
	*now = now.Add(9 * time.Minute)
	mustValue(t, sc, "one")
	if cs.calls.Load() != 1 {
		t.Fatalf("calls = %d", cs.calls.Load())
	}
	*now = now.Add(2 * time.Minute)
	mustValue(t, sc, "two")
}

func TestCacheExpiresAtNextRotationDateThenPolls(t *testing.T) {
	cs, sc, now := newCacheFixture(t)
	cs.set(200, `{"SecretName":"db","SecretData":"one","NextRotationDate":"2026-01-01T12:03:00Z"}`)
	mustValue(t, sc, "one")
	cs.set(200, `{"SecretName":"db","SecretData":"one","NextRotationDate":"2026-01-01T12:03:00Z"}`)
	*now = now.Add(3 * time.Minute) // rotation due, not done yet
	mustValue(t, sc, "one")
	cs.set(200, `{"SecretName":"db","SecretData":"rotated","NextRotationDate":"2026-01-08T12:03:00Z"}`)
	*now = now.Add(61 * time.Second) // RotationPoll later
	mustValue(t, sc, "rotated")
	if cs.calls.Load() != 3 {
		t.Fatalf("calls = %d, want 3", cs.calls.Load())
	}
}

func TestCacheStaleIfErrorOnlyForTransientFailures(t *testing.T) {
	cs, sc, now := newCacheFixture(t)
	cs.set(200, `{"SecretName":"db","SecretData":"one"}`)
	mustValue(t, sc, "one")

	*now = now.Add(30 * time.Minute)
	cs.set(503, `{"Code":"ServiceUnavailableTemporary","Message":"down","RequestId":"x"}`)
	mustValue(t, sc, "one") // expired but within StaleIfError

	*now = now.Add(2 * time.Hour) // beyond StaleIfError
	if _, err := sc.GetSecretValue(context.Background(), "db"); !IsCode(err, "ServiceUnavailableTemporary") {
		t.Fatalf("err = %v", err)
	}

	cs.set(200, `{"SecretName":"db","SecretData":"one"}`)
	mustValue(t, sc, "one")
	*now = now.Add(11 * time.Minute)
	cs.set(404, `{"Code":"Forbidden.ResourceNotFound","Message":"gone","RequestId":"y"}`)
	if _, err := sc.GetSecretValue(context.Background(), "db"); !IsCode(err, "Forbidden.ResourceNotFound") {
		t.Fatalf("a deleted secret must not be served stale: %v", err)
	}
}

func TestCacheRefreshForcesFetch(t *testing.T) {
	cs, sc, _ := newCacheFixture(t)
	cs.set(200, `{"SecretName":"db","SecretData":"one"}`)
	mustValue(t, sc, "one")
	cs.set(200, `{"SecretName":"db","SecretData":"two"}`)
	sc.Refresh("db")
	mustValue(t, sc, "two")
}

func TestCacheCoalescesConcurrentMisses(t *testing.T) {
	cs, sc, _ := newCacheFixture(t)
	cs.set(200, `{"SecretName":"db","SecretData":"one"}`)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			// t.Fatal must not run off the test goroutine.
			if v, err := sc.GetSecretValue(context.Background(), "db"); err != nil || v.SecretData != "one" {
				t.Errorf("concurrent get: %v", err)
			}
		})
	}
	wg.Wait()
	if cs.calls.Load() != 1 {
		t.Fatalf("calls = %d, want 1", cs.calls.Load())
	}
}
