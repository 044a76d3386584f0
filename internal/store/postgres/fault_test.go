package postgres_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keyhold/keyhold/internal/errs"
	"github.com/keyhold/keyhold/internal/store"
	"github.com/keyhold/keyhold/internal/store/postgres"
	"github.com/keyhold/keyhold/internal/store/postgres/pgtest"
)

// TestConnectionsLostTogether ends every pooled connection's backend at
// once, as a PostgreSQL crash restart does. The first call to meet a dead
// connection fails as unavailable (KindUnavailable, so the API answers
// ServiceUnavailableTemporary); the calls after it must not be handed the
// other dead connections, which pgxpool would otherwise reuse unchecked
// for a second after their last use.
func TestConnectionsLostTogether(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.Shared(t).DSN(t)
	s, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Update(ctx, func(tx store.Tx) error { return tx.Put("t", "k", []byte("v")) }); err != nil {
		t.Fatal(err)
	}
	const n = 6
	pids := pooled(t, s.Pool(), n)

	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	var ended int
	if err := admin.QueryRow(ctx, "SELECT count(*) FROM unnest($1::int[]) AS p WHERE pg_terminate_backend(p, 60000)", pids).Scan(&ended); err != nil || ended != n {
		t.Fatalf("terminated %d of %d backends: %v", ended, n, err)
	}

	read := func() error {
		return s.View(ctx, func(tx store.Tx) error {
			_, err := tx.Get("t", "k")
			return err
		})
	}
	// The first read may meet a dead connection (unless the pool already
	// checked it, on a slow machine): then it is told to retry.
	if err := read(); err != nil && !errs.Is(err, errs.KindUnavailable) {
		t.Fatalf("read on a lost connection: %v, want a KindUnavailable error", err)
	}
	for i := range n {
		if err := read(); err != nil {
			t.Fatalf("read %d after the first met a lost connection: %v", i+2, err)
		}
	}

	// The same holds for writes and for the calls outside transactions.
	pids = pooled(t, s.Pool(), n)
	if err := admin.QueryRow(ctx, "SELECT count(*) FROM unnest($1::int[]) AS p WHERE pg_terminate_backend(p, 60000)", pids).Scan(&ended); err != nil || ended != n {
		t.Fatalf("terminated %d of %d backends: %v", ended, n, err)
	}
	_, err = s.PutNonce(ctx, "n0", time.Now().Add(time.Minute))
	if err != nil && !errs.Is(err, errs.KindUnavailable) {
		t.Fatalf("nonce on a lost connection: %v, want a KindUnavailable error", err)
	}
	for i := range n {
		if err := s.Update(ctx, func(tx store.Tx) error { return tx.Put("t", "k", []byte{byte(i)}) }); err != nil {
			t.Fatalf("write %d after a lost connection: %v", i+1, err)
		}
	}
	if err := read(); err != nil {
		t.Fatalf("read after the writes: %v", err)
	}
}

// pooled makes the pool hold n idle connections and returns their
// backends' process ids.
func pooled(t *testing.T, p *pgxpool.Pool, n int) []int32 {
	t.Helper()
	conns := make([]*pgxpool.Conn, n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := p.Acquire(context.Background())
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = err
			}
			conns[i] = c
		}()
	}
	wg.Wait()
	if firstErr != nil {
		t.Fatal(firstErr)
	}
	pids := make([]int32, n)
	for i, c := range conns {
		pids[i] = int32(c.Conn().PgConn().PID())
		c.Release()
	}
	return pids
}
