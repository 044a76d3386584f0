package bolt

import (
	"context"
	"crypto/sha256"
	"errors"
	"sync"
	"time"

	bbolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Replay nonces.
//
// bbolt's exclusive file lock means this process is the only one that can
// accept a nonce for this store, so "have we seen it?" is answered from
// memory: nonceIndex holds every live nonce, loaded at Open from what was
// persisted. Only the insert has to reach the disk before PutNonce says
// true, and it is appended to the nonce log (noncelog.go) rather than
// committed to bbolt: one write and one fdatasync per group of concurrent
// callers, instead of a B+tree page per random nonce and two syncs.

// nonceID identifies a nonce in memory and on disk: the first 128 bits of
// SHA-256(key). Fixed-size keys keep the index small and the persisted
// records fixed-length; a collision (infeasible at 128 bits, even for a
// chosen key) could only refuse a request, never accept a replay.
type nonceID [16]byte

func nonceIDOf(key string) nonceID {
	sum := sha256.Sum256([]byte(key))
	var id nonceID
	copy(id[:], sum[:16])
	return id
}

// nonceIndex is the in-memory set of live nonces. byMinute buckets ids by
// expiry minute, so purging visits only what has expired, never the whole
// map.
type nonceIndex struct {
	mu       sync.Mutex
	live     map[nonceID]int64 // -> expiry, unix ns
	byMinute map[int64][]nonceID
}

func newNonceIndex() *nonceIndex {
	return &nonceIndex{live: make(map[nonceID]int64), byMinute: make(map[int64][]nonceID)}
}

func (x *nonceIndex) insertLocked(id nonceID, exp int64) {
	x.live[id] = exp
	m := exp / int64(time.Minute)
	x.byMinute[m] = append(x.byMinute[m], id)
}

// load adds a persisted nonce (Open), keeping the later expiry if the same
// nonce was recorded twice.
func (x *nonceIndex) load(id nonceID, exp, now int64) {
	if exp <= now {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if old, ok := x.live[id]; !ok || old < exp {
		x.insertLocked(id, exp)
	}
}

// reserve claims id until exp. It fails if id is live — including while
// another caller's claim is still being written, so of two concurrent
// requests with one nonce exactly one proceeds.
func (x *nonceIndex) reserve(id nonceID, exp, now int64) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	if old, ok := x.live[id]; ok && now < old {
		return false
	}
	if exp > now {
		x.insertLocked(id, exp)
	}
	return true
}

// release drops a claim whose write failed, so the client may retry.
func (x *nonceIndex) release(id nonceID, exp int64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.live[id] == exp {
		delete(x.live, id)
	}
}

// purge forgets nonces whose expiry minute has passed.
func (x *nonceIndex) purge(now int64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for m, ids := range x.byMinute {
		if (m+1)*int64(time.Minute) > now {
			continue
		}
		for _, id := range ids {
			if exp, ok := x.live[id]; ok && exp <= now {
				delete(x.live, id)
			}
		}
		delete(x.byMinute, m)
	}
}

func (x *nonceIndex) len() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.live)
}

// PutNonce records key until expires and returns false if it is already
// recorded and live. A true is durable: the nonce is in the nonce log and
// fdatasynced (one sync shared by concurrent callers) before PutNonce
// returns, so a replay is refused across a crash or restart.
func (s *Store) PutNonce(ctx context.Context, key string, expires time.Time) (bool, error) {
	if key == "" {
		return false, errEmptyKey
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	id := nonceIDOf(key)
	now, exp := s.opts.now().UnixNano(), expires.UnixNano()
	if !s.nonces.reserve(id, exp, now) {
		return false, nil
	}
	if exp <= now {
		return true, nil // already expired: nothing to remember
	}
	if err := s.persistNonce(ctx, id, exp); err != nil {
		s.nonces.release(id, exp)
		return false, err
	}
	return true, nil
}

func (s *Store) persistNonce(ctx context.Context, id nonceID, exp int64) error {
	c := &nonceCall{id: id, exp: exp, done: make(chan struct{})}
	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		return ErrClosed
	}
	select {
	case s.nlog.reqs <- c:
	case <-ctx.Done():
		s.closeMu.RUnlock()
		return ctx.Err()
	}
	s.closeMu.RUnlock()
	// Once queued the record is written: wait for the outcome, so a caller
	// never guesses whether its nonce landed.
	<-c.done
	return c.err
}

// migrateLegacyNonces moves the live nonces of the layout before the nonce
// log (bbolt buckets sys:nonces: key -> expiry, and its index
// sys:nonce-exp) into the log, synced, and then drops the buckets. A crash
// in between imports them again at the next Open, which is harmless.
func migrateLegacyNonces(db *bbolt.DB, l *nonceLog, x *nonceIndex, now int64) error {
	var batch []*nonceCall
	err := db.View(func(btx *bbolt.Tx) error {
		b := btx.Bucket(legacyNonces)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			if len(v) == 8 && int64(u64(v)) > now {
				batch = append(batch, &nonceCall{id: nonceIDOf(string(k)), exp: int64(u64(v))})
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	for len(batch) > 0 {
		n := min(len(batch), (segmentSize-len(nonceLogMagic))/nonceRecSize)
		if err := l.write(batch[:n]); err != nil {
			return err
		}
		for _, c := range batch[:n] {
			x.load(c.id, c.exp, now)
		}
		batch = batch[n:]
	}
	return db.Update(func(btx *bbolt.Tx) error {
		for _, name := range [][]byte{legacyNonces, legacyNonceExp} {
			if err := btx.DeleteBucket(name); err != nil && !errors.Is(err, bolterrors.ErrBucketNotFound) {
				return err
			}
		}
		return nil
	})
}
