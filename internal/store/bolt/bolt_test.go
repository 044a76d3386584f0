package bolt_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
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

const envNonceCrash = "KEYHOLD_BOLT_NONCE_CRASH_PATH"

// TestNonceCrash: a child process records random nonces from 8 goroutines
// and prints each one PutNonce acknowledged; the parent SIGKILLs it
// mid-stream, reopens the store and checks that every acknowledged nonce
// is still refused (replay protection survives a crash). Three rounds on
// the same store, so a crashed log is itself replayed after a crash.
func TestNonceCrash(t *testing.T) {
	if path := os.Getenv(envNonceCrash); path != "" {
		nonceCrashChild(path)
		return
	}
	if testing.Short() {
		t.Skip("crash test skipped in -short mode")
	}
	path := filepath.Join(t.TempDir(), "keyhold.db")
	var acked []string
	for round := range 3 {
		acked = append(acked, runNonceChild(t, path, 300+round*100)...)
		s, err := bolt.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		exp := time.Now().Add(time.Hour)
		for _, key := range acked {
			if ok, err := s.PutNonce(context.Background(), key, exp); ok || err != nil {
				s.Close()
				t.Fatalf("round %d: acknowledged nonce %s accepted again after the crash (%v, %v)", round+1, key, ok, err)
			}
		}
		if ok, err := s.PutNonce(context.Background(), "fresh-"+rand.Text(), exp); !ok || err != nil {
			t.Fatalf("round %d: fresh nonce after recovery = %v, %v", round+1, ok, err)
		}
		s.Close()
		t.Logf("round %d: %d acknowledged nonces refused after SIGKILL", round+1, len(acked))
	}
}

func runNonceChild(t *testing.T, path string, want int) []string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestNonceCrash$", "-test.count=1", "-test.timeout=60s")
	cmd.Env = append(os.Environ(), envNonceCrash+"="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var acked []string
	sc := bufio.NewScanner(out)
	deadline := time.AfterFunc(30*time.Second, func() { cmd.Process.Kill() })
	defer deadline.Stop()
	for len(acked) < want && sc.Scan() {
		if key, ok := strings.CutPrefix(sc.Text(), "nonce "); ok {
			acked = append(acked, key)
		}
	}
	cmd.Process.Kill() // SIGKILL: no deferred Close, no flush
	// Acknowledgements already printed when the kill landed count too.
	for sc.Scan() {
		if key, ok := strings.CutPrefix(sc.Text(), "nonce "); ok {
			acked = append(acked, key)
		}
	}
	cmd.Wait()
	if len(acked) < want {
		t.Fatalf("child acknowledged %d nonces, want %d", len(acked), want)
	}
	return acked
}

func nonceCrashChild(path string) {
	s, err := bolt.Open(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var mu sync.Mutex
	w := bufio.NewWriter(os.Stdout)
	exp := time.Now().Add(time.Hour)
	for range 8 {
		go func() {
			for {
				key := rand.Text()
				ok, err := s.PutNonce(context.Background(), key, exp)
				if err != nil || !ok {
					fmt.Fprintln(os.Stderr, "PutNonce:", ok, err)
					os.Exit(1)
				}
				mu.Lock()
				fmt.Fprintln(w, "nonce", key)
				w.Flush()
				mu.Unlock()
			}
		}()
	}
	select {}
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
