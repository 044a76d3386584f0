package keys_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyhold/keyhold/internal/errs"
	"github.com/keyhold/keyhold/internal/keys"
	"github.com/keyhold/keyhold/internal/store"
	"github.com/keyhold/keyhold/internal/store/bolt"
)

const acct = "1234567890123456"

// Envelope is a copy of the interface internal/secrets declares.
type Envelope interface {
	ResolveKey(ctx context.Context, account, keyIDOrAlias string) (string, error)
	SealValue(ctx context.Context, account, keyID string, aad, plaintext []byte) ([]byte, error)
	OpenValue(ctx context.Context, account string, sealed, aad []byte) ([]byte, error)
}

// Sealer is a copy of the interface internal/pki and internal/iam use.
type Sealer interface {
	SealWithRoot(aad, plaintext []byte) ([]byte, error)
	OpenWithRoot(aad, sealed []byte) ([]byte, error)
}

var (
	_ Envelope = (*keys.Service)(nil)
	_ Sealer   = (*keys.Service)(nil)
)

func rootKey(b byte) keys.StaticSource { return keys.StaticSource(bytes.Repeat([]byte{b}, 32)) }

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type env struct {
	st    *bolt.Store
	path  string
	svc   *keys.Service
	clock *clock
}

func newEnv(t *testing.T) *env {
	t.Helper()
	path := filepath.Join(t.TempDir(), "k.db")
	st, err := bolt.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	svc, err := keys.Open(context.Background(), st, rootKey(1), "cn-hangzhou", keys.WithClock(c.now))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	return &env{st: st, path: path, svc: svc, clock: c}
}

func (e *env) createKey(t *testing.T) string {
	t.Helper()
	m, err := e.svc.CreateKey(context.Background(), acct, keys.CreateKeyInput{Description: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return m.KeyID
}

func wantKind(t *testing.T, err error, kind errs.Kind) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want kind %d", kind)
	}
	if got := errs.KindOf(err); got != kind {
		t.Fatalf("got error %v (kind %d), want kind %d", err, got, kind)
	}
}

func TestRootKeyCheckValue(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "k.db")
	st, err := bolt.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	svc, err := keys.Open(ctx, st, rootKey(1), "")
	if err != nil {
		t.Fatalf("first start: %v", err)
	}
	svc.Close()
	for _, tc := range []struct {
		name    string
		src     keys.RootKeySource
		wantErr error
	}{
		{"same key again", rootKey(1), nil},
		{"wrong key", rootKey(2), keys.ErrRootKeyMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc, err := keys.Open(ctx, st, tc.src, "")
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Open: %v, want %v", err, tc.wantErr)
			}
			if err == nil {
				svc.Close()
			} else if !strings.Contains(err.Error(), "root key does not match this storage") {
				t.Fatalf("unclear message: %v", err)
			}
		})
	}
	if _, err := keys.Open(ctx, st, keys.StaticSource(make([]byte, 16)), ""); err == nil {
		t.Fatal("a 16-byte root key was accepted")
	}
}

func TestRootKeyConcurrentInit(t *testing.T) {
	// Replicas starting together with different keys: exactly one wins.
	ctx := context.Background()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var wg sync.WaitGroup
	results := make([]error, 8)
	for i := range results {
		wg.Go(func() {
			svc, err := keys.Open(ctx, st, rootKey(byte(i+1)), "")
			if err == nil {
				svc.Close()
			}
			results[i] = err
		})
	}
	wg.Wait()
	ok := 0
	for _, err := range results {
		if err == nil {
			ok++
		} else if !errors.Is(err, keys.ErrRootKeyMismatch) {
			t.Fatalf("unexpected error: %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d replicas accepted different root keys, want 1", ok)
	}
}

func TestFileSource(t *testing.T) {
	ctx := context.Background()
	good := bytes.Repeat([]byte{7}, 32)
	for _, tc := range []struct {
		name    string
		content []byte // nil: no file
		mode    os.FileMode
		create  bool
		wantErr string
	}{
		{name: "created when missing", create: true},
		{name: "missing without create", wantErr: "does not exist"},
		{name: "base64 file", content: []byte(base64.StdEncoding.EncodeToString(good) + "\n"), mode: 0o600},
		{name: "read-only owner", content: []byte(base64.StdEncoding.EncodeToString(good)), mode: 0o400},
		{name: "raw 32 bytes", content: good, mode: 0o600, wantErr: "malformed"},
		{name: "group readable", content: good, mode: 0o640, wantErr: "accessible by group or others"},
		{name: "world readable", content: good, mode: 0o604, wantErr: "accessible by group or others"},
		{name: "too short", content: []byte(base64.StdEncoding.EncodeToString(good[:16])), mode: 0o600, wantErr: "malformed"},
		{name: "base64 of wrong length", content: []byte(base64.StdEncoding.EncodeToString(good[:24])), mode: 0o600, wantErr: "malformed"},
		{name: "too long", content: bytes.Repeat([]byte{1}, 300), mode: 0o600, wantErr: "wrong size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "sub", "root.key")
			if tc.content != nil {
				if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, tc.content, tc.mode); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(path, tc.mode); err != nil {
					t.Fatal(err)
				}
			}
			src := keys.FileSource{Path: path, Create: tc.create}
			key, err := src.Load(ctx)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Load: %v, want error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(key) != 32 {
				t.Fatalf("key is %d bytes", len(key))
			}
			if tc.content != nil && !bytes.Equal(key, good) {
				t.Fatal("loaded key differs from the file's")
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if tc.create && fi.Mode().Perm() != 0o600 {
				t.Fatalf("created with mode %v", fi.Mode().Perm())
			}
			again, err := src.Load(ctx)
			if err != nil || !bytes.Equal(again, key) {
				t.Fatalf("second Load differs (%v)", err)
			}
			if tc.create {
				if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
					t.Fatalf("temp files left behind: %v", entries)
				}
			}
		})
	}
}

func TestSealWithRoot(t *testing.T) {
	e := newEnv(t)
	sealed, err := e.svc.SealWithRoot([]byte("ak/LTAI1"), []byte("access-key-secret"))
	if err != nil {
		t.Fatal(err)
	}
	pt, err := e.svc.OpenWithRoot([]byte("ak/LTAI1"), sealed)
	if err != nil || string(pt) != "access-key-secret" {
		t.Fatalf("OpenWithRoot = %q, %v", pt, err)
	}
	_, err = e.svc.OpenWithRoot([]byte("ak/LTAI2"), sealed)
	wantKind(t, err, errs.KindDecryptFailed)
	if strings.Contains(err.Error(), "access-key-secret") {
		t.Fatal("plaintext in error")
	}
}

func TestSealOpenValue(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	keyID := e.createKey(t)
	aadA := []byte("acs:kms:cn-hangzhou:" + acct + ":secret/db#v1")
	aadB := []byte("acs:kms:cn-hangzhou:" + acct + ":secret/db#v2")
	sealed, err := e.svc.SealValue(ctx, acct, keyID, aadA, []byte("hunter2"))
	if err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1

	for _, tc := range []struct {
		name    string
		account string
		blob    []byte
		aad     []byte
		kind    errs.Kind
		ok      bool
	}{
		{name: "same aad", account: acct, blob: sealed, aad: aadA, ok: true},
		{name: "moved to another row", account: acct, blob: sealed, aad: aadB, kind: errs.KindDecryptFailed},
		{name: "empty aad", account: acct, blob: sealed, aad: nil, kind: errs.KindDecryptFailed},
		{name: "tampered", account: acct, blob: tampered, aad: aadA, kind: errs.KindDecryptFailed},
		{name: "truncated", account: acct, blob: sealed[:20], aad: aadA, kind: errs.KindDecryptFailed},
		{name: "other account", account: "999", blob: sealed, aad: aadA, kind: errs.KindKeyNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pt, err := e.svc.OpenValue(ctx, tc.account, tc.blob, tc.aad)
			if tc.ok {
				if err != nil || string(pt) != "hunter2" {
					t.Fatalf("OpenValue = %q, %v", pt, err)
				}
				return
			}
			wantKind(t, err, tc.kind)
		})
	}
	// Two seals of the same value differ (fresh data key and nonce).
	again, _ := e.svc.SealValue(ctx, acct, keyID, aadA, []byte("hunter2"))
	if bytes.Equal(again, sealed) {
		t.Fatal("sealing is deterministic")
	}
	if id, _, ok := keys.ValueKeyID(sealed); !ok || id != keyID {
		t.Fatalf("ValueKeyID = %q, %v", id, ok)
	}
}

func TestDefaultServiceKey(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	id1, err := e.svc.ResolveKey(ctx, acct, "")
	if err != nil {
		t.Fatal(err)
	}
	id2, err := e.svc.ResolveKey(ctx, acct, "")
	if err != nil || id2 != id1 {
		t.Fatalf("second ResolveKey = %q, %v; want %q", id2, err, id1)
	}
	other, _ := e.svc.ResolveKey(ctx, "other", "")
	if other == id1 {
		t.Fatal("accounts share a service key")
	}
	sealed, err := e.svc.SealValue(ctx, acct, id1, []byte("a"), []byte("v"))
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := e.svc.OpenValue(ctx, acct, sealed, []byte("a")); err != nil || string(pt) != "v" {
		t.Fatalf("OpenValue = %q, %v", pt, err)
	}
	list, total, err := e.svc.ListKeys(ctx, acct, nil, 1, 10)
	if err != nil || total != 0 || len(list) != 0 {
		t.Fatalf("ListKeys shows the service key: %v %d %v", list, total, err)
	}
	m, err := e.svc.DescribeKey(ctx, acct, id1)
	if err != nil || m.Creator != keys.ServiceKeyCreator {
		t.Fatalf("DescribeKey = %+v, %v", m, err)
	}
	wantKind(t, e.svc.DisableKey(ctx, acct, id1), errs.KindUnsupported)
	wantKind(t, e.svc.ScheduleKeyDeletion(ctx, acct, id1, 7), errs.KindUnsupported)
	wantKind(t, e.svc.CreateAlias(ctx, acct, "alias/svc", id1), errs.KindUnsupported)

	// A second replica (fresh process) finds the same key.
	svc2, err := keys.Open(ctx, e.st, rootKey(1), "")
	if err != nil {
		t.Fatal(err)
	}
	defer svc2.Close()
	if id3, _ := svc2.ResolveKey(ctx, acct, ""); id3 != id1 {
		t.Fatalf("replica resolves %q, want %q", id3, id1)
	}
}

func TestDisabledKeyRefusesUse(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	keyID := e.createKey(t)
	sealed, err := e.svc.SealValue(ctx, acct, keyID, []byte("a"), []byte("v"))
	if err != nil {
		t.Fatal(err)
	}
	blob, _, _, err := e.svc.Encrypt(ctx, acct, keyID, []byte("v"), nil)
	if err != nil {
		t.Fatal(err)
	}
	uses := map[string]func() error{
		"Encrypt": func() error { _, _, _, err := e.svc.Encrypt(ctx, acct, keyID, []byte("v"), nil); return err },
		"Decrypt": func() error { _, _, _, err := e.svc.Decrypt(ctx, acct, blob, nil); return err },
		"GenerateDataKey": func() error {
			_, _, _, _, err := e.svc.GenerateDataKey(ctx, acct, keyID, "", 0, nil)
			return err
		},
		"SealValue": func() error { _, err := e.svc.SealValue(ctx, acct, keyID, []byte("a"), []byte("v")); return err },
		"OpenValue": func() error { _, err := e.svc.OpenValue(ctx, acct, sealed, []byte("a")); return err },
	}
	for _, state := range []struct {
		name          string
		disable, undo func() error
	}{
		{"Disabled", func() error { return e.svc.DisableKey(ctx, acct, keyID) }, func() error { return e.svc.EnableKey(ctx, acct, keyID) }},
		{"PendingDeletion", func() error { return e.svc.ScheduleKeyDeletion(ctx, acct, keyID, 7) }, func() error { return e.svc.CancelKeyDeletion(ctx, acct, keyID) }},
	} {
		// Warm the cache first: a state change must invalidate it.
		for name, use := range uses {
			if err := use(); err != nil {
				t.Fatalf("%s before %s: %v", name, state.name, err)
			}
		}
		if err := state.disable(); err != nil {
			t.Fatal(err)
		}
		for name, use := range uses {
			if err := use(); errs.KindOf(err) != errs.KindDisabled {
				t.Errorf("%s on a %s key: %v, want KindDisabled", name, state.name, err)
			}
		}
		if err := state.undo(); err != nil {
			t.Fatal(err)
		}
		m, _ := e.svc.DescribeKey(ctx, acct, keyID)
		if m.KeyState != keys.StateEnabled || !m.DeleteDate.IsZero() {
			t.Fatalf("after undo: %+v", m)
		}
	}
	// State transitions that make no sense are refused.
	if err := e.svc.ScheduleKeyDeletion(ctx, acct, keyID, 30); err != nil {
		t.Fatal(err)
	}
	wantKind(t, e.svc.EnableKey(ctx, acct, keyID), errs.KindInvalidState)
	wantKind(t, e.svc.ScheduleKeyDeletion(ctx, acct, keyID, 30), errs.KindInvalidState)
	if err := e.svc.CancelKeyDeletion(ctx, acct, keyID); err != nil {
		t.Fatal(err)
	}
	wantKind(t, e.svc.CancelKeyDeletion(ctx, acct, keyID), errs.KindInvalidState)
}

func TestCacheInvalidatedAcrossReplicas(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	keyID := e.createKey(t)
	sealed, err := e.svc.SealValue(ctx, acct, keyID, []byte("a"), []byte("v"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.OpenValue(ctx, acct, sealed, []byte("a")); err != nil {
		t.Fatal(err) // now cached in e.svc
	}
	other, err := keys.Open(ctx, e.st, rootKey(1), "")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := other.DisableKey(ctx, acct, keyID); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		_, err := e.svc.OpenValue(ctx, acct, sealed, []byte("a"))
		if errs.KindOf(err) == errs.KindDisabled {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica still opens with a key disabled elsewhere: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestKeyReferences(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	keyID := e.createKey(t)
	if err := e.svc.CreateAlias(ctx, acct, "alias/app", keyID); err != nil {
		t.Fatal(err)
	}
	arn := "acs:kms:cn-hangzhou:" + acct + ":key/" + keyID
	for _, tc := range []struct {
		ref  string
		kind errs.Kind
		ok   bool
	}{
		{ref: keyID, ok: true},
		{ref: arn, ok: true},
		{ref: "acs:kms:cn-shanghai:" + acct + ":key/" + keyID, ok: true}, // one region per deployment
		{ref: "alias/app", ok: true},
		{ref: "acs:kms:cn-hangzhou:" + acct + ":alias/app", ok: true},
		{ref: "alias/nope", kind: errs.KindAliasNotFound},
		{ref: "acs:kms:cn-hangzhou:999:key/" + keyID, kind: errs.KindKeyNotFound},
		{ref: "acs:kms:cn-hangzhou:999:alias/app", kind: errs.KindAliasNotFound},
		{ref: "acs:kms:cn-hangzhou:" + acct + ":secret/x", kind: errs.KindInvalidParameter},
		{ref: "00000000-0000-4000-8000-000000000000", kind: errs.KindKeyNotFound},
	} {
		t.Run(tc.ref, func(t *testing.T) {
			got, err := e.svc.ResolveKey(ctx, acct, tc.ref)
			if tc.ok {
				if err != nil || got != keyID {
					t.Fatalf("ResolveKey = %q, %v", got, err)
				}
				if _, _, _, err := e.svc.Encrypt(ctx, acct, tc.ref, []byte("x"), nil); err != nil {
					t.Fatalf("Encrypt: %v", err)
				}
				a, err := e.svc.KeyARN(ctx, acct, tc.ref)
				if err != nil || a != arn {
					t.Fatalf("KeyARN = %q, %v", a, err)
				}
				return
			}
			wantKind(t, err, tc.kind)
		})
	}
}

func TestAliases(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	k1, k2 := e.createKey(t), e.createKey(t)
	for _, tc := range []struct {
		name string
		kind errs.Kind
		ok   bool
	}{
		{"alias/ok-name_1:x/y", 0, true},
		{"app", errs.KindInvalidParameter, false},
		{"alias/", errs.KindInvalidParameter, false},
		{"alias/has space", errs.KindInvalidParameter, false},
		{"alias/acs-reserved", errs.KindInvalidParameter, false},
		{"alias/" + strings.Repeat("a", 250), errs.KindInvalidParameter, false},
	} {
		err := e.svc.CreateAlias(ctx, acct, tc.name, k1)
		if tc.ok != (err == nil) || (!tc.ok && errs.KindOf(err) != tc.kind) {
			t.Errorf("CreateAlias(%q) = %v", tc.name, err)
		}
	}
	if err := e.svc.CreateAlias(ctx, acct, "alias/a", k1); err != nil {
		t.Fatal(err)
	}
	wantKind(t, e.svc.CreateAlias(ctx, acct, "alias/a", k2), errs.KindAlreadyExists)
	wantKind(t, e.svc.CreateAlias(ctx, acct, "alias/b", "alias/a"), errs.KindInvalidParameter)
	wantKind(t, e.svc.UpdateAlias(ctx, acct, "alias/missing", k2), errs.KindAliasNotFound)
	if err := e.svc.UpdateAlias(ctx, acct, "alias/a", k2); err != nil {
		t.Fatal(err)
	}
	if id, _ := e.svc.ResolveKey(ctx, acct, "alias/a"); id != k2 {
		t.Fatalf("alias/a -> %s after UpdateAlias, want %s", id, k2)
	}
	all, total, err := e.svc.ListAliases(ctx, acct, 1, 10)
	if err != nil || total != 2 || len(all) != 2 {
		t.Fatalf("ListAliases = %v, %d, %v", all, total, err)
	}
	if all[0].AliasArn != "acs:kms:cn-hangzhou:"+acct+":alias/a" {
		t.Fatalf("AliasArn = %q", all[0].AliasArn)
	}
	byKey, total, err := e.svc.ListAliasesByKeyId(ctx, acct, k1, 1, 10)
	if err != nil || total != 1 || byKey[0].AliasName != "alias/ok-name_1:x/y" {
		t.Fatalf("ListAliasesByKeyId = %v, %d, %v", byKey, total, err)
	}
	if err := e.svc.DeleteAlias(ctx, acct, "alias/a"); err != nil {
		t.Fatal(err)
	}
	wantKind(t, e.svc.DeleteAlias(ctx, acct, "alias/a"), errs.KindAliasNotFound)
	// Aliases are per account.
	if err := e.svc.CreateAlias(ctx, "other", "alias/a", k1); errs.KindOf(err) != errs.KindKeyNotFound {
		t.Fatalf("cross-account alias: %v", err)
	}
}

func TestDeletionWindowAndPurge(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	for _, tc := range []struct {
		days int
		ok   bool
	}{{6, false}, {0, false}, {367, false}, {7, true}, {366, true}} {
		keyID := e.createKey(t)
		err := e.svc.ScheduleKeyDeletion(ctx, acct, keyID, tc.days)
		if tc.ok != (err == nil) {
			t.Errorf("ScheduleKeyDeletion(%d days) = %v", tc.days, err)
		}
		if !tc.ok {
			wantKind(t, err, errs.KindInvalidParameter)
			continue
		}
		m, _ := e.svc.DescribeKey(ctx, acct, keyID)
		if want := e.clock.now().Add(time.Duration(tc.days) * 24 * time.Hour); !m.DeleteDate.Equal(want) || m.KeyState != keys.StatePendingDeletion {
			t.Errorf("after scheduling %d days: state %s, DeleteDate %v, want %v", tc.days, m.KeyState, m.DeleteDate, want)
		}
	}

	keyID := e.createKey(t)
	if err := e.svc.CreateAlias(ctx, acct, "alias/doomed", keyID); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.ScheduleKeyDeletion(ctx, acct, keyID, 7); err != nil {
		t.Fatal(err)
	}
	wantKind(t, e.svc.CreateAlias(ctx, acct, "alias/late", keyID), errs.KindInvalidState)
	now := e.clock.now()
	if n, err := e.svc.PurgeDue(ctx, now.Add(7*24*time.Hour-time.Second)); err != nil || n != 0 {
		t.Fatalf("PurgeDue before the date: %d, %v", n, err)
	}
	n, err := e.svc.PurgeDue(ctx, now.Add(7*24*time.Hour))
	if err != nil || n != 2 { // this key and the 7-day key above
		t.Fatalf("PurgeDue at the date: %d, %v", n, err)
	}
	_, err = e.svc.DescribeKey(ctx, acct, keyID)
	wantKind(t, err, errs.KindKeyNotFound)
	_, err = e.svc.ResolveKey(ctx, acct, "alias/doomed")
	wantKind(t, err, errs.KindAliasNotFound)
	if n, _ := e.svc.PurgeDue(ctx, now.Add(400*24*time.Hour)); n != 1 {
		t.Fatalf("the 366-day key: purged %d", n)
	}
	if n, _ := e.svc.PurgeDue(ctx, now.Add(400*24*time.Hour)); n != 0 {
		t.Fatalf("second purge deleted %d", n)
	}
}

func TestKeyVersions(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	keyID := e.createKey(t)
	m0, _ := e.svc.DescribeKey(ctx, acct, keyID)
	blob, _, v0, err := e.svc.Encrypt(ctx, acct, keyID, []byte("old"), map[string]string{"k": "v"})
	if err != nil || v0 != m0.PrimaryKeyVersion {
		t.Fatalf("Encrypt: version %q, %v", v0, err)
	}
	sealed, err := e.svc.SealValue(ctx, acct, keyID, []byte("a"), []byte("old value"))
	if err != nil {
		t.Fatal(err)
	}

	e.clock.add(time.Hour)
	kv, err := e.svc.CreateKeyVersion(ctx, acct, keyID)
	if err != nil {
		t.Fatal(err)
	}
	m1, _ := e.svc.DescribeKey(ctx, acct, keyID)
	if m1.PrimaryKeyVersion != kv.KeyVersionID || kv.KeyVersionID == v0 {
		t.Fatalf("primary %q after CreateKeyVersion %q (old %q)", m1.PrimaryKeyVersion, kv.KeyVersionID, v0)
	}
	if pt, _, vid, err := e.svc.Decrypt(ctx, acct, blob, map[string]string{"k": "v"}); err != nil || string(pt) != "old" || vid != v0 {
		t.Fatalf("old ciphertext: %q %q %v", pt, vid, err)
	}
	if pt, err := e.svc.OpenValue(ctx, acct, sealed, []byte("a")); err != nil || string(pt) != "old value" {
		t.Fatalf("old sealed value: %q %v", pt, err)
	}
	_, _, v1, _ := e.svc.Encrypt(ctx, acct, keyID, []byte("new"), nil)
	if v1 != kv.KeyVersionID {
		t.Fatalf("new encryption used %q, want %q", v1, kv.KeyVersionID)
	}
	if _, vid, _ := keys.ValueKeyID(must(e.svc.SealValue(ctx, acct, keyID, []byte("a"), []byte("x")))); vid != kv.KeyVersionID {
		t.Fatalf("new seal used version %q", vid)
	}
	list, total, err := e.svc.ListKeyVersions(ctx, acct, keyID, 1, 1)
	if err != nil || total != 2 || len(list) != 1 || list[0].KeyVersionID != v0 {
		t.Fatalf("ListKeyVersions page 1 = %v %d %v", list, total, err)
	}
	d, err := e.svc.DescribeKeyVersion(ctx, acct, keyID, kv.KeyVersionID)
	if err != nil || !d.CreationDate.Equal(e.clock.now()) {
		t.Fatalf("DescribeKeyVersion = %+v, %v", d, err)
	}
	_, err = e.svc.DescribeKeyVersion(ctx, acct, keyID, "nope")
	wantKind(t, err, errs.KindNotFound)
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestEncryptDecryptReEncrypt(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	k1, k2 := e.createKey(t), e.createKey(t)
	ctxA := map[string]string{"app": "billing", "env": "prod"}
	blob, keyID, _, err := e.svc.Encrypt(ctx, acct, k1, []byte("payload"), ctxA)
	if err != nil || keyID != k1 {
		t.Fatal(keyID, err)
	}
	if arn, err := e.svc.CiphertextKeyARN(acct, blob); err != nil || !strings.HasSuffix(arn, ":key/"+k1) {
		t.Fatalf("CiphertextKeyARN = %q, %v", arn, err)
	}
	for _, tc := range []struct {
		name string
		ec   map[string]string
		ok   bool
	}{
		{"same context", map[string]string{"env": "prod", "app": "billing"}, true},
		{"no context", nil, false},
		{"other value", map[string]string{"app": "billing", "env": "dev"}, false},
		{"extra key", map[string]string{"app": "billing", "env": "prod", "x": "y"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pt, _, _, err := e.svc.Decrypt(ctx, acct, blob, tc.ec)
			if tc.ok {
				if err != nil || string(pt) != "payload" {
					t.Fatalf("Decrypt = %q, %v", pt, err)
				}
				return
			}
			wantKind(t, err, errs.KindDecryptFailed)
		})
	}
	_, _, _, err = e.svc.Decrypt(ctx, acct, []byte("garbage"), nil)
	wantKind(t, err, errs.KindInvalidParameter)
	_, _, _, err = e.svc.Encrypt(ctx, acct, k1, make([]byte, 6*1024+1), nil)
	wantKind(t, err, errs.KindInvalidParameter)

	ctxB := map[string]string{"to": "b"}
	_, _, _, err = e.svc.ReEncrypt(ctx, acct, blob, nil, k2, ctxB)
	wantKind(t, err, errs.KindDecryptFailed)
	blob2, keyID2, _, err := e.svc.ReEncrypt(ctx, acct, blob, ctxA, "alias/missing", ctxB)
	wantKind(t, err, errs.KindAliasNotFound)
	blob2, keyID2, _, err = e.svc.ReEncrypt(ctx, acct, blob, ctxA, k2, ctxB)
	if err != nil || keyID2 != k2 {
		t.Fatal(keyID2, err)
	}
	if pt, kid, _, err := e.svc.Decrypt(ctx, acct, blob2, ctxB); err != nil || string(pt) != "payload" || kid != k2 {
		t.Fatalf("Decrypt re-encrypted = %q %q %v", pt, kid, err)
	}
	// Disabling the source key does not affect the re-encrypted copy.
	if err := e.svc.DisableKey(ctx, acct, k1); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := e.svc.Decrypt(ctx, acct, blob2, ctxB); err != nil {
		t.Fatal(err)
	}
}

func TestGenerateDataKey(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	keyID := e.createKey(t)
	for _, tc := range []struct {
		spec string
		n    int
		want int // 0: error
	}{
		{"", 0, 32}, {"AES_256", 0, 32}, {"AES_128", 0, 16}, {"AES_512", 0, 0},
		{"", 1, 1}, {"", 1024, 1024}, {"AES_128", 64, 64}, {"", 1025, 0}, {"", -1, 0},
	} {
		t.Run(fmt.Sprintf("%s/%d", tc.spec, tc.n), func(t *testing.T) {
			ec := map[string]string{"purpose": "dk"}
			pt, blob, _, _, err := e.svc.GenerateDataKey(ctx, acct, keyID, tc.spec, tc.n, ec)
			if tc.want == 0 {
				wantKind(t, err, errs.KindInvalidParameter)
				return
			}
			if err != nil || len(pt) != tc.want {
				t.Fatalf("GenerateDataKey: %d bytes, %v", len(pt), err)
			}
			back, _, _, err := e.svc.Decrypt(ctx, acct, blob, ec)
			if err != nil || !bytes.Equal(back, pt) {
				t.Fatalf("Decrypt of the data key: %v", err)
			}
			blob2, _, _, err := e.svc.GenerateDataKeyWithoutPlaintext(ctx, acct, keyID, tc.spec, tc.n, ec)
			if err != nil {
				t.Fatal(err)
			}
			if back, _, _, err := e.svc.Decrypt(ctx, acct, blob2, ec); err != nil || len(back) != tc.want {
				t.Fatalf("without plaintext: %d bytes, %v", len(back), err)
			}
		})
	}
}

func TestKeyTags(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	keyID := e.createKey(t)
	for _, tc := range []struct {
		name string
		tags map[string]string
		ok   bool
	}{
		{"plain", map[string]string{"team": "core"}, true},
		{"aliyun prefix", map[string]string{"aliyun:x": "v"}, false},
		{"acs prefix", map[string]string{"ACS:x": "v"}, false},
		{"long key", map[string]string{strings.Repeat("k", 129): "v"}, false},
		{"long value", map[string]string{"k": strings.Repeat("v", 129)}, false},
		{"max length", map[string]string{strings.Repeat("k", 128): strings.Repeat("v", 128)}, true},
	} {
		err := e.svc.TagKey(ctx, acct, keyID, tc.tags)
		if tc.ok != (err == nil) {
			t.Errorf("%s: TagKey = %v", tc.name, err)
		}
	}
	many := map[string]string{}
	for i := range 18 {
		many[fmt.Sprint("t", i)] = "v"
	}
	if err := e.svc.TagKey(ctx, acct, keyID, many); err != nil { // 2 + 18 = 20
		t.Fatal(err)
	}
	wantKind(t, e.svc.TagKey(ctx, acct, keyID, map[string]string{"one-more": "v"}), errs.KindLimitExceeded)
	if err := e.svc.TagKey(ctx, acct, keyID, map[string]string{"team": "infra"}); err != nil {
		t.Fatalf("overwriting at the limit: %v", err)
	}
	if err := e.svc.UntagKey(ctx, acct, keyID, []string{"t0", "absent"}); err != nil {
		t.Fatal(err)
	}
	tags, err := e.svc.ListKeyTags(ctx, acct, keyID)
	if err != nil || len(tags) != 19 || tags["team"] != "infra" {
		t.Fatalf("ListKeyTags = %d tags, team=%q, %v", len(tags), tags["team"], err)
	}
	wantKind(t, e.svc.TagKey(ctx, acct, "00000000-0000-4000-8000-000000000000", map[string]string{"a": "b"}), errs.KindKeyNotFound)
}

func TestCreateAndListKeys(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	var ids []string
	for range 5 {
		ids = append(ids, e.createKey(t))
		e.clock.add(time.Second)
	}
	if err := e.svc.DisableKey(ctx, acct, ids[1]); err != nil {
		t.Fatal(err)
	}
	list, total, err := e.svc.ListKeys(ctx, acct, nil, 2, 2)
	if err != nil || total != 5 || len(list) != 2 || list[0].KeyID != ids[2] || list[1].KeyID != ids[3] {
		t.Fatalf("page 2: %v %d %v", list, total, err)
	}
	list, total, _ = e.svc.ListKeys(ctx, acct, map[string][]string{"KeyState": {"Disabled"}}, 1, 10)
	if total != 1 || list[0].KeyID != ids[1] {
		t.Fatalf("filtered: %v %d", list, total)
	}
	for _, p := range [][2]int{{1, 101}, {-1, 10}, {1, -1}} {
		_, _, err := e.svc.ListKeys(ctx, acct, nil, p[0], p[1])
		wantKind(t, err, errs.KindInvalidParameter)
	}
	if list, _, _ := e.svc.ListKeys(ctx, "other", nil, 1, 10); len(list) != 0 {
		t.Fatal("keys leak across accounts")
	}

	m, err := e.svc.CreateKey(ctx, acct, keys.CreateKeyInput{
		Description: "rotating", EnableAutomaticRotation: true, RotationInterval: 30 * 24 * time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	if m.KeyState != "Enabled" || m.KeySpec != "Aliyun_AES_256" || m.KeyUsage != "ENCRYPT/DECRYPT" ||
		m.Origin != "Aliyun_KMS" || m.ProtectionLevel != "SOFTWARE" || m.Arn != "acs:kms:cn-hangzhou:"+acct+":key/"+m.KeyID ||
		m.AutomaticRotation != "Enabled" || !m.NextRotationDate.Equal(m.CreationDate.Add(30*24*time.Hour)) || m.Creator != acct {
		t.Fatalf("CreateKey metadata: %+v", m)
	}
	if len(m.KeyID) != 36 || strings.Count(m.KeyID, "-") != 4 {
		t.Fatalf("KeyId %q is not UUID-shaped", m.KeyID)
	}
	for _, in := range []keys.CreateKeyInput{
		{KeySpec: "RSA_2048"}, {KeyUsage: "SIGN/VERIFY"}, {Origin: "EXTERNAL"}, {ProtectionLevel: "HSM"},
		{EnableAutomaticRotation: true, RotationInterval: 6 * 24 * time.Hour},
	} {
		_, err := e.svc.CreateKey(ctx, acct, in)
		wantKind(t, err, errs.KindInvalidParameter)
	}
	if err := e.svc.UpdateKeyDescription(ctx, acct, m.KeyID, "new"); err != nil {
		t.Fatal(err)
	}
	if d, _ := e.svc.DescribeKey(ctx, acct, m.KeyID); d.Description != "new" {
		t.Fatalf("description %q", d.Description)
	}

	// Automatic rotation: nothing due yet, then one rotation.
	if n, err := e.svc.RotateDue(ctx, e.clock.now()); err != nil || n != 0 {
		t.Fatalf("RotateDue early: %d %v", n, err)
	}
	e.clock.add(31 * 24 * time.Hour)
	if n, err := e.svc.RotateDue(ctx, e.clock.now()); err != nil || n != 1 {
		t.Fatalf("RotateDue: %d %v", n, err)
	}
	if _, total, _ := e.svc.ListKeyVersions(ctx, acct, m.KeyID, 1, 10); total != 2 {
		t.Fatalf("versions after rotation: %d", total)
	}
}

func TestMarkerNeverInStoreFile(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	keyID := e.createKey(t)
	const marker = "MARKER-7c1e9a-PLAINTEXT"
	dkSeen := [][]byte{}
	if _, err := e.svc.SealValue(ctx, acct, keyID, []byte("aad"), []byte(marker)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.SealWithRoot([]byte("aad"), []byte(marker)); err != nil {
		t.Fatal(err)
	}
	blob, _, _, err := e.svc.Encrypt(ctx, acct, keyID, []byte(marker), nil)
	if err != nil {
		t.Fatal(err)
	}
	dk, _, _, _, err := e.svc.GenerateDataKey(ctx, acct, keyID, "", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	dkSeen = append(dkSeen, dk)
	// Store the ciphertexts too, as a caller would, to make sure they
	// carry no plaintext either.
	if err := e.st.Update(ctx, func(tx store.Tx) error { return tx.Put("test", "blob", blob) }); err != nil {
		t.Fatal(err)
	}
	e.svc.Close()
	if err := e.st.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(e.path)
	if err != nil {
		t.Fatal(err)
	}
	for name, needle := range map[string][]byte{
		"marker":        []byte(marker),
		"root key":      bytes.Repeat([]byte{1}, 32),
		"root key b64":  []byte(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))),
		"data key":      dkSeen[0],
		"data key b64":  []byte(base64.StdEncoding.EncodeToString(dkSeen[0])),
		"marker base64": []byte(base64.StdEncoding.EncodeToString([]byte(marker))[:16]),
	} {
		if bytes.Contains(data, needle) {
			t.Errorf("the store file contains the %s", name)
		}
	}
}
