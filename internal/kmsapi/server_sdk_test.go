package kmsapi

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	openapi "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	kmssdk "github.com/alibabacloud-go/kms-20160120/v3/client"
	"github.com/alibabacloud-go/tea/tea"

	"github.com/keyhold/keyhold/internal/errs"
)

// TestOfficialSDKEndToEnd drives the server with the official Go SDK over
// real HTTP, in both signature schemes: its default ACS3 (DoRequest) and
// V1 (SignatureAlgorithm "v2", DoRPCRequest). It also checks that the SDK
// surfaces our error code and status.
func TestOfficialSDKEndToEnd(t *testing.T) {
	routes := []Route{
		{Version: VersionKMS, Action: "GetSecretValue", Handler: func(_ context.Context, r *Request) (any, error) {
			name, err := r.Params.Required("SecretName")
			if err != nil {
				return nil, err
			}
			if name == "absent" {
				return nil, errs.E(errs.KindSecretNotFound, "The secret is not found.")
			}
			return map[string]any{
				"SecretName":    name,
				"SecretData":    "v=" + r.Params.String("VersionStage"),
				"VersionStages": map[string][]string{"VersionStage": {"ACSCurrent"}},
			}, nil
		}},
	}
	srv := New(Config{
		Credentials: &srvCreds{}, Nonces: &srvNonces{},
		Now: time.Now, // the SDK stamps requests with the real clock
	}, routes)
	ts := httptest.NewServer(srv)
	defer ts.Close()

	for _, alg := range []string{"", "v2"} {
		t.Run("SignatureAlgorithm="+alg, func(t *testing.T) {
			cfg := &openapi.Config{
				AccessKeyId:     tea.String(rootID),
				AccessKeySecret: tea.String(rootSecret),
				Endpoint:        tea.String(strings.TrimPrefix(ts.URL, "http://")),
				Protocol:        tea.String("http"),
				RegionId:        tea.String("cn-hangzhou"),
			}
			if alg != "" {
				cfg.SignatureAlgorithm = tea.String(alg)
			}
			c, err := kmssdk.NewClient(cfg)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := c.GetSecretValue(&kmssdk.GetSecretValueRequest{
				SecretName:   tea.String("db/prod pass*~"),
				VersionStage: tea.String("ACSCurrent"),
			})
			if err != nil {
				t.Fatal(err)
			}
			b := resp.Body
			if tea.StringValue(b.SecretName) != "db/prod pass*~" || tea.StringValue(b.SecretData) != "v=ACSCurrent" ||
				tea.StringValue(b.RequestId) == "" || len(b.VersionStages.VersionStage) != 1 {
				t.Errorf("response %v", b)
			}

			_, err = c.GetSecretValue(&kmssdk.GetSecretValueRequest{SecretName: tea.String("absent")})
			var se *tea.SDKError
			if !errors.As(err, &se) || tea.StringValue(se.Code) != "Forbidden.ResourceNotFound" || tea.IntValue(se.StatusCode) != 404 {
				t.Errorf("error %T %v", err, err)
			}
		})
	}
}
