package policy

import (
	"fmt"
	"strings"
	"testing"
)

const (
	secretARN = "acs:kms:cn-hangzhou:1111:secret/app/db"
	container = "acs:kms:cn-hangzhou:1111:secret"
)

func mustParse(t testing.TB, doc string) *Document {
	t.Helper()
	d, err := Parse(doc)
	if err != nil {
		t.Fatalf("Parse(%s): %v", doc, err)
	}
	return d
}

// stmt builds a one-statement identity policy.
func stmt(effect, action, resource, cond string) string {
	s := fmt.Sprintf(`{"Effect":%q,"Action":%s,"Resource":%s`, effect, action, resource)
	if cond != "" {
		s += `,"Condition":` + cond
	}
	return `{"Version":"1","Statement":[` + s + `}]}`
}

func TestEvaluateActionsAndResources(t *testing.T) {
	cases := []struct {
		name             string
		action, resource string // policy elements, JSON
		reqAct, reqRes   string
		want             Effect
	}{
		{"exact", `"kms:GetSecretValue"`, `"*"`, "kms:GetSecretValue", secretARN, Allow},
		{"other action", `"kms:GetSecretValue"`, `"*"`, "kms:PutSecretValue", secretARN, NoMatch},
		{"action array", `["kms:DescribeSecret","kms:GetSecretValue"]`, `"*"`, "kms:GetSecretValue", secretARN, Allow},
		{"star suffix", `"kms:Describe*"`, `"*"`, "kms:DescribeSecret", secretARN, Allow},
		{"star suffix no match", `"kms:Describe*"`, `"*"`, "kms:GetSecretValue", secretARN, NoMatch},
		{"star alone", `"*"`, `"*"`, "ram:CreateUser", "*", Allow},
		{"service star", `"kms:*"`, `"*"`, "ram:CreateUser", "*", NoMatch},
		{"star in middle", `"kms:*Secret"`, `"*"`, "kms:DeleteSecret", secretARN, Allow},
		{"star in middle no match", `"kms:*Secret"`, `"*"`, "kms:DeleteSecretX", secretARN, NoMatch},
		{"question mark", `"kms:?etSecretValue"`, `"*"`, "kms:GetSecretValue", secretARN, Allow},
		{"question mark one char only", `"kms:?SecretValue"`, `"*"`, "kms:GetSecretValue", secretARN, NoMatch},
		{"action case-insensitive (request)", `"kms:GetSecretValue"`, `"*"`, "KMS:getsecretvalue", secretARN, Allow},
		{"action case-insensitive (policy)", `"KMS:GETSECRETVALUE"`, `"*"`, "kms:GetSecretValue", secretARN, Allow},
		{"action wildcard case-insensitive", `"kms:list*"`, `"*"`, "kms:ListSecrets", container, Allow},
		{"resource exact", `"kms:*"`, `"` + secretARN + `"`, "kms:GetSecretValue", secretARN, Allow},
		{"resource prefix wildcard", `"kms:*"`, `"acs:kms:*:*:secret/app/*"`, "kms:GetSecretValue", secretARN, Allow},
		{"resource out of scope", `"kms:*"`, `"acs:kms:*:*:secret/app/*"`, "kms:GetSecretValue", "acs:kms:cn-hangzhou:1111:secret/other/db", NoMatch},
		{"secret/* does not cover the container", `"kms:*"`, `"acs:kms:*:*:secret/*"`, "kms:ListSecrets", container, NoMatch},
		{"container matched exactly", `"kms:ListSecrets"`, `"acs:kms:*:*:secret"`, "kms:ListSecrets", container, Allow},
		{"secret* covers container and secrets", `"kms:*"`, `"acs:kms:*:*:secret*"`, "kms:ListSecrets", container, Allow},
		{"resource path case-sensitive", `"kms:*"`, `"acs:kms:*:*:secret/App/*"`, "kms:GetSecretValue", secretARN, NoMatch},
		{"resource service case-insensitive (policy)", `"kms:*"`, `"acs:KMS:*:*:secret/app/*"`, "kms:GetSecretValue", secretARN, Allow},
		{"resource service case-insensitive (request)", `"kms:*"`, `"acs:kms:*:*:secret/app/*"`, "kms:GetSecretValue", "ACS:Kms:cn-hangzhou:1111:secret/app/db", Allow},
		{"resource account scoped", `"kms:*"`, `"acs:kms:*:2222:secret/*"`, "kms:GetSecretValue", secretARN, NoMatch},
		{"resource region ?", `"kms:*"`, `"acs:kms:cn-hangzho?:1111:secret/app/db"`, "kms:GetSecretValue", secretARN, Allow},
		{"resource array second matches", `"kms:*"`, `["acs:kms:*:*:key/*","acs:kms:*:*:secret/app/*"]`, "kms:GetSecretValue", secretARN, Allow},
		{"star crosses slashes", `"kms:*"`, `"acs:kms:*:*:secret/*"`, "kms:GetSecretValue", "acs:kms:r:1:secret/a/b/c", Allow},
		{"? matches one UTF-8 character", `"kms:*"`, `"acs:kms:*:*:secret/caf?"`, "kms:GetSecretValue", "acs:kms:r:1:secret/café", Allow},
		{"empty request action", `"kms:*"`, `"*"`, "", secretARN, NoMatch},
		{"keyhold actions", `["keyhold:ListHosts"]`, `"*"`, "keyhold:ListHosts", "acs:keyhold:r:1:host/i-1", Allow},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := mustParse(t, stmt("Allow", c.action, c.resource, ""))
			got := d.Evaluate(&Request{Action: c.reqAct, Resource: c.reqRes})
			if got != c.want {
				t.Fatalf("got %v, want %v", got, c.want)
			}
		})
	}
}

func TestNotActionNotResource(t *testing.T) {
	notAct := mustParse(t, `{"Version":"1","Statement":[{"Effect":"Allow","NotAction":["ram:*","kms:GetSecretValue"],"Resource":"*"}]}`)
	notRes := mustParse(t, `{"Version":"1","Statement":[{"Effect":"Allow","Action":"kms:*","NotResource":"acs:kms:*:*:secret/prod/*"}]}`)
	denyNot := mustParse(t, `{"Version":"1","Statement":[
		{"Effect":"Allow","Action":"*","Resource":"*"},
		{"Effect":"Deny","NotAction":"kms:List*","Resource":"*"}]}`)
	cases := []struct {
		d    *Document
		act  string
		res  string
		want Effect
	}{
		{notAct, "kms:DescribeSecret", secretARN, Allow},
		{notAct, "kms:GetSecretValue", secretARN, NoMatch},
		{notAct, "kms:getsecretvalue", secretARN, NoMatch},
		{notAct, "ram:CreateUser", "*", NoMatch},
		{notRes, "kms:GetSecretValue", secretARN, Allow},
		{notRes, "kms:GetSecretValue", "acs:kms:cn-hangzhou:1111:secret/prod/db", NoMatch},
		{denyNot, "kms:ListSecrets", container, Allow},
		{denyNot, "kms:GetSecretValue", secretARN, Deny},
	}
	for i, c := range cases {
		if got := c.d.Evaluate(&Request{Action: c.act, Resource: c.res}); got != c.want {
			t.Errorf("%d: %s on %s: got %v, want %v", i, c.act, c.res, got, c.want)
		}
	}
}

func TestConditions(t *testing.T) {
	cases := []struct {
		name string
		cond string
		req  map[string][]string
		want bool
	}{
		// Strings.
		{"StringEquals hit", `{"StringEquals":{"kms:SecretType":"Generic"}}`, map[string][]string{"kms:SecretType": {"Generic"}}, true},
		{"StringEquals case-sensitive", `{"StringEquals":{"kms:SecretType":"Generic"}}`, map[string][]string{"kms:SecretType": {"generic"}}, false},
		{"StringEquals values are OR", `{"StringEquals":{"kms:SecretType":["Rds","Generic"]}}`, map[string][]string{"kms:SecretType": {"Generic"}}, true},
		{"StringEquals absent key false", `{"StringEquals":{"kms:SecretType":"Generic"}}`, nil, false},
		{"StringEquals empty value list is absent", `{"StringEquals":{"kms:SecretType":"Generic"}}`, map[string][]string{"kms:SecretType": {}}, false},
		{"condition key case-insensitive", `{"StringEquals":{"KMS:secrettype":"Generic"}}`, map[string][]string{"kms:SecretType": {"Generic"}}, true},
		{"StringNotEquals hit", `{"StringNotEquals":{"kms:SecretType":"Rds"}}`, map[string][]string{"kms:SecretType": {"Generic"}}, true},
		{"StringNotEquals miss", `{"StringNotEquals":{"kms:SecretType":["Rds","Generic"]}}`, map[string][]string{"kms:SecretType": {"Generic"}}, false},
		{"StringNotEquals absent key true", `{"StringNotEquals":{"kms:SecretType":"Rds"}}`, nil, true},
		{"StringEqualsIgnoreCase", `{"StringEqualsIgnoreCase":{"kms:tag/Env":"PROD"}}`, map[string][]string{"kms:tag/Env": {"prod"}}, true},
		{"StringNotEqualsIgnoreCase", `{"StringNotEqualsIgnoreCase":{"kms:tag/Env":"PROD"}}`, map[string][]string{"kms:tag/Env": {"prod"}}, false},
		{"StringLike", `{"StringLike":{"kms:tag/Team":"pay*"}}`, map[string][]string{"kms:tag/Team": {"payments"}}, true},
		{"StringLike ?", `{"StringLike":{"kms:tag/Team":"a?c"}}`, map[string][]string{"kms:tag/Team": {"abbc"}}, false},
		{"StringLike case-sensitive", `{"StringLike":{"kms:tag/Team":"pay*"}}`, map[string][]string{"kms:tag/Team": {"Payments"}}, false},
		{"StringNotLike", `{"StringNotLike":{"kms:tag/Team":"pay*"}}`, map[string][]string{"kms:tag/Team": {"ops"}}, true},
		{"StringNotLike absent true", `{"StringNotLike":{"kms:tag/Team":"pay*"}}`, nil, true},
		{"tag condition other tag key", `{"StringEquals":{"kms:tag/Env":"prod"}}`, map[string][]string{"kms:tag/Team": {"prod"}}, false},
		{"multi-valued request any", `{"StringEquals":{"kms:tag/Env":"prod"}}`, map[string][]string{"kms:tag/Env": {"dev", "prod"}}, true},
		// Numbers.
		{"NumericEquals", `{"NumericEquals":{"kms:RecoveryWindowInDays":7}}`, map[string][]string{"kms:RecoveryWindowInDays": {"7"}}, true},
		{"NumericEquals string value", `{"NumericEquals":{"kms:RecoveryWindowInDays":"7.0"}}`, map[string][]string{"kms:RecoveryWindowInDays": {"7"}}, true},
		{"NumericNotEquals", `{"NumericNotEquals":{"kms:RecoveryWindowInDays":7}}`, map[string][]string{"kms:RecoveryWindowInDays": {"30"}}, true},
		{"NumericLessThan true", `{"NumericLessThan":{"kms:N":10}}`, map[string][]string{"kms:N": {"9"}}, true},
		{"NumericLessThan equal is false", `{"NumericLessThan":{"kms:N":10}}`, map[string][]string{"kms:N": {"10"}}, false},
		{"NumericLessThanEquals", `{"NumericLessThanEquals":{"kms:N":10}}`, map[string][]string{"kms:N": {"10"}}, true},
		{"NumericGreaterThan", `{"NumericGreaterThan":{"kms:N":10}}`, map[string][]string{"kms:N": {"10.5"}}, true},
		{"NumericGreaterThanEquals false", `{"NumericGreaterThanEquals":{"kms:N":10}}`, map[string][]string{"kms:N": {"-3"}}, false},
		{"Numeric request not a number", `{"NumericLessThan":{"kms:N":10}}`, map[string][]string{"kms:N": {"ten"}}, false},
		{"Numeric absent", `{"NumericLessThan":{"kms:N":10}}`, nil, false},
		// Dates.
		{"DateLessThan before", `{"DateLessThan":{"acs:CurrentTime":"2026-01-01T00:00:00Z"}}`, map[string][]string{"acs:CurrentTime": {"2025-12-31T23:59:59Z"}}, true},
		{"DateLessThan at bound false", `{"DateLessThan":{"acs:CurrentTime":"2026-01-01T00:00:00Z"}}`, map[string][]string{"acs:CurrentTime": {"2026-01-01T00:00:00Z"}}, false},
		{"DateLessThanEquals at bound", `{"DateLessThanEquals":{"acs:CurrentTime":"2026-01-01T00:00:00Z"}}`, map[string][]string{"acs:CurrentTime": {"2026-01-01T00:00:00Z"}}, true},
		{"DateGreaterThan offset zone", `{"DateGreaterThan":{"acs:CurrentTime":"2026-01-01T08:00:00+08:00"}}`, map[string][]string{"acs:CurrentTime": {"2026-01-01T00:00:01Z"}}, true},
		{"DateGreaterThan same instant false", `{"DateGreaterThan":{"acs:CurrentTime":"2026-01-01T08:00:00+08:00"}}`, map[string][]string{"acs:CurrentTime": {"2026-01-01T00:00:00Z"}}, false},
		{"DateGreaterThanEquals same instant", `{"DateGreaterThanEquals":{"acs:CurrentTime":"2026-01-01T08:00:00+08:00"}}`, map[string][]string{"acs:CurrentTime": {"2026-01-01T00:00:00Z"}}, true},
		{"DateEquals", `{"DateEquals":{"acs:CurrentTime":"2026-01-01T00:00:00Z"}}`, map[string][]string{"acs:CurrentTime": {"2026-01-01T00:00:00.000Z"}}, true},
		{"DateNotEquals", `{"DateNotEquals":{"acs:CurrentTime":"2026-01-01T00:00:00Z"}}`, map[string][]string{"acs:CurrentTime": {"2026-01-02T00:00:00Z"}}, true},
		{"Date absent false", `{"DateLessThan":{"acs:CurrentTime":"2026-01-01T00:00:00Z"}}`, nil, false},
		{"Date malformed request false", `{"DateLessThan":{"acs:CurrentTime":"2026-01-01T00:00:00Z"}}`, map[string][]string{"acs:CurrentTime": {"yesterday"}}, false},
		// Bool.
		{"Bool true", `{"Bool":{"acs:SecureTransport":"true"}}`, map[string][]string{"acs:SecureTransport": {"true"}}, true},
		{"Bool JSON boolean", `{"Bool":{"acs:SecureTransport":true}}`, map[string][]string{"acs:SecureTransport": {"true"}}, true},
		{"Bool false request", `{"Bool":{"acs:SecureTransport":"true"}}`, map[string][]string{"acs:SecureTransport": {"false"}}, false},
		{"Bool case-insensitive", `{"Bool":{"acs:SecureTransport":"TRUE"}}`, map[string][]string{"acs:SecureTransport": {"True"}}, true},
		{"Bool absent false", `{"Bool":{"acs:SecureTransport":"false"}}`, nil, false},
		// IP.
		{"IpAddress v4 CIDR", `{"IpAddress":{"acs:SourceIp":"10.0.0.0/8"}}`, map[string][]string{"acs:SourceIp": {"10.1.2.3"}}, true},
		{"IpAddress v4 outside", `{"IpAddress":{"acs:SourceIp":"10.0.0.0/8"}}`, map[string][]string{"acs:SourceIp": {"11.0.0.1"}}, false},
		{"IpAddress single IP", `{"IpAddress":{"acs:SourceIp":["192.168.0.0/16","172.16.215.218"]}}`, map[string][]string{"acs:SourceIp": {"172.16.215.218"}}, true},
		{"IpAddress single IP neighbour", `{"IpAddress":{"acs:SourceIp":"172.16.215.218"}}`, map[string][]string{"acs:SourceIp": {"172.16.215.219"}}, false},
		{"IpAddress unmasked CIDR", `{"IpAddress":{"acs:SourceIp":"10.1.2.3/24"}}`, map[string][]string{"acs:SourceIp": {"10.1.2.200"}}, true},
		{"IpAddress v6 CIDR", `{"IpAddress":{"acs:SourceIp":"2001:db8::/32"}}`, map[string][]string{"acs:SourceIp": {"2001:db8:1::5"}}, true},
		{"IpAddress v6 outside", `{"IpAddress":{"acs:SourceIp":"2001:db8::/32"}}`, map[string][]string{"acs:SourceIp": {"2001:db9::5"}}, false},
		{"IpAddress v6 single", `{"IpAddress":{"acs:SourceIp":"::1"}}`, map[string][]string{"acs:SourceIp": {"::1"}}, true},
		{"IpAddress v4-mapped request", `{"IpAddress":{"acs:SourceIp":"10.0.0.0/8"}}`, map[string][]string{"acs:SourceIp": {"::ffff:10.9.9.9"}}, true},
		{"IpAddress v4 policy, v6 request", `{"IpAddress":{"acs:SourceIp":"0.0.0.0/0"}}`, map[string][]string{"acs:SourceIp": {"2001:db8::1"}}, false},
		{"IpAddress malformed request", `{"IpAddress":{"acs:SourceIp":"0.0.0.0/0"}}`, map[string][]string{"acs:SourceIp": {"localhost"}}, false},
		{"IpAddress absent false", `{"IpAddress":{"acs:SourceIp":"0.0.0.0/0"}}`, nil, false},
		{"NotIpAddress outside", `{"NotIpAddress":{"acs:SourceIp":"10.0.0.0/8"}}`, map[string][]string{"acs:SourceIp": {"8.8.8.8"}}, true},
		{"NotIpAddress inside", `{"NotIpAddress":{"acs:SourceIp":"10.0.0.0/8"}}`, map[string][]string{"acs:SourceIp": {"10.0.0.1"}}, false},
		{"NotIpAddress absent true", `{"NotIpAddress":{"acs:SourceIp":"10.0.0.0/8"}}`, nil, true},
		// Combination: keys and operators AND.
		{"two operators both hold", `{"IpAddress":{"acs:SourceIp":"10.0.0.0/8"},"Bool":{"acs:SecureTransport":"true"}}`,
			map[string][]string{"acs:SourceIp": {"10.0.0.1"}, "acs:SecureTransport": {"true"}}, true},
		{"two operators one fails", `{"IpAddress":{"acs:SourceIp":"10.0.0.0/8"},"Bool":{"acs:SecureTransport":"true"}}`,
			map[string][]string{"acs:SourceIp": {"10.0.0.1"}, "acs:SecureTransport": {"false"}}, false},
		{"two keys one operator AND", `{"StringEquals":{"kms:tag/Env":"prod","kms:tag/Team":"pay"}}`,
			map[string][]string{"kms:tag/Env": {"prod"}, "kms:tag/Team": {"ops"}}, false},
		{"time window", `{"DateGreaterThan":{"acs:CurrentTime":"2026-01-01T00:00:00Z"},"DateLessThan":{"acs:CurrentTime":"2026-02-01T00:00:00Z"}}`,
			map[string][]string{"acs:CurrentTime": {"2026-01-15T12:00:00Z"}}, true},
		{"time window after", `{"DateGreaterThan":{"acs:CurrentTime":"2026-01-01T00:00:00Z"},"DateLessThan":{"acs:CurrentTime":"2026-02-01T00:00:00Z"}}`,
			map[string][]string{"acs:CurrentTime": {"2026-02-15T12:00:00Z"}}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := mustParse(t, stmt("Allow", `"kms:*"`, `"*"`, c.cond))
			got := d.Evaluate(&Request{Action: "kms:GetSecretValue", Resource: secretARN, Conditions: c.req})
			if (got == Allow) != c.want {
				t.Fatalf("got %v, want condition %v", got, c.want)
			}
			// The same condition on a Deny statement must deny exactly when it holds.
			dd := mustParse(t, stmt("Deny", `"kms:*"`, `"*"`, c.cond))
			got = dd.Evaluate(&Request{Action: "kms:GetSecretValue", Resource: secretARN, Conditions: c.req})
			if (got == Deny) != c.want {
				t.Fatalf("deny form: got %v, want condition %v", got, c.want)
			}
		})
	}
}

func TestDenyBeatsAllowAndImplicitDeny(t *testing.T) {
	allow := mustParse(t, stmt("Allow", `"kms:*"`, `"acs:kms:*:*:secret/*"`, ""))
	deny := mustParse(t, stmt("Deny", `"kms:GetSecretValue"`, `"acs:kms:*:*:secret/app/*"`, ""))
	both := mustParse(t, `{"Version":"1","Statement":[
		{"Effect":"Deny","Action":"kms:GetSecretValue","Resource":"acs:kms:*:*:secret/app/*"},
		{"Effect":"Allow","Action":"kms:*","Resource":"*"}]}`)
	r := &Request{Action: "kms:GetSecretValue", Resource: secretARN}
	if got := Decide(r, allow, deny); got != Deny {
		t.Errorf("allow+deny across documents: %v", got)
	}
	if got := Decide(r, deny, allow); got != Deny {
		t.Errorf("order must not matter: %v", got)
	}
	if got := both.Evaluate(r); got != Deny {
		t.Errorf("deny within one document: %v", got)
	}
	if got := Decide(r); got != NoMatch {
		t.Errorf("no documents: %v", got)
	}
	if got := Decide(r, nil, allow); got != Allow {
		t.Errorf("nil document skipped: %v", got)
	}
	other := &Request{Action: "kms:GetSecretValue", Resource: "acs:kms:cn-hangzhou:1111:secret/other"}
	if got := Decide(other, allow, deny); got != Allow {
		t.Errorf("deny out of scope: %v", got)
	}
	if got := Decide(&Request{Action: "ram:CreateUser", Resource: "*"}, allow, deny); got != NoMatch {
		t.Errorf("implicit deny: %v", got)
	}
	if got := Combine(Allow, NoMatch, Deny, Allow); got != Deny {
		t.Errorf("Combine: %v", got)
	}
	if got := Combine(NoMatch, Allow); got != Allow {
		t.Errorf("Combine: %v", got)
	}
	var nilDoc *Document
	if got := nilDoc.Evaluate(r); got != NoMatch {
		t.Errorf("nil document: %v", got)
	}
	if got := allow.Evaluate(nil); got != NoMatch {
		t.Errorf("nil request: %v", got)
	}
}

func TestResourcePolicyPrincipals(t *testing.T) {
	const owner, other = "1111", "2222"
	pol := func(principal string) *Document {
		d, err := ParseResource(`{"Version":"1","Statement":[{"Sid":"s","Effect":"Allow","Principal":` + principal +
			`,"Action":["kms:List*","kms:Describe*","kms:GetSecretValue"],"Resource":"*"}]}`)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	user := func(acct, name string) *Request {
		return &Request{Action: "kms:GetSecretValue", Resource: secretARN, Account: acct, Principal: "acs:ram::" + acct + ":user/" + name}
	}
	root := func(acct string) *Request {
		return &Request{Action: "kms:GetSecretValue", Resource: secretARN, Account: acct, Principal: "acs:ram::" + acct + ":root"}
	}
	cases := []struct {
		name      string
		principal string
		req       *Request
		want      Effect
	}{
		{"star string", `"*"`, user(other, "bob"), Allow},
		{"RAM star", `{"RAM":"*"}`, user(other, "bob"), Allow},
		{"cross-account user named", `{"RAM":["acs:ram::2222:user/bob"]}`, user(other, "bob"), Allow},
		{"cross-account other user", `{"RAM":["acs:ram::2222:user/bob"]}`, user(other, "eve"), NoMatch},
		{"user name case-sensitive", `{"RAM":["acs:ram::2222:user/bob"]}`, user(other, "Bob"), NoMatch},
		{"same name other account", `{"RAM":["acs:ram::2222:user/bob"]}`, user("3333", "bob"), NoMatch},
		{"cross-account root covers the account's users", `{"RAM":["acs:ram::2222:root"]}`, user(other, "eve"), Allow},
		{"cross-account root covers root", `{"RAM":"acs:ram::2222:root"}`, root(other), Allow},
		{"root of another account", `{"RAM":["acs:ram::2222:root"]}`, root("3333"), NoMatch},
		{"bare uid", `{"RAM":["2222"]}`, user(other, "bob"), Allow},
		{"bare uid other", `{"RAM":["2222"]}`, user(owner, "bob"), NoMatch},
		{"account wildcard (KMS default policy form)", `{"RAM":["acs:ram::1111:*"]}`, user(owner, "alice"), Allow},
		{"account wildcard other account", `{"RAM":["acs:ram::1111:*"]}`, user(other, "alice"), NoMatch},
		{"list second matches", `{"RAM":["acs:ram::3333:root","acs:ram::2222:user/bob"]}`, user(other, "bob"), Allow},
		{"empty caller", `{"RAM":["acs:ram::2222:user/bob"]}`, &Request{Action: "kms:GetSecretValue", Resource: secretARN}, NoMatch},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := pol(c.principal).EvaluateResource(c.req); got != c.want {
				t.Fatalf("got %v, want %v", got, c.want)
			}
		})
	}
	// A resource policy's statements never apply as identity statements,
	// and identity statements never apply as resource statements.
	rp := pol(`"*"`)
	if got := rp.Evaluate(user(owner, "a")); got != NoMatch {
		t.Errorf("resource statement applied as identity: %v", got)
	}
	idp := mustParse(t, stmt("Allow", `"kms:*"`, `"*"`, ""))
	if got := idp.EvaluateResource(user(owner, "a")); got != NoMatch {
		t.Errorf("identity statement applied as resource: %v", got)
	}
}

func TestDecideWithResource(t *testing.T) {
	const owner = "1111"
	grant, err := ParseResource(`{"Version":"1","Statement":[{"Effect":"Allow","Principal":{"RAM":["acs:ram::2222:user/bob"]},"Action":["kms:GetSecretValue"],"Resource":"*"}]}`)
	if err != nil {
		t.Fatal(err)
	}
	denyRP, err := ParseResource(`{"Version":"1","Statement":[{"Effect":"Deny","Principal":"*","Action":["kms:GetSecretValue"],"Resource":"*","Condition":{"NotIpAddress":{"acs:SourceIp":"10.0.0.0/8"}}}]}`)
	if err != nil {
		t.Fatal(err)
	}
	idAllow := mustParse(t, stmt("Allow", `"kms:GetSecretValue"`, `"acs:kms:*:1111:secret/*"`, ""))
	bob := &Request{Action: "kms:GetSecretValue", Resource: secretARN, Account: "2222", Principal: "acs:ram::2222:user/bob",
		Conditions: map[string][]string{"acs:SourceIp": {"10.0.0.1"}}}
	alice := &Request{Action: "kms:GetSecretValue", Resource: secretARN, Account: owner, Principal: "acs:ram::1111:user/alice",
		Conditions: map[string][]string{"acs:SourceIp": {"10.0.0.1"}}}
	cases := []struct {
		name     string
		r        *Request
		resource *Document
		identity []*Document
		want     Effect
	}{
		{"cross-account both allow", bob, grant, []*Document{idAllow}, Allow},
		{"cross-account only secret policy", bob, grant, nil, NoMatch},
		{"cross-account only identity", bob, nil, []*Document{idAllow}, NoMatch},
		{"same account identity suffices", alice, nil, []*Document{idAllow}, Allow},
		{"same account nothing", alice, grant, nil, NoMatch},
		{"resource deny wins for same account", &Request{Action: alice.Action, Resource: alice.Resource, Account: owner, Principal: alice.Principal,
			Conditions: map[string][]string{"acs:SourceIp": {"8.8.8.8"}}}, denyRP, []*Document{idAllow}, Deny},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := DecideWithResource(c.r, owner, c.resource, c.identity...); got != c.want {
				t.Fatalf("got %v, want %v", got, c.want)
			}
		})
	}
	// Same account, secret policy alone suffices.
	selfGrant, err := ParseResource(`{"Version":"1","Statement":[{"Effect":"Allow","Principal":{"RAM":["acs:ram::1111:user/alice"]},"Action":"kms:GetSecretValue","Resource":"*"}]}`)
	if err != nil {
		t.Fatal(err)
	}
	if got := DecideWithResource(alice, owner, selfGrant); got != Allow {
		t.Errorf("same account via secret policy: %v", got)
	}
}

func TestStringRoundTrip(t *testing.T) {
	doc := "{ \"Version\" : \"1\",\n \"Statement\": [{\"Effect\":\"Allow\",\"Action\":\"kms:*\",\"Resource\":\"*\"}] }"
	if got := mustParse(t, doc).String(); got != doc {
		t.Fatalf("String() = %q", got)
	}
}

func TestGlobLinear(t *testing.T) {
	// A pattern that would be exponential for a naive recursive matcher.
	p := strings.Repeat("*a", 40) + "b"
	s := strings.Repeat("a", 4000)
	if glob(p, s, false) {
		t.Fatal("matched")
	}
}
