package client

import (
	"context"
	"fmt"
	"strconv"
)

// Response structs mirror the official SDK's *ResponseBody structs
// (github.com/alibabacloud-go/kms-20160120/v3), field names and JSON names
// alike, so that JSON printed by the CLI matches what other tools show.

// CreateSecretRequest holds CreateSecret's parameters. SecretName,
// SecretData and VersionId are required.
type CreateSecretRequest struct {
	SecretName              string
	SecretData              string
	VersionId               string
	SecretDataType          string // text (default) or binary (Base64)
	SecretType              string // Generic (default), Rds, RAMCredentials, ECS
	EncryptionKeyId         string
	Description             string
	Tags                    []Tag
	ExtendedConfig          map[string]any
	EnableAutomaticRotation bool
	RotationInterval        string // e.g. "7d", "604800s"
	Policy                  string
}

// CreateSecretResponse is CreateSecret's result.
type CreateSecretResponse struct {
	Arn               string `json:"Arn,omitempty"`
	AutomaticRotation string `json:"AutomaticRotation,omitempty"`
	ExtendedConfig    string `json:"ExtendedConfig,omitempty"`
	NextRotationDate  string `json:"NextRotationDate,omitempty"`
	RequestId         string `json:"RequestId,omitempty"`
	RotationInterval  string `json:"RotationInterval,omitempty"`
	SecretName        string `json:"SecretName,omitempty"`
	SecretType        string `json:"SecretType,omitempty"`
	VersionId         string `json:"VersionId,omitempty"`
}

// CreateSecret creates a secret with its first version.
func (c *Client) CreateSecret(ctx context.Context, r *CreateSecretRequest) (*CreateSecretResponse, error) {
	p := newPB().str("SecretName", r.SecretName).str("SecretData", r.SecretData).
		str("VersionId", r.VersionId).str("SecretDataType", r.SecretDataType).
		str("SecretType", r.SecretType).str("EncryptionKeyId", r.EncryptionKeyId).
		str("Description", r.Description).js("Tags", r.Tags, len(r.Tags) == 0).
		js("ExtendedConfig", r.ExtendedConfig, len(r.ExtendedConfig) == 0).
		flag("EnableAutomaticRotation", r.EnableAutomaticRotation).
		str("RotationInterval", r.RotationInterval).str("Policy", r.Policy)
	return call[CreateSecretResponse](ctx, c, "CreateSecret", p)
}

// GetSecretValueRequest holds GetSecretValue's parameters.
type GetSecretValueRequest struct {
	SecretName          string
	VersionId           string
	VersionStage        string // default ACSCurrent
	FetchExtendedConfig bool
}

// GetSecretValueResponse is GetSecretValue's result. Its String method
// redacts SecretData so that printing the struct by accident leaks nothing.
type GetSecretValueResponse struct {
	AutomaticRotation string        `json:"AutomaticRotation,omitempty"`
	CreateTime        string        `json:"CreateTime,omitempty"`
	ExtendedConfig    string        `json:"ExtendedConfig,omitempty"`
	LastRotationDate  string        `json:"LastRotationDate,omitempty"`
	NextRotationDate  string        `json:"NextRotationDate,omitempty"`
	RequestId         string        `json:"RequestId,omitempty"`
	RotationInterval  string        `json:"RotationInterval,omitempty"`
	SecretData        string        `json:"SecretData,omitempty"`
	SecretDataType    string        `json:"SecretDataType,omitempty"`
	SecretName        string        `json:"SecretName,omitempty"`
	SecretType        string        `json:"SecretType,omitempty"`
	VersionId         string        `json:"VersionId,omitempty"`
	VersionStages     VersionStages `json:"VersionStages"`
}

func (r GetSecretValueResponse) String() string {
	return fmt.Sprintf("{SecretName:%s VersionId:%s VersionStages:%v SecretData:<redacted> RequestId:%s}",
		r.SecretName, r.VersionId, r.VersionStages.VersionStage, r.RequestId)
}

// GoString keeps %#v from printing the value either.
func (r GetSecretValueResponse) GoString() string { return r.String() }

// GetSecretValue reads a secret version's value.
func (c *Client) GetSecretValue(ctx context.Context, r *GetSecretValueRequest) (*GetSecretValueResponse, error) {
	p := newPB().str("SecretName", r.SecretName).str("VersionId", r.VersionId).
		str("VersionStage", r.VersionStage).flag("FetchExtendedConfig", r.FetchExtendedConfig)
	return call[GetSecretValueResponse](ctx, c, "GetSecretValue", p)
}

// PutSecretValueRequest holds PutSecretValue's parameters.
type PutSecretValueRequest struct {
	SecretName     string
	VersionId      string
	SecretData     string
	SecretDataType string
	VersionStages  []string // default ["ACSCurrent"]
}

// PutSecretValueResponse is PutSecretValue's result.
type PutSecretValueResponse struct {
	RequestId     string        `json:"RequestId,omitempty"`
	SecretName    string        `json:"SecretName,omitempty"`
	VersionId     string        `json:"VersionId,omitempty"`
	VersionStages VersionStages `json:"VersionStages"`
}

// PutSecretValue stores a new version of a secret.
func (c *Client) PutSecretValue(ctx context.Context, r *PutSecretValueRequest) (*PutSecretValueResponse, error) {
	p := newPB().str("SecretName", r.SecretName).str("VersionId", r.VersionId).
		str("SecretData", r.SecretData).str("SecretDataType", r.SecretDataType).
		js("VersionStages", r.VersionStages, len(r.VersionStages) == 0)
	return call[PutSecretValueResponse](ctx, c, "PutSecretValue", p)
}

// Filter is one ListSecrets filter; Key is SecretName, Description, TagKey
// or TagValue.
type Filter struct {
	Key    string   `json:"Key"`
	Values []string `json:"Values"`
}

// ListSecretsRequest holds ListSecrets' parameters.
type ListSecretsRequest struct {
	Page
	Filters   []Filter
	FetchTags bool
}

// SecretSummary is one entry of ListSecrets.
type SecretSummary struct {
	CreateTime        string `json:"CreateTime,omitempty"`
	PlannedDeleteTime string `json:"PlannedDeleteTime,omitempty"`
	SecretName        string `json:"SecretName,omitempty"`
	SecretType        string `json:"SecretType,omitempty"`
	Tags              *Tags  `json:"Tags,omitempty"`
	UpdateTime        string `json:"UpdateTime,omitempty"`
}

// ListSecretsResponse is ListSecrets' result.
type ListSecretsResponse struct {
	PageNumber int    `json:"PageNumber,omitempty"`
	PageSize   int    `json:"PageSize,omitempty"`
	RequestId  string `json:"RequestId,omitempty"`
	SecretList struct {
		Secret []SecretSummary `json:"Secret"`
	} `json:"SecretList"`
	TotalCount int `json:"TotalCount"`
}

// ListSecrets lists secrets (metadata only).
func (c *Client) ListSecrets(ctx context.Context, r *ListSecretsRequest) (*ListSecretsResponse, error) {
	p := newPB().page(r.Page).js("Filters", r.Filters, len(r.Filters) == 0).flag("FetchTags", r.FetchTags)
	return call[ListSecretsResponse](ctx, c, "ListSecrets", p)
}

// DescribeSecretResponse is DescribeSecret's result.
type DescribeSecretResponse struct {
	Arn               string `json:"Arn,omitempty"`
	AutomaticRotation string `json:"AutomaticRotation,omitempty"`
	CreateTime        string `json:"CreateTime,omitempty"`
	Description       string `json:"Description,omitempty"`
	EncryptionKeyId   string `json:"EncryptionKeyId,omitempty"`
	ExtendedConfig    string `json:"ExtendedConfig,omitempty"`
	LastRotationDate  string `json:"LastRotationDate,omitempty"`
	NextRotationDate  string `json:"NextRotationDate,omitempty"`
	PlannedDeleteTime string `json:"PlannedDeleteTime,omitempty"`
	RequestId         string `json:"RequestId,omitempty"`
	RotationInterval  string `json:"RotationInterval,omitempty"`
	SecretName        string `json:"SecretName,omitempty"`
	SecretType        string `json:"SecretType,omitempty"`
	Tags              *Tags  `json:"Tags,omitempty"`
	UpdateTime        string `json:"UpdateTime,omitempty"`
}

// DescribeSecret returns a secret's metadata (never its value).
func (c *Client) DescribeSecret(ctx context.Context, secretName string, fetchTags bool) (*DescribeSecretResponse, error) {
	p := newPB().str("SecretName", secretName).flag("FetchTags", fetchTags)
	return call[DescribeSecretResponse](ctx, c, "DescribeSecret", p)
}

// SecretNameResponse is the result of actions that echo the secret name
// (UpdateSecret, UpdateSecretVersionStage, RestoreSecret,
// UpdateSecretRotationPolicy).
type SecretNameResponse struct {
	RequestId  string `json:"RequestId,omitempty"`
	SecretName string `json:"SecretName,omitempty"`
}

// UpdateSecretRequest holds UpdateSecret's parameters.
type UpdateSecretRequest struct {
	SecretName  string
	Description string
	// CustomData replaces ExtendedConfig.CustomData when non-nil.
	CustomData map[string]string
}

// UpdateSecret changes a secret's description or custom data.
func (c *Client) UpdateSecret(ctx context.Context, r *UpdateSecretRequest) (*SecretNameResponse, error) {
	p := newPB().str("SecretName", r.SecretName).str("Description", r.Description).
		js("ExtendedConfig.CustomData", r.CustomData, r.CustomData == nil)
	return call[SecretNameResponse](ctx, c, "UpdateSecret", p)
}

// UpdateSecretVersionStageRequest holds UpdateSecretVersionStage's
// parameters; set RemoveFromVersion, MoveToVersion or both.
type UpdateSecretVersionStageRequest struct {
	SecretName        string
	VersionStage      string
	RemoveFromVersion string
	MoveToVersion     string
}

// UpdateSecretVersionStage moves or removes a stage label.
func (c *Client) UpdateSecretVersionStage(ctx context.Context, r *UpdateSecretVersionStageRequest) (*SecretNameResponse, error) {
	p := newPB().str("SecretName", r.SecretName).str("VersionStage", r.VersionStage).
		str("RemoveFromVersion", r.RemoveFromVersion).str("MoveToVersion", r.MoveToVersion)
	return call[SecretNameResponse](ctx, c, "UpdateSecretVersionStage", p)
}

// ListSecretVersionIdsRequest holds ListSecretVersionIds' parameters.
type ListSecretVersionIdsRequest struct {
	SecretName        string
	IncludeDeprecated bool
	Page
}

// SecretVersion is one entry of ListSecretVersionIds.
type SecretVersion struct {
	CreateTime    string        `json:"CreateTime,omitempty"`
	VersionId     string        `json:"VersionId,omitempty"`
	VersionStages VersionStages `json:"VersionStages"`
}

// ListSecretVersionIdsResponse is ListSecretVersionIds' result.
type ListSecretVersionIdsResponse struct {
	PageNumber int    `json:"PageNumber,omitempty"`
	PageSize   int    `json:"PageSize,omitempty"`
	RequestId  string `json:"RequestId,omitempty"`
	SecretName string `json:"SecretName,omitempty"`
	TotalCount int    `json:"TotalCount"`
	VersionIds struct {
		VersionId []SecretVersion `json:"VersionId"`
	} `json:"VersionIds"`
}

// ListSecretVersionIds lists a secret's versions and their stages.
func (c *Client) ListSecretVersionIds(ctx context.Context, r *ListSecretVersionIdsRequest) (*ListSecretVersionIdsResponse, error) {
	p := newPB().str("SecretName", r.SecretName).page(r.Page)
	if r.IncludeDeprecated {
		p.str("IncludeDeprecated", "true")
	}
	return call[ListSecretVersionIdsResponse](ctx, c, "ListSecretVersionIds", p)
}

// DeleteSecretRequest holds DeleteSecret's parameters.
type DeleteSecretRequest struct {
	SecretName                 string
	RecoveryWindowInDays       int // 7–30, default 30
	ForceDeleteWithoutRecovery bool
}

// DeleteSecretResponse is DeleteSecret's result.
type DeleteSecretResponse struct {
	PlannedDeleteTime string `json:"PlannedDeleteTime,omitempty"`
	RequestId         string `json:"RequestId,omitempty"`
	SecretName        string `json:"SecretName,omitempty"`
}

// DeleteSecret schedules (or forces) a secret's deletion.
func (c *Client) DeleteSecret(ctx context.Context, r *DeleteSecretRequest) (*DeleteSecretResponse, error) {
	p := newPB().str("SecretName", r.SecretName).num("RecoveryWindowInDays", r.RecoveryWindowInDays).
		flag("ForceDeleteWithoutRecovery", r.ForceDeleteWithoutRecovery)
	return call[DeleteSecretResponse](ctx, c, "DeleteSecret", p)
}

// RestoreSecret cancels a scheduled deletion.
func (c *Client) RestoreSecret(ctx context.Context, secretName string) (*SecretNameResponse, error) {
	return call[SecretNameResponse](ctx, c, "RestoreSecret", newPB().str("SecretName", secretName))
}

// RotateSecretRequest holds RotateSecret's parameters.
type RotateSecretRequest struct {
	SecretName string
	VersionId  string // idempotency key for the new version
	// SecretData is Keyhold's extension: a caller-supplied new value.
	SecretData string
}

// RotateSecretResponse is RotateSecret's result.
type RotateSecretResponse struct {
	Arn        string `json:"Arn,omitempty"`
	RequestId  string `json:"RequestId,omitempty"`
	SecretName string `json:"SecretName,omitempty"`
	VersionId  string `json:"VersionId,omitempty"`
}

// RotateSecret rotates a managed secret now.
func (c *Client) RotateSecret(ctx context.Context, r *RotateSecretRequest) (*RotateSecretResponse, error) {
	p := newPB().str("SecretName", r.SecretName).str("VersionId", r.VersionId).str("SecretData", r.SecretData)
	return call[RotateSecretResponse](ctx, c, "RotateSecret", p)
}

// UpdateSecretRotationPolicyRequest holds UpdateSecretRotationPolicy's
// parameters.
type UpdateSecretRotationPolicyRequest struct {
	SecretName              string
	EnableAutomaticRotation bool
	RotationInterval        string
}

// UpdateSecretRotationPolicy turns scheduled rotation on or off.
func (c *Client) UpdateSecretRotationPolicy(ctx context.Context, r *UpdateSecretRotationPolicyRequest) (*SecretNameResponse, error) {
	p := newPB().str("SecretName", r.SecretName).boolean("EnableAutomaticRotation", r.EnableAutomaticRotation).
		str("RotationInterval", r.RotationInterval)
	return call[SecretNameResponse](ctx, c, "UpdateSecretRotationPolicy", p)
}

// GetRandomPasswordRequest holds GetRandomPassword's parameters.
type GetRandomPasswordRequest struct {
	PasswordLength          int // 8–128, default 32
	ExcludeCharacters       string
	ExcludeLowercase        bool
	ExcludeUppercase        bool
	ExcludeNumbers          bool
	ExcludePunctuation      bool
	RequireEachIncludedType bool
}

// GetRandomPasswordResponse is GetRandomPassword's result.
type GetRandomPasswordResponse struct {
	RandomPassword string `json:"RandomPassword,omitempty"`
	RequestId      string `json:"RequestId,omitempty"`
}

func (r GetRandomPasswordResponse) String() string {
	return "{RandomPassword:<redacted> RequestId:" + r.RequestId + "}"
}

// GoString keeps %#v from printing the password.
func (r GetRandomPasswordResponse) GoString() string { return r.String() }

// GetRandomPassword asks the server for a random password.
func (c *Client) GetRandomPassword(ctx context.Context, r *GetRandomPasswordRequest) (*GetRandomPasswordResponse, error) {
	p := newPB().num("PasswordLength", r.PasswordLength).str("ExcludeCharacters", r.ExcludeCharacters).
		flag("ExcludeLowercase", r.ExcludeLowercase).flag("ExcludeUppercase", r.ExcludeUppercase).
		flag("ExcludeNumbers", r.ExcludeNumbers).flag("ExcludePunctuation", r.ExcludePunctuation).
		flag("RequireEachIncludedType", r.RequireEachIncludedType)
	return call[GetRandomPasswordResponse](ctx, c, "GetRandomPassword", p)
}

// TagResourceRequest tags a secret (SecretName) or a key (KeyId).
type TagResourceRequest struct {
	SecretName string
	KeyId      string
	Tags       []Tag
}

// TagResource adds or overwrites tags.
func (c *Client) TagResource(ctx context.Context, r *TagResourceRequest) (*Response, error) {
	p := newPB().str("SecretName", r.SecretName).str("KeyId", r.KeyId).js("Tags", r.Tags, false)
	return call[Response](ctx, c, "TagResource", p)
}

// UntagResourceRequest removes tags from a secret (SecretName) or a key
// (KeyId).
type UntagResourceRequest struct {
	SecretName string
	KeyId      string
	TagKeys    []string
}

// UntagResource removes tags by key.
func (c *Client) UntagResource(ctx context.Context, r *UntagResourceRequest) (*Response, error) {
	p := newPB().str("SecretName", r.SecretName).str("KeyId", r.KeyId).js("TagKeys", r.TagKeys, false)
	return call[Response](ctx, c, "UntagResource", p)
}

// ListTagResourcesRequest holds ListTagResources' parameters (batch form:
// ResourceId.N, Tag.N.Key, Tag.N.Value).
type ListTagResourcesRequest struct {
	ResourceType string // e.g. secret, key
	ResourceIds  []string
	Tags         []Tag
	NextToken    string
}

// TagResource is one entry of ListTagResources.
type TagResource struct {
	ResourceId   string `json:"ResourceId,omitempty"`
	ResourceType string `json:"ResourceType,omitempty"`
	TagKey       string `json:"TagKey,omitempty"`
	TagValue     string `json:"TagValue,omitempty"`
}

// ListTagResourcesResponse is ListTagResources' result.
type ListTagResourcesResponse struct {
	NextToken    string `json:"NextToken,omitempty"`
	RequestId    string `json:"RequestId,omitempty"`
	TagResources struct {
		TagResource []TagResource `json:"TagResource"`
	} `json:"TagResources"`
}

// ListTagResources lists the tags of the given resources.
func (c *Client) ListTagResources(ctx context.Context, r *ListTagResourcesRequest) (*ListTagResourcesResponse, error) {
	p := newPB().str("ResourceType", r.ResourceType).str("NextToken", r.NextToken)
	for i, id := range r.ResourceIds {
		p.str("ResourceId."+strconv.Itoa(i+1), id)
	}
	for i, t := range r.Tags {
		n := strconv.Itoa(i + 1)
		p.str("Tag."+n+".Key", t.TagKey).str("Tag."+n+".Value", t.TagValue)
	}
	return call[ListTagResourcesResponse](ctx, c, "ListTagResources", p)
}

// GetSecretPolicyResponse is GetSecretPolicy's result.
type GetSecretPolicyResponse struct {
	Policy    string `json:"Policy,omitempty"`
	RequestId string `json:"RequestId,omitempty"`
}

// GetSecretPolicy returns a secret's resource policy (policyName "" means
// "default").
func (c *Client) GetSecretPolicy(ctx context.Context, secretName, policyName string) (*GetSecretPolicyResponse, error) {
	p := newPB().str("SecretName", secretName).str("PolicyName", policyName)
	return call[GetSecretPolicyResponse](ctx, c, "GetSecretPolicy", p)
}

// SetSecretPolicyRequest holds SetSecretPolicy's parameters.
type SetSecretPolicyRequest struct {
	SecretName string
	PolicyName string // default "default"
	Policy     string // JSON policy document
}

// SetSecretPolicy replaces a secret's resource policy.
func (c *Client) SetSecretPolicy(ctx context.Context, r *SetSecretPolicyRequest) (*Response, error) {
	p := newPB().str("SecretName", r.SecretName).str("PolicyName", r.PolicyName).str("Policy", r.Policy)
	return call[Response](ctx, c, "SetSecretPolicy", p)
}
