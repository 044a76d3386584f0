package audit_test

import (
	"strings"
	"testing"

	"github.com/keyhold/keyhold/internal/audit"
)

func TestRedactKeepsOnlyAllowListedValues(t *testing.T) {
	in := map[string]string{
		"SecretName":      "app/db",
		"VersionId":       "v2",
		"SecretData":      "MARKER-secret-data",
		"Plaintext":       "MARKER-plain",
		"CiphertextBlob":  "MARKER-blob",
		"Password":        "MARKER-pw",
		"NewPassword":     "MARKER-newpw",
		"PrivateKey":      "MARKER-pk",
		"AccessKeySecret": "MARKER-aks",
		"Token":           "MARKER-token",
		"ExtendedConfig":  `{"CustomData":"MARKER-ext"}`,
		"SomethingNew":    "MARKER-new",
		"Tag.1.Key":       "team",
		"Tag.1.Value":     "payments",
		"TagKeys.2":       "env",
		"SecretData.1":    "MARKER-repeat",
		"Tag.1.Secret":    "MARKER-tagsecret",
		"Tag.x":           "MARKER-tagx",
		"weird name=":     "MARKER-oddname",
		"":                "MARKER-empty",
		"_x":              "MARKER-underscore",
		"Description":     strings.Repeat("d", 5000),
	}
	out := audit.Redact(in)
	for k, v := range out {
		if strings.Contains(k, "MARKER") || strings.Contains(v, "MARKER") {
			t.Errorf("%s=%q kept a value", k, v)
		}
	}
	for k, want := range map[string]string{
		"SecretName": "app/db", "VersionId": "v2", "Tag.1.Key": "team", "Tag.1.Value": "payments", "TagKeys.2": "env",
		"SecretData": audit.Redacted, "Password": audit.Redacted, "SomethingNew": audit.Redacted,
		"ExtendedConfig": audit.Redacted, "SecretData.1": audit.Redacted, "Tag.1.Secret": audit.Redacted,
		"Tag.x": audit.Redacted, audit.OtherParams: "3",
	} {
		if out[k] != want {
			t.Errorf("%s = %q, want %q", k, out[k], want)
		}
	}
	if d := out["Description"]; len(d) > 2100 || !strings.HasPrefix(d, "ddd") {
		t.Errorf("long value not clipped: %d bytes", len(d))
	}
	if audit.Redact(nil) != nil {
		t.Error("nil params")
	}
}

func FuzzRedactNeverKeepsAnUnlistedValue(f *testing.F) {
	f.Add("SecretData", "x")
	f.Add("Tag.1.Value", "y")
	f.Add("Tag.1.Key.2", "z")
	f.Fuzz(func(t *testing.T, name, value string) {
		out := audit.Redact(map[string]string{name: "\x00" + value})
		for k, v := range out {
			if strings.HasPrefix(v, "\x00") {
				base, _, _ := strings.Cut(k, ".")
				if !audit.IsSafeParam(base) {
					t.Fatalf("%q kept for unlisted %q", v, k)
				}
			}
		}
	})
}
