package bolt_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold/internal/store"
	"github.com/keyhold/keyhold/internal/store/bolt"
	"github.com/keyhold/keyhold/internal/store/storetest"
)

func open(t *testing.T) store.Store {
	return openAt(t, filepath.Join(t.TempDir(), "keyhold.db"))
}

func openAt(t *testing.T, path string, opts ...bolt.Option) *bolt.Store {
	t.Helper()
	s, err := bolt.Open(path, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) { storetest.Run(t, open) }

func TestCrash(t *testing.T) {
	storetest.RunCrash(t, storetest.CrashTarget{
		New:  func(t *testing.T) string { return filepath.Join(t.TempDir(), "keyhold.db") },
		Open: func(dsn string) (store.Store, error) { return bolt.Open(dsn) },
	})
}

func TestFileIsPrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "keyhold.db")
	openAt(t, path)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestSecondOpenFailsFast(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keyhold.db")
	openAt(t, path)
	start := time.Now()
	_, err := bolt.Open(path, bolt.WithOpenTimeout(200*time.Millisecond))
	if err == nil || !strings.Contains(err.Error(), "locked by another process") {
		t.Fatalf("second Open: %v, want a lock error", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Fatal("second Open waited far beyond its timeout")
	}
}

func TestClosedStore(t *testing.T) {
	s := openAt(t, filepath.Join(t.TempDir(), "keyhold.db"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	err := s.Update(context.Background(), func(tx store.Tx) error { return nil })
	if !errors.Is(err, bolt.ErrClosed) {
		t.Fatalf("Update after Close: %v, want ErrClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// Replay protection and fencing must survive a restart.
func TestNoncesAndLeasesSurviveReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keyhold.db")
	ctx := context.Background()
	s, err := bolt.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := s.PutNonce(ctx, "n", time.Now().Add(15*time.Minute)); !ok || err != nil {
		t.Fatal(ok, err)
	}
	l, err := s.AcquireLease(ctx, "leader", "A", time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()

	s = openAt(t, path)
	if ok, err := s.PutNonce(ctx, "n", time.Now().Add(15*time.Minute)); ok || err != nil {
		t.Fatalf("nonce replay after reopen: %v, %v; want false", ok, err)
	}
	time.Sleep(5 * time.Millisecond)
	l2, err := s.AcquireLease(ctx, "leader", "B", time.Minute)
	if err != nil || l2.Token <= l.Token {
		t.Fatalf("token after reopen = %d, %v; want > %d", l2.Token, err, l.Token)
	}
}

func TestPanicInUpdateReachesCaller(t *testing.T) {
	s := open(t)
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("panic in fn was swallowed")
			}
		}()
		s.Update(context.Background(), func(tx store.Tx) error {
			tx.Put("t", "k", []byte("v"))
			panic("boom")
		})
	}()
	// The committer survived and the panicking fn wrote nothing.
	err := s.View(context.Background(), func(tx store.Tx) error {
		_, err := tx.Get("t", "k")
		return err
	})
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get after panicking Update: %v, want ErrNotFound", err)
	}
	if err := s.Update(context.Background(), func(tx store.Tx) error { return tx.Put("t", "k2", nil) }); err != nil {
		t.Fatal(err)
	}
}
