package policy

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

func TestSystemPoliciesParse(t *testing.T) {
	all := System()
	if len(all) < 11 {
		t.Fatalf("%d system policies", len(all))
	}
	seen := map[string]bool{}
	for _, p := range all {
		if seen[p.Name] {
			t.Errorf("duplicate %s", p.Name)
		}
		seen[p.Name] = true
		if p.Description == "" || p.Source == "" {
			t.Errorf("%s: missing description or source", p.Name)
		}
		if _, err := ParseIdentity(p.Document); err != nil {
			t.Errorf("%s: %v", p.Name, err)
		}
		if !json.Valid([]byte(p.Document)) || p.Parsed.String() != p.Document {
			t.Errorf("%s: document text not kept", p.Name)
		}
		got, ok := SystemPolicy(p.Name)
		if !ok || got.Document != p.Document {
			t.Errorf("SystemPolicy(%q) lookup failed", p.Name)
		}
	}
	if _, ok := SystemPolicy("NoSuchPolicy"); ok {
		t.Error("unknown name found")
	}
	if _, ok := SystemPolicy("keyholdsecretadministrator"); ok {
		t.Error("names are exact")
	}
}

func TestSystemPolicyPermissions(t *testing.T) {
	const (
		secret = "acs:kms:cn-hangzhou:1111:secret/app/db"
		ecs    = "acs:kms:cn-hangzhou:1111:secret/acs/ecs/i-123/root"
		ctr    = "acs:kms:cn-hangzhou:1111:secret"
		key    = "acs:kms:cn-hangzhou:1111:key/key-1"
	)
	type check struct {
		action, resource string
		allow            bool
	}
	cases := map[string][]check{
		"KeyholdSecretAdministrator": {
			{"kms:DescribeSecret", secret, true}, {"kms:PutSecretValue", secret, true}, {"kms:DeleteSecret", secret, true},
			{"kms:ListSecrets", ctr, true}, {"kms:CreateSecret", ctr, true}, {"kms:UpdateSecretVersionStage", secret, true},
			{"kms:UpdateSecretRotationPolicy", secret, true}, {"kms:RestoreSecret", secret, true}, {"kms:RotateSecret", secret, true},
			{"kms:GetRandomPassword", "*", true}, {"kms:GetSecretPolicy", secret, true}, {"kms:SetSecretPolicy", secret, true},
			{"kms:TagResources", secret, true}, {"kms:ListTagResources", secret, true}, {"kms:ListSecretVersionIds", secret, true},
			{"kms:GetSecretValue", secret, false}, {"kms:Decrypt", key, false}, {"kms:GenerateDataKey", key, false},
			{"ram:CreateUser", "*", false}, {"keyhold:ListAudit", "*", false},
		},
		"KeyholdSecretUser": {
			{"kms:GetSecretValue", secret, true}, {"kms:Decrypt", key, true}, {"kms:ListSecrets", ctr, true}, {"kms:DescribeSecret", secret, true},
			{"kms:PutSecretValue", secret, false}, {"kms:DeleteSecret", secret, false}, {"kms:Encrypt", key, false},
		},
		"KeyholdReadOnly": {
			{"kms:ListSecrets", ctr, true}, {"kms:DescribeSecret", secret, true}, {"kms:DescribeKey", key, true},
			{"kms:GetSecretValue", secret, false}, {"kms:Decrypt", key, false}, {"kms:PutSecretValue", secret, false},
		},
		"KeyholdFullAccess": {
			{"kms:GetSecretValue", secret, true}, {"ram:CreateUser", "*", true}, {"keyhold:ListHosts", "*", true}, {"sts:AssumeRole", "*", false},
		},
		"KeyholdBastionAccess": {
			{"kms:ListSecrets", ctr, true}, {"kms:GetSecretValue", ecs, true}, {"kms:DescribeSecret", ecs, true}, {"kms:Decrypt", key, true},
			{"keyhold:ListHosts", "*", true}, {"keyhold:DescribeHost", "acs:keyhold:cn-hangzhou:1111:host/i-123", true},
			{"kms:GetSecretValue", secret, false}, {"kms:ListSecrets", secret, false}, {"kms:PutSecretValue", ecs, false},
			{"keyhold:StartSession", "*", false},
		},
		"AliyunKMSFullAccess": {
			{"kms:GetSecretValue", secret, true}, {"kms:CreateKey", "acs:kms:cn-hangzhou:1111:key", true}, {"ram:CreateUser", "*", false},
		},
		"AliyunKMSReadOnlyAccess": {
			{"kms:ListSecrets", ctr, true}, {"kms:GetSecretPolicy", secret, true}, {"kms:GetSecretValue", secret, false}, {"kms:Decrypt", key, false},
		},
		// The real service's secret administrator can read values: kms:* on secret*.
		"AliyunKMSSecretAdminAccess": {
			{"kms:GetSecretValue", secret, true}, {"kms:ListSecrets", ctr, true}, {"kms:GetRandomPassword", "*", true}, {"kms:Decrypt", key, false},
		},
		"AliyunKMSSecretUserAccess": {
			{"kms:GetSecretValue", secret, true}, {"kms:DescribeSecret", secret, true}, {"kms:ListSecrets", ctr, false}, {"kms:Decrypt", key, false},
		},
		"AliyunKMSCryptoAdminAccess": {
			{"kms:CreateKey", "acs:kms:cn-hangzhou:1111:key", true}, {"kms:Decrypt", key, true}, {"kms:GetSecretValue", secret, false},
		},
		"AliyunKMSCryptoUserAccess": {
			{"kms:Decrypt", key, true}, {"kms:Encrypt", key, true}, {"kms:CreateKey", "acs:kms:cn-hangzhou:1111:key", false}, {"kms:GetSecretValue", secret, false},
		},
	}
	for name, checks := range cases {
		p, ok := SystemPolicy(name)
		if !ok {
			t.Errorf("missing system policy %s", name)
			continue
		}
		for _, c := range checks {
			got := p.Parsed.Evaluate(&Request{Action: c.action, Resource: c.resource, Account: "1111", Principal: "acs:ram::1111:user/u"})
			if (got == Allow) != c.allow {
				t.Errorf("%s: %s on %s = %v, want allow=%v", name, c.action, c.resource, got, c.allow)
			}
		}
	}
	for _, p := range System() {
		if strings.HasPrefix(p.Name, "Keyhold") {
			if _, tested := cases[p.Name]; !tested {
				t.Errorf("%s has no permission checks", p.Name)
			}
		}
	}
}

// docs/policies.md shows every system policy in full; keep it in step.
func TestSystemPoliciesDocumented(t *testing.T) {
	b, err := os.ReadFile("../../docs/policies.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, p := range System() {
		if !strings.Contains(doc, "### "+p.Name+"\n") || !strings.Contains(doc, p.Document) {
			t.Errorf("docs/policies.md does not show %s in full", p.Name)
		}
	}
}
