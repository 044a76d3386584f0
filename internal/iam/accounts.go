package iam

import (
	"context"
	"encoding/json"
	"errors"
	"unicode/utf8"

	"github.com/keyhold/keyhold/internal/errs"
	"github.com/keyhold/keyhold/internal/store"
)

// CreateAccount adds a tenant to the deployment with its own root access
// key pair, returned once. Accounts are isolated: nothing of one is visible
// to another except through a secret policy that names it.
func (s *Service) CreateAccount(ctx context.Context, displayName string) (Account, AccessKeyPair, error) {
	if utf8.RuneCountInString(displayName) > maxDisplayName {
		return Account{}, AccessKeyPair{}, ramErr(CodeInvalidLength, "The parameter DisplayName exceeds %d characters.", maxDisplayName)
	}
	acct := Account{UID: newAccountUID(), DisplayName: displayName, CreateDate: s.now()}
	pair, rec, err := s.newKeyRecord(acct.UID, "")
	if err != nil {
		return Account{}, AccessKeyPair{}, err
	}
	err = s.st.Update(ctx, func(tx store.Tx) error {
		if err := putJSON(tx, TableAccounts, acct.UID, acct, true); err != nil {
			return err // ErrExists: a 1-in-10^15 UID collision; the caller may retry
		}
		return insertKeyTx(tx, rec, "")
	})
	if err != nil {
		return Account{}, AccessKeyPair{}, storeErr(err, "Creating the account")
	}
	return acct, pair, nil
}

// ListAccounts lists the deployment's accounts by UID.
func (s *Service) ListAccounts(ctx context.Context) ([]Account, error) {
	var out []Account
	err := s.st.View(ctx, func(tx store.Tx) error {
		out = nil
		kvs, err := tx.List(TableAccounts, "", "", 0)
		if err != nil {
			return err
		}
		for _, kv := range kvs {
			var a Account
			if err := json.Unmarshal(kv.Value, &a); err != nil {
				return err
			}
			out = append(out, a)
		}
		return nil
	})
	return out, storeErr(err, "Listing accounts")
}

// defaultAccountUID returns the deployment's first account, cached: it
// never changes once created.
func (s *Service) defaultAccountUID(ctx context.Context) (string, error) {
	if v, ok := s.defaultUID.Load().(string); ok && v != "" {
		return v, nil
	}
	acct, err := s.DefaultAccount(ctx)
	if errors.Is(err, store.ErrNotFound) {
		return "", errs.E(errs.KindInternal, "The deployment has no account yet.")
	}
	if err != nil {
		return "", err
	}
	s.defaultUID.Store(acct.UID)
	return acct.UID, nil
}
