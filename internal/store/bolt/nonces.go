package bolt

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"sync"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/keyhold/keyhold/internal/store"
)

// Replay nonces.
//
// bbolt's exclusive file lock means this process is the only one that can
// accept a nonce for this store, so "have we seen it?" is answered from
// memory: nonceIndex holds every live nonce, loaded at Open from what was
// persisted. Only the insert has to reach the disk before PutNonce says
// true, and it is written by expiry, so a batch of inserts appends to the
// end of the persisted sequence instead of rewriting one B+tree leaf per
// nonce, and purging removes a prefix.

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
// recorded and live. A true is durable: the nonce is on disk (group
// committed, one fsync shared by concurrent callers) before PutNonce
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

// nonceRecord is the persisted form: expiry (8, big endian) ‖ id (16), so
// that byte order is expiry order.
func nonceRecord(id nonceID, exp int64) []byte {
	b := make([]byte, 8+len(id))
	binary.BigEndian.PutUint64(b, uint64(exp))
	copy(b[8:], id[:])
	return b
}

func (s *Store) persistNonce(ctx context.Context, id nonceID, exp int64) error {
	if s.nlog != nil {
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
		// Once queued the record is written: wait for the outcome.
		<-c.done
		return c.err
	}
	return s.Update(ctx, func(stx store.Tx) error {
		return stx.(*tx).btx.Bucket(bucketNonceIDs).Put(nonceRecord(id, exp), nil)
	})
}

// loadNonces fills the index from the persisted nonces and migrates the
// layout before this one (sys:nonces: key -> expiry, with its sys:nonce-exp
// index), whose keys are re-recorded by id.
func loadNonces(btx *bbolt.Tx, x *nonceIndex, now int64) error {
	b, err := btx.CreateBucketIfNotExists(bucketNonceIDs)
	if err != nil {
		return err
	}
	if old := btx.Bucket(legacyNonces); old != nil {
		err := old.ForEach(func(k, v []byte) error {
			if len(v) != 8 || int64(u64(v)) <= now {
				return nil
			}
			return b.Put(nonceRecord(nonceIDOf(string(k)), int64(u64(v))), nil)
		})
		if err != nil {
			return err
		}
		for _, name := range [][]byte{legacyNonces, legacyNonceExp} {
			if err := btx.DeleteBucket(name); err != nil {
				return err
			}
		}
	}
	c := b.Cursor()
	// Expired records sort first; skip them (the purge removes them).
	var start [8]byte
	binary.BigEndian.PutUint64(start[:], uint64(now+1))
	for k, _ := c.Seek(start[:]); k != nil; k, _ = c.Next() {
		if len(k) == 8+len(nonceID{}) {
			x.load(nonceID(k[8:]), int64(u64(k[:8])), now)
		}
	}
	return nil
}

// maybePurgeNonces deletes up to purgeLimit expired nonces inside a commit
// that is happening anyway: a prefix of the expiry-ordered bucket. When the
// limit is hit it runs again at the next commit, so the backlog cannot
// outgrow the insert rate. Failures are ignored: an unpurged nonce is
// harmless (expired ones count as absent).
func (s *Store) maybePurgeNonces(btx *bbolt.Tx) {
	now := s.opts.now()
	if now.Sub(s.lastPurg) < s.opts.purgeInterval {
		return
	}
	s.nonces.purge(now.UnixNano())
	b := btx.Bucket(bucketNonceIDs)
	c := b.Cursor()
	n := 0
	for k, _ := c.First(); k != nil && n < s.opts.purgeLimit; k, _ = c.First() {
		if int64(u64(k[:8])) > now.UnixNano() {
			break
		}
		// Delete at the cursor and restart from First: deleting and then
		// calling Next skips keys in bbolt.
		if err := c.Delete(); err != nil {
			return
		}
		n++
	}
	if n < s.opts.purgeLimit {
		s.lastPurg = now
	}
}

// withNoncesInDB persists nonces in bbolt (sys:nonce-ids) rather than the
// nonce log: kept for the benchmark that compares the two.
func withNoncesInDB() Option { return func(o *options) { o.noncesInDB = true } }
