package pgfault_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"strings"
	"testing"

	kms "github.com/alibabacloud-go/kms-20160120/v3/client"
	"github.com/alibabacloud-go/tea/tea"

	"github.com/keyhold/keyhold/client"
	"github.com/keyhold/keyhold/internal/server"
	"github.com/keyhold/keyhold/internal/store"
	"github.com/keyhold/keyhold/internal/store/postgres/pgtest"
)

// frozenOpTimeout is the replica's bound on each database round trip in
// these tests (keyhold_op_timeout; the default is 30s): short, so that a
// frozen database fails calls soon, and long enough for a loaded machine's
// healthy round trips.
const frozenOpTimeout = "3s"

// startFrozenable starts a replica whose connections to PostgreSQL go
// through a proxy the test can freeze: the database then stops answering
// without closing anything, as a frozen host or a network black hole
// does, where a stopped server would refuse connections at once.
func startFrozenable(t *testing.T) (r *replica, proxy *pgtest.Proxy, direct string) {
	t.Helper()
	pg := pgtest.Start(t)
	direct = pg.DSN(t)
	proxy = pgtest.NewProxy(t, direct)
	r = startReplica(t, proxy.DSN(t, direct)+"&keyhold_op_timeout="+frozenOpTimeout)
	return r, proxy, direct
}

// TestDatabaseFrozen freezes the proxy under a serving leader. Every call
// returns (no timed assertion: returning at all is the point; without a
// bound they hang for good) with the temporary-failure answer, the leader
// steps down, nothing is half-written, and after the thaw the same
// process serves again through fresh connections.
func TestDatabaseFrozen(t *testing.T) {
	r, proxy, direct := startFrozenable(t)
	kc := r.sdk(t)
	kh := r.keyhold(t)
	ctx := context.Background()
	waitFor(t, "the only replica to take the leader lease", r.Leading)
	must(kc.CreateSecret(&kms.CreateSecretRequest{SecretName: tea.String("frozen/a"), VersionId: tea.String("v1"), SecretData: tea.String("kept value")}))(t)
	before := rows(t, direct, r.Account, "frozen/a")
	if len(before) != 2 {
		t.Fatalf("a new secret is stored as %d rows, want the secret and one version: %v", len(before), keys(before))
	}

	proxy.Freeze()

	wantUnavailable(t, "GetSecretValue", errOf(kc.GetSecretValue(&kms.GetSecretValueRequest{SecretName: tea.String("frozen/a")})))
	wantUnavailable(t, "PutSecretValue", errOf(kc.PutSecretValue(&kms.PutSecretValueRequest{SecretName: tea.String("frozen/a"), VersionId: tea.String("v2"), SecretData: tea.String("lost value")})))
	wantUnavailable(t, "CreateSecret", errOf(kc.CreateSecret(&kms.CreateSecretRequest{SecretName: tea.String("frozen/b"), VersionId: tea.String("v1"), SecretData: tea.String("x")})))
	if err := kh.Call(ctx, client.VersionKeyhold, "DescribeDeployment", nil, nil); !client.IsCode(err, "ServiceUnavailableTemporary") {
		t.Fatalf("DescribeDeployment with the database frozen: %v", err)
	}
	if got := readyz(t, r); got != http.StatusServiceUnavailable {
		t.Fatalf("readyz with the database frozen: %d, want 503", got)
	}
	// Renewals that time out count as failed ones: the leader steps down
	// once its lease may have lapsed.
	waitFor(t, "the leader to step down", func() bool { return !r.Leading() })

	proxy.Thaw()

	// The connections that timed out were closed by pgx (their protocol
	// state is unknown) and are not reused; the pool dials anew.
	waitFor(t, "readyz to report ready again", func() bool { return readyz(t, r) == http.StatusOK })
	got := must(kc.GetSecretValue(&kms.GetSecretValueRequest{SecretName: tea.String("frozen/a")}))(t)
	if tea.StringValue(got.Body.SecretData) != "kept value" || tea.StringValue(got.Body.VersionId) != "v1" {
		t.Fatalf("after the freeze the secret serves %s", tea.StringValue(got.Body.VersionId))
	}
	if after := rows(t, direct, r.Account, "frozen/a"); !reflect.DeepEqual(before, after) {
		t.Fatalf("the frozen put left a trace: rows before %v, after %v", keys(before), keys(after))
	}
	if left := rows(t, direct, r.Account, "frozen/b"); len(left) != 0 {
		t.Fatalf("the frozen creation left rows: %v", keys(left))
	}
	wantVersions(t, kc, "frozen/a", "v1")
	must(kc.PutSecretValue(&kms.PutSecretValueRequest{SecretName: tea.String("frozen/a"), VersionId: tea.String("v2"), SecretData: tea.String("new value")}))(t)
	must(kc.CreateSecret(&kms.CreateSecretRequest{SecretName: tea.String("frozen/b"), VersionId: tea.String("v1"), SecretData: tea.String("x")}))(t)
	waitFor(t, "the replica to take the leader lease again", r.Leading)
	verifyAudit(t, kh)
}

// TestFrozenMidTransaction freezes the database while PutSecretValue's
// transaction waits on the secret's row (held FOR UPDATE by the test,
// directly, not through the proxy), then lets the row go: PostgreSQL runs
// the statement, but its answer — and everything after it — is held by
// the frozen proxy. The replica gives up, its connection is closed, and
// PostgreSQL rolls the transaction back once the close arrives.
func TestFrozenMidTransaction(t *testing.T) {
	r, proxy, direct := startFrozenable(t)
	kc := r.sdk(t)
	ctx := context.Background()
	const name = "frozen/mid"
	must(kc.CreateSecret(&kms.CreateSecretRequest{SecretName: tea.String(name), VersionId: tea.String("v1"), SecretData: tea.String("old value")}))(t)
	before := rows(t, direct, r.Account, name)

	admin := connect(t, direct)
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
	// If the wait already timed out (a very loaded machine), blockedBy
	// fails the test: the freeze would come too late to matter.
	blockedBy(t, admin, errc)
	proxy.Freeze()
	atx.Rollback(ctx)
	failed := wantUnavailable(t, "PutSecretValue frozen mid-transaction", <-errc)
	proxy.Thaw()

	waitFor(t, "readyz to report ready again", func() bool { return readyz(t, r) == http.StatusOK })
	got := must(kc.GetSecretValue(&kms.GetSecretValueRequest{SecretName: tea.String(name)}))(t)
	if tea.StringValue(got.Body.SecretData) != "old value" || tea.StringValue(got.Body.VersionId) != "v1" {
		t.Fatalf("after the frozen put the secret serves %s", tea.StringValue(got.Body.VersionId))
	}
	if after := rows(t, direct, r.Account, name); !reflect.DeepEqual(before, after) {
		t.Fatalf("the frozen transaction left a trace: rows before %v, after %v", keys(before), keys(after))
	}
	wantVersions(t, kc, name, "v1")
	checkAudit(t, r, failed.RequestID, "kms:PutSecretValue")

	// The same request again succeeds: no half-written v2 is in its way.
	must(kc.PutSecretValue(&kms.PutSecretValueRequest{SecretName: tea.String(name), VersionId: tea.String("v2"), SecretData: tea.String("new value")}))(t)
	got = must(kc.GetSecretValue(&kms.GetSecretValueRequest{SecretName: tea.String(name)}))(t)
	if tea.StringValue(got.Body.SecretData) != "new value" || tea.StringValue(got.Body.VersionId) != "v2" {
		t.Fatalf("retried put: secret serves %s", tea.StringValue(got.Body.VersionId))
	}
}

// wantVersions checks the secret has exactly the one version id, staged
// ACSCurrent.
func wantVersions(t *testing.T, kc *kms.Client, name, id string) {
	t.Helper()
	ids := must(kc.ListSecretVersionIds(&kms.ListSecretVersionIdsRequest{SecretName: tea.String(name), IncludeDeprecated: tea.String("true")}))(t)
	if vs := ids.Body.VersionIds.VersionId; len(vs) != 1 || tea.StringValue(vs[0].VersionId) != id ||
		!reflect.DeepEqual(tea.StringSliceValue(vs[0].VersionStages.VersionStage), []string{"ACSCurrent"}) {
		t.Fatalf("versions of %s: %s, want only %s as ACSCurrent", name, tea.Prettify(vs), id)
	}
}

// TestBadOpTimeoutRefused: a replica does not start on a storage URL whose
// keyhold_op_timeout is not a positive duration, and says which parameter
// is wrong without echoing the URL's password. Nothing listens on the
// URL's port: the refusal comes before any connection.
func TestBadOpTimeoutRefused(t *testing.T) {
	for _, v := range []string{"5", "0s", "-3s", "fast"} {
		srv, err := server.Start(context.Background(), server.Config{
			DataDir: t.TempDir(), Listen: "127.0.0.1:0", TLSListen: "127.0.0.1:0",
			Storage: "postgres://keyhold:pw-not-shown@127.0.0.1:1/keyhold?sslmode=disable&keyhold_op_timeout=" + v,
			Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		if err == nil {
			srv.Close()
			t.Fatalf("keyhold_op_timeout=%s: the replica started", v)
		}
		if msg := err.Error(); !strings.Contains(msg, "keyhold_op_timeout") || strings.Contains(msg, "pw-not-shown") {
			t.Errorf("keyhold_op_timeout=%s: %q, want the parameter named and no password", v, msg)
		}
	}
}
