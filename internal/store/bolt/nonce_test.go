package bolt

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"
)

// testClock is a settable clock for expiry.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func mustPut(t *testing.T, s *Store, key string, exp time.Time, want bool) {
	t.Helper()
	ok, err := s.PutNonce(context.Background(), key, exp)
	if err != nil || ok != want {
		t.Fatalf("PutNonce(%q) = %v, %v; want %v", key, ok, err, want)
	}
}

func segments(t *testing.T, dir string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*.log"))
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func TestExpiredNoncesArePurged(t *testing.T) {
	clock := &testClock{now: time.Unix(1_700_000_000, 0)}
	path := filepath.Join(t.TempDir(), "keyhold.db")
	s, err := Open(path, WithClock(clock.Now), WithNoncePurge(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		mustPut(t, s, fmt.Sprint("old", i), clock.Now().Add(time.Minute), true)
	}
	s.Close()
	// The reopened store writes a new segment; the first holds the 20.
	s, err = Open(path, WithClock(clock.Now), WithNoncePurge(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	first := segments(t, path+nonceLogSuffix)
	mustPut(t, s, "young", clock.Now().Add(time.Hour), true)
	mustPut(t, s, "old3", clock.Now().Add(time.Hour), false)

	clock.Add(2 * time.Minute)
	// Purging runs on the nonce writer after a group.
	mustPut(t, s, "trigger", clock.Now().Add(time.Hour), true)
	if n := s.nonces.len(); n != 2 {
		t.Errorf("%d nonces in memory, want 2 (young, trigger)", n)
	}
	if left := segments(t, path+nonceLogSuffix); len(left) != 1 || len(first) != 2 || left[0] != first[1] {
		t.Errorf("segments %v after purge, %v before; want the expired first one deleted", left, first)
	}
	mustPut(t, s, "young", clock.Now().Add(time.Hour), false)
	mustPut(t, s, "old3", clock.Now().Add(time.Hour), true)
}

// A crash can leave a torn record at the end of the segment being written:
// replay keeps every record before it and starts a new segment.
func TestNonceLogTornTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keyhold.db")
	exp := time.Now().Add(time.Hour)
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		mustPut(t, s, fmt.Sprint("n", i), exp, true)
	}
	s.Close()
	seg := segments(t, path+nonceLogSuffix)[0]
	f, err := os.OpenFile(seg, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Tear record n3 (flip a byte of its id) and leave n4 intact behind it.
	if _, err := f.WriteAt([]byte{0xff}, int64(len(nonceLogMagic)+3*nonceRecSize+12)); err != nil {
		t.Fatal(err)
	}
	f.Close()

	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 3 {
		mustPut(t, s, fmt.Sprint("n", i), exp, false)
	}
	// Nothing after a torn record counts: it was never acknowledged.
	mustPut(t, s, "n3", exp, true)
	mustPut(t, s, "n4", exp, true)
	if got := segments(t, path+nonceLogSuffix); len(got) != 2 {
		t.Fatalf("segments %v; want the torn one kept and a new one", got)
	}
}

// A failed write answers an error, releases the claim (the client may
// retry with the same nonce) and moves to a new segment.
func TestNonceWriteFailure(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keyhold.db")
	exp := time.Now().Add(time.Hour)
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, "before", exp, true)
	s.nlog.cur.Close() // the next write fails
	if ok, err := s.PutNonce(context.Background(), "k", exp); ok || err == nil {
		t.Fatalf("PutNonce on a failing log = %v, %v; want an error", ok, err)
	}
	mustPut(t, s, "k", exp, true)
	mustPut(t, s, "k", exp, false)
	s.Close()

	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mustPut(t, s, "before", exp, false)
	mustPut(t, s, "k", exp, false)
}

func TestOpenFailsWithoutNonceLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keyhold.db")
	if err := os.WriteFile(path+nonceLogSuffix, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := Open(path); err == nil {
		s.Close()
		t.Fatal("Open succeeded with no place to record nonces")
	}
}

// Stores written before the nonce log kept nonces in bbolt buckets; Open
// moves the live ones to the log and drops the buckets.
func TestLegacyNoncesMigrated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keyhold.db")
	now := time.Now()
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucket(legacyNonces)
		if err != nil {
			return err
		}
		idx, err := tx.CreateBucket(legacyNonceExp)
		if err != nil {
			return err
		}
		for key, exp := range map[string]time.Time{"live": now.Add(time.Hour), "gone": now.Add(-time.Second)} {
			ns := uint64(exp.UnixNano())
			if err := b.Put([]byte(key), putU64(ns)); err != nil {
				return err
			}
			if err := idx.Put(append(putU64(ns), key...), nil); err != nil {
				return err
			}
		}
		return nil
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}

	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, "live", now.Add(time.Hour), false)
	mustPut(t, s, "gone", now.Add(time.Hour), true)
	s.db.View(func(tx *bbolt.Tx) error {
		if tx.Bucket(legacyNonces) != nil || tx.Bucket(legacyNonceExp) != nil {
			t.Error("legacy nonce buckets kept after migration")
		}
		return nil
	})
	s.Close()

	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mustPut(t, s, "live", now.Add(time.Hour), false)
	mustPut(t, s, "gone", now.Add(time.Hour), false)
}

func TestNonceAfterClose(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "keyhold.db"))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := s.PutNonce(context.Background(), "k", time.Now().Add(time.Hour)); !errors.Is(err, ErrClosed) {
		t.Fatalf("PutNonce after Close: %v, want ErrClosed", err)
	}
}
