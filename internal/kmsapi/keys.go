package kmsapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/keyhold/keyhold/internal/errs"
)

// This package may not import internal/keys (see internal/deptest), so the
// value types of KeyService are unnamed struct types spelled exactly as the
// aliases in internal/keys: Go treats identical unnamed structs as one type,
// which lets *keys.Service implement KeyService directly.

// KeyMetadata is keys.KeyMetadata.
type KeyMetadata = struct {
	KeyID, Arn, KeyState, KeySpec, KeyUsage, Origin, ProtectionLevel string
	Description, Creator                                             string
	CreationDate, DeleteDate                                         time.Time
	PrimaryKeyVersion, AutomaticRotation                             string
	RotationInterval                                                 time.Duration
	LastRotationDate, NextRotationDate                               time.Time
}

// KeyVersionInfo is keys.KeyVersion.
type KeyVersionInfo = struct {
	KeyID, KeyVersionID string
	CreationDate        time.Time
}

// KeyAlias is keys.Alias.
type KeyAlias = struct {
	AliasName, AliasArn, KeyID string
}

// CreateKeyInput is keys.CreateKeyInput.
type CreateKeyInput = struct {
	Description, KeySpec, KeyUsage, Origin, ProtectionLevel string
	EnableAutomaticRotation                                 bool
	RotationInterval                                        time.Duration
	Creator                                                 string
}

// KeyService is what the key actions need from the domain; implemented by
// *keys.Service. KeyId arguments accept a key id, a key ARN, an alias name
// or an alias ARN. Plaintexts and data keys are raw bytes; Base64 is the
// wire's business.
type KeyService interface {
	CreateKey(ctx context.Context, account string, in CreateKeyInput) (KeyMetadata, error)
	DescribeKey(ctx context.Context, account, keyID string) (KeyMetadata, error)
	KeyARN(ctx context.Context, account, keyID string) (string, error)
	CiphertextKeyARN(account string, blob []byte) (string, error)
	ListKeys(ctx context.Context, account string, filters map[string][]string, pageNumber, pageSize int) ([]KeyMetadata, int, error)
	UpdateKeyDescription(ctx context.Context, account, keyID, description string) error
	EnableKey(ctx context.Context, account, keyID string) error
	DisableKey(ctx context.Context, account, keyID string) error
	ScheduleKeyDeletion(ctx context.Context, account, keyID string, pendingWindowInDays int) error
	CancelKeyDeletion(ctx context.Context, account, keyID string) error
	UpdateRotationPolicy(ctx context.Context, account, keyID string, enable bool, interval time.Duration) error

	CreateAlias(ctx context.Context, account, aliasName, keyID string) error
	UpdateAlias(ctx context.Context, account, aliasName, keyID string) error
	DeleteAlias(ctx context.Context, account, aliasName string) error
	ListAliases(ctx context.Context, account string, pageNumber, pageSize int) ([]KeyAlias, int, error)
	ListAliasesByKeyId(ctx context.Context, account, keyID string, pageNumber, pageSize int) ([]KeyAlias, int, error)

	CreateKeyVersion(ctx context.Context, account, keyID string) (KeyVersionInfo, error)
	ListKeyVersions(ctx context.Context, account, keyID string, pageNumber, pageSize int) ([]KeyVersionInfo, int, error)
	DescribeKeyVersion(ctx context.Context, account, keyID, versionID string) (KeyVersionInfo, error)

	Encrypt(ctx context.Context, account, keyID string, plaintext []byte, encryptionContext map[string]string) (blob []byte, outKeyID, keyVersionID string, err error)
	Decrypt(ctx context.Context, account string, blob []byte, encryptionContext map[string]string) (plaintext []byte, keyID, keyVersionID string, err error)
	ReEncrypt(ctx context.Context, account string, blob []byte, sourceContext map[string]string, destinationKeyID string, destinationContext map[string]string) (newBlob []byte, keyID, keyVersionID string, err error)
	GenerateDataKey(ctx context.Context, account, keyID, keySpec string, numberOfBytes int, encryptionContext map[string]string) (plaintext, blob []byte, outKeyID, keyVersionID string, err error)
	GenerateDataKeyWithoutPlaintext(ctx context.Context, account, keyID, keySpec string, numberOfBytes int, encryptionContext map[string]string) (blob []byte, outKeyID, keyVersionID string, err error)

	TagKey(ctx context.Context, account, keyID string, tags map[string]string) error
	ListKeyTags(ctx context.Context, account, keyID string) (map[string]string, error)
}

// Wire shapes, named after the SDK's response structs (kms-20160120/v3).

type keyMetadataBody struct {
	Arn               string `json:"Arn" xml:"Arn"`
	AutomaticRotation string `json:"AutomaticRotation" xml:"AutomaticRotation"`
	CreationDate      string `json:"CreationDate" xml:"CreationDate"`
	Creator           string `json:"Creator" xml:"Creator"`
	DeleteDate        string `json:"DeleteDate,omitempty" xml:"DeleteDate,omitempty"`
	Description       string `json:"Description" xml:"Description"`
	KeyId             string `json:"KeyId" xml:"KeyId"`
	KeySpec           string `json:"KeySpec" xml:"KeySpec"`
	KeyState          string `json:"KeyState" xml:"KeyState"`
	KeyUsage          string `json:"KeyUsage" xml:"KeyUsage"`
	LastRotationDate  string `json:"LastRotationDate,omitempty" xml:"LastRotationDate,omitempty"`
	NextRotationDate  string `json:"NextRotationDate,omitempty" xml:"NextRotationDate,omitempty"`
	Origin            string `json:"Origin" xml:"Origin"`
	PrimaryKeyVersion string `json:"PrimaryKeyVersion" xml:"PrimaryKeyVersion"`
	ProtectionLevel   string `json:"ProtectionLevel" xml:"ProtectionLevel"`
	RotationInterval  string `json:"RotationInterval,omitempty" xml:"RotationInterval,omitempty"`
}

type keyMetadataResponse struct {
	KeyMetadata keyMetadataBody `json:"KeyMetadata" xml:"KeyMetadata"`
}

type keyListItem struct {
	KeyArn string `json:"KeyArn" xml:"KeyArn"`
	KeyId  string `json:"KeyId" xml:"KeyId"`
}

type listKeysResponse struct {
	Keys struct {
		Key []keyListItem `json:"Key" xml:"Key"`
	} `json:"Keys" xml:"Keys"`
	PageNumber int `json:"PageNumber" xml:"PageNumber"`
	PageSize   int `json:"PageSize" xml:"PageSize"`
	TotalCount int `json:"TotalCount" xml:"TotalCount"`
}

type keyAliasItem struct {
	AliasArn  string `json:"AliasArn" xml:"AliasArn"`
	AliasName string `json:"AliasName" xml:"AliasName"`
	KeyId     string `json:"KeyId" xml:"KeyId"`
}

type listAliasesResponse struct {
	Aliases struct {
		Alias []keyAliasItem `json:"Alias" xml:"Alias"`
	} `json:"Aliases" xml:"Aliases"`
	PageNumber int `json:"PageNumber" xml:"PageNumber"`
	PageSize   int `json:"PageSize" xml:"PageSize"`
	TotalCount int `json:"TotalCount" xml:"TotalCount"`
}

type keyVersionItem struct {
	CreationDate string `json:"CreationDate" xml:"CreationDate"`
	KeyId        string `json:"KeyId" xml:"KeyId"`
	KeyVersionId string `json:"KeyVersionId" xml:"KeyVersionId"`
}

type keyVersionResponse struct {
	KeyVersion keyVersionItem `json:"KeyVersion" xml:"KeyVersion"`
}

type listKeyVersionsResponse struct {
	KeyVersions struct {
		KeyVersion []keyVersionItem `json:"KeyVersion" xml:"KeyVersion"`
	} `json:"KeyVersions" xml:"KeyVersions"`
	PageNumber int `json:"PageNumber" xml:"PageNumber"`
	PageSize   int `json:"PageSize" xml:"PageSize"`
	TotalCount int `json:"TotalCount" xml:"TotalCount"`
}

// ciphertextResponse serves Encrypt, ReEncrypt and
// GenerateDataKeyWithoutPlaintext.
type ciphertextResponse struct {
	CiphertextBlob string `json:"CiphertextBlob" xml:"CiphertextBlob"`
	KeyId          string `json:"KeyId" xml:"KeyId"`
	KeyVersionId   string `json:"KeyVersionId" xml:"KeyVersionId"`
}

// ciphertextOrError answers an action that returns a ciphertext.
func ciphertextOrError(blob []byte, keyID, keyVersionID string, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	return &ciphertextResponse{CiphertextBlob: base64.StdEncoding.EncodeToString(blob), KeyId: keyID, KeyVersionId: keyVersionID}, nil
}

type decryptResponse struct {
	KeyId        string `json:"KeyId" xml:"KeyId"`
	KeyVersionId string `json:"KeyVersionId" xml:"KeyVersionId"`
	Plaintext    string `json:"Plaintext" xml:"Plaintext"`
}

type generateDataKeyResponse struct {
	CiphertextBlob string `json:"CiphertextBlob" xml:"CiphertextBlob"`
	KeyId          string `json:"KeyId" xml:"KeyId"`
	KeyVersionId   string `json:"KeyVersionId" xml:"KeyVersionId"`
	Plaintext      string `json:"Plaintext" xml:"Plaintext"`
}

type keyTagItem struct {
	KeyId    string `json:"KeyId" xml:"KeyId"`
	TagKey   string `json:"TagKey" xml:"TagKey"`
	TagValue string `json:"TagValue" xml:"TagValue"`
}

type listResourceTagsResponse struct {
	Tags struct {
		Tag []keyTagItem `json:"Tag" xml:"Tag"`
	} `json:"Tags" xml:"Tags"`
}

type keyEmptyResponse struct{}

// KeyRoutes returns the routes of the key actions.
func KeyRoutes(svc KeyService) []Route {
	h := &keyHandlers{svc: svc}
	key := h.keyResource
	return []Route{
		{Version: VersionKMS, Action: "CreateKey", Handler: h.createKey},
		{Version: VersionKMS, Action: "DescribeKey", Handler: h.describeKey, Resource: key},
		{Version: VersionKMS, Action: "ListKeys", Handler: h.listKeys},
		{Version: VersionKMS, Action: "UpdateKeyDescription", Handler: h.updateKeyDescription, Resource: key},
		{Version: VersionKMS, Action: "EnableKey", Handler: h.enableKey, Resource: key},
		{Version: VersionKMS, Action: "DisableKey", Handler: h.disableKey, Resource: key},
		{Version: VersionKMS, Action: "ScheduleKeyDeletion", Handler: h.scheduleKeyDeletion, Resource: key},
		{Version: VersionKMS, Action: "CancelKeyDeletion", Handler: h.cancelKeyDeletion, Resource: key},
		{Version: VersionKMS, Action: "UpdateRotationPolicy", Handler: h.updateRotationPolicy, Resource: key},
		{Version: VersionKMS, Action: "CreateAlias", Handler: h.createAlias, Resource: key},
		{Version: VersionKMS, Action: "UpdateAlias", Handler: h.updateAlias, Resource: key},
		{Version: VersionKMS, Action: "DeleteAlias", Handler: h.deleteAlias, Resource: aliasResource},
		{Version: VersionKMS, Action: "ListAliases", Handler: h.listAliases},
		{Version: VersionKMS, Action: "ListAliasesByKeyId", Handler: h.listAliasesByKeyId, Resource: key},
		{Version: VersionKMS, Action: "CreateKeyVersion", Handler: h.createKeyVersion, Resource: key},
		{Version: VersionKMS, Action: "ListKeyVersions", Handler: h.listKeyVersions, Resource: key},
		{Version: VersionKMS, Action: "DescribeKeyVersion", Handler: h.describeKeyVersion, Resource: key},
		{Version: VersionKMS, Action: "Encrypt", Handler: h.encrypt, Resource: key},
		{Version: VersionKMS, Action: "Decrypt", Handler: h.decrypt, Resource: h.ciphertextResource},
		// ReEncrypt is authorized on the source key, whose plaintext it
		// unwraps; the destination key is only encrypted to.
		{Version: VersionKMS, Action: "ReEncrypt", Handler: h.reEncrypt, Resource: h.ciphertextResource},
		{Version: VersionKMS, Action: "GenerateDataKey", Handler: h.generateDataKey, Resource: key},
		{Version: VersionKMS, Action: "GenerateDataKeyWithoutPlaintext", Handler: h.generateDataKeyWithoutPlaintext, Resource: key},
		{Version: VersionKMS, Action: "ListResourceTags", Handler: h.listResourceTags, Resource: key},
	}
}

type keyHandlers struct {
	svc KeyService
}

// --- resources -------------------------------------------------------------------

// keyResource names the key of a KeyId parameter. Aliases are resolved so
// that policies written for key ARNs apply whichever name the caller uses;
// an unknown key gets an ARN built from the parameter, and the handler then
// reports it as not found.
func (h *keyHandlers) keyResource(r *Request) string {
	ref := r.Params.String("KeyId")
	if ref == "" {
		return ""
	}
	if arn, err := h.svc.KeyARN(context.Background(), r.Principal.Account, ref); err == nil {
		return arn
	}
	if strings.HasPrefix(ref, "acs:") {
		return ref
	}
	if strings.HasPrefix(ref, "alias/") {
		return "acs:kms:" + r.Region + ":" + r.Principal.Account + ":" + ref
	}
	return "acs:kms:" + r.Region + ":" + r.Principal.Account + ":key/" + ref
}

func aliasResource(r *Request) string {
	name := r.Params.String("AliasName")
	if name == "" || strings.HasPrefix(name, "acs:") {
		return name
	}
	return "acs:kms:" + r.Region + ":" + r.Principal.Account + ":" + name
}

// ciphertextResource names the key recorded in a CiphertextBlob.
func (h *keyHandlers) ciphertextResource(r *Request) string {
	blob, err := base64.StdEncoding.DecodeString(r.Params.String("CiphertextBlob"))
	if err != nil {
		return ""
	}
	arn, err := h.svc.CiphertextKeyARN(r.Principal.Account, blob)
	if err != nil {
		return ""
	}
	return arn
}

// --- parameter helpers --------------------------------------------------------------

// keyTime renders a time as the API does (ISO-8601 UTC); zero → "".
func keyTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04:05Z")
}

func keyMetadataOf(m KeyMetadata) keyMetadataBody {
	b := keyMetadataBody{
		Arn:               m.Arn,
		AutomaticRotation: m.AutomaticRotation,
		CreationDate:      keyTime(m.CreationDate),
		Creator:           m.Creator,
		DeleteDate:        keyTime(m.DeleteDate),
		Description:       m.Description,
		KeyId:             m.KeyID,
		KeySpec:           m.KeySpec,
		KeyState:          m.KeyState,
		KeyUsage:          m.KeyUsage,
		LastRotationDate:  keyTime(m.LastRotationDate),
		NextRotationDate:  keyTime(m.NextRotationDate),
		Origin:            m.Origin,
		PrimaryKeyVersion: m.PrimaryKeyVersion,
		ProtectionLevel:   m.ProtectionLevel,
	}
	if m.RotationInterval > 0 {
		b.RotationInterval = strconv.FormatInt(int64(m.RotationInterval/time.Second), 10) + "s"
	}
	return b
}

func keyVersionOf(v KeyVersionInfo) keyVersionItem {
	return keyVersionItem{CreationDate: keyTime(v.CreationDate), KeyId: v.KeyID, KeyVersionId: v.KeyVersionID}
}

// keyVersionOrError answers an action that returns one key version.
func keyVersionOrError(v KeyVersionInfo, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	return &keyVersionResponse{KeyVersion: keyVersionOf(v)}, nil
}

// keyPage reads PageNumber and PageSize (defaults 1 and 10; the service
// checks the ranges).
func keyPage(p Params) (number, size int, err error) {
	if number, err = p.Int("PageNumber", 1); err != nil {
		return 0, 0, err
	}
	if size, err = p.Int("PageSize", 10); err != nil {
		return 0, 0, err
	}
	if number < 1 {
		return 0, 0, errs.E(errs.KindInvalidParameter, "The PageNumber must be at least 1.")
	}
	if size < 1 || size > 100 {
		return 0, 0, errs.E(errs.KindInvalidParameter, "The PageSize must be between 1 and 100.")
	}
	return number, size, nil
}

// encryptionContext parses an EncryptionContext parameter: a JSON object
// whose values are strings (other JSON values are kept as their JSON text,
// as SDKs send map[string]any).
func encryptionContext(p Params, name string) (map[string]string, error) {
	raw := strings.TrimSpace(p.String(name))
	if raw == "" {
		return nil, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		return nil, errs.E(errs.KindInvalidParameter, "The parameter %s must be a JSON object.", name)
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		var s string
		if json.Unmarshal(v, &s) == nil {
			out[k] = s
			continue
		}
		out[k] = string(v)
	}
	return out, nil
}

func base64Param(p Params, name string) ([]byte, error) {
	raw, err := p.Required(name)
	if err != nil {
		return nil, err
	}
	b, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		return nil, errs.E(errs.KindInvalidParameter, "The parameter %s must be Base64-encoded.", name)
	}
	return b, nil
}

// rotationInterval parses "604800s", "7d", "168h" or "10080m".
func rotationInterval(v string) (time.Duration, error) {
	bad := errs.E(errs.KindInvalidParameter, "The RotationInterval must be a number of seconds like 604800s or days like 7d.")
	if v == "" {
		return 0, bad
	}
	unit := time.Second
	num := v
	switch v[len(v)-1] {
	case 's':
		num = v[:len(v)-1]
	case 'm':
		unit, num = time.Minute, v[:len(v)-1]
	case 'h':
		unit, num = time.Hour, v[:len(v)-1]
	case 'd':
		unit, num = 24*time.Hour, v[:len(v)-1]
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > int64(1000*24*time.Hour/unit) {
		return 0, bad
	}
	return time.Duration(n) * unit, nil
}

// createKeyTags parses CreateKey's Tags: [{"TagKey":"k","TagValue":"v"}].
func createKeyTags(raw string) (map[string]string, error) {
	var list []struct {
		TagKey   *string
		TagValue string
	}
	if err := json.Unmarshal([]byte(raw), &list); err != nil {
		return nil, errs.E(errs.KindInvalidParameter, "The parameter Tags must be a JSON array of {\"TagKey\",\"TagValue\"} objects.")
	}
	out := make(map[string]string, len(list))
	for _, t := range list {
		if t.TagKey == nil {
			return nil, errs.E(errs.KindInvalidParameter, "Every tag needs a TagKey.")
		}
		out[*t.TagKey] = t.TagValue
	}
	return out, nil
}

// --- handlers -------------------------------------------------------------------------

func (h *keyHandlers) createKey(ctx context.Context, r *Request) (any, error) {
	p := r.Params
	if p.String("DKMSInstanceId") != "" {
		return nil, errs.E(errs.KindUnsupported, "Dedicated KMS instances are not supported.")
	}
	if p.String("Policy") != "" {
		// Refused rather than ignored: a caller must not believe a key
		// policy protects the key when none is enforced.
		return nil, errs.E(errs.KindUnsupported, "Key policies are not supported; use RAM policies.")
	}
	in := CreateKeyInput{
		Description:     p.String("Description"),
		KeySpec:         p.String("KeySpec"),
		KeyUsage:        p.String("KeyUsage"),
		Origin:          p.String("Origin"),
		ProtectionLevel: p.String("ProtectionLevel"),
		Creator:         r.Principal.Account,
	}
	var err error
	if in.EnableAutomaticRotation, err = p.Bool("EnableAutomaticRotation", false); err != nil {
		return nil, err
	}
	if in.EnableAutomaticRotation {
		iv := p.String("RotationInterval")
		if iv == "" {
			iv = "365d" // the KMS default
		}
		if in.RotationInterval, err = rotationInterval(iv); err != nil {
			return nil, err
		}
	}
	var tags map[string]string
	if raw := p.String("Tags"); raw != "" {
		if tags, err = createKeyTags(raw); err != nil {
			return nil, err
		}
	}
	m, err := h.svc.CreateKey(ctx, r.Principal.Account, in)
	if err != nil {
		return nil, err
	}
	if len(tags) > 0 {
		// The key exists either way; a bad tag is reported and the caller
		// can retry with TagResource.
		if err := h.svc.TagKey(ctx, r.Principal.Account, m.KeyID, tags); err != nil {
			return nil, err
		}
	}
	return &keyMetadataResponse{KeyMetadata: keyMetadataOf(m)}, nil
}

func (h *keyHandlers) describeKey(ctx context.Context, r *Request) (any, error) {
	id, err := r.Params.Required("KeyId")
	if err != nil {
		return nil, err
	}
	m, err := h.svc.DescribeKey(ctx, r.Principal.Account, id)
	if err != nil {
		return nil, err
	}
	return &keyMetadataResponse{KeyMetadata: keyMetadataOf(m)}, nil
}

func (h *keyHandlers) listKeys(ctx context.Context, r *Request) (any, error) {
	number, size, err := keyPage(r.Params)
	if err != nil {
		return nil, err
	}
	var filters map[string][]string
	if raw := r.Params.String("Filters"); raw != "" {
		var list []struct {
			Key    string
			Values []string
		}
		if err := json.Unmarshal([]byte(raw), &list); err != nil {
			return nil, errs.E(errs.KindInvalidParameter, "The parameter Filters must be a JSON array of {\"Key\",\"Values\"} objects.")
		}
		filters = make(map[string][]string, len(list))
		for _, f := range list {
			filters[f.Key] = append(filters[f.Key], f.Values...)
		}
	}
	keys, total, err := h.svc.ListKeys(ctx, r.Principal.Account, filters, number, size)
	if err != nil {
		return nil, err
	}
	out := &listKeysResponse{PageNumber: number, PageSize: size, TotalCount: total}
	out.Keys.Key = make([]keyListItem, 0, len(keys))
	for _, k := range keys {
		out.Keys.Key = append(out.Keys.Key, keyListItem{KeyArn: k.Arn, KeyId: k.KeyID})
	}
	return out, nil
}

// keyAction runs a KeyId-only action with an empty response.
func (h *keyHandlers) keyAction(ctx context.Context, r *Request, fn func(ctx context.Context, account, keyID string) error) (any, error) {
	id, err := r.Params.Required("KeyId")
	if err != nil {
		return nil, err
	}
	if err := fn(ctx, r.Principal.Account, id); err != nil {
		return nil, err
	}
	return &keyEmptyResponse{}, nil
}

func (h *keyHandlers) updateKeyDescription(ctx context.Context, r *Request) (any, error) {
	desc, err := r.Params.Required("Description")
	if err != nil {
		return nil, err
	}
	return h.keyAction(ctx, r, func(ctx context.Context, account, keyID string) error {
		return h.svc.UpdateKeyDescription(ctx, account, keyID, desc)
	})
}

func (h *keyHandlers) enableKey(ctx context.Context, r *Request) (any, error) {
	return h.keyAction(ctx, r, h.svc.EnableKey)
}

func (h *keyHandlers) disableKey(ctx context.Context, r *Request) (any, error) {
	return h.keyAction(ctx, r, h.svc.DisableKey)
}

func (h *keyHandlers) cancelKeyDeletion(ctx context.Context, r *Request) (any, error) {
	return h.keyAction(ctx, r, h.svc.CancelKeyDeletion)
}

func (h *keyHandlers) scheduleKeyDeletion(ctx context.Context, r *Request) (any, error) {
	if _, err := r.Params.Required("PendingWindowInDays"); err != nil {
		return nil, err
	}
	days, err := r.Params.Int("PendingWindowInDays", 0)
	if err != nil {
		return nil, err
	}
	return h.keyAction(ctx, r, func(ctx context.Context, account, keyID string) error {
		return h.svc.ScheduleKeyDeletion(ctx, account, keyID, days)
	})
}

func (h *keyHandlers) updateRotationPolicy(ctx context.Context, r *Request) (any, error) {
	if _, err := r.Params.Required("EnableAutomaticRotation"); err != nil {
		return nil, err
	}
	enable, err := r.Params.Bool("EnableAutomaticRotation", false)
	if err != nil {
		return nil, err
	}
	var interval time.Duration
	if enable {
		iv, err := r.Params.Required("RotationInterval")
		if err != nil {
			return nil, err
		}
		if interval, err = rotationInterval(iv); err != nil {
			return nil, err
		}
	}
	return h.keyAction(ctx, r, func(ctx context.Context, account, keyID string) error {
		return h.svc.UpdateRotationPolicy(ctx, account, keyID, enable, interval)
	})
}

func (h *keyHandlers) createAlias(ctx context.Context, r *Request) (any, error) {
	name, err := r.Params.Required("AliasName")
	if err != nil {
		return nil, err
	}
	return h.keyAction(ctx, r, func(ctx context.Context, account, keyID string) error {
		return h.svc.CreateAlias(ctx, account, name, keyID)
	})
}

func (h *keyHandlers) updateAlias(ctx context.Context, r *Request) (any, error) {
	name, err := r.Params.Required("AliasName")
	if err != nil {
		return nil, err
	}
	return h.keyAction(ctx, r, func(ctx context.Context, account, keyID string) error {
		return h.svc.UpdateAlias(ctx, account, name, keyID)
	})
}

func (h *keyHandlers) deleteAlias(ctx context.Context, r *Request) (any, error) {
	name, err := r.Params.Required("AliasName")
	if err != nil {
		return nil, err
	}
	if err := h.svc.DeleteAlias(ctx, r.Principal.Account, name); err != nil {
		return nil, err
	}
	return &keyEmptyResponse{}, nil
}

// keyPaged runs a paged list action: it reads the page, calls list and
// renders the page with respond.
func keyPaged[T any](ctx context.Context, r *Request,
	list func(ctx context.Context, account string, number, size int) ([]T, int, error),
	respond func(items []T, total, number, size int) any) (any, error) {
	number, size, err := keyPage(r.Params)
	if err != nil {
		return nil, err
	}
	items, total, err := list(ctx, r.Principal.Account, number, size)
	if err != nil {
		return nil, err
	}
	return respond(items, total, number, size), nil
}

func aliasesResponse(list []KeyAlias, total, number, size int) any {
	out := &listAliasesResponse{PageNumber: number, PageSize: size, TotalCount: total}
	out.Aliases.Alias = make([]keyAliasItem, 0, len(list))
	for _, a := range list {
		out.Aliases.Alias = append(out.Aliases.Alias, keyAliasItem{AliasArn: a.AliasArn, AliasName: a.AliasName, KeyId: a.KeyID})
	}
	return out
}

func (h *keyHandlers) listAliases(ctx context.Context, r *Request) (any, error) {
	return keyPaged(ctx, r, h.svc.ListAliases, aliasesResponse)
}

func (h *keyHandlers) listAliasesByKeyId(ctx context.Context, r *Request) (any, error) {
	id, err := r.Params.Required("KeyId")
	if err != nil {
		return nil, err
	}
	return keyPaged(ctx, r, func(ctx context.Context, account string, number, size int) ([]KeyAlias, int, error) {
		return h.svc.ListAliasesByKeyId(ctx, account, id, number, size)
	}, aliasesResponse)
}

func (h *keyHandlers) createKeyVersion(ctx context.Context, r *Request) (any, error) {
	id, err := r.Params.Required("KeyId")
	if err != nil {
		return nil, err
	}
	return keyVersionOrError(h.svc.CreateKeyVersion(ctx, r.Principal.Account, id))
}

func (h *keyHandlers) listKeyVersions(ctx context.Context, r *Request) (any, error) {
	id, err := r.Params.Required("KeyId")
	if err != nil {
		return nil, err
	}
	return keyPaged(ctx, r, func(ctx context.Context, account string, number, size int) ([]KeyVersionInfo, int, error) {
		return h.svc.ListKeyVersions(ctx, account, id, number, size)
	}, func(list []KeyVersionInfo, total, number, size int) any {
		out := &listKeyVersionsResponse{PageNumber: number, PageSize: size, TotalCount: total}
		out.KeyVersions.KeyVersion = make([]keyVersionItem, 0, len(list))
		for _, v := range list {
			out.KeyVersions.KeyVersion = append(out.KeyVersions.KeyVersion, keyVersionOf(v))
		}
		return out
	})
}

func (h *keyHandlers) describeKeyVersion(ctx context.Context, r *Request) (any, error) {
	id, err := r.Params.Required("KeyId")
	if err != nil {
		return nil, err
	}
	vid, err := r.Params.Required("KeyVersionId")
	if err != nil {
		return nil, err
	}
	return keyVersionOrError(h.svc.DescribeKeyVersion(ctx, r.Principal.Account, id, vid))
}

func (h *keyHandlers) encrypt(ctx context.Context, r *Request) (any, error) {
	id, err := r.Params.Required("KeyId")
	if err != nil {
		return nil, err
	}
	pt, err := base64Param(r.Params, "Plaintext")
	if err != nil {
		return nil, err
	}
	defer clear(pt)
	ec, err := encryptionContext(r.Params, "EncryptionContext")
	if err != nil {
		return nil, err
	}
	return ciphertextOrError(h.svc.Encrypt(ctx, r.Principal.Account, id, pt, ec))
}

func (h *keyHandlers) decrypt(ctx context.Context, r *Request) (any, error) {
	blob, err := base64Param(r.Params, "CiphertextBlob")
	if err != nil {
		return nil, err
	}
	ec, err := encryptionContext(r.Params, "EncryptionContext")
	if err != nil {
		return nil, err
	}
	pt, keyID, vid, err := h.svc.Decrypt(ctx, r.Principal.Account, blob, ec)
	if err != nil {
		return nil, err
	}
	defer clear(pt)
	return &decryptResponse{KeyId: keyID, KeyVersionId: vid, Plaintext: base64.StdEncoding.EncodeToString(pt)}, nil
}

func (h *keyHandlers) reEncrypt(ctx context.Context, r *Request) (any, error) {
	p := r.Params
	if alg := p.String("SourceEncryptionAlgorithm"); alg != "" {
		return nil, errs.E(errs.KindUnsupported, "Asymmetric source keys are not supported.")
	}
	blob, err := base64Param(p, "CiphertextBlob")
	if err != nil {
		return nil, err
	}
	dst, err := p.Required("DestinationKeyId")
	if err != nil {
		return nil, err
	}
	src, err := encryptionContext(p, "SourceEncryptionContext")
	if err != nil {
		return nil, err
	}
	dstCtx, err := encryptionContext(p, "DestinationEncryptionContext")
	if err != nil {
		return nil, err
	}
	return ciphertextOrError(h.svc.ReEncrypt(ctx, r.Principal.Account, blob, src, dst, dstCtx))
}

// dataKeyParams reads GenerateDataKey's KeyId, KeySpec, NumberOfBytes and
// EncryptionContext.
func dataKeyParams(p Params) (id, spec string, n int, ec map[string]string, err error) {
	if id, err = p.Required("KeyId"); err != nil {
		return
	}
	spec = p.String("KeySpec")
	if n, err = p.Int("NumberOfBytes", 0); err != nil {
		return
	}
	if p.Has("NumberOfBytes") && p.String("NumberOfBytes") != "" && (n < 1 || n > 1024) {
		err = errs.E(errs.KindInvalidParameter, "The NumberOfBytes must be between 1 and 1024.")
		return
	}
	ec, err = encryptionContext(p, "EncryptionContext")
	return
}

func (h *keyHandlers) generateDataKey(ctx context.Context, r *Request) (any, error) {
	id, spec, n, ec, err := dataKeyParams(r.Params)
	if err != nil {
		return nil, err
	}
	pt, blob, keyID, vid, err := h.svc.GenerateDataKey(ctx, r.Principal.Account, id, spec, n, ec)
	if err != nil {
		return nil, err
	}
	defer clear(pt)
	return &generateDataKeyResponse{
		CiphertextBlob: base64.StdEncoding.EncodeToString(blob),
		KeyId:          keyID,
		KeyVersionId:   vid,
		Plaintext:      base64.StdEncoding.EncodeToString(pt),
	}, nil
}

func (h *keyHandlers) generateDataKeyWithoutPlaintext(ctx context.Context, r *Request) (any, error) {
	id, spec, n, ec, err := dataKeyParams(r.Params)
	if err != nil {
		return nil, err
	}
	return ciphertextOrError(h.svc.GenerateDataKeyWithoutPlaintext(ctx, r.Principal.Account, id, spec, n, ec))
}

func (h *keyHandlers) listResourceTags(ctx context.Context, r *Request) (any, error) {
	id, err := r.Params.Required("KeyId")
	if err != nil {
		return nil, err
	}
	m, err := h.svc.DescribeKey(ctx, r.Principal.Account, id)
	if err != nil {
		return nil, err
	}
	tags, err := h.svc.ListKeyTags(ctx, r.Principal.Account, m.KeyID)
	if err != nil {
		return nil, err
	}
	out := &listResourceTagsResponse{}
	out.Tags.Tag = make([]keyTagItem, 0, len(tags))
	for k, v := range tags {
		out.Tags.Tag = append(out.Tags.Tag, keyTagItem{KeyId: m.KeyID, TagKey: k, TagValue: v})
	}
	sort.Slice(out.Tags.Tag, func(i, j int) bool { return out.Tags.Tag[i].TagKey < out.Tags.Tag[j].TagKey })
	return out, nil
}
