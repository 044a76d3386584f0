package secrets

import (
	"encoding/json"
	"time"
)

// initialVersion is one version written by CreateSecret.
type initialVersion struct {
	id     string
	value  []byte
	stages []string
}

// managedSubTypes lists the SecretSubType values per managed type, and the
// ExtendedConfig field that names the target.
var managedSubTypes = map[string]struct {
	subTypes []string
	target   string
}{
	TypeECS: {[]string{"Password", "SSHKey"}, "InstanceId"},
	TypeRds: {[]string{"SingleUser", "DoubleUsers"}, "DBInstanceId"},
	TypeRAM: {[]string{"RamUserAccessKey"}, "UserName"},
}

// checkManagedConfig checks what a managed type needs in ExtendedConfig and
// returns the SecretSubType.
func checkManagedConfig(secretType string, cfg map[string]any) (string, error) {
	rule := managedSubTypes[secretType]
	if cfg == nil {
		return "", invalid("The parameter ExtendedConfig is required for %s secrets.", secretType)
	}
	sub, _ := cfg["SecretSubType"].(string)
	ok := false
	for _, s := range rule.subTypes {
		ok = ok || s == sub
	}
	if !ok {
		return "", invalid("ExtendedConfig.SecretSubType is not valid for %s secrets.", secretType)
	}
	if t, _ := cfg[rule.target].(string); t == "" {
		return "", invalid("ExtendedConfig.%s is required for %s secrets.", rule.target, secretType)
	}
	if secretType == TypeRds {
		if cd, ok := cfg["CustomData"].(map[string]any); ok && len(cd) > 10 {
			return "", invalid("ExtendedConfig.CustomData may hold at most 10 pairs.")
		}
	}
	return sub, nil
}

// managedVersions turns the SecretData of a managed CreateSecret into the
// flat per-version values that GetSecretValue serves: Rds and RAM secrets
// take a list of accounts or access keys, of which the first becomes
// ACSCurrent and a second ACSPrevious. No message here quotes the value.
func managedVersions(secretType, subType, versionID string, data []byte, now time.Time) ([]initialVersion, error) {
	bad := invalid("The parameter SecretData does not have the form %s secrets require.", secretType)
	switch secretType {
	case TypeECS:
		var v struct{ UserName, Password, PublicKey, PrivateKey string }
		if json.Unmarshal(data, &v) != nil || v.UserName == "" {
			return nil, bad
		}
		if subType == "Password" && v.Password == "" || subType == "SSHKey" && v.PrivateKey == "" {
			return nil, bad
		}
		return []initialVersion{{versionID, data, []string{StageCurrent}}}, nil

	case TypeRds:
		type account struct {
			AccountName     string
			AccountPassword string
		}
		var v struct{ Accounts []account }
		if json.Unmarshal(data, &v) != nil {
			return nil, bad
		}
		if v.Accounts == nil { // the flat form is accepted for a single user
			var a account
			if json.Unmarshal(data, &a) == nil && a.AccountName != "" {
				v.Accounts = []account{a}
			}
		}
		want := 1
		if subType == "DoubleUsers" {
			want = 2
		}
		if len(v.Accounts) != want {
			return nil, bad
		}
		var out []initialVersion
		for i, a := range v.Accounts {
			if a.AccountName == "" || a.AccountPassword == "" {
				return nil, bad
			}
			b, _ := json.Marshal(a)
			out = append(out, initialVersion{derivedID(versionID, i), b, []string{stageForIndex(i)}})
		}
		return reverse(out), nil

	case TypeRAM:
		type key struct {
			AccessKeyId       string
			AccessKeySecret   string
			GenerateTimestamp string
		}
		var v struct{ AccessKeys []key }
		if json.Unmarshal(data, &v) != nil || len(v.AccessKeys) < 1 || len(v.AccessKeys) > 2 {
			return nil, bad
		}
		var out []initialVersion
		for i, k := range v.AccessKeys {
			if k.AccessKeyId == "" || k.AccessKeySecret == "" {
				return nil, bad
			}
			if k.GenerateTimestamp == "" {
				k.GenerateTimestamp = FormatTime(now)
			}
			b, _ := json.Marshal(k)
			out = append(out, initialVersion{derivedID(versionID, i), b, []string{stageForIndex(i)}})
		}
		return reverse(out), nil
	}
	return nil, bad
}

// derivedID names the second version of a two-value create; the first keeps
// the caller's VersionId.
func derivedID(versionID string, i int) string {
	if i == 0 {
		return versionID
	}
	return versionID + "-previous"
}

func stageForIndex(i int) string {
	if i == 0 {
		return StageCurrent
	}
	return StagePrevious
}

// reverse puts the ACSPrevious value first so that it is the older version.
func reverse(vs []initialVersion) []initialVersion {
	for i, j := 0, len(vs)-1; i < j; i, j = i+1, j-1 {
		vs[i], vs[j] = vs[j], vs[i]
	}
	return vs
}
