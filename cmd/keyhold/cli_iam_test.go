package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/keyhold/keyhold/internal/server"
	"github.com/keyhold/keyhold/internal/testutil/rootcreds"
)

// startRealServer starts a real server and points the CLI's environment at
// it with the root credentials.
func startRealServer(t *testing.T) {
	t.Helper()
	isolate(t)
	dir := t.TempDir()
	srv, err := server.Start(context.Background(), server.Config{
		DataDir: dir, Listen: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	creds := rootcreds.Read(t, dir)
	t.Setenv("KEYHOLD_ENDPOINT", srv.HTTPURL)
	t.Setenv("KEYHOLD_ACCESS_KEY_ID", creds.ID)
	t.Setenv("KEYHOLD_ACCESS_KEY_SECRET", creds.Secret)
}

func mustRun(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, errOut, code := run(t, stdin, args...)
	if code != 0 {
		t.Fatalf("keyhold %s: exit %d: %s", strings.Join(args, " "), code, errOut)
	}
	return out
}

func TestIdentityCommandsAgainstARealServer(t *testing.T) {
	startRealServer(t)
	mustRun(t, "", "user", "create", "alice", "--display-name", "Alice")
	if out := mustRun(t, "", "user", "list"); !strings.Contains(out, "alice") || !strings.Contains(out, "Alice") {
		t.Fatalf("user list:\n%s", out)
	}

	// Passwords come from a file or stdin, never from argv.
	if _, _, code := run(t, "", "user", "password", "set", "alice", "Corr3ct-Horse-1"); code != 2 {
		t.Fatalf("a password on the command line: exit %d, want 2", code)
	}
	mustRun(t, "Corr3ct-Horse-1\n", "user", "password", "set", "alice", "--password-file", "-")
	mustRun(t, "An0ther-Horse-2\n", "user", "password", "set", "alice", "--password-file", "-") // updates
	if _, errOut, code := run(t, "short\n", "user", "password", "set", "alice", "--password-file", "-"); code != 1 || !strings.Contains(errOut, "InvalidParameter.Password.Length") {
		t.Fatalf("short password: exit %d: %s", code, errOut)
	}

	// The key's secret is printed once, at creation.
	var key struct {
		AccessKey struct{ AccessKeyId, AccessKeySecret string }
	}
	if err := json.Unmarshal([]byte(mustRun(t, "", "accesskey", "create", "--user", "alice", "--output", "json")), &key); err != nil {
		t.Fatal(err)
	}
	if key.AccessKey.AccessKeySecret == "" {
		t.Fatal("no secret at creation")
	}
	if out := mustRun(t, "", "accesskey", "list", "--user", "alice", "--output", "json"); strings.Contains(out, key.AccessKey.AccessKeySecret) {
		t.Fatal("accesskey list printed a secret")
	}

	// A malformed policy is refused, naming the problem.
	_, errOut, code := run(t, `{"Version":"1","Statement":[{"Effect":"Maybe","Action":"kms:*","Resource":"*"}]}`, "policy", "create", "Bad", "--document-file", "-")
	if code != 1 || !strings.Contains(errOut, "MalformedPolicyDocument") || !strings.Contains(errOut, "Effect") {
		t.Fatalf("bad policy: exit %d: %s", code, errOut)
	}
	mustRun(t, `{"Version":"1","Statement":[{"Effect":"Allow","Action":"kms:GetSecretValue","Resource":"acs:kms:*:*:secret/app/*"}]}`,
		"policy", "create", "AppRead", "--document-file", "-")
	mustRun(t, "s3cr3t", "secret", "create", "app/db", "--value-file", "-")

	// alice acts with her own key: refused until the policy is attached.
	root := [2]string{os.Getenv("KEYHOLD_ACCESS_KEY_ID"), os.Getenv("KEYHOLD_ACCESS_KEY_SECRET")}
	asAlice := func() (string, string, int) {
		t.Setenv("KEYHOLD_ACCESS_KEY_ID", key.AccessKey.AccessKeyId)
		t.Setenv("KEYHOLD_ACCESS_KEY_SECRET", key.AccessKey.AccessKeySecret)
		defer func() {
			t.Setenv("KEYHOLD_ACCESS_KEY_ID", root[0])
			t.Setenv("KEYHOLD_ACCESS_KEY_SECRET", root[1])
		}()
		return run(t, "", "secret", "get", "app/db")
	}
	if _, errOut, code := asAlice(); code != 1 || !strings.Contains(errOut, "Forbidden.NoPermission") {
		t.Fatalf("alice before attach: exit %d: %s", code, errOut)
	}
	mustRun(t, "", "policy", "attach", "AppRead", "--user", "alice")
	if out := mustRun(t, "", "policy", "list-attached", "--user", "alice"); !strings.Contains(out, "AppRead") {
		t.Fatalf("list-attached:\n%s", out)
	}
	if out, errOut, code := asAlice(); code != 0 || out != "s3cr3t" {
		t.Fatalf("alice after attach: %q exit %d: %s", out, code, errOut)
	}
	if out := mustRun(t, "", "policy", "get", "KeyholdSecretAdministrator"); !strings.Contains(out, "kms:PutSecretValue") {
		t.Fatalf("policy get (System):\n%s", out)
	}
	if _, _, code := run(t, "", "policy", "attach", "AppRead"); code != 2 {
		t.Fatalf("attach without --user/--group: exit %d, want 2", code)
	}

	// Groups.
	mustRun(t, "", "group", "create", "ops")
	mustRun(t, "", "group", "add-user", "ops", "alice")
	mustRun(t, "", "policy", "attach", "KeyholdReadOnly", "--type", "System", "--group", "ops")
	if out := mustRun(t, "", "group", "list"); !strings.Contains(out, "ops") {
		t.Fatalf("group list:\n%s", out)
	}

	// Deleting alice is refused while she has a key.
	if _, errOut, code := run(t, "", "user", "delete", "alice"); code != 1 || !strings.Contains(errOut, "DeleteConflict.User.AccessKey") {
		t.Fatalf("user delete: exit %d: %s", code, errOut)
	}
	mustRun(t, "", "accesskey", "update", key.AccessKey.AccessKeyId, "--user", "alice", "--status", "Inactive")
	if _, errOut, code := asAlice(); code != 1 || !strings.Contains(errOut, "Forbidden.AccessKeyDisabled") {
		t.Fatalf("alice with an inactive key: exit %d: %s", code, errOut)
	}

	// Accounts.
	var acct struct {
		Account   struct{ AccountId string }
		AccessKey struct{ AccessKeySecret string }
	}
	if err := json.Unmarshal([]byte(mustRun(t, "", "account", "create", "--display-name", "b", "--output", "json")), &acct); err != nil {
		t.Fatal(err)
	}
	if acct.Account.AccountId == "" || acct.AccessKey.AccessKeySecret == "" {
		t.Fatalf("account create: %+v", acct)
	}
	if out := mustRun(t, "", "account", "list"); !strings.Contains(out, acct.Account.AccountId) {
		t.Fatalf("account list:\n%s", out)
	}
}
