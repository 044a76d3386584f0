package iam

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/keyhold/keyhold/internal/errs"
	"github.com/keyhold/keyhold/internal/store"
)

// maxKeysPerUser is RAM's limit of access keys per user (and per root).
const maxKeysPerUser = 2

// keyIndexPrefix lists the access keys of a user, or of the account root
// when user is "".
func keyIndexPrefix(account, user string) string {
	if user == "" {
		return store.Key(account, "r", "")
	}
	return store.Key(account, "u", user, "")
}

// newKeyTx creates an access key for a user ("" = the account root) inside
// tx: the sealed record and its index row. The caller seals the secret
// before the transaction (sealing is not idempotent under retries, and the
// pair must be the one returned).
func (s *Service) newKeyRecord(account, user string) (AccessKeyPair, accessKeyRecord, error) {
	pair := AccessKeyPair{AccessKeyID: newAccessKeyID(), AccessKeySecret: randomBase62(30)}
	sealed, err := s.sealer.SealWithRoot(secretAAD(pair.AccessKeyID), []byte(pair.AccessKeySecret))
	if err != nil {
		return AccessKeyPair{}, accessKeyRecord{}, fmt.Errorf("iam: seal access key secret: %w", err)
	}
	rec := accessKeyRecord{
		AccessKey: AccessKey{
			AccessKeyID: pair.AccessKeyID, Account: account, Kind: KindUser, UserName: user,
			Status: StatusActive, CreateDate: s.now(),
		},
		SealedSecret: sealed,
	}
	if user == "" {
		rec.Kind, rec.UserName = KindRoot, RootName
	}
	return pair, rec, nil
}

func insertKeyTx(tx store.Tx, rec accessKeyRecord, user string) error {
	raw, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if err := tx.Insert(TableAccessKeys, rec.AccessKeyID, raw); err != nil {
		return err
	}
	tx.Notify(topicAccessKeys)
	return tx.Put(TableUserKeys, keyIndexPrefix(rec.Account, user)+rec.AccessKeyID, nil)
}

// CreateAccessKey creates an access key for a user of the account, or for
// the account root when user is "". The returned pair is the only time the
// secret leaves the server; it is stored sealed under the root key.
func (s *Service) CreateAccessKey(ctx context.Context, account, user string) (AccessKeyPair, AccessKey, error) {
	if user != "" {
		if err := checkUserName(user); err != nil {
			return AccessKeyPair{}, AccessKey{}, err
		}
	}
	pair, rec, err := s.newKeyRecord(account, user)
	if err != nil {
		return AccessKeyPair{}, AccessKey{}, err
	}
	err = s.st.Update(ctx, func(tx store.Tx) error {
		if user != "" {
			if _, err := getUserTx(tx, account, user); err != nil {
				return err
			}
		}
		n, err := tx.Count(TableUserKeys, keyIndexPrefix(account, user))
		if err != nil {
			return err
		}
		if n >= maxKeysPerUser {
			who := "the account root"
			if user != "" {
				who = "the user " + user
			}
			return ramErr(CodeAccessKeyLimit, "%s already has %d access keys, the most allowed.", capitalize(who), maxKeysPerUser)
		}
		return insertKeyTx(tx, rec, user)
	})
	if err != nil {
		return AccessKeyPair{}, AccessKey{}, storeErr(err, "Creating the access key")
	}
	return pair, rec.AccessKey, nil
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// ListAccessKeys lists the access keys of a user ("" = the account root),
// never their secrets.
func (s *Service) ListAccessKeys(ctx context.Context, account, user string) ([]AccessKey, error) {
	if user != "" {
		if err := checkUserName(user); err != nil {
			return nil, err
		}
	}
	var out []AccessKey
	err := s.st.View(ctx, func(tx store.Tx) error {
		out = nil
		if user != "" {
			if _, err := getUserTx(tx, account, user); err != nil {
				return err
			}
		}
		prefix := keyIndexPrefix(account, user)
		kvs, err := tx.List(TableUserKeys, prefix, "", 0)
		if err != nil {
			return err
		}
		for _, kv := range kvs {
			rec, err := getRecordTx(tx, strings.TrimPrefix(kv.Key, prefix))
			if err != nil {
				return err
			}
			out = append(out, rec.AccessKey)
		}
		return nil
	})
	return out, storeErr(err, "Listing access keys")
}

// ownedKeyTx returns the record of a key that belongs to the user ("" =
// root) in the account; any other key is reported as not existing, so a
// caller cannot probe another user's or account's key ids.
func ownedKeyTx(tx store.Tx, account, user, id string) (accessKeyRecord, error) {
	notExist := ramErr(CodeAccessKeyNotExist, "The access key %s does not exist for this user.", id)
	if id == "" {
		return accessKeyRecord{}, errs.E(errs.KindMissingParameter, "The parameter UserAccessKeyId is required.")
	}
	if len(id) > maxAccessKeyIDLen {
		return accessKeyRecord{}, notExist
	}
	if user != "" {
		if _, err := getUserTx(tx, account, user); err != nil {
			return accessKeyRecord{}, err
		}
	}
	if _, err := tx.Get(TableUserKeys, keyIndexPrefix(account, user)+id); errors.Is(err, store.ErrNotFound) {
		return accessKeyRecord{}, notExist
	} else if err != nil {
		return accessKeyRecord{}, err
	}
	rec, err := getRecordTx(tx, id)
	if errors.Is(err, ErrAccessKeyNotFound) {
		return rec, notExist
	}
	return rec, err
}

// UpdateAccessKey sets a key's status (Active or Inactive). Every replica
// stops or resumes accepting it at once.
func (s *Service) UpdateAccessKey(ctx context.Context, account, user, id string, status AccessKeyStatus) error {
	if status != StatusActive && status != StatusInactive {
		return ramErr(CodeInvalidStatus, "The parameter Status must be Active or Inactive.")
	}
	err := s.st.Update(ctx, func(tx store.Tx) error {
		rec, err := ownedKeyTx(tx, account, user, id)
		if err != nil {
			return err
		}
		rec.Status = status
		tx.Notify(topicAccessKeys)
		return putRecordTx(tx, rec)
	})
	s.invalidate(id)
	return storeErr(err, "Updating the access key")
}

// DeleteAccessKey deletes a key; requests signed with it are refused from
// then on, on every replica.
func (s *Service) DeleteAccessKey(ctx context.Context, account, user, id string) error {
	err := s.st.Update(ctx, func(tx store.Tx) error {
		if _, err := ownedKeyTx(tx, account, user, id); err != nil {
			return err
		}
		if err := tx.Delete(TableAccessKeys, id); err != nil {
			return err
		}
		tx.Notify(topicAccessKeys)
		return tx.Delete(TableUserKeys, keyIndexPrefix(account, user)+id)
	})
	s.invalidate(id)
	return storeErr(err, "Deleting the access key")
}
