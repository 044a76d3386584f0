package iam

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/keyhold/keyhold/internal/apicall"
	"github.com/keyhold/keyhold/internal/errs"
	"github.com/keyhold/keyhold/internal/keys"
	"github.com/keyhold/keyhold/internal/store"
	"github.com/keyhold/keyhold/internal/store/bolt"
)

// newTestSealer returns the real root-key barrier (keys.Barrier) under a
// random key: it is what the server passes as the Sealer.
func newTestSealer(t testing.TB) *keys.Barrier {
	t.Helper()
	k := make([]byte, 32)
	rand.Read(k)
	b, err := keys.NewBarrier(k)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type env struct {
	path   string
	sealer *keys.Barrier
}

func newEnv(t testing.TB) *env {
	return &env{path: filepath.Join(t.TempDir(), "keyhold.db"), sealer: newTestSealer(t)}
}

// open opens the store and a Service over it, closed at test end.
func (e *env) open(t testing.TB) (store.Store, *Service) {
	t.Helper()
	st, err := bolt.Open(e.path)
	if err != nil {
		t.Fatal(err)
	}
	s := New(st, e.sealer)
	t.Cleanup(func() { s.Close(); st.Close() })
	return st, s
}

var (
	uidRE    = regexp.MustCompile(`^[1-9][0-9]{15}$`)
	keyIDRE  = regexp.MustCompile(`^LTAI[0-9A-Za-z]{20}$`)
	secretRE = regexp.MustCompile(`^[0-9A-Za-z]{30}$`)
)

func TestRootAccountCreatedOnceAndStableAcrossReopen(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	st, s := e.open(t)

	acct, pair, err := s.EnsureRootAccount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if pair == nil {
		t.Fatal("first start returned no key pair")
	}
	if !uidRE.MatchString(acct.UID) || !keyIDRE.MatchString(pair.AccessKeyID) || !secretRE.MatchString(pair.AccessKeySecret) {
		t.Fatalf("bad shapes: uid %q, key id %q, secret of %d chars", acct.UID, pair.AccessKeyID, len(pair.AccessKeySecret))
	}
	again, pair2, err := s.EnsureRootAccount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if pair2 != nil || again.UID != acct.UID {
		t.Fatalf("second call: uid %s (was %s), pair returned again: %v", again.UID, acct.UID, pair2 != nil)
	}
	s.Close()
	st.Close()

	_, s = e.open(t)
	reopened, pair3, err := s.EnsureRootAccount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if pair3 != nil || reopened.UID != acct.UID || !reopened.CreateDate.Equal(acct.CreateDate) {
		t.Fatalf("after reopen: %+v, pair returned: %v; want %+v", reopened, pair3 != nil, acct)
	}
	p, secret, err := s.LookupAccessKey(ctx, pair.AccessKeyID)
	if err != nil {
		t.Fatal(err)
	}
	if secret != pair.AccessKeySecret {
		t.Fatal("secret after reopen differs")
	}
	want := apicall.Principal{Account: acct.UID, AccessKeyID: pair.AccessKeyID, Kind: "root", Name: "root"}
	if p != want {
		t.Fatalf("principal %+v, want %+v", p, want)
	}
}

func TestConcurrentEnsureRootAccountCreatesOneAccountAndKey(t *testing.T) {
	ctx := context.Background()
	st, s := newEnv(t).open(t)

	const n = 4
	accts := make([]Account, n)
	pairs := make([]*AccessKeyPair, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { accts[i], pairs[i], errs[i] = s.EnsureRootAccount(ctx) })
	}
	wg.Wait()
	created := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if accts[i].UID != accts[0].UID {
			t.Fatalf("goroutine %d saw account %s, goroutine 0 %s", i, accts[i].UID, accts[0].UID)
		}
		if pairs[i] != nil {
			created++
		}
	}
	if created != 1 {
		t.Fatalf("%d goroutines got a new key pair, want 1", created)
	}
	var nAccts, nKeys int
	st.View(ctx, func(tx store.Tx) error {
		nAccts, _ = tx.Count(TableAccounts, "")
		nKeys, _ = tx.Count(TableAccessKeys, "")
		return nil
	})
	if nAccts != 1 || nKeys != 1 {
		t.Fatalf("storage holds %d accounts and %d keys, want 1 and 1", nAccts, nKeys)
	}
}

func TestLookupUnknownAccessKeyIsNotFound(t *testing.T) {
	ctx := context.Background()
	_, s := newEnv(t).open(t)
	if _, _, err := s.EnsureRootAccount(ctx); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"LTAI00000000000000000000", "", string(make([]byte, 500))} {
		_, secret, err := s.LookupAccessKey(ctx, id)
		if !errors.Is(err, ErrAccessKeyNotFound) || !errs.Is(err, errs.KindNotFound) || secret != "" {
			t.Errorf("lookup %.30q: secret %q, err %v", id, secret, err)
		}
	}
}

func TestInactiveKeyIsRefusedOnEveryReplica(t *testing.T) {
	ctx := context.Background()
	st, s := newEnv(t).open(t)
	other := New(st, s.sealer) // a second replica sharing the store
	defer other.Close()

	_, pair, err := s.EnsureRootAccount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Warm both caches.
	for _, svc := range []*Service{s, other} {
		if _, _, err := svc.LookupAccessKey(ctx, pair.AccessKeyID); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetAccessKeyStatus(ctx, pair.AccessKeyID, StatusInactive); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.LookupAccessKey(ctx, pair.AccessKeyID); !errors.Is(err, ErrAccessKeyDisabled) || !errs.Is(err, errs.KindForbidden) {
		t.Fatalf("local lookup after disable: %v", err)
	}
	waitFor(t, func() bool {
		_, _, err := other.LookupAccessKey(ctx, pair.AccessKeyID)
		return errors.Is(err, ErrAccessKeyDisabled)
	})
	if err := s.SetAccessKeyStatus(ctx, pair.AccessKeyID, StatusActive); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.LookupAccessKey(ctx, pair.AccessKeyID); err != nil {
		t.Fatalf("lookup after re-enable: %v", err)
	}
}

func TestLastUsedDateRecordedLazily(t *testing.T) {
	ctx := context.Background()
	_, s := newEnv(t).open(t)
	_, pair, err := s.EnsureRootAccount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	k, err := s.GetAccessKey(ctx, pair.AccessKeyID)
	if err != nil || !k.LastUsedDate.IsZero() || k.Status != StatusActive {
		t.Fatalf("fresh key %+v, %v", k, err)
	}
	before := time.Now().Add(-time.Second)
	for range 100 {
		if _, _, err := s.LookupAccessKey(ctx, pair.AccessKeyID); err != nil {
			t.Fatal(err)
		}
	}
	var first time.Time
	waitFor(t, func() bool {
		k, _ := s.GetAccessKey(ctx, pair.AccessKeyID)
		first = k.LastUsedDate
		return first.After(before)
	})
	// Within the minute, further use writes nothing.
	s.LookupAccessKey(ctx, pair.AccessKeyID)
	time.Sleep(50 * time.Millisecond)
	if k, _ := s.GetAccessKey(ctx, pair.AccessKeyID); !k.LastUsedDate.Equal(first) {
		t.Fatalf("LastUsedDate rewritten within a minute: %v then %v", first, k.LastUsedDate)
	}
}

func TestAccessKeySecretNotInStoreFile(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	st, s := e.open(t)
	acct, pair, err := s.EnsureRootAccount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	st.Close()

	raw, err := os.ReadFile(e.path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(raw, []byte(pair.AccessKeyID)) || !bytes.Contains(raw, []byte(acct.UID)) {
		t.Fatal("key id or account not found in the store file; the grep below proves nothing")
	}
	secret := []byte(pair.AccessKeySecret)
	for _, enc := range [][]byte{secret, []byte(base64.StdEncoding.EncodeToString(secret)), []byte(fmt.Sprintf("%x", secret))} {
		if bytes.Contains(raw, enc) {
			t.Fatal("access key secret found in plain in the store file")
		}
	}
}

func TestSealedSecretBoundToItsKeyID(t *testing.T) {
	ctx := context.Background()
	st, s := newEnv(t).open(t)
	_, pair, err := s.EnsureRootAccount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Copy the record under another id: its sealed secret must not open.
	const forged = "LTAIforgedforgedforged00"
	err = st.Update(ctx, func(tx store.Tx) error {
		rec, err := getRecordTx(tx, pair.AccessKeyID)
		if err != nil {
			return err
		}
		rec.AccessKeyID = forged
		return putRecordTx(tx, rec)
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, secret, err := s.LookupAccessKey(ctx, forged); err == nil || secret != "" {
		t.Fatal("a sealed secret opened under another key id")
	} else if bytes.Contains([]byte(err.Error()), []byte(pair.AccessKeySecret)) {
		t.Fatal("error message holds the secret")
	}
}

func TestAuthorizeRootAndUnknownPrincipals(t *testing.T) {
	_, s := newEnv(t).open(t)
	root := apicall.Principal{Account: "1234567890123456", AccessKeyID: "LTAIx", Kind: "root", Name: "root"}
	tests := []struct {
		name     string
		p        apicall.Principal
		resource string
		allowed  bool
	}{
		{"root, account-wide", root, "*", true},
		{"root, no resource", root, "", true},
		{"root, own secret", root, "acs:kms:cn-hangzhou:1234567890123456:secret/db", true},
		{"root, another account's secret", root, "acs:kms:cn-hangzhou:9999999999999999:secret/db", false},
		{"user", apicall.Principal{Account: root.Account, Kind: "user", Name: "alice"}, "*", false},
		{"unknown principal", apicall.Principal{}, "*", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Authorize(context.Background(), tt.p, "kms:GetSecretValue", tt.resource, nil)
			if tt.allowed && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tt.allowed && !errs.Is(err, errs.KindForbidden) {
				t.Fatalf("got %v, want Forbidden", err)
			}
		})
	}
}

func TestAccessKeyPairNeverPrintsSecret(t *testing.T) {
	p := AccessKeyPair{AccessKeyID: "LTAIid", AccessKeySecret: "TOPSECRETVALUE"}
	for _, s := range []string{fmt.Sprint(p), fmt.Sprintf("%v %+v %#v %s", p, p, p, p), fmt.Sprint(&p), p.LogValue().String()} {
		if bytes.Contains([]byte(s), []byte("TOPSECRETVALUE")) {
			t.Fatalf("secret printed: %s", s)
		}
	}
}

func TestRandomIdentifiers(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := newAccessKeyID()
		if !keyIDRE.MatchString(id) || seen[id] {
			t.Fatalf("bad or repeated id %q", id)
		}
		seen[id] = true
		if uid := newAccountUID(); !uidRE.MatchString(uid) {
			t.Fatalf("bad uid %q", uid)
		}
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func BenchmarkLookupAccessKeyCached(b *testing.B) {
	ctx := context.Background()
	st, err := bolt.Open(filepath.Join(b.TempDir(), "keyhold.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	s := New(st, newTestSealer(b))
	defer s.Close()
	_, pair, err := s.EnsureRootAccount(ctx)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, _, err := s.LookupAccessKey(ctx, pair.AccessKeyID); err != nil {
				b.Fatal(err)
			}
		}
	})
}
