package kmsapi

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/json"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/keyhold/keyhold/internal/errs"
	"github.com/keyhold/keyhold/internal/secrets"
	"github.com/keyhold/keyhold/internal/store/bolt"
)

// kms mirrors the SDK response bodies (kms-20160120/v3@v3.2.3 client.go,
// same JSON names and kinds) that these tests decode into; the SDK itself
// is not in go.sum.
var kms struct {
	CreateSecretResponseBody struct {
		Arn, AutomaticRotation, VersionId *string
	}
	GetSecretValueResponseBody struct {
		SecretData, VersionId, SecretDataType, ExtendedConfig *string
		VersionStages                                         *struct{ VersionStage []*string }
	}
	ListSecretsResponseBody struct {
		TotalCount, PageNumber, PageSize *int32
		SecretList                       *struct {
			Secret []*struct {
				SecretName *string
				Tags       *struct{ Tag []*sdkTag }
			}
		}
	}
	DescribeSecretResponseBody struct {
		Description, EncryptionKeyId, ExtendedConfig, PlannedDeleteTime *string
		Tags                                                            *struct{ Tag []*sdkTag }
	}
	ListSecretVersionIdsResponseBody struct {
		TotalCount *int32
		VersionIds *struct {
			VersionId []*struct {
				VersionId, CreateTime *string
				VersionStages         *struct{ VersionStage []*string }
			}
		}
	}
	DeleteSecretResponseBody struct {
		PlannedDeleteTime, SecretName *string
	}
	GetRandomPasswordResponseBody struct {
		RandomPassword *string
	}
	DescribeRegionsResponseBody struct {
		Regions *struct {
			Region []*struct{ RegionId *string }
		}
	}
	ListTagResourcesResponseBody struct {
		TagResources *struct {
			TagResource []*struct{ ResourceId, ResourceType, TagKey, TagValue *string }
		}
	}
}

type sdkTag struct{ TagKey, TagValue *string }

// plainEnvelope seals with AES-GCM under a zero key and a zero nonce: good
// enough for wire tests, which never look at ciphertexts.
type plainEnvelope struct{ aead cipher.AEAD }

func (e plainEnvelope) ResolveKey(context.Context, string, string) (string, error) {
	return "key-1", nil
}

func (e plainEnvelope) SealValue(_ context.Context, _, _ string, aad, p []byte) ([]byte, error) {
	return e.aead.Seal(nil, make([]byte, 12), p, aad), nil
}

func (e plainEnvelope) OpenValue(_ context.Context, _ string, sealed, aad []byte) ([]byte, error) {
	return e.aead.Open(nil, make([]byte, 12), sealed, aad)
}

type fakeKeyTagger struct{ tags map[string]map[string]string }

func (f *fakeKeyTagger) TagKey(_ context.Context, _, keyID string, tags map[string]string) error {
	if f.tags[keyID] == nil {
		f.tags[keyID] = map[string]string{}
	}
	for k, v := range tags {
		f.tags[keyID][k] = v
	}
	return nil
}

func (f *fakeKeyTagger) UntagKey(_ context.Context, _, keyID string, keys []string) error {
	for _, k := range keys {
		delete(f.tags[keyID], k)
	}
	return nil
}

func (f *fakeKeyTagger) ListKeyTags(_ context.Context, _, keyID string) (map[string]string, error) {
	return f.tags[keyID], nil
}

type wire struct {
	t      *testing.T
	routes map[string]Route
}

func newWire(t *testing.T, kt KeyTagger) *wire {
	st, err := bolt.Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	block, _ := aes.NewCipher(make([]byte, 32))
	aead, _ := cipher.NewGCM(block)
	svc := secrets.New(st, plainEnvelope{aead}, secrets.WithRegion("cn-test"))
	w := &wire{t: t, routes: map[string]Route{}}
	for _, r := range SecretRoutes(svc, kt) {
		w.routes[r.Action] = r
	}
	return w
}

func (w *wire) req(action string, p Params) *Request {
	return &Request{Action: action, Version: VersionKMS, Params: p, Region: "cn-test",
		Principal: Principal{Account: "100"}}
}

// call runs the action and round-trips its response through JSON into out
// (an SDK response body), as a client would see it.
func (w *wire) call(action string, p Params, out any) error {
	w.t.Helper()
	route, ok := w.routes[action]
	if !ok {
		w.t.Fatalf("no route %s", action)
	}
	resp, err := route.Handler(context.Background(), w.req(action, p))
	if err != nil {
		return err
	}
	b, err := json.Marshal(resp)
	if err != nil {
		w.t.Fatal(err)
	}
	var generic any
	if err := json.Unmarshal(b, &generic); err != nil {
		w.t.Fatal(err)
	}
	checkWireNames(w.t, action, generic)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			w.t.Fatalf("%s response does not fit the SDK struct: %v\n%s", action, err, b)
		}
	}
	return nil
}

// sdkNames are the exact JSON names of the SDK's secret, tag and region
// response fields. encoding/json matches names case-insensitively, so the
// mirror structs alone would not catch "VersionID" for "VersionId".
var sdkNames = map[string]bool{}

func init() {
	for _, n := range strings.Fields(`Arn AutomaticRotation CreateTime Description EncryptionKeyId
		ExtendedConfig LastRotationDate NextRotationDate PlannedDeleteTime RotationInterval SecretName
		SecretType Tags Tag TagKey TagValue UpdateTime SecretData SecretDataType VersionId VersionStages
		VersionStage PageNumber PageSize TotalCount SecretList Secret VersionIds RandomPassword Policy
		Regions Region RegionId TagResources TagResource ResourceId ResourceType NextToken`) {
		sdkNames[n] = true
	}
}

func checkWireNames(t *testing.T, action string, v any) {
	t.Helper()
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if !sdkNames[k] {
				t.Errorf("%s: field %q is not an SDK field name", action, k)
			}
			checkWireNames(t, action, x)
		}
	case []any:
		for _, x := range v {
			checkWireNames(t, action, x)
		}
	}
}

func (w *wire) must(action string, p Params, out any) {
	w.t.Helper()
	if err := w.call(action, p, out); err != nil {
		w.t.Fatalf("%s: %v", action, err)
	}
}

func str(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return *p
}

func TestSecretActionsMatchSDKShapes(t *testing.T) {
	w := newWire(t, nil)
	var created = kms.CreateSecretResponseBody
	w.must("CreateSecret", Params{"SecretName": "app/db", "SecretData": "pw1", "VersionId": "v1",
		"Tags": `[{"TagKey":"env","TagValue":"prod"}]`, "ExtendedConfig": `{"CustomData":{"a":"b"}}`}, &created)
	if str(created.Arn) != "acs:kms:cn-test:100:secret/app/db" || str(created.AutomaticRotation) != "Invalid" || str(created.VersionId) != "v1" {
		t.Errorf("CreateSecret = %+v", created)
	}
	w.must("PutSecretValue", Params{"SecretName": "app/db", "SecretData": "pw2", "VersionId": "v2",
		"VersionStages": `{"VersionStage":["ACSCurrent","Blue"]}`}, nil)

	var got = kms.GetSecretValueResponseBody
	w.must("GetSecretValue", Params{"SecretName": "app/db"}, &got)
	var stages []string
	for _, s := range got.VersionStages.VersionStage {
		stages = append(stages, *s)
	}
	if str(got.SecretData) != "pw2" || str(got.VersionId) != "v2" || str(got.SecretDataType) != "text" ||
		!reflect.DeepEqual(stages, []string{"ACSCurrent", "Blue"}) || got.ExtendedConfig != nil {
		t.Errorf("GetSecretValue = %+v stages %v", got, stages)
	}
	w.must("GetSecretValue", Params{"SecretName": "app/db", "VersionId": "v1", "FetchExtendedConfig": "true"}, &got)
	if str(got.SecretData) != "pw1" || str(got.ExtendedConfig) != `{"CustomData":{"a":"b"}}` {
		t.Errorf("GetSecretValue v1 = %+v", got)
	}

	var list = kms.ListSecretsResponseBody
	w.must("ListSecrets", Params{"FetchTags": "true", "PageSize": "5"}, &list)
	if *list.TotalCount != 1 || *list.PageNumber != 1 || *list.PageSize != 5 || len(list.SecretList.Secret) != 1 ||
		str(list.SecretList.Secret[0].Tags.Tag[0].TagKey) != "env" {
		t.Errorf("ListSecrets = %+v", list)
	}
	err := w.call("ListSecrets", Params{"PageSize": "101"}, nil)
	if errs.KindOf(err) != errs.KindInvalidParameter {
		t.Errorf("PageSize 101: %v", err)
	}

	var desc = kms.DescribeSecretResponseBody
	w.must("DescribeSecret", Params{"SecretName": "app/db"}, &desc)
	if desc.Tags != nil || str(desc.EncryptionKeyId) != "key-1" || desc.PlannedDeleteTime != nil {
		t.Errorf("DescribeSecret without FetchTags = %+v", desc)
	}
	w.must("DescribeSecret", Params{"SecretName": "app/db", "FetchTags": "true"}, &desc)
	if len(desc.Tags.Tag) != 1 || str(desc.Tags.Tag[0].TagValue) != "prod" {
		t.Errorf("DescribeSecret tags = %+v", desc.Tags)
	}

	var ids = kms.ListSecretVersionIdsResponseBody
	w.must("ListSecretVersionIds", Params{"SecretName": "app/db"}, &ids)
	if *ids.TotalCount != 2 || len(ids.VersionIds.VersionId) != 2 || str(ids.VersionIds.VersionId[0].VersionId) != "v1" ||
		str(ids.VersionIds.VersionId[0].VersionStages.VersionStage[0]) != "ACSPrevious" {
		t.Errorf("ListSecretVersionIds = %+v", ids)
	}

	var del = kms.DeleteSecretResponseBody
	w.must("DeleteSecret", Params{"SecretName": "app/db", "RecoveryWindowInDays": "7"}, &del)
	if del.PlannedDeleteTime == nil || len(*del.PlannedDeleteTime) != len("2006-01-02T15:04:05Z") {
		t.Errorf("DeleteSecret = %+v", del)
	}
	if err := w.call("GetSecretValue", Params{"SecretName": "app/db"}, nil); errs.KindOf(err) != errs.KindInDeleteWindow {
		t.Errorf("GetSecretValue in window: %v", err)
	}
	w.must("RestoreSecret", Params{"SecretName": "app/db"}, nil)

	var pw = kms.GetRandomPasswordResponseBody
	w.must("GetRandomPassword", Params{"PasswordLength": "40", "ExcludePunctuation": "true"}, &pw)
	if len(str(pw.RandomPassword)) != 40 {
		t.Errorf("RandomPassword = %q", str(pw.RandomPassword))
	}

	var regions = kms.DescribeRegionsResponseBody
	w.must("DescribeRegions", Params{}, &regions)
	if str(regions.Regions.Region[0].RegionId) != "cn-test" {
		t.Errorf("DescribeRegions = %+v", regions)
	}

	if err := w.call("CreateSecret", Params{"SecretName": "x", "SecretData": "y"}, nil); errs.KindOf(err) != errs.KindMissingParameter {
		t.Errorf("CreateSecret without VersionId: %v", err)
	}
}

func TestCustomDataForms(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    Params
		want string
	}{
		{"V1 JSON string", Params{"ExtendedConfig.CustomData": `{"k":"v"}`}, `{"k":"v"}`},
		{"whole ExtendedConfig", Params{"ExtendedConfig": `{"CustomData":{"k":"v"}}`}, `{"k":"v"}`},
		{"CustomData as a string", Params{"ExtendedConfig": `{"CustomData":"{\"k\":\"v\"}"}`}, `{"k":"v"}`},
		{"flattened map", Params{"ExtendedConfig.CustomData.k": "v"}, `{"k":"v"}`},
		{"absent", Params{"Description": "d"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := customDataParam(tc.p)
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == "" {
				if got != nil {
					t.Fatalf("got %q", *got)
				}
				return
			}
			if got == nil || *got != tc.want {
				t.Fatalf("got %v", got)
			}
		})
	}
}

func TestUpdateSecretViaWire(t *testing.T) {
	w := newWire(t, nil)
	w.must("CreateSecret", Params{"SecretName": "s", "SecretData": "x", "VersionId": "v1"}, nil)
	w.must("UpdateSecret", Params{"SecretName": "s", "Description": "d", "ExtendedConfig.CustomData.team": "blue"}, nil)
	var desc = kms.DescribeSecretResponseBody
	w.must("DescribeSecret", Params{"SecretName": "s"}, &desc)
	if str(desc.Description) != "d" || str(desc.ExtendedConfig) != `{"CustomData":{"team":"blue"}}` {
		t.Errorf("after UpdateSecret: %+v", desc)
	}
}

func TestTagActions(t *testing.T) {
	kt := &fakeKeyTagger{tags: map[string]map[string]string{}}
	w := newWire(t, kt)
	w.must("CreateSecret", Params{"SecretName": "a", "SecretData": "x", "VersionId": "v1"}, nil)
	w.must("CreateSecret", Params{"SecretName": "b", "SecretData": "x", "VersionId": "v1"}, nil)

	w.must("TagResource", Params{"SecretName": "a", "Tags": `[{"TagKey":"k1","TagValue":"v1"}]`}, nil)
	w.must("TagResource", Params{"KeyId": "key-1", "Tags": `[{"TagKey":"kk","TagValue":"kv"}]`}, nil)
	if kt.tags["key-1"]["kk"] != "kv" {
		t.Errorf("key tags = %v", kt.tags)
	}
	if err := w.call("TagResource", Params{"SecretName": "a", "KeyId": "k", "Tags": `[]`}, nil); errs.KindOf(err) != errs.KindInvalidParameter {
		t.Errorf("both targets: %v", err)
	}
	if err := w.call("TagResource", Params{"KeyId": "k", "Tags": `[{"TagKey":"aliyun:x"}]`}, nil); errs.KindOf(err) != errs.KindInvalidParameter {
		t.Errorf("reserved key tag: %v", err)
	}

	w.must("TagResources", Params{"ResourceType": "secret", "ResourceId.1": "a", "ResourceId.2": "b",
		"Tag.1.Key": "team", "Tag.1.Value": "blue", "Tag.2.Key": "env", "Tag.2.Value": "prod"}, nil)
	var lt = kms.ListTagResourcesResponseBody
	w.must("ListTagResources", Params{"ResourceType": "secret", "Tag.1.Key": "team"}, &lt)
	var got []string
	for _, r := range lt.TagResources.TagResource {
		got = append(got, str(r.ResourceId)+":"+str(r.TagKey)+"="+str(r.TagValue)+":"+str(r.ResourceType))
	}
	sort.Strings(got)
	if !reflect.DeepEqual(got, []string{"a:team=blue:secret", "b:team=blue:secret"}) {
		t.Errorf("ListTagResources = %v", got)
	}

	w.must("UntagResources", Params{"ResourceType": "secret", "ResourceId.1": "a", "TagKey.1": "team"}, nil)
	w.must("UntagResource", Params{"SecretName": "a", "TagKeys": `["k1"]`}, nil)
	var desc = kms.DescribeSecretResponseBody
	w.must("DescribeSecret", Params{"SecretName": "a", "FetchTags": "true"}, &desc)
	if len(desc.Tags.Tag) != 1 || str(desc.Tags.Tag[0].TagKey) != "env" {
		t.Errorf("tags of a = %+v", desc.Tags.Tag)
	}

	w.must("TagResources", Params{"ResourceType": "key", "ResourceId.1": "key-2", "Tag.1.Key": "x", "Tag.1.Value": "y"}, nil)
	w.must("ListTagResources", Params{"ResourceType": "key", "ResourceId.1": "key-2"}, &lt)
	if len(lt.TagResources.TagResource) != 1 || str(lt.TagResources.TagResource[0].ResourceType) != "key" {
		t.Errorf("key ListTagResources = %+v", lt)
	}
	w.must("UntagResources", Params{"ResourceType": "key", "ResourceId.1": "key-2", "All": "true"}, nil)
	if len(kt.tags["key-2"]) != 0 {
		t.Errorf("key-2 tags after All = %v", kt.tags["key-2"])
	}
	if err := w.call("TagResources", Params{"ResourceType": "disk", "ResourceId.1": "a", "Tag.1.Key": "k"}, nil); errs.KindOf(err) != errs.KindInvalidParameter {
		t.Errorf("bad ResourceType: %v", err)
	}

	// Without a KeyTagger, key tagging fails cleanly.
	w2 := newWire(t, nil)
	if err := w2.call("TagResource", Params{"KeyId": "k", "Tags": `[{"TagKey":"a"}]`}, nil); errs.KindOf(err) != errs.KindUnsupported {
		t.Errorf("no KeyTagger: %v", err)
	}
}

func TestSecretRouteResources(t *testing.T) {
	w := newWire(t, nil)
	for _, tc := range []struct {
		action string
		p      Params
		want   string
	}{
		{"GetSecretValue", Params{"SecretName": "a/b"}, "acs:kms:cn-test:100:secret/a/b"},
		{"GetSecretValue", Params{"SecretName": "acs:kms:cn-test:100:secret/a"}, "acs:kms:cn-test:100:secret/a"},
		{"CreateSecret", Params{"SecretName": "n"}, "acs:kms:cn-test:100:secret/n"},
		{"ListSecrets", Params{}, "acs:kms:cn-test:100:secret"}, // the container
		{"TagResource", Params{"KeyId": "k1"}, "acs:kms:cn-test:100:key/k1"},
		{"TagResources", Params{"ResourceType": "secret", "ResourceId.1": "s"}, "acs:kms:cn-test:100:secret/s"},
		{"TagResources", Params{"ResourceType": "Key", "ResourceId.1": "k"}, "acs:kms:cn-test:100:key/k"},
		{"TagResources", Params{"ResourceType": "secret", "ResourceId.1": "s", "ResourceId.2": "t"}, ""},
	} {
		r := w.routes[tc.action]
		got := ""
		if r.Resource != nil {
			got = r.Resource(w.req(tc.action, tc.p))
		}
		if got != tc.want {
			t.Errorf("%s %v: resource %q, want %q", tc.action, tc.p, got, tc.want)
		}
	}
}
