package policy

import (
	"fmt"
	"strings"
	"testing"
)

// benchPolicy is a realistic 20-statement policy: scoped allows with
// wildcards, tag and IP conditions, and a couple of denies, none of which
// short-circuits the request below.
func benchPolicy(tb testing.TB) *Document {
	var st []string
	for i := 0; i < 16; i++ {
		st = append(st, fmt.Sprintf(`{"Effect":"Allow","Action":["kms:Describe*","kms:List*","kms:GetSecretValue"],"Resource":["acs:kms:*:*:secret/team%02d/*","acs:kms:*:*:secret/shared%02d/*"],"Condition":{"IpAddress":{"acs:SourceIp":["10.%d.0.0/16","192.168.%d.0/24"]},"StringEquals":{"kms:tag/Team":"team%02d"}}}`, i, i, i, i, i))
	}
	st = append(st,
		`{"Effect":"Deny","Action":"kms:DeleteSecret","Resource":"acs:kms:*:*:secret/prod/*"}`,
		`{"Effect":"Deny","NotAction":["kms:*","keyhold:*"],"Resource":"*","Condition":{"Bool":{"acs:SecureTransport":"false"}}}`,
		`{"Effect":"Allow","Action":"kms:GetSecretValue","Resource":"acs:kms:*:*:secret/app/*","Condition":{"DateLessThan":{"acs:CurrentTime":"2099-01-01T00:00:00Z"},"IpAddress":{"acs:SourceIp":"10.0.0.0/8"}}}`,
		`{"Effect":"Allow","Action":"kms:ListSecrets","Resource":"acs:kms:*:*:secret"}`,
	)
	return mustParse(tb, `{"Version":"1","Statement":[`+strings.Join(st, ",")+`]}`)
}

func BenchmarkEvaluate20Statements(b *testing.B) {
	d := benchPolicy(b)
	r := &Request{
		Action:    "kms:GetSecretValue",
		Resource:  "acs:kms:cn-hangzhou:1111:secret/app/db",
		Principal: "acs:ram::1111:user/app",
		Account:   "1111",
		Conditions: map[string][]string{
			"acs:SourceIp":        {"10.1.2.3"},
			"acs:CurrentTime":     {"2026-06-01T12:00:00Z"},
			"acs:SecureTransport": {"true"},
			"kms:tag/Team":        {"payments"},
		},
	}
	if got := d.Evaluate(r); got != Allow {
		b.Fatalf("benchmark request not allowed: %v", got)
	}
	b.ReportAllocs()
	for b.Loop() {
		d.Evaluate(r)
	}
}

func BenchmarkParse20Statements(b *testing.B) {
	doc := benchPolicy(b).String()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(doc); err != nil {
			b.Fatal(err)
		}
	}
}
