package kmsapi_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyhold/keyhold/internal/errs"
	"github.com/keyhold/keyhold/internal/keys"
	"github.com/keyhold/keyhold/internal/kmsapi"
	"github.com/keyhold/keyhold/internal/store/bolt"
)

// *keys.Service must implement the interfaces the wire layer declares.
var (
	_ kmsapi.KeyService = (*keys.Service)(nil)
	_ kmsapi.KeyTagger  = (*keys.Service)(nil)
)

const testAccount = "1234567890123456"

func keyRoutes(t *testing.T) map[string]kmsapi.Route {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	svc, err := keys.Open(context.Background(), st, keys.StaticSource(make([]byte, 32)), "cn-hangzhou")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	m := map[string]kmsapi.Route{}
	for _, r := range kmsapi.KeyRoutes(svc) {
		m[r.Action] = r
	}
	return m
}

func call(t *testing.T, routes map[string]kmsapi.Route, action string, params kmsapi.Params) (map[string]any, error) {
	t.Helper()
	route, ok := routes[action]
	if !ok {
		t.Fatalf("no route for %s", action)
	}
	req := &kmsapi.Request{
		Version: kmsapi.VersionKMS, Action: action, Params: params, Region: "cn-hangzhou",
		Principal: kmsapi.Principal{Account: testAccount, Kind: "root", Name: "root"},
	}
	out, err := route.Handler(context.Background(), req)
	if err != nil {
		return nil, err
	}
	raw, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	if m == nil {
		m = map[string]any{}
	}
	return m, nil
}

func mustCall(t *testing.T, routes map[string]kmsapi.Route, action string, params kmsapi.Params) map[string]any {
	t.Helper()
	m, err := call(t, routes, action, params)
	if err != nil {
		t.Fatalf("%s: %v", action, err)
	}
	return m
}

// sdkNames are the json names of the SDK's response structs
// (github.com/alibabacloud-go/kms-20160120/v3 v3.2.3, client/client.go),
// minus RequestId. Copied rather than imported: the SDK's dependency tree is
// not in go.sum.
var sdkNames = map[string]string{
	"CreateKeyResponseBody":                       "KeyMetadata",
	"KeyMetadata":                                 "Arn AutomaticRotation CreationDate Creator DKMSInstanceId DeleteDate DeletionProtection DeletionProtectionDescription Description KeyId KeySpec KeyState KeyUsage LastRotationDate MaterialExpireTime NextRotationDate Origin PrimaryKeyVersion ProtectionLevel RotationInterval",
	"ListKeysResponseBody":                        "Keys PageNumber PageSize TotalCount",
	"ListKeysResponseBodyKeysKey":                 "KeyArn KeyId",
	"ListAliasesResponseBody":                     "Aliases PageNumber PageSize TotalCount",
	"ListAliasesResponseBodyAliasesAlias":         "AliasArn AliasName KeyId",
	"EncryptResponseBody":                         "CiphertextBlob KeyId KeyVersionId",
	"DecryptResponseBody":                         "KeyId KeyVersionId Plaintext",
	"ReEncryptResponseBody":                       "CiphertextBlob KeyId KeyVersionId",
	"GenerateDataKeyResponseBody":                 "CiphertextBlob KeyId KeyVersionId Plaintext",
	"GenerateDataKeyWithoutPlaintextResponseBody": "CiphertextBlob KeyId KeyVersionId",
	"KeyVersionResponseBody":                      "KeyVersion",
	"KeyVersion":                                  "CreationDate KeyId KeyVersionId",
	"ListKeyVersionsResponseBody":                 "KeyVersions PageNumber PageSize TotalCount",
	"ListResourceTagsResponseBody":                "Tags",
	"ListResourceTagsResponseBodyTagsTag":         "KeyId TagKey TagValue",
}

// checkNames fails when a response uses a name the SDK struct does not have.
func checkNames(t *testing.T, what string, got map[string]any, sdk string) {
	t.Helper()
	known := map[string]bool{}
	for _, f := range strings.Fields(sdkNames[sdk]) {
		known[f] = true
	}
	for k := range got {
		if !known[k] {
			t.Errorf("%s: field %q is not in the SDK's %s", what, k, sdk)
		}
	}
}

func TestKeyHandlersMatchSDK(t *testing.T) {
	routes := keyRoutes(t)
	created := mustCall(t, routes, "CreateKey", kmsapi.Params{"Description": "d", "EnableAutomaticRotation": "true", "RotationInterval": "30d"})
	checkNames(t, "CreateKey", created, "CreateKeyResponseBody")
	meta := created["KeyMetadata"].(map[string]any)
	checkNames(t, "CreateKey.KeyMetadata", meta, "KeyMetadata")
	keyID := meta["KeyId"].(string)
	for field, want := range map[string]string{
		"KeyState": "Enabled", "KeySpec": "Aliyun_AES_256", "KeyUsage": "ENCRYPT/DECRYPT",
		"RotationInterval": "2592000s", "AutomaticRotation": "Enabled",
		"Arn": "acs:kms:cn-hangzhou:" + testAccount + ":key/" + keyID,
	} {
		if meta[field] != want {
			t.Errorf("KeyMetadata.%s = %v, want %s", field, meta[field], want)
		}
	}
	if ts, _ := meta["CreationDate"].(string); len(ts) != len("2020-02-21T15:39:26Z") || !strings.HasSuffix(ts, "Z") {
		t.Errorf("CreationDate %q is not ISO-8601 UTC", ts)
	}

	desc := mustCall(t, routes, "DescribeKey", kmsapi.Params{"KeyId": keyID})
	checkNames(t, "DescribeKey.KeyMetadata", desc["KeyMetadata"].(map[string]any), "KeyMetadata")

	list := mustCall(t, routes, "ListKeys", kmsapi.Params{})
	checkNames(t, "ListKeys", list, "ListKeysResponseBody")
	items := list["Keys"].(map[string]any)["Key"].([]any)
	checkNames(t, "ListKeys.Key", items[0].(map[string]any), "ListKeysResponseBodyKeysKey")
	if list["TotalCount"].(float64) != 1 {
		t.Errorf("TotalCount = %v", list["TotalCount"])
	}

	mustCall(t, routes, "CreateAlias", kmsapi.Params{"KeyId": keyID, "AliasName": "alias/app"})
	aliases := mustCall(t, routes, "ListAliases", kmsapi.Params{})
	checkNames(t, "ListAliases", aliases, "ListAliasesResponseBody")
	checkNames(t, "ListAliases.Alias", aliases["Aliases"].(map[string]any)["Alias"].([]any)[0].(map[string]any), "ListAliasesResponseBodyAliasesAlias")
	byKey := mustCall(t, routes, "ListAliasesByKeyId", kmsapi.Params{"KeyId": "alias/app"})
	checkNames(t, "ListAliasesByKeyId", byKey, "ListAliasesResponseBody")

	enc := mustCall(t, routes, "Encrypt", kmsapi.Params{
		"KeyId": "alias/app", "Plaintext": base64.StdEncoding.EncodeToString([]byte("hello")),
		"EncryptionContext": `{"a":"b","n":1}`,
	})
	checkNames(t, "Encrypt", enc, "EncryptResponseBody")
	if enc["KeyId"] != keyID {
		t.Errorf("Encrypt KeyId = %v", enc["KeyId"])
	}
	if res := routes["Decrypt"].Resource(&kmsapi.Request{Params: kmsapi.Params{"CiphertextBlob": enc["CiphertextBlob"].(string)}, Principal: kmsapi.Principal{Account: testAccount}}); !strings.HasSuffix(res, ":key/"+keyID) {
		t.Errorf("Decrypt resource = %q", res)
	}
	if res := routes["Encrypt"].Resource(&kmsapi.Request{Params: kmsapi.Params{"KeyId": "alias/app"}, Principal: kmsapi.Principal{Account: testAccount}}); !strings.HasSuffix(res, ":key/"+keyID) {
		t.Errorf("Encrypt resource for an alias = %q", res)
	}
	dec := mustCall(t, routes, "Decrypt", kmsapi.Params{"CiphertextBlob": enc["CiphertextBlob"].(string), "EncryptionContext": `{"n":1,"a":"b"}`})
	checkNames(t, "Decrypt", dec, "DecryptResponseBody")
	if pt, _ := base64.StdEncoding.DecodeString(dec["Plaintext"].(string)); string(pt) != "hello" {
		t.Errorf("Decrypt Plaintext = %q", pt)
	}
	if _, err := call(t, routes, "Decrypt", kmsapi.Params{"CiphertextBlob": enc["CiphertextBlob"].(string)}); errs.KindOf(err) != errs.KindDecryptFailed {
		t.Errorf("Decrypt without context: %v", err)
	}

	re := mustCall(t, routes, "ReEncrypt", kmsapi.Params{
		"CiphertextBlob": enc["CiphertextBlob"].(string), "SourceEncryptionContext": `{"a":"b","n":1}`,
		"DestinationKeyId": keyID,
	})
	checkNames(t, "ReEncrypt", re, "ReEncryptResponseBody")

	gdk := mustCall(t, routes, "GenerateDataKey", kmsapi.Params{"KeyId": keyID, "KeySpec": "AES_128"})
	checkNames(t, "GenerateDataKey", gdk, "GenerateDataKeyResponseBody")
	if pt, _ := base64.StdEncoding.DecodeString(gdk["Plaintext"].(string)); len(pt) != 16 {
		t.Errorf("GenerateDataKey AES_128 gave %d bytes", len(pt))
	}
	gdkw := mustCall(t, routes, "GenerateDataKeyWithoutPlaintext", kmsapi.Params{"KeyId": keyID, "NumberOfBytes": "64"})
	checkNames(t, "GenerateDataKeyWithoutPlaintext", gdkw, "GenerateDataKeyWithoutPlaintextResponseBody")
	if _, err := call(t, routes, "GenerateDataKey", kmsapi.Params{"KeyId": keyID, "NumberOfBytes": "0"}); errs.KindOf(err) != errs.KindInvalidParameter {
		t.Errorf("NumberOfBytes=0: %v", err)
	}

	kv := mustCall(t, routes, "CreateKeyVersion", kmsapi.Params{"KeyId": keyID})
	checkNames(t, "CreateKeyVersion", kv, "KeyVersionResponseBody")
	checkNames(t, "CreateKeyVersion.KeyVersion", kv["KeyVersion"].(map[string]any), "KeyVersion")
	vid := kv["KeyVersion"].(map[string]any)["KeyVersionId"].(string)
	versions := mustCall(t, routes, "ListKeyVersions", kmsapi.Params{"KeyId": keyID})
	checkNames(t, "ListKeyVersions", versions, "ListKeyVersionsResponseBody")
	if versions["TotalCount"].(float64) != 2 {
		t.Errorf("ListKeyVersions TotalCount = %v", versions["TotalCount"])
	}
	dv := mustCall(t, routes, "DescribeKeyVersion", kmsapi.Params{"KeyId": keyID, "KeyVersionId": vid})
	checkNames(t, "DescribeKeyVersion", dv, "KeyVersionResponseBody")

	// Old ciphertext still decrypts after the new version.
	mustCall(t, routes, "Decrypt", kmsapi.Params{"CiphertextBlob": enc["CiphertextBlob"].(string), "EncryptionContext": `{"a":"b","n":1}`})

	mustCall(t, routes, "UpdateKeyDescription", kmsapi.Params{"KeyId": keyID, "Description": "new"})
	mustCall(t, routes, "UpdateRotationPolicy", kmsapi.Params{"KeyId": keyID, "EnableAutomaticRotation": "false"})
	mustCall(t, routes, "DisableKey", kmsapi.Params{"KeyId": keyID})
	if _, err := call(t, routes, "Encrypt", kmsapi.Params{"KeyId": keyID, "Plaintext": "aGk="}); errs.KindOf(err) != errs.KindDisabled {
		t.Errorf("Encrypt with a disabled key: %v", err)
	}
	mustCall(t, routes, "EnableKey", kmsapi.Params{"KeyId": keyID})
	mustCall(t, routes, "ScheduleKeyDeletion", kmsapi.Params{"KeyId": keyID, "PendingWindowInDays": "7"})
	if _, err := call(t, routes, "ScheduleKeyDeletion", kmsapi.Params{"KeyId": keyID}); errs.KindOf(err) != errs.KindMissingParameter {
		t.Errorf("ScheduleKeyDeletion without a window: %v", err)
	}
	d := mustCall(t, routes, "DescribeKey", kmsapi.Params{"KeyId": keyID})["KeyMetadata"].(map[string]any)
	if d["KeyState"] != "PendingDeletion" || d["DeleteDate"] == nil {
		t.Errorf("after ScheduleKeyDeletion: %v", d)
	}
	mustCall(t, routes, "CancelKeyDeletion", kmsapi.Params{"KeyId": keyID})
	mustCall(t, routes, "UpdateAlias", kmsapi.Params{"KeyId": keyID, "AliasName": "alias/app"})
	mustCall(t, routes, "DeleteAlias", kmsapi.Params{"AliasName": "alias/app"})

	tagged := mustCall(t, routes, "CreateKey", kmsapi.Params{"Tags": `[{"TagKey":"team","TagValue":"core"}]`})
	tags := mustCall(t, routes, "ListResourceTags", kmsapi.Params{"KeyId": tagged["KeyMetadata"].(map[string]any)["KeyId"].(string)})
	checkNames(t, "ListResourceTags", tags, "ListResourceTagsResponseBody")
	tagList := tags["Tags"].(map[string]any)["Tag"].([]any)
	if len(tagList) != 1 {
		t.Fatalf("tags: %v", tagList)
	}
	checkNames(t, "ListResourceTags.Tag", tagList[0].(map[string]any), "ListResourceTagsResponseBodyTagsTag")

	if _, err := call(t, routes, "CreateKey", kmsapi.Params{"Policy": "{}"}); errs.KindOf(err) != errs.KindUnsupported {
		t.Errorf("CreateKey with a key policy: %v", err)
	}
	if _, err := call(t, routes, "Encrypt", kmsapi.Params{"KeyId": keyID, "Plaintext": "not base64!"}); errs.KindOf(err) != errs.KindInvalidParameter {
		t.Errorf("Encrypt with bad Base64: %v", err)
	}
}

func TestKeyRoutesRegistered(t *testing.T) {
	routes := keyRoutes(t)
	for _, a := range []string{
		"CreateKey", "DescribeKey", "ListKeys", "UpdateKeyDescription", "EnableKey", "DisableKey",
		"ScheduleKeyDeletion", "CancelKeyDeletion", "CreateAlias", "UpdateAlias", "DeleteAlias",
		"ListAliases", "ListAliasesByKeyId", "CreateKeyVersion", "ListKeyVersions", "DescribeKeyVersion",
		"Encrypt", "Decrypt", "ReEncrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext",
	} {
		r, ok := routes[a]
		if !ok || r.Version != kmsapi.VersionKMS || r.Handler == nil {
			t.Errorf("route %s missing", a)
		}
	}
}
