package server_test

// The Go Secrets Manager client (github.com/aliyun/aliyun-secretsmanager-client-go)
// reads secrets from the server's https listener, unmodified.
//
// Pointing it at host:port: the client builds one old-style KMS client
// (github.com/aliyun/alibaba-cloud-sdk-go/services/kms) per RegionInfo and,
// when RegionInfo.Endpoint is set, uses it verbatim as the request's Domain,
// so models.NewRegionInfoWithEndpoint("cn-hangzhou", "127.0.0.1:8443") is
// all it takes. The same works from the environment with
// cache_client_region_id='[{"regionId":"cn-hangzhou","endpoint":"127.0.0.1:8443"}]'.
// The client always sends https (request.Scheme = "https") and calls
// SetHTTPSInsecure(true), so the deployment's own certificate is accepted
// without configuring a CA. It signs with V1 (HMAC-SHA1) and asks for JSON.

import (
	"io"
	"log"
	"strings"
	"testing"
	"time"

	kms "github.com/alibabacloud-go/kms-20160120/v3/client"
	"github.com/alibabacloud-go/tea/tea"
	smsdk "github.com/aliyun/aliyun-secretsmanager-client-go/sdk"
	smlogger "github.com/aliyun/aliyun-secretsmanager-client-go/sdk/logger"
	smmodels "github.com/aliyun/aliyun-secretsmanager-client-go/sdk/models"
	smservice "github.com/aliyun/aliyun-secretsmanager-client-go/sdk/service"
)

// smClient builds a Secrets Manager cache client against ts's https
// listener; configure may add per-secret TTLs and the like.
func (ts *testServer) smClient(t *testing.T, configure ...func(*smsdk.SecretCacheClientBuilder)) *smsdk.SecretManagerCacheClient {
	t.Helper()
	// The client also reads its configuration from the environment and from
	// ./secretsmanager.properties; make sure only ours counts.
	for _, env := range []string{"credentials_type", "cache_client_region_id", "cache_client_dkms_config_info"} {
		t.Setenv(env, "")
	}
	host := strings.TrimPrefix(ts.HTTPSURL, "https://")
	inner := smservice.NewDefaultSecretManagerClientBuilder().Standard().
		WithAccessKey(ts.keyID, ts.keySecret).
		AddRegionInfo(smmodels.NewRegionInfoWithEndpoint("cn-hangzhou", host)).
		Build()
	b := smsdk.NewSecretCacheClientBuilder(inner).
		WithLogger(smlogger.NewDefaultLogger(log.New(io.Discard, "", 0)))
	for _, f := range configure {
		f(b)
	}
	c, err := b.Build()
	if err != nil {
		t.Fatalf("build the Secrets Manager client against %s: %v", host, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestSecretsManagerClient(t *testing.T) {
	ts := startServer(t)
	admin := ts.sdk(t, sdkModes[1]) // ACS3 over https
	must(admin.CreateSecret(&kms.CreateSecretRequest{SecretName: tea.String("sm/app"), SecretData: tea.String(`{"user":"app","password":"one"}`), VersionId: tea.String("v1")}))
	must(admin.CreateSecret(&kms.CreateSecretRequest{SecretName: tea.String("sm/short"), SecretData: tea.String("short-one"), VersionId: tea.String("v1")}))

	c := ts.smClient(t, func(b *smsdk.SecretCacheClientBuilder) {
		// A 300 ms TTL for this one secret: the cache must refetch it.
		// (The client also schedules a background refresh at that period
		// which Close does not cancel; after the server stops it fails
		// fast, into the discarded log, until the test binary exits.)
		b.WithSecretTTL("sm/short", 300)
	})
	got, err := c.GetStringValue("sm/app")
	if err != nil {
		t.Fatalf("GetStringValue: %v", err)
	}
	if got != `{"user":"app","password":"one"}` {
		t.Fatalf("GetStringValue = %q", got)
	}
	info, err := c.GetSecretInfo("sm/app")
	if err != nil {
		t.Fatal(err)
	}
	if info.VersionId != "v1" || info.SecretDataType != "text" || info.SecretType != "Generic" || info.CreateTime == "" {
		t.Errorf("SecretInfo = %+v", info)
	}

	// A new value. The cache (default TTL one hour) keeps serving the old
	// one; RefreshNow and a fresh client see the new one.
	must(admin.PutSecretValue(&kms.PutSecretValueRequest{SecretName: tea.String("sm/app"), SecretData: tea.String(`{"user":"app","password":"two"}`), VersionId: tea.String("v2")}))
	if got, _ := c.GetStringValue("sm/app"); got != `{"user":"app","password":"one"}` {
		t.Errorf("cached value = %q, want the old value until the TTL ends", got)
	}
	fresh := ts.smClient(t)
	if got, err := fresh.GetStringValue("sm/app"); err != nil || got != `{"user":"app","password":"two"}` {
		t.Errorf("fresh client: %q, %v", got, err)
	}
	if ok, err := c.RefreshNow("sm/app"); !ok || err != nil {
		t.Fatalf("RefreshNow: %v, %v", ok, err)
	}
	if got, _ := c.GetStringValue("sm/app"); got != `{"user":"app","password":"two"}` {
		t.Errorf("after RefreshNow = %q", got)
	}
	if info, _ := c.GetSecretInfo("sm/app"); info == nil || info.VersionId != "v2" {
		t.Errorf("after RefreshNow SecretInfo = %+v", info)
	}

	// A short TTL: the next read after it ends goes to the server.
	if got, _ := c.GetStringValue("sm/short"); got != "short-one" {
		t.Errorf("sm/short = %q", got)
	}
	must(admin.PutSecretValue(&kms.PutSecretValueRequest{SecretName: tea.String("sm/short"), SecretData: tea.String("short-two"), VersionId: tea.String("v2")}))
	deadline := time.Now().Add(3 * time.Second)
	for {
		got, err := c.GetStringValue("sm/short")
		if err == nil && got == "short-two" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sm/short still %q (%v) well after its 300 ms TTL", got, err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Errors come back with the KMS code, without the client's retry loop.
	start := time.Now()
	_, err = fresh.GetStringValue("sm/missing")
	if err == nil || !strings.Contains(err.Error(), "Forbidden.ResourceNotFound") {
		t.Errorf("missing secret: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("missing secret took %s: the client retried a non-retryable error", d)
	}
}
