package secrets

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/keyhold/keyhold/internal/errs"
	"github.com/keyhold/keyhold/internal/store"
)

const maxDescriptionChars = 8192

// errRetry aborts a transaction that found state changed since the
// preparatory read (a racing writer); the caller starts over.
var errRetry = errors.New("secrets: concurrent change, retry")

const maxAttempts = 3

// CreateInput holds the CreateSecret parameters. Data is as sent: text, or
// Base64 when DataType is binary.
type CreateInput struct {
	Name                    string
	VersionID               string
	Data                    string
	DataType                string
	Type                    string
	EncryptionKeyID         string
	Description             string
	Tags                    []Tag
	ExtendedConfig          string
	EnableAutomaticRotation bool
	RotationInterval        string
	Policy                  string
}

// CreateSecret creates a secret and its first version(s).
func (s *Service) CreateSecret(ctx context.Context, account string, in CreateInput) (*Secret, error) {
	secretType, err := ValidateType(in.Type)
	if err != nil {
		return nil, err
	}
	if err := validateVersionID(in.VersionID); err != nil {
		return nil, err
	}
	value, dataType, err := DecodeValue(in.Data, in.DataType)
	if err != nil {
		return nil, err
	}
	var cfg map[string]any
	if in.ExtendedConfig != "" {
		if cfg, err = checkExtendedConfig(in.ExtendedConfig); err != nil {
			return nil, err
		}
	}
	name := in.Name
	if secretType == TypeRAM && name == "$Auto" && cfg != nil {
		// The service names RAM secrets after their user on request.
		if u, _ := cfg["UserName"].(string); u != "" {
			name = "acs/ram/user/" + u
		}
	}
	if err := ValidateName(name, secretType); err != nil {
		return nil, err
	}
	if utf8.RuneCountInString(in.Description) > maxDescriptionChars {
		return nil, invalid("The parameter Description exceeds %d characters.", maxDescriptionChars)
	}
	tags, err := mergeTags(nil, in.Tags)
	if err != nil {
		return nil, err
	}
	if in.Policy != "" {
		if err := checkPolicy(in.Policy); err != nil {
			return nil, err
		}
	}
	now := s.clock()
	var rot RotationPolicy
	if in.RotationInterval != "" || in.EnableAutomaticRotation {
		if secretType == TypeGeneric {
			return nil, invalid("Automatic rotation is not supported for secrets of type Generic.")
		}
		if in.RotationInterval == "" {
			return nil, missing("RotationInterval")
		}
		d, err := ParseInterval(in.RotationInterval)
		if err != nil {
			return nil, err
		}
		if err := CheckInterval(secretType, d); err != nil {
			return nil, err
		}
		rot.Interval = d
		if in.EnableAutomaticRotation {
			rot.Enabled = true
			rot.NextRotation = now.Add(d)
		}
	}
	var versions []initialVersion
	if secretType == TypeGeneric {
		versions = []initialVersion{{in.VersionID, value, []string{StageCurrent}}}
	} else {
		if dataType != DataText {
			return nil, invalid("The parameter SecretDataType must be text for %s secrets.", secretType)
		}
		sub, err := checkManagedConfig(secretType, cfg)
		if err != nil {
			return nil, err
		}
		if versions, err = managedVersions(secretType, sub, in.VersionID, value, now); err != nil {
			return nil, err
		}
		if v := s.validator(secretType); v != nil {
			if err := v.ValidateCreate(ctx, account, sub, cfg, value); err != nil {
				return nil, err
			}
		}
	}

	// Fail fast on a taken name before asking the key service for work.
	if err := s.st.View(ctx, func(tx store.Tx) error {
		_, err := getSecret(tx, account, name)
		if err == nil {
			return errExists()
		}
		if errs.Is(err, errs.KindSecretNotFound) {
			return nil
		}
		return err
	}); err != nil {
		return nil, err
	}

	keyID, err := s.env.ResolveKey(ctx, account, in.EncryptionKeyID)
	if err != nil {
		return nil, internal(err, "resolving the encryption key")
	}
	arn := s.ARN(account, name)
	sealed := make([][]byte, len(versions))
	for i, v := range versions {
		if sealed[i], err = s.env.SealValue(ctx, account, keyID, aad(arn, v.id), v.value); err != nil {
			return nil, internal(err, "encrypting the secret value")
		}
	}

	var out *Secret
	err = s.st.Update(ctx, func(tx store.Tx) error {
		out = nil
		sec := &Secret{
			Name: name, Arn: arn, Type: secretType, EncryptionKeyID: keyID,
			Description: in.Description, Tags: tags, Rotation: rot,
			ExtendedConfig: in.ExtendedConfig, CreateTime: now, UpdateTime: now,
			Policy: in.Policy, NextSeq: 1,
		}
		b, err := json.Marshal(sec)
		if err != nil {
			return internal(err, "encoding a secret")
		}
		if err := tx.Insert(tableSecrets, secretKey(account, name), b); err != nil {
			if errors.Is(err, store.ErrExists) {
				return errExists()
			}
			return internal(err, "writing a secret")
		}
		if err := addCount(tx, account, name, 1); err != nil {
			return err
		}
		for i, v := range versions {
			rec := &versionRecord{Version: Version{
				ID: v.id, Stages: v.stages, DataType: dataType, CreateTime: now, Seq: sec.NextSeq,
			}, Sealed: sealed[i]}
			sec.NextSeq++
			if err := putVersion(tx, account, name, rec); err != nil {
				return err
			}
		}
		if err := putSecret(tx, account, sec); err != nil { // NextSeq advanced
			return err
		}
		out = sec
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func errExists() error {
	return errs.E(errs.KindAlreadyExists, "A secret with this name already exists.")
}

// SecretValue is a decrypted version. Data is in wire form (Base64 for
// binary values).
type SecretValue struct {
	Secret  *Secret
	Version Version
	Data    string
}

// GetValueInput holds the GetSecretValue parameters.
type GetValueInput struct {
	Name         string
	VersionID    string
	VersionStage string
}

// GetSecretValue returns the value of the version asked for (ACSCurrent by
// default). Managed types serve only ACSCurrent and ACSPrevious (and, for
// ECS, ACSPending) and ignore VersionId.
func (s *Service) GetSecretValue(ctx context.Context, account string, in GetValueInput) (*SecretValue, error) {
	name, err := s.resolveName(account, in.Name)
	if err != nil {
		return nil, err
	}
	var sec *Secret
	var rec *versionRecord
	err = s.st.View(ctx, func(tx store.Tx) error {
		if sec, err = getLive(tx, account, name); err != nil {
			return err
		}
		stage, id := in.VersionStage, in.VersionID
		if sec.Managed() {
			id = ""
			if stage == "" {
				stage = StageCurrent
			}
			if stage != StageCurrent && stage != StagePrevious && (sec.Type != TypeECS || stage != StagePending) {
				return invalid("Secrets of type %s serve only the ACSCurrent and ACSPrevious stages.", sec.Type)
			}
		}
		if id != "" {
			if rec, err = getVersion(tx, account, name, id); err != nil {
				return err
			}
			if stage != "" && !rec.HasStage(stage) {
				return errVersionNotFound()
			}
			return nil
		}
		if stage == "" {
			stage = StageCurrent
		}
		vs, err := listVersions(tx, account, name)
		if err != nil {
			return err
		}
		if rec = findStage(vs, stage); rec == nil {
			return errVersionNotFound()
		}
		return rec.loadSealed()
	})
	if err != nil {
		return nil, err
	}
	plain, err := s.env.OpenValue(ctx, account, rec.Sealed, aad(sec.Arn, rec.ID))
	if err != nil {
		return nil, internal(err, "decrypting the secret value")
	}
	return &SecretValue{Secret: sec, Version: rec.Version, Data: EncodeValue(plain, rec.DataType)}, nil
}

// PutValueInput holds the PutSecretValue parameters; nil Stages means
// ACSCurrent.
type PutValueInput struct {
	Name      string
	VersionID string
	Data      string
	DataType  string
	Stages    []string
}

// PutSecretValue stores a new version of a generic secret. Repeating a call
// with the same VersionId and value succeeds without change; the same
// VersionId with another value is refused.
func (s *Service) PutSecretValue(ctx context.Context, account string, in PutValueInput) (*Version, error) {
	name, err := s.resolveName(account, in.Name)
	if err != nil {
		return nil, err
	}
	if err := validateVersionID(in.VersionID); err != nil {
		return nil, err
	}
	value, dataType, err := DecodeValue(in.Data, in.DataType)
	if err != nil {
		return nil, err
	}
	stages := in.Stages
	if stages == nil {
		stages = []string{StageCurrent}
	}
	if stages, err = checkStages(stages); err != nil {
		return nil, err
	}
	return s.addVersion(ctx, account, name, in.VersionID, value, dataType, stages, false)
}

// addVersion writes a new version with the given stages, idempotently on
// (versionID, value). internalCall lets rotation write managed secrets.
func (s *Service) addVersion(ctx context.Context, account, name, versionID string, value []byte, dataType string, stages []string, internalCall bool) (*Version, error) {
	for attempt := 0; attempt < maxAttempts; attempt++ {
		var sec *Secret
		var existing *versionRecord
		err := s.st.View(ctx, func(tx store.Tx) error {
			var err error
			if sec, err = getLive(tx, account, name); err != nil {
				return err
			}
			if sec.Managed() && !internalCall {
				return errManaged(sec.Type, "PutSecretValue")
			}
			existing, err = getVersion(tx, account, name, versionID)
			if errs.Is(err, errs.KindSecretNotFound) {
				existing, err = nil, nil
			}
			return err
		})
		if err != nil {
			return nil, err
		}
		if existing != nil {
			return s.sameVersion(ctx, account, sec, existing, value, dataType)
		}
		sealed, err := s.env.SealValue(ctx, account, sec.EncryptionKeyID, aad(sec.Arn, versionID), value)
		if err != nil {
			return nil, internal(err, "encrypting the secret value")
		}
		var out *Version
		err = s.st.Update(ctx, func(tx store.Tx) error {
			out = nil
			sec, err := getLive(tx, account, name)
			if err != nil {
				return err
			}
			vs, err := listVersions(tx, account, name)
			if err != nil {
				return err
			}
			if findVersion(vs, versionID) != nil {
				return errRetry
			}
			now := s.clock()
			rec := &versionRecord{Version: Version{
				ID: versionID, DataType: dataType, CreateTime: now, Seq: sec.NextSeq,
			}, Sealed: sealed}
			sec.NextSeq++
			vs = append(vs, rec)
			for _, st := range stages {
				attachStage(vs, st, rec)
			}
			if err := writeVersions(tx, account, name, vs); err != nil {
				return err
			}
			sec.UpdateTime = now
			if err := putSecret(tx, account, sec); err != nil {
				return err
			}
			v := rec.Version
			out = &v
			return nil
		})
		if errors.Is(err, errRetry) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return out, nil
	}
	return nil, errs.E(errs.KindInUse, "The secret is being changed by another request; try again.")
}

// writeVersions stores vs after pruning the oldest unlabelled versions
// beyond the limit; it refuses when labelled versions alone exceed it.
func writeVersions(tx store.Tx, account, name string, vs []*versionRecord) error {
	drop, ok := prune(vs, MaxVersions)
	if !ok {
		return errLimit("A secret can keep at most %d versions; remove stage labels from old versions first.", MaxVersions)
	}
	dropped := map[string]bool{}
	for _, id := range drop {
		dropped[id] = true
		if err := tx.Delete(tableVersions, versionKey(account, name, id)); err != nil {
			return internal(err, "deleting a version")
		}
	}
	for _, v := range vs {
		if dropped[v.ID] || v.stored && slices.Equal(v.Stages, v.storedStages) {
			continue
		}
		if err := putVersion(tx, account, name, v); err != nil {
			return err
		}
	}
	return nil
}

// sameVersion decides a repeated VersionId: success when the value matches.
func (s *Service) sameVersion(ctx context.Context, account string, sec *Secret, v *versionRecord, value []byte, dataType string) (*Version, error) {
	plain, err := s.env.OpenValue(ctx, account, v.Sealed, aad(sec.Arn, v.ID))
	if err != nil {
		return nil, internal(err, "decrypting the secret value")
	}
	if v.DataType != dataType || subtle.ConstantTimeCompare(plain, value) != 1 {
		return nil, errs.E(errs.KindAlreadyExists, "The version %s already exists with a different value.", v.ID)
	}
	out := v.Version
	return &out, nil
}

// Filter is one ListSecrets filter; values are ORed, filters ANDed.
type Filter struct {
	Key    string   `json:"Key"`
	Values []string `json:"Values"`
}

// ParseFilters parses the Filters JSON and checks the keys.
func ParseFilters(s string) ([]Filter, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var fs []Filter
	if err := json.Unmarshal([]byte(s), &fs); err != nil {
		return nil, invalid("The parameter Filters must be a JSON array of {\"Key\",\"Values\"} objects.")
	}
	if len(fs) > 10 {
		return nil, invalid("At most 10 filters are allowed.")
	}
	for _, f := range fs {
		switch f.Key {
		case "SecretName", "Description", "TagKey", "TagValue":
		default:
			return nil, invalid("Filter keys must be SecretName, Description, TagKey or TagValue.")
		}
		if len(f.Values) == 0 || len(f.Values) > 10 {
			return nil, invalid("Every filter needs 1 to 10 values.")
		}
	}
	return fs, nil
}

// matches reports whether sec passes every filter. Name and description
// match on substrings, tags exactly.
func matches(sec *Secret, fs []Filter) bool {
	for _, f := range fs {
		hit := false
		for _, v := range f.Values {
			switch f.Key {
			case "SecretName":
				hit = hit || strings.Contains(sec.Name, v)
			case "Description":
				hit = hit || strings.Contains(sec.Description, v)
			case "TagKey":
				for _, t := range sec.Tags {
					hit = hit || t.Key == v
				}
			case "TagValue":
				for _, t := range sec.Tags {
					hit = hit || t.Value == v
				}
			}
		}
		if !hit {
			return false
		}
	}
	return true
}

// CheckPage validates paging parameters (PageNumber ≥ 1, PageSize 1–100).
func CheckPage(number, size int) error {
	if number < 1 {
		return invalid("The parameter PageNumber must be at least 1.")
	}
	if size < 1 || size > 100 {
		return invalid("The parameter PageSize must be between 1 and 100.")
	}
	return nil
}

func page[T any](all []T, number, size int) []T {
	if pastEnd(number, size, len(all)) {
		return []T{}
	}
	start := (number - 1) * size
	end := min(start+size, len(all))
	return all[start:end]
}

// pastEnd reports whether page number (of size) starts at or beyond total
// items, without computing (number-1)*size, which a huge PageNumber would
// overflow.
func pastEnd(number, size, total int) bool {
	return number-1 >= (total+size-1)/size
}

// listChunk bounds the records a filtered listing holds at once.
const listChunk = 1024

// ListSecrets returns one page of the account's secrets (by name) that pass
// the filters, and the number that pass. Deleted secrets in their recovery
// window are listed too, with their PlannedDeleteTime.
//
// Without filters (the common case, and the one that must stay fast with a
// million secrets) the page is read at its offset in key order, which is
// name order (ListOffset walks the keys before it without reading their
// values), and TotalCount is the account's stored count (count.go): only
// the page's records are copied and decoded. With filters every secret of the account is
// examined, O(N) per call: the name is checked on the key before anything
// is decoded, description and tags on a partial decode, and only the
// page's hits are decoded in full.
func (s *Service) ListSecrets(ctx context.Context, account string, filters []Filter, pageNumber, pageSize int) ([]*Secret, int, error) {
	if err := CheckPage(pageNumber, pageSize); err != nil {
		return nil, 0, err
	}
	if len(filters) == 0 {
		return s.listPage(ctx, account, pageNumber, pageSize)
	}
	return s.listFiltered(ctx, account, filters, pageNumber, pageSize)
}

// listPage is an unfiltered ListSecrets: the count and one offset read, in
// the same snapshot so that the page and TotalCount agree.
func (s *Service) listPage(ctx context.Context, account string, pageNumber, pageSize int) ([]*Secret, int, error) {
	prefix := store.Key(account, "")
	var out []*Secret
	var total int
	err := s.st.View(ctx, func(tx store.Tx) error {
		out = []*Secret{}
		var err error
		if total, err = secretCount(tx, account); err != nil {
			return err
		}
		if pastEnd(pageNumber, pageSize, total) {
			return nil
		}
		kvs, err := tx.ListOffset(tableSecrets, prefix, (pageNumber-1)*pageSize, pageSize)
		if err != nil {
			return internal(err, "listing secrets")
		}
		for _, kv := range kvs {
			sec, err := decodeSecret(kv.Value)
			if err != nil {
				return err
			}
			out = append(out, sec)
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	return out, total, nil
}

// filterFields is the part of a stored Secret the filters look at: decoding
// only these skips the allocations of every other field.
type filterFields struct {
	Description string `json:"description"`
	Tags        []Tag  `json:"tags"`
}

// listFiltered walks the account's secrets in chunks (one snapshot),
// counting those that pass and keeping the page's.
func (s *Service) listFiltered(ctx context.Context, account string, filters []Filter, pageNumber, pageSize int) ([]*Secret, int, error) {
	prefix := store.Key(account, "")
	var nameFilters, otherFilters []Filter
	for _, f := range filters {
		if f.Key == "SecretName" {
			nameFilters = append(nameFilters, f)
		} else {
			otherFilters = append(otherFilters, f)
		}
	}
	start := math.MaxInt // a PageNumber so large that (n-1)*size overflows
	if pageNumber-1 < math.MaxInt/pageSize {
		start = (pageNumber - 1) * pageSize
	}
	var out []*Secret
	var hits int
	err := s.st.View(ctx, func(tx store.Tx) error {
		out, hits = []*Secret{}, 0
		return walkSecrets(tx, prefix, func(kv store.KV) error {
			name := strings.TrimPrefix(kv.Key, prefix)
			if !matches(&Secret{Name: name}, nameFilters) {
				return nil
			}
			if len(otherFilters) > 0 {
				var ff filterFields
				if err := json.Unmarshal(kv.Value, &ff); err != nil {
					return internal(err, "decoding a secret")
				}
				if !matches(&Secret{Name: name, Description: ff.Description, Tags: ff.Tags}, otherFilters) {
					return nil
				}
			}
			i := hits // this hit's index among all hits
			hits++
			if i >= start && i-start < pageSize {
				sec, err := decodeSecret(kv.Value)
				if err != nil {
					return err
				}
				out = append(out, sec)
			}
			return nil
		})
	})
	if err != nil {
		return nil, 0, err
	}
	return out, hits, nil
}

// AllSecrets returns every secret of the account, by name.
func (s *Service) AllSecrets(ctx context.Context, account string) ([]*Secret, error) {
	var out []*Secret
	err := s.st.View(ctx, func(tx store.Tx) error {
		out = nil
		kvs, err := tx.List(tableSecrets, store.Key(account, ""), "", 0)
		if err != nil {
			return internal(err, "listing secrets")
		}
		for _, kv := range kvs {
			sec, err := decodeSecret(kv.Value)
			if err != nil {
				return err
			}
			out = append(out, sec)
		}
		return nil
	})
	return out, err
}

// DescribeSecret returns the metadata, also during the delete window.
func (s *Service) DescribeSecret(ctx context.Context, account, nameOrARN string) (*Secret, error) {
	name, err := s.resolveName(account, nameOrARN)
	if err != nil {
		return nil, err
	}
	var sec *Secret
	err = s.st.View(ctx, func(tx store.Tx) error {
		sec, err = getSecret(tx, account, name)
		return err
	})
	return sec, err
}

// update runs fn on a live secret in one transaction and stores the result.
func (s *Service) update(ctx context.Context, account, nameOrARN string, fn func(tx store.Tx, sec *Secret) error) (*Secret, error) {
	name, err := s.resolveName(account, nameOrARN)
	if err != nil {
		return nil, err
	}
	var out *Secret
	err = s.st.Update(ctx, func(tx store.Tx) error {
		out = nil
		sec, err := getLive(tx, account, name)
		if err != nil {
			return err
		}
		if err := fn(tx, sec); err != nil {
			return err
		}
		sec.UpdateTime = s.clock()
		if err := putSecret(tx, account, sec); err != nil {
			return err
		}
		out = sec
		return nil
	})
	return out, err
}

// UpdateSecret changes the description and/or ExtendedConfig.CustomData
// (a JSON object); nil leaves a field alone.
func (s *Service) UpdateSecret(ctx context.Context, account, nameOrARN string, description, customData *string) (*Secret, error) {
	if description != nil && utf8.RuneCountInString(*description) > maxDescriptionChars {
		return nil, invalid("The parameter Description exceeds %d characters.", maxDescriptionChars)
	}
	var cd map[string]any
	if customData != nil {
		if err := json.Unmarshal([]byte(*customData), &cd); err != nil || cd == nil {
			return nil, invalid("The parameter ExtendedConfig.CustomData must be a JSON object.")
		}
	}
	return s.update(ctx, account, nameOrARN, func(_ store.Tx, sec *Secret) error {
		if description != nil {
			sec.Description = *description
		}
		if cd == nil {
			return nil
		}
		cfg := map[string]any{}
		if sec.ExtendedConfig != "" {
			if err := json.Unmarshal([]byte(sec.ExtendedConfig), &cfg); err != nil {
				return internal(err, "decoding the extended config")
			}
		}
		if sec.Type == TypeRds && len(cd) > 10 {
			return invalid("ExtendedConfig.CustomData may hold at most 10 pairs.")
		}
		cfg["CustomData"] = cd
		b, err := json.Marshal(cfg)
		if err != nil {
			return internal(err, "encoding the extended config")
		}
		if utf8.RuneCount(b) > MaxExtendedConfigChars {
			return invalid("The parameter ExtendedConfig exceeds %d characters.", MaxExtendedConfigChars)
		}
		sec.ExtendedConfig = string(b)
		return nil
	})
}

// UpdateSecretVersionStage moves or removes a stage label. Built-in stages
// of managed secrets belong to rotation and are refused; ACSCurrent and
// ACSPrevious can only be moved, never just removed.
func (s *Service) UpdateSecretVersionStage(ctx context.Context, account, nameOrARN, stage, removeFrom, moveTo string) error {
	if stage == "" {
		return missing("VersionStage")
	}
	if err := checkStage(stage); err != nil {
		return err
	}
	if removeFrom == "" && moveTo == "" {
		return invalid("Specify RemoveFromVersion, MoveToVersion or both.")
	}
	if moveTo == "" && (stage == StageCurrent || stage == StagePrevious) {
		return invalid("The stage %s can be moved to another version but not removed.", stage)
	}
	_, err := s.update(ctx, account, nameOrARN, func(tx store.Tx, sec *Secret) error {
		if sec.Managed() && isBuiltinStage(stage) {
			return errManaged(sec.Type, "Moving a built-in stage")
		}
		vs, err := listVersions(tx, account, sec.Name)
		if err != nil {
			return err
		}
		if removeFrom != "" {
			from := findVersion(vs, removeFrom)
			if from == nil {
				return errVersionNotFound()
			}
			if !from.HasStage(stage) {
				return invalid("The version %s does not carry the stage %s.", removeFrom, stage)
			}
			if moveTo == "" {
				removeStage(from, stage)
			}
		}
		if moveTo != "" {
			to := findVersion(vs, moveTo)
			if to == nil {
				return errVersionNotFound()
			}
			attachStage(vs, stage, to)
		}
		return writeVersions(tx, account, sec.Name, vs)
	})
	return err
}

// ListSecretVersionIds returns one page of versions, oldest first; versions
// without a stage label are included only when includeDeprecated is set.
func (s *Service) ListSecretVersionIds(ctx context.Context, account, nameOrARN string, includeDeprecated bool, pageNumber, pageSize int) (*Secret, []Version, int, error) {
	if err := CheckPage(pageNumber, pageSize); err != nil {
		return nil, nil, 0, err
	}
	name, err := s.resolveName(account, nameOrARN)
	if err != nil {
		return nil, nil, 0, err
	}
	var sec *Secret
	var all []Version
	err = s.st.View(ctx, func(tx store.Tx) error {
		if sec, err = getLive(tx, account, name); err != nil {
			return err
		}
		vs, err := listVersions(tx, account, name)
		if err != nil {
			return err
		}
		for _, v := range vs {
			if includeDeprecated || len(v.Stages) > 0 {
				all = append(all, v.Version)
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, 0, err
	}
	return sec, page(all, pageNumber, pageSize), len(all), nil
}

// DeleteSecret schedules deletion after a recovery window of 7 to 30 days,
// or deletes at once when force is set.
func (s *Service) DeleteSecret(ctx context.Context, account, nameOrARN string, recoveryDays int, force bool) (*Secret, error) {
	if !force && (recoveryDays < 7 || recoveryDays > 30) {
		return nil, invalid("The parameter RecoveryWindowInDays must be between 7 and 30.")
	}
	name, err := s.resolveName(account, nameOrARN)
	if err != nil {
		return nil, err
	}
	now := s.clock()
	var out *Secret
	err = s.st.Update(ctx, func(tx store.Tx) error {
		out = nil
		sec, err := getSecret(tx, account, name)
		if err != nil {
			return err
		}
		if force {
			sec.PlannedDeleteTime = now
			out = sec
			return deleteSecretTx(tx, account, name)
		}
		if sec.PendingDeletion() {
			return errInDeleteWindow()
		}
		sec.PlannedDeleteTime = now.Add(time.Duration(recoveryDays) * 24 * time.Hour)
		sec.UpdateTime = now
		out = sec
		return putSecret(tx, account, sec)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// RestoreSecret cancels a scheduled deletion; restoring a secret that is
// not scheduled for deletion is a no-op.
func (s *Service) RestoreSecret(ctx context.Context, account, nameOrARN string) (*Secret, error) {
	name, err := s.resolveName(account, nameOrARN)
	if err != nil {
		return nil, err
	}
	var out *Secret
	err = s.st.Update(ctx, func(tx store.Tx) error {
		out = nil
		sec, err := getSecret(tx, account, name)
		if err != nil {
			return err
		}
		out = sec
		if !sec.PendingDeletion() {
			return nil
		}
		sec.PlannedDeleteTime = time.Time{}
		sec.UpdateTime = s.clock()
		return putSecret(tx, account, sec)
	})
	return out, err
}

// purgeBatch bounds one purge transaction.
const purgeBatch = 100

// PurgeDue deletes, in every account, the secrets whose recovery window
// ended at or before now. It returns how many it deleted.
//
// The due secrets are found in a read transaction, walking the table in
// chunks and decoding only the deletion time: with a million secrets that
// walk takes seconds, and inside a write transaction it held every writer
// (bolt has one) that long at each purge — long enough, at 360,000
// secrets on a loaded machine, for API calls to time out. They are then
// deleted in write transactions of purgeBatch, each re-checked there: a
// secret restored since the walk stays.
//
// The same walk checks each account's stored count (count.go) against the
// secrets it saw, in the same snapshot; a count that disagrees (written
// beside a build that did not keep it) is rebuilt.
func (s *Service) PurgeDue(ctx context.Context, now time.Time) (int, error) {
	var due, drifted []string
	err := s.st.View(ctx, func(tx store.Tx) error {
		due, drifted = nil, nil
		seen := map[string]int{}
		err := walkSecrets(tx, "", func(kv store.KV) error {
			account, _, _ := strings.Cut(kv.Key, "/")
			seen[account]++
			if !bytes.Contains(kv.Value, plannedDeleteField) {
				return nil // not scheduled for deletion: skip the decode
			}
			var f struct {
				PlannedDeleteTime time.Time `json:"planned_delete"`
			}
			if err := json.Unmarshal(kv.Value, &f); err != nil {
				return internal(err, "decoding a secret")
			}
			if !f.PlannedDeleteTime.IsZero() && !f.PlannedDeleteTime.After(now) {
				due = append(due, kv.Key)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if drifted, err = countsDrifted(tx, seen); err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, account := range drifted {
		if err := s.st.Update(ctx, func(tx store.Tx) error { return rebuildCount(tx, account) }); err != nil {
			return 0, err
		}
	}
	total := 0
	for lo := 0; lo < len(due); lo += purgeBatch {
		batch := due[lo:min(lo+purgeBatch, len(due))]
		n := 0
		err := s.st.Update(ctx, func(tx store.Tx) error {
			n = 0
			for _, key := range batch {
				account, name, _ := strings.Cut(key, "/")
				sec, err := getSecret(tx, account, name)
				if errs.Is(err, errs.KindSecretNotFound) {
					continue // purged meanwhile (another replica's stale leader)
				}
				if err != nil {
					return err
				}
				if !sec.PendingDeletion() || sec.PlannedDeleteTime.After(now) {
					continue
				}
				if err := deleteSecretTx(tx, account, name); err != nil {
					return err
				}
				n++
			}
			return nil
		})
		if err != nil {
			return total, err
		}
		total += n
	}
	return total, nil
}

// Byte patterns that encoding/json writes for a set field: a record
// without one cannot have it set, so a walk over a million secrets skips
// decoding those (a record with one is decoded and decides). They rely on
// the fields being omitted when zero, and on no field of Secret holding
// raw JSON, where the pattern could appear unescaped.
var (
	plannedDeleteField = []byte(`"planned_delete":`)
	rotationOnField    = []byte(`"enabled":true`)
)

// walkSecrets calls fn on every stored secret whose key has the prefix, in
// key order, listChunk records at a time so that memory stays bounded.
func walkSecrets(tx store.Tx, prefix string, fn func(store.KV) error) error {
	after := ""
	for {
		kvs, err := tx.List(tableSecrets, prefix, after, listChunk)
		if err != nil {
			return internal(err, "listing secrets")
		}
		for _, kv := range kvs {
			if err := fn(kv); err != nil {
				return err
			}
		}
		if len(kvs) < listChunk {
			return nil
		}
		after = kvs[len(kvs)-1].Key
	}
}

// UpdateSecretRotationPolicy enables or disables automatic rotation of a
// managed secret and sets its interval.
func (s *Service) UpdateSecretRotationPolicy(ctx context.Context, account, nameOrARN string, enable bool, interval string) (*Secret, error) {
	var d time.Duration
	if interval != "" {
		var err error
		if d, err = ParseInterval(interval); err != nil {
			return nil, err
		}
	}
	return s.update(ctx, account, nameOrARN, func(_ store.Tx, sec *Secret) error {
		if !sec.Managed() {
			return invalid("Automatic rotation is not supported for secrets of type Generic.")
		}
		if d != 0 {
			if err := CheckInterval(sec.Type, d); err != nil {
				return err
			}
			sec.Rotation.Interval = d
		}
		if enable && sec.Rotation.Interval == 0 {
			return missing("RotationInterval")
		}
		sec.Rotation.Enabled = enable
		sec.Rotation.NextRotation = time.Time{}
		if enable {
			sec.Rotation.NextRotation = s.clock().Add(sec.Rotation.Interval)
		}
		return nil
	})
}

// RotateSecret rotates a managed secret now through its type's Rotator.
// VersionId is an idempotency key: an existing version is a success.
func (s *Service) RotateSecret(ctx context.Context, account, nameOrARN, versionID string) (*Secret, error) {
	return s.rotate(ctx, account, nameOrARN, versionID, nil)
}

// RotateSecretWithValue is RotateSecret with a caller-chosen value (a
// Keyhold extension for immediate rotation).
func (s *Service) RotateSecretWithValue(ctx context.Context, account, nameOrARN, versionID string, value []byte) (*Secret, error) {
	if len(value) > MaxValueBytes {
		return nil, invalid("The secret value exceeds the limit of %d bytes.", MaxValueBytes)
	}
	return s.rotate(ctx, account, nameOrARN, versionID, value)
}

func (s *Service) rotate(ctx context.Context, account, nameOrARN, versionID string, value []byte) (*Secret, error) {
	if err := validateVersionID(versionID); err != nil {
		return nil, err
	}
	name, err := s.resolveName(account, nameOrARN)
	if err != nil {
		return nil, err
	}
	var sec *Secret
	exists := false
	err = s.st.View(ctx, func(tx store.Tx) error {
		if sec, err = getLive(tx, account, name); err != nil {
			return err
		}
		if !sec.Managed() {
			return invalid("RotateSecret is not supported for secrets of type Generic; store a new value with PutSecretValue.")
		}
		_, err := getVersion(tx, account, name, versionID)
		exists = err == nil
		if errs.Is(err, errs.KindSecretNotFound) {
			err = nil
		}
		return err
	})
	if err != nil || exists {
		return sec, err
	}
	if err := s.takeRotateSlot(account); err != nil {
		return nil, err
	}
	r := s.rotator(sec.Type)
	if r == nil {
		return nil, errs.E(errs.KindUnsupported, "Rotation of %s secrets is not available: no rotator is configured.", sec.Type)
	}
	if err := r.Rotate(ctx, account, sec, versionID, value); err != nil {
		return nil, err
	}
	return sec, nil
}

// takeRotateSlot applies the optional per-account hourly RotateSecret limit.
func (s *Service) takeRotateSlot(account string) error {
	if s.rotateLimit <= 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cutoff := s.now().Add(-time.Hour)
	calls := s.rotateCalls[account][:0]
	for _, t := range s.rotateCalls[account] {
		if t.After(cutoff) {
			calls = append(calls, t)
		}
	}
	if len(calls) >= s.rotateLimit {
		s.rotateCalls[account] = calls
		return errLimit("RotateSecret is limited to %d calls an hour per account.", s.rotateLimit)
	}
	s.rotateCalls[account] = append(calls, s.now())
	return nil
}

// checkPolicy checks a resource policy document.
func checkPolicy(p string) error {
	if len(p) > MaxPolicyChars {
		return invalid("The parameter Policy exceeds %d characters.", MaxPolicyChars)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(p), &m); err != nil || m == nil {
		return invalid("The parameter Policy must be a JSON policy document.")
	}
	return nil
}

func checkPolicyName(n string) error {
	if n != "" && n != "default" {
		return invalid("The parameter PolicyName must be default.")
	}
	return nil
}

// defaultPolicy is what GetSecretPolicy returns before SetSecretPolicy: the
// account's own principals may act on the secret.
func defaultPolicy(account string) string {
	return `{"Version":"1","Statement":[{"Sid":"Enable RAM User Permissions","Effect":"Allow",` +
		`"Principal":{"RAM":["acs:ram::` + account + `:*"]},"Action":["kms:*"],"Resource":["*"]}]}`
}

// GetSecretPolicy returns the secret's resource policy.
func (s *Service) GetSecretPolicy(ctx context.Context, account, nameOrARN, policyName string) (string, error) {
	if err := checkPolicyName(policyName); err != nil {
		return "", err
	}
	name, err := s.resolveName(account, nameOrARN)
	if err != nil {
		return "", err
	}
	var sec *Secret
	err = s.st.View(ctx, func(tx store.Tx) error {
		sec, err = getLive(tx, account, name)
		return err
	})
	if err != nil {
		return "", err
	}
	if sec.Policy == "" {
		return defaultPolicy(account), nil
	}
	return sec.Policy, nil
}

// SetSecretPolicy replaces the secret's resource policy.
func (s *Service) SetSecretPolicy(ctx context.Context, account, nameOrARN, policyName, policy string) error {
	if err := checkPolicyName(policyName); err != nil {
		return err
	}
	if policy == "" {
		return missing("Policy")
	}
	if err := checkPolicy(policy); err != nil {
		return err
	}
	_, err := s.update(ctx, account, nameOrARN, func(_ store.Tx, sec *Secret) error {
		sec.Policy = policy
		return nil
	})
	return err
}

// TagSecrets adds or replaces tags on several secrets at once; nothing is
// written unless every secret accepts them.
func (s *Service) TagSecrets(ctx context.Context, account string, names []string, tags []Tag) error {
	if len(tags) == 0 {
		return missing("Tags")
	}
	if _, err := mergeTags(nil, tags); err != nil {
		return err
	}
	return s.updateMany(ctx, account, names, func(sec *Secret) error {
		merged, err := mergeTags(sec.Tags, tags)
		if err != nil {
			return err
		}
		sec.Tags = merged
		return nil
	})
}

// UntagSecrets removes tags by key (all tags when all is set).
func (s *Service) UntagSecrets(ctx context.Context, account string, names []string, keys []string, all bool) error {
	if len(keys) == 0 && !all {
		return missing("TagKeys")
	}
	return s.updateMany(ctx, account, names, func(sec *Secret) error {
		if all {
			sec.Tags = nil
		} else {
			sec.Tags = removeTags(sec.Tags, keys)
		}
		return nil
	})
}

func (s *Service) updateMany(ctx context.Context, account string, namesOrARNs []string, fn func(*Secret) error) error {
	if len(namesOrARNs) == 0 {
		return missing("ResourceId")
	}
	names := make([]string, len(namesOrARNs))
	for i, n := range namesOrARNs {
		var err error
		if names[i], err = s.resolveName(account, n); err != nil {
			return err
		}
	}
	now := s.clock()
	return s.st.Update(ctx, func(tx store.Tx) error {
		for _, name := range names {
			sec, err := getLive(tx, account, name)
			if err != nil {
				return err
			}
			if err := fn(sec); err != nil {
				return err
			}
			sec.UpdateTime = now
			if err := putSecret(tx, account, sec); err != nil {
				return err
			}
		}
		return nil
	})
}
