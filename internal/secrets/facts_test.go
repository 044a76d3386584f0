package secrets

import (
	"testing"

	"github.com/keyhold/keyhold/internal/errs"
)

func TestSecretHost(t *testing.T) {
	f := newFixture(t)
	f.createECS(t)
	if _, err := f.svc.CreateSecret(ctx, acct, CreateInput{Name: "plain", VersionID: "v1", Data: "x",
		ExtendedConfig: `{"InstanceId":"i-not-a-host-secret"}`}); err != nil {
		t.Fatal(err)
	}
	if id, err := f.svc.SecretHost(ctx, acct, "acs/ecs/i-123/root"); err != nil || id != "i-123" {
		t.Fatalf("ECS secret: %q, %v", id, err)
	}
	// A Generic secret names no host, whatever its ExtendedConfig says.
	if id, err := f.svc.SecretHost(ctx, acct, "plain"); err != nil || id != "" {
		t.Fatalf("Generic secret: %q, %v", id, err)
	}
	if _, err := f.svc.SecretHost(ctx, acct, "missing"); !errs.Is(err, errs.KindSecretNotFound) {
		t.Fatalf("missing secret: %v", err)
	}
	// Another account does not see it.
	if _, err := f.svc.SecretHost(ctx, "9999999999", "acs/ecs/i-123/root"); !errs.Is(err, errs.KindSecretNotFound) {
		t.Fatalf("other account: %v", err)
	}
}
