// Package pgfault_test breaks PostgreSQL under a running Keyhold replica
// and checks what the official KMS SDK sees: a database failure is a
// temporary failure (ServiceUnavailableTemporary, HTTP 503), a transaction
// cut off in the middle leaves nothing behind, and the replica serves again
// — and takes the leader lease again — once the database is back, without
// a restart. Every test runs its own PostgreSQL (pgtest.Start): a killed
// backend makes the postmaster restart all of them, which other tests on a
// shared server would see.
package pgfault_test

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
	"syscall"
	"testing"

	kms "github.com/alibabacloud-go/kms-20160120/v3/client"
	"github.com/alibabacloud-go/tea/tea"
	"github.com/jackc/pgx/v5"

	"github.com/keyhold/keyhold/internal/store"
	"github.com/keyhold/keyhold/internal/store/postgres/pgtest"
)

// Where the secrets domain keeps a secret and its versions
// (internal/secrets: tables "secrets" and "secret_versions", keys
// account/name and account/name|versionId). The test reaches for the rows
// to hold one of them locked and to see what a failed call left behind.
const (
	tableSecrets  = "secrets"
	tableVersions = "secret_versions"
)

func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatalf("admin connection: %v", err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// rows returns the stored records of secret name (the secret row and one
// row per version), key → value as stored (ciphertext).
func rows(t *testing.T, dsn, account, name string) map[string]string {
	t.Helper()
	c := connect(t, dsn)
	key := store.Key(account, name)
	rs, err := c.Query(context.Background(), `SELECT tbl, key, value FROM kh_records
		WHERE (tbl = $1 AND key = $2) OR (tbl = $3 AND substring(key from 1 for length($4::bytea)) = $4::bytea)`,
		[]byte(tableSecrets), []byte(key), []byte(tableVersions), []byte(key+"|"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for rs.Next() {
		var tbl, k, v []byte
		if err := rs.Scan(&tbl, &k, &v); err != nil {
			t.Fatal(err)
		}
		out[string(tbl)+" "+string(k)] = string(v)
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	c.Close(context.Background())
	return out
}

// blockedBy waits until a backend waits for a lock that admin holds and
// returns its process id: the server's transaction, stopped in the middle.
func blockedBy(t *testing.T, admin *pgx.Conn, errc <-chan error) int {
	t.Helper()
	var adminPID int
	if err := admin.QueryRow(context.Background(), "SELECT pg_backend_pid()").Scan(&adminPID); err != nil {
		t.Fatal(err)
	}
	var pid int
	waitFor(t, "the server's transaction to wait for the admin's lock", func() bool {
		select {
		case err := <-errc:
			t.Fatalf("the call ended before it reached the locked row: %v", err)
		default:
		}
		err := admin.QueryRow(context.Background(), `SELECT pid FROM pg_stat_activity
			WHERE $1 = ANY(pg_blocking_pids(pid)) AND wait_event_type = 'Lock'`, adminPID).Scan(&pid)
		return err == nil
	})
	return pid
}

// databaseBack waits until PostgreSQL accepts connections again (after a
// SIGKILLed backend the postmaster restarts every backend and replays the
// WAL first).
func databaseBack(t *testing.T, dsn string) {
	t.Helper()
	waitFor(t, "PostgreSQL to accept connections again", func() bool {
		c, err := pgx.Connect(context.Background(), dsn)
		if err != nil {
			return false
		}
		defer c.Close(context.Background())
		return c.Ping(context.Background()) == nil
	})
}

// A kill ends the server's backend while its transaction waits on a row
// the admin connection holds. It reports whether the admin's own session
// survived (pg_terminate_backend) or went with the rest (SIGKILL).
type kill struct {
	name string
	do   func(t *testing.T, admin *pgx.Conn, pid int) (adminAlive bool)
}

var kills = []kill{
	{"SIGKILL", func(t *testing.T, _ *pgx.Conn, pid int) bool {
		// The real crash: the postmaster sees a backend die abnormally
		// and restarts all of them, the admin's included.
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatalf("kill -9 %d: %v", pid, err)
		}
		return false
	}},
	{"pg_terminate_backend", func(t *testing.T, admin *pgx.Conn, pid int) bool {
		var ok bool
		if err := admin.QueryRow(context.Background(), "SELECT pg_terminate_backend($1)", pid).Scan(&ok); err != nil || !ok {
			t.Fatalf("pg_terminate_backend(%d): %v %v", pid, ok, err)
		}
		return true
	}},
}

func TestBackendKilledMidTransaction(t *testing.T) {
	pg := pgtest.Start(t)
	dsn := pg.DSN(t)
	r := startReplica(t, dsn)
	kc := r.sdk(t)
	ctx := context.Background()

	for _, k := range kills {
		// PutSecretValue: the new version's rows are written, then the
		// transaction waits on the secret's row, which the admin holds
		// FOR UPDATE.
		t.Run(k.name+"/PutSecretValue", func(t *testing.T) {
			name := "fault/put-" + k.name
			must(kc.CreateSecret(&kms.CreateSecretRequest{SecretName: tea.String(name), VersionId: tea.String("v1"), SecretData: tea.String("old value")}))(t)
			before := rows(t, dsn, r.Account, name)
			if len(before) != 2 {
				t.Fatalf("a new secret is stored as %d rows, want the secret and one version: %v", len(before), keys(before))
			}

			admin := connect(t, dsn)
			atx := must(admin.Begin(ctx))(t)
			tag := must(atx.Exec(ctx, "SELECT 1 FROM kh_records WHERE tbl = $1 AND key = $2 FOR UPDATE",
				[]byte(tableSecrets), []byte(store.Key(r.Account, name))))(t)
			if tag.RowsAffected() != 1 {
				t.Fatalf("locked %d rows, want the secret's", tag.RowsAffected())
			}
			errc := make(chan error, 1)
			go func() {
				_, err := kc.PutSecretValue(&kms.PutSecretValueRequest{SecretName: tea.String(name), VersionId: tea.String("v2"), SecretData: tea.String("new value")})
				errc <- err
			}()
			pid := blockedBy(t, admin, errc)
			if k.do(t, admin, pid) {
				atx.Rollback(ctx) // the admin's lock goes: nothing may be waiting for it now
			}
			failed := wantUnavailable(t, "PutSecretValue whose backend was killed", <-errc)
			databaseBack(t, dsn)

			// The very next call is served: the pool does not hand out the
			// connections that died with the backends.
			got, err := kc.GetSecretValue(&kms.GetSecretValueRequest{SecretName: tea.String(name)})
			if err != nil {
				t.Fatalf("the first call once the database is back: %v", err)
			}
			if tea.StringValue(got.Body.SecretData) != "old value" || tea.StringValue(got.Body.VersionId) != "v1" {
				t.Fatalf("after the failed put the secret serves %s %q, want v1 and the old value",
					tea.StringValue(got.Body.VersionId), tea.StringValue(got.Body.SecretData))
			}
			if after := rows(t, dsn, r.Account, name); !reflect.DeepEqual(before, after) {
				t.Fatalf("the killed transaction left a trace: rows before %v, after %v", keys(before), keys(after))
			}
			ids := must(kc.ListSecretVersionIds(&kms.ListSecretVersionIdsRequest{SecretName: tea.String(name), IncludeDeprecated: tea.String("true")}))(t)
			if vs := ids.Body.VersionIds.VersionId; len(vs) != 1 || tea.StringValue(vs[0].VersionId) != "v1" ||
				!reflect.DeepEqual(tea.StringSliceValue(vs[0].VersionStages.VersionStage), []string{"ACSCurrent"}) {
				t.Fatalf("versions after the failed put: %s", tea.Prettify(vs))
			}
			checkAudit(t, r, failed.RequestID, "kms:PutSecretValue")

			// The same request again succeeds: no half-written v2 is in
			// its way.
			must(kc.PutSecretValue(&kms.PutSecretValueRequest{SecretName: tea.String(name), VersionId: tea.String("v2"), SecretData: tea.String("new value")}))(t)
			got = must(kc.GetSecretValue(&kms.GetSecretValueRequest{SecretName: tea.String(name)}))(t)
			if tea.StringValue(got.Body.SecretData) != "new value" || tea.StringValue(got.Body.VersionId) != "v2" {
				t.Fatalf("retried put: secret serves %s", tea.StringValue(got.Body.VersionId))
			}
		})

		// CreateSecret: the secret's row is inserted, then the transaction
		// waits to write its version row, which the admin has inserted and
		// not committed.
		t.Run(k.name+"/CreateSecret", func(t *testing.T) {
			name := "fault/create-" + k.name
			admin := connect(t, dsn)
			atx := must(admin.Begin(ctx))(t)
			must(atx.Exec(ctx, "INSERT INTO kh_records (tbl, key, value) VALUES ($1, $2, '')",
				[]byte(tableVersions), []byte(store.Key(r.Account, name)+"|v1")))(t)
			errc := make(chan error, 1)
			go func() {
				_, err := kc.CreateSecret(&kms.CreateSecretRequest{SecretName: tea.String(name), VersionId: tea.String("v1"), SecretData: tea.String("first value")})
				errc <- err
			}()
			pid := blockedBy(t, admin, errc)
			if k.do(t, admin, pid) {
				atx.Rollback(ctx)
			}
			failed := wantUnavailable(t, "CreateSecret whose backend was killed", <-errc)
			databaseBack(t, dsn)

			_, err := kc.DescribeSecret(&kms.DescribeSecretRequest{SecretName: tea.String(name)})
			if err == nil {
				t.Fatal("the secret whose creation was cut off exists")
			}
			if e := asSDKError(t, err); e.Code != "Forbidden.ResourceNotFound" {
				t.Fatalf("DescribeSecret of the secret never created: %s (HTTP %d), want Forbidden.ResourceNotFound", e.Code, e.Status)
			}
			if left := rows(t, dsn, r.Account, name); len(left) != 0 {
				t.Fatalf("the killed creation left rows: %v", keys(left))
			}
			checkAudit(t, r, failed.RequestID, "kms:CreateSecret")

			must(kc.CreateSecret(&kms.CreateSecretRequest{SecretName: tea.String(name), VersionId: tea.String("v1"), SecretData: tea.String("first value")}))(t)
			got := must(kc.GetSecretValue(&kms.GetSecretValueRequest{SecretName: tea.String(name)}))(t)
			if tea.StringValue(got.Body.SecretData) != "first value" {
				t.Fatal("the secret created again serves another value")
			}
		})
	}
}

// TestKeyLookupKilled ends the backend reading an access key the replica
// has not cached yet: the first thing a request needs from the database,
// wrapped by identities as an internal error ("the access key cannot be
// read") around the storage's unavailability.
func TestKeyLookupKilled(t *testing.T) {
	pg := pgtest.Start(t)
	dsn := pg.DSN(t)
	r := startReplica(t, dsn)
	kh := r.keyhold(t)
	ctx := context.Background()
	user := r.newUser(t, "app")

	// Reads take no row locks, so the admin stops them with a table lock,
	// then ends the backends waiting in a record read.
	admin := connect(t, dsn)
	atx := must(admin.Begin(ctx))(t)
	must(atx.Exec(ctx, "LOCK TABLE kh_records IN ACCESS EXCLUSIVE MODE"))(t)
	errc := make(chan error, 1)
	go func() {
		_, err := user.sdk(t).ListSecrets(&kms.ListSecretsRequest{})
		errc <- err
	}()
	var adminPID int
	must(0, admin.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&adminPID))(t)
	var n int
	waitFor(t, "the key lookup to wait for the table lock", func() bool {
		select {
		case err := <-errc:
			t.Fatalf("the call ended before it read the key: %v", err)
		default:
		}
		err := admin.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE $1 = ANY(pg_blocking_pids(pid)) AND query LIKE 'SELECT value FROM kh_records%'`, adminPID).Scan(&n)
		return err == nil && n > 0
	})
	atx.Rollback(ctx)
	wantUnavailable(t, "ListSecrets whose key lookup was killed", <-errc)

	// The key is read on the next call: the user has no policy, so the
	// answer is a refusal, given by a replica that serves again.
	_, err := user.sdk(t).ListSecrets(&kms.ListSecretsRequest{})
	if e := asSDKError(t, err); e.Code != "Forbidden.NoPermission" {
		t.Fatalf("the next call: %s (HTTP %d), want Forbidden.NoPermission", e.Code, e.Status)
	}
	verifyAudit(t, kh)
}

// checkAudit checks the failed call in the trail: its attempt was recorded
// (the handler ran), its outcome — when the trail could take it — is the
// failure the caller saw, nothing records it as a success, and the chain
// still verifies.
func checkAudit(t *testing.T, r *replica, requestID, action string) {
	t.Helper()
	if requestID == "" {
		t.Fatal("the failed call's answer carried no RequestId")
	}
	c := r.keyhold(t)
	var attempt bool
	for _, rec := range auditEvents(t, c) {
		if rec.RequestId != requestID {
			continue
		}
		if rec.Action != action {
			t.Errorf("record %d of the failed call: action %s, want %s", rec.Seq, rec.Action, action)
		}
		switch rec.Stage {
		case "Attempt":
			attempt = true
		case "Outcome":
			if rec.Result != "ServiceUnavailableTemporary" || rec.HttpStatus != http.StatusServiceUnavailable {
				t.Errorf("the failed call's outcome is recorded as %s (HTTP %d)", rec.Result, rec.HttpStatus)
			}
		}
	}
	if !attempt {
		t.Errorf("no attempt record for the failed %s (request %s)", action, requestID)
	}
	verifyAudit(t, c)
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, fmt.Sprintf("%q", k))
	}
	return out
}
