package fleet

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"time"

	"github.com/keyhold/keyhold/internal/agentapi/wire"
	"github.com/keyhold/keyhold/internal/errs"
	"github.com/keyhold/keyhold/internal/store"
)

// Enrollment token limits.
const (
	DefaultTokenTTL  = time.Hour
	MinTokenTTL      = time.Minute
	MaxTokenTTL      = 30 * 24 * time.Hour
	DefaultTokenUses = 1
	MaxTokenUses     = 10000
)

type tokenRecord struct {
	Hash    string    `json:"hash"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
	Uses    int       `json:"uses"` // allowed
	Used    int       `json:"used"`
}

// EnrollmentToken is a freshly created token; Token is shown once.
type EnrollmentToken struct {
	Token   string
	Expires time.Time
	Uses    int
}

// CreateEnrollmentToken creates a token valid for ttl (0: 1 h) and uses
// enrollments (0: 1). Only its hash is stored.
func (s *Service) CreateEnrollmentToken(ctx context.Context, account string, ttl time.Duration, uses int) (EnrollmentToken, error) {
	if ttl == 0 {
		ttl = DefaultTokenTTL
	}
	if uses == 0 {
		uses = DefaultTokenUses
	}
	if ttl < MinTokenTTL || ttl > MaxTokenTTL {
		return EnrollmentToken{}, errs.E(errs.KindInvalidParameter, "The parameter Ttl must be between 1m and 720h.")
	}
	if uses < 1 || uses > MaxTokenUses {
		return EnrollmentToken{}, errs.E(errs.KindInvalidParameter, "The parameter Uses must be between 1 and %d.", MaxTokenUses)
	}
	if s.caPin == "" {
		return EnrollmentToken{}, errs.E(errs.KindUnavailable, "Enrollment is not available: the deployment CA is not configured.")
	}
	tok := wire.NewToken(s.caPin)
	now := s.now().UTC()
	rec := tokenRecord{Hash: wire.TokenHash(tok), Created: now, Expires: now.Add(ttl), Uses: uses}
	b, _ := json.Marshal(rec)
	err := s.st.Update(ctx, func(tx store.Tx) error {
		if err := tx.Insert(tableTokens, store.Key(account, rec.Hash), b); err != nil {
			return err
		}
		return tx.Insert(tableTokenIndex, rec.Hash, []byte(account))
	})
	if err != nil {
		return EnrollmentToken{}, errs.Wrap(errs.KindInternal, err, "The enrollment token cannot be stored.")
	}
	return EnrollmentToken{Token: tok, Expires: rec.Expires, Uses: uses}, nil
}

// errTokenRefused is the one answer for an unknown, expired or used-up
// token, so that a caller learns nothing about which it was.
func errTokenRefused() error {
	return errs.E(errs.KindForbidden, "The enrollment token is not valid: it is unknown, expired or already used.")
}

// Enroll registers a new host with the agent's public key, consuming one
// use of the token. It returns the new host.
func (s *Service) Enroll(ctx context.Context, token string, pub ed25519.PublicKey, inv Inventory) (*Host, error) {
	if _, err := wire.ParseToken(token); err != nil {
		return nil, errTokenRefused()
	}
	if len(pub) != ed25519.PublicKeySize {
		return nil, errs.E(errs.KindInvalidParameter, "The agent public key must be an Ed25519 key.")
	}
	if err := inv.validate(); err != nil {
		return nil, err
	}
	hash := wire.TokenHash(token)
	now := s.now().UTC()
	var host *Host
	err := s.st.Update(ctx, func(tx store.Tx) error {
		host = nil
		acct, err := tx.Get(tableTokenIndex, hash)
		if errors.Is(err, store.ErrNotFound) {
			return errTokenRefused()
		} else if err != nil {
			return err
		}
		account := string(acct)
		key := store.Key(account, hash)
		b, err := tx.Get(tableTokens, key)
		if errors.Is(err, store.ErrNotFound) {
			return errTokenRefused()
		} else if err != nil {
			return err
		}
		var rec tokenRecord
		if err := json.Unmarshal(b, &rec); err != nil {
			return err
		}
		if !now.Before(rec.Expires) || rec.Used >= rec.Uses {
			return errTokenRefused()
		}
		rec.Used++
		if rec.Used >= rec.Uses {
			// Used up: forget it entirely (a later try is refused as unknown).
			if err := tx.Delete(tableTokens, key); err != nil {
				return err
			}
			if err := tx.Delete(tableTokenIndex, hash); err != nil {
				return err
			}
		} else {
			nb, _ := json.Marshal(rec)
			if err := tx.Put(tableTokens, key, nb); err != nil {
				return err
			}
		}
		var id string
		for range 8 {
			id = newHostID()
			if err := tx.Insert(tableHostIndex, id, []byte(account)); err == nil {
				break
			} else if !errors.Is(err, store.ErrExists) {
				return err
			}
			id = ""
		}
		if id == "" {
			return errs.E(errs.KindInternal, "No free host id was found.")
		}
		hr := hostRecord{Host: Host{ID: id, Account: account, EnrolledAt: now, LastSeen: now}, PublicKey: pub}
		hr.applyInventory(inv)
		if err := putHost(tx, &hr); err != nil {
			return err
		}
		tx.Notify(s.HostsTopic(account))
		h := hr.Host
		host = &h
		return nil
	})
	if err != nil {
		return nil, asDomain(err, "The host cannot be enrolled.")
	}
	s.decorate(host)
	return host, nil
}

// asDomain passes domain errors through and wraps storage failures.
func asDomain(err error, msg string) error {
	if err == nil {
		return nil
	}
	var e *errs.Error
	if errors.As(err, &e) {
		return err
	}
	return errs.Wrap(errs.KindInternal, err, "%s", msg)
}
