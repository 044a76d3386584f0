package iam

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/keyhold/keyhold/internal/store"
)

// EnsureRootAccount returns the deployment's account, creating it and its
// root access key pair on first start. created holds the plain pair only
// when it was created by this call, so that the caller writes the bootstrap
// credentials file exactly once; on later starts it is nil.
//
// Creation runs under the storage lock "init" and re-checks storage inside
// it, because several replicas may start at once; the caller must not hold
// that lock. Account, default-account marker and key are inserted in one
// transaction, so storage holds all of them or none.
func (s *Service) EnsureRootAccount(ctx context.Context) (acct Account, created *AccessKeyPair, err error) {
	acct, err = s.DefaultAccount(ctx)
	if !errors.Is(err, store.ErrNotFound) {
		return acct, nil, err
	}
	unlock, err := s.st.Lock(ctx, initLock)
	if err != nil {
		return Account{}, nil, fmt.Errorf("iam: take init lock: %w", err)
	}
	defer unlock()
	acct, err = s.DefaultAccount(ctx)
	if !errors.Is(err, store.ErrNotFound) {
		return acct, nil, err
	}

	now := time.Now().UTC()
	acct = Account{UID: newAccountUID(), CreateDate: now}
	pair := AccessKeyPair{AccessKeyID: newAccessKeyID(), AccessKeySecret: randomBase62(30)}
	sealed, err := s.sealer.SealWithRoot(secretAAD(pair.AccessKeyID), []byte(pair.AccessKeySecret))
	if err != nil {
		return Account{}, nil, fmt.Errorf("iam: seal root access key secret: %w", err)
	}
	acctVal, err := json.Marshal(acct)
	if err != nil {
		return Account{}, nil, err
	}
	keyVal, err := json.Marshal(accessKeyRecord{
		AccessKey: AccessKey{
			AccessKeyID: pair.AccessKeyID,
			Account:     acct.UID,
			Kind:        KindRoot,
			UserName:    RootName,
			Status:      StatusActive,
			CreateDate:  now,
		},
		SealedSecret: sealed,
	})
	if err != nil {
		return Account{}, nil, err
	}
	err = s.st.Update(ctx, func(tx store.Tx) error {
		if err := tx.Insert(TableMeta, MetaDefaultAccount, []byte(acct.UID)); err != nil {
			return err
		}
		if err := tx.Insert(TableAccounts, acct.UID, acctVal); err != nil {
			return err
		}
		tx.Notify(topicAccessKeys)
		if err := tx.Insert(TableAccessKeys, pair.AccessKeyID, keyVal); err != nil {
			return err
		}
		return tx.Put(TableUserKeys, keyIndexPrefix(acct.UID, "")+pair.AccessKeyID, nil)
	})
	if errors.Is(err, store.ErrExists) {
		// Another replica won a race the lock did not prevent: use its account.
		acct, err = s.DefaultAccount(ctx)
		return acct, nil, err
	}
	if err != nil {
		return Account{}, nil, fmt.Errorf("iam: create root account: %w", err)
	}
	return acct, &pair, nil
}

// DefaultAccount returns the deployment's account; store.ErrNotFound before
// EnsureRootAccount first ran.
func (s *Service) DefaultAccount(ctx context.Context) (Account, error) {
	var acct Account
	err := s.st.View(ctx, func(tx store.Tx) error {
		uid, err := tx.Get(TableMeta, MetaDefaultAccount)
		if err != nil {
			return err
		}
		val, err := tx.Get(TableAccounts, string(uid))
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("iam: default account %s has no record", uid)
		}
		if err != nil {
			return err
		}
		return json.Unmarshal(val, &acct)
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return Account{}, fmt.Errorf("iam: read default account: %w", err)
	}
	return acct, err
}

// Identifier alphabets and shapes, as on Alibaba Cloud.
const (
	base62          = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	accessKeyPrefix = "LTAI"
)

// newAccountUID returns 16 random digits, the first non-zero so that the
// UID reads as a 16-digit number like an Alibaba Cloud account id.
func newAccountUID() string {
	b := []byte(randomFrom("0123456789", 16))
	if b[0] == '0' {
		b[0] = randomFrom("123456789", 1)[0]
	}
	return string(b)
}

// newAccessKeyID returns "LTAI" followed by 20 random base62 characters.
func newAccessKeyID() string { return accessKeyPrefix + randomBase62(20) }

func randomBase62(n int) string { return randomFrom(base62, n) }

// randomFrom draws n characters uniformly from alphabet (at most 256
// characters) with crypto/rand, rejecting bytes that would bias the draw.
func randomFrom(alphabet string, n int) string {
	limit := 256 - 256%len(alphabet)
	out := make([]byte, 0, n)
	buf := make([]byte, n+n/2+8)
	for len(out) < n {
		rand.Read(buf)
		for _, c := range buf {
			if int(c) < limit && len(out) < n {
				out = append(out, alphabet[int(c)%len(alphabet)])
			}
		}
	}
	return string(out)
}
