package policy

import (
	"errors"
	"testing"

	"github.com/keyhold/keyhold/internal/errs"
)

var fuzzSeeds = []string{
	`{"Version":"1","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"}]}`,
	`{"Version":"1","Statement":[{"Effect":"Deny","NotAction":["kms:List*"],"NotResource":"acs:kms:*:*:secret/a?c/*","Condition":{"IpAddress":{"acs:SourceIp":["10.0.0.0/8","::1"]},"DateLessThan":{"acs:CurrentTime":"2026-01-01T00:00:00Z"}}}]}`,
	`{"Version":"1","Statement":[{"Sid":"x","Effect":"Allow","Principal":{"RAM":["acs:ram::1:root","2","acs:ram::3:user/u","acs:ram::4:*"]},"Action":"kms:GetSecretValue","Resource":"*","Condition":{"StringLike":{"kms:tag/Env":"p*"},"NumericLessThan":{"kms:n":3},"Bool":{"acs:SecureTransport":true}}}]}`,
	`{"Version":"1","Statement":[]}`,
	`{"Version":"1","Version":"1"}`,
	`[[[[[[[[`,
	"",
}

// FuzzParse: Parse never panics, and either accepts (and then the document
// evaluates without panicking and keeps its text) or fails with
// KindInvalidParameter.
func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, doc string) {
		for _, parse := range []func(string) (*Document, error){Parse, ParseIdentity, ParseResource} {
			d, err := parse(doc)
			if err != nil {
				var e *errs.Error
				if !errors.As(err, &e) || e.Kind != errs.KindInvalidParameter || e.Message == "" {
					t.Fatalf("error %v is not a KindInvalidParameter with a message", err)
				}
				continue
			}
			if d.String() != doc {
				t.Fatal("document text not kept")
			}
			r := &Request{Action: "kms:GetSecretValue", Resource: "acs:kms:r:1:secret/a", Principal: "acs:ram::1:root", Account: "1",
				Conditions: map[string][]string{"acs:SourceIp": {"10.0.0.1"}, "acs:CurrentTime": {"2025-01-01T00:00:00Z"}}}
			d.Evaluate(r)
			d.EvaluateResource(r)
		}
	})
}

// FuzzEvaluate: for fixed policies and arbitrary request fields, evaluation
// never panics, is deterministic, and an explicit Deny document always wins
// in Decide.
func FuzzEvaluate(f *testing.F) {
	f.Add("kms:GetSecretValue", "acs:kms:cn-hangzhou:1:secret/app/db", "acs:ram::1:user/u", "1", "10.0.0.1", "2025-01-01T00:00:00Z", "prod")
	f.Add("KMS:getsecretvalue", "ACS:KMS:r:1:secret/acs/ecs/x", "acs:ram::2:root", "2", "::ffff:10.1.1.1", "bad", "")
	f.Add("", "", "", "", "", "", "\xff")
	docs := make([]*Document, 0, len(fuzzSeeds))
	for _, s := range fuzzSeeds {
		if d, err := Parse(s); err == nil {
			docs = append(docs, d)
		}
	}
	for _, p := range System() {
		docs = append(docs, p.Parsed)
	}
	denyAll, err := Parse(`{"Version":"1","Statement":[{"Effect":"Deny","Action":"*","Resource":"*"}]}`)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, action, resource, principal, account, ip, now, tag string) {
		r := &Request{Action: action, Resource: resource, Principal: principal, Account: account,
			Conditions: map[string][]string{"acs:SourceIp": {ip}, "acs:CurrentTime": {now}, "kms:tag/Env": {tag}, "kms:n": {tag}}}
		for _, d := range docs {
			a, b := d.Evaluate(r), d.Evaluate(r)
			if a != b {
				t.Fatal("evaluation not deterministic")
			}
			d.EvaluateResource(r)
		}
		if got := Decide(r, append(docs, denyAll)...); got != Deny {
			t.Fatalf("explicit deny lost: %v", got)
		}
		DecideWithResource(r, "1", docs[len(docs)-1], docs...)

		// The literal pre-checks in matchResource must never change the
		// matcher's answer: use one input as a pattern for another. The
		// matcher is O(len(pattern)·len(subject)), so the fuzzer's largest
		// inputs are skipped rather than letting it stall on them.
		if len(resource)*len(principal) > 1<<20 {
			return
		}
		pat := compileResource(resource)
		subject := foldService(principal)
		if got, want := pat.matchResource(subject), pat.any || glob(pat.text, subject, false); got != want {
			t.Fatalf("matchResource(%q, %q) = %v, glob says %v", pat.text, subject, got, want)
		}
	})
}
