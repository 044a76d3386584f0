package kmsapi

import (
	"context"
	"encoding/json"
	"sort"
	"strconv"
	"strings"

	"github.com/keyhold/keyhold/internal/errs"
	"github.com/keyhold/keyhold/internal/policy"
	"github.com/keyhold/keyhold/internal/secrets"
)

// SecretService is what the secret actions need from the domain; it is
// implemented by *secrets.Service.
type SecretService interface {
	CreateSecret(ctx context.Context, account string, in secrets.CreateInput) (*secrets.Secret, error)
	GetSecretValue(ctx context.Context, account string, in secrets.GetValueInput) (*secrets.SecretValue, error)
	PutSecretValue(ctx context.Context, account string, in secrets.PutValueInput) (*secrets.Version, error)
	ListSecrets(ctx context.Context, account string, filters []secrets.Filter, pageNumber, pageSize int) ([]*secrets.Secret, int, error)
	AllSecrets(ctx context.Context, account string) ([]*secrets.Secret, error)
	DescribeSecret(ctx context.Context, account, name string) (*secrets.Secret, error)
	UpdateSecret(ctx context.Context, account, name string, description, customData *string) (*secrets.Secret, error)
	UpdateSecretVersionStage(ctx context.Context, account, name, stage, removeFrom, moveTo string) error
	ListSecretVersionIds(ctx context.Context, account, name string, includeDeprecated bool, pageNumber, pageSize int) (*secrets.Secret, []secrets.Version, int, error)
	DeleteSecret(ctx context.Context, account, name string, recoveryDays int, force bool) (*secrets.Secret, error)
	RestoreSecret(ctx context.Context, account, name string) (*secrets.Secret, error)
	UpdateSecretRotationPolicy(ctx context.Context, account, name string, enable bool, interval string) (*secrets.Secret, error)
	RotateSecret(ctx context.Context, account, name, versionID string) (*secrets.Secret, error)
	RotateSecretWithValue(ctx context.Context, account, name, versionID string, value []byte) (*secrets.Secret, error)
	GetSecretPolicy(ctx context.Context, account, name, policyName string) (string, error)
	SetSecretPolicy(ctx context.Context, account, name, policyName, policy string) error
	TagSecrets(ctx context.Context, account string, names []string, tags []secrets.Tag) error
	UntagSecrets(ctx context.Context, account string, names []string, keys []string, all bool) error
}

var _ SecretService = (*secrets.Service)(nil)

// KeyTagger is what the tag actions need for keys (ResourceType key, or
// KeyId instead of SecretName); implemented by *keys.Service. Tags are a map
// from key to value. The handlers check each tag's form (length, reserved
// prefixes) before calling; the implementation enforces the per-key limit
// of 20 tags and reports an unknown key as errs.KindKeyNotFound.
type KeyTagger interface {
	TagKey(ctx context.Context, account, keyID string, tags map[string]string) error
	UntagKey(ctx context.Context, account, keyID string, tagKeys []string) error
	ListKeyTags(ctx context.Context, account, keyID string) (map[string]string, error)
}

// Wire shapes. Field names and string/number kinds follow the SDK's
// response structs; the dispatcher adds RequestId.

type secVersionStages struct {
	VersionStage []string `json:"VersionStage" xml:"VersionStage"`
}

type secTag struct {
	TagKey   string `json:"TagKey" xml:"TagKey"`
	TagValue string `json:"TagValue" xml:"TagValue"`
}

type secTags struct {
	Tag []secTag `json:"Tag" xml:"Tag"`
}

type createSecretResponse struct {
	Arn               string `json:"Arn" xml:"Arn"`
	VersionId         string `json:"VersionId" xml:"VersionId"`
	SecretName        string `json:"SecretName" xml:"SecretName"`
	SecretType        string `json:"SecretType" xml:"SecretType"`
	AutomaticRotation string `json:"AutomaticRotation" xml:"AutomaticRotation"`
	RotationInterval  string `json:"RotationInterval,omitempty" xml:"RotationInterval,omitempty"`
	NextRotationDate  string `json:"NextRotationDate,omitempty" xml:"NextRotationDate,omitempty"`
	ExtendedConfig    string `json:"ExtendedConfig,omitempty" xml:"ExtendedConfig,omitempty"`
}

type getSecretValueResponse struct {
	SecretName        string           `json:"SecretName" xml:"SecretName"`
	SecretType        string           `json:"SecretType" xml:"SecretType"`
	SecretData        string           `json:"SecretData" xml:"SecretData"`
	SecretDataType    string           `json:"SecretDataType" xml:"SecretDataType"`
	VersionId         string           `json:"VersionId" xml:"VersionId"`
	VersionStages     secVersionStages `json:"VersionStages" xml:"VersionStages"`
	CreateTime        string           `json:"CreateTime" xml:"CreateTime"`
	AutomaticRotation string           `json:"AutomaticRotation" xml:"AutomaticRotation"`
	RotationInterval  string           `json:"RotationInterval,omitempty" xml:"RotationInterval,omitempty"`
	NextRotationDate  string           `json:"NextRotationDate,omitempty" xml:"NextRotationDate,omitempty"`
	LastRotationDate  string           `json:"LastRotationDate,omitempty" xml:"LastRotationDate,omitempty"`
	ExtendedConfig    string           `json:"ExtendedConfig,omitempty" xml:"ExtendedConfig,omitempty"`
}

type putSecretValueResponse struct {
	SecretName    string           `json:"SecretName" xml:"SecretName"`
	VersionId     string           `json:"VersionId" xml:"VersionId"`
	VersionStages secVersionStages `json:"VersionStages" xml:"VersionStages"`
}

type secretListItem struct {
	SecretName        string   `json:"SecretName" xml:"SecretName"`
	SecretType        string   `json:"SecretType" xml:"SecretType"`
	CreateTime        string   `json:"CreateTime" xml:"CreateTime"`
	UpdateTime        string   `json:"UpdateTime" xml:"UpdateTime"`
	PlannedDeleteTime string   `json:"PlannedDeleteTime,omitempty" xml:"PlannedDeleteTime,omitempty"`
	Tags              *secTags `json:"Tags,omitempty" xml:"Tags,omitempty"`
}

type listSecretsResponse struct {
	PageNumber int `json:"PageNumber" xml:"PageNumber"`
	PageSize   int `json:"PageSize" xml:"PageSize"`
	TotalCount int `json:"TotalCount" xml:"TotalCount"`
	SecretList struct {
		Secret []secretListItem `json:"Secret" xml:"Secret"`
	} `json:"SecretList" xml:"SecretList"`
}

type describeSecretResponse struct {
	SecretName        string   `json:"SecretName" xml:"SecretName"`
	Arn               string   `json:"Arn" xml:"Arn"`
	SecretType        string   `json:"SecretType" xml:"SecretType"`
	Description       string   `json:"Description" xml:"Description"`
	EncryptionKeyId   string   `json:"EncryptionKeyId" xml:"EncryptionKeyId"`
	CreateTime        string   `json:"CreateTime" xml:"CreateTime"`
	UpdateTime        string   `json:"UpdateTime" xml:"UpdateTime"`
	PlannedDeleteTime string   `json:"PlannedDeleteTime,omitempty" xml:"PlannedDeleteTime,omitempty"`
	AutomaticRotation string   `json:"AutomaticRotation" xml:"AutomaticRotation"`
	RotationInterval  string   `json:"RotationInterval,omitempty" xml:"RotationInterval,omitempty"`
	NextRotationDate  string   `json:"NextRotationDate,omitempty" xml:"NextRotationDate,omitempty"`
	LastRotationDate  string   `json:"LastRotationDate,omitempty" xml:"LastRotationDate,omitempty"`
	ExtendedConfig    string   `json:"ExtendedConfig,omitempty" xml:"ExtendedConfig,omitempty"`
	Tags              *secTags `json:"Tags,omitempty" xml:"Tags,omitempty"`
}

type secretNameResponse struct {
	SecretName string `json:"SecretName" xml:"SecretName"`
}

type deleteSecretResponse struct {
	SecretName        string `json:"SecretName" xml:"SecretName"`
	PlannedDeleteTime string `json:"PlannedDeleteTime" xml:"PlannedDeleteTime"`
}

type secretVersionItem struct {
	VersionId     string           `json:"VersionId" xml:"VersionId"`
	CreateTime    string           `json:"CreateTime" xml:"CreateTime"`
	VersionStages secVersionStages `json:"VersionStages" xml:"VersionStages"`
}

type listSecretVersionIdsResponse struct {
	SecretName string `json:"SecretName" xml:"SecretName"`
	PageNumber int    `json:"PageNumber" xml:"PageNumber"`
	PageSize   int    `json:"PageSize" xml:"PageSize"`
	TotalCount int    `json:"TotalCount" xml:"TotalCount"`
	VersionIds struct {
		VersionId []secretVersionItem `json:"VersionId" xml:"VersionId"`
	} `json:"VersionIds" xml:"VersionIds"`
}

type rotateSecretResponse struct {
	Arn        string `json:"Arn" xml:"Arn"`
	VersionId  string `json:"VersionId" xml:"VersionId"`
	SecretName string `json:"SecretName" xml:"SecretName"`
}

type getRandomPasswordResponse struct {
	RandomPassword string `json:"RandomPassword" xml:"RandomPassword"`
}

type getSecretPolicyResponse struct {
	Policy string `json:"Policy" xml:"Policy"`
}

type emptyResponse struct{}

// emptyOrError answers an action whose response has no fields.
func emptyOrError(err error) (any, error) {
	if err != nil {
		return nil, err
	}
	return &emptyResponse{}, nil
}

// secretNameOrError answers an action whose response names the secret.
func secretNameOrError(sec *secrets.Secret, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	return &secretNameResponse{SecretName: sec.Name}, nil
}

type tagResourceItem struct {
	ResourceId   string `json:"ResourceId" xml:"ResourceId"`
	ResourceType string `json:"ResourceType" xml:"ResourceType"`
	TagKey       string `json:"TagKey" xml:"TagKey"`
	TagValue     string `json:"TagValue" xml:"TagValue"`
}

type listTagResourcesResponse struct {
	NextToken    string `json:"NextToken,omitempty" xml:"NextToken,omitempty"`
	TagResources struct {
		TagResource []tagResourceItem `json:"TagResource" xml:"TagResource"`
	} `json:"TagResources" xml:"TagResources"`
}

type describeRegionsResponse struct {
	Regions struct {
		Region []regionItem `json:"Region" xml:"Region"`
	} `json:"Regions" xml:"Regions"`
}

type regionItem struct {
	RegionId string `json:"RegionId" xml:"RegionId"`
}

// SecretRoutes returns the routes of the secret actions, the tag actions
// (secrets and keys) and DescribeRegions. keyTags may be nil until keys are
// wired; key tag requests then fail cleanly.
func SecretRoutes(svc SecretService, keyTags KeyTagger) []Route {
	h := &secretHandlers{svc: svc, keys: keyTags}
	secret := secretResource
	return []Route{
		{Version: VersionKMS, Action: "CreateSecret", Handler: h.createSecret, Resource: secret},
		{Version: VersionKMS, Action: "GetSecretValue", Handler: h.getSecretValue, Resource: secret},
		{Version: VersionKMS, Action: "PutSecretValue", Handler: h.putSecretValue, Resource: secret},
		{Version: VersionKMS, Action: "ListSecrets", Handler: h.listSecrets, Resource: secretContainer},
		{Version: VersionKMS, Action: "DescribeSecret", Handler: h.describeSecret, Resource: secret},
		{Version: VersionKMS, Action: "UpdateSecret", Handler: h.updateSecret, Resource: secret},
		{Version: VersionKMS, Action: "UpdateSecretVersionStage", Handler: h.updateSecretVersionStage, Resource: secret},
		{Version: VersionKMS, Action: "ListSecretVersionIds", Handler: h.listSecretVersionIds, Resource: secret},
		{Version: VersionKMS, Action: "DeleteSecret", Handler: h.deleteSecret, Resource: secret},
		{Version: VersionKMS, Action: "RestoreSecret", Handler: h.restoreSecret, Resource: secret},
		{Version: VersionKMS, Action: "UpdateSecretRotationPolicy", Handler: h.updateSecretRotationPolicy, Resource: secret},
		{Version: VersionKMS, Action: "RotateSecret", Handler: h.rotateSecret, Resource: secret},
		{Version: VersionKMS, Action: "GetRandomPassword", Handler: h.getRandomPassword},
		{Version: VersionKMS, Action: "GetSecretPolicy", Handler: h.getSecretPolicy, Resource: secret},
		{Version: VersionKMS, Action: "SetSecretPolicy", Handler: h.setSecretPolicy, Resource: secret},
		{Version: VersionKMS, Action: "TagResource", Handler: h.tagResource, Resource: singleTagResource},
		{Version: VersionKMS, Action: "UntagResource", Handler: h.untagResource, Resource: singleTagResource},
		{Version: VersionKMS, Action: "TagResources", Handler: h.tagResources, Resource: batchTagResource},
		{Version: VersionKMS, Action: "UntagResources", Handler: h.untagResources, Resource: batchTagResource},
		{Version: VersionKMS, Action: "ListTagResources", Handler: h.listTagResources, Resource: batchTagResource},
		{Version: VersionKMS, Action: "DescribeRegions", Handler: describeRegions},
	}
}

// secretARN returns the ARN for a SecretName parameter, which may already
// be an ARN.
func secretARN(r *Request, name string) string {
	if name == "" {
		return ""
	}
	if strings.HasPrefix(name, "acs:") {
		return name
	}
	return "acs:kms:" + r.Region + ":" + r.Principal.Account + ":secret/" + name
}

func keyARN(r *Request, keyID string) string {
	if strings.HasPrefix(keyID, "acs:") {
		return keyID
	}
	return "acs:kms:" + r.Region + ":" + r.Principal.Account + ":key/" + keyID
}

func secretResource(r *Request) string { return secretARN(r, r.Params.String("SecretName")) }

// secretContainer is what ListSecrets is authorized against: the
// account's secrets as a whole.
func secretContainer(r *Request) string {
	return "acs:kms:" + r.Region + ":" + r.Principal.Account + ":secret"
}

// secretOwner is the account whose secret a SecretName names: the account
// in its ARN (acs:kms:<region>:<account>:secret/<name>) for a caller of
// another account, whom the Authorizer has already let through on that
// secret's policy; else the caller's own. Only the actions a secret policy
// can grant across accounts (Describe*, List*, GetSecretValue) use it;
// every other handler acts in the caller's account only.
func secretOwner(r *Request, nameOrARN string) string {
	if rest, ok := strings.CutPrefix(nameOrARN, "acs:kms:"); ok {
		if parts := strings.SplitN(rest, ":", 3); len(parts) == 3 && parts[1] != "" && strings.HasPrefix(parts[2], "secret/") {
			return parts[1]
		}
	}
	return r.Principal.Account
}

// checkSecretPolicy validates a secret (resource) policy with the policy
// language's parser, whose message names the problem.
func checkSecretPolicy(doc string) error {
	if doc == "" {
		return nil
	}
	_, err := policy.ParseResource(doc)
	return err
}

func singleTagResource(r *Request) string {
	if k := r.Params.String("KeyId"); k != "" {
		return keyARN(r, k)
	}
	return secretResource(r)
}

// batchTagResource names the one resource of a batch call; several
// resources are authorized as "*".
func batchTagResource(r *Request) string {
	ids := r.Params.List("ResourceId")
	if len(ids) != 1 {
		return ""
	}
	if strings.EqualFold(r.Params.String("ResourceType"), "key") {
		return keyARN(r, ids[0])
	}
	return secretARN(r, ids[0])
}

type secretHandlers struct {
	svc  SecretService
	keys KeyTagger
}

func toSecTags(ts []secrets.Tag) *secTags {
	out := &secTags{Tag: make([]secTag, 0, len(ts))}
	for _, t := range ts {
		out.Tag = append(out.Tag, secTag{TagKey: t.Key, TagValue: t.Value})
	}
	return out
}

func stagesOf(v secrets.Version) secVersionStages {
	st := append([]string{}, v.Stages...)
	sort.Strings(st)
	return secVersionStages{VersionStage: st}
}

func (h *secretHandlers) createSecret(ctx context.Context, r *Request) (any, error) {
	p := r.Params
	name, err := p.Required("SecretName")
	if err != nil {
		return nil, err
	}
	data, err := p.Required("SecretData")
	if err != nil {
		return nil, err
	}
	versionID, err := p.Required("VersionId")
	if err != nil {
		return nil, err
	}
	enable, err := p.Bool("EnableAutomaticRotation", false)
	if err != nil {
		return nil, err
	}
	tags, err := secrets.ParseTags(p.String("Tags"))
	if err != nil {
		return nil, err
	}
	if err := checkSecretPolicy(p.String("Policy")); err != nil {
		return nil, err
	}
	sec, err := h.svc.CreateSecret(ctx, r.Principal.Account, secrets.CreateInput{
		Name: name, VersionID: versionID, Data: data, DataType: p.String("SecretDataType"),
		Type: p.String("SecretType"), EncryptionKeyID: p.String("EncryptionKeyId"),
		Description: p.String("Description"), Tags: tags, ExtendedConfig: p.String("ExtendedConfig"),
		EnableAutomaticRotation: enable, RotationInterval: p.String("RotationInterval"),
		Policy: p.String("Policy"),
	})
	if err != nil {
		return nil, err
	}
	return &createSecretResponse{
		Arn: sec.Arn, VersionId: versionID, SecretName: sec.Name, SecretType: sec.Type,
		AutomaticRotation: sec.AutomaticRotation(), RotationInterval: sec.RotationIntervalString(),
		NextRotationDate: secrets.FormatTime(sec.Rotation.NextRotation), ExtendedConfig: sec.ExtendedConfig,
	}, nil
}

func (h *secretHandlers) getSecretValue(ctx context.Context, r *Request) (any, error) {
	p := r.Params
	name, err := p.Required("SecretName")
	if err != nil {
		return nil, err
	}
	fetchCfg, err := p.Bool("FetchExtendedConfig", false)
	if err != nil {
		return nil, err
	}
	v, err := h.svc.GetSecretValue(ctx, secretOwner(r, name), secrets.GetValueInput{
		Name: name, VersionID: p.String("VersionId"), VersionStage: p.String("VersionStage"),
	})
	if err != nil {
		return nil, err
	}
	sec := v.Secret
	out := &getSecretValueResponse{
		SecretName: sec.Name, SecretType: sec.Type, SecretData: v.Data, SecretDataType: v.Version.DataType,
		VersionId: v.Version.ID, VersionStages: stagesOf(v.Version),
		CreateTime:        secrets.FormatTime(v.Version.CreateTime),
		AutomaticRotation: sec.AutomaticRotation(), RotationInterval: sec.RotationIntervalString(),
		NextRotationDate: secrets.FormatTime(sec.Rotation.NextRotation),
		LastRotationDate: secrets.FormatTime(sec.Rotation.LastRotation),
	}
	if fetchCfg {
		out.ExtendedConfig = sec.ExtendedConfig
	}
	return out, nil
}

func (h *secretHandlers) putSecretValue(ctx context.Context, r *Request) (any, error) {
	p := r.Params
	name, err := p.Required("SecretName")
	if err != nil {
		return nil, err
	}
	versionID, err := p.Required("VersionId")
	if err != nil {
		return nil, err
	}
	data, err := p.Required("SecretData")
	if err != nil {
		return nil, err
	}
	stages, err := secrets.ParseVersionStages(p.String("VersionStages"))
	if err != nil {
		return nil, err
	}
	v, err := h.svc.PutSecretValue(ctx, r.Principal.Account, secrets.PutValueInput{
		Name: name, VersionID: versionID, Data: data, DataType: p.String("SecretDataType"), Stages: stages,
	})
	if err != nil {
		return nil, err
	}
	return &putSecretValueResponse{SecretName: secretNameOf(name), VersionId: v.ID, VersionStages: stagesOf(*v)}, nil
}

// secretNameOf strips an ARN down to the secret name for responses.
func secretNameOf(nameOrARN string) string {
	if strings.HasPrefix(nameOrARN, "acs:") {
		if _, after, ok := strings.Cut(nameOrARN, ":secret/"); ok {
			return after
		}
	}
	return nameOrARN
}

// secretPage parses PageNumber (default 1) and PageSize (default 10).
func secretPage(p Params) (int, int, error) {
	number, err := p.Int("PageNumber", 1)
	if err != nil {
		return 0, 0, err
	}
	size, err := p.Int("PageSize", 10)
	if err != nil {
		return 0, 0, err
	}
	return number, size, secrets.CheckPage(number, size)
}

func (h *secretHandlers) listSecrets(ctx context.Context, r *Request) (any, error) {
	p := r.Params
	number, size, err := secretPage(p)
	if err != nil {
		return nil, err
	}
	fetchTags, err := p.Bool("FetchTags", false)
	if err != nil {
		return nil, err
	}
	filters, err := secrets.ParseFilters(p.String("Filters"))
	if err != nil {
		return nil, err
	}
	list, total, err := h.svc.ListSecrets(ctx, r.Principal.Account, filters, number, size)
	if err != nil {
		return nil, err
	}
	out := &listSecretsResponse{PageNumber: number, PageSize: size, TotalCount: total}
	out.SecretList.Secret = make([]secretListItem, 0, len(list))
	for _, sec := range list {
		item := secretListItem{
			SecretName: sec.Name, SecretType: sec.Type,
			CreateTime: secrets.FormatTime(sec.CreateTime), UpdateTime: secrets.FormatTime(sec.UpdateTime),
			PlannedDeleteTime: secrets.FormatTime(sec.PlannedDeleteTime),
		}
		if fetchTags {
			item.Tags = toSecTags(sec.Tags)
		}
		out.SecretList.Secret = append(out.SecretList.Secret, item)
	}
	return out, nil
}

func (h *secretHandlers) describeSecret(ctx context.Context, r *Request) (any, error) {
	p := r.Params
	name, err := p.Required("SecretName")
	if err != nil {
		return nil, err
	}
	fetchTags, err := p.Bool("FetchTags", false)
	if err != nil {
		return nil, err
	}
	sec, err := h.svc.DescribeSecret(ctx, secretOwner(r, name), name)
	if err != nil {
		return nil, err
	}
	out := &describeSecretResponse{
		SecretName: sec.Name, Arn: sec.Arn, SecretType: sec.Type, Description: sec.Description,
		EncryptionKeyId: sec.EncryptionKeyID,
		CreateTime:      secrets.FormatTime(sec.CreateTime), UpdateTime: secrets.FormatTime(sec.UpdateTime),
		PlannedDeleteTime: secrets.FormatTime(sec.PlannedDeleteTime),
		AutomaticRotation: sec.AutomaticRotation(), RotationInterval: sec.RotationIntervalString(),
		NextRotationDate: secrets.FormatTime(sec.Rotation.NextRotation),
		LastRotationDate: secrets.FormatTime(sec.Rotation.LastRotation),
		ExtendedConfig:   sec.ExtendedConfig,
	}
	if fetchTags {
		out.Tags = toSecTags(sec.Tags)
	}
	return out, nil
}

// customDataParam finds ExtendedConfig.CustomData in any of the forms
// clients send: a JSON string under "ExtendedConfig.CustomData" (CLI, V1),
// a JSON object under "ExtendedConfig" holding CustomData, or flattened
// "ExtendedConfig.CustomData.<key>" pairs (Go SDK with a map).
func customDataParam(p Params) (*string, error) {
	if v, ok := p["ExtendedConfig.CustomData"]; ok {
		return &v, nil
	}
	if v := p.String("ExtendedConfig"); v != "" {
		var cfg map[string]json.RawMessage
		if err := json.Unmarshal([]byte(v), &cfg); err != nil {
			return nil, errs.E(errs.KindInvalidParameter, "The parameter ExtendedConfig must be a JSON object.")
		}
		if cd, ok := cfg["CustomData"]; ok {
			s := string(cd)
			// A CustomData given as a JSON string holding an object.
			var inner string
			if json.Unmarshal(cd, &inner) == nil {
				s = inner
			}
			return &s, nil
		}
		return nil, nil
	}
	const prefix = "ExtendedConfig.CustomData."
	flat := map[string]string{}
	for k, v := range p {
		if strings.HasPrefix(k, prefix) {
			flat[strings.TrimPrefix(k, prefix)] = v
		}
	}
	if len(flat) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(flat)
	if err != nil {
		return nil, err
	}
	s := string(b)
	return &s, nil
}

func (h *secretHandlers) updateSecret(ctx context.Context, r *Request) (any, error) {
	p := r.Params
	name, err := p.Required("SecretName")
	if err != nil {
		return nil, err
	}
	var desc *string
	if p.Has("Description") {
		d := p.String("Description")
		desc = &d
	}
	cd, err := customDataParam(p)
	if err != nil {
		return nil, err
	}
	return secretNameOrError(h.svc.UpdateSecret(ctx, r.Principal.Account, name, desc, cd))
}

func (h *secretHandlers) updateSecretVersionStage(ctx context.Context, r *Request) (any, error) {
	p := r.Params
	name, err := p.Required("SecretName")
	if err != nil {
		return nil, err
	}
	stage, err := p.Required("VersionStage")
	if err != nil {
		return nil, err
	}
	err = h.svc.UpdateSecretVersionStage(ctx, r.Principal.Account, name, stage,
		p.String("RemoveFromVersion"), p.String("MoveToVersion"))
	if err != nil {
		return nil, err
	}
	return &secretNameResponse{SecretName: secretNameOf(name)}, nil
}

func (h *secretHandlers) listSecretVersionIds(ctx context.Context, r *Request) (any, error) {
	p := r.Params
	name, err := p.Required("SecretName")
	if err != nil {
		return nil, err
	}
	number, size, err := secretPage(p)
	if err != nil {
		return nil, err
	}
	deprecated, err := p.Bool("IncludeDeprecated", false)
	if err != nil {
		return nil, err
	}
	sec, vs, total, err := h.svc.ListSecretVersionIds(ctx, secretOwner(r, name), name, deprecated, number, size)
	if err != nil {
		return nil, err
	}
	out := &listSecretVersionIdsResponse{SecretName: sec.Name, PageNumber: number, PageSize: size, TotalCount: total}
	out.VersionIds.VersionId = make([]secretVersionItem, 0, len(vs))
	for _, v := range vs {
		out.VersionIds.VersionId = append(out.VersionIds.VersionId, secretVersionItem{
			VersionId: v.ID, CreateTime: secrets.FormatTime(v.CreateTime), VersionStages: stagesOf(v),
		})
	}
	return out, nil
}

func (h *secretHandlers) deleteSecret(ctx context.Context, r *Request) (any, error) {
	p := r.Params
	name, err := p.Required("SecretName")
	if err != nil {
		return nil, err
	}
	days, err := p.Int("RecoveryWindowInDays", 30)
	if err != nil {
		return nil, err
	}
	force, err := p.Bool("ForceDeleteWithoutRecovery", false)
	if err != nil {
		return nil, err
	}
	sec, err := h.svc.DeleteSecret(ctx, r.Principal.Account, name, days, force)
	if err != nil {
		return nil, err
	}
	return &deleteSecretResponse{SecretName: sec.Name, PlannedDeleteTime: secrets.FormatTime(sec.PlannedDeleteTime)}, nil
}

func (h *secretHandlers) restoreSecret(ctx context.Context, r *Request) (any, error) {
	name, err := r.Params.Required("SecretName")
	if err != nil {
		return nil, err
	}
	return secretNameOrError(h.svc.RestoreSecret(ctx, r.Principal.Account, name))
}

func (h *secretHandlers) updateSecretRotationPolicy(ctx context.Context, r *Request) (any, error) {
	p := r.Params
	name, err := p.Required("SecretName")
	if err != nil {
		return nil, err
	}
	if _, err := p.Required("EnableAutomaticRotation"); err != nil {
		return nil, err
	}
	enable, err := p.Bool("EnableAutomaticRotation", false)
	if err != nil {
		return nil, err
	}
	return secretNameOrError(h.svc.UpdateSecretRotationPolicy(ctx, r.Principal.Account, name, enable, p.String("RotationInterval")))
}

func (h *secretHandlers) rotateSecret(ctx context.Context, r *Request) (any, error) {
	p := r.Params
	name, err := p.Required("SecretName")
	if err != nil {
		return nil, err
	}
	versionID, err := p.Required("VersionId")
	if err != nil {
		return nil, err
	}
	var sec *secrets.Secret
	if p.Has("SecretData") {
		// Keyhold extension: a caller-supplied new value. Access control
		// must also require kms:GetSecretValue on the secret for this form
		// (the caller knows the result): the Authorizer sees the
		// SecretData parameter on the RotateSecret request.
		data, err := p.Required("SecretData")
		if err != nil {
			return nil, err
		}
		sec, err = h.svc.RotateSecretWithValue(ctx, r.Principal.Account, name, versionID, []byte(data))
		if err != nil {
			return nil, err
		}
	} else if sec, err = h.svc.RotateSecret(ctx, r.Principal.Account, name, versionID); err != nil {
		return nil, err
	}
	return &rotateSecretResponse{Arn: sec.Arn, VersionId: versionID, SecretName: sec.Name}, nil
}

func (h *secretHandlers) getRandomPassword(_ context.Context, r *Request) (any, error) {
	p := r.Params
	in := secrets.PasswordInput{ExcludeCharacters: p.String("ExcludeCharacters")}
	var err error
	if in.Length, err = p.Int("PasswordLength", 32); err != nil {
		return nil, err
	}
	for _, f := range []struct {
		name string
		dst  *bool
		def  bool
	}{
		{"ExcludeLowercase", &in.ExcludeLowercase, false},
		{"ExcludeUppercase", &in.ExcludeUppercase, false},
		{"ExcludeNumbers", &in.ExcludeNumbers, false},
		{"ExcludePunctuation", &in.ExcludePunctuation, false},
		{"RequireEachIncludedType", &in.RequireEachIncludedType, true},
	} {
		if *f.dst, err = p.Bool(f.name, f.def); err != nil {
			return nil, err
		}
	}
	pw, err := secrets.RandomPassword(in)
	if err != nil {
		return nil, err
	}
	return &getRandomPasswordResponse{RandomPassword: pw}, nil
}

func (h *secretHandlers) getSecretPolicy(ctx context.Context, r *Request) (any, error) {
	name, err := r.Params.Required("SecretName")
	if err != nil {
		return nil, err
	}
	pol, err := h.svc.GetSecretPolicy(ctx, r.Principal.Account, name, r.Params.String("PolicyName"))
	if err != nil {
		return nil, err
	}
	return &getSecretPolicyResponse{Policy: pol}, nil
}

func (h *secretHandlers) setSecretPolicy(ctx context.Context, r *Request) (any, error) {
	p := r.Params
	name, err := p.Required("SecretName")
	if err != nil {
		return nil, err
	}
	pol, err := p.Required("Policy")
	if err != nil {
		return nil, err
	}
	if err := checkSecretPolicy(pol); err != nil {
		return nil, err
	}
	if err := h.svc.SetSecretPolicy(ctx, r.Principal.Account, name, p.String("PolicyName"), pol); err != nil {
		return nil, err
	}
	return &emptyResponse{}, nil
}

// keyTagger returns the KeyTagger or a clean error when keys are not wired.
func (h *secretHandlers) keyTagger() (KeyTagger, error) {
	if h.keys == nil {
		return nil, errs.E(errs.KindUnsupported, "Tagging keys is not available.")
	}
	return h.keys, nil
}

func tagMap(tags []secrets.Tag) map[string]string {
	m := make(map[string]string, len(tags))
	for _, t := range tags {
		m[t.Key] = t.Value
	}
	return m
}

// singleTarget picks the one resource of TagResource/UntagResource.
func singleTarget(p Params) (secretName, keyID string, err error) {
	secretName, keyID = p.String("SecretName"), p.String("KeyId")
	switch {
	case secretName != "" && keyID != "":
		return "", "", errs.E(errs.KindInvalidParameter, "Specify either SecretName or KeyId, not both.")
	case secretName == "" && keyID == "":
		return "", "", errs.E(errs.KindMissingParameter, "The parameter SecretName or KeyId is required.")
	}
	return secretName, keyID, nil
}

// singleTagAction runs TagResource or UntagResource: it picks the one
// target, parses the required parameter param with parse, and applies
// onKey or onSecret to the result.
func singleTagAction[T any](h *secretHandlers, r *Request, param string, parse func(string) (T, error),
	onKey func(kt KeyTagger, keyID string, v T) error, onSecret func(secretName string, v T) error) (any, error) {
	secretName, keyID, err := singleTarget(r.Params)
	if err != nil {
		return nil, err
	}
	raw, err := r.Params.Required(param)
	if err != nil {
		return nil, err
	}
	v, err := parse(raw)
	if err != nil {
		return nil, err
	}
	if keyID != "" {
		kt, err := h.keyTagger()
		if err != nil {
			return nil, err
		}
		return emptyOrError(onKey(kt, keyID, v))
	}
	return emptyOrError(onSecret(secretName, v))
}

func (h *secretHandlers) tagResource(ctx context.Context, r *Request) (any, error) {
	return singleTagAction(h, r, "Tags", secrets.ParseTags,
		func(kt KeyTagger, keyID string, tags []secrets.Tag) error {
			return kt.TagKey(ctx, r.Principal.Account, keyID, tagMap(tags))
		},
		func(secretName string, tags []secrets.Tag) error {
			return h.svc.TagSecrets(ctx, r.Principal.Account, []string{secretName}, tags)
		})
}

func (h *secretHandlers) untagResource(ctx context.Context, r *Request) (any, error) {
	return singleTagAction(h, r, "TagKeys", secrets.ParseTagKeys,
		func(kt KeyTagger, keyID string, keys []string) error {
			return kt.UntagKey(ctx, r.Principal.Account, keyID, keys)
		},
		func(secretName string, keys []string) error {
			return h.svc.UntagSecrets(ctx, r.Principal.Account, []string{secretName}, keys, false)
		})
}

// resourceType parses ResourceType (secret or key, any case).
func resourceType(p Params) (string, error) {
	t, err := p.Required("ResourceType")
	if err != nil {
		return "", err
	}
	switch strings.ToLower(t) {
	case "secret":
		return "secret", nil
	case "key":
		return "key", nil
	}
	return "", errs.E(errs.KindInvalidParameter, "The parameter ResourceType must be secret or key.")
}

// batchTags reads Tag.N.Key / Tag.N.Value.
func batchTags(p Params) ([]secrets.Tag, error) {
	var out []secrets.Tag
	for i := 1; ; i++ {
		n := "Tag." + strconv.Itoa(i)
		k, ok := p[n+".Key"]
		if !ok {
			if _, hasValue := p[n+".Value"]; hasValue {
				return nil, errs.E(errs.KindMissingParameter, "The parameter %s.Key is required.", n)
			}
			return out, nil
		}
		t := secrets.Tag{Key: k, Value: p[n+".Value"]}
		if err := secrets.ValidateTag(t); err != nil {
			return nil, err
		}
		out = append(out, t)
	}
}

// eachKey applies fn to every key of a batch call, stopping at the first
// error.
func (h *secretHandlers) eachKey(ids []string, fn func(kt KeyTagger, id string) error) (any, error) {
	kt, err := h.keyTagger()
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		if err := fn(kt, id); err != nil {
			return nil, err
		}
	}
	return &emptyResponse{}, nil
}

const maxBatchResources = 50

func batchIDs(p Params, required bool) ([]string, error) {
	ids := p.List("ResourceId")
	if len(ids) == 0 && required {
		return nil, errs.E(errs.KindMissingParameter, "The parameter ResourceId.1 is required.")
	}
	if len(ids) > maxBatchResources {
		return nil, errs.E(errs.KindInvalidParameter, "At most %d resources per call.", maxBatchResources)
	}
	return ids, nil
}

func (h *secretHandlers) tagResources(ctx context.Context, r *Request) (any, error) {
	rt, err := resourceType(r.Params)
	if err != nil {
		return nil, err
	}
	ids, err := batchIDs(r.Params, true)
	if err != nil {
		return nil, err
	}
	tags, err := batchTags(r.Params)
	if err != nil {
		return nil, err
	}
	if len(tags) == 0 {
		return nil, errs.E(errs.KindMissingParameter, "The parameter Tag.1.Key is required.")
	}
	if len(tags) > secrets.MaxTags {
		return nil, errs.E(errs.KindLimitExceeded, "A resource can have at most %d tags.", secrets.MaxTags)
	}
	if rt == "secret" {
		return emptyOrError(h.svc.TagSecrets(ctx, r.Principal.Account, ids, tags))
	}
	return h.eachKey(ids, func(kt KeyTagger, id string) error {
		return kt.TagKey(ctx, r.Principal.Account, id, tagMap(tags))
	})
}

func (h *secretHandlers) untagResources(ctx context.Context, r *Request) (any, error) {
	p := r.Params
	rt, err := resourceType(p)
	if err != nil {
		return nil, err
	}
	ids, err := batchIDs(p, true)
	if err != nil {
		return nil, err
	}
	all, err := p.Bool("All", false)
	if err != nil {
		return nil, err
	}
	keys := p.List("TagKey")
	if len(keys) == 0 && !all {
		return nil, errs.E(errs.KindMissingParameter, "The parameter TagKey.1 is required.")
	}
	if rt == "secret" {
		return emptyOrError(h.svc.UntagSecrets(ctx, r.Principal.Account, ids, keys, all))
	}
	return h.eachKey(ids, func(kt KeyTagger, id string) error {
		drop := keys
		if all {
			have, err := kt.ListKeyTags(ctx, r.Principal.Account, id)
			if err != nil {
				return err
			}
			drop = drop[:0:0]
			for k := range have {
				drop = append(drop, k)
			}
		}
		if len(drop) == 0 {
			return nil
		}
		return kt.UntagKey(ctx, r.Principal.Account, id, drop)
	})
}

// listTagResources lists the tags of the given resources (all secrets of
// the account when no ResourceId is given for secrets), keeping only tags
// that match one of the Tag.N filters when any are given. Everything fits
// in one page, so NextToken is never returned.
func (h *secretHandlers) listTagResources(ctx context.Context, r *Request) (any, error) {
	p := r.Params
	rt, err := resourceType(p)
	if err != nil {
		return nil, err
	}
	ids, err := batchIDs(p, rt == "key")
	if err != nil {
		return nil, err
	}
	filter, err := batchTags(p)
	if err != nil {
		return nil, err
	}
	keep := func(k, v string) bool {
		if len(filter) == 0 {
			return true
		}
		for _, f := range filter {
			if f.Key == k && (f.Value == "" || f.Value == v) {
				return true
			}
		}
		return false
	}
	out := &listTagResourcesResponse{}
	out.TagResources.TagResource = []tagResourceItem{}
	add := func(id string, tags []secrets.Tag) {
		for _, t := range tags {
			if keep(t.Key, t.Value) {
				out.TagResources.TagResource = append(out.TagResources.TagResource,
					tagResourceItem{ResourceId: id, ResourceType: rt, TagKey: t.Key, TagValue: t.Value})
			}
		}
	}
	if rt == "key" {
		kt, err := h.keyTagger()
		if err != nil {
			return nil, err
		}
		for _, id := range ids {
			m, err := kt.ListKeyTags(ctx, r.Principal.Account, id)
			if err != nil {
				return nil, err
			}
			tags := make([]secrets.Tag, 0, len(m))
			for k, v := range m {
				tags = append(tags, secrets.Tag{Key: k, Value: v})
			}
			sort.Slice(tags, func(i, j int) bool { return tags[i].Key < tags[j].Key })
			add(id, tags)
		}
		return out, nil
	}
	if len(ids) == 0 {
		all, err := h.svc.AllSecrets(ctx, r.Principal.Account)
		if err != nil {
			return nil, err
		}
		for _, sec := range all {
			add(sec.Name, sec.Tags)
		}
		return out, nil
	}
	for _, id := range ids {
		sec, err := h.svc.DescribeSecret(ctx, r.Principal.Account, id)
		if err != nil {
			return nil, err
		}
		add(id, sec.Tags)
	}
	return out, nil
}

func describeRegions(_ context.Context, r *Request) (any, error) {
	out := &describeRegionsResponse{}
	out.Regions.Region = []regionItem{{RegionId: r.Region}}
	return out, nil
}
