package keys

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/keyhold/keyhold/internal/errs"
	"github.com/keyhold/keyhold/internal/store"
)

// Storage layout. Account-scoped records use store.Key(account, ...).
const (
	tableKeys     = "keys"         // account/keyID -> keyRecord (JSON)
	tableAliases  = "key-aliases"  // account/alias/name -> aliasRecord (JSON)
	tableDefaults = "key-defaults" // account/default -> service key id
	topicKeys     = "keys"         // notified on every key change
)

// Key states, specs and the other enumerations of the KMS API.
const (
	StateEnabled         = "Enabled"
	StateDisabled        = "Disabled"
	StatePendingDeletion = "PendingDeletion"

	SpecAES256      = "Aliyun_AES_256"
	UsageEncrypt    = "ENCRYPT/DECRYPT"
	OriginKMS       = "Aliyun_KMS"
	ProtectionSoft  = "SOFTWARE"
	RotationEnabled = "Enabled"
	RotationOff     = "Disabled"

	// ServiceKeyCreator marks the per-account default service key.
	ServiceKeyCreator = "Keyhold"
)

// Limits.
const (
	MinPendingWindowDays = 7
	MaxPendingWindowDays = 366
	MinRotationInterval  = 7 * 24 * time.Hour
	MaxRotationInterval  = 730 * 24 * time.Hour
	maxAliasesPerKey     = 50
	maxDescriptionLen    = 8192
)

// The wire layer may not import this package (see internal/deptest), yet
// *Service must implement the interface it declares. The value types in
// method signatures are therefore aliases of unnamed struct types: the wire
// layer spells the identical struct and the Go type checker treats both as
// one type.

// KeyMetadata describes a CMK. Times are UTC; zero means "not set".
type KeyMetadata = struct {
	KeyID, Arn, KeyState, KeySpec, KeyUsage, Origin, ProtectionLevel string
	Description, Creator                                             string
	CreationDate, DeleteDate                                         time.Time
	PrimaryKeyVersion, AutomaticRotation                             string
	RotationInterval                                                 time.Duration
	LastRotationDate, NextRotationDate                               time.Time
}

// KeyVersion describes one version of a CMK.
type KeyVersion = struct {
	KeyID, KeyVersionID string
	CreationDate        time.Time
}

// Alias is an alias of a CMK.
type Alias = struct {
	AliasName, AliasArn, KeyID string
}

// CreateKeyInput are the parameters of CreateKey; empty enumerations take
// their only supported value.
type CreateKeyInput = struct {
	Description, KeySpec, KeyUsage, Origin, ProtectionLevel string
	EnableAutomaticRotation                                 bool
	RotationInterval                                        time.Duration
	Creator                                                 string
}

type keyRecord struct {
	KeyID            string            `json:"id"`
	State            string            `json:"state"`
	KeySpec          string            `json:"spec"`
	KeyUsage         string            `json:"usage"`
	Origin           string            `json:"origin"`
	ProtectionLevel  string            `json:"protection"`
	Description      string            `json:"description,omitempty"`
	Creator          string            `json:"creator,omitempty"`
	Created          time.Time         `json:"created"`
	DeleteDate       time.Time         `json:"deleteDate,omitzero"`
	PrimaryVersion   string            `json:"primary"`
	AutoRotate       bool              `json:"autoRotate,omitempty"`
	RotationInterval time.Duration     `json:"rotationInterval,omitempty"`
	LastRotation     time.Time         `json:"lastRotation,omitzero"`
	Service          bool              `json:"service,omitempty"` // the account's default service key
	Tags             map[string]string `json:"tags,omitempty"`
	Versions         []versionRecord   `json:"versions"`
}

type versionRecord struct {
	ID       string    `json:"id"`
	Created  time.Time `json:"created"`
	Material []byte    `json:"material"` // sealed by the root key, AAD = cmkAAD
}

type aliasRecord struct {
	KeyID   string    `json:"keyId"`
	Created time.Time `json:"created"`
}

// cmkAAD binds wrapped material to its key and version. It is the key ARN
// with the region left out, so that renaming a deployment's region does not
// orphan its keys, followed by the version id.
func cmkAAD(account, keyID, versionID string) []byte {
	return []byte("acs:kms:*:" + account + ":key/" + keyID + "#" + versionID)
}

func (s *Service) keyARN(account, keyID string) string {
	return "acs:kms:" + s.region + ":" + account + ":key/" + keyID
}

func (s *Service) aliasARN(account, alias string) string {
	return "acs:kms:" + s.region + ":" + account + ":" + alias
}

func (s *Service) meta(account string, r *keyRecord) KeyMetadata {
	m := KeyMetadata{
		KeyID:             r.KeyID,
		Arn:               s.keyARN(account, r.KeyID),
		KeyState:          r.State,
		KeySpec:           r.KeySpec,
		KeyUsage:          r.KeyUsage,
		Origin:            r.Origin,
		ProtectionLevel:   r.ProtectionLevel,
		Description:       r.Description,
		Creator:           r.Creator,
		CreationDate:      r.Created,
		DeleteDate:        r.DeleteDate,
		PrimaryKeyVersion: r.PrimaryVersion,
		AutomaticRotation: RotationOff,
		LastRotationDate:  r.LastRotation,
	}
	if r.AutoRotate {
		m.AutomaticRotation = RotationEnabled
		m.RotationInterval = r.RotationInterval
		m.NextRotationDate = r.nextRotation()
	}
	return m
}

func (r *keyRecord) nextRotation() time.Time {
	if !r.AutoRotate || r.RotationInterval <= 0 {
		return time.Time{}
	}
	last := r.LastRotation
	if last.IsZero() {
		last = r.Created
	}
	return last.Add(r.RotationInterval)
}

// newID returns a random UUID (version 4), the shape of KMS key ids.
func newID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]), nil
}

// newVersion creates fresh material sealed under the root key.
func (s *Service) newVersion(account, keyID string, now time.Time) (versionRecord, error) {
	vid, err := newID()
	if err != nil {
		return versionRecord{}, errs.Wrap(errs.KindInternal, err, "generating a key version failed")
	}
	material := make([]byte, 32)
	defer clear(material)
	if _, err := rand.Read(material); err != nil {
		return versionRecord{}, errs.Wrap(errs.KindInternal, err, "generating key material failed")
	}
	sealed, err := s.barrier.seal(domainCMK, cmkAAD(account, keyID, vid), material)
	if err != nil {
		return versionRecord{}, errs.Wrap(errs.KindInternal, err, "wrapping key material failed")
	}
	return versionRecord{ID: vid, Created: now, Material: sealed}, nil
}

func (s *Service) nowUTC() time.Time { return s.now().UTC().Truncate(time.Second) }

// --- reading and resolving ---------------------------------------------------

func getKey(tx store.Tx, account, keyID string) (*keyRecord, error) {
	if keyID == "" {
		return nil, errs.E(errs.KindMissingParameter, "The parameter KeyId is required.")
	}
	raw, err := tx.Get(tableKeys, store.Key(account, keyID))
	if errors.Is(err, store.ErrNotFound) {
		return nil, errs.E(errs.KindKeyNotFound, "The specified Key %s is not found.", keyID)
	}
	if err != nil {
		return nil, errs.Wrap(errs.KindInternal, err, "reading the key failed")
	}
	var r keyRecord
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, errs.Wrap(errs.KindInternal, err, "decoding the key record failed")
	}
	return &r, nil
}

func putKey(tx store.Tx, account string, r *keyRecord) error {
	raw, err := json.Marshal(r)
	if err != nil {
		return errs.Wrap(errs.KindInternal, err, "encoding the key record failed")
	}
	if err := tx.Put(tableKeys, store.Key(account, r.KeyID), raw); err != nil {
		return errs.Wrap(errs.KindInternal, err, "writing the key record failed")
	}
	tx.Notify(topicKeys)
	return nil
}

// parseRef splits a KeyId parameter: a key id, a key ARN, an alias name or
// an alias ARN. It returns either keyID or alias (with its "alias/" prefix).
func parseRef(account, ref string) (keyID, alias string, err error) {
	if ref == "" {
		return "", "", errs.E(errs.KindMissingParameter, "The parameter KeyId is required.")
	}
	if rest, ok := strings.CutPrefix(ref, "acs:kms:"); ok {
		// acs:kms:{region}:{account}:key/{id} or ...:alias/{name}
		parts := strings.SplitN(rest, ":", 3)
		if len(parts) != 3 {
			return "", "", errs.E(errs.KindInvalidParameter, "The KeyId %s is not a valid ARN.", ref)
		}
		res := parts[2]
		if id, ok := strings.CutPrefix(res, "key/"); ok && id != "" {
			if parts[1] != account {
				return "", "", errs.E(errs.KindKeyNotFound, "The specified Key %s is not found.", ref)
			}
			return id, "", nil
		}
		if strings.HasPrefix(res, "alias/") {
			if parts[1] != account {
				return "", "", errs.E(errs.KindAliasNotFound, "The specified Alias %s is not found.", ref)
			}
			return "", res, nil
		}
		return "", "", errs.E(errs.KindInvalidParameter, "The KeyId %s is not a valid key or alias ARN.", ref)
	}
	if strings.HasPrefix(ref, "alias/") {
		return "", ref, nil
	}
	return ref, "", nil
}

// resolveTx turns a KeyId parameter into an existing key's record.
func resolveTx(tx store.Tx, account, ref string) (*keyRecord, error) {
	id, alias, err := parseRef(account, ref)
	if err != nil {
		return nil, err
	}
	if alias != "" {
		a, err := getAlias(tx, account, alias)
		if err != nil {
			return nil, err
		}
		id = a.KeyID
	}
	return getKey(tx, account, id)
}

func (s *Service) view(ctx context.Context, account, ref string) (*keyRecord, error) {
	var rec *keyRecord
	err := s.st.View(ctx, func(tx store.Tx) error {
		var err error
		rec, err = resolveTx(tx, account, ref)
		return err
	})
	return rec, storeErr(err)
}

// storeErr keeps domain errors and wraps anything else as internal.
func storeErr(err error) error {
	if err == nil {
		return nil
	}
	var e *errs.Error
	if errors.As(err, &e) {
		return err
	}
	return errs.Wrap(errs.KindInternal, err, "storage failed")
}

// mutate runs fn on a user-managed key in one transaction and drops the
// key from the cache afterwards.
func (s *Service) mutate(ctx context.Context, account, ref string, fn func(tx store.Tx, r *keyRecord) error) (*keyRecord, error) {
	var out *keyRecord
	err := s.st.Update(ctx, func(tx store.Tx) error {
		out = nil
		r, err := resolveTx(tx, account, ref)
		if err != nil {
			return err
		}
		if r.Service {
			return errServiceKey()
		}
		if err := fn(tx, r); err != nil {
			return err
		}
		out = r
		return putKey(tx, account, r)
	})
	if out != nil {
		s.cache.invalidate(account, out.KeyID)
	}
	if err != nil {
		return nil, storeErr(err)
	}
	return out, nil
}

func errServiceKey() error {
	return errs.E(errs.KindUnsupported, "The key is a service key managed by Keyhold and cannot be changed.")
}

// --- key lifecycle --------------------------------------------------------------

// CreateKey creates a symmetric AES-256 CMK with one version.
func (s *Service) CreateKey(ctx context.Context, account string, in CreateKeyInput) (KeyMetadata, error) {
	if err := checkEnum("KeySpec", in.KeySpec, SpecAES256); err != nil {
		return KeyMetadata{}, err
	}
	if err := checkEnum("KeyUsage", in.KeyUsage, UsageEncrypt); err != nil {
		return KeyMetadata{}, err
	}
	if err := checkEnum("Origin", in.Origin, OriginKMS); err != nil {
		return KeyMetadata{}, err
	}
	if err := checkEnum("ProtectionLevel", in.ProtectionLevel, ProtectionSoft); err != nil {
		return KeyMetadata{}, err
	}
	if len(in.Description) > maxDescriptionLen {
		return KeyMetadata{}, errs.E(errs.KindInvalidParameter, "The Description is too long.")
	}
	if in.EnableAutomaticRotation {
		if err := checkRotationInterval(in.RotationInterval); err != nil {
			return KeyMetadata{}, err
		}
	}
	creator := in.Creator
	if creator == "" {
		creator = account
	}
	r, err := s.createKey(ctx, account, in.Description, creator, in.EnableAutomaticRotation, in.RotationInterval, false)
	if err != nil {
		return KeyMetadata{}, err
	}
	return s.meta(account, r), nil
}

func (s *Service) newKeyRecord(account, description, creator string, autoRotate bool, interval time.Duration, service bool) (*keyRecord, error) {
	id, err := newID()
	if err != nil {
		return nil, errs.Wrap(errs.KindInternal, err, "generating a key id failed")
	}
	now := s.nowUTC()
	v, err := s.newVersion(account, id, now)
	if err != nil {
		return nil, err
	}
	r := &keyRecord{
		KeyID: id, State: StateEnabled, KeySpec: SpecAES256, KeyUsage: UsageEncrypt,
		Origin: OriginKMS, ProtectionLevel: ProtectionSoft, Description: description,
		Creator: creator, Created: now, PrimaryVersion: v.ID, Service: service,
		Versions: []versionRecord{v},
	}
	if autoRotate {
		r.AutoRotate, r.RotationInterval = true, interval
	}
	return r, nil
}

func (s *Service) createKey(ctx context.Context, account, description, creator string, autoRotate bool, interval time.Duration, service bool) (*keyRecord, error) {
	r, err := s.newKeyRecord(account, description, creator, autoRotate, interval, service)
	if err != nil {
		return nil, err
	}
	raw, err := json.Marshal(r)
	if err != nil {
		return nil, errs.Wrap(errs.KindInternal, err, "encoding the key record failed")
	}
	err = s.st.Update(ctx, func(tx store.Tx) error {
		tx.Notify(topicKeys)
		return tx.Insert(tableKeys, store.Key(account, r.KeyID), raw)
	})
	if err != nil {
		return nil, storeErr(err)
	}
	return r, nil
}

func checkEnum(name, v, only string) error {
	if v == "" || v == only {
		return nil
	}
	return errs.E(errs.KindInvalidParameter, "The parameter %s must be %s.", name, only)
}

func checkRotationInterval(d time.Duration) error {
	if d < MinRotationInterval || d > MaxRotationInterval {
		return errs.E(errs.KindInvalidParameter, "The RotationInterval must be between 7 and 730 days.")
	}
	return nil
}

// DescribeKey returns a key's metadata.
func (s *Service) DescribeKey(ctx context.Context, account, keyID string) (KeyMetadata, error) {
	r, err := s.view(ctx, account, keyID)
	if err != nil {
		return KeyMetadata{}, err
	}
	return s.meta(account, r), nil
}

// KeyARN resolves a KeyId parameter (id, ARN, alias) to the key's ARN.
func (s *Service) KeyARN(ctx context.Context, account, keyID string) (string, error) {
	r, err := s.view(ctx, account, keyID)
	if err != nil {
		return "", err
	}
	return s.keyARN(account, r.KeyID), nil
}

// ListKeys lists the account's keys, oldest first. The default service key
// is not listed (as with the managed service keys of real KMS). filters maps
// KeyState, KeySpec, KeyUsage or ProtectionLevel to accepted values.
func (s *Service) ListKeys(ctx context.Context, account string, filters map[string][]string, pageNumber, pageSize int) ([]KeyMetadata, int, error) {
	for k := range filters {
		switch k {
		case "KeyState", "KeySpec", "KeyUsage", "ProtectionLevel", "CreatorType":
		default:
			return nil, 0, errs.E(errs.KindInvalidParameter, "The filter key %s is not supported.", k)
		}
	}
	var recs []*keyRecord
	err := s.st.View(ctx, func(tx store.Tx) error {
		recs = nil
		kvs, err := tx.List(tableKeys, account+"/", "", 0)
		if err != nil {
			return err
		}
		for _, kv := range kvs {
			var r keyRecord
			if err := json.Unmarshal(kv.Value, &r); err != nil {
				return err
			}
			if !r.Service && matchFilters(&r, filters) {
				recs = append(recs, &r)
			}
		}
		return nil
	})
	if err != nil {
		return nil, 0, storeErr(err)
	}
	slices.SortFunc(recs, func(a, b *keyRecord) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.KeyID, b.KeyID)
	})
	lo, hi, err := page(len(recs), pageNumber, pageSize)
	if err != nil {
		return nil, 0, err
	}
	out := make([]KeyMetadata, 0, hi-lo)
	for _, r := range recs[lo:hi] {
		out = append(out, s.meta(account, r))
	}
	return out, len(recs), nil
}

func matchFilters(r *keyRecord, filters map[string][]string) bool {
	for k, vals := range filters {
		var v string
		switch k {
		case "KeyState":
			v = r.State
		case "KeySpec":
			v = r.KeySpec
		case "KeyUsage":
			v = r.KeyUsage
		case "ProtectionLevel":
			v = r.ProtectionLevel
		case "CreatorType":
			v = "User"
		}
		if len(vals) > 0 && !slices.Contains(vals, v) {
			return false
		}
	}
	return true
}

// page validates paging parameters (0 means default: page 1, size 10) and
// returns the slice bounds.
func page(total, number, size int) (lo, hi int, err error) {
	if number == 0 {
		number = 1
	}
	if size == 0 {
		size = 10
	}
	if number < 1 {
		return 0, 0, errs.E(errs.KindInvalidParameter, "The PageNumber must be at least 1.")
	}
	if size < 1 || size > 100 {
		return 0, 0, errs.E(errs.KindInvalidParameter, "The PageSize must be between 1 and 100.")
	}
	lo = min((number-1)*size, total)
	return lo, min(lo+size, total), nil
}

// UpdateKeyDescription replaces a key's description.
func (s *Service) UpdateKeyDescription(ctx context.Context, account, keyID, description string) error {
	if len(description) > maxDescriptionLen {
		return errs.E(errs.KindInvalidParameter, "The Description is too long.")
	}
	_, err := s.mutate(ctx, account, keyID, func(_ store.Tx, r *keyRecord) error {
		r.Description = description
		return nil
	})
	return err
}

// EnableKey enables a disabled key.
func (s *Service) EnableKey(ctx context.Context, account, keyID string) error {
	_, err := s.mutate(ctx, account, keyID, func(_ store.Tx, r *keyRecord) error {
		if r.State == StatePendingDeletion {
			return errs.E(errs.KindInvalidState, "The key is pending deletion; cancel the deletion first.")
		}
		r.State = StateEnabled
		return nil
	})
	return err
}

// DisableKey disables a key: it refuses every cryptographic use until
// enabled again.
func (s *Service) DisableKey(ctx context.Context, account, keyID string) error {
	_, err := s.mutate(ctx, account, keyID, func(_ store.Tx, r *keyRecord) error {
		if r.State == StatePendingDeletion {
			return errs.E(errs.KindInvalidState, "The key is pending deletion.")
		}
		r.State = StateDisabled
		return nil
	})
	return err
}

// ScheduleKeyDeletion puts a key in PendingDeletion; PurgeDue deletes it
// (and its material, so data under it becomes unrecoverable) after
// pendingWindowInDays (7–366).
func (s *Service) ScheduleKeyDeletion(ctx context.Context, account, keyID string, pendingWindowInDays int) error {
	if pendingWindowInDays < MinPendingWindowDays || pendingWindowInDays > MaxPendingWindowDays {
		return errs.E(errs.KindInvalidParameter, "The PendingWindowInDays must be between %d and %d.", MinPendingWindowDays, MaxPendingWindowDays)
	}
	_, err := s.mutate(ctx, account, keyID, func(_ store.Tx, r *keyRecord) error {
		if r.State == StatePendingDeletion {
			return errs.E(errs.KindInvalidState, "The key is already pending deletion.")
		}
		r.State = StatePendingDeletion
		r.DeleteDate = s.nowUTC().Add(time.Duration(pendingWindowInDays) * 24 * time.Hour)
		return nil
	})
	return err
}

// CancelKeyDeletion returns a key pending deletion to Enabled, as KMS does.
func (s *Service) CancelKeyDeletion(ctx context.Context, account, keyID string) error {
	_, err := s.mutate(ctx, account, keyID, func(_ store.Tx, r *keyRecord) error {
		if r.State != StatePendingDeletion {
			return errs.E(errs.KindInvalidState, "The key is not pending deletion.")
		}
		r.State = StateEnabled
		r.DeleteDate = time.Time{}
		return nil
	})
	return err
}

// UpdateRotationPolicy turns automatic key rotation on (interval 7–730
// days) or off. RotateDue performs the rotations.
func (s *Service) UpdateRotationPolicy(ctx context.Context, account, keyID string, enable bool, interval time.Duration) error {
	if enable {
		if err := checkRotationInterval(interval); err != nil {
			return err
		}
	}
	_, err := s.mutate(ctx, account, keyID, func(_ store.Tx, r *keyRecord) error {
		r.AutoRotate = enable
		r.RotationInterval = 0
		if enable {
			r.RotationInterval = interval
		}
		return nil
	})
	return err
}

// --- versions ------------------------------------------------------------------

// CreateKeyVersion adds a version and makes it primary. Older versions stay
// and keep decrypting what they encrypted.
func (s *Service) CreateKeyVersion(ctx context.Context, account, keyID string) (KeyVersion, error) {
	var v versionRecord
	r, err := s.mutate(ctx, account, keyID, func(_ store.Tx, r *keyRecord) error {
		if r.State != StateEnabled {
			return errDisabled(r)
		}
		var err error
		v, err = s.newVersion(account, r.KeyID, s.nowUTC())
		if err != nil {
			return err
		}
		r.Versions = append(r.Versions, v)
		r.PrimaryVersion = v.ID
		r.LastRotation = v.Created
		return nil
	})
	if err != nil {
		return KeyVersion{}, err
	}
	return KeyVersion{KeyID: r.KeyID, KeyVersionID: v.ID, CreationDate: v.Created}, nil
}

// ListKeyVersions lists a key's versions, oldest first.
func (s *Service) ListKeyVersions(ctx context.Context, account, keyID string, pageNumber, pageSize int) ([]KeyVersion, int, error) {
	r, err := s.view(ctx, account, keyID)
	if err != nil {
		return nil, 0, err
	}
	lo, hi, err := page(len(r.Versions), pageNumber, pageSize)
	if err != nil {
		return nil, 0, err
	}
	out := make([]KeyVersion, 0, hi-lo)
	for _, v := range r.Versions[lo:hi] {
		out = append(out, KeyVersion{KeyID: r.KeyID, KeyVersionID: v.ID, CreationDate: v.Created})
	}
	return out, len(r.Versions), nil
}

// DescribeKeyVersion describes one version of a key.
func (s *Service) DescribeKeyVersion(ctx context.Context, account, keyID, versionID string) (KeyVersion, error) {
	if versionID == "" {
		return KeyVersion{}, errs.E(errs.KindMissingParameter, "The parameter KeyVersionId is required.")
	}
	r, err := s.view(ctx, account, keyID)
	if err != nil {
		return KeyVersion{}, err
	}
	for _, v := range r.Versions {
		if v.ID == versionID {
			return KeyVersion{KeyID: r.KeyID, KeyVersionID: v.ID, CreationDate: v.Created}, nil
		}
	}
	return KeyVersion{}, errs.E(errs.KindNotFound, "The specified KeyVersion %s is not found.", versionID)
}

func errDisabled(r *keyRecord) error {
	if r.State == StatePendingDeletion {
		return errs.E(errs.KindDisabled, "The key %s is pending deletion.", r.KeyID)
	}
	return errs.E(errs.KindDisabled, "The key %s is disabled.", r.KeyID)
}

// --- background jobs -----------------------------------------------------------

// PurgeDue deletes keys whose deletion date has passed, with their aliases,
// and returns how many it deleted. The server calls it periodically (on the
// leader); running it twice is harmless.
func (s *Service) PurgeDue(ctx context.Context, now time.Time) (int, error) {
	due, err := s.scan(ctx, func(r *keyRecord) bool {
		return r.State == StatePendingDeletion && !r.DeleteDate.After(now)
	})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, d := range due {
		deleted := false
		err := s.st.Update(ctx, func(tx store.Tx) error {
			deleted = false
			r, err := getKey(tx, d.account, d.keyID)
			if errs.Is(err, errs.KindKeyNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			if r.State != StatePendingDeletion || r.DeleteDate.After(now) {
				return nil // cancelled meanwhile
			}
			aliases, err := tx.List(tableAliases, d.account+"/", "", 0)
			if err != nil {
				return err
			}
			for _, kv := range aliases {
				var a aliasRecord
				if json.Unmarshal(kv.Value, &a) == nil && a.KeyID == r.KeyID {
					if err := tx.Delete(tableAliases, kv.Key); err != nil {
						return err
					}
				}
			}
			tx.Notify(topicKeys)
			deleted = true
			return tx.Delete(tableKeys, store.Key(d.account, r.KeyID))
		})
		s.cache.invalidate(d.account, d.keyID)
		if err != nil {
			return n, storeErr(err)
		}
		if deleted {
			n++
		}
	}
	return n, nil
}

// RotateDue creates a new version for every enabled key whose automatic
// rotation is due, and returns how many it rotated.
func (s *Service) RotateDue(ctx context.Context, now time.Time) (int, error) {
	due, err := s.scan(ctx, func(r *keyRecord) bool {
		next := r.nextRotation()
		return r.State == StateEnabled && !next.IsZero() && !next.After(now)
	})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, d := range due {
		_, err := s.mutate(ctx, d.account, d.keyID, func(_ store.Tx, r *keyRecord) error {
			next := r.nextRotation()
			if r.State != StateEnabled || next.IsZero() || next.After(now) {
				return errNothingToDo
			}
			v, err := s.newVersion(d.account, r.KeyID, s.nowUTC())
			if err != nil {
				return err
			}
			r.Versions = append(r.Versions, v)
			r.PrimaryVersion = v.ID
			r.LastRotation = v.Created
			return nil
		})
		if errors.Is(err, errNothingToDo) {
			continue
		}
		if err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

var errNothingToDo = &errs.Error{Kind: errs.KindInvalidState, Message: "nothing to do"}

type keyRef struct{ account, keyID string }

// scan lists every account's keys matching pred.
func (s *Service) scan(ctx context.Context, pred func(*keyRecord) bool) ([]keyRef, error) {
	var out []keyRef
	err := s.st.View(ctx, func(tx store.Tx) error {
		out = nil
		kvs, err := tx.List(tableKeys, "", "", 0)
		if err != nil {
			return err
		}
		for _, kv := range kvs {
			var r keyRecord
			if err := json.Unmarshal(kv.Value, &r); err != nil {
				return err
			}
			account, _, _ := strings.Cut(kv.Key, "/")
			if pred(&r) {
				out = append(out, keyRef{account, r.KeyID})
			}
		}
		return nil
	})
	return out, storeErr(err)
}
