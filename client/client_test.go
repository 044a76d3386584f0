package client

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/keyhold/keyhold/acssign"
)

const (
	testAK     = "LTAItestkey"
	testSecret = "test-secret-do-not-print"
)

// captured is one request as the fake server saw it.
type captured struct {
	header http.Header
	host   string
	form   url.Values
	body   []byte
	method string
	path   string
}

// fakeServer answers every request with status/body and records it.
func fakeServer(t *testing.T, status int, body string) (*httptest.Server, func() captured) {
	t.Helper()
	var mu sync.Mutex
	var last captured
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(b))
		mu.Lock()
		last = captured{header: r.Header.Clone(), host: r.Host, form: form, body: b, method: r.Method, path: r.URL.Path}
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv, func() captured { mu.Lock(); defer mu.Unlock(); return last }
}

func newTestClient(t *testing.T, endpoint, scheme string) *Client {
	t.Helper()
	c, err := New(Config{Endpoint: endpoint, AccessKeyID: testAK, AccessKeySecret: testSecret, SignatureScheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestACS3RequestCarriesSignedHeadersAndVerifies(t *testing.T) {
	srv, last := fakeServer(t, 200, `{"RequestId":"r1","SecretName":"db","VersionId":"v1","VersionStages":{"VersionStage":["ACSCurrent"]}}`)
	c := newTestClient(t, srv.URL, "")
	out, err := c.GetSecretValue(context.Background(), &GetSecretValueRequest{SecretName: "db"})
	if err != nil {
		t.Fatal(err)
	}
	if out.SecretName != "db" || out.VersionStages.VersionStage[0] != "ACSCurrent" {
		t.Fatalf("decoded %+v", out)
	}
	got := last()
	if got.method != http.MethodPost || got.path != "/" {
		t.Fatalf("request %s %s, want POST /", got.method, got.path)
	}
	for h, want := range map[string]string{
		"x-acs-action": "GetSecretValue", "x-acs-version": VersionKMS,
		"content-type": "application/x-www-form-urlencoded",
	} {
		if v := got.header.Get(h); v != want {
			t.Errorf("%s = %q, want %q", h, v, want)
		}
	}
	for _, h := range []string{"x-acs-date", "x-acs-signature-nonce", "x-acs-content-sha256", "Authorization"} {
		if got.header.Get(h) == "" {
			t.Errorf("header %s missing", h)
		}
	}
	if got.form.Get("Action") != "" || got.form.Get("Signature") != "" {
		t.Error("ACS3 request must not carry V1 common parameters")
	}
	if got.form.Get("SecretName") != "db" || got.form.Get("RegionId") != DefaultRegionID {
		t.Errorf("form = %v", got.form)
	}
	if got.header.Get("x-acs-content-sha256") != acssign.HashPayload(got.body) {
		t.Error("content hash does not match body")
	}
	akID, signed, sig, err := acssign.ParseAuthorization(got.header.Get("Authorization"))
	if err != nil || akID != testAK {
		t.Fatalf("authorization: %v %q", err, akID)
	}
	for _, must := range []string{"host", "x-acs-action", "x-acs-version", "x-acs-date", "x-acs-signature-nonce", "x-acs-content-sha256", "content-type"} {
		if !contains(signed, must) {
			t.Errorf("SignedHeaders %v lacks %s", signed, must)
		}
	}
	h := got.header.Clone()
	h.Set("Host", got.host)
	canon := acssign.CanonicalRequestACS3("POST", "/", map[string]string{}, h, signed, acssign.HashPayload(got.body))
	if want := acssign.SignACS3(canon, testSecret); sig != want {
		t.Error("ACS3 signature does not verify")
	}
}

func TestV1RequestCarriesCommonParametersAndVerifies(t *testing.T) {
	srv, last := fakeServer(t, 200, `{"RequestId":"r1"}`)
	c := newTestClient(t, srv.URL, "V1")
	if _, err := c.EnableKey(context.Background(), "key-1"); err != nil {
		t.Fatal(err)
	}
	got := last()
	if got.header.Get("Authorization") != "" || got.header.Get("x-acs-action") != "" {
		t.Error("V1 request must not carry ACS3 headers")
	}
	params := map[string]string{}
	for k, v := range got.form {
		params[k] = v[0]
	}
	for k, want := range map[string]string{
		"Action": "EnableKey", "Version": VersionKMS, "Format": "JSON", "AccessKeyId": testAK,
		"SignatureMethod": "HMAC-SHA1", "SignatureVersion": "1.0", "KeyId": "key-1",
	} {
		if params[k] != want {
			t.Errorf("%s = %q, want %q", k, params[k], want)
		}
	}
	if params["SignatureNonce"] == "" || params["Timestamp"] == "" {
		t.Error("nonce or timestamp missing")
	}
	if want := acssign.SignV1("POST", params, testSecret); params["Signature"] != want {
		t.Error("V1 signature does not verify")
	}
}

func TestErrorResponseBecomesError(t *testing.T) {
	srv, _ := fakeServer(t, 404, `{"RequestId":"req-9","HostId":"kms","Code":"Forbidden.ResourceNotFound","Message":"The resource does not exist."}`)
	c := newTestClient(t, srv.URL, "")
	_, err := c.DescribeSecret(context.Background(), "nope", false)
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %T %v, want *Error", err, err)
	}
	if e.Code != "Forbidden.ResourceNotFound" || e.RequestId != "req-9" || e.HTTPStatus != 404 {
		t.Fatalf("error = %+v", e)
	}
	if !IsCode(fmt.Errorf("wrapped: %w", err), "Forbidden.ResourceNotFound") || IsCode(err, "Other") {
		t.Error("IsCode")
	}
	if s := err.Error(); s != "Forbidden.ResourceNotFound: The resource does not exist. (RequestId: req-9)" {
		t.Errorf("Error() = %q", s)
	}
}

func TestNonJSONErrorIsCodedByStatus(t *testing.T) {
	srv, _ := fakeServer(t, 502, `<html>bad gateway</html>`)
	c := newTestClient(t, srv.URL, "")
	_, err := c.ListKeys(context.Background(), Page{}, "")
	if !IsCode(err, "HTTP502") {
		t.Fatalf("err = %v", err)
	}
}

func TestParamEncoding(t *testing.T) {
	srv, last := fakeServer(t, 200, `{}`)
	c := newTestClient(t, srv.URL, "")
	ctx := context.Background()
	tests := []struct {
		name string
		call func() error
		want map[string]string
		none []string
	}{
		{"create secret tags and booleans", func() error {
			_, err := c.CreateSecret(ctx, &CreateSecretRequest{SecretName: "a b", SecretData: "p&w=1", VersionId: "v1",
				Tags: []Tag{{TagKey: "env", TagValue: "prod"}}, EnableAutomaticRotation: true, RotationInterval: "7d"})
			return err
		}, map[string]string{"SecretName": "a b", "SecretData": "p&w=1", "Tags": `[{"TagKey":"env","TagValue":"prod"}]`,
			"EnableAutomaticRotation": "true", "RotationInterval": "7d"}, []string{"Description", "ExtendedConfig", "SecretType"}},
		{"put value stages as JSON array", func() error {
			_, err := c.PutSecretValue(ctx, &PutSecretValueRequest{SecretName: "s", VersionId: "v2", SecretData: "x", VersionStages: []string{"ACSCurrent", "blue"}})
			return err
		}, map[string]string{"VersionStages": `["ACSCurrent","blue"]`}, nil},
		{"required false boolean is sent", func() error {
			_, err := c.UpdateSecretRotationPolicy(ctx, &UpdateSecretRotationPolicyRequest{SecretName: "s"})
			return err
		}, map[string]string{"EnableAutomaticRotation": "false"}, []string{"RotationInterval"}},
		{"list secrets filters and paging", func() error {
			_, err := c.ListSecrets(ctx, &ListSecretsRequest{Page: Page{PageNumber: 2, PageSize: 50}, Filters: []Filter{{Key: "SecretName", Values: []string{"db"}}}})
			return err
		}, map[string]string{"PageNumber": "2", "PageSize": "50", "Filters": `[{"Key":"SecretName","Values":["db"]}]`}, []string{"FetchTags"}},
		{"list tag resources batch form", func() error {
			_, err := c.ListTagResources(ctx, &ListTagResourcesRequest{ResourceType: "secret", ResourceIds: []string{"a", "b"}, Tags: []Tag{{TagKey: "k", TagValue: "v"}}})
			return err
		}, map[string]string{"ResourceId.1": "a", "ResourceId.2": "b", "Tag.1.Key": "k", "Tag.1.Value": "v"}, nil},
		{"encryption context", func() error {
			_, err := c.Encrypt(ctx, &EncryptRequest{KeyId: "alias/app", Plaintext: "aGk=", EncryptionContext: map[string]string{"app": "x"}})
			return err
		}, map[string]string{"KeyId": "alias/app", "Plaintext": "aGk=", "EncryptionContext": `{"app":"x"}`}, nil},
		{"untag keys", func() error {
			_, err := c.UntagResource(ctx, &UntagResourceRequest{KeyId: "k1", TagKeys: []string{"a", "b"}})
			return err
		}, map[string]string{"KeyId": "k1", "TagKeys": `["a","b"]`}, []string{"SecretName"}},
		{"custom data", func() error {
			_, err := c.UpdateSecret(ctx, &UpdateSecretRequest{SecretName: "s", CustomData: map[string]string{"owner": "ops"}})
			return err
		}, map[string]string{"ExtendedConfig.CustomData": `{"owner":"ops"}`}, []string{"Description"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); err != nil {
				t.Fatal(err)
			}
			form := last().form
			for k, want := range tt.want {
				if got := form.Get(k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			for _, k := range tt.none {
				if form.Has(k) {
					t.Errorf("%s sent although unset", k)
				}
			}
		})
	}
}

func TestReadsRetryOnConnectionErrorWritesDoNot(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			// Drop the connection without answering, as a dying replica would.
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
			return
		}
		io.WriteString(w, `{"RequestId":"ok","Keys":{"Key":[{"KeyId":"k1"}]},"TotalCount":1}`)
	}))
	defer srv.Close()
	c := newTestClient(t, srv.URL, "")
	out, err := c.ListKeys(context.Background(), Page{}, "")
	if err != nil || out.TotalCount != 1 || n.Load() != 2 {
		t.Fatalf("read: out=%+v err=%v attempts=%d", out, err, n.Load())
	}
	n.Store(0)
	if _, err := c.EnableKey(context.Background(), "k1"); err == nil || n.Load() != 1 {
		t.Fatalf("write: err=%v attempts=%d, want one failed attempt", err, n.Load())
	}
}

func TestTLSPinnedToCA(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"RequestId":"tls"}`)
	}))
	defer srv.Close()
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})

	unpinned, _ := New(Config{Endpoint: srv.URL, AccessKeyID: testAK, AccessKeySecret: testSecret, ReadRetries: -1})
	if _, err := unpinned.DescribeKey(context.Background(), "k"); err == nil {
		t.Fatal("unknown CA accepted")
	}
	pinned, err := New(Config{Endpoint: strings.TrimPrefix(srv.URL, "https://"), AccessKeyID: testAK, AccessKeySecret: testSecret, CACertPEM: caPEM})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pinned.DescribeKey(context.Background(), "k"); err != nil {
		t.Fatalf("pinned CA: %v", err)
	}
}

func TestNewValidatesConfig(t *testing.T) {
	for _, cfg := range []Config{
		{AccessKeyID: "a", AccessKeySecret: "b"},
		{Endpoint: "https://h", AccessKeyID: "a"},
		{Endpoint: "ftp://h", AccessKeyID: "a", AccessKeySecret: "b"},
		{Endpoint: "https://h/path", AccessKeyID: "a", AccessKeySecret: "b"},
		{Endpoint: "https://h", AccessKeyID: "a", AccessKeySecret: "b", SignatureScheme: "V9"},
		{Endpoint: "https://h", AccessKeyID: "a", AccessKeySecret: "b", CACertPEM: []byte("junk")},
		{Endpoint: "https://h", AccessKeyID: "a", AccessKeySecret: "b", HTTPClient: http.DefaultClient, InsecureSkipVerify: true},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}

func TestRedactingStringers(t *testing.T) {
	v := &GetSecretValueResponse{SecretName: "s", SecretData: "hunter2"}
	p := PlaintextResponse{Plaintext: "c2VjcmV0"}
	for _, s := range []string{fmt.Sprint(v), fmt.Sprintf("%+v", *v), fmt.Sprintf("%#v", v), fmt.Sprint(p)} {
		if strings.Contains(s, "hunter2") || strings.Contains(s, "c2VjcmV0") {
			t.Errorf("printed value: %s", s)
		}
	}
	// JSON must still carry the value: the CLI's json output relies on it.
	b, _ := json.Marshal(v)
	if !strings.Contains(string(b), "hunter2") {
		t.Error("JSON lost SecretData")
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
