package server_test

// Authorization end to end: the official RAM client manages users, keys and
// policies; the official KMS SDK then acts as those users.

import (
	"context"
	"strings"
	"testing"

	"github.com/alibabacloud-go/tea/tea"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/ram"

	kms "github.com/alibabacloud-go/kms-20160120/v3/client"
)

var (
	httpACS3  = sdkMode{"ACS3/http", "http", ""}
	httpsACS3 = sdkMode{"ACS3/https", "https", ""}
)

// authzFixture is a server with the root's RAM and KMS clients.
type authzFixture struct {
	ts   *testServer
	ram  *ramClient
	root *kms.Client
}

func newAuthzFixture(t *testing.T) *authzFixture {
	ts := startServer(t)
	return &authzFixture{ts: ts, ram: ts.ram(t, ts.keyID, ts.keySecret), root: ts.sdk(t, httpACS3)}
}

// user creates a user with an access key and the given policies attached
// ("System:Name" or "Custom:Name"), and returns a KMS client acting as it.
func (f *authzFixture) user(t *testing.T, name string, policies ...string) (*kms.Client, ram.AccessKeyInCreateAccessKey) {
	t.Helper()
	f.ram.createUser(t, name)
	k := f.ram.createKey(t, name)
	for _, p := range policies {
		typ, pol, _ := strings.Cut(p, ":")
		f.ram.attachUser(t, typ, pol, name)
	}
	return f.ts.sdkWith(t, httpACS3, k.AccessKeyId, k.AccessKeySecret), k
}

func (f *authzFixture) secret(t *testing.T, name, value string, extra ...func(*kms.CreateSecretRequest)) {
	t.Helper()
	r := &kms.CreateSecretRequest{SecretName: tea.String(name), SecretData: tea.String(value), VersionId: tea.String("v1")}
	for _, e := range extra {
		e(r)
	}
	must(f.root.CreateSecret(r))
}

func getValue(c *kms.Client, name string) (string, error) {
	out, err := c.GetSecretValue(&kms.GetSecretValueRequest{SecretName: tea.String(name)})
	if err != nil {
		return "", err
	}
	return tea.StringValue(out.Body.SecretData), nil
}

func describe(c *kms.Client, name string) error {
	_, err := c.DescribeSecret(&kms.DescribeSecretRequest{SecretName: tea.String(name)})
	return err
}

func TestAuthzSecretAdministratorCannotReadValues(t *testing.T) {
	f := newAuthzFixture(t)
	f.secret(t, "app/db", "pw-one")
	admin, _ := f.user(t, "admin", "System:KeyholdSecretAdministrator")

	if err := describe(admin, "app/db"); err != nil {
		t.Fatalf("DescribeSecret: %v", err)
	}
	must(admin.ListSecrets(&kms.ListSecretsRequest{}))
	must(admin.PutSecretValue(&kms.PutSecretValueRequest{SecretName: tea.String("app/db"), VersionId: tea.String("v2"), SecretData: tea.String("pw-two")}))
	must(admin.CreateSecret(&kms.CreateSecretRequest{SecretName: tea.String("app/new"), SecretData: tea.String("x"), VersionId: tea.String("v1")}))

	_, err := getValue(admin, "app/db")
	wantCode(t, err, "Forbidden.NoPermission")

	must(admin.DeleteSecret(&kms.DeleteSecretRequest{SecretName: tea.String("app/new"), ForceDeleteWithoutRecovery: tea.String("true")}))
	// The administrator's put took effect: the root reads v2.
	if v := must(getValue(f.root, "app/db")); v != "pw-two" {
		t.Fatalf("root reads %q after the administrator's put", v)
	}
}

func TestAuthzScopedReaderAndRefusalChangesNothing(t *testing.T) {
	f := newAuthzFixture(t)
	f.secret(t, "app/db", "in-scope")
	f.secret(t, "other/db", "out-of-scope")
	f.ram.createPolicy(t, "AppRead", `{"Version":"1","Statement":[{"Effect":"Allow",
		"Action":["kms:GetSecretValue","kms:DescribeSecret"],"Resource":["acs:kms:*:*:secret/app/*"]}]}`)
	reader, _ := f.user(t, "reader", "Custom:AppRead")

	if v := must(getValue(reader, "app/db")); v != "in-scope" {
		t.Fatalf("GetSecretValue = %q", v)
	}
	_, err := getValue(reader, "other/db")
	wantCode(t, err, "Forbidden.NoPermission")
	wantCode(t, describe(reader, "other/db"), "Forbidden.NoPermission")
	_, err = reader.ListSecrets(&kms.ListSecretsRequest{})
	wantCode(t, err, "Forbidden.NoPermission")

	// Writes are refused and change nothing.
	before := snapshot(t, f.root)
	_, err = reader.PutSecretValue(&kms.PutSecretValueRequest{SecretName: tea.String("app/db"), VersionId: tea.String("evil"), SecretData: tea.String("evil")})
	wantCode(t, err, "Forbidden.NoPermission")
	_, err = reader.DeleteSecret(&kms.DeleteSecretRequest{SecretName: tea.String("app/db")})
	wantCode(t, err, "Forbidden.NoPermission")
	_, err = reader.CreateSecret(&kms.CreateSecretRequest{SecretName: tea.String("app/x"), SecretData: tea.String("x"), VersionId: tea.String("v1")})
	wantCode(t, err, "Forbidden.NoPermission")
	if after := snapshot(t, f.root); after != before {
		t.Fatalf("a refused call changed storage:\nbefore %s\nafter  %s", before, after)
	}
	if v := must(getValue(f.root, "app/db")); v != "in-scope" {
		t.Fatalf("value after refused put = %q", v)
	}

	// A user cannot manage identities without ram: permissions.
	_, k := f.user(t, "nobody")
	nr := f.ts.ram(t, k.AccessKeyId, k.AccessKeySecret)
	_, err = nr.ListUsers(at(nr, ram.CreateListUsersRequest()))
	if ramCode(err) != "Forbidden.NoPermission" {
		t.Fatalf("ListUsers by a user without policies: %v", err)
	}
	au := at(nr, ram.CreateAttachPolicyToUserRequest())
	au.PolicyType, au.PolicyName, au.UserName = "System", "KeyholdFullAccess", "nobody"
	_, err = nr.AttachPolicyToUser(au)
	if ramCode(err) != "Forbidden.NoPermission" {
		t.Fatalf("a user granted itself full access: %v", err)
	}
}

func TestAuthzExplicitDenyBeatsAllow(t *testing.T) {
	f := newAuthzFixture(t)
	f.secret(t, "app/db", "a")
	f.secret(t, "app/keys", "b")
	f.ram.createPolicy(t, "DenyDB", `{"Version":"1","Statement":[{"Effect":"Deny",
		"Action":"kms:GetSecretValue","Resource":"acs:kms:*:*:secret/app/db"}]}`)
	u, _ := f.user(t, "u1", "System:KeyholdSecretUser", "Custom:DenyDB")
	_, err := getValue(u, "app/db")
	wantCode(t, err, "Forbidden.NoPermission")
	if v := must(getValue(u, "app/keys")); v != "b" {
		t.Fatalf("GetSecretValue(app/keys) = %q", v)
	}

	// The same deny through a group applies to its members at once.
	u2, _ := f.user(t, "u2", "System:KeyholdSecretUser")
	if _, err := getValue(u2, "app/db"); err != nil {
		t.Fatalf("before the group: %v", err)
	}
	cg := at(f.ram, ram.CreateCreateGroupRequest())
	cg.GroupName = "restricted"
	must(f.ram.CreateGroup(cg))
	ag := at(f.ram, ram.CreateAttachPolicyToGroupRequest())
	ag.PolicyType, ag.PolicyName, ag.GroupName = "Custom", "DenyDB", "restricted"
	must(f.ram.AttachPolicyToGroup(ag))
	au := at(f.ram, ram.CreateAddUserToGroupRequest())
	au.GroupName, au.UserName = "restricted", "u2"
	must(f.ram.AddUserToGroup(au))
	_, err = getValue(u2, "app/db")
	wantCode(t, err, "Forbidden.NoPermission")
}

func TestAuthzInactiveAndDeletedKeysRefused(t *testing.T) {
	f := newAuthzFixture(t)
	f.secret(t, "app/db", "v")
	u, k := f.user(t, "u", "System:KeyholdSecretUser")
	must(getValue(u, "app/db"))

	up := at(f.ram, ram.CreateUpdateAccessKeyRequest())
	up.UserName, up.UserAccessKeyId, up.Status = "u", k.AccessKeyId, "Inactive"
	must(f.ram.UpdateAccessKey(up))
	_, err := getValue(u, "app/db")
	wantCode(t, err, "Forbidden.AccessKeyDisabled")

	up.Status = "Active"
	must(f.ram.UpdateAccessKey(up))
	must(getValue(u, "app/db"))

	del := at(f.ram, ram.CreateDeleteAccessKeyRequest())
	del.UserName, del.UserAccessKeyId = "u", k.AccessKeyId
	must(f.ram.DeleteAccessKey(del))
	_, err = getValue(u, "app/db")
	wantCode(t, err, "InvalidAccessKeyId.NotFound")
}

func TestAuthzConditions(t *testing.T) {
	f := newAuthzFixture(t)
	f.secret(t, "app/db", "v")
	f.secret(t, "app/prod", "p", func(r *kms.CreateSecretRequest) { r.Tags = tea.String(`[{"TagKey":"env","TagValue":"prod"}]`) })
	f.secret(t, "app/dev", "d", func(r *kms.CreateSecretRequest) { r.Tags = tea.String(`[{"TagKey":"env","TagValue":"dev"}]`) })

	cond := func(c string) string {
		return `{"Version":"1","Statement":[{"Effect":"Allow","Action":"kms:GetSecretValue","Resource":"*","Condition":` + c + `}]}`
	}
	f.ram.createPolicy(t, "FromTen", cond(`{"IpAddress":{"acs:SourceIp":"10.0.0.0/8"}}`))
	f.ram.createPolicy(t, "FromLoopback", cond(`{"IpAddress":{"acs:SourceIp":["127.0.0.0/8","::1/128"]}}`))
	f.ram.createPolicy(t, "TLSOnly", cond(`{"Bool":{"acs:SecureTransport":"true"}}`))
	f.ram.createPolicy(t, "ProdOnly", cond(`{"StringEquals":{"kms:tag/env":"prod"}}`))

	ten, _ := f.user(t, "ten", "Custom:FromTen")
	_, err := getValue(ten, "app/db")
	wantCode(t, err, "Forbidden.NoPermission")
	lo, _ := f.user(t, "lo", "Custom:FromLoopback")
	must(getValue(lo, "app/db"))

	_, k := f.user(t, "tls", "Custom:TLSOnly")
	_, err = getValue(f.ts.sdkWith(t, httpACS3, k.AccessKeyId, k.AccessKeySecret), "app/db")
	wantCode(t, err, "Forbidden.NoPermission")
	must(getValue(f.ts.sdkWith(t, httpsACS3, k.AccessKeyId, k.AccessKeySecret), "app/db"))

	prod, _ := f.user(t, "prod", "Custom:ProdOnly")
	must(getValue(prod, "app/prod"))
	_, err = getValue(prod, "app/dev")
	wantCode(t, err, "Forbidden.NoPermission")
	_, err = getValue(prod, "app/db") // no tag at all
	wantCode(t, err, "Forbidden.NoPermission")
}

func TestAuthzCustomerKeyNeedsDecrypt(t *testing.T) {
	f := newAuthzFixture(t)
	key := must(f.root.CreateKey(&kms.CreateKeyRequest{}))
	keyID := tea.StringValue(key.Body.KeyMetadata.KeyId)
	f.secret(t, "app/plain", "service-key")
	f.secret(t, "app/cmk", "customer-key", func(r *kms.CreateSecretRequest) { r.EncryptionKeyId = tea.String(keyID) })

	// Values only: KeyholdSecretUser would include kms:Decrypt.
	f.ram.createPolicy(t, "ReadValues", `{"Version":"1","Statement":[{"Effect":"Allow","Action":"kms:GetSecretValue","Resource":"acs:kms:*:*:secret/*"}]}`)
	u, _ := f.user(t, "u", "Custom:ReadValues")
	if v := must(getValue(u, "app/plain")); v != "service-key" {
		t.Fatalf("service-key secret = %q", v)
	}
	_, err := getValue(u, "app/cmk")
	wantCode(t, err, "Forbidden.NoPermission")

	f.ram.createPolicy(t, "DecryptThatKey", `{"Version":"1","Statement":[{"Effect":"Allow","Action":"kms:Decrypt",
		"Resource":"acs:kms:*:*:key/`+keyID+`"}]}`)
	f.ram.attachUser(t, "Custom", "DecryptThatKey", "u")
	if v := must(getValue(u, "app/cmk")); v != "customer-key" {
		t.Fatalf("customer-key secret = %q", v)
	}
}

func TestAuthzCrossAccountSecretPolicy(t *testing.T) {
	f := newAuthzFixture(t)
	ctx := context.Background()
	f.secret(t, "shared/db", "cross-value")
	arn := "acs:kms:cn-hangzhou:" + f.ts.Account + ":secret/shared/db"

	// Account B, its user "reader" allowed by B's administrator to read A's
	// shared secrets, and "other" with no such policy.
	var b struct {
		Account   struct{ AccountId string }
		AccessKey struct{ AccessKeyId, AccessKeySecret string }
	}
	if err := f.ts.apiClient(t, f.ts.keyID, f.ts.keySecret).Call(ctx, "2026-11-01", "CreateAccount", nil, &b); err != nil {
		t.Fatal(err)
	}
	bUID := b.Account.AccountId
	bRAM := f.ts.ram(t, b.AccessKey.AccessKeyId, b.AccessKey.AccessKeySecret)
	bRAM.createUser(t, "reader")
	rk := bRAM.createKey(t, "reader")
	bRAM.createPolicy(t, "ReadShared", `{"Version":"1","Statement":[{"Effect":"Allow",
		"Action":["kms:GetSecretValue","kms:DescribeSecret","kms:PutSecretValue"],"Resource":"acs:kms:*:`+f.ts.Account+`:secret/shared/*"}]}`)
	bRAM.attachUser(t, "Custom", "ReadShared", "reader")
	bRAM.createUser(t, "other")
	ok := bRAM.createKey(t, "other")
	reader := f.ts.sdkWith(t, httpACS3, rk.AccessKeyId, rk.AccessKeySecret)
	other := f.ts.sdkWith(t, httpACS3, ok.AccessKeyId, ok.AccessKeySecret)

	// Without a secret policy, B's identity policy alone is not enough.
	_, err := getValue(reader, arn)
	wantCode(t, err, "Forbidden.NoPermission")

	grant := `{"Version":"1","Statement":[
		{"Sid":"Enable RAM User Permissions","Effect":"Allow","Principal":{"RAM":["acs:ram::` + f.ts.Account + `:*"]},"Action":["kms:*"],"Resource":["*"]},
		{"Effect":"Allow","Principal":{"RAM":["acs:ram::` + bUID + `:user/reader","acs:ram::` + bUID + `:user/other"]},
		 "Action":["kms:GetSecretValue","kms:DescribeSecret","kms:PutSecretValue"],"Resource":["*"]}]}`
	must(f.root.SetSecretPolicy(&kms.SetSecretPolicyRequest{SecretName: tea.String("shared/db"), Policy: tea.String(grant)}))

	if v := must(getValue(reader, arn)); v != "cross-value" {
		t.Fatalf("cross-account GetSecretValue = %q", v)
	}
	if err := describe(reader, arn); err != nil {
		t.Fatalf("cross-account DescribeSecret: %v", err)
	}
	// Both sides must allow: "other" is named by the secret policy but B
	// never allowed it.
	_, err = getValue(other, arn)
	wantCode(t, err, "Forbidden.NoPermission")
	// Writes never cross accounts, whatever both policies say.
	before := snapshot(t, f.root)
	_, err = reader.PutSecretValue(&kms.PutSecretValueRequest{SecretName: tea.String(arn), VersionId: tea.String("x"), SecretData: tea.String("x")})
	wantCode(t, err, "Forbidden.NoPermission")
	if after := snapshot(t, f.root); after != before {
		t.Fatal("a refused cross-account write changed storage")
	}

	// In A itself, the account-wide statement delegates to RAM: a user of A
	// without policies still gets nothing.
	nobody, _ := f.user(t, "nobody")
	_, err = getValue(nobody, "shared/db")
	wantCode(t, err, "Forbidden.NoPermission")

	// A secret policy that does not parse is refused, naming the problem.
	_, err = f.root.SetSecretPolicy(&kms.SetSecretPolicyRequest{SecretName: tea.String("shared/db"),
		Policy: tea.String(`{"Version":"1","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"}]}`)})
	wantCode(t, err, "InvalidParameter")
	if !strings.Contains(err.Error(), "Principal") {
		t.Errorf("error %v does not name the missing Principal", err)
	}
}
