package pgfault_test

import (
	"context"
	"net/http"
	"testing"

	kms "github.com/alibabacloud-go/kms-20160120/v3/client"
	"github.com/alibabacloud-go/tea/tea"

	"github.com/keyhold/keyhold/client"
	"github.com/keyhold/keyhold/internal/store/postgres/pgtest"
)

// TestDatabaseDown stops PostgreSQL as a crash would (pg_ctl stop -m
// immediate) under a serving replica and starts it again on the same port
// and data directory.
func TestDatabaseDown(t *testing.T) {
	pg := pgtest.Start(t)
	dsn := pg.DSN(t)
	r := startReplica(t, dsn)
	kc := r.sdk(t)
	kh := r.keyhold(t)
	waitFor(t, "the only replica to take the leader lease", r.Leading)
	must(kc.CreateSecret(&kms.CreateSecretRequest{SecretName: tea.String("down/a"), VersionId: tea.String("v1"), SecretData: tea.String("kept value")}))(t)
	if got := readyz(t, r); got != http.StatusOK {
		t.Fatalf("readyz with the database up: %d", got)
	}
	// A RAM user (no policy) whose access key the replica has not used
	// yet: its lookup needs the database, unlike the root key's, cached.
	ctx := context.Background()
	user := r.newUser(t, "app")

	pg.Stop(t)

	// Every call returns (no timed assertion: returning at all is the
	// point) with the temporary-failure answer, whatever it needed from
	// the database: the nonce, the trail, the secret, an uncached key.
	wantUnavailable(t, "GetSecretValue", errOf(kc.GetSecretValue(&kms.GetSecretValueRequest{SecretName: tea.String("down/a")})))
	wantUnavailable(t, "PutSecretValue", errOf(kc.PutSecretValue(&kms.PutSecretValueRequest{SecretName: tea.String("down/a"), VersionId: tea.String("v2"), SecretData: tea.String("lost value")})))
	wantUnavailable(t, "CreateSecret", errOf(kc.CreateSecret(&kms.CreateSecretRequest{SecretName: tea.String("down/b"), VersionId: tea.String("v1"), SecretData: tea.String("x")})))
	wantUnavailable(t, "ListSecrets", errOf(kc.ListSecrets(&kms.ListSecretsRequest{})))
	wantUnavailable(t, "GetSecretValue with a key not cached", errOf(user.sdk(t).GetSecretValue(&kms.GetSecretValueRequest{SecretName: tea.String("down/a")})))
	if err := kh.Call(ctx, client.VersionKeyhold, "DescribeDeployment", nil, nil); !client.IsCode(err, "ServiceUnavailableTemporary") {
		t.Fatalf("DescribeDeployment with the database down: %v", err)
	}
	if got := readyz(t, r); got != http.StatusServiceUnavailable {
		t.Fatalf("readyz with the database down: %d, want 503", got)
	}
	// A leader that cannot renew its lease steps down once it may have
	// lapsed, so that it never runs the singletons beside a new leader.
	waitFor(t, "the replica to step down as leader", func() bool { return !r.Leading() })

	pg.Restart(t)

	// The same process serves again: the pool dials anew, the lease is
	// taken again.
	waitFor(t, "readyz to report ready again", func() bool { return readyz(t, r) == http.StatusOK })
	got := must(kc.GetSecretValue(&kms.GetSecretValueRequest{SecretName: tea.String("down/a")}))(t)
	if tea.StringValue(got.Body.SecretData) != "kept value" || tea.StringValue(got.Body.VersionId) != "v1" {
		t.Fatalf("after the outage the secret serves %s", tea.StringValue(got.Body.VersionId))
	}
	// The user has no policy: a refusal, from a replica that reads keys again.
	_, err := user.sdk(t).ListSecrets(&kms.ListSecretsRequest{})
	if e := asSDKError(t, err); e.Code != "Forbidden.NoPermission" {
		t.Fatalf("the user's call after the outage: %s (HTTP %d), want Forbidden.NoPermission", e.Code, e.Status)
	}
	must(kc.PutSecretValue(&kms.PutSecretValueRequest{SecretName: tea.String("down/a"), VersionId: tea.String("v2"), SecretData: tea.String("new value")}))(t)
	must(kc.CreateSecret(&kms.CreateSecretRequest{SecretName: tea.String("down/b"), VersionId: tea.String("v1"), SecretData: tea.String("x")}))(t)
	waitFor(t, "the replica to take the leader lease again", r.Leading)
	var d struct{ Leader string }
	waitFor(t, "DescribeDeployment to name the replica leader", func() bool {
		err := kh.Call(ctx, client.VersionKeyhold, "DescribeDeployment", nil, &d)
		return err == nil && d.Leader == r.ReplicaID()
	})
	verifyAudit(t, kh)
}

func errOf[T any](_ T, err error) error { return err }
