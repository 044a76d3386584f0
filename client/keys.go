package client

import "context"

// CreateKeyRequest holds CreateKey's parameters; all are optional.
type CreateKeyRequest struct {
	KeySpec                 string // Aliyun_AES_256 (default)
	KeyUsage                string // ENCRYPT/DECRYPT (default)
	Origin                  string
	ProtectionLevel         string
	Description             string
	EnableAutomaticRotation bool
	RotationInterval        string
	Tags                    []Tag
}

// KeyMetadata describes a customer master key.
type KeyMetadata struct {
	Arn                string `json:"Arn,omitempty"`
	AutomaticRotation  string `json:"AutomaticRotation,omitempty"`
	CreationDate       string `json:"CreationDate,omitempty"`
	Creator            string `json:"Creator,omitempty"`
	DeleteDate         string `json:"DeleteDate,omitempty"`
	DeletionProtection string `json:"DeletionProtection,omitempty"`
	Description        string `json:"Description,omitempty"`
	KeyId              string `json:"KeyId,omitempty"`
	KeySpec            string `json:"KeySpec,omitempty"`
	KeyState           string `json:"KeyState,omitempty"`
	KeyUsage           string `json:"KeyUsage,omitempty"`
	LastRotationDate   string `json:"LastRotationDate,omitempty"`
	MaterialExpireTime string `json:"MaterialExpireTime,omitempty"`
	NextRotationDate   string `json:"NextRotationDate,omitempty"`
	Origin             string `json:"Origin,omitempty"`
	PrimaryKeyVersion  string `json:"PrimaryKeyVersion,omitempty"`
	ProtectionLevel    string `json:"ProtectionLevel,omitempty"`
	RotationInterval   string `json:"RotationInterval,omitempty"`
}

// KeyResponse is the result of CreateKey and DescribeKey.
type KeyResponse struct {
	KeyMetadata KeyMetadata `json:"KeyMetadata"`
	RequestId   string      `json:"RequestId,omitempty"`
}

// CreateKey creates a symmetric key.
func (c *Client) CreateKey(ctx context.Context, r *CreateKeyRequest) (*KeyResponse, error) {
	p := newPB().str("KeySpec", r.KeySpec).str("KeyUsage", r.KeyUsage).str("Origin", r.Origin).
		str("ProtectionLevel", r.ProtectionLevel).str("Description", r.Description).
		flag("EnableAutomaticRotation", r.EnableAutomaticRotation).str("RotationInterval", r.RotationInterval).
		js("Tags", r.Tags, len(r.Tags) == 0)
	return call[KeyResponse](ctx, c, "CreateKey", p)
}

// DescribeKey returns a key's metadata; keyID may be an id, ARN or alias.
func (c *Client) DescribeKey(ctx context.Context, keyID string) (*KeyResponse, error) {
	return call[KeyResponse](ctx, c, "DescribeKey", newPB().str("KeyId", keyID))
}

// KeySummary is one entry of ListKeys.
type KeySummary struct {
	KeyArn string `json:"KeyArn,omitempty"`
	KeyId  string `json:"KeyId,omitempty"`
}

// ListKeysResponse is ListKeys' result.
type ListKeysResponse struct {
	Keys struct {
		Key []KeySummary `json:"Key"`
	} `json:"Keys"`
	PageNumber int    `json:"PageNumber,omitempty"`
	PageSize   int    `json:"PageSize,omitempty"`
	RequestId  string `json:"RequestId,omitempty"`
	TotalCount int    `json:"TotalCount"`
}

// ListKeys lists keys; filters is the optional Filters JSON document.
func (c *Client) ListKeys(ctx context.Context, page Page, filters string) (*ListKeysResponse, error) {
	return call[ListKeysResponse](ctx, c, "ListKeys", newPB().page(page).str("Filters", filters))
}

// UpdateKeyDescription replaces a key's description.
func (c *Client) UpdateKeyDescription(ctx context.Context, keyID, description string) (*Response, error) {
	// Description is sent even when empty: clearing it is a valid request.
	p := newPB().str("KeyId", keyID)
	p.m["Description"] = description
	return call[Response](ctx, c, "UpdateKeyDescription", p)
}

// EnableKey enables a key.
func (c *Client) EnableKey(ctx context.Context, keyID string) (*Response, error) {
	return call[Response](ctx, c, "EnableKey", newPB().str("KeyId", keyID))
}

// DisableKey disables a key; using it then fails with Rejected.Disabled.
func (c *Client) DisableKey(ctx context.Context, keyID string) (*Response, error) {
	return call[Response](ctx, c, "DisableKey", newPB().str("KeyId", keyID))
}

// ScheduleKeyDeletion schedules a key's deletion after pendingWindowInDays
// (7–366).
func (c *Client) ScheduleKeyDeletion(ctx context.Context, keyID string, pendingWindowInDays int) (*Response, error) {
	p := newPB().str("KeyId", keyID).num("PendingWindowInDays", pendingWindowInDays)
	return call[Response](ctx, c, "ScheduleKeyDeletion", p)
}

// CancelKeyDeletion cancels a scheduled key deletion.
func (c *Client) CancelKeyDeletion(ctx context.Context, keyID string) (*Response, error) {
	return call[Response](ctx, c, "CancelKeyDeletion", newPB().str("KeyId", keyID))
}

// CreateAlias points a new alias ("alias/…") at a key.
func (c *Client) CreateAlias(ctx context.Context, aliasName, keyID string) (*Response, error) {
	return call[Response](ctx, c, "CreateAlias", newPB().str("AliasName", aliasName).str("KeyId", keyID))
}

// UpdateAlias points an existing alias at another key.
func (c *Client) UpdateAlias(ctx context.Context, aliasName, keyID string) (*Response, error) {
	return call[Response](ctx, c, "UpdateAlias", newPB().str("AliasName", aliasName).str("KeyId", keyID))
}

// DeleteAlias removes an alias.
func (c *Client) DeleteAlias(ctx context.Context, aliasName string) (*Response, error) {
	return call[Response](ctx, c, "DeleteAlias", newPB().str("AliasName", aliasName))
}

// Alias is one entry of ListAliases and ListAliasesByKeyId.
type Alias struct {
	AliasArn  string `json:"AliasArn,omitempty"`
	AliasName string `json:"AliasName,omitempty"`
	KeyId     string `json:"KeyId,omitempty"`
}

// ListAliasesResponse is the result of ListAliases and ListAliasesByKeyId.
type ListAliasesResponse struct {
	Aliases struct {
		Alias []Alias `json:"Alias"`
	} `json:"Aliases"`
	PageNumber int    `json:"PageNumber,omitempty"`
	PageSize   int    `json:"PageSize,omitempty"`
	RequestId  string `json:"RequestId,omitempty"`
	TotalCount int    `json:"TotalCount"`
}

// ListAliases lists all aliases.
func (c *Client) ListAliases(ctx context.Context, page Page) (*ListAliasesResponse, error) {
	return call[ListAliasesResponse](ctx, c, "ListAliases", newPB().page(page))
}

// ListAliasesByKeyId lists the aliases of one key.
func (c *Client) ListAliasesByKeyId(ctx context.Context, keyID string, page Page) (*ListAliasesResponse, error) {
	return call[ListAliasesResponse](ctx, c, "ListAliasesByKeyId", newPB().str("KeyId", keyID).page(page))
}

// KeyVersion is a key version.
type KeyVersion struct {
	CreationDate string `json:"CreationDate,omitempty"`
	KeyId        string `json:"KeyId,omitempty"`
	KeyVersionId string `json:"KeyVersionId,omitempty"`
}

// CreateKeyVersionResponse is CreateKeyVersion's result.
type CreateKeyVersionResponse struct {
	KeyVersion KeyVersion `json:"KeyVersion"`
	RequestId  string     `json:"RequestId,omitempty"`
}

// CreateKeyVersion rotates a key: new encryptions use the new version.
func (c *Client) CreateKeyVersion(ctx context.Context, keyID string) (*CreateKeyVersionResponse, error) {
	return call[CreateKeyVersionResponse](ctx, c, "CreateKeyVersion", newPB().str("KeyId", keyID))
}

// ListKeyVersionsResponse is ListKeyVersions' result.
type ListKeyVersionsResponse struct {
	KeyVersions struct {
		KeyVersion []KeyVersion `json:"KeyVersion"`
	} `json:"KeyVersions"`
	PageNumber int    `json:"PageNumber,omitempty"`
	PageSize   int    `json:"PageSize,omitempty"`
	RequestId  string `json:"RequestId,omitempty"`
	TotalCount int    `json:"TotalCount"`
}

// ListKeyVersions lists a key's versions.
func (c *Client) ListKeyVersions(ctx context.Context, keyID string, page Page) (*ListKeyVersionsResponse, error) {
	return call[ListKeyVersionsResponse](ctx, c, "ListKeyVersions", newPB().str("KeyId", keyID).page(page))
}

// EncryptRequest holds Encrypt's parameters. Plaintext is the Base64 of the
// data; Decrypt returns it the same way.
type EncryptRequest struct {
	KeyId             string
	Plaintext         string
	EncryptionContext map[string]string
}

// CiphertextResponse is the result of Encrypt, ReEncrypt and
// GenerateDataKeyWithoutPlaintext.
type CiphertextResponse struct {
	CiphertextBlob string `json:"CiphertextBlob,omitempty"`
	KeyId          string `json:"KeyId,omitempty"`
	KeyVersionId   string `json:"KeyVersionId,omitempty"`
	RequestId      string `json:"RequestId,omitempty"`
}

// Encrypt encrypts up to 6 KiB under a key.
func (c *Client) Encrypt(ctx context.Context, r *EncryptRequest) (*CiphertextResponse, error) {
	p := newPB().str("KeyId", r.KeyId).str("Plaintext", r.Plaintext).
		js("EncryptionContext", r.EncryptionContext, len(r.EncryptionContext) == 0)
	return call[CiphertextResponse](ctx, c, "Encrypt", p)
}

// DecryptRequest holds Decrypt's parameters.
type DecryptRequest struct {
	CiphertextBlob    string
	EncryptionContext map[string]string
}

// PlaintextResponse is the result of Decrypt and GenerateDataKey. Its
// String method redacts Plaintext.
type PlaintextResponse struct {
	CiphertextBlob string `json:"CiphertextBlob,omitempty"`
	KeyId          string `json:"KeyId,omitempty"`
	KeyVersionId   string `json:"KeyVersionId,omitempty"`
	Plaintext      string `json:"Plaintext,omitempty"`
	RequestId      string `json:"RequestId,omitempty"`
}

func (r PlaintextResponse) String() string {
	return "{KeyId:" + r.KeyId + " KeyVersionId:" + r.KeyVersionId + " Plaintext:<redacted> RequestId:" + r.RequestId + "}"
}

// GoString keeps %#v from printing the plaintext.
func (r PlaintextResponse) GoString() string { return r.String() }

// Decrypt decrypts a ciphertext blob made by Encrypt or GenerateDataKey.
func (c *Client) Decrypt(ctx context.Context, r *DecryptRequest) (*PlaintextResponse, error) {
	p := newPB().str("CiphertextBlob", r.CiphertextBlob).
		js("EncryptionContext", r.EncryptionContext, len(r.EncryptionContext) == 0)
	return call[PlaintextResponse](ctx, c, "Decrypt", p)
}

// ReEncryptRequest holds ReEncrypt's parameters.
type ReEncryptRequest struct {
	CiphertextBlob               string
	DestinationKeyId             string
	SourceEncryptionContext      map[string]string
	DestinationEncryptionContext map[string]string
}

// ReEncrypt decrypts and re-encrypts under another key without revealing
// the plaintext to the caller.
func (c *Client) ReEncrypt(ctx context.Context, r *ReEncryptRequest) (*CiphertextResponse, error) {
	p := newPB().str("CiphertextBlob", r.CiphertextBlob).str("DestinationKeyId", r.DestinationKeyId).
		js("SourceEncryptionContext", r.SourceEncryptionContext, len(r.SourceEncryptionContext) == 0).
		js("DestinationEncryptionContext", r.DestinationEncryptionContext, len(r.DestinationEncryptionContext) == 0)
	return call[CiphertextResponse](ctx, c, "ReEncrypt", p)
}

// GenerateDataKeyRequest holds the parameters of GenerateDataKey and
// GenerateDataKeyWithoutPlaintext.
type GenerateDataKeyRequest struct {
	KeyId             string
	KeySpec           string // AES_256 (default) or AES_128
	NumberOfBytes     int
	EncryptionContext map[string]string
}

func (r *GenerateDataKeyRequest) params() *pb {
	return newPB().str("KeyId", r.KeyId).str("KeySpec", r.KeySpec).num("NumberOfBytes", r.NumberOfBytes).
		js("EncryptionContext", r.EncryptionContext, len(r.EncryptionContext) == 0)
}

// GenerateDataKey returns a fresh data key in plain (Base64) and wrapped
// under the key.
func (c *Client) GenerateDataKey(ctx context.Context, r *GenerateDataKeyRequest) (*PlaintextResponse, error) {
	return call[PlaintextResponse](ctx, c, "GenerateDataKey", r.params())
}

// GenerateDataKeyWithoutPlaintext returns a fresh data key wrapped under the
// key only.
func (c *Client) GenerateDataKeyWithoutPlaintext(ctx context.Context, r *GenerateDataKeyRequest) (*CiphertextResponse, error) {
	return call[CiphertextResponse](ctx, c, "GenerateDataKeyWithoutPlaintext", r.params())
}
