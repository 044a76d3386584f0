package iam

import (
	"context"
	"strings"
	"testing"

	"github.com/keyhold/keyhold/internal/apicall"
	"github.com/keyhold/keyhold/internal/errs"
)

// hostSecrets adds the ECS host lookup to fakeSecrets.
type hostSecrets struct {
	fakeSecrets
	hosts map[string]string // "<account>/<name>" -> InstanceId
}

func (h hostSecrets) SecretHost(_ context.Context, account, name string) (string, error) {
	if _, ok := h.fakeSecrets[account+"/"+name]; !ok {
		return "", errs.E(errs.KindSecretNotFound, "not found")
	}
	return h.hosts[account+"/"+name], nil
}

const (
	hostA = "i-aaaaaaaaaaaaaaaaaaaa"
	hostB = "i-bbbbbbbbbbbbbbbbbbbb"
)

func TestAuthorizeHostCredentials(t *testing.T) {
	ctx := context.Background()
	facts := fakeSecrets{
		acct + "/acs/ecs/a/alice":  {typ: "ECS", key: "service-key"},
		acct + "/acs/ecs/x/broken": {typ: "ECS", key: "service-key"},
		acct + "/app/db":           {typ: "Generic", key: "service-key"},
		// A secret policy naming the user may grant the read, never the host.
		acct + "/acs/ecs/b/bob": {typ: "ECS", key: "service-key", policy: `{"Version":"1","Statement":[{"Effect":"Allow","Principal":{"RAM":["acs:ram::` + acct + `:user/rotator"]},"Action":["kms:GetSecretValue","keyhold:ManageHostCredentials"],"Resource":"*"}]}`},
	}
	_, s := newEnv(t).open(t)
	s.UseResources(hostSecrets{facts, map[string]string{
		acct + "/acs/ecs/a/alice": hostA, acct + "/acs/ecs/b/bob": hostB,
	}}, fakeKeys{})
	for _, u := range []string{"creator", "hostop", "rotator", "reader", "full"} {
		_, err := s.CreateUser(ctx, acct, u, UserInput{})
		mustDo(t, err)
	}
	policies := map[string]string{
		"creator": `{"Effect":"Allow","Action":["kms:CreateSecret","kms:RotateSecret"],"Resource":"*"}`,
		"hostop": `{"Effect":"Allow","Action":["kms:CreateSecret","kms:RotateSecret"],"Resource":"*"},
			{"Effect":"Allow","Action":"keyhold:ManageHostCredentials","Resource":"acs:keyhold:*:` + acct + `:host/` + hostA + `"}`,
		"rotator": `{"Effect":"Allow","Action":["kms:RotateSecret","kms:GetSecretValue"],"Resource":"*"},
			{"Effect":"Allow","Action":"keyhold:ManageHostCredentials","Resource":"acs:keyhold:*:*:host/` + hostA + `"}`,
		"reader": `{"Effect":"Allow","Action":["kms:RotateSecret","kms:GetSecretValue"],"Resource":"*"}`,
	}
	for u, stmts := range policies {
		_, err := s.CreatePolicy(ctx, acct, "P-"+u, "", `{"Version":"1","Statement":[`+stmts+`]}`)
		mustDo(t, err)
		mustDo(t, s.AttachPolicyToUser(ctx, acct, PolicyTypeCustom, "P-"+u, u))
	}
	mustDo(t, s.AttachPolicyToUser(ctx, acct, PolicyTypeSystem, "KeyholdFullAccess", "full"))
	root := apicall.Principal{Account: acct, Kind: KindRoot, Name: RootName}

	ecsCreate := func(cfg string) apicall.Params {
		return apicall.Params{"SecretName": "acs/ecs/n", "SecretType": "ECS", "ExtendedConfig": cfg, "SecretData": "{}"}
	}
	cfgA := `{"SecretSubType":"Password","InstanceId":"` + hostA + `"}`
	cfgB := `{"SecretSubType":"Password","InstanceId":"` + hostB + `"}`
	supplied := apicall.Params{"SecretData": "v", "VersionId": "v2"}
	tests := []struct {
		name    string
		p       apicall.Principal
		action  string
		secret  string
		params  apicall.Params
		allowed bool
		denied  string // the permission a refusal names
	}{
		{"create ECS without host permission", user("creator"), "kms:CreateSecret", "acs/ecs/n", ecsCreate(cfgA), false, "keyhold:ManageHostCredentials"},
		{"create ECS on the granted host", user("hostop"), "kms:CreateSecret", "acs/ecs/n", ecsCreate(cfgA), true, ""},
		{"create ECS on another host", user("hostop"), "kms:CreateSecret", "acs/ecs/n", ecsCreate(cfgB), false, hostB},
		{"create ECS, duplicate InstanceId keys: the last counts, as in the handler", user("hostop"), "kms:CreateSecret", "acs/ecs/n",
			ecsCreate(`{"InstanceId":"` + hostA + `","InstanceId":"` + hostB + `"}`), false, hostB},
		{"create ECS, malformed ExtendedConfig is left to the handler", user("creator"), "kms:CreateSecret", "acs/ecs/n", ecsCreate(`{"InstanceId":`), true, ""},
		{"create ECS, InstanceId not of host form is left to the handler", user("creator"), "kms:CreateSecret", "acs/ecs/n", ecsCreate(`{"InstanceId":"i-AAAAAAAAAAAAAAAAAAAA"}`), true, ""},
		{"create ECS, InstanceId with a wildcard is left to the handler", user("creator"), "kms:CreateSecret", "acs/ecs/n", ecsCreate(`{"InstanceId":"i-*"}`), true, ""},
		{"create ECS, InstanceId not a string is left to the handler", user("creator"), "kms:CreateSecret", "acs/ecs/n", ecsCreate(`{"InstanceId":7}`), true, ""},
		{"create Generic needs no host permission", user("creator"), "kms:CreateSecret", "app/n", apicall.Params{"SecretData": "x", "ExtendedConfig": cfgA}, true, ""},
		{"root creates ECS", root, "kms:CreateSecret", "acs/ecs/n", ecsCreate(cfgB), true, ""},
		{"full access creates ECS", user("full"), "kms:CreateSecret", "acs/ecs/n", ecsCreate(cfgB), true, ""},

		{"rotate generated, no extra permission", user("creator"), "kms:RotateSecret", "acs/ecs/a/alice", apicall.Params{"VersionId": "v2"}, true, ""},
		{"rotate supplied without GetSecretValue", user("hostop"), "kms:RotateSecret", "acs/ecs/a/alice", supplied, false, "kms:GetSecretValue"},
		{"rotate supplied empty SecretData still needs GetSecretValue", user("hostop"), "kms:RotateSecret", "acs/ecs/a/alice", apicall.Params{"SecretData": ""}, false, "kms:GetSecretValue"},
		{"rotate supplied without host permission", user("reader"), "kms:RotateSecret", "acs/ecs/a/alice", supplied, false, "keyhold:ManageHostCredentials"},
		{"rotate supplied with both", user("rotator"), "kms:RotateSecret", "acs/ecs/a/alice", supplied, true, ""},
		{"rotate supplied, secret policy does not grant the host", user("rotator"), "kms:RotateSecret", "acs/ecs/b/bob", supplied, false, hostB},
		{"rotate supplied, ECS secret whose host is unknown", user("rotator"), "kms:RotateSecret", "acs/ecs/x/broken", supplied, false, "cannot be determined"},
		{"rotate supplied Generic needs GetSecretValue only", user("reader"), "kms:RotateSecret", "app/db", supplied, true, ""},
		{"rotate supplied Generic without GetSecretValue", user("creator"), "kms:RotateSecret", "app/db", supplied, false, "kms:GetSecretValue"},
		{"rotate supplied, missing secret", user("reader"), "kms:RotateSecret", "acs/ecs/nope", supplied, true, ""},
		{"root rotates supplied", root, "kms:RotateSecret", "acs/ecs/b/bob", supplied, true, ""},
		{"full access rotates supplied", user("full"), "kms:RotateSecret", "acs/ecs/b/bob", supplied, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &apicall.Request{Region: "cn-hangzhou", Params: tt.params}
			err := s.Authorize(ctx, tt.p, tt.action, secretARN(acct, tt.secret), r)
			if tt.allowed {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errs.Is(err, errs.KindForbidden) {
				t.Fatalf("got %v, want Forbidden", err)
			}
			if !strings.Contains(err.Error(), tt.denied) {
				t.Fatalf("refusal %q does not name %s", err, tt.denied)
			}
		})
	}

	// Wired without the host lookup, a supplied-value rotation of an ECS
	// secret is refused (fails closed), a generated one is not.
	s.UseResources(facts, fakeKeys{})
	r := &apicall.Request{Region: "cn-hangzhou", Params: supplied}
	if err := s.Authorize(ctx, user("rotator"), "kms:RotateSecret", secretARN(acct, "acs/ecs/a/alice"), r); !errs.Is(err, errs.KindForbidden) {
		t.Fatalf("without SecretHosts: %v", err)
	}
	r.Params = apicall.Params{"VersionId": "v3"}
	if err := s.Authorize(ctx, user("rotator"), "kms:RotateSecret", secretARN(acct, "acs/ecs/a/alice"), r); err != nil {
		t.Fatalf("generated rotation without SecretHosts: %v", err)
	}
}
