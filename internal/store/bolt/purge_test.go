package bolt

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/keyhold/keyhold/internal/store"
)

func TestExpiredNoncesArePurged(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s, err := Open(filepath.Join(t.TempDir(), "keyhold.db"), WithClock(clock), WithNoncePurge(time.Second, 7))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	for i := range 20 {
		if ok, err := s.PutNonce(ctx, fmt.Sprint("old", i), now.Add(time.Minute)); !ok || err != nil {
			t.Fatal(ok, err)
		}
	}
	if ok, _ := s.PutNonce(ctx, "young", now.Add(time.Hour)); !ok {
		t.Fatal("young nonce refused")
	}
	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	// Purging rides on ordinary commits, 7 at a time; a full batch makes
	// the next commit purge again.
	for range 4 {
		if err := s.Update(ctx, func(tx store.Tx) error { return tx.Put("t", "k", nil) }); err != nil {
			t.Fatal(err)
		}
	}
	s.db.View(func(tx *bbolt.Tx) error {
		if n := tx.Bucket(bucketNonceIDs).Stats().KeyN; n != 1 {
			t.Errorf("%d persisted nonces left, want 1", n)
		}
		return nil
	})
	if n := s.nonces.len(); n != 1 {
		t.Errorf("%d nonces left in memory, want 1", n)
	}
	if ok, _ := s.PutNonce(ctx, "young", now.Add(time.Hour)); ok {
		t.Fatal("live nonce was purged")
	}
}
