package secrets

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold/internal/errs"
	"github.com/keyhold/keyhold/internal/store"
)

func TestCreateAndGetSecretValue(t *testing.T) {
	f := newFixture(t)
	sec, err := f.svc.CreateSecret(ctx, acct, CreateInput{
		Name: "db/app", VersionID: "v1", Data: "s3cr3t", Description: "app db",
		Tags: []Tag{{"env", "prod"}}, ExtendedConfig: `{"CustomData":{"a":"b"}}`,
	})
	if err != nil {
		t.Fatal(err)
	}
	if sec.Arn != "acs:kms:cn-test:"+acct+":secret/db/app" {
		t.Errorf("Arn = %s", sec.Arn)
	}
	if sec.Type != TypeGeneric || sec.AutomaticRotation() != "Invalid" || sec.EncryptionKeyID != "key-default" {
		t.Errorf("unexpected metadata %+v", sec)
	}
	v, err := f.svc.GetSecretValue(ctx, acct, GetValueInput{Name: "db/app"})
	if err != nil {
		t.Fatal(err)
	}
	if v.Data != "s3cr3t" || v.Version.ID != "v1" || !reflect.DeepEqual(v.Version.Stages, []string{StageCurrent}) {
		t.Errorf("GetSecretValue = %+v", v)
	}
	// The ARN works as a name, and another account's ARN finds nothing.
	if got := f.value(t, sec.Arn, "", ""); got != "s3cr3t" {
		t.Errorf("by ARN = %q", got)
	}
	_, err = f.svc.GetSecretValue(ctx, acct, GetValueInput{Name: "acs:kms:cn-test:999:secret/db/app"})
	wantKind(t, err, errs.KindSecretNotFound)
	_, err = f.svc.GetSecretValue(ctx, "other-account", GetValueInput{Name: "db/app"})
	wantKind(t, err, errs.KindSecretNotFound)
}

func TestCreateSecretExistingName(t *testing.T) {
	f := newFixture(t)
	f.create(t, "dup", "x")
	_, err := f.svc.CreateSecret(ctx, acct, CreateInput{Name: "dup", VersionID: "v1", Data: "y"})
	wantKind(t, err, errs.KindAlreadyExists)
	// Still taken while pending deletion.
	if _, err := f.svc.DeleteSecret(ctx, acct, "dup", 7, false); err != nil {
		t.Fatal(err)
	}
	_, err = f.svc.CreateSecret(ctx, acct, CreateInput{Name: "dup", VersionID: "v1", Data: "y"})
	wantKind(t, err, errs.KindAlreadyExists)
}

func TestBinaryValueRoundTrip(t *testing.T) {
	f := newFixture(t)
	raw := []byte{0, 1, 2, 0xff}
	b64 := base64.StdEncoding.EncodeToString(raw)
	if _, err := f.svc.CreateSecret(ctx, acct, CreateInput{Name: "bin", VersionID: "v1", Data: b64, DataType: DataBinary}); err != nil {
		t.Fatal(err)
	}
	v, err := f.svc.GetSecretValue(ctx, acct, GetValueInput{Name: "bin"})
	if err != nil {
		t.Fatal(err)
	}
	if v.Data != b64 || v.Version.DataType != DataBinary {
		t.Errorf("got %q %s", v.Data, v.Version.DataType)
	}
	_, err = f.svc.CreateSecret(ctx, acct, CreateInput{Name: "bin2", VersionID: "v1", Data: "not base64!", DataType: DataBinary})
	wantKind(t, err, errs.KindInvalidParameter)
}

func TestValueSizeLimit(t *testing.T) {
	for _, tc := range []struct {
		name   string
		size   int
		binary bool
		ok     bool
	}{
		{"text at limit", MaxValueBytes, false, true},
		{"text over limit", MaxValueBytes + 1, false, false},
		{"binary at limit after decoding", MaxValueBytes, true, true},
		{"binary over limit after decoding", MaxValueBytes + 1, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.create(t, "big", "small")
			data, dt := strings.Repeat("a", tc.size), DataText
			if tc.binary {
				data, dt = base64.StdEncoding.EncodeToString(make([]byte, tc.size)), DataBinary
			}
			before := f.snapshot(t)
			_, err := f.svc.PutSecretValue(ctx, acct, PutValueInput{Name: "big", VersionID: "v2", Data: data, DataType: dt})
			if tc.ok {
				if err != nil {
					t.Fatal(err)
				}
				if got := f.value(t, "big", "", ""); got != data {
					t.Errorf("value not stored (len %d)", len(got))
				}
				return
			}
			wantKind(t, err, errs.KindInvalidParameter)
			if strings.Contains(err.Error(), "aaaa") {
				t.Error("error message quotes the value")
			}
			sameSnapshot(t, before, f.snapshot(t))
			_, err = f.svc.CreateSecret(ctx, acct, CreateInput{Name: "big2", VersionID: "v1", Data: data, DataType: dt})
			wantKind(t, err, errs.KindInvalidParameter)
			sameSnapshot(t, before, f.snapshot(t))
		})
	}
}

func TestNameRules(t *testing.T) {
	for _, tc := range []struct {
		name, typ string
		ok        bool
	}{
		{"a", TypeGeneric, true},
		{strings.Repeat("a", 64), TypeGeneric, true},
		{strings.Repeat("a", 65), TypeGeneric, false},
		{"", TypeGeneric, false},
		{"Aa0_/+=.@-", TypeGeneric, true},
		{"has space", TypeGeneric, false},
		{"semi;colon", TypeGeneric, false},
		{"pipe|name", TypeGeneric, false},
		{"ünï", TypeGeneric, false},
		{"acs/ecs/x", TypeGeneric, false},
		{"acs/ecs/x", TypeECS, true},
		{"ecs/x", TypeECS, false},
		{"acs/ecs/x", TypeRds, false},
		{"acs/rds", TypeRds, false},
		{"rds/x", TypeRds, true},
		{"acs/ram/user/bob", TypeRAM, true},
	} {
		t.Run(fmt.Sprintf("%s/%q", tc.typ, tc.name), func(t *testing.T) {
			err := ValidateName(tc.name, tc.typ)
			if tc.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tc.ok && err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestCreateSecretValidatesBeforeWriting(t *testing.T) {
	tooManyTags := make([]Tag, 21)
	for i := range tooManyTags {
		tooManyTags[i] = Tag{Key: fmt.Sprint("k", i)}
	}
	for _, tc := range []struct {
		name string
		in   CreateInput
		kind errs.Kind
	}{
		{"missing version", CreateInput{Name: "x", Data: "v"}, errs.KindMissingParameter},
		{"missing data", CreateInput{Name: "x", VersionID: "v1"}, errs.KindMissingParameter},
		{"bad type", CreateInput{Name: "x", VersionID: "v1", Data: "v", Type: "Other"}, errs.KindInvalidParameter},
		{"bad data type", CreateInput{Name: "x", VersionID: "v1", Data: "v", DataType: "blob"}, errs.KindInvalidParameter},
		{"extended config not JSON", CreateInput{Name: "x", VersionID: "v1", Data: "v", ExtendedConfig: "{"}, errs.KindInvalidParameter},
		{"extended config too long", CreateInput{Name: "x", VersionID: "v1", Data: "v",
			ExtendedConfig: `{"CustomData":{"a":"` + strings.Repeat("b", 1020) + `"}}`}, errs.KindInvalidParameter},
		{"policy not JSON", CreateInput{Name: "x", VersionID: "v1", Data: "v", Policy: "allow all"}, errs.KindInvalidParameter},
		{"too many tags", CreateInput{Name: "x", VersionID: "v1", Data: "v", Tags: tooManyTags}, errs.KindLimitExceeded},
		{"reserved tag", CreateInput{Name: "x", VersionID: "v1", Data: "v", Tags: []Tag{{"acs:x", "v"}}}, errs.KindInvalidParameter},
		{"rotation on generic", CreateInput{Name: "x", VersionID: "v1", Data: "v", EnableAutomaticRotation: true, RotationInterval: "7d"}, errs.KindInvalidParameter},
		{"unknown key", CreateInput{Name: "x", VersionID: "v1", Data: "v", EncryptionKeyID: "alias/missing"}, errs.KindKeyNotFound},
		{"ecs without config", CreateInput{Name: "acs/ecs/x", Type: TypeECS, VersionID: "v1", Data: `{"UserName":"root","Password":"p"}`}, errs.KindInvalidParameter},
		{"ecs interval too short", CreateInput{Name: "acs/ecs/x", Type: TypeECS, VersionID: "v1",
			Data:           `{"UserName":"root","Password":"p"}`,
			ExtendedConfig: `{"SecretSubType":"Password","InstanceId":"i-1"}`, EnableAutomaticRotation: true, RotationInterval: "59m"}, errs.KindInvalidParameter},
		{"ecs data shape", CreateInput{Name: "acs/ecs/x", Type: TypeECS, VersionID: "v1", Data: `{"UserName":"root"}`,
			ExtendedConfig: `{"SecretSubType":"Password","InstanceId":"i-1"}`}, errs.KindInvalidParameter},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			_, err := f.svc.CreateSecret(ctx, acct, tc.in)
			wantKind(t, err, tc.kind)
			if len(f.snapshot(t)) != 0 {
				t.Fatal("a refused create wrote records")
			}
		})
	}
}

func TestPutSecretValueIdempotent(t *testing.T) {
	f := newFixture(t)
	f.create(t, "s", "one")
	f.put(t, "s", "v2", "two")
	before := f.snapshot(t)
	seals := f.env.seals

	// Same id, same value: success and nothing changes (not even a seal).
	v, err := f.svc.PutSecretValue(ctx, acct, PutValueInput{Name: "s", VersionID: "v2", Data: "two"})
	if err != nil {
		t.Fatal(err)
	}
	if v.ID != "v2" || !v.HasStage(StageCurrent) {
		t.Errorf("repeat returned %+v", v)
	}
	sameSnapshot(t, before, f.snapshot(t))
	if f.env.seals != seals {
		t.Error("repeat sealed again")
	}
	// Same id, other value: refused, nothing changes.
	_, err = f.svc.PutSecretValue(ctx, acct, PutValueInput{Name: "s", VersionID: "v2", Data: "three"})
	wantKind(t, err, errs.KindAlreadyExists)
	if strings.Contains(err.Error(), "three") || strings.Contains(err.Error(), "two") {
		t.Error("error message quotes a value")
	}
	sameSnapshot(t, before, f.snapshot(t))
	// Same bytes under another data type are another value.
	_, err = f.svc.PutSecretValue(ctx, acct, PutValueInput{Name: "s", VersionID: "v2",
		Data: base64.StdEncoding.EncodeToString([]byte("two")), DataType: DataBinary})
	wantKind(t, err, errs.KindAlreadyExists)
}

func TestStageMoves(t *testing.T) {
	type step struct {
		put      string   // version id to put (value = id)
		stages   []string // for put
		move     string   // stage to move
		from, to string
		errKind  errs.Kind
		wantErr  bool
	}
	for _, tc := range []struct {
		name  string
		steps []step
		want  map[string][]string
	}{
		{
			name:  "put moves current to previous",
			steps: []step{{put: "v2"}},
			want:  map[string][]string{"v1": {StagePrevious}, "v2": {StageCurrent}},
		},
		{
			name:  "third put drops old previous",
			steps: []step{{put: "v2"}, {put: "v3"}},
			want:  map[string][]string{"v1": nil, "v2": {StagePrevious}, "v3": {StageCurrent}},
		},
		{
			name:  "put with custom stage only",
			steps: []step{{put: "v2", stages: []string{"Blue"}}},
			want:  map[string][]string{"v1": {StageCurrent}, "v2": {"Blue"}},
		},
		{
			name:  "custom stage moves between puts",
			steps: []step{{put: "v2", stages: []string{"Blue"}}, {put: "v3", stages: []string{"Blue", StageCurrent}}},
			want:  map[string][]string{"v1": {StagePrevious}, "v2": nil, "v3": {StageCurrent, "Blue"}},
		},
		{
			name:  "move ACSCurrent back to previous version swaps labels",
			steps: []step{{put: "v2"}, {move: StageCurrent, from: "v2", to: "v1"}},
			want:  map[string][]string{"v1": {StageCurrent}, "v2": {StagePrevious}},
		},
		{
			name:  "move ACSCurrent to an unlabelled version",
			steps: []step{{put: "v2"}, {put: "v3"}, {move: StageCurrent, to: "v1"}},
			want:  map[string][]string{"v1": {StageCurrent}, "v2": nil, "v3": {StagePrevious}},
		},
		{
			name:  "remove custom stage",
			steps: []step{{put: "v2", stages: []string{"Blue"}}, {move: "Blue", from: "v2"}},
			want:  map[string][]string{"v1": {StageCurrent}, "v2": nil},
		},
		{
			name:  "ACSCurrent cannot just be removed",
			steps: []step{{move: StageCurrent, from: "v1", wantErr: true, errKind: errs.KindInvalidParameter}},
			want:  map[string][]string{"v1": {StageCurrent}},
		},
		{
			name:  "RemoveFromVersion must carry the stage",
			steps: []step{{put: "v2"}, {move: StageCurrent, from: "v1", to: "v2", wantErr: true, errKind: errs.KindInvalidParameter}},
			want:  map[string][]string{"v1": {StagePrevious}, "v2": {StageCurrent}},
		},
		{
			name:  "unknown target version",
			steps: []step{{move: StageCurrent, to: "nope", wantErr: true, errKind: errs.KindSecretNotFound}},
			want:  map[string][]string{"v1": {StageCurrent}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.create(t, "s", "v1")
			for _, st := range tc.steps {
				var err error
				if st.put != "" {
					_, err = f.svc.PutSecretValue(ctx, acct, PutValueInput{Name: "s", VersionID: st.put, Data: st.put, Stages: st.stages})
				} else {
					err = f.svc.UpdateSecretVersionStage(ctx, acct, "s", st.move, st.from, st.to)
				}
				if st.wantErr {
					wantKind(t, err, st.errKind)
				} else if err != nil {
					t.Fatal(err)
				}
			}
			got := f.stages(t, "s")
			want := map[string][]string{}
			for k, v := range tc.want {
				want[k] = sortedCopy(v)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("stages = %v, want %v", got, want)
			}
			// Whatever carries ACSCurrent is what GetSecretValue serves.
			for id, st := range got {
				for _, s := range st {
					if s == StageCurrent && f.value(t, "s", "", "") != id {
						t.Errorf("ACSCurrent serves the wrong value")
					}
				}
			}
		})
	}
}

func TestAttachStageKeepsOneVersionPerStage(t *testing.T) {
	mk := func(id string, stages ...string) *versionRecord {
		return &versionRecord{Version: Version{ID: id, Stages: stages}}
	}
	vs := []*versionRecord{mk("a", StagePrevious, "X"), mk("b", StageCurrent), mk("c")}
	attachStage(vs, StageCurrent, vs[2])
	attachStage(vs, "X", vs[1])
	for _, stage := range []string{StageCurrent, StagePrevious, "X"} {
		n := 0
		for _, v := range vs {
			if v.HasStage(stage) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s on %d versions", stage, n)
		}
	}
	if !vs[2].HasStage(StageCurrent) || !vs[1].HasStage(StagePrevious) || len(vs[0].Stages) != 0 {
		t.Errorf("got %+v %+v %+v", vs[0].Stages, vs[1].Stages, vs[2].Stages)
	}
}

func TestPruneAtElevenVersions(t *testing.T) {
	f := newFixture(t)
	f.create(t, "s", "v1")
	// v1 keeps a custom label, so it must survive pruning although oldest.
	if err := f.svc.UpdateSecretVersionStage(ctx, acct, "s", "Keep", "", "v1"); err != nil {
		t.Fatal(err)
	}
	for i := 2; i <= 10; i++ {
		f.put(t, "s", fmt.Sprint("v", i), fmt.Sprint("value", i))
	}
	if got := len(f.stages(t, "s")); got != 10 {
		t.Fatalf("%d versions before the 11th, want 10", got)
	}
	f.put(t, "s", "v11", "value11")
	got := f.stages(t, "s")
	if len(got) != 10 {
		t.Fatalf("%d versions after the 11th, want 10: %v", len(got), got)
	}
	if _, ok := got["v1"]; !ok {
		t.Error("labelled v1 was pruned")
	}
	if _, ok := got["v2"]; ok {
		t.Error("oldest unlabelled v2 survived")
	}
	if fmt.Sprint(got["v11"]) != "[ACSCurrent]" || fmt.Sprint(got["v10"]) != "[ACSPrevious]" {
		t.Errorf("stages after prune: %v", got)
	}
	_, err := f.svc.GetSecretValue(ctx, acct, GetValueInput{Name: "s", VersionID: "v2"})
	wantKind(t, err, errs.KindSecretNotFound)
	// Without IncludeDeprecated only labelled versions are listed.
	_, vs, total, err := f.svc.ListSecretVersionIds(ctx, acct, "s", false, 1, 10)
	if err != nil {
		t.Fatal(err)
	}
	if total != 3 || len(vs) != 3 {
		t.Errorf("labelled versions = %d (total %d), want 3", len(vs), total)
	}
}

func TestPruneRefusesWhenAllLabelled(t *testing.T) {
	f := newFixture(t)
	f.create(t, "s", "v1")
	for i := 2; i <= 10; i++ {
		f.put(t, "s", fmt.Sprint("v", i), "x", fmt.Sprint("L", i))
	}
	// v1 is current; v2..v10 carry custom labels: nothing can be pruned.
	before := f.snapshot(t)
	_, err := f.svc.PutSecretValue(ctx, acct, PutValueInput{Name: "s", VersionID: "v11", Data: "x", Stages: []string{"L11"}})
	wantKind(t, err, errs.KindLimitExceeded)
	sameSnapshot(t, before, f.snapshot(t))
}

func TestCiphertextBoundToRow(t *testing.T) {
	f := newFixture(t)
	f.create(t, "a", "value-a")
	f.put(t, "a", "v2", "value-b")
	f.create(t, "other", "value-c")
	move := func(fromName, fromID, toName, toID string) {
		err := f.st.Update(ctx, func(tx store.Tx) error {
			src, err := getVersion(tx, acct, fromName, fromID)
			if err != nil {
				return err
			}
			dst, err := getVersion(tx, acct, toName, toID)
			if err != nil {
				return err
			}
			dst.Sealed = src.Sealed
			return putVersion(tx, acct, toName, dst)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	move("a", "v2", "a", "v1") // another version of the same secret
	_, err := f.svc.GetSecretValue(ctx, acct, GetValueInput{Name: "a", VersionID: "v1"})
	wantKind(t, err, errs.KindDecryptFailed)
	move("a", "v2", "other", "v1") // same version id, other secret
	_, err = f.svc.GetSecretValue(ctx, acct, GetValueInput{Name: "other"})
	wantKind(t, err, errs.KindDecryptFailed)
	if got := f.value(t, "a", "v2", ""); got != "value-b" {
		t.Errorf("source row damaged: %q", got)
	}
}

func TestDeleteWindowBounds(t *testing.T) {
	for _, tc := range []struct {
		days int
		ok   bool
	}{{6, false}, {7, true}, {30, true}, {31, false}, {0, false}} {
		t.Run(fmt.Sprint(tc.days), func(t *testing.T) {
			f := newFixture(t)
			f.create(t, "s", "x")
			before := f.snapshot(t)
			sec, err := f.svc.DeleteSecret(ctx, acct, "s", tc.days, false)
			if !tc.ok {
				wantKind(t, err, errs.KindInvalidParameter)
				sameSnapshot(t, before, f.snapshot(t))
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := f.clock.Now().Add(time.Duration(tc.days) * 24 * time.Hour)
			if !sec.PlannedDeleteTime.Equal(want) {
				t.Errorf("PlannedDeleteTime = %v, want %v", sec.PlannedDeleteTime, want)
			}
		})
	}
}

func TestDeleteWindowBlocksUse(t *testing.T) {
	f := newFixture(t)
	f.create(t, "s", "x")
	if _, err := f.svc.DeleteSecret(ctx, acct, "s", 7, false); err != nil {
		t.Fatal(err)
	}
	_, err := f.svc.GetSecretValue(ctx, acct, GetValueInput{Name: "s"})
	wantKind(t, err, errs.KindInDeleteWindow)
	_, err = f.svc.PutSecretValue(ctx, acct, PutValueInput{Name: "s", VersionID: "v2", Data: "y"})
	wantKind(t, err, errs.KindInDeleteWindow)
	_, err = f.svc.UpdateSecret(ctx, acct, "s", ptr("d"), nil)
	wantKind(t, err, errs.KindInDeleteWindow)
	_, err = f.svc.DeleteSecret(ctx, acct, "s", 7, false)
	wantKind(t, err, errs.KindInDeleteWindow)
	// Metadata stays visible.
	sec, err := f.svc.DescribeSecret(ctx, acct, "s")
	if err != nil || sec.PlannedDeleteTime.IsZero() {
		t.Fatalf("DescribeSecret = %+v, %v", sec, err)
	}
	if _, err := f.svc.RestoreSecret(ctx, acct, "s"); err != nil {
		t.Fatal(err)
	}
	if got := f.value(t, "s", "", ""); got != "x" {
		t.Errorf("after restore: %q", got)
	}
	sec, _ = f.svc.DescribeSecret(ctx, acct, "s")
	if !sec.PlannedDeleteTime.IsZero() {
		t.Error("restore kept PlannedDeleteTime")
	}
}

func TestForceDelete(t *testing.T) {
	f := newFixture(t)
	f.create(t, "s", "x")
	f.create(t, "s/child", "y") // shares the prefix "s/" and must survive
	f.put(t, "s", "v2", "z")
	if _, err := f.svc.DeleteSecret(ctx, acct, "s", 0, true); err != nil {
		t.Fatal(err)
	}
	_, err := f.svc.DescribeSecret(ctx, acct, "s")
	wantKind(t, err, errs.KindSecretNotFound)
	if got := f.value(t, "s/child", "", ""); got != "y" {
		t.Errorf("child = %q", got)
	}
	for k := range f.snapshot(t) {
		if strings.Contains(k, acct+"/s|") || k == tableSecrets+":"+acct+"/s" {
			t.Errorf("left behind %s", k)
		}
	}
	// The name is free again.
	f.create(t, "s", "new")
	if got := f.value(t, "s", "v1", ""); got != "new" {
		t.Errorf("recreated = %q", got)
	}
}

func TestPurgeDue(t *testing.T) {
	f := newFixture(t)
	f.create(t, "soon", "x")
	f.create(t, "later", "x")
	f.create(t, "kept", "x")
	if _, err := f.svc.DeleteSecret(ctx, acct, "soon", 7, false); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.DeleteSecret(ctx, acct, "later", 30, false); err != nil {
		t.Fatal(err)
	}
	now := f.clock.Now()
	n, err := f.svc.PurgeDue(ctx, now.Add(7*24*time.Hour-time.Second))
	if err != nil || n != 0 {
		t.Fatalf("early purge = %d, %v", n, err)
	}
	n, err = f.svc.PurgeDue(ctx, now.Add(7*24*time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("purge = %d, %v", n, err)
	}
	_, err = f.svc.DescribeSecret(ctx, acct, "soon")
	wantKind(t, err, errs.KindSecretNotFound)
	for _, name := range []string{"later", "kept"} {
		if _, err := f.svc.DescribeSecret(ctx, acct, name); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	n, _ = f.svc.PurgeDue(ctx, now.Add(31*24*time.Hour))
	if n != 1 {
		t.Errorf("second purge = %d", n)
	}
}

func TestTagRules(t *testing.T) {
	for _, tc := range []struct {
		tag  Tag
		kind errs.Kind // 0 = ok
	}{
		{Tag{"env", "prod"}, 0},
		{Tag{"env", ""}, 0},
		{Tag{strings.Repeat("k", 128), strings.Repeat("v", 128)}, 0},
		{Tag{strings.Repeat("k", 129), "v"}, errs.KindInvalidParameter},
		{Tag{"k", strings.Repeat("v", 129)}, errs.KindInvalidParameter},
		{Tag{"", "v"}, errs.KindInvalidParameter},
		{Tag{"aliyun-x", "v"}, errs.KindInvalidParameter},
		{Tag{"Aliyun", "v"}, errs.KindInvalidParameter},
		{Tag{"acs:x", "v"}, errs.KindInvalidParameter},
		{Tag{"acs-x", "v"}, 0},
	} {
		t.Run(tc.tag.Key, func(t *testing.T) {
			f := newFixture(t)
			f.create(t, "s", "x")
			err := f.svc.TagSecrets(ctx, acct, []string{"s"}, []Tag{tc.tag})
			if tc.kind == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantKind(t, err, tc.kind)
		})
	}
}

func TestTagLimitAndUntag(t *testing.T) {
	f := newFixture(t)
	f.create(t, "a", "x")
	f.create(t, "b", "x")
	var tags []Tag
	for i := 0; i < 20; i++ {
		tags = append(tags, Tag{fmt.Sprint("k", i), "v"})
	}
	if err := f.svc.TagSecrets(ctx, acct, []string{"a"}, tags); err != nil {
		t.Fatal(err)
	}
	// Replacing a value keeps the count; a 21st key is refused.
	if err := f.svc.TagSecrets(ctx, acct, []string{"a"}, []Tag{{"k0", "new"}}); err != nil {
		t.Fatal(err)
	}
	before := f.snapshot(t)
	// b would accept, a would not: the batch writes nothing.
	err := f.svc.TagSecrets(ctx, acct, []string{"b", "a"}, []Tag{{"k20", "v"}})
	wantKind(t, err, errs.KindLimitExceeded)
	sameSnapshot(t, before, f.snapshot(t))

	if err := f.svc.UntagSecrets(ctx, acct, []string{"a"}, []string{"k0", "k1", "absent"}, false); err != nil {
		t.Fatal(err)
	}
	sec, _ := f.svc.DescribeSecret(ctx, acct, "a")
	if len(sec.Tags) != 18 {
		t.Errorf("%d tags left, want 18", len(sec.Tags))
	}
	if err := f.svc.UntagSecrets(ctx, acct, []string{"a"}, nil, true); err != nil {
		t.Fatal(err)
	}
	sec, _ = f.svc.DescribeSecret(ctx, acct, "a")
	if len(sec.Tags) != 0 {
		t.Errorf("%d tags left after All", len(sec.Tags))
	}
	err = f.svc.TagSecrets(ctx, acct, []string{"missing"}, []Tag{{"k", "v"}})
	wantKind(t, err, errs.KindSecretNotFound)
}

func TestParseTags(t *testing.T) {
	tags, err := ParseTags(`[{"TagKey":"a","TagValue":"1"},{"TagKey":"b"}]`)
	if err != nil || len(tags) != 2 || tags[0] != (Tag{"a", "1"}) || tags[1] != (Tag{"b", ""}) {
		t.Fatalf("ParseTags = %v, %v", tags, err)
	}
	for _, bad := range []string{`{}`, `[{"TagValue":"x"}]`, `[{"TagKey":"acs:x"}]`, `nope`} {
		if _, err := ParseTags(bad); err == nil {
			t.Errorf("ParseTags(%s) accepted", bad)
		}
	}
}

func TestListSecretsFiltersAndPaging(t *testing.T) {
	f := newFixture(t)
	for i := 1; i <= 25; i++ {
		name := fmt.Sprintf("app/%02d", i)
		in := CreateInput{Name: name, VersionID: "v1", Data: "x", Description: "plain"}
		if i%5 == 0 {
			in.Tags = []Tag{{"team", "blue"}}
			in.Description = "special one"
		}
		if _, err := f.svc.CreateSecret(ctx, acct, in); err != nil {
			t.Fatal(err)
		}
	}
	f.create(t, "db/main", "x")
	if _, err := f.svc.CreateSecret(ctx, "other", CreateInput{Name: "app/99", VersionID: "v1", Data: "x"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		filters   string
		page, siz int
		want      []string
		total     int
	}{
		{"first page", "", 1, 10, []string{"app/01", "app/10"}, 26},
		{"last partial page", "", 3, 10, []string{"app/21", "db/main"}, 26},
		{"past the end", "", 9, 10, nil, 26},
		{"name substring", `[{"Key":"SecretName","Values":["db/"]}]`, 1, 10, []string{"db/main", "db/main"}, 1},
		{"values are ORed", `[{"Key":"SecretName","Values":["/01","/02"]}]`, 1, 10, []string{"app/01", "app/02"}, 2},
		{"tag key", `[{"Key":"TagKey","Values":["team"]}]`, 1, 2, []string{"app/05", "app/10"}, 5},
		{"filters are ANDed", `[{"Key":"TagValue","Values":["blue"]},{"Key":"SecretName","Values":["/2"]}]`, 1, 10, []string{"app/20", "app/25"}, 2},
		{"description", `[{"Key":"Description","Values":["special"]}]`, 1, 100, []string{"app/05", "app/25"}, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs, err := ParseFilters(tc.filters)
			if err != nil {
				t.Fatal(err)
			}
			list, total, err := f.svc.ListSecrets(ctx, acct, fs, tc.page, tc.siz)
			if err != nil {
				t.Fatal(err)
			}
			if total != tc.total {
				t.Errorf("total = %d, want %d", total, tc.total)
			}
			if tc.want == nil {
				if len(list) != 0 {
					t.Errorf("got %d items", len(list))
				}
				return
			}
			if len(list) == 0 || list[0].Name != tc.want[0] || list[len(list)-1].Name != tc.want[1] {
				var names []string
				for _, s := range list {
					names = append(names, s.Name)
				}
				t.Errorf("got %v, want first/last %v", names, tc.want)
			}
		})
	}
	for _, bad := range []struct{ page, size int }{{0, 10}, {1, 0}, {1, 101}} {
		_, _, err := f.svc.ListSecrets(ctx, acct, nil, bad.page, bad.size)
		wantKind(t, err, errs.KindInvalidParameter)
	}
	for _, bad := range []string{`{}`, `[{"Key":"Owner","Values":["x"]}]`, `[{"Key":"SecretName","Values":[]}]`} {
		if _, err := ParseFilters(bad); err == nil {
			t.Errorf("ParseFilters(%s) accepted", bad)
		}
	}
}

func TestRotationIntervalParsing(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"7d", 7 * 24 * time.Hour, true},
		{"604800s", 7 * 24 * time.Hour, true},
		{"604800", 7 * 24 * time.Hour, true},
		{"6h", 6 * time.Hour, true},
		{"90m", 90 * time.Minute, true},
		{"", 0, false},
		{"d", 0, false},
		{"0d", 0, false},
		{"-1d", 0, false},
		{"+1d", 0, false},
		{"1.5d", 0, false},
		{"7w", 0, false},
		{"99999999999999999999s", 0, false},
		{"9999999999999d", 0, false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseInterval(tc.in)
			if tc.ok != (err == nil) || got != tc.want {
				t.Fatalf("ParseInterval(%q) = %v, %v", tc.in, got, err)
			}
		})
	}
	if s := FormatInterval(7 * 24 * time.Hour); s != "604800s" {
		t.Errorf("FormatInterval = %s", s)
	}
	for _, tc := range []struct {
		typ string
		d   time.Duration
		ok  bool
	}{
		{TypeECS, time.Hour, true},
		{TypeECS, time.Hour - time.Second, false},
		{TypeECS, 365 * 24 * time.Hour, true},
		{TypeECS, 366 * 24 * time.Hour, false},
		{TypeRds, 6 * time.Hour, true},
		{TypeRds, 5 * time.Hour, false},
		{TypeRAM, 365 * 24 * time.Hour, true},
		{TypeGeneric, 7 * 24 * time.Hour, false},
	} {
		if err := CheckInterval(tc.typ, tc.d); tc.ok != (err == nil) {
			t.Errorf("CheckInterval(%s, %v) = %v", tc.typ, tc.d, err)
		}
	}
}

func TestParseVersionStages(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		ok   bool
	}{
		{"", []string{StageCurrent}, true},
		{`["ACSCurrent","Blue"]`, []string{StageCurrent, "Blue"}, true},
		{`{"VersionStage":["Blue"]}`, []string{"Blue"}, true},
		{`["Blue","Blue"]`, []string{"Blue"}, true},
		{`[""]`, nil, false},
		{`Blue`, nil, false},
		{`{"Other":[]}`, nil, false},
	} {
		got, err := ParseVersionStages(tc.in)
		if tc.ok != (err == nil) || (tc.ok && !reflect.DeepEqual(got, tc.want)) {
			t.Errorf("ParseVersionStages(%s) = %v, %v", tc.in, got, err)
		}
	}
}

func TestUpdateSecret(t *testing.T) {
	f := newFixture(t)
	if _, err := f.svc.CreateSecret(ctx, acct, CreateInput{Name: "s", VersionID: "v1", Data: "x",
		Description: "old", ExtendedConfig: `{"Other":"keep","CustomData":{"a":"1"}}`}); err != nil {
		t.Fatal(err)
	}
	sec, err := f.svc.UpdateSecret(ctx, acct, "s", ptr("new"), ptr(`{"b":"2"}`))
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal([]byte(sec.ExtendedConfig), &cfg); err != nil {
		t.Fatal(err)
	}
	if sec.Description != "new" || cfg["Other"] != "keep" || fmt.Sprint(cfg["CustomData"]) != "map[b:2]" {
		t.Errorf("after update: %q %s", sec.Description, sec.ExtendedConfig)
	}
	_, err = f.svc.UpdateSecret(ctx, acct, "s", nil, ptr(`[1]`))
	wantKind(t, err, errs.KindInvalidParameter)
	before := f.snapshot(t)
	_, err = f.svc.UpdateSecret(ctx, acct, "s", ptr("changed"), ptr(`{"b":"`+strings.Repeat("x", 1024)+`"}`))
	wantKind(t, err, errs.KindInvalidParameter)
	sameSnapshot(t, before, f.snapshot(t))
}

func TestSecretPolicy(t *testing.T) {
	f := newFixture(t)
	f.create(t, "s", "x")
	p, err := f.svc.GetSecretPolicy(ctx, acct, "s", "")
	if err != nil || !json.Valid([]byte(p)) || !strings.Contains(p, acct) {
		t.Fatalf("default policy = %s, %v", p, err)
	}
	doc := `{"Version":"1","Statement":[{"Effect":"Deny","Action":["kms:GetSecretValue"],"Resource":["*"]}]}`
	if err := f.svc.SetSecretPolicy(ctx, acct, "s", "default", doc); err != nil {
		t.Fatal(err)
	}
	if p, _ := f.svc.GetSecretPolicy(ctx, acct, "s", "default"); p != doc {
		t.Errorf("policy = %s", p)
	}
	wantKind(t, f.svc.SetSecretPolicy(ctx, acct, "s", "", "{oops"), errs.KindInvalidParameter)
	wantKind(t, f.svc.SetSecretPolicy(ctx, acct, "s", "other", doc), errs.KindInvalidParameter)
}

func ptr(s string) *string { return &s }

func TestConcurrentPutSameVersion(t *testing.T) {
	f := newFixture(t)
	f.create(t, "s", "v1")
	const n = 8
	errc := make(chan error, 2*n)
	for i := 0; i < n; i++ {
		go func() {
			_, err := f.svc.PutSecretValue(ctx, acct, PutValueInput{Name: "s", VersionID: "same", Data: "one"})
			errc <- err
		}()
		go func(i int) {
			_, err := f.svc.PutSecretValue(ctx, acct, PutValueInput{Name: "s", VersionID: fmt.Sprint("d", i), Data: "x"})
			errc <- err
		}(i)
	}
	for i := 0; i < 2*n; i++ {
		if err := <-errc; err != nil {
			t.Errorf("concurrent put: %v", err)
		}
	}
	if got := f.value(t, "s", "same", ""); got != "one" {
		t.Errorf("same = %q", got)
	}
	// Every version got its own sequence number, and one version is current.
	_, vs, _, err := f.svc.ListSecretVersionIds(ctx, acct, "s", true, 1, 100)
	if err != nil {
		t.Fatal(err)
	}
	seqs, current := map[uint64]bool{}, 0
	for _, v := range vs {
		if seqs[v.Seq] {
			t.Errorf("duplicate seq %d", v.Seq)
		}
		seqs[v.Seq] = true
		if v.HasStage(StageCurrent) {
			current++
		}
	}
	if current != 1 || len(vs) != MaxVersions {
		t.Errorf("%d versions, %d current", len(vs), current)
	}
}
