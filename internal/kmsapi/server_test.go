package kmsapi

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	sdkutils "github.com/alibabacloud-go/darabonba-openapi/v2/utils"
	"github.com/alibabacloud-go/tea/dara"

	"github.com/keyhold/keyhold/acssign"
	"github.com/keyhold/keyhold/internal/errs"
)

// The wire tests run against a Server with fake credentials, an in-memory
// nonce store, a fixed clock and a few trivial routes.

var srvNow = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

const (
	rootID, rootSecret = "LTAIroot", "root-secret"
	userID, userSecret = "LTAIuser", "user-secret"
	offID              = "LTAIoff"
)

type srvCreds struct{ lookups int }

func (c *srvCreds) LookupAccessKey(_ context.Context, id string) (Principal, string, error) {
	c.lookups++
	switch id {
	case rootID:
		return Principal{Account: "1234", AccessKeyID: id, Kind: "root", Name: "root"}, rootSecret, nil
	case userID:
		return Principal{Account: "1234", AccessKeyID: id, Kind: "user", Name: "alice"}, userSecret, nil
	case offID:
		return Principal{}, "", errs.E(errs.KindForbidden, "The access key is disabled.")
	}
	return Principal{}, "", errs.E(errs.KindNotFound, "no such key")
}

type srvNonces struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

func (n *srvNonces) PutNonce(_ context.Context, key string, exp time.Time) (bool, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.seen == nil {
		n.seen = map[string]time.Time{}
	}
	if _, ok := n.seen[key]; ok {
		return false, nil
	}
	n.seen[key] = exp
	return true, nil
}

type srvAudit struct {
	mu     sync.Mutex
	events []Event
}

func (a *srvAudit) Record(_ context.Context, e Event) error {
	if e.Attempt {
		return nil // these tests count outcomes; audit_test.go checks attempts
	}
	a.mu.Lock()
	a.events = append(a.events, e)
	a.mu.Unlock()
	return nil
}

type srvItem struct {
	Name  string   `json:"Name"`
	Tags  []string `json:"Tag,omitempty"`
	Inner *struct {
		N int `json:"N"`
	} `json:"Inner,omitempty"`
}

type srvListResponse struct {
	TotalCount int `json:"TotalCount"`
	ItemList   struct {
		Item []srvItem `json:"Item"`
	} `json:"ItemList"`
	Note string `json:"Note"`
}

var srvRoutes = []Route{
	{Version: VersionKMS, Action: "Echo", Handler: func(_ context.Context, r *Request) (any, error) {
		return map[string]any{"Params": map[string]string(r.Params), "Caller": r.Principal.Name, "RequestIdSeen": r.RequestID}, nil
	}},
	{Version: VersionKMS, Action: "Nothing", Handler: func(context.Context, *Request) (any, error) { return nil, nil }},
	{Version: VersionKMS, Action: "List", Handler: func(context.Context, *Request) (any, error) {
		v := srvListResponse{TotalCount: 2, Note: `a<b & "c"`}
		v.ItemList.Item = []srvItem{{Name: "one", Tags: []string{"x", "y"}}, {Name: "two", Inner: &struct {
			N int `json:"N"`
		}{7}}}
		return v, nil
	}},
	{Version: VersionKMS, Action: "Missing", Handler: func(context.Context, *Request) (any, error) {
		return nil, errs.E(errs.KindSecretNotFound, "The secret is not found.")
	}},
	{Version: VersionKMS, Action: "Plain", Handler: func(context.Context, *Request) (any, error) {
		return nil, errors.New("connect db: password=hunter2 refused")
	}},
	{Version: VersionKMS, Action: "Panic", Handler: func(context.Context, *Request) (any, error) {
		panic("boom")
	}},
	{Version: VersionKeyhold, Action: "DescribeDeployment", Handler: func(context.Context, *Request) (any, error) {
		return struct{}{}, nil
	}},
}

type srvFixture struct {
	srv    *Server
	creds  *srvCreds
	nonces *srvNonces
	audit  *srvAudit
	logs   *bytes.Buffer
}

func newSrv(t testing.TB, mod func(*Config)) *srvFixture {
	f := &srvFixture{creds: &srvCreds{}, nonces: &srvNonces{}, audit: &srvAudit{}, logs: &bytes.Buffer{}}
	cfg := Config{
		Region: "cn-hangzhou", Credentials: f.creds, Nonces: f.nonces, Audit: f.audit,
		Logger: slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:    func() time.Time { return srvNow },
	}
	if mod != nil {
		mod(&cfg)
	}
	f.srv = New(cfg, srvRoutes)
	return f
}

func (f *srvFixture) do(r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	f.srv.ServeHTTP(w, r)
	return w
}

// v1Params are the common V1 parameters for action, signed later.
func v1Params(action, id, nonce string) map[string]string {
	return map[string]string{
		"Action": action, "Version": VersionKMS, "Format": "JSON", "AccessKeyId": id,
		"SignatureMethod": "HMAC-SHA1", "SignatureVersion": "1.0", "SignatureNonce": nonce,
		"Timestamp": srvNow.Add(-time.Minute).Format(acssign.TimeFormat), "SignatureType": "",
	}
}

func encode(m map[string]string) string {
	v := url.Values{}
	for k, x := range m {
		v.Set(k, x)
	}
	return v.Encode()
}

// v1Request signs query+form with acssign and puts form (if any) in the body.
func v1Request(method string, query, form map[string]string, secret string) *http.Request {
	all := map[string]string{}
	for k, v := range query {
		all[k] = v
	}
	for k, v := range form {
		all[k] = v
	}
	q := map[string]string{"Signature": acssign.SignV1(method, all, secret)}
	for k, v := range query {
		q[k] = v
	}
	var body io.Reader
	if form != nil {
		body = strings.NewReader(encode(form))
	}
	r := httptest.NewRequest(method, "http://kms.test/?"+encode(q), body)
	if form != nil {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	return r
}

// acs3Request signs with acssign.SignRequestACS3.
func acs3Request(action, id, secret, nonce string, query map[string]string, form string) *http.Request {
	u := "http://kms.test/"
	if len(query) > 0 {
		u += "?" + encode(query)
	}
	r := httptest.NewRequest("POST", u, strings.NewReader(form))
	if form != "" {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	r.Header.Set(acssign.HeaderAction, action)
	r.Header.Set(acssign.HeaderVersion, VersionKMS)
	r.Header.Set(acssign.HeaderDate, srvNow.Add(-time.Minute).Format(acssign.TimeFormat))
	r.Header.Set(acssign.HeaderNonce, nonce)
	acssign.SignRequestACS3(r, []byte(form), id, secret)
	return r
}

// sdkACS3Request signs the way darabonba-openapi's DoRequest does.
func sdkACS3Request(action, nonce string, query map[string]string) *http.Request {
	headers := map[string]*string{
		"host": dara.String("kms.test"), "x-acs-version": dara.String(VersionKMS), "x-acs-action": dara.String(action),
		"user-agent": dara.String("AlibabaCloud Go"), "x-acs-date": dara.String(srvNow.Format(acssign.TimeFormat)),
		"x-acs-signature-nonce": dara.String(nonce), "accept": dara.String("application/json"),
		"x-acs-content-sha256": dara.String(acssign.HashPayload(nil)),
	}
	q := map[string]*string{}
	for k, v := range query {
		q[k] = dara.String(v)
	}
	dr := dara.NewRequest()
	dr.Method, dr.Pathname, dr.Query, dr.Headers = dara.String("POST"), dara.String("/"), q, headers
	auth := sdkutils.GetAuthorization(dr, dara.String(acssign.AlgorithmACS3), headers["x-acs-content-sha256"], dara.String(rootID), dara.String(rootSecret))
	r := httptest.NewRequest("POST", "http://kms.test/?"+encode(query), nil)
	for k, v := range headers {
		if k != "host" {
			r.Header.Set(k, *v)
		}
	}
	r.Header.Set("Authorization", *auth)
	return r
}

// sdkV1Request signs the way DoRPCRequest does (SignatureAlgorithm "v2"):
// parameters in the query, x-acs-action/x-acs-version headers as well.
func sdkV1Request(action, nonce string, extra map[string]string) *http.Request {
	p := v1Params(action, rootID, nonce)
	p["Format"] = "json"
	delete(p, "SignatureType")
	for k, v := range extra {
		p[k] = v
	}
	sp := map[string]*string{}
	for k, v := range p {
		sp[k] = dara.String(v)
	}
	p["Signature"] = *sdkutils.GetRPCSignature(sp, dara.String("POST"), dara.String(rootSecret))
	r := httptest.NewRequest("POST", "http://kms.test/?"+encode(p), nil)
	r.Header.Set(acssign.HeaderAction, action)
	r.Header.Set(acssign.HeaderVersion, VersionKMS)
	return r
}

type srvResult struct {
	status int
	body   map[string]any
	raw    string
}

func decode(t testing.TB, w *httptest.ResponseRecorder) srvResult {
	t.Helper()
	res := srvResult{status: w.Code, raw: w.Body.String()}
	if strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(w.Body.Bytes(), &res.body); err != nil {
			t.Fatalf("body %q: %v", res.raw, err)
		}
		if id := w.Header().Get("x-acs-request-id"); id == "" || res.body["RequestId"] != id {
			t.Fatalf("RequestId %v, header %q", res.body["RequestId"], id)
		}
	}
	return res
}

func TestSchemesAccepted(t *testing.T) {
	tests := []struct {
		name string
		req  func() *http.Request
	}{
		{"V1 GET query", func() *http.Request {
			q := v1Params("Echo", rootID, "n1")
			q["SecretName"] = "a b*~"
			return v1Request("GET", q, nil, rootSecret)
		}},
		{"V1 POST form body merged with query", func() *http.Request {
			return v1Request("POST", v1Params("Echo", rootID, "n2"), map[string]string{"SecretName": "a b*~"}, rootSecret)
		}},
		{"V1 signed by the SDK (DoRPCRequest)", func() *http.Request {
			return sdkV1Request("Echo", "n3", map[string]string{"SecretName": "a b*~"})
		}},
		{"ACS3 signed by acssign, query", func() *http.Request {
			return acs3Request("Echo", rootID, rootSecret, "n4", map[string]string{"SecretName": "a b*~"}, "")
		}},
		{"ACS3 signed by acssign, form body", func() *http.Request {
			return acs3Request("Echo", rootID, rootSecret, "n5", nil, "SecretName=a%20b%2A~")
		}},
		{"ACS3 signed by the SDK (DoRequest)", func() *http.Request {
			return sdkACS3Request("Echo", "n6", map[string]string{"SecretName": "a b*~"})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newSrv(t, nil)
			res := decode(t, f.do(tt.req()))
			if res.status != 200 {
				t.Fatalf("status %d: %s", res.status, res.raw)
			}
			params := res.body["Params"].(map[string]any)
			if params["SecretName"] != "a b*~" {
				t.Errorf("SecretName = %v", params["SecretName"])
			}
			for _, hidden := range signatureParams {
				if _, ok := params[hidden]; ok {
					t.Errorf("handler sees %s", hidden)
				}
			}
			if res.body["Caller"] != "root" || res.body["RequestIdSeen"] != res.body["RequestId"] {
				t.Errorf("body %v", res.body)
			}
			if len(f.audit.events) != 1 || !f.audit.events[0].Authorized || f.audit.events[0].Action != "kms:Echo" {
				t.Errorf("audit %+v", f.audit.events)
			}
		})
	}
}

func TestRefusals(t *testing.T) {
	tamperedBody := func() *http.Request {
		r := acs3Request("Echo", rootID, rootSecret, "t1", nil, "SecretName=a")
		r.Body = io.NopCloser(strings.NewReader("SecretName=b"))
		return r
	}
	tests := []struct {
		name   string
		req    func() *http.Request
		status int
		code   string
	}{
		{"V1 wrong signature", func() *http.Request {
			return v1Request("GET", v1Params("Echo", rootID, "x1"), nil, "wrong")
		}, 400, "SignatureDoesNotMatch"},
		{"V1 parameter changed after signing", func() *http.Request {
			r := v1Request("POST", v1Params("Echo", rootID, "x2"), map[string]string{"SecretName": "a"}, rootSecret)
			r.Body = io.NopCloser(strings.NewReader("SecretName=b"))
			r.ContentLength = -1
			return r
		}, 400, "SignatureDoesNotMatch"},
		{"ACS3 wrong signature", func() *http.Request {
			return acs3Request("Echo", rootID, "wrong", "x3", nil, "")
		}, 400, "SignatureDoesNotMatch"},
		{"ACS3 tampered body", tamperedBody, 400, "SignatureDoesNotMatch"},
		{"ACS3 action header changed", func() *http.Request {
			r := acs3Request("Echo", rootID, rootSecret, "x4", nil, "")
			r.Header.Set(acssign.HeaderAction, "Nothing")
			return r
		}, 400, "SignatureDoesNotMatch"},
		{"ACS3 date not signed", func() *http.Request {
			r := acs3Request("Echo", rootID, rootSecret, "x5", nil, "")
			a := r.Header.Get("Authorization")
			r.Header.Set("Authorization", strings.Replace(a, "x-acs-date;", "", 1))
			return r
		}, 400, "IncompleteSignature"},
		{"ACS3 malformed authorization", func() *http.Request {
			r := acs3Request("Echo", rootID, rootSecret, "x6", nil, "")
			r.Header.Set("Authorization", "ACS3-HMAC-SHA256 Credential="+rootID)
			return r
		}, 400, "IncompleteSignature"},
		{"other Authorization scheme", func() *http.Request {
			r := httptest.NewRequest("POST", "http://kms.test/", nil)
			r.Header.Set("Authorization", "Bearer x")
			return r
		}, 400, "IncompleteSignature"},
		{"no signature at all", func() *http.Request {
			return httptest.NewRequest("POST", "http://kms.test/?Action=Echo&Version=2016-01-20", nil)
		}, 400, "MissingParameter"},
		{"V1 expired timestamp", func() *http.Request {
			p := v1Params("Echo", rootID, "x7")
			p["Timestamp"] = srvNow.Add(-16 * time.Minute).Format(acssign.TimeFormat)
			return v1Request("GET", p, nil, rootSecret)
		}, 400, "IllegalTimestamp"},
		{"V1 future timestamp", func() *http.Request {
			p := v1Params("Echo", rootID, "x8")
			p["Timestamp"] = srvNow.Add(16 * time.Minute).Format(acssign.TimeFormat)
			return v1Request("GET", p, nil, rootSecret)
		}, 400, "IllegalTimestamp"},
		{"V1 garbled timestamp", func() *http.Request {
			p := v1Params("Echo", rootID, "x9")
			p["Timestamp"] = "yesterday"
			return v1Request("GET", p, nil, rootSecret)
		}, 400, "IllegalTimestamp"},
		{"ACS3 expired date", func() *http.Request {
			r := httptest.NewRequest("POST", "http://kms.test/", nil)
			r.Header.Set(acssign.HeaderAction, "Echo")
			r.Header.Set(acssign.HeaderVersion, VersionKMS)
			r.Header.Set(acssign.HeaderDate, srvNow.Add(-time.Hour).Format(acssign.TimeFormat))
			acssign.SignRequestACS3(r, nil, rootID, rootSecret)
			return r
		}, 400, "IllegalTimestamp"},
		{"V1 SignatureMethod not HMAC-SHA1", func() *http.Request {
			p := v1Params("Echo", rootID, "x10")
			p["SignatureMethod"] = "HMAC-SHA256"
			return v1Request("GET", p, nil, rootSecret)
		}, 400, "IncompleteSignature"},
		{"unknown access key", func() *http.Request {
			return v1Request("GET", v1Params("Echo", "LTAInobody", "x11"), nil, "x")
		}, 404, "InvalidAccessKeyId.NotFound"},
		{"disabled access key", func() *http.Request {
			return acs3Request("Echo", offID, "x", "x12", nil, "")
		}, 403, "Forbidden.AccessKeyDisabled"},
		{"unknown action", func() *http.Request {
			return acs3Request("NoSuchAction", rootID, rootSecret, "x13", nil, "")
		}, 400, "InvalidAction.NotFound"},
		{"unknown version", func() *http.Request {
			p := v1Params("Echo", rootID, "x14")
			p["Version"] = "1999-01-01"
			return v1Request("GET", p, nil, rootSecret)
		}, 400, "InvalidVersion"},
		{"missing Action", func() *http.Request {
			p := v1Params("Echo", rootID, "x15")
			delete(p, "Action")
			return v1Request("GET", p, nil, rootSecret)
		}, 400, "MissingParameter"},
		{"ACS3 missing x-acs-action", func() *http.Request {
			r := acs3Request("Echo", rootID, rootSecret, "x16", nil, "")
			r.Header.Del(acssign.HeaderAction)
			return r
		}, 400, "MissingParameter"},
		{"repeated parameter", func() *http.Request {
			r := v1Request("GET", v1Params("Echo", rootID, "x17"), nil, rootSecret)
			r.URL.RawQuery += "&SecretName=a&SecretName=b"
			return r
		}, 400, "InvalidParameter"},
		{"parameter both in query and body", func() *http.Request {
			q := v1Params("Echo", rootID, "x18")
			q["SecretName"] = "a"
			r := v1Request("POST", q, map[string]string{"Other": "1"}, rootSecret)
			r.Body = io.NopCloser(strings.NewReader("SecretName=b"))
			r.ContentLength = -1
			return r
		}, 400, "InvalidParameter"},
		{"non-form body", func() *http.Request {
			r := acs3Request("Echo", rootID, rootSecret, "x19", nil, `{"a":1}`)
			r.Header.Set("Content-Type", "application/json")
			return r
		}, 400, "InvalidParameter"},
		{"PUT", func() *http.Request { return httptest.NewRequest("PUT", "http://kms.test/", nil) }, 403, "UnsupportedHTTPMethod"},
		{"other path", func() *http.Request { return httptest.NewRequest("POST", "http://kms.test/x", nil) }, 404, "InvalidAction.NotFound"},
		{"user refused by the default authorizer", func() *http.Request {
			return acs3Request("Echo", userID, userSecret, "x20", nil, "")
		}, 403, "Forbidden.NoPermission"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newSrv(t, nil)
			res := decode(t, f.do(tt.req()))
			if res.status != tt.status || res.body["Code"] != tt.code {
				t.Fatalf("got %d %v, want %d %s: %s", res.status, res.body["Code"], tt.status, tt.code, res.raw)
			}
			for _, k := range []string{"RequestId", "HostId", "Code", "Message", "Recommend"} {
				if _, ok := res.body[k]; !ok {
					t.Errorf("error body lacks %s", k)
				}
			}
			if strings.Contains(res.raw, rootSecret) || strings.Contains(res.raw, "&%2F&") {
				t.Errorf("error body leaks signing material: %s", res.raw)
			}
			if len(f.audit.events) != 1 || f.audit.events[0].Code != tt.code || f.audit.events[0].Status != tt.status {
				t.Errorf("audit %+v", f.audit.events)
			}
		})
	}
}

func TestReplayedNonce(t *testing.T) {
	f := newSrv(t, nil)
	// A request with a bad signature must not burn the nonce.
	if res := decode(t, f.do(acs3Request("Echo", rootID, "wrong", "same", nil, ""))); res.body["Code"] != "SignatureDoesNotMatch" {
		t.Fatalf("bad signature: %s", res.raw)
	}
	if res := decode(t, f.do(acs3Request("Echo", rootID, rootSecret, "same", nil, ""))); res.status != 200 {
		t.Fatalf("first use: %s", res.raw)
	}
	if res := decode(t, f.do(acs3Request("Echo", rootID, rootSecret, "same", nil, ""))); res.status != 400 || res.body["Code"] != "SignatureNonceUsed" {
		t.Fatalf("replay: %s", res.raw)
	}
	// V1 shares the nonce space of its key.
	if res := decode(t, f.do(v1Request("GET", v1Params("Echo", rootID, "same"), nil, rootSecret))); res.body["Code"] != "SignatureNonceUsed" {
		t.Fatalf("V1 replay: %s", res.raw)
	}
	// Another key's nonces are its own.
	f2 := newSrv(t, func(c *Config) { c.Authorizer = allowAll{} })
	f2.nonces = f.nonces
	f2.srv.cfg.Nonces = f.nonces
	if res := decode(t, f2.do(acs3Request("Echo", userID, userSecret, "same", nil, ""))); res.status != 200 {
		t.Fatalf("other key, same nonce: %s", res.raw)
	}
}

type allowAll struct{}

func (allowAll) Authorize(context.Context, Principal, string, string, *Request) error { return nil }

func TestOversizeBodyRefusedBeforeParsing(t *testing.T) {
	for _, chunked := range []bool{false, true} {
		f := newSrv(t, func(c *Config) { c.MaxBodyBytes = 1024 })
		form := "SecretData=" + strings.Repeat("a", 2000)
		r := acs3Request("Echo", rootID, rootSecret, "big", nil, form)
		if chunked {
			r.ContentLength = -1
		}
		res := decode(t, f.do(r))
		if res.status != 413 || res.body["Code"] != "InvalidParameter" {
			t.Fatalf("chunked=%v: %d %s", chunked, res.status, res.raw)
		}
		if f.creds.lookups != 0 {
			t.Errorf("chunked=%v: credentials looked up for an oversize request", chunked)
		}
	}
}

func TestXMLRendering(t *testing.T) {
	f := newSrv(t, nil)
	p := v1Params("List", rootID, "xml1")
	p["Format"] = "xml"
	w := f.do(v1Request("GET", p, nil, rootSecret))
	if w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/xml") {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	id := w.Header().Get("x-acs-request-id")
	want := `<?xml version="1.0" encoding="UTF-8"?><ListResponse><RequestId>` + id + `</RequestId>` +
		`<TotalCount>2</TotalCount><ItemList>` +
		`<Item><Name>one</Name><Tag>x</Tag><Tag>y</Tag></Item>` +
		`<Item><Name>two</Name><Inner><N>7</N></Inner></Item>` +
		`</ItemList><Note>a&lt;b &amp; &#34;c&#34;</Note></ListResponse>`
	if got := w.Body.String(); got != want {
		t.Fatalf("XML\n got %s\nwant %s", got, want)
	}
	// And it reads back with a standard decoder into the JSON-shaped struct.
	var back struct {
		RequestId  string
		TotalCount int
		ItemList   struct {
			Item []struct {
				Name string
				Tag  []string
			}
		}
		Note string
	}
	if err := xml.Unmarshal(w.Body.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if back.RequestId != id || len(back.ItemList.Item) != 2 || back.ItemList.Item[0].Tag[1] != "y" || back.Note != `a<b & "c"` {
		t.Errorf("decoded %+v", back)
	}
}

func TestErrorRendering(t *testing.T) {
	for _, format := range []string{"JSON", "XML"} {
		t.Run(format, func(t *testing.T) {
			f := newSrv(t, nil)
			p := v1Params("Missing", rootID, "e-"+format)
			p["Format"] = format
			w := f.do(v1Request("GET", p, nil, rootSecret))
			if w.Code != 404 {
				t.Fatalf("status %d", w.Code)
			}
			var e struct {
				RequestId, HostId, Code, Message, Recommend string
			}
			if format == "XML" {
				if !strings.Contains(w.Body.String(), "<Error><RequestId>") {
					t.Fatalf("root: %s", w.Body)
				}
				if err := xml.Unmarshal(w.Body.Bytes(), &e); err != nil {
					t.Fatal(err)
				}
			} else if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil {
				t.Fatal(err)
			}
			if e.Code != "Forbidden.ResourceNotFound" || e.Message != "The secret is not found." || e.HostId != "kms.test" || e.RequestId != w.Header().Get("x-acs-request-id") {
				t.Errorf("error %+v", e)
			}
		})
	}
}

func TestInternalErrorsNotLeaked(t *testing.T) {
	for _, action := range []string{"Plain", "Panic"} {
		t.Run(action, func(t *testing.T) {
			f := newSrv(t, nil)
			res := decode(t, f.do(acs3Request(action, rootID, rootSecret, "i-"+action, nil, "")))
			if res.status != 500 || res.body["Code"] != "InternalFailure" || res.body["Message"] != "Internal Failure." {
				t.Fatalf("%d %s", res.status, res.raw)
			}
			if strings.Contains(res.raw, "hunter2") || strings.Contains(res.raw, "boom") {
				t.Errorf("cause leaked: %s", res.raw)
			}
			logs := f.logs.String()
			if !strings.Contains(logs, "api: internal failure") || !strings.Contains(logs, res.body["RequestId"].(string)) {
				t.Errorf("cause not logged with the request id:\n%s", logs)
			}
		})
	}
}

func TestParameterValuesNeverLogged(t *testing.T) {
	f := newSrv(t, nil)
	const value = "s3cr3t-VALUE"
	f.do(acs3Request("Echo", rootID, rootSecret, "log1", nil, "SecretData="+value))
	f.do(acs3Request("Plain", rootID, rootSecret, "log2", map[string]string{"SecretData": value}, ""))
	f.do(v1Request("GET", map[string]string{"SecretData": value, "Action": "Echo"}, nil, rootSecret))
	if strings.Contains(f.logs.String(), value) {
		t.Fatalf("a parameter value reached the log:\n%s", f.logs)
	}
	if !strings.Contains(f.logs.String(), "access_key_id="+rootID) {
		t.Errorf("log lacks the access key id:\n%s", f.logs)
	}
}

func TestVersionNamespaces(t *testing.T) {
	var got []string
	f := newSrv(t, func(c *Config) {
		c.Authorizer = authzFunc(func(_ Principal, action, resource string) error {
			got = append(got, action+" "+resource)
			return nil
		})
	})
	r := httptest.NewRequest("POST", "http://kms.test/", nil)
	r.Header.Set(acssign.HeaderAction, "DescribeDeployment")
	r.Header.Set(acssign.HeaderVersion, VersionKeyhold)
	r.Header.Set(acssign.HeaderDate, srvNow.Format(acssign.TimeFormat))
	acssign.SignRequestACS3(r, nil, userID, userSecret)
	if res := decode(t, f.do(r)); res.status != 200 {
		t.Fatalf("%s", res.raw)
	}
	if len(got) != 1 || got[0] != "keyhold:DescribeDeployment *" {
		t.Errorf("authorized %v", got)
	}
}

type authzFunc func(p Principal, action, resource string) error

func (f authzFunc) Authorize(_ context.Context, p Principal, action, resource string, _ *Request) error {
	return f(p, action, resource)
}

func TestEmptyResultAndOnBehalf(t *testing.T) {
	f := newSrv(t, nil)
	r := httptest.NewRequest("POST", "http://kms.test/", nil)
	r.Header.Set(acssign.HeaderAction, "Nothing")
	r.Header.Set(acssign.HeaderVersion, VersionKMS)
	r.Header.Set("x-keyhold-on-behalf-of", "bob/session-1")
	r.Header.Set(acssign.HeaderDate, srvNow.Format(acssign.TimeFormat))
	acssign.SignRequestACS3(r, nil, rootID, rootSecret)
	res := decode(t, f.do(r))
	if res.status != 200 || len(res.body) != 1 {
		t.Fatalf("%s", res.raw)
	}
	if ev := f.audit.events[0]; ev.OnBehalf != "bob/session-1" || ev.SourceIP != "192.0.2.1" || ev.Principal.Name != "root" {
		t.Errorf("audit %+v", ev)
	}
}

func TestHealth(t *testing.T) {
	var notReady error
	f := newSrv(t, func(c *Config) { c.Ready = func() error { return notReady } })
	for _, tt := range []struct {
		path  string
		ready error
		want  int
	}{
		{"/healthz", nil, 200},
		{"/readyz", nil, 200},
		{"/healthz", errors.New("storage closed"), 200},
		{"/readyz", errors.New("storage closed"), 503},
	} {
		notReady = tt.ready
		if w := f.do(httptest.NewRequest("GET", "http://kms.test"+tt.path, nil)); w.Code != tt.want {
			t.Errorf("%s (ready=%v) = %d, want %d", tt.path, tt.ready, w.Code, tt.want)
		}
	}
	if n := len(f.audit.events); n != 0 {
		t.Errorf("health checks audited: %d", n)
	}
}

func TestNewRefusesDuplicateRoutes(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	New(Config{Credentials: &srvCreds{}, Nonces: &srvNonces{}}, srvRoutes, srvRoutes[:1])
}

func TestRequestIDForm(t *testing.T) {
	id := newRequestID()
	if len(id) != 36 || id != strings.ToUpper(id) || id[14] != '4' || strings.Count(id, "-") != 4 {
		t.Errorf("request id %q", id)
	}
	if newRequestID() == id {
		t.Error("request ids repeat")
	}
}

func FuzzParseParams(f *testing.F) {
	f.Add("Action=Echo&Version=2016-01-20", "SecretName=a%20b", "application/x-www-form-urlencoded")
	f.Add("a=1&a=2", "", "")
	f.Add("%zz", "b=%", "text/plain")
	f.Add("x=1", "x=2", "application/x-www-form-urlencoded; charset=utf-8")
	f.Fuzz(func(t *testing.T, rawQuery, body, contentType string) {
		r := &http.Request{Method: "POST", URL: &url.URL{Path: "/", RawQuery: rawQuery}, Header: http.Header{}}
		r.Header.Set("Content-Type", contentType)
		query, params, err := parseParams(r, []byte(body))
		if err != nil {
			var e *errs.Error
			if !errors.As(err, &e) || e.Kind != errs.KindInvalidParameter {
				t.Fatalf("unexpected error type %T %v", err, err)
			}
			if strings.Contains(e.Message, body) && body != "" && len(body) > 3 {
				t.Fatalf("message echoes the body: %q", e.Message)
			}
			return
		}
		for k, v := range query {
			if params[k] != v {
				t.Fatalf("query %s lost in merge", k)
			}
		}
		if len(params) < len(query) {
			t.Fatal("params smaller than query")
		}
	})
}

// BenchmarkServeHTTP measures the wire overhead of one ACS3-signed request
// to a trivial handler: parse, verify, nonce, dispatch, render.
func BenchmarkServeHTTP(b *testing.B) {
	f := newSrv(b, func(c *Config) { c.Logger = slog.New(slog.DiscardHandler); c.Audit = nil })
	const form = "SecretName=bench&VersionStage=ACSCurrent"
	reqs := make([]*http.Request, b.N)
	for i := range reqs {
		reqs[i] = acs3Request("Nothing", rootID, rootSecret, "bench-"+time.Duration(i).String(), nil, form)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		r := reqs[i]
		r.Body = io.NopCloser(strings.NewReader(form))
		w := httptest.NewRecorder()
		f.srv.ServeHTTP(w, r)
		if w.Code != 200 {
			b.Fatalf("%d %s", w.Code, w.Body)
		}
	}
}
