package policy

import "testing"

func TestSmoke(t *testing.T) {
	for _, p := range System() {
		if p.Parsed == nil {
			t.Fatal(p.Name)
		}
	}
	a, _ := SystemPolicy("KeyholdSecretAdministrator")
	r := &Request{Action: "kms:GetSecretValue", Resource: "acs:kms:cn-hangzhou:1:secret/x"}
	if a.Parsed.Evaluate(r) != NoMatch {
		t.Fatal("admin reads")
	}
	r.Action = "kms:describesecret"
	if a.Parsed.Evaluate(r) != Allow {
		t.Fatal("admin describe")
	}
}
