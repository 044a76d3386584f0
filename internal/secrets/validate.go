package secrets

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

const ecsPrefix = "acs/ecs/"

// ValidateName checks the name rules common to all types and those tied to
// the secret type: acs/ecs/ is reserved for, and required by, ECS secrets;
// Rds names may not start with acs/.
func ValidateName(name, secretType string) error {
	if name == "" {
		return missing("SecretName")
	}
	if len(name) > MaxNameChars {
		return invalid("The parameter SecretName must be 1 to %d characters long.", MaxNameChars)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.IndexByte("_/+=.@-", c) >= 0
		if !ok {
			return invalid("The parameter SecretName may contain only letters, digits and _/+=.@-")
		}
	}
	isECS := strings.HasPrefix(name, ecsPrefix)
	switch {
	case secretType == TypeECS && !isECS:
		return invalid("The name of an ECS secret must start with %s", ecsPrefix)
	case secretType != TypeECS && isECS:
		return invalid("The prefix %s is reserved for ECS secrets.", ecsPrefix)
	case secretType == TypeRds && strings.HasPrefix(name, "acs/"):
		return invalid("The name of an Rds secret may not start with acs/")
	}
	return nil
}

// ValidateType checks a SecretType value ("" means Generic).
func ValidateType(t string) (string, error) {
	switch t {
	case "":
		return TypeGeneric, nil
	case TypeGeneric, TypeRds, TypeRAM, TypeECS:
		return t, nil
	}
	return "", invalid("The parameter SecretType must be Generic, Rds, RAMCredentials or ECS.")
}

func validateVersionID(id string) error {
	if id == "" {
		return missing("VersionId")
	}
	if len(id) > maxVersionIDChars || !utf8.ValidString(id) {
		return invalid("The parameter VersionId must be 1 to %d characters long.", maxVersionIDChars)
	}
	return nil
}

// DecodeValue turns SecretData as sent into the bytes to store: text as is,
// binary decoded from Base64. The size limit applies to the result.
func DecodeValue(data, dataType string) ([]byte, string, error) {
	switch dataType {
	case "", DataText:
		dataType = DataText
	case DataBinary:
	default:
		return nil, "", invalid("The parameter SecretDataType must be text or binary.")
	}
	if data == "" {
		return nil, "", missing("SecretData")
	}
	var v []byte
	if dataType == DataBinary {
		var err error
		v, err = base64.StdEncoding.DecodeString(data)
		if err != nil {
			return nil, "", invalid("The parameter SecretData must be Base64-encoded when SecretDataType is binary.")
		}
	} else {
		v = []byte(data)
	}
	if len(v) > MaxValueBytes {
		return nil, "", invalid("The secret value exceeds the limit of %d bytes.", MaxValueBytes)
	}
	return v, dataType, nil
}

// EncodeValue is the inverse of DecodeValue, for responses.
func EncodeValue(v []byte, dataType string) string {
	if dataType == DataBinary {
		return base64.StdEncoding.EncodeToString(v)
	}
	return string(v)
}

// ParseInterval parses integer[unit] with unit d, h, m or s (seconds when
// omitted).
func ParseInterval(s string) (time.Duration, error) {
	bad := invalid("The parameter RotationInterval must be an integer followed by d, h, m or s, such as 7d or 604800s.")
	if s == "" {
		return 0, bad
	}
	unit := time.Second
	num := s
	switch s[len(s)-1] {
	case 'd':
		unit, num = 24*time.Hour, s[:len(s)-1]
	case 'h':
		unit, num = time.Hour, s[:len(s)-1]
	case 'm':
		unit, num = time.Minute, s[:len(s)-1]
	case 's':
		num = s[:len(s)-1]
	}
	if num == "" || num[0] == '+' || num[0] == '-' {
		return 0, bad
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > math.MaxInt64/int64(unit) {
		return 0, bad
	}
	return time.Duration(n) * unit, nil
}

// FormatInterval renders an interval in seconds, as the API returns it.
func FormatInterval(d time.Duration) string {
	return strconv.FormatInt(int64(d/time.Second), 10) + "s"
}

// CheckInterval applies the per-type bounds: ECS secrets 1 h to 365 d, other
// managed types 6 h to 365 d; generic secrets have no automatic rotation.
// SetDevMinRotationInterval lowers the minimum (tests and demos only).
func CheckInterval(secretType string, d time.Duration) error {
	lo := 6 * time.Hour
	switch secretType {
	case TypeGeneric:
		return invalid("Automatic rotation is not supported for secrets of type Generic.")
	case TypeECS:
		lo = time.Hour
	}
	if dev := time.Duration(devMinInterval.Load()); dev > 0 && dev < lo {
		lo = dev
	}
	if d < lo || d > 365*24*time.Hour {
		return invalid("The parameter RotationInterval must be between %s and 365d for %s secrets.", humanInterval(lo), secretType)
	}
	return nil
}

// devMinInterval, when positive, is a lower minimum rotation interval for
// every managed type. It is process-wide rather than per Service because
// CheckInterval is a plain function; one server runs per process.
var devMinInterval atomic.Int64

// SetDevMinRotationInterval lowers the minimum automatic rotation interval
// to d for every managed type (0 restores the API's bounds). It exists so
// that a test or a demo can watch a scheduled rotation within seconds
// (`keyhold server --dev-min-rotation-interval`); it is not for production,
// where the bounds match Alibaba Cloud's.
func SetDevMinRotationInterval(d time.Duration) { devMinInterval.Store(int64(max(d, 0))) }

// humanInterval renders a bound as the API documents it: whole hours, or
// seconds under the lowered development minimum.
func humanInterval(d time.Duration) string {
	if d%time.Hour == 0 {
		return strconv.Itoa(int(d/time.Hour)) + "h"
	}
	return FormatInterval(d)
}

// checkExtendedConfig checks that cfg is a JSON object within the size limit.
func checkExtendedConfig(cfg string) (map[string]any, error) {
	if utf8.RuneCountInString(cfg) > MaxExtendedConfigChars {
		return nil, invalid("The parameter ExtendedConfig exceeds %d characters.", MaxExtendedConfigChars)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(cfg), &m); err != nil || m == nil {
		return nil, invalid("The parameter ExtendedConfig must be a JSON object.")
	}
	return m, nil
}

// ValidateTag applies the per-tag rules.
func ValidateTag(t Tag) error {
	if t.Key == "" {
		return invalid("A tag key must not be empty.")
	}
	if utf8.RuneCountInString(t.Key) > MaxTagChars || utf8.RuneCountInString(t.Value) > MaxTagChars {
		return invalid("Tag keys and values must be at most %d characters.", MaxTagChars)
	}
	lk := strings.ToLower(t.Key)
	if strings.HasPrefix(lk, "aliyun") || strings.HasPrefix(lk, "acs:") {
		return invalid("A tag key may not start with aliyun or acs:")
	}
	return nil
}

// mergeTags adds or replaces tags and enforces the per-resource limit.
func mergeTags(have, add []Tag) ([]Tag, error) {
	out := append([]Tag(nil), have...)
	for _, t := range add {
		if err := ValidateTag(t); err != nil {
			return nil, err
		}
		replaced := false
		for i := range out {
			if out[i].Key == t.Key {
				out[i].Value = t.Value
				replaced = true
			}
		}
		if !replaced {
			out = append(out, t)
		}
	}
	if len(out) > MaxTags {
		return nil, errLimit("A resource can have at most %d tags.", MaxTags)
	}
	return out, nil
}

func removeTags(have []Tag, keys []string) []Tag {
	out := []Tag{}
	for _, t := range have {
		drop := false
		for _, k := range keys {
			if t.Key == k {
				drop = true
			}
		}
		if !drop {
			out = append(out, t)
		}
	}
	return out
}

// ParseTags parses the JSON form [{"TagKey":"k","TagValue":"v"}, ...].
func ParseTags(s string) ([]Tag, error) {
	if s == "" {
		return nil, nil
	}
	var raw []struct {
		TagKey   *string
		TagValue *string
	}
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		return nil, invalid("The parameter Tags must be a JSON array of {\"TagKey\",\"TagValue\"} objects.")
	}
	out := make([]Tag, 0, len(raw))
	for _, r := range raw {
		if r.TagKey == nil {
			return nil, invalid("Every tag needs a TagKey.")
		}
		t := Tag{Key: *r.TagKey}
		if r.TagValue != nil {
			t.Value = *r.TagValue
		}
		if err := ValidateTag(t); err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	if len(out) > MaxTags {
		return nil, errLimit("A resource can have at most %d tags.", MaxTags)
	}
	return out, nil
}

// ParseTagKeys parses the JSON form ["k1","k2"].
func ParseTagKeys(s string) ([]string, error) {
	var keys []string
	if err := json.Unmarshal([]byte(s), &keys); err != nil {
		return nil, invalid("The parameter TagKeys must be a JSON array of strings.")
	}
	return keys, nil
}

// ParseVersionStages accepts a JSON array or {"VersionStage":[...]}; ""
// means ACSCurrent.
func ParseVersionStages(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return []string{StageCurrent}, nil
	}
	var stages []string
	b := []byte(s)
	if err := json.Unmarshal(b, &stages); err != nil {
		var obj struct{ VersionStage []string }
		if err := json.Unmarshal(b, &obj); err != nil || obj.VersionStage == nil {
			return nil, invalid("The parameter VersionStages must be a JSON array of stage labels.")
		}
		stages = obj.VersionStage
	}
	return checkStages(stages)
}

func checkStages(stages []string) ([]string, error) {
	if len(stages) > maxStagesPerVersion {
		return nil, invalid("A version can carry at most %d stage labels.", maxStagesPerVersion)
	}
	seen := map[string]bool{}
	out := make([]string, 0, len(stages))
	for _, st := range stages {
		if err := checkStage(st); err != nil {
			return nil, err
		}
		if !seen[st] {
			seen[st] = true
			out = append(out, st)
		}
	}
	return out, nil
}

func checkStage(st string) error {
	if st == "" || len(st) > maxStageChars || !utf8.ValidString(st) {
		return invalid("A stage label must be 1 to %d characters long.", maxStageChars)
	}
	return nil
}

// validJSON reports whether s is one JSON value.
func validJSON(s string) bool {
	return json.Valid(bytes.TrimSpace([]byte(s))) && strings.TrimSpace(s) != ""
}
