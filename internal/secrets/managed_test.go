package secrets

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold/internal/errs"
)

const ecsConfig = `{"SecretSubType":"Password","InstanceId":"i-123","RegionId":"cn-test"}`

func (f *fixture) createECS(t *testing.T, opts ...func(*CreateInput)) *Secret {
	t.Helper()
	in := CreateInput{Name: "acs/ecs/i-123/root", Type: TypeECS, VersionID: "v1",
		Data: `{"UserName":"root","Password":"p1"}`, ExtendedConfig: ecsConfig}
	for _, o := range opts {
		o(&in)
	}
	sec, err := f.svc.CreateSecret(ctx, acct, in)
	if err != nil {
		t.Fatal(err)
	}
	return sec
}

// fakeRotator runs a whole rotation through the Service's rotation seam.
type fakeRotator struct {
	svc   *Service
	calls int
	fail  error
}

func (r *fakeRotator) Rotate(ctx context.Context, account string, s *Secret, versionID string, supplied []byte) error {
	r.calls++
	if r.fail != nil {
		return r.fail
	}
	value := supplied
	if value == nil {
		value = []byte(`{"UserName":"root","Password":"rotated"}`)
	}
	if _, err := r.svc.AddPendingVersion(ctx, account, s.Name, versionID, value); err != nil {
		return err
	}
	return r.svc.PromoteVersion(ctx, account, s.Name, versionID)
}

func TestManagedSecretRefusals(t *testing.T) {
	f := newFixture(t)
	sec := f.createECS(t)
	if sec.AutomaticRotation() != "Disabled" {
		t.Errorf("AutomaticRotation = %s", sec.AutomaticRotation())
	}
	before := f.snapshot(t)
	_, err := f.svc.PutSecretValue(ctx, acct, PutValueInput{Name: sec.Name, VersionID: "v2", Data: "x"})
	wantKind(t, err, errs.KindInvalidParameter)
	if !strings.Contains(err.Error(), TypeECS) {
		t.Errorf("message does not name the type: %v", err)
	}
	for _, stage := range []string{StageCurrent, StagePrevious, StagePending} {
		err = f.svc.UpdateSecretVersionStage(ctx, acct, sec.Name, stage, "", "v1")
		wantKind(t, err, errs.KindInvalidParameter)
	}
	sameSnapshot(t, before, f.snapshot(t))
	// Custom stages remain the owner's business.
	if err := f.svc.UpdateSecretVersionStage(ctx, acct, sec.Name, "Audit", "", "v1"); err != nil {
		t.Fatal(err)
	}
}

func TestManagedGetSecretValueIgnoresVersionId(t *testing.T) {
	f := newFixture(t)
	rot := &fakeRotator{svc: f.svc}
	f.svc.SetRotator(TypeECS, rot)
	sec := f.createECS(t)
	if _, err := f.svc.RotateSecret(ctx, acct, sec.Name, "v2"); err != nil {
		t.Fatal(err)
	}
	// VersionId v1 is ignored: ACSCurrent (v2) is served.
	v, err := f.svc.GetSecretValue(ctx, acct, GetValueInput{Name: sec.Name, VersionID: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	if v.Version.ID != "v2" || !strings.Contains(v.Data, "rotated") {
		t.Errorf("got version %s", v.Version.ID)
	}
	v, err = f.svc.GetSecretValue(ctx, acct, GetValueInput{Name: sec.Name, VersionStage: StagePrevious})
	if err != nil || v.Version.ID != "v1" {
		t.Fatalf("ACSPrevious = %v, %v", v, err)
	}
	_, err = f.svc.GetSecretValue(ctx, acct, GetValueInput{Name: sec.Name, VersionStage: "Custom"})
	wantKind(t, err, errs.KindInvalidParameter)
	// ACSPending is served for ECS (Keyhold extension) when present.
	if _, err := f.svc.AddPendingVersion(ctx, acct, sec.Name, "v3", []byte(`{"UserName":"root","Password":"p3"}`)); err != nil {
		t.Fatal(err)
	}
	v, err = f.svc.GetSecretValue(ctx, acct, GetValueInput{Name: sec.Name, VersionStage: StagePending})
	if err != nil || v.Version.ID != "v3" {
		t.Fatalf("ACSPending = %v, %v", v, err)
	}
	if err := f.svc.DiscardPending(ctx, acct, sec.Name, "v3"); err != nil {
		t.Fatal(err)
	}
	_, err = f.svc.GetSecretValue(ctx, acct, GetValueInput{Name: sec.Name, VersionStage: StagePending})
	wantKind(t, err, errs.KindSecretNotFound)
}

func TestRotateSecret(t *testing.T) {
	f := newFixture(t)
	gen := f.create(t, "generic", "x")
	_, err := f.svc.RotateSecret(ctx, acct, gen.Name, "v2")
	wantKind(t, err, errs.KindInvalidParameter)
	if !strings.Contains(err.Error(), "Generic") {
		t.Errorf("message does not name the type: %v", err)
	}

	sec := f.createECS(t, func(in *CreateInput) { in.EnableAutomaticRotation, in.RotationInterval = true, "1h" })
	_, err = f.svc.RotateSecret(ctx, acct, sec.Name, "v2")
	wantKind(t, err, errs.KindUnsupported) // no rotator registered

	rot := &fakeRotator{svc: f.svc}
	f.svc.SetRotator(TypeECS, rot)
	f.clock.Advance(10 * time.Minute)
	if _, err := f.svc.RotateSecret(ctx, acct, sec.Name, "v2"); err != nil {
		t.Fatal(err)
	}
	// VersionId is an idempotency key: a repeat (or an existing id) succeeds
	// without rotating again.
	for _, id := range []string{"v2", "v1"} {
		if _, err := f.svc.RotateSecret(ctx, acct, sec.Name, id); err != nil {
			t.Fatal(err)
		}
	}
	if rot.calls != 1 {
		t.Errorf("rotator called %d times, want 1", rot.calls)
	}
	got, _ := f.svc.DescribeSecret(ctx, acct, sec.Name)
	now := f.clock.Now()
	if !got.Rotation.LastRotation.Equal(now) || !got.Rotation.NextRotation.Equal(now.Add(time.Hour)) {
		t.Errorf("rotation dates = %+v", got.Rotation)
	}
	if st := f.stages(t, sec.Name); strings.Join(st["v2"], ",") != StageCurrent || strings.Join(st["v1"], ",") != StagePrevious {
		t.Errorf("stages = %v", st)
	}
	// A rotator's refusal passes through unchanged.
	rot.fail = errs.E(errs.KindInUse, "A rotation is in progress.")
	_, err = f.svc.RotateSecret(ctx, acct, sec.Name, "v9")
	wantKind(t, err, errs.KindInUse)
}

func TestRotateLimit(t *testing.T) {
	f := newFixture(t, WithRotateLimit(2))
	f.svc.SetRotator(TypeECS, &fakeRotator{svc: f.svc})
	sec := f.createECS(t)
	for _, id := range []string{"v2", "v3"} {
		if _, err := f.svc.RotateSecret(ctx, acct, sec.Name, id); err != nil {
			t.Fatal(err)
		}
	}
	_, err := f.svc.RotateSecret(ctx, acct, sec.Name, "v4")
	wantKind(t, err, errs.KindLimitExceeded)
	f.clock.Advance(time.Hour + time.Second)
	if _, err := f.svc.RotateSecret(ctx, acct, sec.Name, "v4"); err != nil {
		t.Fatal(err)
	}
}

func TestUpdateSecretRotationPolicy(t *testing.T) {
	f := newFixture(t)
	gen := f.create(t, "generic", "x")
	_, err := f.svc.UpdateSecretRotationPolicy(ctx, acct, gen.Name, true, "7d")
	wantKind(t, err, errs.KindInvalidParameter)

	sec := f.createECS(t)
	_, err = f.svc.UpdateSecretRotationPolicy(ctx, acct, sec.Name, true, "")
	wantKind(t, err, errs.KindMissingParameter)
	for _, bad := range []string{"59m", "366d", "7x"} {
		_, err = f.svc.UpdateSecretRotationPolicy(ctx, acct, sec.Name, true, bad)
		wantKind(t, err, errs.KindInvalidParameter)
	}
	got, err := f.svc.UpdateSecretRotationPolicy(ctx, acct, sec.Name, true, "7d")
	if err != nil {
		t.Fatal(err)
	}
	if got.AutomaticRotation() != "Enabled" || got.RotationIntervalString() != "604800s" ||
		!got.Rotation.NextRotation.Equal(f.clock.Now().Add(7*24*time.Hour)) {
		t.Errorf("policy = %+v", got.Rotation)
	}
	due, err := f.svc.DueForRotation(ctx, f.clock.Now().Add(7*24*time.Hour))
	if err != nil || len(due) != 1 || due[0].Account != acct || due[0].Secret.Name != sec.Name {
		t.Fatalf("DueForRotation = %+v, %v", due, err)
	}
	got, err = f.svc.UpdateSecretRotationPolicy(ctx, acct, sec.Name, false, "")
	if err != nil || got.AutomaticRotation() != "Disabled" || !got.Rotation.NextRotation.IsZero() {
		t.Fatalf("disable = %+v, %v", got, err)
	}
	// Rds accepts 6h at least.
	rds, err := f.svc.CreateSecret(ctx, acct, CreateInput{Name: "rds/app", Type: TypeRds, VersionID: "v1",
		Data:           `{"Accounts":[{"AccountName":"app","AccountPassword":"pw"}]}`,
		ExtendedConfig: `{"SecretSubType":"SingleUser","DBInstanceId":"rm-1"}`})
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.svc.UpdateSecretRotationPolicy(ctx, acct, rds.Name, true, "5h")
	wantKind(t, err, errs.KindInvalidParameter)
	if _, err = f.svc.UpdateSecretRotationPolicy(ctx, acct, rds.Name, true, "21600s"); err != nil {
		t.Fatal(err)
	}
}

func TestManagedCreateForms(t *testing.T) {
	f := newFixture(t)
	rds, err := f.svc.CreateSecret(ctx, acct, CreateInput{Name: "rds/double", Type: TypeRds, VersionID: "v1",
		Data:           `{"Accounts":[{"AccountName":"a","AccountPassword":"pa"},{"AccountName":"b","AccountPassword":"pb"}]}`,
		ExtendedConfig: `{"SecretSubType":"DoubleUsers","DBInstanceId":"rm-1"}`})
	if err != nil {
		t.Fatal(err)
	}
	cur, err := f.svc.GetSecretValue(ctx, acct, GetValueInput{Name: rds.Name})
	if err != nil || cur.Data != `{"AccountName":"a","AccountPassword":"pa"}` {
		t.Fatalf("current = %v, %v", cur, err)
	}
	prev, err := f.svc.GetSecretValue(ctx, acct, GetValueInput{Name: rds.Name, VersionStage: StagePrevious})
	if err != nil || prev.Data != `{"AccountName":"b","AccountPassword":"pb"}` {
		t.Fatalf("previous = %v, %v", prev, err)
	}

	ram, err := f.svc.CreateSecret(ctx, acct, CreateInput{Name: "$Auto", Type: TypeRAM, VersionID: "v1",
		Data:           `{"AccessKeys":[{"AccessKeyId":"AK1","AccessKeySecret":"S1"}]}`,
		ExtendedConfig: `{"SecretSubType":"RamUserAccessKey","UserName":"bob"}`})
	if err != nil {
		t.Fatal(err)
	}
	if ram.Name != "acs/ram/user/bob" {
		t.Errorf("RAM name = %s", ram.Name)
	}
	v, err := f.svc.GetSecretValue(ctx, acct, GetValueInput{Name: ram.Name})
	if err != nil || !strings.Contains(v.Data, `"GenerateTimestamp":"2026-03-01T10:00:00Z"`) {
		t.Fatalf("RAM value = %v, %v", v, err)
	}

	_, err = f.svc.CreateSecret(ctx, acct, CreateInput{Name: "rds/bad", Type: TypeRds, VersionID: "v1",
		Data:           `{"Accounts":[{"AccountName":"a","AccountPassword":"pa"}]}`,
		ExtendedConfig: `{"SecretSubType":"DoubleUsers","DBInstanceId":"rm-1"}`})
	wantKind(t, err, errs.KindInvalidParameter)
}

func TestRandomPassword(t *testing.T) {
	classes := []string{lowerChars, upperChars, digitChars, punctChars}
	for _, tc := range []struct {
		name    string
		in      PasswordInput
		wantLen int
		kind    errs.Kind
		allowed []bool // per class
	}{
		{"default", PasswordInput{RequireEachIncludedType: true}, 32, 0, []bool{true, true, true, true}},
		{"min", PasswordInput{Length: 8, RequireEachIncludedType: true}, 8, 0, []bool{true, true, true, true}},
		{"max", PasswordInput{Length: 128}, 128, 0, []bool{true, true, true, true}},
		{"too short", PasswordInput{Length: 7}, 0, errs.KindInvalidParameter, nil},
		{"too long", PasswordInput{Length: 129}, 0, errs.KindInvalidParameter, nil},
		{"digits only", PasswordInput{Length: 20, ExcludeLowercase: true, ExcludeUppercase: true, ExcludePunctuation: true, RequireEachIncludedType: true}, 20, 0, []bool{false, false, true, false}},
		{"nothing left", PasswordInput{ExcludeLowercase: true, ExcludeUppercase: true, ExcludePunctuation: true, ExcludeCharacters: digitChars}, 0, errs.KindInvalidParameter, nil},
		{"exclude characters", PasswordInput{Length: 64, ExcludeCharacters: "aA0!", RequireEachIncludedType: true}, 64, 0, []bool{true, true, true, true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for i := 0; i < 50; i++ {
				pw, err := RandomPassword(tc.in)
				if tc.kind != 0 {
					wantKind(t, err, tc.kind)
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if len(pw) != tc.wantLen {
					t.Fatalf("len = %d", len(pw))
				}
				if strings.ContainsAny(pw, tc.in.ExcludeCharacters) && tc.in.ExcludeCharacters != "" {
					t.Fatal("excluded character present")
				}
				for c, chars := range classes {
					has := strings.ContainsAny(pw, chars)
					if has && !tc.allowed[c] {
						t.Fatalf("class %d present though excluded", c)
					}
					if !has && tc.allowed[c] && tc.in.RequireEachIncludedType {
						t.Fatalf("class %d missing though required", c)
					}
				}
			}
		})
	}
	a, _ := RandomPassword(PasswordInput{})
	b, _ := RandomPassword(PasswordInput{})
	if a == b {
		t.Error("two passwords are equal")
	}
}
