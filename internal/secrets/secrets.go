// Package secrets owns the lifecycle of secrets: metadata, versions and
// their stage labels, scheduled deletion, tags, rotation policy and the
// resource policy document. It enforces every limit of the KMS secrets API
// before it writes anything.
//
// It knows nothing of HTTP or SQL: values are sealed and opened through the
// Envelope (internal/keys), records live in a store.Store, and rotation of
// managed secret types is delegated to a Rotator registered per type.
package secrets

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/keyhold/keyhold/internal/errs"
	"github.com/keyhold/keyhold/internal/store"
)

// Storage tables. Metadata and versions are kept apart so that listing
// secrets never reads ciphertexts.
const (
	tableSecrets  = "secrets"
	tableVersions = "secret_versions"
)

// Secret types as they appear on the wire.
const (
	TypeGeneric = "Generic"
	TypeRds     = "Rds"
	TypeRAM     = "RAMCredentials"
	TypeECS     = "ECS"
)

// Built-in stage labels.
const (
	StageCurrent  = "ACSCurrent"
	StagePrevious = "ACSPrevious"
	StagePending  = "ACSPending"
)

// Data types.
const (
	DataText   = "text"
	DataBinary = "binary"
)

// Limits of the KMS secrets API.
const (
	MaxValueBytes          = 30720
	MaxVersions            = 10
	MaxExtendedConfigChars = 1024
	MaxTags                = 20
	MaxTagChars            = 128
	MaxNameChars           = 64
	MaxPolicyChars         = 32768
	maxVersionIDChars      = 64
	maxStageChars          = 64
	maxStagesPerVersion    = 20
)

// TimeFormat is the wire format of every timestamp.
const TimeFormat = "2006-01-02T15:04:05Z"

// FormatTime renders t as the API does; the zero time renders as "".
func FormatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(TimeFormat)
}

// Envelope seals and opens secret values. It is implemented by *keys.Service,
// the only place in Keyhold that calls a cipher.
type Envelope interface {
	ResolveKey(ctx context.Context, account, keyIDOrAlias string) (string, error) // "" → default service key id
	SealValue(ctx context.Context, account, keyID string, aad, plaintext []byte) ([]byte, error)
	OpenValue(ctx context.Context, account string, sealed, aad []byte) ([]byte, error)
}

// Rotator changes the credential of a managed secret on its target (host,
// database, RAM user) and records the result through the Service's rotation
// methods (AddPendingVersion, PromoteVersion, DiscardPending). versionID is
// the caller's idempotency key for the new version; supplied is a value the
// caller chose, or nil to let the rotator generate one. A rotation already
// in progress must be refused with errs.KindInUse.
type Rotator interface {
	Rotate(ctx context.Context, account string, s *Secret, versionID string, supplied []byte) error
}

// Validator checks a new managed secret against its target before anything
// is stored (for ECS: the host is enrolled, the user exists there and its
// agent may change it, the value has the sub-type's form). cfg is the
// parsed ExtendedConfig, value the SecretData as sent.
type Validator interface {
	ValidateCreate(ctx context.Context, account, subType string, cfg map[string]any, value []byte) error
}

// Tag is one resource tag.
type Tag struct {
	Key   string `json:"TagKey"`
	Value string `json:"TagValue"`
}

// RotationPolicy is a secret's automatic rotation setting.
type RotationPolicy struct {
	Enabled      bool          `json:"enabled,omitempty"`
	Interval     time.Duration `json:"interval,omitempty"`
	NextRotation time.Time     `json:"next,omitzero"`
	LastRotation time.Time     `json:"last,omitzero"`
}

// Secret is a secret's metadata (never its value).
type Secret struct {
	Name              string         `json:"name"`
	Arn               string         `json:"arn"`
	Type              string         `json:"type"`
	EncryptionKeyID   string         `json:"key_id"`
	Description       string         `json:"description,omitempty"`
	Tags              []Tag          `json:"tags,omitempty"`
	Rotation          RotationPolicy `json:"rotation"`
	ExtendedConfig    string         `json:"extended_config,omitempty"` // JSON object or ""
	CreateTime        time.Time      `json:"created"`
	UpdateTime        time.Time      `json:"updated"`
	PlannedDeleteTime time.Time      `json:"planned_delete,omitzero"`
	Policy            string         `json:"policy,omitempty"`
	// NextSeq orders versions by creation, which pruning relies on;
	// timestamps alone can tie within one second.
	NextSeq uint64 `json:"next_seq"`
}

// Managed reports whether only Keyhold's rotation may change the value.
func (s *Secret) Managed() bool { return s.Type != TypeGeneric }

// AutomaticRotation renders the wire value Enabled|Disabled|Invalid.
func (s *Secret) AutomaticRotation() string {
	switch {
	case !s.Managed():
		return "Invalid"
	case s.Rotation.Enabled:
		return "Enabled"
	}
	return "Disabled"
}

// RotationIntervalString renders the interval as the API does ("604800s"),
// or "" when none is set.
func (s *Secret) RotationIntervalString() string {
	if s.Rotation.Interval <= 0 {
		return ""
	}
	return FormatInterval(s.Rotation.Interval)
}

// PendingDeletion reports whether the secret is in its recovery window.
func (s *Secret) PendingDeletion() bool { return !s.PlannedDeleteTime.IsZero() }

// Version describes one version of a secret (never its value).
type Version struct {
	ID         string    `json:"id"`
	Stages     []string  `json:"stages,omitempty"`
	DataType   string    `json:"data_type"`
	CreateTime time.Time `json:"created"`
	Seq        uint64    `json:"seq"`
}

// HasStage reports whether the version carries the label.
func (v *Version) HasStage(stage string) bool {
	for _, s := range v.Stages {
		if s == stage {
			return true
		}
	}
	return false
}

// versionRecord is a stored version: metadata plus the sealed value.
type versionRecord struct {
	Version
	Sealed []byte `json:"sealed"`

	// stored is set by listVersions, with the labels as read, so that
	// writeVersions rewrites only the records whose labels changed (labels
	// are the only mutable part of a version).
	stored       bool
	storedStages []string
	// raw is the stored JSON while Sealed has not been decoded: listVersions
	// decodes only the header, since most callers need one ciphertext at
	// most (decoding every version's ciphertext dominated PutSecretValue,
	// which runs on the storage committer).
	raw []byte
}

// loadSealed decodes Sealed from the stored record if listVersions left it
// out.
func (v *versionRecord) loadSealed() error {
	if v.Sealed != nil || v.raw == nil {
		return nil
	}
	var s struct {
		Sealed []byte `json:"sealed"`
	}
	if err := json.Unmarshal(v.raw, &s); err != nil {
		return internal(err, "decoding a version")
	}
	v.Sealed, v.raw = s.Sealed, nil
	return nil
}

// Service implements the secrets API on top of a store and an envelope.
type Service struct {
	st       store.Store
	env      Envelope
	region   string
	now      func() time.Time
	rotators map[string]Rotator
	checks   map[string]Validator

	rotateLimit int // RotateSecret calls per account per hour; 0 = unlimited
	mu          sync.Mutex
	rotateCalls map[string][]time.Time
}

// Option configures New.
type Option func(*Service)

// WithRegion sets the region id used in ARNs (default cn-hangzhou).
func WithRegion(region string) Option { return func(s *Service) { s.region = region } }

// WithClock replaces time.Now, for tests and for the purge job.
func WithClock(now func() time.Time) Option { return func(s *Service) { s.now = now } }

// WithRotator registers the rotator for a managed secret type.
func WithRotator(secretType string, r Rotator) Option {
	return func(s *Service) { s.rotators[secretType] = r }
}

// WithRotateLimit caps RotateSecret calls per account per hour, as the
// managed service does (50); off by default.
func WithRotateLimit(perHour int) Option { return func(s *Service) { s.rotateLimit = perHour } }

// New returns a Service.
func New(st store.Store, env Envelope, opts ...Option) *Service {
	s := &Service{
		st:          st,
		env:         env,
		region:      "cn-hangzhou",
		now:         time.Now,
		rotators:    map[string]Rotator{},
		checks:      map[string]Validator{},
		rotateCalls: map[string][]time.Time{},
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// SetRotator registers (or replaces) the rotator for a secret type after
// construction, since rotators usually need the Service themselves.
func (s *Service) SetRotator(secretType string, r Rotator) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rotators[secretType] = r
}

// SetValidator registers the creation check for a managed secret type.
func (s *Service) SetValidator(secretType string, v Validator) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks[secretType] = v
}

func (s *Service) validator(secretType string) Validator {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.checks[secretType]
}

func (s *Service) rotator(secretType string) Rotator {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rotators[secretType]
}

// Region returns the region id used in ARNs.
func (s *Service) Region() string { return s.region }

// ARN returns the ARN of a secret in this deployment.
func (s *Service) ARN(account, name string) string {
	return "acs:kms:" + s.region + ":" + account + ":secret/" + name
}

// clock returns the current time truncated to the wire's precision, so that
// stored and returned times agree.
func (s *Service) clock() time.Time { return s.now().UTC().Truncate(time.Second) }

// resolveName accepts a secret name or the ARN of a secret of this account
// and region (the API allows both) and returns the name.
func (s *Service) resolveName(account, nameOrARN string) (string, error) {
	if nameOrARN == "" {
		return "", errs.E(errs.KindMissingParameter, "The parameter SecretName is required.")
	}
	if !strings.HasPrefix(nameOrARN, "acs:") {
		return nameOrARN, nil
	}
	prefix := "acs:kms:" + s.region + ":" + account + ":secret/"
	if !strings.HasPrefix(nameOrARN, prefix) {
		// Another account or region: nothing by that ARN lives here.
		return "", errNotFound()
	}
	return strings.TrimPrefix(nameOrARN, prefix), nil
}

func aad(arn, versionID string) []byte { return []byte(arn + "\x00" + versionID) }

func secretKey(account, name string) string { return store.Key(account, name) }

// versionPrefix ends in "|", which secret names cannot contain, so that the
// versions of "a" never share a prefix with those of "a/b".
func versionPrefix(account, name string) string { return store.Key(account, name) + "|" }

func versionKey(account, name, id string) string { return versionPrefix(account, name) + id }

// Error constructors with caller-safe messages.

func errNotFound() error {
	return errs.E(errs.KindSecretNotFound, "The specified secret is not found.")
}

func errInDeleteWindow() error {
	return errs.E(errs.KindInDeleteWindow, "The specified secret is scheduled for deletion.")
}

func errVersionNotFound() error {
	return errs.E(errs.KindSecretNotFound, "The specified secret version is not found.")
}

func invalid(format string, args ...any) error {
	return errs.E(errs.KindInvalidParameter, format, args...)
}

func missing(name string) error {
	return errs.E(errs.KindMissingParameter, "The parameter %s is required.", name)
}

func internal(err error, what string) error {
	var e *errs.Error
	if errors.As(err, &e) {
		return err
	}
	return errs.Wrap(errs.KindInternal, err, "Internal failure while %s.", what)
}

// Transaction helpers.

func getSecret(tx store.Tx, account, name string) (*Secret, error) {
	b, err := tx.Get(tableSecrets, secretKey(account, name))
	if errors.Is(err, store.ErrNotFound) {
		return nil, errNotFound()
	}
	if err != nil {
		return nil, internal(err, "reading a secret")
	}
	return decodeSecret(b)
}

// decodeSecret decodes a stored secret record.
func decodeSecret(b []byte) (*Secret, error) {
	var sec Secret
	if err := json.Unmarshal(b, &sec); err != nil {
		return nil, internal(err, "decoding a secret")
	}
	return &sec, nil
}

// getLive is getSecret that refuses secrets in their delete window.
func getLive(tx store.Tx, account, name string) (*Secret, error) {
	sec, err := getSecret(tx, account, name)
	if err != nil {
		return nil, err
	}
	if sec.PendingDeletion() {
		return nil, errInDeleteWindow()
	}
	return sec, nil
}

func putSecret(tx store.Tx, account string, sec *Secret) error {
	b, err := json.Marshal(sec)
	if err != nil {
		return internal(err, "encoding a secret")
	}
	if err := tx.Put(tableSecrets, secretKey(account, sec.Name), b); err != nil {
		return internal(err, "writing a secret")
	}
	return nil
}

// listVersions returns the secret's versions, oldest first, without their
// ciphertexts: call loadSealed on the one needed.
func listVersions(tx store.Tx, account, name string) ([]*versionRecord, error) {
	kvs, err := tx.List(tableVersions, versionPrefix(account, name), "", 0)
	if err != nil {
		return nil, internal(err, "listing versions")
	}
	out := make([]*versionRecord, 0, len(kvs))
	for _, kv := range kvs {
		v := versionRecord{raw: kv.Value, stored: true}
		if err := json.Unmarshal(kv.Value, &v.Version); err != nil {
			return nil, internal(err, "decoding a version")
		}
		v.storedStages = slices.Clone(v.Stages)
		out = append(out, &v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	return out, nil
}

func getVersion(tx store.Tx, account, name, id string) (*versionRecord, error) {
	b, err := tx.Get(tableVersions, versionKey(account, name, id))
	if errors.Is(err, store.ErrNotFound) {
		return nil, errVersionNotFound()
	}
	if err != nil {
		return nil, internal(err, "reading a version")
	}
	var v versionRecord
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, internal(err, "decoding a version")
	}
	return &v, nil
}

func putVersion(tx store.Tx, account, name string, v *versionRecord) error {
	if err := v.loadSealed(); err != nil {
		return err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return internal(err, "encoding a version")
	}
	if err := tx.Put(tableVersions, versionKey(account, name, v.ID), b); err != nil {
		return internal(err, "writing a version")
	}
	return nil
}

func deleteSecretTx(tx store.Tx, account, name string) error {
	kvs, err := tx.List(tableVersions, versionPrefix(account, name), "", 0)
	if err != nil {
		return internal(err, "listing versions")
	}
	for _, kv := range kvs {
		if err := tx.Delete(tableVersions, kv.Key); err != nil {
			return internal(err, "deleting a version")
		}
	}
	if err := tx.Delete(tableSecrets, secretKey(account, name)); err != nil {
		return internal(err, "deleting a secret")
	}
	return addCount(tx, account, name, -1)
}

// findStage returns the version carrying stage, or nil.
func findStage(vs []*versionRecord, stage string) *versionRecord {
	for _, v := range vs {
		if v.HasStage(stage) {
			return v
		}
	}
	return nil
}

func findVersion(vs []*versionRecord, id string) *versionRecord {
	for _, v := range vs {
		if v.ID == id {
			return v
		}
	}
	return nil
}

func removeStage(v *versionRecord, stage string) {
	out := v.Stages[:0]
	for _, s := range v.Stages {
		if s != stage {
			out = append(out, s)
		}
	}
	v.Stages = out
}

func addStage(v *versionRecord, stage string) {
	if !v.HasStage(stage) {
		v.Stages = append(v.Stages, stage)
	}
}

// attachStage points stage at target, taking it from whichever version held
// it. Moving ACSCurrent hands ACSPrevious to the version that was current, so
// that the last good value stays reachable. It returns the versions changed.
func attachStage(vs []*versionRecord, stage string, target *versionRecord) []*versionRecord {
	old := findStage(vs, stage)
	if old == target {
		return nil
	}
	changed := []*versionRecord{target}
	if old != nil {
		removeStage(old, stage)
		changed = append(changed, old)
	}
	if stage == StageCurrent && old != nil {
		if prev := findStage(vs, StagePrevious); prev != nil && prev != old {
			removeStage(prev, StagePrevious)
			changed = append(changed, prev)
		}
		// The new current may have been the previous one: it gives that up.
		removeStage(target, StagePrevious)
		addStage(old, StagePrevious)
	}
	addStage(target, stage)
	return changed
}

// prune drops the oldest unlabelled versions until at most max remain. It
// returns the ids to delete, or ok=false when labelled versions alone exceed
// the limit.
func prune(vs []*versionRecord, max int) (drop []string, ok bool) {
	excess := len(vs) - max
	for _, v := range vs { // oldest first
		if excess <= 0 {
			break
		}
		if len(v.Stages) == 0 {
			drop = append(drop, v.ID)
			excess--
		}
	}
	return drop, excess <= 0
}

func isBuiltinStage(stage string) bool {
	return stage == StageCurrent || stage == StagePrevious || stage == StagePending
}

func sortedCopy(ss []string) []string {
	out := append([]string(nil), ss...)
	sort.Strings(out)
	return out
}

func errLimit(format string, args ...any) error {
	return errs.E(errs.KindLimitExceeded, format, args...)
}

func errManaged(secretType, what string) error {
	return errs.E(errs.KindInvalidParameter,
		"%s is not allowed for secrets of type %s: only Keyhold's rotation changes their value.", what, secretType)
}
