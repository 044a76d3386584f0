package server_test

// Format=XML, as the Java Secrets Manager client asks for it. The shape
// checked here is what Alibaba Cloud's Java SDK reads
// (aliyun/aliyun-openapi-java-sdk, aliyun-java-sdk-core
// com/aliyuncs/reader/XmlReader.java, and the generated KMS unmarshallers
// such as ListSecretsResponseUnmarshaller):
//   - the root element's name is ignored by the reader (the path starts at
//     the response class name), and Alibaba's documentation names it after
//     the action: <GetSecretValueResponse>, <ListSecretsResponse>, ...;
//   - a list is a wrapper element whose children all share one name:
//     <SecretList><Secret>…</Secret><Secret>…</Secret></SecretList> reads as
//     ListSecretsResponse.SecretList.Length and
//     ListSecretsResponse.SecretList[i].SecretName; a scalar list reads as
//     GetSecretValueResponse.VersionStages[i];
//   - errors are <Error> with RequestId, HostId, Code and Message.
// The tests parse the body twice: with encoding/xml into structs mirroring
// those shapes, and with a port of the Java reader's flattening, checking
// the exact keys the Java unmarshallers look up.

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	kms "github.com/alibabacloud-go/kms-20160120/v3/client"
	"github.com/alibabacloud-go/tea/tea"
)

type xmlVersionStages struct {
	VersionStage []string `xml:"VersionStage"`
}

type xmlTags struct {
	Tag []struct {
		TagKey   string `xml:"TagKey"`
		TagValue string `xml:"TagValue"`
	} `xml:"Tag"`
}

type xmlGetSecretValueResponse struct {
	XMLName           xml.Name         `xml:"GetSecretValueResponse"`
	RequestId         string           `xml:"RequestId"`
	SecretName        string           `xml:"SecretName"`
	SecretType        string           `xml:"SecretType"`
	SecretData        string           `xml:"SecretData"`
	SecretDataType    string           `xml:"SecretDataType"`
	VersionId         string           `xml:"VersionId"`
	VersionStages     xmlVersionStages `xml:"VersionStages"`
	CreateTime        string           `xml:"CreateTime"`
	AutomaticRotation string           `xml:"AutomaticRotation"`
}

type xmlListSecretsResponse struct {
	XMLName    xml.Name `xml:"ListSecretsResponse"`
	RequestId  string   `xml:"RequestId"`
	PageNumber int      `xml:"PageNumber"`
	PageSize   int      `xml:"PageSize"`
	TotalCount int      `xml:"TotalCount"`
	SecretList struct {
		Secret []struct {
			SecretName string  `xml:"SecretName"`
			SecretType string  `xml:"SecretType"`
			CreateTime string  `xml:"CreateTime"`
			UpdateTime string  `xml:"UpdateTime"`
			Tags       xmlTags `xml:"Tags"`
		} `xml:"Secret"`
	} `xml:"SecretList"`
}

type xmlDescribeSecretResponse struct {
	XMLName           xml.Name `xml:"DescribeSecretResponse"`
	RequestId         string   `xml:"RequestId"`
	SecretName        string   `xml:"SecretName"`
	Arn               string   `xml:"Arn"`
	SecretType        string   `xml:"SecretType"`
	Description       string   `xml:"Description"`
	EncryptionKeyId   string   `xml:"EncryptionKeyId"`
	CreateTime        string   `xml:"CreateTime"`
	UpdateTime        string   `xml:"UpdateTime"`
	AutomaticRotation string   `xml:"AutomaticRotation"`
	Tags              xmlTags  `xml:"Tags"`
}

type xmlError struct {
	XMLName   xml.Name `xml:"Error"`
	RequestId string   `xml:"RequestId"`
	HostId    string   `xml:"HostId"`
	Code      string   `xml:"Code"`
	Message   string   `xml:"Message"`
}

// xmlNode is a parsed element: its name, its text and its child elements.
type xmlNode struct {
	name string
	text string
	kids []*xmlNode
}

func parseXMLTree(t *testing.T, b []byte) *xmlNode {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(b))
	var stack []*xmlNode
	var root *xmlNode
	for {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			n := &xmlNode{name: tok.Name.Local}
			if len(stack) > 0 {
				p := stack[len(stack)-1]
				p.kids = append(p.kids, n)
			} else {
				root = n
			}
			stack = append(stack, n)
		case xml.CharData:
			if len(stack) > 0 {
				stack[len(stack)-1].text += string(tok)
			}
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		}
	}
	if root == nil || len(stack) != 0 {
		t.Fatalf("not well-formed XML: %s", b)
	}
	return root
}

// javaXMLRead flattens a response the way the Java SDK's XmlReader does:
// the root's name is replaced by endpoint (the response class name), a
// wrapper whose children share one name becomes a list (".Length" and
// "[i]"), and a single child is recorded both as a list of one and as a
// member.
func javaXMLRead(root *xmlNode, endpoint string) map[string]string {
	m := map[string]string{}
	var read func(n *xmlNode, path string, appendPath bool)
	asList := func(els []*xmlNode, path string) {
		m[path+".Length"] = fmt.Sprint(len(els))
		for i, e := range els {
			read(e, fmt.Sprintf("%s[%d]", path, i), false)
		}
	}
	read = func(n *xmlNode, path string, appendPath bool) {
		if appendPath {
			path += "." + n.name
		}
		if len(n.kids) == 0 {
			m[path] = n.text
			return
		}
		var same []*xmlNode
		for _, k := range n.kids {
			if k.name == n.kids[0].name {
				same = append(same, k)
			}
		}
		switch {
		case len(same) > 1 && len(same) == len(n.kids):
			asList(n.kids, path)
		case len(same) == 1 && len(n.kids) == 1:
			asList(same, path)
			read(n.kids[0], path, true)
		default:
			for _, k := range n.kids {
				read(k, path, true)
			}
		}
	}
	read(root, endpoint, false)
	return m
}

// xmlCall sends a V1-signed request with Format=XML (parameters in the
// query string, or in a form body when form is true) and returns the
// status and the body, after checking the XML framing.
func (ts *testServer) xmlCall(t *testing.T, action string, params map[string]string, form bool) (int, []byte) {
	t.Helper()
	p := ts.v1Params(action, time.Now(), params)
	p["Format"] = "XML"
	req := ts.v1Request(t, p)
	if form {
		body := req.URL.RawQuery
		req, _ = http.NewRequest(http.MethodPost, ts.HTTPURL+"/", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	res := rawDo(t, req)
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/xml") {
		t.Errorf("%s: Content-Type = %q, want text/xml", action, ct)
	}
	if !bytes.HasPrefix(res.Body, []byte(`<?xml version="1.0" encoding="UTF-8"?>`)) {
		t.Errorf("%s: body does not start with the XML declaration: %.80s", action, res.Body)
	}
	if rid := res.Header.Get("x-acs-request-id"); rid == "" || !bytes.Contains(res.Body, []byte("<RequestId>"+rid+"</RequestId>")) {
		t.Errorf("%s: RequestId %q missing from the body", action, rid)
	}
	return res.Status, res.Body
}

func wantKeys(t *testing.T, what string, m map[string]string, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got, ok := m[k]; !ok || got != v {
			t.Errorf("%s: Java reader key %s = %q (present %v), want %q", what, k, got, ok, v)
		}
	}
}

func TestXMLResponses(t *testing.T) {
	ts := startServer(t)
	c := ts.sdk(t, sdkModes[0])
	const tricky = `p<a&s>s "w'd" ]]>`
	must(c.CreateSecret(&kms.CreateSecretRequest{SecretName: tea.String("xml/one"), SecretData: tea.String("first"), VersionId: tea.String("v1"),
		Description: tea.String("for <xml> & co"), Tags: tea.String(`[{"TagKey":"env","TagValue":"prod"},{"TagKey":"team","TagValue":"a&b"}]`)}))
	must(c.PutSecretValue(&kms.PutSecretValueRequest{SecretName: tea.String("xml/one"), SecretData: tea.String(tricky), VersionId: tea.String("v2")}))
	must(c.CreateSecret(&kms.CreateSecretRequest{SecretName: tea.String("xml/two"), SecretData: tea.String("second"), VersionId: tea.String("v1"),
		Tags: tea.String(`[{"TagKey":"env","TagValue":"dev"}]`)}))

	t.Run("GetSecretValue", func(t *testing.T) {
		for _, form := range []bool{false, true} {
			status, body := ts.xmlCall(t, "GetSecretValue", map[string]string{"SecretName": "xml/one"}, form)
			if status != 200 {
				t.Fatalf("status %d: %s", status, body)
			}
			var r xmlGetSecretValueResponse
			if err := xml.Unmarshal(body, &r); err != nil {
				t.Fatalf("%v: %s", err, body)
			}
			if r.SecretName != "xml/one" || r.SecretData != tricky || r.VersionId != "v2" || r.SecretDataType != "text" ||
				r.SecretType != "Generic" || r.RequestId == "" || r.CreateTime == "" {
				t.Errorf("GetSecretValue = %+v", r)
			}
			if len(r.VersionStages.VersionStage) != 1 || r.VersionStages.VersionStage[0] != "ACSCurrent" {
				t.Errorf("VersionStages = %v", r.VersionStages.VersionStage)
			}
			if _, err := time.Parse(time.RFC3339, r.CreateTime); err != nil {
				t.Errorf("CreateTime %q: %v", r.CreateTime, err)
			}
			m := javaXMLRead(parseXMLTree(t, body), "GetSecretValueResponse")
			wantKeys(t, "GetSecretValue", m, map[string]string{
				"GetSecretValueResponse.SecretData":                 tricky,
				"GetSecretValueResponse.VersionId":                  "v2",
				"GetSecretValueResponse.RequestId":                  r.RequestId,
				"GetSecretValueResponse.VersionStages.Length":       "1",
				"GetSecretValueResponse.VersionStages[0]":           "ACSCurrent",
				"GetSecretValueResponse.SecretDataType":             "text",
				"GetSecretValueResponse.AutomaticRotation":          r.AutomaticRotation,
				"GetSecretValueResponse.SecretName":                 "xml/one",
				"GetSecretValueResponse.CreateTime":                 r.CreateTime,
				"GetSecretValueResponse.VersionStages.VersionStage": "ACSCurrent",
			})
		}
	})

	t.Run("ListSecrets", func(t *testing.T) {
		status, body := ts.xmlCall(t, "ListSecrets", map[string]string{"FetchTags": "true", "PageSize": "10"}, false)
		if status != 200 {
			t.Fatalf("status %d: %s", status, body)
		}
		var r xmlListSecretsResponse
		if err := xml.Unmarshal(body, &r); err != nil {
			t.Fatalf("%v: %s", err, body)
		}
		if r.TotalCount != 2 || r.PageNumber != 1 || r.PageSize != 10 || len(r.SecretList.Secret) != 2 {
			t.Fatalf("ListSecrets = %+v\n%s", r, body)
		}
		names := map[string]int{}
		for i, s := range r.SecretList.Secret {
			names[s.SecretName] = i
		}
		one, okOne := names["xml/one"]
		two, okTwo := names["xml/two"]
		if !okOne || !okTwo {
			t.Fatalf("names = %v", names)
		}
		if n := len(r.SecretList.Secret[one].Tags.Tag); n != 2 {
			t.Errorf("xml/one has %d tags in the list", n)
		}
		m := javaXMLRead(parseXMLTree(t, body), "ListSecretsResponse")
		wantKeys(t, "ListSecrets", m, map[string]string{
			"ListSecretsResponse.TotalCount":                                        "2",
			"ListSecretsResponse.PageNumber":                                        "1",
			"ListSecretsResponse.PageSize":                                          "10",
			"ListSecretsResponse.SecretList.Length":                                 "2",
			fmt.Sprintf("ListSecretsResponse.SecretList[%d].SecretName", one):       "xml/one",
			fmt.Sprintf("ListSecretsResponse.SecretList[%d].SecretName", two):       "xml/two",
			fmt.Sprintf("ListSecretsResponse.SecretList[%d].SecretType", two):       "Generic",
			fmt.Sprintf("ListSecretsResponse.SecretList[%d].Tags.Length", one):      "2",
			fmt.Sprintf("ListSecretsResponse.SecretList[%d].Tags[1].TagValue", one): "a&b",
			fmt.Sprintf("ListSecretsResponse.SecretList[%d].Tags.Length", two):      "1",
			fmt.Sprintf("ListSecretsResponse.SecretList[%d].Tags[0].TagKey", two):   "env",
		})

		// One secret: still a list of one. No match: an empty list.
		_, body = ts.xmlCall(t, "ListSecrets", map[string]string{"Filters": `[{"Key":"SecretName","Values":["xml/two"]}]`}, false)
		m = javaXMLRead(parseXMLTree(t, body), "ListSecretsResponse")
		wantKeys(t, "ListSecrets (one)", m, map[string]string{
			"ListSecretsResponse.TotalCount":               "1",
			"ListSecretsResponse.SecretList.Length":        "1",
			"ListSecretsResponse.SecretList[0].SecretName": "xml/two",
		})
		_, body = ts.xmlCall(t, "ListSecrets", map[string]string{"Filters": `[{"Key":"SecretName","Values":["none"]}]`}, false)
		m = javaXMLRead(parseXMLTree(t, body), "ListSecretsResponse")
		wantKeys(t, "ListSecrets (none)", m, map[string]string{"ListSecretsResponse.TotalCount": "0"})
		if n, ok := m["ListSecretsResponse.SecretList.Length"]; ok && n != "0" {
			t.Errorf("empty list has Length %s", n)
		}
	})

	t.Run("DescribeSecret", func(t *testing.T) {
		status, body := ts.xmlCall(t, "DescribeSecret", map[string]string{"SecretName": "xml/one", "FetchTags": "true"}, false)
		if status != 200 {
			t.Fatalf("status %d: %s", status, body)
		}
		var r xmlDescribeSecretResponse
		if err := xml.Unmarshal(body, &r); err != nil {
			t.Fatalf("%v: %s", err, body)
		}
		if r.SecretName != "xml/one" || r.Description != "for <xml> & co" || !strings.HasSuffix(r.Arn, ":secret/xml/one") ||
			r.EncryptionKeyId == "" || r.AutomaticRotation != "Invalid" {
			t.Errorf("DescribeSecret = %+v", r)
		}
		tags := map[string]string{}
		for _, tg := range r.Tags.Tag {
			tags[tg.TagKey] = tg.TagValue
		}
		if len(tags) != 2 || tags["env"] != "prod" || tags["team"] != "a&b" {
			t.Errorf("Tags = %v\n%s", tags, body)
		}
		m := javaXMLRead(parseXMLTree(t, body), "DescribeSecretResponse")
		wantKeys(t, "DescribeSecret", m, map[string]string{
			"DescribeSecretResponse.Description": "for <xml> & co",
			"DescribeSecretResponse.Arn":         r.Arn,
			"DescribeSecretResponse.Tags.Length": "2",
		})
		if m["DescribeSecretResponse.Tags[0].TagKey"]+m["DescribeSecretResponse.Tags[1].TagKey"] != r.Tags.Tag[0].TagKey+r.Tags.Tag[1].TagKey {
			t.Errorf("Java reader tags: %v", m)
		}
	})

	t.Run("errors", func(t *testing.T) {
		cases := []struct {
			name   string
			send   func() (int, []byte)
			status int
			code   string
		}{
			{"domain error", func() (int, []byte) {
				return ts.xmlCall(t, "GetSecretValue", map[string]string{"SecretName": "no/such"}, false)
			}, 404, "Forbidden.ResourceNotFound"},
			{"domain error, form body", func() (int, []byte) {
				return ts.xmlCall(t, "PutSecretValue", map[string]string{"SecretName": "xml/one", "VersionId": "v1", "SecretData": "other"}, true)
			}, 409, "Rejected.ResourceExist"},
			{"unknown action", func() (int, []byte) {
				return ts.xmlCall(t, "NoSuchAction", nil, false)
			}, 400, "InvalidAction.NotFound"},
			{"wire error before authentication", func() (int, []byte) {
				q := url.Values{"Action": {"ListSecrets"}, "Version": {kmsVersion}, "Format": {"XML"}}
				req, _ := http.NewRequest(http.MethodPost, ts.HTTPURL+"/?"+q.Encode(), nil)
				res := rawDo(t, req)
				return res.Status, res.Body
			}, 400, "MissingParameter"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				status, body := tc.send()
				var e xmlError
				if err := xml.Unmarshal(body, &e); err != nil {
					t.Fatalf("%v: %s", err, body)
				}
				if status != tc.status || e.Code != tc.code || e.Message == "" || e.RequestId == "" || e.HostId == "" {
					t.Errorf("got %d %+v, want %d %s", status, e, tc.status, tc.code)
				}
				m := javaXMLRead(parseXMLTree(t, body), "Error")
				wantKeys(t, tc.name, m, map[string]string{"Error.Code": tc.code, "Error.RequestId": e.RequestId, "Error.Message": e.Message})
			})
		}
	})
}
