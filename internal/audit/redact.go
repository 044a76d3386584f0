package audit

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Redacted replaces every parameter value that is not on the allow-list.
const Redacted = "***"

// OtherParams counts the parameters whose names were not kept. It starts
// with "_", which no kept name does, so it never collides with one.
const OtherParams = "_OtherParameters"

// maxValueLen bounds a kept value (a policy document can be long; a record
// should not be).
const maxValueLen = 2048

// safeParams are the parameters whose values are kept verbatim: names,
// ids, options and documents that say what a call did, never what it
// carried. Anything else — SecretData, Plaintext, CiphertextBlob,
// passwords, private keys, tokens, and any parameter added later — is
// redacted. An allow-list fails safe: a new value-bearing parameter is
// hidden until someone decides it is not secret.
var safeParams = map[string]bool{
	// common
	"Action": true, "Version": true, "Format": true, "RegionId": true,
	"PageNumber": true, "PageSize": true, "NextToken": true, "MaxResults": true,
	"Marker": true, "MaxItems": true, "DryRun": true,
	// KMS secrets
	"SecretName": true, "VersionId": true, "VersionStage": true, "VersionStages": true,
	"SecretType": true, "SecretDataType": true, "Description": true, "EncryptionKeyId": true,
	"FetchExtendedConfig": true, "IncludeDeprecated": true, "Filters": true,
	"RecoveryWindowInDays": true, "ForceDeleteWithoutRecovery": true,
	"RemoveFromVersion": true, "MoveToVersion": true, "EnableAutomaticRotation": true,
	"RotationInterval": true, "PolicyName": true, "Policy": true,
	"PasswordLength": true, "ExcludeCharacters": true, "ExcludeLowercase": true,
	"ExcludeUppercase": true, "ExcludeNumbers": true, "ExcludePunctuation": true,
	"RequireEachIncludedType": true,
	// KMS keys and tags
	"KeyId": true, "KeyVersionId": true, "AliasName": true, "TargetKeyId": true,
	"KeySpec": true, "KeyUsage": true, "Origin": true, "ProtectionLevel": true,
	"PendingWindowInDays": true, "NumberOfBytes": true, "EncryptionContext": true,
	"SourceEncryptionContext": true, "DestinationEncryptionContext": true,
	"DestinationKeyId": true, "SourceKeyId": true, "Tags": true, "Tag": true,
	"TagKeys": true, "ResourceId": true, "ResourceIds": true, "ResourceType": true,
	// RAM
	"UserName": true, "NewUserName": true, "DisplayName": true, "NewDisplayName": true,
	"Comments": true, "NewComments": true, "GroupName": true, "NewGroupName": true,
	"UserAccessKeyId": true, "Status": true, "PolicyType": true, "PolicyDocument": true,
	"SetAsDefault": true, "RotateStrategy": true, "PasswordResetRequired": true,
	"NewPasswordResetRequired": true, "MFABindRequired": true, "NewMFABindRequired": true,
	// Keyhold
	"Since": true, "EventAction": true, "Until": true, "Principal": true, "Resource": true, "Result": true,
	"Checkpoint": true, "InstanceId": true, "HostName": true, "Ttl": true, "Uses": true,
	"State": true, "RotationId": true, "AccountName": true,
}

// Redact returns the parameters as the trail keeps them: allow-listed
// values verbatim (clipped), every other value replaced by Redacted. A
// repeated parameter (Tag.1.Key, ResourceIds.2) follows its base name.
// Names that do not look like parameter names are not kept at all, only
// counted, since a caller chooses them freely.
func Redact(params map[string]string) map[string]string {
	if len(params) == 0 {
		return nil
	}
	out := make(map[string]string, len(params))
	odd := 0
	for k, v := range params {
		if !plausibleName(k) {
			odd++
			continue
		}
		if safeParams[baseName(k)] {
			out[k] = clip(strings.ToValidUTF8(v, "\uFFFD"), maxValueLen)
		} else {
			out[k] = Redacted
		}
	}
	if odd > 0 {
		out[OtherParams] = strconv.Itoa(odd)
	}
	return out
}

// baseName strips the repetition suffix: "Tag.1.Key" → "Tag".
func baseName(k string) string {
	base, rest, ok := strings.Cut(k, ".")
	if !ok {
		return k
	}
	for part := range strings.SplitSeq(rest, ".") {
		if part == "Key" || part == "Value" || isDigits(part) {
			continue
		}
		return k // not a repetition: judge the full name (never allow-listed)
	}
	return base
}

func plausibleName(k string) bool {
	if k == "" || len(k) > 64 || !utf8.ValidString(k) || !('a' <= k[0] && k[0] <= 'z' || 'A' <= k[0] && k[0] <= 'Z') {
		return false
	}
	for _, r := range k {
		if !(r == '.' || r == '_' || r == '-' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9') {
			return false
		}
	}
	return true
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// IsSafeParam reports whether a parameter's value is kept verbatim.
func IsSafeParam(name string) bool { return safeParams[name] }
