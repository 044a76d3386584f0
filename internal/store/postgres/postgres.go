// Package postgres is the shared store.Store backend: several Keyhold
// replicas use one PostgreSQL database (pgx/v5 with a pool).
//
// Mapping of the contract:
//   - every table is rows of kh_records(tbl, key, value), all bytea, primary
//     key (tbl, key): bytea compares as bytes, so List's byte order needs no
//     collation, and a prefix is a key range on the primary key;
//   - Update is a SERIALIZABLE transaction, retried on serialization
//     failures (the contract lets fn run more than once); View is
//     REPEATABLE READ READ ONLY, one consistent snapshot;
//   - nonces and leases are rows with expiry judged by the database clock,
//     so replicas with skewed clocks agree;
//   - Notify is pg_notify inside the transaction (PostgreSQL delivers it on
//     commit only), Subscribe listens on one dedicated connection;
//   - Lock is a session advisory lock held on a dedicated connection;
//   - every round trip (acquire, BEGIN, statement, COMMIT, lock wait) has
//     its own deadline, keyhold_op_timeout in the URL (optimeout.go), so a
//     database that stops answering fails calls as unavailable.
//
// A deployment lives in one schema (the connection's search_path), so tests
// and several deployments can share a server; channel names and advisory
// lock keys include the schema.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keyhold/keyhold/internal/store"
)

var _ store.Store = (*Store)(nil)

// ErrClosed is returned by calls on a closed store.
var ErrClosed = errors.New("postgres: store is closed")

// Store is a store.Store on PostgreSQL.
type Store struct {
	pool    *pgxpool.Pool
	schema  string
	channel string // LISTEN/NOTIFY channel of this deployment
	log     *slog.Logger
	// opTimeout bounds each round trip to the database (opCtx).
	opTimeout time.Duration

	subMu sync.Mutex
	subs  map[string]map[*subscriber]struct{}

	done      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	listening chan struct{} // closed once the first LISTEN is active
}

// Option configures Open.
type Option func(*options)

type options struct {
	log           *slog.Logger
	purgeInterval time.Duration
	opTimeout     time.Duration
}

// WithLogger sets where connection trouble of the listener is reported.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithNoncePurge sets how often expired nonces are deleted (default 10s).
func WithNoncePurge(every time.Duration) Option {
	return func(o *options) { o.purgeInterval = every }
}

// Open connects to the database at dsn (a postgres:// URL or key=value
// string), upgrades the schema under an advisory lock and starts the
// notification listener. Unless the DSN sets pool_max_conns the pool holds
// up to 20 connections. A postgres:// URL may set keyhold_op_timeout (see
// OpTimeoutParam); a bad value is refused here, before any connection.
func Open(ctx context.Context, dsn string, opts ...Option) (*Store, error) {
	o := options{log: slog.Default(), purgeInterval: 10 * time.Second, opTimeout: DefaultOpTimeout}
	for _, f := range opts {
		f(&o)
	}
	dsn, d, err := splitOpTimeout(dsn)
	if err != nil {
		return nil, err
	}
	if d > 0 {
		o.opTimeout = d
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx errors may echo the DSN, password included.
		return nil, errors.New("postgres: the storage URL cannot be parsed")
	}
	if !strings.Contains(dsn, "pool_max_conns") {
		cfg.MaxConns = 20
	}
	if cfg.ConnConfig.ConnectTimeout <= 0 {
		// A dial or handshake the database never answers is one more round
		// trip; pgxpool goes on connecting after Acquire gave up, for two
		// minutes unless bounded (the listener's connections too: it copies
		// this config).
		cfg.ConnConfig.ConnectTimeout = o.opTimeout
	}
	new(connWatch).install(cfg)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	s := &Store{
		pool:      pool,
		log:       o.log,
		opTimeout: o.opTimeout,
		subs:      make(map[string]map[*subscriber]struct{}),
		done:      make(chan struct{}),
		listening: make(chan struct{}),
	}
	// The first contact is bounded like any round trip; the migrations
	// after it are not (DDL on a large table, or waiting for another
	// replica's, may take long), and a start that hangs there is seen.
	c, cancel := s.opCtx(ctx)
	err = s.opErr(c, pool.QueryRow(c, "SELECT current_schema()").Scan(&s.schema))
	cancel()
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	if s.schema == "" {
		pool.Close()
		return nil, errors.New("postgres: no schema on the search_path to create Keyhold's tables in")
	}
	s.channel = "keyhold:" + s.schema
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	s.wg.Add(2)
	go s.listen(cfg.ConnConfig.Copy())
	go s.purgeNonces(o.purgeInterval)
	select {
	case <-s.listening:
	case <-ctx.Done():
		s.Close()
		return nil, ctx.Err()
	case <-time.After(30 * time.Second):
		s.Close()
		return nil, errors.New("postgres: could not start listening for notifications")
	}
	return s, nil
}

// Close stops the listener and the purger and closes the pool.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.done)
		s.wg.Wait()
		s.pool.Close()
	})
	return nil
}

func (s *Store) closed() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// Pool exposes the connection pool (for tests and tools such as backup).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// OpTimeout is the bound of each round trip to the database.
func (s *Store) OpTimeout() time.Duration { return s.opTimeout }

// Schema is the schema the deployment's tables live in.
func (s *Store) Schema() string { return s.schema }

// --- transactions ---

// Retries of a serialization failure. After escalateAfter failed attempts
// the call retries under a deployment-wide advisory lock that every other
// escalated writer also takes, so a hot row turns into a queue instead of
// a livelock of writers aborting each other.
const (
	maxAttempts   = 60
	escalateAfter = 3
)

// View runs fn on one consistent snapshot, read-only.
func (s *Store) View(ctx context.Context, fn func(store.Tx) error) error {
	if err := s.usable(ctx); err != nil {
		return err
	}
	ptx, err := s.begin(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return err
	}
	defer s.rollback(ctx, ptx)
	t := &tx{s: s, ctx: ctx, ptx: ptx, readOnly: true}
	if err := fn(t); err != nil {
		return err
	}
	return s.commit(ctx, ptx)
}

// commit is COMMIT as one bounded round trip.
func (s *Store) commit(ctx context.Context, ptx pgx.Tx) error {
	c, cancel := s.opCtx(ctx)
	defer cancel()
	return s.opErr(c, ptx.Commit(c))
}

// exec is one bounded statement on conn.
func (s *Store) exec(ctx context.Context, conn interface {
	Exec(context.Context, string, ...any) (pgconn.CommandTag, error)
}, sql string, args ...any) (pgconn.CommandTag, error) {
	c, cancel := s.opCtx(ctx)
	defer cancel()
	tag, err := conn.Exec(c, sql, args...)
	return tag, s.opErr(c, err)
}

// Update runs fn in a SERIALIZABLE transaction and commits (durable with
// the server's default synchronous_commit=on). Serialization failures and
// deadlocks are retried with jittered backoff.
func (s *Store) Update(ctx context.Context, fn func(store.Tx) error) error {
	if err := s.usable(ctx); err != nil {
		return err
	}
	for attempt := 1; ; attempt++ {
		err := s.updateOnce(ctx, fn, attempt > escalateAfter)
		if err == nil || !retryable(err) || attempt == maxAttempts {
			return err
		}
		backoff := time.Duration(rand.Int64N(int64(time.Millisecond) << min(attempt, 6)))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
	}
}

func (s *Store) updateOnce(ctx context.Context, fn func(store.Tx) error, serialize bool) error {
	conn, err := s.acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if serialize {
		// Session lock taken before BEGIN: the snapshot is then taken after
		// the wait, so the queue's members do not conflict with each other.
		// The wait is bounded like any round trip: a queue that does not
		// move for that long is a database in trouble. A failed wait
		// closed the connection (pgx does on a deadline), lock and all.
		if _, err := s.exec(ctx, conn, "SELECT pg_advisory_lock($1, $2)", lockClass, s.lockKey("write-queue")); err != nil {
			return err
		}
		defer func() {
			c, cancel := s.cleanupCtx(ctx)
			defer cancel()
			if _, err := conn.Exec(c, "SELECT pg_advisory_unlock($1, $2)", lockClass, s.lockKey("write-queue")); err != nil {
				conn.Conn().Close(c) // dropping the session drops the lock
			}
		}()
	}
	ptx, err := s.begin(ctx, conn, pgx.TxOptions{IsoLevel: pgx.Serializable})
	if err != nil {
		return err
	}
	defer s.rollback(ctx, ptx)
	t := &tx{s: s, ctx: ctx, ptx: ptx}
	if err := fn(t); err != nil {
		if t.retry != nil && !errors.Is(err, t.retry) {
			// fn swallowed or replaced the database's serialization error.
			return t.retry
		}
		return err
	}
	if t.retry != nil {
		return t.retry // the transaction is aborted; try again
	}
	for _, topic := range t.topics {
		if _, err := s.exec(ctx, ptx, "SELECT pg_notify($1, $2)", s.channel, topic); err != nil {
			return err
		}
	}
	return s.commit(ctx, ptx)
}

// acquire takes a pooled connection within the bound (a pool that waits
// for a free connection, a ping or a dial counts as one round trip).
func (s *Store) acquire(ctx context.Context) (*pgxpool.Conn, error) {
	c, cancel := s.opCtx(ctx)
	defer cancel()
	conn, err := s.pool.Acquire(c)
	return conn, s.opErr(c, err)
}

func (s *Store) usable(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.closed() {
		return ErrClosed
	}
	return nil
}

// retryable reports a PostgreSQL serialization failure or deadlock.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

// wrap keeps context errors recognizable and marks the rest as the
// database's, and a lost or refused connection as unavailable (see
// errUnavailable); pgx errors never include the DSN's password.
func wrap(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if unavailable(err) {
		return errUnavailable(fmt.Errorf("postgres: %w", err))
	}
	return fmt.Errorf("postgres: %w", err)
}

// --- set-up lock ---

// lockClass is the first half of every advisory lock key Keyhold takes
// ("kh"), so its locks are told apart from an application's sharing the
// database.
const lockClass int32 = 0x6b68

func (s *Store) lockKey(name string) int32 {
	h := fnv.New32a()
	h.Write([]byte(s.schema))
	h.Write([]byte{0})
	h.Write([]byte(name))
	return int32(h.Sum32())
}

// Lock takes a session advisory lock on a connection of its own, held until
// unlock (or until the connection dies, which releases it too).
func (s *Store) Lock(ctx context.Context, name string) (func(), error) {
	if err := s.usable(ctx); err != nil {
		return nil, err
	}
	conn, err := s.acquire(ctx)
	if err != nil {
		return nil, err
	}
	key := s.lockKey("lock:" + name)
	// The wait is bounded like a round trip: the set-up locks are held for
	// the few statements of a first start, not for minutes.
	if _, err := s.exec(ctx, conn, "SELECT pg_advisory_lock($1, $2)", lockClass, key); err != nil {
		// A canceled wait may leave the session in doubt: drop it.
		c, cancel := s.cleanupCtx(ctx)
		conn.Conn().Close(c)
		cancel()
		conn.Release()
		return nil, err
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			c, cancel := s.cleanupCtx(context.Background())
			defer cancel()
			if _, err := conn.Exec(c, "SELECT pg_advisory_unlock($1, $2)", lockClass, key); err != nil {
				conn.Conn().Close(c)
			}
			conn.Release()
		})
	}, nil
}
