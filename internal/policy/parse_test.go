package policy

import (
	"errors"
	"strings"
	"testing"

	"github.com/keyhold/keyhold/internal/errs"
)

func TestParseErrors(t *testing.T) {
	ok := `{"Effect":"Allow","Action":"kms:*","Resource":"*"}`
	wrap := func(stmts ...string) string {
		return `{"Version":"1","Statement":[` + strings.Join(stmts, ",") + `]}`
	}
	cases := []struct {
		name, doc, want string
	}{
		{"empty", "", "policy document is empty"},
		{"blank", "  \n", "policy document is empty"},
		{"not JSON", "{", "not valid JSON: unexpected end of document"},
		{"syntax", `{"Version":"1",}`, "not valid JSON"},
		{"array top", `[]`, "must be a JSON object, not an array"},
		{"trailing data", `{"Version":"1","Statement":[` + ok + `]} {}`, "unexpected data after the policy object"},
		{"version missing", `{"Statement":[` + ok + `]}`, `Version is missing; it must be "1"`},
		{"version wrong", `{"Version":"2","Statement":[` + ok + `]}`, `Version must be "1"`},
		{"version number", `{"Version":1,"Statement":[` + ok + `]}`, `Version must be "1"`},
		{"statement missing", `{"Version":"1"}`, "Statement is missing"},
		{"statement object", `{"Version":"1","Statement":` + ok + `}`, "Statement must be an array of statements, not an object"},
		{"statement empty", `{"Version":"1","Statement":[]}`, "Statement must contain at least one statement"},
		{"unknown top element", `{"Version":"1","Statement":[` + ok + `],"Id":"x"}`, `unknown policy element "Id"`},
		{"lowercase element", `{"version":"1","Statement":[` + ok + `]}`, `unknown policy element "version"`},
		{"duplicate element", `{"Version":"1","Version":"1","Statement":[` + ok + `]}`, `duplicate element "Version"`},
		{"duplicate effect", wrap(`{"Effect":"Allow","Effect":"Deny","Action":"kms:*","Resource":"*"}`), `duplicate element "Effect"`},
		{"statement not object", wrap(ok, `"x"`), "Statement[1] must be an object, not a string"},
		{"effect bad", wrap(ok, ok, `{"Effect":"allow","Action":"kms:*","Resource":"*"}`), "Statement[2].Effect must be Allow or Deny"},
		{"effect missing", wrap(`{"Action":"kms:*","Resource":"*"}`), "Statement[0].Effect is missing"},
		{"action missing", wrap(`{"Effect":"Allow","Resource":"*"}`), "Statement[0].Action is missing"},
		{"action and notaction", wrap(`{"Effect":"Allow","Action":"kms:*","NotAction":"ram:*","Resource":"*"}`), "has both Action and NotAction"},
		{"resource missing", wrap(`{"Effect":"Allow","Action":"kms:*"}`), "Statement[0].Resource is missing"},
		{"resource and notresource", wrap(`{"Effect":"Allow","Action":"kms:*","Resource":"*","NotResource":"*"}`), "has both Resource and NotResource"},
		{"action empty array", wrap(`{"Effect":"Allow","Action":[],"Resource":"*"}`), "Statement[0].Action must not be an empty array"},
		{"action empty string", wrap(`{"Effect":"Allow","Action":"","Resource":"*"}`), "Statement[0].Action must not be empty"},
		{"action number", wrap(`{"Effect":"Allow","Action":5,"Resource":"*"}`), "Statement[0].Action must be a string or an array of strings, not a number"},
		{"action array element", wrap(`{"Effect":"Allow","Action":["kms:*",true],"Resource":"*"}`), "Statement[0].Action[1] must be a string, not a boolean"},
		{"action no service", wrap(`{"Effect":"Allow","Action":"GetSecretValue","Resource":"*"}`), `Statement[0].Action[0] "GetSecretValue" must be "*" or <service>:<action>`},
		{"action space", wrap(`{"Effect":"Allow","Action":"kms:Get Secret","Resource":"*"}`), "contains a space"},
		{"resource not ARN", wrap(`{"Effect":"Allow","Action":"kms:*","Resource":"secret/app"}`), `Statement[0].Resource[0] "secret/app" must be "*" or an ARN`},
		{"resource too few parts", wrap(`{"Effect":"Allow","Action":"kms:*","Resource":"acs:kms:*:*"}`), "must be \"*\" or an ARN"},
		{"unknown statement element", wrap(`{"Effect":"Allow","Action":"kms:*","Resource":"*","Actions":"x"}`), `Statement[0] has unknown element "Actions"`},
		{"sid not string", wrap(`{"Sid":1,"Effect":"Allow","Action":"kms:*","Resource":"*"}`), "Statement[0].Sid must be a string"},
		{"unknown operator", wrap(`{"Effect":"Allow","Action":"kms:*","Resource":"*","Condition":{"StringEqualz":{"kms:a":"b"}}}`), `unknown condition operator "StringEqualz"`},
		{"operator case", wrap(`{"Effect":"Allow","Action":"kms:*","Resource":"*","Condition":{"stringequals":{"kms:a":"b"}}}`), `did you mean "StringEquals"`},
		{"condition not object", wrap(`{"Effect":"Allow","Action":"kms:*","Resource":"*","Condition":[]}`), "Statement[0].Condition must be an object"},
		{"condition empty", wrap(`{"Effect":"Allow","Action":"kms:*","Resource":"*","Condition":{}}`), "Statement[0].Condition must not be empty"},
		{"operator body not object", wrap(`{"Effect":"Allow","Action":"kms:*","Resource":"*","Condition":{"Bool":"true"}}`), "Statement[0].Condition.Bool must be an object"},
		{"operator body empty", wrap(`{"Effect":"Allow","Action":"kms:*","Resource":"*","Condition":{"Bool":{}}}`), "must name at least one condition key"},
		{"bad key", wrap(`{"Effect":"Allow","Action":"kms:*","Resource":"*","Condition":{"Bool":{"SecureTransport":"true"}}}`), `invalid condition key "SecureTransport"`},
		{"no values", wrap(`{"Effect":"Allow","Action":"kms:*","Resource":"*","Condition":{"StringEquals":{"kms:a":[]}}}`), "must have at least one value"},
		{"value object", wrap(`{"Effect":"Allow","Action":"kms:*","Resource":"*","Condition":{"StringEquals":{"kms:a":{}}}}`), "must be a string, number or boolean, not an object"},
		{"bad bool", wrap(`{"Effect":"Allow","Action":"kms:*","Resource":"*","Condition":{"Bool":{"acs:SecureTransport":"yes"}}}`), `"yes" must be true or false`},
		{"bad ip", wrap(`{"Effect":"Allow","Action":"kms:*","Resource":"*","Condition":{"IpAddress":{"acs:SourceIp":"10.0.0.0/33"}}}`), `"10.0.0.0/33" is not an IP address or CIDR block`},
		{"bad date", wrap(`{"Effect":"Allow","Action":"kms:*","Resource":"*","Condition":{"DateLessThan":{"acs:CurrentTime":"tomorrow"}}}`), `"tomorrow" is not a date-time`},
		{"bad number", wrap(`{"Effect":"Allow","Action":"kms:*","Resource":"*","Condition":{"NumericLessThan":{"kms:n":"NaN"}}}`), `"NaN" is not a number`},
		{"principal bad", wrap(`{"Effect":"Allow","Principal":"bob","Action":"kms:*","Resource":"*"}`), `Statement[0].Principal must be "*" or {"RAM": [...]}`},
		{"principal type", wrap(`{"Effect":"Allow","Principal":{"Service":"ecs.aliyuncs.com"},"Action":"kms:*","Resource":"*"}`), `unknown principal type "Service"`},
		{"principal arn", wrap(`{"Effect":"Allow","Principal":{"RAM":["acs:ram::abc:root"]},"Action":"kms:*","Resource":"*"}`), `Statement[0].Principal.RAM[0] "acs:ram::abc:root" must be an account ID`},
		{"principal arn tail", wrap(`{"Effect":"Allow","Principal":{"RAM":["acs:ram::1111:group/x"]},"Action":"kms:*","Resource":"*"}`), "must end in :root"},
		{"principal empty", wrap(`{"Effect":"Allow","Principal":{},"Action":"kms:*","Resource":"*"}`), "must name at least one principal"},
		{"too deep", `{"Version":"1","Statement":[` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `]}`, "nested too deeply"},
		{"too long", `{"Version":"1","Statement":[` + ok + `],"x":"` + strings.Repeat("a", 6200) + `"}`, "longer than 6144 characters"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse(c.doc)
			if err == nil {
				t.Fatalf("accepted: %s", c.doc)
			}
			var e *errs.Error
			if !errors.As(err, &e) || e.Kind != errs.KindInvalidParameter {
				t.Fatalf("error %v is not KindInvalidParameter", err)
			}
			if !strings.Contains(e.Message, c.want) {
				t.Fatalf("message %q does not contain %q", e.Message, c.want)
			}
		})
	}
}

func TestParseLimits(t *testing.T) {
	// Exactly at the character limit is accepted, counted in characters:
	// 6,144 multi-byte characters are more than 6,144 bytes.
	base := `{"Version":"1","Statement":[{"Sid":"","Effect":"Allow","Action":"kms:*","Resource":"*"}]}`
	pad := MaxIdentityPolicyChars - len(base)
	doc := strings.Replace(base, `"Sid":""`, `"Sid":"`+strings.Repeat("é", pad)+`"`, 1)
	if _, err := Parse(doc); err != nil {
		t.Fatalf("document of exactly %d characters refused: %v", MaxIdentityPolicyChars, err)
	}
	doc = strings.Replace(base, `"Sid":""`, `"Sid":"`+strings.Repeat("é", pad+1)+`"`, 1)
	if _, err := Parse(doc); err == nil {
		t.Fatal("document one character over the limit accepted")
	}
	// A secret policy may be longer (32,768 bytes) but must name principals.
	rp := `{"Version":"1","Statement":[{"Sid":"` + strings.Repeat("a", 8000) + `","Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"}]}`
	if _, err := ParseResource(rp); err != nil {
		t.Fatalf("8 KB secret policy refused: %v", err)
	}
	big := `{"Version":"1","Statement":[{"Sid":"` + strings.Repeat("a", MaxResourcePolicyBytes) + `","Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"}]}`
	if _, err := ParseResource(big); err == nil || !strings.Contains(err.Error(), "the limit is 32768") {
		t.Fatalf("oversized secret policy: %v", err)
	}
	if _, err := ParseResource(`{"Version":"1","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"}]}`); err == nil ||
		!strings.Contains(err.Error(), "Statement[0].Principal is missing") {
		t.Fatalf("secret policy without principal: %v", err)
	}
	if _, err := ParseIdentity(`{"Version":"1","Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"}]}`); err == nil ||
		!strings.Contains(err.Error(), "Statement[0].Principal is not allowed") {
		t.Fatalf("identity policy with principal: %v", err)
	}
}

func TestParseAccepts(t *testing.T) {
	for _, doc := range []string{
		// The KMS default secret policy (SetSecretPolicy example).
		`{"Version":"1","Statement": [{"Sid":"kms default secret policy","Effect":"Allow","Principal":{"RAM": ["acs:ram::119285303511:*"]},"Action":["kms:*"],"Resource": ["*"] }] }`,
		// Element order does not matter; numbers and booleans as values.
		`{"Statement":[{"Resource":"*","Action":"kms:*","Effect":"Deny","Condition":{"NumericGreaterThan":{"kms:n":1.5},"Bool":{"acs:SecureTransport":false}}}],"Version":"1"}`,
		`{"Version":"1","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*","Condition":{"DateLessThan":{"acs:CurrentTime":"2019-08-12T17:00:00+08:00"}}}]}`,
		`{"Version":"1","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*","Condition":{"IpAddress":{"acs:SourceIp":["fe80::/10","::ffff:10.0.0.0/104"]}}}]}`,
	} {
		if _, err := Parse(doc); err != nil {
			t.Errorf("Parse(%s): %v", doc, err)
		}
	}
}
