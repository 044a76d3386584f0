package secrets

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/keyhold/keyhold/internal/errs"
	"github.com/keyhold/keyhold/internal/store"
	"github.com/keyhold/keyhold/internal/store/bolt"
)

const acct = "1234567890"

// fakeEnvelope seals with AES-GCM under one fixed key; the key id travels
// in front of the ciphertext only to check it is passed through.
type fakeEnvelope struct {
	aead cipher.AEAD

	mu    sync.Mutex
	seals int
}

func newFakeEnvelope(t testing.TB) *fakeEnvelope {
	block, err := aes.NewCipher(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	return &fakeEnvelope{aead: aead}
}

func (f *fakeEnvelope) ResolveKey(_ context.Context, _, id string) (string, error) {
	switch id {
	case "":
		return "key-default", nil
	case "alias/missing":
		return "", errs.E(errs.KindKeyNotFound, "The specified key is not found.")
	}
	return id, nil
}

func (f *fakeEnvelope) SealValue(_ context.Context, _, _ string, aad, plaintext []byte) ([]byte, error) {
	f.mu.Lock()
	f.seals++
	f.mu.Unlock()
	nonce := make([]byte, f.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return f.aead.Seal(nonce, nonce, plaintext, aad), nil
}

func (f *fakeEnvelope) OpenValue(_ context.Context, _ string, sealed, aad []byte) ([]byte, error) {
	n := f.aead.NonceSize()
	if len(sealed) < n {
		return nil, errs.E(errs.KindDecryptFailed, "The ciphertext does not open.")
	}
	p, err := f.aead.Open(nil, sealed[:n], sealed[n:], aad)
	if err != nil {
		return nil, errs.E(errs.KindDecryptFailed, "The ciphertext does not open.")
	}
	return p, nil
}

// testClock is a settable clock.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type fixture struct {
	svc   *Service
	st    store.Store
	env   *fakeEnvelope
	clock *testClock
}

func newFixture(t *testing.T, opts ...Option) *fixture {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "keyhold.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return newFixtureOn(t, st, opts...)
}

// newFixtureOn is newFixture on a given (open) store.
func newFixtureOn(t *testing.T, st store.Store, opts ...Option) *fixture {
	t.Helper()
	clock := &testClock{t: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)}
	env := newFakeEnvelope(t)
	opts = append([]Option{WithRegion("cn-test"), WithClock(clock.Now)}, opts...)
	return &fixture{svc: New(st, env, opts...), st: st, env: env, clock: clock}
}

var ctx = context.Background()

func (f *fixture) create(t *testing.T, name, value string) *Secret {
	t.Helper()
	sec, err := f.svc.CreateSecret(ctx, acct, CreateInput{Name: name, VersionID: "v1", Data: value})
	if err != nil {
		t.Fatalf("CreateSecret(%s): %v", name, err)
	}
	return sec
}

func (f *fixture) put(t *testing.T, name, id, value string, stages ...string) {
	t.Helper()
	if _, err := f.svc.PutSecretValue(ctx, acct, PutValueInput{Name: name, VersionID: id, Data: value, Stages: stages}); err != nil {
		t.Fatalf("PutSecretValue(%s, %s): %v", name, id, err)
	}
}

func (f *fixture) value(t *testing.T, name, id, stage string) string {
	t.Helper()
	v, err := f.svc.GetSecretValue(ctx, acct, GetValueInput{Name: name, VersionID: id, VersionStage: stage})
	if err != nil {
		t.Fatalf("GetSecretValue(%s, %q, %q): %v", name, id, stage, err)
	}
	return v.Data
}

// stages returns version id → sorted stages, deprecated versions included.
func (f *fixture) stages(t *testing.T, name string) map[string][]string {
	t.Helper()
	_, vs, _, err := f.svc.ListSecretVersionIds(ctx, acct, name, true, 1, 100)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, v := range vs {
		out[v.ID] = sortedCopy(v.Stages)
	}
	return out
}

func wantKind(t *testing.T, err error, kind errs.Kind) {
	t.Helper()
	if err == nil {
		t.Fatalf("got nil error, want kind %d", kind)
	}
	var e *errs.Error
	if !errors.As(err, &e) || e.Kind != kind {
		t.Fatalf("got %v (kind %d), want kind %d", err, errs.KindOf(err), kind)
	}
}

// snapshot returns every record of both tables, to prove refusals write
// nothing.
func (f *fixture) snapshot(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := f.st.View(ctx, func(tx store.Tx) error {
		for _, table := range []string{tableSecrets, tableVersions} {
			kvs, err := tx.List(table, "", "", 0)
			if err != nil {
				return err
			}
			for _, kv := range kvs {
				out[table+":"+kv.Key] = string(kv.Value)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameSnapshot(t *testing.T, before, after map[string]string) {
	t.Helper()
	if len(before) != len(after) {
		t.Fatalf("storage changed: %d records before, %d after", len(before), len(after))
	}
	for k, v := range before {
		if after[k] != v {
			t.Fatalf("storage changed at %s", k)
		}
	}
}
