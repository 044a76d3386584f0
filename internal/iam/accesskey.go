package iam

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/keyhold/keyhold/internal/apicall"
	"github.com/keyhold/keyhold/internal/errs"
	"github.com/keyhold/keyhold/internal/store"
)

const (
	// cacheMaxAge bounds how long a cached key is trusted should a change
	// notification from another replica ever be lost.
	cacheMaxAge = 5 * time.Minute
	// lastUsedEvery is how often LastUsedDate is written per key at most:
	// a write per request would put an fsync on every call.
	lastUsedEvery = time.Minute
	// maxAccessKeyIDLen refuses absurd ids before they reach storage.
	maxAccessKeyIDLen = 128
)

// accessKeyRecord is the stored form of an access key.
type accessKeyRecord struct {
	AccessKey
	SealedSecret []byte `json:"sealed_secret"`
}

// cachedKey is an access key with its secret opened, as served from memory.
type cachedKey struct {
	principal apicall.Principal
	secret    string
	active    bool
	loaded    time.Time
	lastUsed  atomic.Int64 // unix ns of the last LastUsedDate write requested
}

type touchReq struct {
	id string
	at time.Time
}

// secretAAD binds a sealed secret to its access key id, so a sealed secret
// copied onto another key's record does not open.
func secretAAD(accessKeyID string) []byte {
	return []byte("iam/access_key_secret/" + accessKeyID)
}

// LookupAccessKey returns the principal owning accessKeyID and the key's
// secret, for the wire layer to verify a request signature. Unknown ids
// give ErrAccessKeyNotFound, inactive keys ErrAccessKeyDisabled.
//
// It is on every request's path, so opened secrets are cached in memory
// and invalidated on change. A successful lookup counts as use of the key
// (the wire layer looks a key up only to check a signature made with it);
// LastUsedDate is written in the background, at most once a minute per key.
func (s *Service) LookupAccessKey(ctx context.Context, accessKeyID string) (apicall.Principal, string, error) {
	if accessKeyID == "" || len(accessKeyID) > maxAccessKeyIDLen {
		return apicall.Principal{}, "", ErrAccessKeyNotFound
	}
	now := time.Now()
	if v, ok := s.cache.Load(accessKeyID); ok {
		e := v.(*cachedKey)
		if now.Sub(e.loaded) < cacheMaxAge {
			return s.use(e, now)
		}
	}

	gen := s.gen.Load()
	rec, err := s.getRecord(ctx, accessKeyID)
	if err != nil {
		return apicall.Principal{}, "", err
	}
	secret, err := s.sealer.OpenWithRoot(secretAAD(accessKeyID), rec.SealedSecret)
	if err != nil {
		return apicall.Principal{}, "", errs.Wrap(errs.KindInternal, err, "The access key cannot be read.")
	}
	e := &cachedKey{
		principal: apicall.Principal{
			Account:     rec.Account,
			AccessKeyID: rec.AccessKeyID,
			Kind:        rec.Kind,
			Name:        rec.UserName,
		},
		secret: string(secret),
		active: rec.Status == StatusActive,
		loaded: now,
	}
	clear(secret)
	if !rec.LastUsedDate.IsZero() { // UnixNano of the zero time is undefined
		e.lastUsed.Store(rec.LastUsedDate.UnixNano())
	}

	s.mu.Lock()
	if s.gen.Load() == gen {
		s.cache.Store(accessKeyID, e)
	}
	s.mu.Unlock()
	return s.use(e, now)
}

func (s *Service) use(e *cachedKey, now time.Time) (apicall.Principal, string, error) {
	if !e.active {
		return apicall.Principal{}, "", ErrAccessKeyDisabled
	}
	last := e.lastUsed.Load()
	if now.UnixNano()-last >= int64(lastUsedEvery) && e.lastUsed.CompareAndSwap(last, now.UnixNano()) {
		select {
		case s.touch <- touchReq{id: e.principal.AccessKeyID, at: now}:
		default: // writer behind: skip this mark rather than slow the request
		}
	}
	return e.principal, e.secret, nil
}

// lastUsedWriter records LastUsedDate marks until Close.
func (s *Service) lastUsedWriter() {
	for {
		select {
		case <-s.ctx.Done():
			return
		case t := <-s.touch:
			ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
			err := s.st.Update(ctx, func(tx store.Tx) error {
				rec, err := getRecordTx(tx, t.id)
				if err != nil || !rec.LastUsedDate.Before(t.at) {
					return err
				}
				rec.LastUsedDate = t.at.UTC()
				return putRecordTx(tx, rec)
			})
			cancel()
			if err != nil && s.ctx.Err() == nil {
				// Metadata only: losing a mark is harmless, so no retry.
				slog.Warn("iam: recording access key use failed", "access_key_id", t.id, "err", err)
			}
		}
	}
}

// GetAccessKey returns an access key's metadata (never its secret).
func (s *Service) GetAccessKey(ctx context.Context, accessKeyID string) (AccessKey, error) {
	rec, err := s.getRecord(ctx, accessKeyID)
	if err != nil {
		return AccessKey{}, err
	}
	return rec.AccessKey, nil
}

// SetAccessKeyStatus activates or deactivates an access key. Every replica
// stops (or resumes) accepting it at once.
func (s *Service) SetAccessKeyStatus(ctx context.Context, accessKeyID string, status AccessKeyStatus) error {
	if status != StatusActive && status != StatusInactive {
		return errs.E(errs.KindInvalidParameter, "The parameter Status must be Active or Inactive.")
	}
	err := s.st.Update(ctx, func(tx store.Tx) error {
		rec, err := getRecordTx(tx, accessKeyID)
		if err != nil {
			return err
		}
		rec.Status = status
		tx.Notify(topicAccessKeys)
		return putRecordTx(tx, rec)
	})
	// Locally at once; other replicas on the notification.
	s.invalidate(accessKeyID)
	return err
}

// invalidate drops one cached key, or all of them when id is "".
func (s *Service) invalidate(id string) {
	s.mu.Lock()
	s.gen.Add(1)
	if id == "" {
		s.cache.Clear()
	} else {
		s.cache.Delete(id)
	}
	s.mu.Unlock()
}

func (s *Service) getRecord(ctx context.Context, id string) (accessKeyRecord, error) {
	var rec accessKeyRecord
	err := s.st.View(ctx, func(tx store.Tx) error {
		r, err := getRecordTx(tx, id)
		rec = r
		return err
	})
	return rec, err
}

func getRecordTx(tx store.Tx, id string) (accessKeyRecord, error) {
	var rec accessKeyRecord
	val, err := tx.Get(TableAccessKeys, id)
	if errors.Is(err, store.ErrNotFound) {
		return rec, ErrAccessKeyNotFound
	}
	if err != nil {
		return rec, errs.Wrap(errs.KindInternal, err, "The access key cannot be read.")
	}
	if err := json.Unmarshal(val, &rec); err != nil {
		return rec, errs.Wrap(errs.KindInternal, err, "The access key cannot be read.")
	}
	return rec, nil
}

func putRecordTx(tx store.Tx, rec accessKeyRecord) error {
	val, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("iam: encode access key: %w", err)
	}
	return tx.Put(TableAccessKeys, rec.AccessKeyID, val)
}

// String hides the secret.
func (p AccessKeyPair) String() string {
	return "AccessKeyPair{" + p.AccessKeyID + ", secret: [redacted]}"
}

// GoString hides the secret from %#v.
func (p AccessKeyPair) GoString() string { return p.String() }

// LogValue hides the secret from log/slog.
func (p AccessKeyPair) LogValue() slog.Value {
	return slog.GroupValue(slog.String("access_key_id", p.AccessKeyID))
}
