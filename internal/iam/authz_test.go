package iam

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/keyhold/keyhold/internal/apicall"
	"github.com/keyhold/keyhold/internal/errs"
)

const acct = "1234567890123456"

// fakeSecrets answers SecretFacts from a map keyed "<account>/<name>".
type fakeSecrets map[string]struct {
	typ, policy, key string
	tags             map[string]string
}

func (f fakeSecrets) SecretFacts(_ context.Context, account, name string) (string, map[string]string, string, string, error) {
	s, ok := f[account+"/"+name]
	if !ok {
		return "", nil, "", "", errs.E(errs.KindSecretNotFound, "not found")
	}
	return s.typ, s.tags, s.policy, s.key, nil
}

type fakeKeys struct{}

func (fakeKeys) ResolveKey(_ context.Context, _, id string) (string, error) {
	if id == "" {
		return "service-key", nil
	}
	return id, nil
}

func newAuthzService(t testing.TB, secrets fakeSecrets) *Service {
	t.Helper()
	_, s := newEnv(t).open(t)
	s.UseResources(secrets, fakeKeys{})
	return s
}

func user(name string) apicall.Principal {
	return apicall.Principal{Account: acct, Kind: KindUser, Name: name}
}

func secretARN(account, name string) string {
	return "acs:kms:cn-hangzhou:" + account + ":secret/" + name
}

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestAuthorizeTable(t *testing.T) {
	ctx := context.Background()
	other := "6543210987654321"
	secrets := fakeSecrets{
		acct + "/app/db":      {typ: "Generic", key: "service-key", tags: map[string]string{"env": "prod"}},
		acct + "/app/cmk":     {typ: "Generic", key: "cmk-1"},
		acct + "/shared/x":    {typ: "Generic", key: "service-key", policy: `{"Version":"1","Statement":[{"Effect":"Allow","Principal":{"RAM":["acs:ram::` + other + `:user/bob"]},"Action":["kms:GetSecretValue"],"Resource":"*"}]}`},
		acct + "/wide/x":      {typ: "Generic", key: "service-key", policy: `{"Version":"1","Statement":[{"Effect":"Allow","Principal":{"RAM":["acs:ram::` + acct + `:*"]},"Action":["kms:*"],"Resource":"*"}]}`},
		acct + "/named/x":     {typ: "Generic", key: "service-key", policy: `{"Version":"1","Statement":[{"Effect":"Allow","Principal":{"RAM":["acs:ram::` + acct + `:user/none"]},"Action":["kms:GetSecretValue"],"Resource":"*"}]}`},
		acct + "/denied/x":    {typ: "Generic", key: "service-key", policy: `{"Version":"1","Statement":[{"Effect":"Deny","Principal":{"RAM":["acs:ram::` + acct + `:user/reader"]},"Action":["kms:*"],"Resource":"*"}]}`},
		other + "/their/db":   {typ: "Generic", key: "service-key"},
		acct + "/ecs/host-1":  {typ: "ECS", key: "service-key"},
		acct + "/bad-policy1": {typ: "Generic", key: "service-key", policy: `not json`},
	}
	s := newAuthzService(t, secrets)
	for _, u := range []string{"reader", "none", "admin"} {
		_, err := s.CreateUser(ctx, acct, u, UserInput{})
		mustDo(t, err)
	}
	_, err := s.CreatePolicy(ctx, acct, "ReadApp", "", `{"Version":"1","Statement":[
		{"Effect":"Allow","Action":["kms:GetSecretValue","kms:DescribeSecret"],"Resource":"acs:kms:*:*:secret/app/*"},
		{"Effect":"Allow","Action":"kms:GetSecretValue","Resource":"acs:kms:*:*:secret/denied/*"},
		{"Effect":"Allow","Action":"kms:GetSecretValue","Resource":"acs:kms:*:`+other+`:secret/*"},
		{"Effect":"Allow","Action":"kms:GetSecretValue","Resource":"acs:kms:*:*:secret/ecs/*","Condition":{"StringEquals":{"kms:SecretType":"ECS"}}},
		{"Effect":"Allow","Action":"kms:ListSecrets","Resource":"acs:kms:*:*:secret"}]}`)
	mustDo(t, err)
	mustDo(t, s.AttachPolicyToUser(ctx, acct, PolicyTypeCustom, "ReadApp", "reader"))
	mustDo(t, s.AttachPolicyToUser(ctx, acct, PolicyTypeSystem, "KeyholdSecretAdministrator", "admin"))

	root := apicall.Principal{Account: acct, Kind: KindRoot, Name: RootName}
	otherRoot := apicall.Principal{Account: other, Kind: KindRoot, Name: RootName}
	req := &apicall.Request{Region: "cn-hangzhou", SourceIP: "127.0.0.1"}
	tests := []struct {
		name     string
		p        apicall.Principal
		action   string
		resource string
		allowed  bool
	}{
		{"root, own secret", root, "kms:GetSecretValue", secretARN(acct, "app/db"), true},
		{"root, account-wide", root, "kms:ListSecrets", "*", true},
		{"root, another account's secret", root, "kms:GetSecretValue", secretARN(other, "their/db"), false},
		{"root of the other account, no grant", otherRoot, "kms:GetSecretValue", secretARN(acct, "app/db"), false},
		{"unknown principal", apicall.Principal{}, "kms:GetSecretValue", "*", false},
		{"user without a name", apicall.Principal{Account: acct, Kind: KindUser}, "kms:GetSecretValue", "*", false},
		{"reader in scope", user("reader"), "kms:GetSecretValue", secretARN(acct, "app/db"), true},
		{"reader, action not granted", user("reader"), "kms:PutSecretValue", secretARN(acct, "app/db"), false},
		{"reader out of scope", user("reader"), "kms:GetSecretValue", secretARN(acct, "other/db"), false},
		{"reader lists the container", user("reader"), "kms:ListSecrets", "acs:kms:cn-hangzhou:" + acct + ":secret", true},
		{"reader, customer key without Decrypt", user("reader"), "kms:GetSecretValue", secretARN(acct, "app/cmk"), false},
		{"reader, secret policy denies", user("reader"), "kms:GetSecretValue", secretARN(acct, "denied/x"), false},
		{"reader, other account without its grant", user("reader"), "kms:GetSecretValue", secretARN(other, "their/db"), false},
		{"reader, secret type condition holds", user("reader"), "kms:GetSecretValue", secretARN(acct, "ecs/host-1"), true},
		{"none, no policies", user("none"), "kms:GetSecretValue", secretARN(acct, "app/db"), false},
		{"none, account-wide secret policy delegates", user("none"), "kms:GetSecretValue", secretARN(acct, "wide/x"), false},
		{"none, named by the secret policy", user("none"), "kms:GetSecretValue", secretARN(acct, "named/x"), true},
		{"none, unparsable secret policy", user("none"), "kms:GetSecretValue", secretARN(acct, "bad-policy1"), false},
		{"admin describes", user("admin"), "kms:DescribeSecret", secretARN(acct, "app/db"), true},
		{"admin cannot read", user("admin"), "kms:GetSecretValue", secretARN(acct, "app/db"), false},
		{"admin cannot manage users", user("admin"), "ram:CreateUser", "acs:ram::" + acct + ":user/x", false},
		{"deleted user", user("ghost"), "kms:DescribeSecret", secretARN(acct, "app/db"), false},
		{"deployment action, first root", root, "keyhold:CreateAccount", "*", true},
		{"deployment action, other root", otherRoot, "keyhold:CreateAccount", "*", false},
		{"deployment action, user", user("admin"), "keyhold:ListAccounts", "*", false},
		{"backup, first root", root, "keyhold:BackupDeployment", "acs:keyhold:cn-hangzhou:" + acct + ":deployment", true},
		{"backup, other root in its own account", otherRoot, "keyhold:BackupDeployment", "acs:keyhold:cn-hangzhou:" + other + ":deployment", false},
		{"backup, user", user("admin"), "keyhold:BackupDeployment", "acs:keyhold:cn-hangzhou:" + acct + ":deployment", false},
	}
	// The first account of this store is acct.
	s.defaultUID.Store(acct)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Authorize(ctx, tt.p, tt.action, tt.resource, req)
			if tt.allowed && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tt.allowed && !errs.Is(err, errs.KindForbidden) {
				t.Fatalf("got %v, want Forbidden", err)
			}
		})
	}
}

func TestAuthorizeCrossAccountNeedsBothSides(t *testing.T) {
	ctx := context.Background()
	owner, caller := "1111111111111111", "2222222222222222"
	grant := `{"Version":"1","Statement":[{"Effect":"Allow","Principal":{"RAM":["acs:ram::` + caller + `:user/bob"]},"Action":["kms:GetSecretValue","kms:PutSecretValue"],"Resource":"*"}]}`
	s := newAuthzService(t, fakeSecrets{owner + "/s": {typ: "Generic", key: "service-key", policy: grant}})
	_, err := s.CreateUser(ctx, caller, "bob", UserInput{})
	mustDo(t, err)
	bob := apicall.Principal{Account: caller, Kind: KindUser, Name: "bob"}
	arn := secretARN(owner, "s")

	// Secret policy allows, identity does not.
	if err := s.Authorize(ctx, bob, "kms:GetSecretValue", arn, nil); !errs.Is(err, errs.KindForbidden) {
		t.Fatalf("identity side missing: %v", err)
	}
	_, err = s.CreatePolicy(ctx, caller, "P", "", `{"Version":"1","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"}]}`)
	mustDo(t, err)
	mustDo(t, s.AttachPolicyToUser(ctx, caller, PolicyTypeCustom, "P", "bob"))
	if err := s.Authorize(ctx, bob, "kms:GetSecretValue", arn, nil); err != nil {
		t.Fatalf("both sides allow: %v", err)
	}
	// Writes never cross accounts.
	if err := s.Authorize(ctx, bob, "kms:PutSecretValue", arn, nil); !errs.Is(err, errs.KindForbidden) {
		t.Fatalf("cross-account write: %v", err)
	}
	// Detaching takes effect at once (cache invalidated).
	mustDo(t, s.DetachPolicyFromUser(ctx, caller, PolicyTypeCustom, "P", "bob"))
	if err := s.Authorize(ctx, bob, "kms:GetSecretValue", arn, nil); !errs.Is(err, errs.KindForbidden) {
		t.Fatalf("after detach: %v", err)
	}
}

func TestPolicyCacheInvalidatedFromAnotherReplica(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	_, a := e.open(t)
	// A second Service over the same store stands in for another replica.
	b := New(a.st, e.sealer)
	t.Cleanup(func() { b.Close() })
	_, err := a.CreateUser(ctx, acct, "u", UserInput{})
	mustDo(t, err)
	arn := secretARN(acct, "x")
	if err := b.Authorize(ctx, user("u"), "kms:DescribeSecret", arn, nil); !errs.Is(err, errs.KindForbidden) {
		t.Fatalf("before attach: %v", err)
	}
	mustDo(t, a.AttachPolicyToUser(ctx, acct, PolicyTypeSystem, "KeyholdReadOnly", "u"))
	waitFor(t, func() bool { return b.Authorize(ctx, user("u"), "kms:DescribeSecret", arn, nil) == nil })
}

func TestMalformedPolicyNamesTheProblem(t *testing.T) {
	ctx := context.Background()
	s := newAuthzService(t, nil)
	for doc, want := range map[string]string{
		`{"Version":"1","Statement":[{"Effect":"Permit","Action":"kms:*","Resource":"*"}]}`:                "Effect",
		`{"Version":"1","Statement":[{"Effect":"Allow","Resource":"*"}]}`:                                  "Action",
		`{"Version":"1","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*","Principal":"*"}]}`: "Principal",
		`{"Version":"1","Statement":`: "",
	} {
		_, err := s.CreatePolicy(ctx, acct, "P", "", doc)
		var ie *Error
		if !asErr(err, &ie) || ie.Code != CodeMalformedPolicy || !strings.Contains(ie.Message, want) {
			t.Errorf("%s: got %v, want MalformedPolicyDocument naming %q", doc, err, want)
		}
	}
}

func asErr(err error, target **Error) bool {
	e, ok := err.(*Error)
	if ok {
		*target = e
	}
	return ok
}

// BenchmarkAuthorizeUser20Statements is the per-request cost of deciding a
// GetSecretValue for a user whose one custom policy has 20 statements (the
// match is the last one), plus the secret facts lookup done by a fake.
func BenchmarkAuthorizeUser20Statements(b *testing.B) {
	ctx := context.Background()
	_, s := newEnv(b).open(b)
	s.UseResources(fakeSecrets{acct + "/app/db": {typ: "Generic", key: "service-key", tags: map[string]string{"env": "prod"}}}, fakeKeys{})
	if _, err := s.CreateUser(ctx, acct, "u", UserInput{}); err != nil {
		b.Fatal(err)
	}
	var stmts []string
	for i := 0; i < 19; i++ {
		stmts = append(stmts, fmt.Sprintf(`{"Effect":"Allow","Action":["kms:Describe*","kms:List*"],"Resource":"acs:kms:*:*:secret/team%d/*","Condition":{"IpAddress":{"acs:SourceIp":"10.%d.0.0/16"}}}`, i, i))
	}
	stmts = append(stmts, `{"Effect":"Allow","Action":"kms:GetSecretValue","Resource":"acs:kms:*:*:secret/app/*","Condition":{"StringEquals":{"kms:tag/env":"prod"}}}`)
	if _, err := s.CreatePolicy(ctx, acct, "Big", "", `{"Version":"1","Statement":[`+strings.Join(stmts, ",")+`]}`); err != nil {
		b.Fatal(err)
	}
	if err := s.AttachPolicyToUser(ctx, acct, PolicyTypeCustom, "Big", "u"); err != nil {
		b.Fatal(err)
	}
	p := user("u")
	arn := secretARN(acct, "app/db")
	req := &apicall.Request{Region: "cn-hangzhou", SourceIP: "127.0.0.1"}
	if err := s.Authorize(ctx, p, "kms:GetSecretValue", arn, req); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := s.Authorize(ctx, p, "kms:GetSecretValue", arn, req); err != nil {
			b.Fatal(err)
		}
	}
}
