package server_test

// keyhold:ManageHostCredentials end to end: RAM users made with the official
// RAM client create and rotate ECS secrets through the official KMS SDK (and
// Keyhold's client for RotateSecret's SecretData extension) against hosts
// enrolled over the agent protocol (no sshd needed: only who may ask is
// tested here, not the rotation itself).

import (
	"context"
	"fmt"
	"testing"

	kms "github.com/alibabacloud-go/kms-20160120/v3/client"
	"github.com/alibabacloud-go/tea/tea"

	"github.com/keyhold/keyhold/client"
)

func TestHostCredentialsPermission(t *testing.T) {
	t.Parallel()
	f := newAuthzFixture(t)
	ctx := context.Background()
	root := f.ts.goClient(t)
	enroll := func() string {
		a := f.ts.rawAgent(t)
		if st, _ := a.enroll(must(root.CreateEnrollmentToken(ctx, "", 0)).Token); st != 200 {
			t.Fatalf("enroll: %d", st)
		}
		return a.hostID
	}
	hostA, hostB := enroll(), enroll() // each reports the allowed user alice
	createECS := func(c *kms.Client, name, host string) error {
		_, err := c.CreateSecret(&kms.CreateSecretRequest{
			SecretName: tea.String(name), SecretType: tea.String("ECS"), VersionId: tea.String("v1"),
			SecretData:     tea.String(`{"UserName":"alice","Password":"Initial-Passw0rd"}`),
			ExtendedConfig: map[string]any{"SecretSubType": "Password", "RegionId": "cn-hangzhou", "InstanceId": host},
		})
		return err
	}
	count := func() int32 {
		return tea.Int32Value(must(f.root.ListSecrets(&kms.ListSecretsRequest{})).Body.TotalCount)
	}
	hostStmt := func(host string) string {
		return fmt.Sprintf(`{"Effect":"Allow","Action":"keyhold:ManageHostCredentials","Resource":"acs:keyhold:*:%s:host/%s"}`, f.ts.Account, host)
	}

	// Creating: kms:CreateSecret alone is not enough.
	f.ram.createPolicy(t, "Create", `{"Version":"1","Statement":[{"Effect":"Allow","Action":"kms:CreateSecret","Resource":"*"}]}`)
	creator, _ := f.user(t, "creator", "Custom:Create")
	wantCode(t, createECS(creator, "acs/ecs/a/alice", hostA), "Forbidden.NoPermission")
	if n := count(); n != 0 {
		t.Fatalf("a refused create stored %d secrets", n)
	}
	// A Generic secret needs nothing more.
	must(creator.CreateSecret(&kms.CreateSecretRequest{SecretName: tea.String("app/plain"), SecretData: tea.String("x"), VersionId: tea.String("v1")}))

	f.ram.createPolicy(t, "HostA", `{"Version":"1","Statement":[`+hostStmt(hostA)+`]}`)
	f.ram.attachUser(t, "Custom", "HostA", "creator")
	if err := createECS(creator, "acs/ecs/a/alice", hostA); err != nil {
		t.Fatalf("create on the granted host: %v", err)
	}
	// The grant names one host: another is refused and nothing is stored.
	wantCode(t, createECS(creator, "acs/ecs/b/alice", hostB), "Forbidden.NoPermission")
	if n := count(); n != 2 {
		t.Fatalf("%d secrets stored, want 2", n)
	}
	// A malformed InstanceId is the handler's InvalidParameter, not a crash.
	wantCode(t, createECS(creator, "acs/ecs/x/alice", "not-a-host"), "InvalidParameter")

	// Rotating with a supplied value: kms:RotateSecret and the host
	// permission are not enough without kms:GetSecretValue.
	f.ram.createPolicy(t, "Rotate", `{"Version":"1","Statement":[{"Effect":"Allow","Action":"kms:RotateSecret","Resource":"*"},`+hostStmt(hostA)+`]}`)
	rotSDK, k := f.user(t, "rotator", "Custom:Rotate")
	rot := f.ts.apiClient(t, k.AccessKeyId, k.AccessKeySecret)
	supplied := mustJSON(map[string]string{"UserName": "alice", "Password": "Chosen-Passw0rd-1"})
	_, err := rot.RotateSecret(ctx, &client.RotateSecretRequest{SecretName: "acs/ecs/a/alice", VersionId: "v2", SecretData: supplied})
	wantClientCode(t, err, "Forbidden.NoPermission")
	if n := len(must(root.ListRotations(ctx, &client.ListRotationsRequest{})).Rotations.Rotation); n != 0 {
		t.Fatalf("a refused rotation started %d rotations", n)
	}
	// Without SecretData the value is generated: allowed.
	must(rotSDK.RotateSecret(&kms.RotateSecretRequest{SecretName: tea.String("acs/ecs/a/alice"), VersionId: tea.String("v3")}))
	rs := must(root.ListRotations(ctx, &client.ListRotationsRequest{SecretName: "acs/ecs/a/alice"})).Rotations.Rotation
	if len(rs) != 1 || rs[0].VersionId != "v3" || rs[0].Supplied {
		t.Fatalf("rotations %+v", rs)
	}

	// With kms:GetSecretValue too, all three are held for host A.
	f.ram.createPolicy(t, "ReadAll", `{"Version":"1","Statement":[{"Effect":"Allow","Action":"kms:GetSecretValue","Resource":"*"}]}`)
	f.ram.attachUser(t, "Custom", "ReadAll", "rotator")
	// The call passes authorization and reaches the rotation, which is
	// busy with v3 (the agent never answers).
	_, err = rot.RotateSecret(ctx, &client.RotateSecretRequest{SecretName: "acs/ecs/a/alice", VersionId: "v4", SecretData: supplied})
	wantClientCode(t, err, "Rejected.ResourceInUse")
	// A secret on host B is still refused: the grant names host A only.
	must(f.root.CreateSecret(&kms.CreateSecretRequest{SecretName: tea.String("acs/ecs/b/alice"), SecretType: tea.String("ECS"), VersionId: tea.String("v1"),
		SecretData:     tea.String(`{"UserName":"alice","Password":"Initial-Passw0rd"}`),
		ExtendedConfig: map[string]any{"SecretSubType": "Password", "RegionId": "cn-hangzhou", "InstanceId": hostB}}))
	_, err = rot.RotateSecret(ctx, &client.RotateSecretRequest{SecretName: "acs/ecs/b/alice", VersionId: "v2", SecretData: supplied})
	wantClientCode(t, err, "Forbidden.NoPermission")
	if n := len(must(root.ListRotations(ctx, &client.ListRotationsRequest{SecretName: "acs/ecs/b/alice"})).Rotations.Rotation); n != 0 {
		t.Fatalf("a refused rotation on host B started %d rotations", n)
	}
	// A Generic secret needs no host grant: the call passes authorization
	// and reaches the handler, which does not rotate Generic secrets.
	_, err = rot.RotateSecret(ctx, &client.RotateSecretRequest{SecretName: "app/plain", VersionId: "v2", SecretData: "y"})
	wantClientCode(t, err, "InvalidParameter")
}
