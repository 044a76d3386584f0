// Package bolt is Keyhold's embedded storage backend: one bbolt file in the
// data directory, serializable transactions, durable (fsync) commits shared
// by concurrent writers through a group committer.
//
// It owns the file format (bucket layout, lease and nonce encodings) and
// nothing above it: values arrive already encrypted by internal/keys.
package bolt

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	bbolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/keyhold/keyhold/internal/store"
)

var _ store.Store = (*Store)(nil)

// ErrClosed is returned by every operation after Close.
var ErrClosed = errors.New("bolt: store is closed")

// ErrLocked is wrapped by Open when another process (a running server)
// holds the file's lock past the open timeout, so that callers such as
// `keyhold backup` can tell "in use" from a damaged file.
var ErrLocked = errors.New("locked by another process")

// Bucket names. User tables live under "t:" and internal state under "sys:"
// so that no table name can collide with (or read) the internal buckets.
const (
	tablePrefix = "t:"
)

var (
	bucketLeases = []byte("sys:leases")

	// Nonces were kept in bbolt before the nonce log; Open migrates them.
	legacyNonces   = []byte("sys:nonces")    // nonce -> expiry
	legacyNonceExp = []byte("sys:nonce-exp") // expiry ‖ nonce -> nil
)

// Option configures Open.
type Option func(*options)

type options struct {
	openTimeout   time.Duration
	maxBatch      int
	purgeInterval time.Duration
	now           func() time.Time
}

// WithOpenTimeout bounds the wait for bbolt's exclusive file lock, so that a
// second process opening the same file fails instead of hanging (default 2s).
func WithOpenTimeout(d time.Duration) Option { return func(o *options) { o.openTimeout = d } }

// WithMaxBatch caps how many Update calls share one commit (default 512), to
// bound the size of a single transaction.
func WithMaxBatch(n int) Option { return func(o *options) { o.maxBatch = n } }

// WithNoncePurge sets how often expired nonces are dropped from memory and
// fully expired nonce log segments deleted (default every second). It runs
// on the nonce writer after a group, so it costs no extra fsync.
func WithNoncePurge(every time.Duration) Option {
	return func(o *options) { o.purgeInterval = every }
}

// WithClock replaces time.Now for nonce and lease expiry (tests).
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// Store is the bbolt-backed store.Store.
type Store struct {
	db   *bbolt.DB
	opts options

	// Group commit: Update sends a call on reqs; the committer goroutine
	// owns every write transaction. closeMu keeps senders and Close apart.
	reqs    chan *call
	closeMu sync.RWMutex
	closed  bool
	stopped chan struct{}
	commits atomic.Uint64
	calls   atomic.Uint64

	subMu sync.Mutex
	subs  map[string]map[*subscriber]struct{}

	lockMu sync.Mutex
	locks  map[string]chan struct{}

	nonces *nonceIndex // every live nonce; see nonces.go
	nlog   *nonceLog   // where they are persisted; see noncelog.go
}

// Open opens (creating if needed) the database file at path with mode 0600.
func Open(path string, opts ...Option) (*Store, error) {
	o := options{
		openTimeout:   2 * time.Second,
		maxBatch:      512,
		purgeInterval: time.Second,
		now:           time.Now,
	}
	for _, opt := range opts {
		opt(&o)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("bolt: create data directory: %w", err)
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{
		Timeout: o.openTimeout,
		NoSync:  false, // every acknowledged Update must survive a crash
		// The map freelist keeps commits cheap as the file grows.
		FreelistType: bbolt.FreelistMapType,
		// A write that grows the file past the mapping must remap, which
		// waits for every open read transaction; reserving address space
		// up front keeps readers from stalling the committer.
		InitialMmapSize: 256 << 20,
	})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("bolt: %s is %w (is another keyhold server running?)", path, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("bolt: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketLeases)
		return err
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("bolt: initialise %s: %w", path, err)
	}
	// The nonce log is opened under bbolt's file lock, so it too has a
	// single writer.
	nonces := newNonceIndex()
	nlog, err := openNonceLog(path+nonceLogSuffix, nonces, o.now().UnixNano(), o.maxBatch)
	if err == nil {
		err = migrateLegacyNonces(db, nlog, nonces, o.now().UnixNano())
		if err != nil {
			nlog.cur.Close()
		}
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("bolt: nonces of %s: %w", path, err)
	}
	s := &Store{
		db:      db,
		opts:    o,
		nonces:  nonces,
		nlog:    nlog,
		reqs:    make(chan *call, 4*o.maxBatch),
		stopped: make(chan struct{}),
		subs:    make(map[string]map[*subscriber]struct{}),
		locks:   make(map[string]chan struct{}),
	}
	go s.nlog.run(o.maxBatch, o.now, o.purgeInterval, nonces)
	go s.committer()
	return s, nil
}

// Close waits for queued Updates to commit, then closes the file.
func (s *Store) Close() error {
	s.closeMu.Lock()
	if s.closed {
		s.closeMu.Unlock()
		return nil
	}
	s.closed = true
	close(s.reqs)
	close(s.nlog.reqs)
	s.closeMu.Unlock()
	<-s.stopped
	<-s.nlog.stopped
	return s.db.Close()
}

// View runs fn in a read-only bbolt transaction; readers never wait for the
// committer.
func (s *Store) View(ctx context.Context, fn func(store.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	return s.db.View(func(btx *bbolt.Tx) error {
		return fn(&tx{btx: btx, now: s.opts.now})
	})
}

// Update runs fn through the group committer and returns once the commit
// that contains it is on disk. fn runs on the committer goroutine, batched
// with other callers' fns: keep it short, free of I/O, and never call View
// or Update from inside it (that waits on the committer, which waits on fn).
func (s *Store) Update(ctx context.Context, fn func(store.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c := &call{ctx: ctx, fn: fn, done: make(chan struct{})}
	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		return ErrClosed
	}
	select {
	case s.reqs <- c:
	case <-ctx.Done():
		s.closeMu.RUnlock()
		return ctx.Err()
	}
	s.closeMu.RUnlock()
	// Once queued the call is always answered: it is either committed or
	// failed by the committer, so we must not return early on ctx here
	// (the caller would not know whether its write landed).
	<-c.done
	if c.panicked != nil {
		panic(c.panicked)
	}
	return c.err
}

// call is one Update waiting for the committer.
type call struct {
	ctx      context.Context
	fn       func(store.Tx) error
	err      error
	panicked any
	topics   []string
	done     chan struct{}
}

// committer is the only writer. It takes the first queued call and adds
// whatever else is already queued, then runs them all in one bbolt
// transaction, so N concurrent writers share one fsync. There is no timed
// wait (bbolt's db.Batch sleeps up to MaxBatchDelay): a lone writer pays
// one commit. Instead the committer yields the processor (runtime.Gosched)
// and drains again for as long as the queue keeps growing: writers woken by
// the previous commit are runnable but not yet queued, and without the
// yield batches alternate 1, 31, 1, 31… (16 per commit at 32 writers,
// about 30 with it).
func (s *Store) committer() {
	defer close(s.stopped)
	batch := make([]*call, 0, s.opts.maxBatch)
	for first := range s.reqs {
		batch = append(batch[:0], first)
		for range 8 {
			runtime.Gosched()
			if !s.drain(&batch) {
				break
			}
		}
		s.commit(batch)
	}
}

// drain appends queued calls to batch without blocking and reports whether
// it found any and there is room for more.
func (s *Store) drain(batch *[]*call) bool {
	found := false
	for len(*batch) < s.opts.maxBatch {
		select {
		case c, ok := <-s.reqs:
			if !ok {
				return false
			}
			*batch = append(*batch, c)
			found = true
		default:
			return found
		}
	}
	return false
}

// commit runs batch in one transaction. When a call fails, the transaction
// is rolled back, that call alone gets its error, and the remaining calls
// are run again in a fresh transaction: each failure costs a retry but
// never leaks one call's partial writes into a commit.
func (s *Store) commit(batch []*call) {
	pending := batch
	for len(pending) > 0 {
		// Calls whose context ended while queued are answered without
		// running: nothing of theirs was written.
		live := pending[:0:0]
		for _, c := range pending {
			if err := c.ctx.Err(); err != nil {
				c.err = err
				close(c.done)
				continue
			}
			live = append(live, c)
		}
		if len(live) == 0 {
			return
		}
		failed := -1
		err := s.db.Update(func(btx *bbolt.Tx) error {
			for i, c := range live {
				t := &tx{btx: btx, writable: true, now: s.opts.now}
				if err := runFn(c, t); err != nil {
					failed = i
					return err
				}
				c.topics = t.topics
			}
			return nil
		})
		if failed >= 0 {
			live[failed].err = err
			close(live[failed].done)
			pending = append(live[:failed:failed], live[failed+1:]...)
			continue
		}
		// Either everything committed or the commit itself failed (I/O):
		// every call in the transaction shares that outcome.
		for _, c := range live {
			c.err = err
			if err != nil {
				c.topics = nil
			}
		}
		if err == nil {
			s.commits.Add(1)
			s.calls.Add(uint64(len(live)))
			s.notify(live)
		}
		for _, c := range live {
			close(c.done)
		}
		return
	}
}

// runFn runs the caller's fn, turning a panic into a failure of that call
// only; Update re-panics in the caller's goroutine.
func runFn(c *call, t *tx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			c.panicked = r
			err = fmt.Errorf("bolt: update function panicked")
		}
	}()
	c.panicked = nil
	return c.fn(t)
}

func u64(b []byte) uint64 { return binary.BigEndian.Uint64(b) }

func putU64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

// Stats counts successful commits and the Update calls they carried; their
// ratio is the average group-commit batch size.
type Stats struct {
	Commits uint64
	Updates uint64
}

// Stats returns counters since Open.
func (s *Store) Stats() Stats {
	return Stats{Commits: s.commits.Load(), Updates: s.calls.Load()}
}
