package postgres_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold/internal/errs"
	"github.com/keyhold/keyhold/internal/store"
	"github.com/keyhold/keyhold/internal/store/postgres"
	"github.com/keyhold/keyhold/internal/store/postgres/pgtest"
	"github.com/keyhold/keyhold/internal/testutil/logbuf"
)

// Open refuses a bad keyhold_op_timeout before it connects (the address
// is a closed port: a connection attempt would fail otherwise), without
// echoing the URL's password; a good one reaches the store and not pgx
// (PostgreSQL refuses unknown start-up parameters).
func TestOpenOpTimeoutParam(t *testing.T) {
	ctx := context.Background()
	for _, v := range []string{"0", "-1s", "5", "later"} {
		_, err := postgres.Open(ctx, "postgres://kh:pw-do-not-echo@127.0.0.1:1/db?sslmode=disable&keyhold_op_timeout="+v)
		if err == nil || !strings.Contains(err.Error(), "keyhold_op_timeout") || strings.Contains(err.Error(), "pw-do-not-echo") {
			t.Errorf("keyhold_op_timeout=%s: %v, want a refusal naming the parameter", v, err)
		}
	}
	dsn := pgtest.Shared(t).DSN(t)
	if got := openDSN(t, dsn).OpTimeout(); got != postgres.DefaultOpTimeout {
		t.Errorf("default bound %s, want %s", got, postgres.DefaultOpTimeout)
	}
	s := openDSN(t, dsn+"&keyhold_op_timeout=1500ms")
	if got := s.OpTimeout(); got != 1500*time.Millisecond {
		t.Errorf("bound %s, want 1.5s", got)
	}
	if err := s.Update(ctx, func(tx store.Tx) error { return tx.Put("t", "k", []byte("v")) }); err != nil {
		t.Fatal(err)
	}
}

// TestFrozenDatabase puts a proxy that stops forwarding (sockets kept
// open: a frozen host, a network black hole) between the store and
// PostgreSQL. Every kind of call returns, as unavailable; a caller's own
// cancellation stays a cancellation; after the thaw the same store works.
func TestFrozenDatabase(t *testing.T) {
	ctx := context.Background()
	pg := pgtest.Shared(t)
	proxy := pgtest.NewProxy(t, pg.DSN(t))
	dsn := proxy.DSN(t, pg.DSN(t))
	logs := &logbuf.Buffer{}
	s, err := postgres.Open(ctx, dsn+"&keyhold_op_timeout=1s", postgres.WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Update(ctx, func(tx store.Tx) error { return tx.Put("t", "k", []byte("v1")) }); err != nil {
		t.Fatal(err)
	}

	// The bound is per round trip, not per transaction: a read
	// transaction that lives longer than it (as an online backup's does)
	// is not cut off.
	err = s.View(ctx, func(tx store.Tx) error {
		for range 4 {
			if _, err := tx.Get("t", "k"); err != nil {
				return err
			}
			time.Sleep(400 * time.Millisecond)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("a read transaction longer than the bound: %v", err)
	}

	proxy.Freeze()
	unavailable := func(what string, err error) {
		t.Helper()
		if !errs.Is(err, errs.KindUnavailable) {
			t.Fatalf("%s with the database frozen: %v, want a KindUnavailable error", what, err)
		}
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			t.Fatalf("%s: %v looks like the caller's own deadline", what, err)
		}
	}
	unavailable("View", s.View(ctx, func(tx store.Tx) error { _, err := tx.Get("t", "k"); return err }))
	unavailable("Update", s.Update(ctx, func(tx store.Tx) error { return tx.Put("t", "k", []byte("lost")) }))
	_, err = s.PutNonce(ctx, "n1", time.Now().Add(time.Minute))
	unavailable("PutNonce", err)
	_, err = s.AcquireLease(ctx, "leader", "a", time.Minute)
	unavailable("AcquireLease", err)
	_, err = s.GetLease(ctx, "leader")
	unavailable("GetLease", err)
	_, err = s.Lock(ctx, "setup")
	unavailable("Lock", err)

	// The caller going away is not the database's fault.
	cctx, cancel := context.WithCancel(ctx)
	go func() { time.Sleep(200 * time.Millisecond); cancel() }()
	err = s.View(cctx, func(tx store.Tx) error { _, err := tx.Get("t", "k"); return err })
	if !errors.Is(err, context.Canceled) || errs.Is(err, errs.KindUnavailable) {
		t.Fatalf("a canceled call with the database frozen: %v, want context.Canceled", err)
	}
	// Nor is the caller's own, shorter deadline.
	dctx, dcancel := context.WithTimeout(ctx, 300*time.Millisecond)
	err = s.Update(dctx, func(tx store.Tx) error { return tx.Put("t", "k", []byte("lost")) })
	dcancel()
	if !errors.Is(err, context.DeadlineExceeded) || errs.Is(err, errs.KindUnavailable) {
		t.Fatalf("a call past its own deadline with the database frozen: %v, want context.DeadlineExceeded", err)
	}

	// The notification listener, whose connection stays quiet, notices
	// too (it pings when nothing came for the bound) and reconnects.
	waitForOK(t, "the listener to notice the frozen database", func() error {
		if !strings.Contains(logs.String(), "storage notifications: connection lost") {
			return errors.New("no reconnect logged")
		}
		return nil
	})

	proxy.Thaw()
	// Connections that timed out were closed by pgx, not pooled half-read:
	// every call after the thaw works (the pool dials anew as needed).
	waitForOK(t, "a read after the thaw", func() error {
		return s.View(ctx, func(tx store.Tx) error { _, err := tx.Get("t", "k"); return err })
	})
	for i := range 10 {
		var got []byte
		err := s.View(ctx, func(tx store.Tx) error {
			var err error
			got, err = tx.Get("t", "k")
			return err
		})
		if err != nil || string(got) != "v1" {
			t.Fatalf("read %d after the thaw: %q, %v (the frozen writes must not have committed)", i, got, err)
		}
		if err := s.Update(ctx, func(tx store.Tx) error { return tx.Put("t", "j", []byte{byte(i)}) }); err != nil {
			t.Fatalf("write %d after the thaw: %v", i, err)
		}
	}
	if ok, err := s.PutNonce(ctx, "n1", time.Now().Add(time.Minute)); err != nil || !ok {
		t.Fatalf("the nonce tried while frozen was not stored: %v %v", ok, err)
	}
}

// waitForOK retries f generously (a loaded CI machine) until it succeeds.
func waitForOK(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
