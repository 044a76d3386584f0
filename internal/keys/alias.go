package keys

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"

	"github.com/keyhold/keyhold/internal/errs"
	"github.com/keyhold/keyhold/internal/store"
)

// checkAliasName enforces the KMS rules: "alias/" followed by 1–249
// characters of [a-zA-Z0-9:/_-]; "alias/acs" is reserved for the service.
func checkAliasName(name string) error {
	rest, ok := strings.CutPrefix(name, "alias/")
	if !ok || rest == "" || len(name) > 255 {
		return errs.E(errs.KindInvalidParameter, "The AliasName must be alias/ followed by 1 to 249 characters.")
	}
	for _, c := range rest {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == ':' || c == '/' || c == '_' || c == '-') {
			return errs.E(errs.KindInvalidParameter, "The AliasName may contain only letters, digits, ':', '/', '_' and '-'.")
		}
	}
	if strings.HasPrefix(strings.ToLower(rest), "acs") {
		return errs.E(errs.KindInvalidParameter, "The AliasName may not start with alias/acs.")
	}
	return nil
}

func getAlias(tx store.Tx, account, name string) (*aliasRecord, error) {
	raw, err := tx.Get(tableAliases, store.Key(account, name))
	if errors.Is(err, store.ErrNotFound) {
		return nil, errs.E(errs.KindAliasNotFound, "The specified Alias %s is not found.", name)
	}
	if err != nil {
		return nil, errs.Wrap(errs.KindInternal, err, "reading the alias failed")
	}
	var a aliasRecord
	if err := json.Unmarshal(raw, &a); err != nil {
		return nil, errs.Wrap(errs.KindInternal, err, "decoding the alias failed")
	}
	return &a, nil
}

func putAlias(tx store.Tx, account, name string, a *aliasRecord, insert bool) error {
	raw, err := json.Marshal(a)
	if err != nil {
		return err
	}
	tx.Notify(topicKeys)
	if insert {
		err = tx.Insert(tableAliases, store.Key(account, name), raw)
		if errors.Is(err, store.ErrExists) {
			return errs.E(errs.KindAlreadyExists, "The Alias %s already exists.", name)
		}
		return err
	}
	return tx.Put(tableAliases, store.Key(account, name), raw)
}

// aliasTarget resolves the KeyId of CreateAlias/UpdateAlias: a key id or
// key ARN (not another alias), of a user key not pending deletion.
func aliasTarget(tx store.Tx, account, ref string) (*keyRecord, error) {
	id, alias, err := parseRef(account, ref)
	if err != nil {
		return nil, err
	}
	if alias != "" {
		return nil, errs.E(errs.KindInvalidParameter, "An alias must point at a key id, not at another alias.")
	}
	r, err := getKey(tx, account, id)
	if err != nil {
		return nil, err
	}
	if r.Service {
		return nil, errServiceKey()
	}
	if r.State == StatePendingDeletion {
		return nil, errs.E(errs.KindInvalidState, "The key %s is pending deletion.", r.KeyID)
	}
	return r, nil
}

func countAliases(tx store.Tx, account, keyID string) (int, error) {
	kvs, err := tx.List(tableAliases, account+"/", "", 0)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, kv := range kvs {
		var a aliasRecord
		if json.Unmarshal(kv.Value, &a) == nil && a.KeyID == keyID {
			n++
		}
	}
	return n, nil
}

// CreateAlias creates an alias (unique in the account) for a key.
func (s *Service) CreateAlias(ctx context.Context, account, aliasName, keyID string) error {
	if err := checkAliasName(aliasName); err != nil {
		return err
	}
	now := s.nowUTC()
	err := s.st.Update(ctx, func(tx store.Tx) error {
		r, err := aliasTarget(tx, account, keyID)
		if err != nil {
			return err
		}
		n, err := countAliases(tx, account, r.KeyID)
		if err != nil {
			return err
		}
		if n >= maxAliasesPerKey {
			return errs.E(errs.KindLimitExceeded, "The key already has %d aliases.", maxAliasesPerKey)
		}
		return putAlias(tx, account, aliasName, &aliasRecord{KeyID: r.KeyID, Created: now}, true)
	})
	return storeErr(err)
}

// UpdateAlias points an existing alias at another key.
func (s *Service) UpdateAlias(ctx context.Context, account, aliasName, keyID string) error {
	if err := checkAliasName(aliasName); err != nil {
		return err
	}
	err := s.st.Update(ctx, func(tx store.Tx) error {
		a, err := getAlias(tx, account, aliasName)
		if err != nil {
			return err
		}
		r, err := aliasTarget(tx, account, keyID)
		if err != nil {
			return err
		}
		if a.KeyID == r.KeyID {
			return nil
		}
		n, err := countAliases(tx, account, r.KeyID)
		if err != nil {
			return err
		}
		if n >= maxAliasesPerKey {
			return errs.E(errs.KindLimitExceeded, "The key already has %d aliases.", maxAliasesPerKey)
		}
		a.KeyID = r.KeyID
		return putAlias(tx, account, aliasName, a, false)
	})
	return storeErr(err)
}

// DeleteAlias removes an alias; the key is unaffected.
func (s *Service) DeleteAlias(ctx context.Context, account, aliasName string) error {
	if aliasName == "" {
		return errs.E(errs.KindMissingParameter, "The parameter AliasName is required.")
	}
	err := s.st.Update(ctx, func(tx store.Tx) error {
		if _, err := getAlias(tx, account, aliasName); err != nil {
			return err
		}
		tx.Notify(topicKeys)
		return tx.Delete(tableAliases, store.Key(account, aliasName))
	})
	return storeErr(err)
}

// ListAliases lists the account's aliases in name order.
func (s *Service) ListAliases(ctx context.Context, account string, pageNumber, pageSize int) ([]Alias, int, error) {
	return s.listAliases(ctx, account, "", pageNumber, pageSize)
}

// ListAliasesByKeyId lists the aliases of one key.
func (s *Service) ListAliasesByKeyId(ctx context.Context, account, keyID string, pageNumber, pageSize int) ([]Alias, int, error) {
	r, err := s.view(ctx, account, keyID)
	if err != nil {
		return nil, 0, err
	}
	return s.listAliases(ctx, account, r.KeyID, pageNumber, pageSize)
}

func (s *Service) listAliases(ctx context.Context, account, keyID string, pageNumber, pageSize int) ([]Alias, int, error) {
	var all []Alias
	err := s.st.View(ctx, func(tx store.Tx) error {
		all = nil
		kvs, err := tx.List(tableAliases, account+"/", "", 0)
		if err != nil {
			return err
		}
		for _, kv := range kvs {
			var a aliasRecord
			if err := json.Unmarshal(kv.Value, &a); err != nil {
				return err
			}
			if keyID != "" && a.KeyID != keyID {
				continue
			}
			name := strings.TrimPrefix(kv.Key, account+"/")
			all = append(all, Alias{AliasName: name, AliasArn: s.aliasARN(account, name), KeyID: a.KeyID})
		}
		return nil
	})
	if err != nil {
		return nil, 0, storeErr(err)
	}
	slices.SortFunc(all, func(a, b Alias) int { return strings.Compare(a.AliasName, b.AliasName) })
	lo, hi, err := page(len(all), pageNumber, pageSize)
	if err != nil {
		return nil, 0, err
	}
	return all[lo:hi], len(all), nil
}
