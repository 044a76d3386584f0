package postgres_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keyhold/keyhold/internal/store"
	"github.com/keyhold/keyhold/internal/store/postgres"
	"github.com/keyhold/keyhold/internal/store/postgres/pgtest"
	"github.com/keyhold/keyhold/internal/store/storetest"
)

func openDSN(t testing.TB, dsn string) *postgres.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func TestConformance(t *testing.T) {
	srv := pgtest.Shared(t)
	storetest.Run(t, func(t *testing.T) store.Store { return openDSN(t, srv.DSN(t)) })
}

func TestCrash(t *testing.T) {
	storetest.RunCrash(t, storetest.CrashTarget{
		New: func(t *testing.T) string { return pgtest.Shared(t).DSN(t) },
		Open: func(dsn string) (store.Store, error) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			return postgres.Open(ctx, dsn)
		},
	})
}

// Two stores on one database are two replicas: they share records, nonces,
// leases, notifications and locks.
func TestReplicasShare(t *testing.T) {
	dsn := pgtest.Shared(t).DSN(t)
	a, b := openDSN(t, dsn), openDSN(t, dsn)
	ctx := context.Background()

	ch, cancel := b.Subscribe("secrets")
	defer cancel()
	if err := a.Update(ctx, func(tx store.Tx) error {
		tx.Notify("secrets")
		return tx.Put("t", "k", []byte("from-a"))
	}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("replica b was not notified of a's commit")
	}
	var v []byte
	if err := b.View(ctx, func(tx store.Tx) error { var err error; v, err = tx.Get("t", "k"); return err }); err != nil || string(v) != "from-a" {
		t.Fatalf("b reads %q, %v", v, err)
	}

	exp := time.Now().Add(time.Minute)
	if ok, err := a.PutNonce(ctx, "n", exp); !ok || err != nil {
		t.Fatalf("PutNonce on a = %v, %v", ok, err)
	}
	if ok, err := b.PutNonce(ctx, "n", exp); ok || err != nil {
		t.Fatalf("replay on b = %v, %v; want refused", ok, err)
	}

	if _, err := a.AcquireLease(ctx, "leader", "a", time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := b.AcquireLease(ctx, "leader", "b", time.Minute); !errors.Is(err, store.ErrLeaseHeld) {
		t.Fatalf("b took a's lease: %v", err)
	}

	unlock, err := a.Lock(ctx, "init")
	if err != nil {
		t.Fatal(err)
	}
	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancelShort()
	if u, err := b.Lock(short, "init"); err == nil {
		u()
		t.Fatal("b locked what a holds")
	}
	unlock()
	u, err := b.Lock(ctx, "init")
	if err != nil {
		t.Fatalf("b Lock after a's unlock: %v", err)
	}
	u()
}

// Deployments in separate schemas of one database do not see each other.
func TestSchemasAreSeparate(t *testing.T) {
	dsn := pgtest.Shared(t).DSN(t)
	admin, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	if _, err := admin.Exec(context.Background(), "CREATE SCHEMA one; CREATE SCHEMA two"); err != nil {
		t.Fatal(err)
	}
	base := dsn[:strings.Index(dsn, "&search_path=")]
	one := openDSN(t, base+"&search_path=one")
	two := openDSN(t, base+"&search_path=two")
	if one.Schema() != "one" || two.Schema() != "two" {
		t.Fatalf("schemas %q, %q", one.Schema(), two.Schema())
	}
	ch, cancel := two.Subscribe("x")
	defer cancel()
	if err := one.Update(context.Background(), func(tx store.Tx) error { tx.Notify("x"); return tx.Put("t", "k", []byte("v")) }); err != nil {
		t.Fatal(err)
	}
	var n int
	two.View(context.Background(), func(tx store.Tx) error { n, err = tx.Count("t", ""); return err })
	if n != 0 {
		t.Fatalf("schema two sees %d records of schema one", n)
	}
	select {
	case <-ch:
		t.Fatal("schema two was notified of schema one's commit")
	case <-time.After(300 * time.Millisecond):
	}
}

func TestBadDSN(t *testing.T) {
	_, err := postgres.Open(context.Background(), "postgres://keyhold:hunter2@[::1")
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("Open with a bad URL: %v; want an error without the password", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = postgres.Open(ctx, "postgres://keyhold:hunter2@127.0.0.1:1/x?sslmode=disable&connect_timeout=2")
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("Open of an unreachable server: %v; want an error without the password", err)
	}
}

// A database written by a newer build is refused.
func TestNewerSchemaRefused(t *testing.T) {
	dsn := pgtest.Shared(t).DSN(t)
	s := openDSN(t, dsn)
	if _, err := s.Pool().Exec(context.Background(), "INSERT INTO kh_schema (version) VALUES (999)"); err != nil {
		t.Fatal(err)
	}
	_, err := postgres.Open(context.Background(), dsn)
	if err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("Open of a newer schema: %v", err)
	}
}
