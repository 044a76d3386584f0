package secrets

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/keyhold/keyhold/internal/errs"
	"github.com/keyhold/keyhold/internal/store"
)

// The methods in this file are the seam for Rotators (internal/rotation):
// they may change managed secrets, which the public API refuses, and they
// implement steps 1, 4 and the roll-back of the rotation state machine.

// AddPendingVersion durably records a new value labelled ACSPending (step 1
// of a rotation, before anything is sent to the target). Repeating it with
// the same version id and value is a success.
func (s *Service) AddPendingVersion(ctx context.Context, account, name, versionID string, value []byte) (*Version, error) {
	if err := validateVersionID(versionID); err != nil {
		return nil, err
	}
	if len(value) > MaxValueBytes {
		return nil, invalid("The secret value exceeds the limit of %d bytes.", MaxValueBytes)
	}
	return s.addVersion(ctx, account, name, versionID, value, DataText, []string{StagePending}, true)
}

// PromoteVersion makes versionID current (the old current becomes
// ACSPrevious), drops its ACSPending label and records the rotation time.
func (s *Service) PromoteVersion(ctx context.Context, account, name, versionID string) error {
	_, err := s.update(ctx, account, name, func(tx store.Tx, sec *Secret) error {
		vs, err := listVersions(tx, account, name)
		if err != nil {
			return err
		}
		v := findVersion(vs, versionID)
		if v == nil {
			return errVersionNotFound()
		}
		removeStage(v, StagePending)
		attachStage(vs, StageCurrent, v)
		now := s.clock()
		sec.Rotation.LastRotation = now
		if sec.Rotation.Enabled && sec.Rotation.Interval > 0 {
			sec.Rotation.NextRotation = now.Add(sec.Rotation.Interval)
		}
		return writeVersions(tx, account, name, vs)
	})
	return err
}

// DiscardPending removes the ACSPending label from versionID after a
// rotation rolled back; the version itself ages out by pruning.
func (s *Service) DiscardPending(ctx context.Context, account, name, versionID string) error {
	_, err := s.update(ctx, account, name, func(tx store.Tx, sec *Secret) error {
		vs, err := listVersions(tx, account, name)
		if err != nil {
			return err
		}
		v := findVersion(vs, versionID)
		if v == nil {
			return errVersionNotFound()
		}
		removeStage(v, StagePending)
		return writeVersions(tx, account, name, vs)
	})
	return err
}

// DeferRotation moves a due automatic rotation to until at the earliest,
// after a rotation that did not succeed: the slot stays due otherwise, and
// the scheduler (of this replica or, after a failover, another) would
// start the next attempt at once, again and again against a failing host.
// A secret that is gone or not scheduled before until is left alone.
func (s *Service) DeferRotation(ctx context.Context, account, name string, until time.Time) error {
	_, err := s.update(ctx, account, name, func(_ store.Tx, sec *Secret) error {
		if r := &sec.Rotation; r.Enabled && r.NextRotation.Before(until) {
			r.NextRotation = until
		}
		return nil
	})
	if errs.Is(err, errs.KindSecretNotFound) || errs.Is(err, errs.KindInDeleteWindow) {
		return nil // nothing left to schedule
	}
	return err
}

// ReadVersion returns the plain value of one version by id or, when
// versionID is "", by stage, whatever the secret's type.
func (s *Service) ReadVersion(ctx context.Context, account, name, versionID, stage string) ([]byte, *Version, error) {
	var sec *Secret
	var rec *versionRecord
	err := s.st.View(ctx, func(tx store.Tx) error {
		var err error
		if sec, err = getLive(tx, account, name); err != nil {
			return err
		}
		if versionID != "" {
			rec, err = getVersion(tx, account, name, versionID)
			return err
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
		return nil, nil, err
	}
	plain, err := s.env.OpenValue(ctx, account, rec.Sealed, aad(sec.Arn, rec.ID))
	if err != nil {
		return nil, nil, internal(err, "decrypting the secret value")
	}
	v := rec.Version
	return plain, &v, nil
}

// Due names a secret whose automatic rotation is due.
type Due struct {
	Account string
	Secret  *Secret
}

// DueForRotation lists, across accounts, the live secrets with automatic
// rotation enabled whose next rotation time is at or before now. It runs
// every scan interval over every secret, so it decodes only the fields
// that decide, and a secret in full only when it is due.
func (s *Service) DueForRotation(ctx context.Context, now time.Time) ([]Due, error) {
	var out []Due
	err := s.st.View(ctx, func(tx store.Tx) error {
		out = nil
		return walkSecrets(tx, "", func(kv store.KV) error {
			if !bytes.Contains(kv.Value, rotationOnField) {
				return nil // automatic rotation off: skip the decode
			}
			var f struct {
				Type              string         `json:"type"`
				Rotation          RotationPolicy `json:"rotation"`
				PlannedDeleteTime time.Time      `json:"planned_delete"`
			}
			if err := json.Unmarshal(kv.Value, &f); err != nil {
				return internal(err, "decoding a secret")
			}
			r := f.Rotation
			if f.Type == TypeGeneric || !r.Enabled || !f.PlannedDeleteTime.IsZero() || r.NextRotation.After(now) {
				return nil
			}
			sec, err := decodeSecret(kv.Value)
			if err != nil {
				return err
			}
			account, _, _ := strings.Cut(kv.Key, "/")
			out = append(out, Due{Account: account, Secret: sec})
			return nil
		})
	})
	return out, err
}
