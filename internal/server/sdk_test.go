package server_test

// These tests drive the unmodified official Alibaba Cloud KMS SDK
// (github.com/alibabacloud-go/kms-20160120/v3) against a server started in
// the test, with both of its signature schemes over http and https.

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	openapi "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	kms "github.com/alibabacloud-go/kms-20160120/v3/client"
	"github.com/alibabacloud-go/tea/tea"

	"github.com/keyhold/keyhold/internal/server"
	"github.com/keyhold/keyhold/internal/testutil/logbuf"
	"github.com/keyhold/keyhold/internal/testutil/rootcreds"
)

// testServer is a server started on free loopback ports in a temp data dir.
type testServer struct {
	*server.Server
	dir       string
	keyID     string
	keySecret string
	logs      *syncBuffer
}

// syncBuffer collects a component's log for the test to read.
type syncBuffer = logbuf.Buffer

func startServer(t *testing.T, mutate ...func(*server.Config)) *testServer {
	t.Helper()
	dir := t.TempDir()
	logs := &syncBuffer{}
	cfg := server.Config{
		DataDir:   dir,
		Listen:    "127.0.0.1:0",
		TLSListen: "127.0.0.1:0",
		Logger:    slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, m := range mutate {
		m(&cfg)
	}
	srv, err := server.Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("start server: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	creds := rootcreds.Read(t, dir)
	return &testServer{Server: srv, dir: dir, keyID: creds.ID, keySecret: creds.Secret, logs: logs}
}

type sdkMode struct {
	name   string
	proto  string // http or https
	scheme string // "" (ACS3 default) or "v2" (V1 HMAC-SHA1)
}

var sdkModes = []sdkMode{
	{"ACS3/http", "http", ""},
	{"ACS3/https", "https", ""},
	{"V1/http", "http", "v2"},
	{"V1/https", "https", "v2"},
}

func (ts *testServer) sdk(t *testing.T, m sdkMode) *kms.Client {
	t.Helper()
	return ts.sdkWith(t, m, ts.keyID, ts.keySecret)
}

func (ts *testServer) sdkWith(t *testing.T, m sdkMode, id, secret string) *kms.Client {
	t.Helper()
	url := ts.HTTPURL
	if m.proto == "https" {
		url = ts.HTTPSURL
	}
	cfg := &openapi.Config{
		AccessKeyId:     tea.String(id),
		AccessKeySecret: tea.String(secret),
		Endpoint:        tea.String(strings.TrimPrefix(strings.TrimPrefix(url, "http://"), "https://")),
		Protocol:        tea.String(m.proto),
		RegionId:        tea.String("cn-hangzhou"),
		Ca:              tea.String(string(ts.CACertPEM())),
	}
	if m.scheme != "" {
		cfg.SignatureAlgorithm = tea.String(m.scheme)
	}
	c, err := kms.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var codeRE = regexp.MustCompile(`Code: ([A-Za-z.]+)`)

// errCode extracts the KMS error code from an SDK error.
func errCode(err error) string {
	if err == nil {
		return ""
	}
	if m := codeRE.FindStringSubmatch(err.Error()); m != nil {
		return m[1]
	}
	return "?" + err.Error()
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := errCode(err); got != code {
		t.Fatalf("error code = %q, want %q (err: %v)", got, code, err)
	}
}

// must unwraps an SDK call's result; an error fails the test (by panic,
// which the testing package reports with the calling line).
func must[T any](v T, err error) T {
	if err != nil {
		panic(fmt.Sprintf("unexpected error: %v", err))
	}
	return v
}

func TestSDKSecretLifecycle(t *testing.T) {
	ts := startServer(t)
	for _, m := range sdkModes {
		t.Run(m.name, func(t *testing.T) {
			c := ts.sdk(t, m)
			name := "app/db-" + strings.NewReplacer("/", "-").Replace(m.name)

			created := must(c.CreateSecret(&kms.CreateSecretRequest{
				SecretName:  tea.String(name),
				SecretData:  tea.String("pw-one"),
				VersionId:   tea.String("v1"),
				Description: tea.String("database password"),
				Tags:        tea.String(`[{"TagKey":"env","TagValue":"prod"}]`),
			}))
			if got := tea.StringValue(created.Body.Arn); !strings.HasSuffix(got, ":secret/"+name) || !strings.HasPrefix(got, "acs:kms:cn-hangzhou:"+ts.Account+":") {
				t.Errorf("Arn = %q", got)
			}
			if tea.StringValue(created.Body.VersionId) != "v1" {
				t.Errorf("VersionId = %q", tea.StringValue(created.Body.VersionId))
			}

			got := must(c.GetSecretValue(&kms.GetSecretValueRequest{SecretName: tea.String(name)}))
			if tea.StringValue(got.Body.SecretData) != "pw-one" || tea.StringValue(got.Body.VersionId) != "v1" {
				t.Fatalf("GetSecretValue = %q %q", tea.StringValue(got.Body.SecretData), tea.StringValue(got.Body.VersionId))
			}
			if st := got.Body.VersionStages; st == nil || len(st.VersionStage) != 1 || tea.StringValue(st.VersionStage[0]) != "ACSCurrent" {
				t.Errorf("VersionStages = %v", st)
			}

			must(c.PutSecretValue(&kms.PutSecretValueRequest{
				SecretName: tea.String(name), VersionId: tea.String("v2"), SecretData: tea.String("pw-two"),
			}))
			// Idempotent: the same version with the same data succeeds again.
			must(c.PutSecretValue(&kms.PutSecretValueRequest{
				SecretName: tea.String(name), VersionId: tea.String("v2"), SecretData: tea.String("pw-two"),
			}))
			// The same version with other data is refused.
			_, err := c.PutSecretValue(&kms.PutSecretValueRequest{
				SecretName: tea.String(name), VersionId: tea.String("v2"), SecretData: tea.String("other"),
			})
			wantCode(t, err, "Rejected.ResourceExist")

			cur := must(c.GetSecretValue(&kms.GetSecretValueRequest{SecretName: tea.String(name)}))
			if tea.StringValue(cur.Body.SecretData) != "pw-two" {
				t.Errorf("current = %q", tea.StringValue(cur.Body.SecretData))
			}
			prev := must(c.GetSecretValue(&kms.GetSecretValueRequest{SecretName: tea.String(name), VersionStage: tea.String("ACSPrevious")}))
			if tea.StringValue(prev.Body.SecretData) != "pw-one" || tea.StringValue(prev.Body.VersionId) != "v1" {
				t.Errorf("previous = %q %q", tea.StringValue(prev.Body.SecretData), tea.StringValue(prev.Body.VersionId))
			}
			byID := must(c.GetSecretValue(&kms.GetSecretValueRequest{SecretName: tea.String(name), VersionId: tea.String("v1")}))
			if tea.StringValue(byID.Body.SecretData) != "pw-one" {
				t.Errorf("by id = %q", tea.StringValue(byID.Body.SecretData))
			}

			vers := must(c.ListSecretVersionIds(&kms.ListSecretVersionIdsRequest{SecretName: tea.String(name)}))
			if n := len(vers.Body.VersionIds.VersionId); n != 2 {
				t.Errorf("versions = %d, want 2", n)
			}

			// Move ACSCurrent back to v1: v2 becomes ACSPrevious.
			must(c.UpdateSecretVersionStage(&kms.UpdateSecretVersionStageRequest{
				SecretName: tea.String(name), VersionStage: tea.String("ACSCurrent"),
				RemoveFromVersion: tea.String("v2"), MoveToVersion: tea.String("v1"),
			}))
			cur = must(c.GetSecretValue(&kms.GetSecretValueRequest{SecretName: tea.String(name)}))
			if tea.StringValue(cur.Body.VersionId) != "v1" {
				t.Errorf("after stage move current = %q", tea.StringValue(cur.Body.VersionId))
			}

			must(c.UpdateSecret(&kms.UpdateSecretRequest{SecretName: tea.String(name), Description: tea.String("new description")}))
			must(c.TagResource(&kms.TagResourceRequest{SecretName: tea.String(name), Tags: tea.String(`[{"TagKey":"team","TagValue":"payments"}]`)}))
			desc := must(c.DescribeSecret(&kms.DescribeSecretRequest{SecretName: tea.String(name), FetchTags: tea.String("true")}))
			if tea.StringValue(desc.Body.Description) != "new description" {
				t.Errorf("Description = %q", tea.StringValue(desc.Body.Description))
			}
			if desc.Body.Tags == nil || len(desc.Body.Tags.Tag) != 2 {
				t.Errorf("Tags = %v", desc.Body.Tags)
			}
			must(c.UntagResource(&kms.UntagResourceRequest{SecretName: tea.String(name), TagKeys: tea.String(`["team"]`)}))

			list := must(c.ListSecrets(&kms.ListSecretsRequest{
				Filters:   tea.String(fmt.Sprintf(`[{"Key":"SecretName","Values":[%q]}]`, name)),
				FetchTags: tea.String("true"),
			}))
			if tea.Int32Value(list.Body.TotalCount) != 1 || len(list.Body.SecretList.Secret) != 1 {
				t.Fatalf("ListSecrets filtered = %d", tea.Int32Value(list.Body.TotalCount))
			}

			// Scheduled deletion: reads fail inside the window, restore undoes it.
			del := must(c.DeleteSecret(&kms.DeleteSecretRequest{SecretName: tea.String(name), RecoveryWindowInDays: tea.String("7")}))
			if tea.StringValue(del.Body.PlannedDeleteTime) == "" {
				t.Error("PlannedDeleteTime empty")
			}
			_, err = c.GetSecretValue(&kms.GetSecretValueRequest{SecretName: tea.String(name)})
			wantCode(t, err, "Rejected.ResourceInDeleteWindow")
			must(c.RestoreSecret(&kms.RestoreSecretRequest{SecretName: tea.String(name)}))
			must(c.GetSecretValue(&kms.GetSecretValueRequest{SecretName: tea.String(name)}))

			must(c.DeleteSecret(&kms.DeleteSecretRequest{SecretName: tea.String(name), ForceDeleteWithoutRecovery: tea.String("true")}))
			_, err = c.GetSecretValue(&kms.GetSecretValueRequest{SecretName: tea.String(name)})
			wantCode(t, err, "Forbidden.ResourceNotFound")
		})
	}
}

func TestSDKRandomPasswordAndRegions(t *testing.T) {
	ts := startServer(t)
	c := ts.sdk(t, sdkModes[0])
	pw := must(c.GetRandomPassword(&kms.GetRandomPasswordRequest{PasswordLength: tea.String("24"), ExcludePunctuation: tea.String("true")}))
	if got := tea.StringValue(pw.Body.RandomPassword); len(got) != 24 || strings.ContainsAny(got, "!\"#$%&'()*+,-./:;<=>?@[]^_`{|}~") {
		t.Errorf("RandomPassword = %q", got)
	}
	regions := must(c.DescribeRegions())
	if regions.Body.Regions == nil || len(regions.Body.Regions.Region) != 1 || tea.StringValue(regions.Body.Regions.Region[0].RegionId) != "cn-hangzhou" {
		t.Errorf("DescribeRegions = %v", regions.Body.Regions)
	}
	_, err := c.RotateSecret(&kms.RotateSecretRequest{SecretName: tea.String("nope"), VersionId: tea.String("x")})
	wantCode(t, err, "Forbidden.ResourceNotFound")
	must(c.CreateSecret(&kms.CreateSecretRequest{SecretName: tea.String("gen"), SecretData: tea.String("x"), VersionId: tea.String("v1")}))
	_, err = c.RotateSecret(&kms.RotateSecretRequest{SecretName: tea.String("gen"), VersionId: tea.String("v2")})
	if err == nil {
		t.Fatal("RotateSecret on a generic secret succeeded")
	}
}

func TestSDKKeyLifecycle(t *testing.T) {
	ts := startServer(t)
	for _, m := range sdkModes {
		t.Run(m.name, func(t *testing.T) {
			c := ts.sdk(t, m)
			key := must(c.CreateKey(&kms.CreateKeyRequest{Description: tea.String("app key")}))
			md := key.Body.KeyMetadata
			keyID := tea.StringValue(md.KeyId)
			if keyID == "" || tea.StringValue(md.KeyState) != "Enabled" || !strings.HasSuffix(tea.StringValue(md.Arn), ":key/"+keyID) {
				t.Fatalf("KeyMetadata = %+v", md)
			}
			alias := "alias/app-" + strings.NewReplacer("/", "-").Replace(m.name)
			must(c.CreateAlias(&kms.CreateAliasRequest{AliasName: tea.String(alias), KeyId: tea.String(keyID)}))

			plain := base64.StdEncoding.EncodeToString([]byte("hello envelope"))
			enc := must(c.Encrypt(&kms.EncryptRequest{KeyId: tea.String(alias), Plaintext: tea.String(plain)}))
			dec := must(c.Decrypt(&kms.DecryptRequest{CiphertextBlob: enc.Body.CiphertextBlob}))
			if tea.StringValue(dec.Body.Plaintext) != plain || tea.StringValue(dec.Body.KeyId) != keyID {
				t.Errorf("Decrypt = %q key %q", tea.StringValue(dec.Body.Plaintext), tea.StringValue(dec.Body.KeyId))
			}
			ctxEnc := must(c.Encrypt(&kms.EncryptRequest{KeyId: tea.String(keyID), Plaintext: tea.String(plain),
				EncryptionContext: map[string]any{"app": "billing"}}))
			_, err := c.Decrypt(&kms.DecryptRequest{CiphertextBlob: ctxEnc.Body.CiphertextBlob, EncryptionContext: map[string]any{"app": "other"}})
			if err == nil {
				t.Error("Decrypt with the wrong EncryptionContext succeeded")
			}

			dk := must(c.GenerateDataKey(&kms.GenerateDataKeyRequest{KeyId: tea.String(keyID), KeySpec: tea.String("AES_256")}))
			raw, _ := base64.StdEncoding.DecodeString(tea.StringValue(dk.Body.Plaintext))
			if len(raw) != 32 {
				t.Errorf("data key is %d bytes", len(raw))
			}
			dk2 := must(c.Decrypt(&kms.DecryptRequest{CiphertextBlob: dk.Body.CiphertextBlob}))
			if tea.StringValue(dk2.Body.Plaintext) != tea.StringValue(dk.Body.Plaintext) {
				t.Error("wrapped data key does not decrypt to the plaintext data key")
			}
			must(c.GenerateDataKeyWithoutPlaintext(&kms.GenerateDataKeyWithoutPlaintextRequest{KeyId: tea.String(keyID)}))

			// A new key version: old ciphertexts still decrypt.
			must(c.CreateKeyVersion(&kms.CreateKeyVersionRequest{KeyId: tea.String(keyID)}))
			kv := must(c.ListKeyVersions(&kms.ListKeyVersionsRequest{KeyId: tea.String(keyID)}))
			if n := len(kv.Body.KeyVersions.KeyVersion); n != 2 {
				t.Errorf("key versions = %d, want 2", n)
			}
			must(c.Decrypt(&kms.DecryptRequest{CiphertextBlob: enc.Body.CiphertextBlob}))

			// A secret under this key becomes unreadable while it is disabled.
			secret := "under-" + strings.NewReplacer("/", "-").Replace(m.name)
			must(c.CreateSecret(&kms.CreateSecretRequest{SecretName: tea.String(secret), SecretData: tea.String("s"),
				VersionId: tea.String("v1"), EncryptionKeyId: tea.String(keyID)}))
			must(c.DisableKey(&kms.DisableKeyRequest{KeyId: tea.String(keyID)}))
			_, err = c.Encrypt(&kms.EncryptRequest{KeyId: tea.String(keyID), Plaintext: tea.String(plain)})
			wantCode(t, err, "Rejected.Disabled")
			_, err = c.GetSecretValue(&kms.GetSecretValueRequest{SecretName: tea.String(secret)})
			wantCode(t, err, "Rejected.Disabled")
			must(c.EnableKey(&kms.EnableKeyRequest{KeyId: tea.String(keyID)}))
			must(c.GetSecretValue(&kms.GetSecretValueRequest{SecretName: tea.String(secret)}))

			must(c.UpdateKeyDescription(&kms.UpdateKeyDescriptionRequest{KeyId: tea.String(keyID), Description: tea.String("renamed")}))
			d := must(c.DescribeKey(&kms.DescribeKeyRequest{KeyId: tea.String(keyID)}))
			if tea.StringValue(d.Body.KeyMetadata.Description) != "renamed" {
				t.Errorf("Description = %q", tea.StringValue(d.Body.KeyMetadata.Description))
			}
			aliases := must(c.ListAliasesByKeyId(&kms.ListAliasesByKeyIdRequest{KeyId: tea.String(keyID)}))
			if len(aliases.Body.Aliases.Alias) != 1 {
				t.Errorf("aliases = %d", len(aliases.Body.Aliases.Alias))
			}
			must(c.DeleteAlias(&kms.DeleteAliasRequest{AliasName: tea.String(alias)}))

			must(c.ScheduleKeyDeletion(&kms.ScheduleKeyDeletionRequest{KeyId: tea.String(keyID), PendingWindowInDays: tea.Int32(7)}))
			d = must(c.DescribeKey(&kms.DescribeKeyRequest{KeyId: tea.String(keyID)}))
			if tea.StringValue(d.Body.KeyMetadata.KeyState) != "PendingDeletion" {
				t.Errorf("KeyState = %q", tea.StringValue(d.Body.KeyMetadata.KeyState))
			}
			_, err = c.Encrypt(&kms.EncryptRequest{KeyId: tea.String(keyID), Plaintext: tea.String(plain)})
			wantCode(t, err, "Rejected.Disabled")
			must(c.CancelKeyDeletion(&kms.CancelKeyDeletionRequest{KeyId: tea.String(keyID)}))

			keys := must(c.ListKeys(&kms.ListKeysRequest{PageSize: tea.Int32(100)}))
			found := false
			for _, k := range keys.Body.Keys.Key {
				found = found || tea.StringValue(k.KeyId) == keyID
			}
			if !found {
				t.Error("ListKeys does not list the new key")
			}
		})
	}
}

// TestSDKBadCredentials: a wrong secret and an unknown key id are refused.
func TestSDKBadCredentials(t *testing.T) {
	ts := startServer(t)
	for _, m := range sdkModes {
		t.Run(m.name, func(t *testing.T) {
			c := ts.sdkWith(t, m, ts.keyID, ts.keySecret+"x")
			_, err := c.ListSecrets(&kms.ListSecretsRequest{})
			wantCode(t, err, "SignatureDoesNotMatch")
			c = ts.sdkWith(t, m, "LTAIunknownunknownunkn", ts.keySecret)
			_, err = c.ListSecrets(&kms.ListSecretsRequest{})
			wantCode(t, err, "InvalidAccessKeyId.NotFound")
		})
	}
}

// TestNoPlaintextAtRest writes marked values through the SDK, then greps the
// data directory and the server's logs for the markers and for the keys.
func TestNoPlaintextAtRest(t *testing.T) {
	ts := startServer(t)
	c := ts.sdk(t, sdkModes[0])
	const marker = "MARKER-7f3a9c-PLAINTEXT"
	must(c.CreateSecret(&kms.CreateSecretRequest{SecretName: tea.String("marked"), SecretData: tea.String(marker + "-v1"), VersionId: tea.String("v1")}))
	must(c.PutSecretValue(&kms.PutSecretValueRequest{SecretName: tea.String("marked"), SecretData: tea.String(marker + "-v2"), VersionId: tea.String("v2")}))
	_, err := c.PutSecretValue(&kms.PutSecretValueRequest{SecretName: tea.String("marked"), SecretData: tea.String(marker + "-conflict"), VersionId: tea.String("v2")})
	wantCode(t, err, "Rejected.ResourceExist")
	key := must(c.CreateKey(&kms.CreateKeyRequest{}))
	enc := must(c.Encrypt(&kms.EncryptRequest{KeyId: key.Body.KeyMetadata.KeyId, Plaintext: tea.String(base64.StdEncoding.EncodeToString([]byte(marker + "-enc")))}))
	must(c.Decrypt(&kms.DecryptRequest{CiphertextBlob: enc.Body.CiphertextBlob}))
	dk := must(c.GenerateDataKey(&kms.GenerateDataKeyRequest{KeyId: key.Body.KeyMetadata.KeyId}))
	rootKey, err := os.ReadFile(filepath.Join(ts.dir, "root.key"))
	if err != nil {
		t.Fatal(err)
	}
	ts.Close()

	needles := map[string][]byte{
		"secret marker":        []byte(marker),
		"access key secret":    []byte(ts.keySecret),
		"data key (base64)":    []byte(tea.StringValue(dk.Body.Plaintext)),
		"encrypt marker (b64)": []byte(base64.StdEncoding.EncodeToString([]byte(marker + "-enc"))),
	}
	if raw, err := base64.StdEncoding.DecodeString(tea.StringValue(dk.Body.Plaintext)); err == nil {
		needles["data key (raw)"] = raw
	}
	if len(rootKey) >= 32 {
		needles["root key (file bytes)"] = rootKey
	}
	err = filepath.Walk(ts.dir, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		base := filepath.Base(path)
		if base == "root.key" || base == "root-credentials.json" {
			return nil // the root key file and the one-time bootstrap file hold these by design
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for what, n := range needles {
			if len(n) > 0 && strings.Contains(string(data), string(n)) {
				t.Errorf("%s found in plain form in %s", what, path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	logs := ts.logs.String()
	if !strings.Contains(logs, "listening") {
		t.Fatalf("captured logs look empty: %q", logs)
	}
	for what, n := range needles {
		if len(n) > 0 && strings.Contains(logs, string(n)) {
			t.Errorf("%s found in the server log", what)
		}
	}
}

// TestFilesAreOwnerOnly: every file the first start creates has mode 0600.
func TestFilesAreOwnerOnly(t *testing.T) {
	ts := startServer(t)
	ts.Close()
	var n int
	filepath.Walk(ts.dir, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		n++
		if perm := info.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s has mode %o, want 600", path, perm)
		}
		return nil
	})
	for _, f := range []string{"root.key", "keyhold.db", "root-credentials.json", "ca.pem"} {
		if _, err := os.Stat(filepath.Join(ts.dir, f)); err != nil {
			t.Errorf("%s not created: %v", f, err)
		}
	}
}

// TestRestartReusesEverything: a second start on the same data dir keeps the
// account, the credentials and the data; a wrong root key refuses to start.
func TestRestartReusesEverything(t *testing.T) {
	ts := startServer(t)
	c := ts.sdk(t, sdkModes[0])
	must(c.CreateSecret(&kms.CreateSecretRequest{SecretName: tea.String("kept"), SecretData: tea.String("v"), VersionId: tea.String("v1")}))
	ts.Close()

	cfg := server.Config{DataDir: ts.dir, Listen: "127.0.0.1:0", TLSListen: "127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	srv2, err := server.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if srv2.Account != ts.Account {
		t.Errorf("account changed across restart: %s → %s", ts.Account, srv2.Account)
	}
	ts2 := &testServer{Server: srv2, dir: ts.dir, keyID: ts.keyID, keySecret: ts.keySecret}
	got := must(ts2.sdk(t, sdkModes[1]).GetSecretValue(&kms.GetSecretValueRequest{SecretName: tea.String("kept")}))
	if tea.StringValue(got.Body.SecretData) != "v" {
		t.Errorf("after restart = %q", tea.StringValue(got.Body.SecretData))
	}
	srv2.Close()

	other := filepath.Join(t.TempDir(), "other.key")
	if err := os.WriteFile(other, make([]byte, 32), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.RootKeyFile = other
	if srv3, err := server.Start(context.Background(), cfg); err == nil {
		srv3.Close()
		t.Fatal("server started with the wrong root key")
	} else if !strings.Contains(err.Error(), "root key") {
		t.Errorf("wrong-root-key error does not say so: %v", err)
	}
}

func TestPlainHTTPOnNonLoopbackRefused(t *testing.T) {
	_, err := server.Start(context.Background(), server.Config{DataDir: t.TempDir(), Listen: "0.0.0.0:0", TLSListen: "", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err == nil || !strings.Contains(err.Error(), "--insecure-http") {
		t.Fatalf("plain HTTP on 0.0.0.0 not refused: %v", err)
	}
}

func TestHealthEndpoints(t *testing.T) {
	ts := startServer(t)
	for _, p := range []string{"/healthz", "/readyz"} {
		resp, err := httpGet(ts.HTTPURL + p)
		if err != nil {
			t.Fatal(err)
		}
		if resp != 200 {
			t.Errorf("%s = %d", p, resp)
		}
	}
}

func httpGet(url string) (int, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}
