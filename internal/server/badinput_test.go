package server_test

// Fault and bad-input tests: every refused request answers the KMS code a
// real client expects and leaves storage exactly as it was. Cases the
// official SDK can express go through it; the others (timestamps, nonces,
// unknown or missing actions, tampering, oversize bodies, no auth at all)
// are raw HTTP requests signed with acssign.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	kms "github.com/alibabacloud-go/kms-20160120/v3/client"
	"github.com/alibabacloud-go/tea/tea"

	"github.com/keyhold/keyhold/acssign"
	"github.com/keyhold/keyhold/internal/kmsapi"
)

const kmsVersion = "2016-01-20"

// rawResult is what a raw request got back.
type rawResult struct {
	Status int
	Code   string // "" on success
	Body   []byte
	Header http.Header
}

// rawDo sends req with a plain client (http listener) and decodes the KMS
// error code from a JSON body.
func rawDo(t *testing.T, req *http.Request) rawResult {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := rawResult{Status: resp.StatusCode, Body: body, Header: resp.Header}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		var e struct{ Code string }
		if err := json.Unmarshal(body, &e); err != nil {
			t.Fatalf("response is not JSON: %q", body)
		}
		r.Code = e.Code
	}
	return r
}

// v1Params returns the common V1 parameters for action plus extra, signed
// with the test server's root key unless the caller re-signs. at is the
// request time.
func (ts *testServer) v1Params(action string, at time.Time, extra map[string]string) map[string]string {
	p := map[string]string{
		"Version":          kmsVersion,
		"Format":           "JSON",
		"AccessKeyId":      ts.keyID,
		"SignatureMethod":  acssign.SignatureMethodV1,
		"SignatureVersion": acssign.SignatureVersionV1,
		"SignatureNonce":   acssign.NewNonce(),
		"Timestamp":        at.UTC().Format(acssign.TimeFormat),
		"RegionId":         "cn-hangzhou",
	}
	if action != "" {
		p["Action"] = action
	}
	for k, v := range extra {
		p[k] = v
	}
	return p
}

// v1Request builds a V1-signed POST with every parameter in the query
// string, as the official SDKs send it.
func (ts *testServer) v1Request(t *testing.T, p map[string]string) *http.Request {
	t.Helper()
	p["Signature"] = acssign.SignV1(http.MethodPost, p, ts.keySecret)
	q := url.Values{}
	for k, v := range p {
		q.Set(k, v)
	}
	req, err := http.NewRequest(http.MethodPost, ts.HTTPURL+"/?"+q.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// acs3Request builds an ACS3-signed POST for action with params as a form
// body. date, when not zero, sets x-acs-date before signing.
func (ts *testServer) acs3Request(t *testing.T, action string, params map[string]string, date time.Time) (*http.Request, []byte) {
	t.Helper()
	form := url.Values{}
	for k, v := range params {
		form.Set(k, v)
	}
	body := []byte(form.Encode())
	req, err := http.NewRequest(http.MethodPost, ts.HTTPURL+"/", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set(acssign.HeaderAction, action)
	req.Header.Set(acssign.HeaderVersion, kmsVersion)
	if !date.IsZero() {
		req.Header.Set(acssign.HeaderDate, date.UTC().Format(acssign.TimeFormat))
	}
	acssign.SignRequestACS3(req, body, ts.keyID, ts.keySecret)
	return req, body
}

// snapshot renders everything the API can tell about the account's
// secrets and keys, so that a refused call can be shown to change nothing.
func snapshot(t *testing.T, c *kms.Client) string {
	t.Helper()
	var b strings.Builder
	list := must(c.ListSecrets(&kms.ListSecretsRequest{PageSize: tea.Int32(100), FetchTags: tea.String("true")}))
	fmt.Fprintf(&b, "secrets=%d\n", tea.Int32Value(list.Body.TotalCount))
	for _, s := range list.Body.SecretList.Secret {
		name := tea.StringValue(s.SecretName)
		d, err := c.DescribeSecret(&kms.DescribeSecretRequest{SecretName: s.SecretName, FetchTags: tea.String("true")})
		if err != nil {
			fmt.Fprintf(&b, "%s describe: %s\n", name, errCode(err))
		} else {
			tags, _ := json.Marshal(d.Body.Tags)
			fmt.Fprintf(&b, "%s type=%s desc=%q key=%s update=%s planned=%s rot=%s tags=%s\n", name,
				tea.StringValue(d.Body.SecretType), tea.StringValue(d.Body.Description), tea.StringValue(d.Body.EncryptionKeyId),
				tea.StringValue(d.Body.UpdateTime), tea.StringValue(d.Body.PlannedDeleteTime),
				tea.StringValue(d.Body.AutomaticRotation), tags)
		}
		vers, err := c.ListSecretVersionIds(&kms.ListSecretVersionIdsRequest{SecretName: s.SecretName, IncludeDeprecated: tea.String("true"), PageSize: tea.Int32(100)})
		if err != nil {
			fmt.Fprintf(&b, "%s versions: %s\n", name, errCode(err))
			continue
		}
		for _, v := range vers.Body.VersionIds.VersionId {
			var stages []string
			if v.VersionStages != nil {
				for _, st := range v.VersionStages.VersionStage {
					stages = append(stages, tea.StringValue(st))
				}
			}
			sort.Strings(stages)
			got, err := c.GetSecretValue(&kms.GetSecretValueRequest{SecretName: s.SecretName, VersionId: v.VersionId})
			data := errCode(err)
			if err == nil {
				data = fmt.Sprintf("len=%d %.40q", len(tea.StringValue(got.Body.SecretData)), tea.StringValue(got.Body.SecretData))
			}
			fmt.Fprintf(&b, "  %s %s stages=%v data=%s\n", name, tea.StringValue(v.VersionId), stages, data)
		}
	}
	keys := must(c.ListKeys(&kms.ListKeysRequest{PageSize: tea.Int32(100)}))
	fmt.Fprintf(&b, "keys=%d\n", tea.Int32Value(keys.Body.TotalCount))
	return b.String()
}

// badInputFixture creates the secrets the bad-input cases aim at:
//   - "app/gen": Generic, versions v1 ("old-one", ACSPrevious) and v2
//     ("old-two", ACSCurrent), tag env=prod;
//   - "doomed": Generic, scheduled for deletion.
func badInputFixture(t *testing.T, c *kms.Client) {
	t.Helper()
	must(c.CreateSecret(&kms.CreateSecretRequest{
		SecretName: tea.String("app/gen"), SecretData: tea.String("old-one"), VersionId: tea.String("v1"),
		Description: tea.String("fixture"), Tags: tea.String(`[{"TagKey":"env","TagValue":"prod"}]`),
	}))
	must(c.PutSecretValue(&kms.PutSecretValueRequest{SecretName: tea.String("app/gen"), SecretData: tea.String("old-two"), VersionId: tea.String("v2")}))
	must(c.CreateSecret(&kms.CreateSecretRequest{SecretName: tea.String("doomed"), SecretData: tea.String("bye"), VersionId: tea.String("v1")}))
	must(c.DeleteSecret(&kms.DeleteSecretRequest{SecretName: tea.String("doomed"), RecoveryWindowInDays: tea.String("7")}))
	// The snapshot must see what the cases could damage.
	snap := snapshot(t, c)
	for _, want := range []string{"secrets=2", `app/gen v1 stages=[ACSPrevious] data=len=7 "old-one"`,
		`app/gen v2 stages=[ACSCurrent] data=len=7 "old-two"`, `"TagKey":"env"`, "doomed type=Generic"} {
		if !strings.Contains(snap, want) {
			t.Fatalf("fixture snapshot lacks %q:\n%s", want, snap)
		}
	}
}

func manyTags(n int) string {
	var tags []map[string]string
	for i := range n {
		tags = append(tags, map[string]string{"TagKey": fmt.Sprintf("k%02d", i), "TagValue": "v"})
	}
	b, _ := json.Marshal(tags)
	return string(b)
}

// TestBadInputSDK drives the refusals the official SDK can express, with
// both signature schemes, and checks storage after each one.
func TestBadInputSDK(t *testing.T) {
	ts := startServer(t)
	admin := ts.sdk(t, sdkModes[0])
	badInputFixture(t, admin)
	before := snapshot(t, admin)

	gen := tea.String("app/gen")
	type sdkCase struct {
		name string
		code string
		call func(c *kms.Client) error
	}
	cases := []sdkCase{
		{"oversize value (30,721 bytes)", "InvalidParameter", func(c *kms.Client) error {
			_, err := c.PutSecretValue(&kms.PutSecretValueRequest{SecretName: gen, VersionId: tea.String("big"), SecretData: tea.String(strings.Repeat("x", 30721))})
			return err
		}},
		{"oversize value on create", "InvalidParameter", func(c *kms.Client) error {
			_, err := c.CreateSecret(&kms.CreateSecretRequest{SecretName: tea.String("big"), VersionId: tea.String("v1"), SecretData: tea.String(strings.Repeat("x", 30721))})
			return err
		}},
		{"name with bad characters", "InvalidParameter", func(c *kms.Client) error {
			_, err := c.CreateSecret(&kms.CreateSecretRequest{SecretName: tea.String("bad name!"), VersionId: tea.String("v1"), SecretData: tea.String("x")})
			return err
		}},
		{"name of 65 characters", "InvalidParameter", func(c *kms.Client) error {
			_, err := c.CreateSecret(&kms.CreateSecretRequest{SecretName: tea.String(strings.Repeat("n", 65)), VersionId: tea.String("v1"), SecretData: tea.String("x")})
			return err
		}},
		{"acs/ecs/ prefix on a Generic secret", "InvalidParameter", func(c *kms.Client) error {
			_, err := c.CreateSecret(&kms.CreateSecretRequest{SecretName: tea.String("acs/ecs/mine"), VersionId: tea.String("v1"), SecretData: tea.String("x")})
			return err
		}},
		{"bad JSON in Tags (CreateSecret)", "InvalidParameter", func(c *kms.Client) error {
			_, err := c.CreateSecret(&kms.CreateSecretRequest{SecretName: tea.String("tagged"), VersionId: tea.String("v1"), SecretData: tea.String("x"), Tags: tea.String(`[{"TagKey":"a",`)})
			return err
		}},
		{"bad JSON in Tags (TagResource)", "InvalidParameter", func(c *kms.Client) error {
			_, err := c.TagResource(&kms.TagResourceRequest{SecretName: gen, Tags: tea.String(`{"TagKey":"a"}x`)})
			return err
		}},
		{"bad JSON in Filters", "InvalidParameter", func(c *kms.Client) error {
			_, err := c.ListSecrets(&kms.ListSecretsRequest{Filters: tea.String(`[{"Key":"SecretName","Values":`)})
			return err
		}},
		{"too many tags on create (21)", "Rejected.LimitExceeded", func(c *kms.Client) error {
			_, err := c.CreateSecret(&kms.CreateSecretRequest{SecretName: tea.String("tagged"), VersionId: tea.String("v1"), SecretData: tea.String("x"), Tags: tea.String(manyTags(21))})
			return err
		}},
		{"too many tags on TagResource (1 + 20)", "Rejected.LimitExceeded", func(c *kms.Client) error {
			_, err := c.TagResource(&kms.TagResourceRequest{SecretName: gen, Tags: tea.String(manyTags(20))})
			return err
		}},
		{"tag key starting with acs:", "InvalidParameter", func(c *kms.Client) error {
			_, err := c.TagResource(&kms.TagResourceRequest{SecretName: gen, Tags: tea.String(`[{"TagKey":"acs:x","TagValue":"v"}]`)})
			return err
		}},
		{"tag key starting with aliyun on create", "InvalidParameter", func(c *kms.Client) error {
			_, err := c.CreateSecret(&kms.CreateSecretRequest{SecretName: tea.String("tagged"), VersionId: tea.String("v1"), SecretData: tea.String("x"), Tags: tea.String(`[{"TagKey":"aliyunX","TagValue":"v"}]`)})
			return err
		}},
		{"CreateSecret without SecretData", "MissingParameter", func(c *kms.Client) error {
			_, err := c.CreateSecret(&kms.CreateSecretRequest{SecretName: tea.String("nodata"), VersionId: tea.String("v1")})
			return err
		}},
		{"CreateSecret without VersionId", "MissingParameter", func(c *kms.Client) error {
			_, err := c.CreateSecret(&kms.CreateSecretRequest{SecretName: tea.String("noversion"), SecretData: tea.String("x")})
			return err
		}},
		{"CreateSecret without SecretName", "MissingParameter", func(c *kms.Client) error {
			_, err := c.CreateSecret(&kms.CreateSecretRequest{SecretData: tea.String("x"), VersionId: tea.String("v1")})
			return err
		}},
		{"existing version with other data", "Rejected.ResourceExist", func(c *kms.Client) error {
			_, err := c.PutSecretValue(&kms.PutSecretValueRequest{SecretName: gen, VersionId: tea.String("v1"), SecretData: tea.String("different")})
			return err
		}},
		{"RecoveryWindowInDays 6", "InvalidParameter", func(c *kms.Client) error {
			_, err := c.DeleteSecret(&kms.DeleteSecretRequest{SecretName: gen, RecoveryWindowInDays: tea.String("6")})
			return err
		}},
		{"RecoveryWindowInDays 31", "InvalidParameter", func(c *kms.Client) error {
			_, err := c.DeleteSecret(&kms.DeleteSecretRequest{SecretName: gen, RecoveryWindowInDays: tea.String("31")})
			return err
		}},
		{"PageSize 0", "InvalidParameter", func(c *kms.Client) error {
			_, err := c.ListSecrets(&kms.ListSecretsRequest{PageSize: tea.Int32(0)})
			return err
		}},
		{"PageSize 101", "InvalidParameter", func(c *kms.Client) error {
			_, err := c.ListSecrets(&kms.ListSecretsRequest{PageSize: tea.Int32(101)})
			return err
		}},
		{"GetSecretValue of a nonexistent VersionId", "Forbidden.ResourceNotFound", func(c *kms.Client) error {
			_, err := c.GetSecretValue(&kms.GetSecretValueRequest{SecretName: gen, VersionId: tea.String("v404")})
			return err
		}},
		{"GetSecretValue of a nonexistent VersionStage", "Forbidden.ResourceNotFound", func(c *kms.Client) error {
			_, err := c.GetSecretValue(&kms.GetSecretValueRequest{SecretName: gen, VersionStage: tea.String("NoSuchStage")})
			return err
		}},
		{"CreateSecret with an unknown EncryptionKeyId", "Forbidden.KeyNotFound", func(c *kms.Client) error {
			_, err := c.CreateSecret(&kms.CreateSecretRequest{SecretName: tea.String("underkey"), VersionId: tea.String("v1"), SecretData: tea.String("x"),
				EncryptionKeyId: tea.String("key-00000000-0000-0000-0000-000000000000")})
			return err
		}},
		{"CreateSecret on an existing name", "Rejected.ResourceExist", func(c *kms.Client) error {
			_, err := c.CreateSecret(&kms.CreateSecretRequest{SecretName: gen, VersionId: tea.String("v9"), SecretData: tea.String("x")})
			return err
		}},
		{"CreateSecret on a name pending deletion", "Rejected.ResourceExist", func(c *kms.Client) error {
			_, err := c.CreateSecret(&kms.CreateSecretRequest{SecretName: tea.String("doomed"), VersionId: tea.String("v9"), SecretData: tea.String("x")})
			return err
		}},
		// No public KMS code was found for this; docs/kms-api.md falls back to
		// InvalidParameter with a message naming the secret type.
		{"RotateSecret on a Generic secret", "InvalidParameter", func(c *kms.Client) error {
			_, err := c.RotateSecret(&kms.RotateSecretRequest{SecretName: gen, VersionId: tea.String("v9")})
			return err
		}},
		{"PutSecretValue on a secret pending deletion", "Rejected.ResourceInDeleteWindow", func(c *kms.Client) error {
			_, err := c.PutSecretValue(&kms.PutSecretValueRequest{SecretName: tea.String("doomed"), VersionId: tea.String("v9"), SecretData: tea.String("x")})
			return err
		}},
		{"UpdateSecretRotationPolicy on a Generic secret", "InvalidParameter", func(c *kms.Client) error {
			_, err := c.UpdateSecretRotationPolicy(&kms.UpdateSecretRotationPolicyRequest{SecretName: gen,
				EnableAutomaticRotation: tea.Bool(true), RotationInterval: tea.String("7d")})
			return err
		}},
		{"oversize UTF-8 value (15,361 × é = 30,722 bytes)", "InvalidParameter", func(c *kms.Client) error {
			_, err := c.PutSecretValue(&kms.PutSecretValueRequest{SecretName: gen, VersionId: tea.String("big"), SecretData: tea.String(strings.Repeat("é", 15361))})
			return err
		}},
		{"oversize binary value (30,721 bytes decoded)", "InvalidParameter", func(c *kms.Client) error {
			_, err := c.PutSecretValue(&kms.PutSecretValueRequest{SecretName: gen, VersionId: tea.String("big"), SecretDataType: tea.String("binary"),
				SecretData: tea.String(base64.StdEncoding.EncodeToString(make([]byte, 30721)))})
			return err
		}},
		{"binary value that is not Base64", "InvalidParameter", func(c *kms.Client) error {
			_, err := c.PutSecretValue(&kms.PutSecretValueRequest{SecretName: gen, VersionId: tea.String("bin"), SecretDataType: tea.String("binary"), SecretData: tea.String("!!not-b64")})
			return err
		}},
		{"unknown SecretDataType", "InvalidParameter", func(c *kms.Client) error {
			_, err := c.CreateSecret(&kms.CreateSecretRequest{SecretName: tea.String("dt"), VersionId: tea.String("v1"), SecretData: tea.String("x"), SecretDataType: tea.String("json")})
			return err
		}},
		{"unknown SecretType", "InvalidParameter", func(c *kms.Client) error {
			_, err := c.CreateSecret(&kms.CreateSecretRequest{SecretName: tea.String("st"), VersionId: tea.String("v1"), SecretData: tea.String("x"), SecretType: tea.String("Bogus")})
			return err
		}},
		{"ExtendedConfig over 1,024 characters", "InvalidParameter", func(c *kms.Client) error {
			_, err := c.CreateSecret(&kms.CreateSecretRequest{SecretName: tea.String("ext"), VersionId: tea.String("v1"), SecretData: tea.String("x"),
				ExtendedConfig: map[string]any{"CustomData": strings.Repeat("x", 1100)}})
			return err
		}},
		{"automatic rotation on a Generic secret", "InvalidParameter", func(c *kms.Client) error {
			_, err := c.CreateSecret(&kms.CreateSecretRequest{SecretName: tea.String("rot"), VersionId: tea.String("v1"), SecretData: tea.String("x"),
				EnableAutomaticRotation: tea.Bool(true), RotationInterval: tea.String("7d")})
			return err
		}},
		{"tag key of 129 characters", "InvalidParameter", func(c *kms.Client) error {
			_, err := c.TagResource(&kms.TagResourceRequest{SecretName: gen, Tags: tea.String(`[{"TagKey":"` + strings.Repeat("k", 129) + `","TagValue":"v"}]`)})
			return err
		}},
		{"bad JSON in TagKeys", "InvalidParameter", func(c *kms.Client) error {
			_, err := c.UntagResource(&kms.UntagResourceRequest{SecretName: gen, TagKeys: tea.String(`["env"`)})
			return err
		}},
		{"bad JSON in VersionStages", "InvalidParameter", func(c *kms.Client) error {
			_, err := c.PutSecretValue(&kms.PutSecretValueRequest{SecretName: gen, VersionId: tea.String("vs"), SecretData: tea.String("x"), VersionStages: tea.String(`["ACSCurrent"`)})
			return err
		}},
		{"unknown filter key", "InvalidParameter", func(c *kms.Client) error {
			_, err := c.ListSecrets(&kms.ListSecretsRequest{Filters: tea.String(`[{"Key":"Bogus","Values":["x"]}]`)})
			return err
		}},
		{"PageNumber 0", "InvalidParameter", func(c *kms.Client) error {
			_, err := c.ListSecrets(&kms.ListSecretsRequest{PageNumber: tea.Int32(0)})
			return err
		}},
		{"ForceDeleteWithoutRecovery not a boolean", "InvalidParameter", func(c *kms.Client) error {
			_, err := c.DeleteSecret(&kms.DeleteSecretRequest{SecretName: gen, ForceDeleteWithoutRecovery: tea.String("maybe")})
			return err
		}},
		{"PutSecretValue on a nonexistent secret", "Forbidden.ResourceNotFound", func(c *kms.Client) error {
			_, err := c.PutSecretValue(&kms.PutSecretValueRequest{SecretName: tea.String("nope"), VersionId: tea.String("v1"), SecretData: tea.String("x")})
			return err
		}},
	}
	// A wrong signature and an unknown key id, on a write that would
	// otherwise succeed.
	writeNew := func(c *kms.Client) error {
		_, err := c.PutSecretValue(&kms.PutSecretValueRequest{SecretName: gen, VersionId: tea.String("v3"), SecretData: tea.String("new")})
		return err
	}

	for _, m := range []sdkMode{sdkModes[0], sdkModes[2]} { // ACS3 and V1, over http
		t.Run(m.name, func(t *testing.T) {
			c := ts.sdk(t, m)
			all := append([]sdkCase{
				{"wrong signature", "SignatureDoesNotMatch", func(*kms.Client) error {
					return writeNew(ts.sdkWith(t, m, ts.keyID, ts.keySecret+"x"))
				}},
				{"unknown access key id", "InvalidAccessKeyId.NotFound", func(*kms.Client) error {
					return writeNew(ts.sdkWith(t, m, "LTAI5tUnknownUnknown0000", ts.keySecret))
				}},
			}, cases...)
			for _, tc := range all {
				t.Run(tc.name, func(t *testing.T) {
					wantCode(t, tc.call(c), tc.code)
					if after := snapshot(t, admin); after != before {
						t.Fatalf("storage changed:\nbefore:\n%s\nafter:\n%s", before, after)
					}
				})
			}
		})
	}

	// The boundary values themselves are accepted.
	must(admin.PutSecretValue(&kms.PutSecretValueRequest{SecretName: gen, VersionId: tea.String("max"), SecretData: tea.String(strings.Repeat("x", 30720))}))
	got := must(admin.GetSecretValue(&kms.GetSecretValueRequest{SecretName: gen}))
	if n := len(tea.StringValue(got.Body.SecretData)); n != 30720 || tea.StringValue(got.Body.VersionId) != "max" {
		t.Errorf("30,720-byte value: read back %d bytes, version %s", n, tea.StringValue(got.Body.VersionId))
	}
	must(admin.PutSecretValue(&kms.PutSecretValueRequest{SecretName: gen, VersionId: tea.String("max-utf8"), SecretData: tea.String(strings.Repeat("é", 15360))}))
	must(admin.PutSecretValue(&kms.PutSecretValueRequest{SecretName: gen, VersionId: tea.String("max-bin"), SecretDataType: tea.String("binary"),
		SecretData: tea.String(base64.StdEncoding.EncodeToString(make([]byte, 30720)))}))
	// The largest legal value, every byte percent-encoded in a form body,
	// fits under the body limit.
	req, _ := ts.acs3Request(t, "PutSecretValue", map[string]string{"SecretName": "app/gen", "VersionId": "max-form", "SecretData": strings.Repeat("é", 15360)}, time.Time{})
	if res := rawDo(t, req); res.Status != 200 {
		t.Errorf("largest legal form body refused: %d %.200s", res.Status, res.Body)
	}
	must(admin.CreateSecret(&kms.CreateSecretRequest{SecretName: tea.String(strings.Repeat("n", 64)), VersionId: tea.String("v1"), SecretData: tea.String("x")}))
	must(admin.TagResource(&kms.TagResourceRequest{SecretName: gen, Tags: tea.String(manyTags(19))})) // 1 + 19 = 20
	must(admin.ListSecrets(&kms.ListSecretsRequest{PageSize: tea.Int32(100)}))
	must(admin.ListSecrets(&kms.ListSecretsRequest{PageSize: tea.Int32(1)}))
}

// TestBadInputRaw covers what the SDK cannot express: clock skew, replays,
// tampering, oversize bodies, unknown or missing actions, no auth at all.
func TestBadInputRaw(t *testing.T) {
	ts := startServer(t)
	admin := ts.sdk(t, sdkModes[0])
	badInputFixture(t, admin)
	before := snapshot(t, admin)

	// Every case would, if accepted, write version v9 of app/gen.
	put := map[string]string{"SecretName": "app/gen", "VersionId": "v9", "SecretData": "sneaky"}
	now := time.Now()
	v1 := func(at time.Time) func(t *testing.T) *http.Request {
		return func(t *testing.T) *http.Request { return ts.v1Request(t, ts.v1Params("PutSecretValue", at, put)) }
	}
	acs3 := func(at time.Time) func(t *testing.T) *http.Request {
		return func(t *testing.T) *http.Request { r, _ := ts.acs3Request(t, "PutSecretValue", put, at); return r }
	}
	bigBody := func(chunked bool) func(t *testing.T) *http.Request {
		return func(t *testing.T) *http.Request {
			big := map[string]string{"SecretName": "app/gen", "VersionId": "v9", "SecretData": strings.Repeat("y", kmsapi.DefaultMaxBodyBytes)}
			r, body := ts.acs3Request(t, "PutSecretValue", big, time.Time{})
			if chunked {
				// No Content-Length: the limit must hold while reading too.
				r.Body = io.NopCloser(bytes.NewReader(body))
				r.ContentLength = -1
			}
			return r
		}
	}

	cases := []struct {
		name   string
		req    func(t *testing.T) *http.Request
		status int
		code   string
	}{
		{"V1 timestamp 16 minutes old", v1(now.Add(-16 * time.Minute)), 400, "IllegalTimestamp"},
		{"V1 timestamp 16 minutes ahead", v1(now.Add(16 * time.Minute)), 400, "IllegalTimestamp"},
		{"ACS3 x-acs-date 16 minutes old", acs3(now.Add(-16 * time.Minute)), 400, "IllegalTimestamp"},
		{"ACS3 x-acs-date 16 minutes ahead", acs3(now.Add(16 * time.Minute)), 400, "IllegalTimestamp"},
		{"V1 timestamp not ISO 8601", func(t *testing.T) *http.Request {
			p := ts.v1Params("PutSecretValue", now, put)
			p["Timestamp"] = now.Format(time.RFC1123)
			return ts.v1Request(t, p)
		}, 400, "IllegalTimestamp"},
		{"V1 wrong signature", func(t *testing.T) *http.Request {
			r := ts.v1Request(t, ts.v1Params("PutSecretValue", now, put))
			q := r.URL.Query()
			q.Set("SecretData", "tampered") // after signing
			r.URL.RawQuery = q.Encode()
			return r
		}, 400, "SignatureDoesNotMatch"},
		{"V1 unknown access key id", func(t *testing.T) *http.Request {
			p := ts.v1Params("PutSecretValue", now, put)
			p["AccessKeyId"] = "LTAI5tUnknownUnknown0000"
			return ts.v1Request(t, p)
		}, 404, "InvalidAccessKeyId.NotFound"},
		{"ACS3 body changed after signing", func(t *testing.T) *http.Request {
			r, body := ts.acs3Request(t, "PutSecretValue", put, time.Time{})
			tampered := bytes.Replace(body, []byte("sneaky"), []byte("evil!!"), 1)
			r.Body = io.NopCloser(bytes.NewReader(tampered))
			return r
		}, 400, "SignatureDoesNotMatch"},
		{"ACS3 body and x-acs-content-sha256 changed after signing", func(t *testing.T) *http.Request {
			r, body := ts.acs3Request(t, "PutSecretValue", put, time.Time{})
			tampered := bytes.Replace(body, []byte("sneaky"), []byte("evil!!"), 1)
			r.Body = io.NopCloser(bytes.NewReader(tampered))
			r.Header.Set(acssign.HeaderContentSHA256, acssign.HashPayload(tampered))
			return r
		}, 400, "SignatureDoesNotMatch"},
		{"ACS3 action header changed after signing", func(t *testing.T) *http.Request {
			r, _ := ts.acs3Request(t, "PutSecretValue", map[string]string{"SecretName": "app/gen", "RecoveryWindowInDays": "7"}, time.Time{})
			r.Header.Set(acssign.HeaderAction, "DeleteSecret")
			return r
		}, 400, "SignatureDoesNotMatch"},
		{"ACS3 wrong secret", func(t *testing.T) *http.Request {
			r, body := ts.acs3Request(t, "PutSecretValue", put, time.Time{})
			acssign.SignRequestACS3(r, body, ts.keyID, ts.keySecret+"x") // re-sign, same date and nonce
			return r
		}, 400, "SignatureDoesNotMatch"},
		{"ACS3 unknown access key id", func(t *testing.T) *http.Request {
			r, body := ts.acs3Request(t, "PutSecretValue", put, time.Time{})
			acssign.SignRequestACS3(r, body, "LTAI5tUnknownUnknown0000", ts.keySecret)
			return r
		}, 404, "InvalidAccessKeyId.NotFound"},
		{"oversize body (Content-Length)", bigBody(false), 413, "InvalidParameter"},
		{"oversize body (chunked)", bigBody(true), 413, "InvalidParameter"},
		{"V1 unknown action", func(t *testing.T) *http.Request {
			return ts.v1Request(t, ts.v1Params("PutSecretValues", now, put))
		}, 400, "InvalidAction.NotFound"},
		{"ACS3 unknown action", func(t *testing.T) *http.Request {
			r, _ := ts.acs3Request(t, "DropAllSecrets", put, time.Time{})
			return r
		}, 400, "InvalidAction.NotFound"},
		{"V1 missing Action", func(t *testing.T) *http.Request {
			return ts.v1Request(t, ts.v1Params("", now, put))
		}, 400, "MissingParameter"},
		{"ACS3 missing x-acs-action", func(t *testing.T) *http.Request {
			r, _ := ts.acs3Request(t, "", put, time.Time{})
			return r
		}, 400, "MissingParameter"},
		{"no auth at all", func(t *testing.T) *http.Request {
			q := url.Values{"Action": {"PutSecretValue"}, "Version": {kmsVersion}, "SecretName": {"app/gen"}, "VersionId": {"v9"}, "SecretData": {"sneaky"}}
			r, _ := http.NewRequest(http.MethodPost, ts.HTTPURL+"/?"+q.Encode(), nil)
			return r
		}, 400, "MissingParameter"},
		{"no auth, ACS3 headers without Authorization", func(t *testing.T) *http.Request {
			r, _ := ts.acs3Request(t, "PutSecretValue", put, time.Time{})
			r.Header.Del("Authorization")
			return r
		}, 400, "MissingParameter"},
		{"unsupported Authorization scheme", func(t *testing.T) *http.Request {
			r, _ := ts.acs3Request(t, "PutSecretValue", put, time.Time{})
			r.Header.Set("Authorization", "Bearer "+ts.keySecret)
			return r
		}, 400, "IncompleteSignature"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := rawDo(t, tc.req(t))
			if res.Status != tc.status || res.Code != tc.code {
				t.Fatalf("got %d %q, want %d %q; body %.300s", res.Status, res.Code, tc.status, tc.code, res.Body)
			}
			if after := snapshot(t, admin); after != before {
				t.Fatalf("storage changed:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}

// TestReplayedRequest sends the same signed request twice (both schemes):
// the first takes effect, the second is SignatureNonceUsed and changes
// nothing, not even when what it would do is otherwise allowed.
func TestReplayedRequest(t *testing.T) {
	ts := startServer(t)
	admin := ts.sdk(t, sdkModes[0])
	badInputFixture(t, admin)

	build := map[string]func(t *testing.T, version string) (*http.Request, []byte){
		"V1": func(t *testing.T, version string) (*http.Request, []byte) {
			p := ts.v1Params("PutSecretValue", time.Now(), map[string]string{"SecretName": "app/gen", "VersionId": version, "SecretData": "replayed"})
			return ts.v1Request(t, p), nil
		},
		"ACS3": func(t *testing.T, version string) (*http.Request, []byte) {
			return ts.acs3Request(t, "PutSecretValue", map[string]string{"SecretName": "app/gen", "VersionId": version, "SecretData": "replayed"}, time.Time{})
		},
	}
	for _, scheme := range []string{"V1", "ACS3"} {
		t.Run(scheme, func(t *testing.T) {
			version := "replay-" + scheme
			req, body := build[scheme](t, version)
			replay := req.Clone(req.Context())
			if body != nil {
				req.Body = io.NopCloser(bytes.NewReader(body))
				replay.Body = io.NopCloser(bytes.NewReader(body))
			}
			if res := rawDo(t, req); res.Status != 200 {
				t.Fatalf("first request: %d %s", res.Status, res.Body)
			}
			// Another writer moves ACSCurrent on. An accepted replay of the
			// (idempotent) PutSecretValue would move it back.
			must(admin.PutSecretValue(&kms.PutSecretValueRequest{SecretName: tea.String("app/gen"), VersionId: tea.String("after-" + scheme), SecretData: tea.String("later")}))
			mid := snapshot(t, admin)

			res := rawDo(t, replay)
			if res.Status != 400 || res.Code != "SignatureNonceUsed" {
				t.Fatalf("replay: got %d %q, want 400 SignatureNonceUsed; body %s", res.Status, res.Code, res.Body)
			}
			if after := snapshot(t, admin); after != mid {
				t.Fatalf("replay changed storage:\nbefore:\n%s\nafter:\n%s", mid, after)
			}
			cur := must(admin.GetSecretValue(&kms.GetSecretValueRequest{SecretName: tea.String("app/gen")}))
			if v := tea.StringValue(cur.Body.VersionId); v != "after-"+scheme {
				t.Errorf("current version = %s after the replay, want after-%s", v, scheme)
			}
			vers := must(admin.ListSecretVersionIds(&kms.ListSecretVersionIdsRequest{SecretName: tea.String("app/gen"), IncludeDeprecated: tea.String("true")}))
			n := 0
			for _, v := range vers.Body.VersionIds.VersionId {
				if tea.StringValue(v.VersionId) == version {
					n++
				}
			}
			if n != 1 {
				t.Errorf("version %s present %d times, want exactly once", version, n)
			}
		})
	}

	// A refused signature does not burn its nonce (or anyone could burn
	// the key holder's nonces); the correctly signed request then passes.
	p0 := ts.v1Params("ListSecrets", time.Now(), nil)
	forged := ts.v1Request(t, p0)
	q := forged.URL.Query()
	q.Set("Signature", "AAAA"+q.Get("Signature")[4:])
	forged.URL.RawQuery = q.Encode()
	if res := rawDo(t, forged); res.Code != "SignatureDoesNotMatch" {
		t.Fatalf("forged: %d %q", res.Status, res.Code)
	}
	delete(p0, "Signature")
	if res := rawDo(t, ts.v1Request(t, p0)); res.Status != 200 {
		t.Errorf("genuine request after a forged one with its nonce: %d %s", res.Status, res.Body)
	}

	// Inside the window is fine on both sides.
	for _, skew := range []time.Duration{-14 * time.Minute, 14 * time.Minute} {
		if res := rawDo(t, ts.v1Request(t, ts.v1Params("ListSecrets", time.Now().Add(skew), nil))); res.Status != 200 {
			t.Errorf("V1 timestamp %s away: %d %s", skew, res.Status, res.Body)
		}
		r, _ := ts.acs3Request(t, "ListSecrets", nil, time.Now().Add(skew))
		if res := rawDo(t, r); res.Status != 200 {
			t.Errorf("ACS3 x-acs-date %s away: %d %s", skew, res.Status, res.Body)
		}
	}

	// A nonce is bound to its signature: reusing it on a new, correctly
	// signed request is refused too.
	p := ts.v1Params("ListSecrets", time.Now(), nil)
	nonce := p["SignatureNonce"]
	if res := rawDo(t, ts.v1Request(t, p)); res.Status != 200 {
		t.Fatalf("ListSecrets: %d %s", res.Status, res.Body)
	}
	p2 := ts.v1Params("ListSecrets", time.Now(), map[string]string{"PageSize": "5"})
	p2["SignatureNonce"] = nonce
	if res := rawDo(t, ts.v1Request(t, p2)); res.Code != "SignatureNonceUsed" {
		t.Errorf("reused nonce on a new request: %d %q", res.Status, res.Code)
	}
}
