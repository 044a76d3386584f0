package server_test

// ECS secrets' bad input, through the official SDK and the Keyhold client
// against a server with a real enrolled agent, sshd and users.

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	kms "github.com/alibabacloud-go/kms-20160120/v3/client"
	"github.com/alibabacloud-go/tea/tea"

	"github.com/keyhold/keyhold/client"
	"github.com/keyhold/keyhold/internal/testutil/sshdtest"
)

func TestECSBadInput(t *testing.T) {
	t.Parallel()
	e := newRotEnv(t, sshdtest.Options{PermitRootLogin: "prohibit-password"})
	name, old := passwordSetup(t, e)
	sdk := e.sdk()
	create := func(secret, sub, instance, data string) error {
		_, err := sdk.CreateSecret(&kms.CreateSecretRequest{
			SecretName: tea.String(secret), SecretType: tea.String("ECS"), VersionId: tea.String("v1"),
			SecretData:     tea.String(data),
			ExtendedConfig: map[string]any{"SecretSubType": sub, "RegionId": "cn-hangzhou", "InstanceId": instance},
		})
		return err
	}
	pw := func(user string) string {
		b, _ := json.Marshal(map[string]string{"UserName": user, "Password": "Whatever-Passw0rd"})
		return string(b)
	}
	_, pub, priv := newSSHKey(t)
	for _, tc := range []struct{ what, secret, sub, instance, data, code string }{
		{"instance that is not an enrolled host", "acs/ecs/x/a", "Password", "i-zzzzzzzzzzzzzzzzzzzz", pw(old.UserName), "InvalidParameter"},
		{"user not on the host", "acs/ecs/x/b", "Password", e.hostID, pw("nosuchuser"), "InvalidParameter"},
		{"root, not in the agent's allow-list", "acs/ecs/x/c", "Password", e.hostID, pw("root"), "InvalidParameter"},
		{"missing password", "acs/ecs/x/d", "Password", e.hostID, `{"UserName":"` + old.UserName + `"}`, "InvalidParameter"},
		{"malformed value", "acs/ecs/x/e", "Password", e.hostID, `{"UserName":`, "InvalidParameter"},
		{"private key that is not PEM", "acs/ecs/x/f", "SSHKey", e.hostID, `{"UserName":"` + old.UserName + `","PublicKey":"` + pub + `","PrivateKey":"not a key"}`, "InvalidParameter"},
		{"public key of another pair", "acs/ecs/x/g", "SSHKey", e.hostID, mustJSON(map[string]string{"UserName": old.UserName, "PublicKey": otherPub(t), "PrivateKey": priv}), "InvalidParameter"},
		{"unknown sub-type", "acs/ecs/x/h", "Token", e.hostID, pw(old.UserName), "InvalidParameter"},
		{"name outside acs/ecs/", "plain/name", "Password", e.hostID, pw(old.UserName), "InvalidParameter"},
	} {
		if err := create(tc.secret, tc.sub, tc.instance, tc.data); errCode(err) != tc.code {
			t.Errorf("%s: %v, want %s", tc.what, err, tc.code)
		}
	}
	list := must(sdk.ListSecrets(&kms.ListSecretsRequest{}))
	if n := tea.Int32Value(list.Body.TotalCount); n != 1 {
		t.Fatalf("%d secrets stored, want only the valid one", n)
	}

	// Managed: no PutSecretValue, no moving built-in stages.
	_, err := sdk.PutSecretValue(&kms.PutSecretValueRequest{SecretName: tea.String(name), VersionId: tea.String("v9"), SecretData: tea.String(pw(old.UserName))})
	wantCode(t, err, "InvalidParameter")
	_, err = sdk.UpdateSecretVersionStage(&kms.UpdateSecretVersionStageRequest{SecretName: tea.String(name), VersionStage: tea.String("ACSCurrent"), MoveToVersion: tea.String("v1")})
	wantCode(t, err, "InvalidParameter")

	// Rotation of an unknown secret.
	_, err = sdk.RotateSecret(&kms.RotateSecretRequest{SecretName: tea.String("acs/ecs/nope/nobody"), VersionId: tea.String("v2")})
	wantCode(t, err, "Forbidden.ResourceNotFound")

	// A second rotation while one is running; the same VersionId again is
	// an idempotent success.
	e.stopAgent()
	e.rotate(name, "v2")
	_, err = sdk.RotateSecret(&kms.RotateSecretRequest{SecretName: tea.String(name), VersionId: tea.String("v3")})
	wantCode(t, err, "Rejected.ResourceInUse")
	e.rotate(name, "v2")
	// Another rotation with a supplied value is refused while one runs.
	_, err = e.kc.RotateSecret(context.Background(), &client.RotateSecretRequest{SecretName: name, VersionId: "v4", SecretData: pw("root")})
	if err == nil {
		t.Fatal("a supplied value was accepted while a rotation runs")
	}
	e.startAgent()
	e.converged(name, old)
	_, err = e.kc.RotateSecret(context.Background(), &client.RotateSecretRequest{SecretName: name, VersionId: "v5", SecretData: pw("root")})
	if code := apiCode(err); code != "InvalidParameter" {
		t.Fatalf("supplied value for another user: %v", err)
	}

	// Unknown rotation id, bad State filter.
	if _, err := e.kc.DescribeRotation(context.Background(), "rot-nope"); apiCode(err) != "Forbidden.ResourceNotFound" {
		t.Fatalf("unknown rotation: %v", err)
	}
	if _, err := e.kc.ListRotations(context.Background(), &client.ListRotationsRequest{State: "sleeping"}); apiCode(err) != "InvalidParameter" {
		t.Fatalf("bad State filter: %v", err)
	}

	// A removed host: its secrets cannot be rotated any more.
	if err := e.kc.RemoveHost(context.Background(), e.hostID); err != nil {
		t.Fatal(err)
	}
	_, err = sdk.RotateSecret(&kms.RotateSecretRequest{SecretName: tea.String(name), VersionId: tea.String("v6")})
	wantCode(t, err, "Rejected.Unexpected")
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func otherPub(t *testing.T) string {
	_, pub, _ := newSSHKey(t)
	return pub
}

func apiCode(err error) string {
	var e *client.Error
	if errors.As(err, &e) {
		return e.Code
	}
	if err == nil {
		return ""
	}
	return "?" + err.Error()
}
