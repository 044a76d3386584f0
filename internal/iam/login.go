package iam

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"

	"github.com/keyhold/keyhold/internal/errs"
	"github.com/keyhold/keyhold/internal/store"
)

// Console passwords are stored as argon2id hashes in PHC string form
// ($argon2id$v=19$m=…,t=…,p=…$salt$hash). The parameters are OWASP's
// minimum recommendation for argon2id: 19 MiB of memory, 2 passes, 1 lane,
// a 16-byte random salt and a 32-byte tag. They are recorded in every hash,
// so raising them later still verifies old hashes.
const (
	argonTime    = 2
	argonMemory  = 19 * 1024 // KiB
	argonThreads = 1
	argonKeyLen  = 32
	argonSaltLen = 16

	minPasswordChars = 8
	maxPasswordChars = 128
)

// LoginProfile is a user's console sign-in setting (never the password).
type LoginProfile struct {
	UserName              string
	PasswordResetRequired bool
	MFABindRequired       bool
	CreateDate            time.Time
}

type loginProfile struct {
	UserName              string    `json:"user_name"`
	Hash                  string    `json:"hash"`
	PasswordResetRequired bool      `json:"password_reset_required,omitempty"`
	MFABindRequired       bool      `json:"mfa_bind_required,omitempty"`
	CreateDate            time.Time `json:"create_date"`
}

func (lp loginProfile) view() *LoginProfile {
	return &LoginProfile{UserName: lp.UserName, PasswordResetRequired: lp.PasswordResetRequired,
		MFABindRequired: lp.MFABindRequired, CreateDate: lp.CreateDate}
}

func checkPassword(pw string) error {
	if pw == "" {
		return errs.E(errs.KindMissingParameter, "The parameter Password is required.")
	}
	n := utf8.RuneCountInString(pw)
	if n < minPasswordChars || n > maxPasswordChars {
		return ramErr(CodeInvalidPassword, "The password must be %d to %d characters long.", minPasswordChars, maxPasswordChars)
	}
	return nil
}

// hashPassword returns the PHC-form argon2id hash of pw.
func hashPassword(pw string) string {
	salt := make([]byte, argonSaltLen)
	rand.Read(salt)
	tag := argon2.IDKey([]byte(pw), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		b64.EncodeToString(salt), b64.EncodeToString(tag))
}

// verifyPassword checks pw against a PHC-form argon2id hash in constant time.
func verifyPassword(hash, pw string) bool {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false
	}
	var version int
	var m, t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || t == 0 || p == 0 || m > 1<<22 {
		return false
	}
	b64 := base64.RawStdEncoding
	salt, err1 := b64.DecodeString(parts[4])
	want, err2 := b64.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(want) == 0 {
		return false
	}
	got := argon2.IDKey([]byte(pw), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}

func getLoginTx(tx store.Tx, account, user string) (*loginProfile, error) {
	var lp loginProfile
	err := getJSON(tx, TableLogin, store.Key(account, user), &lp)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ramErr(CodeLoginProfileNotExist, "The user %s has no login profile.", user)
	}
	if err != nil {
		return nil, err
	}
	return &lp, nil
}

// CreateLoginProfile gives a user a console password.
func (s *Service) CreateLoginProfile(ctx context.Context, account, user, password string, resetRequired, mfaRequired bool) (*LoginProfile, error) {
	if err := checkUserName(user); err != nil {
		return nil, err
	}
	if err := checkPassword(password); err != nil {
		return nil, err
	}
	lp := loginProfile{UserName: user, Hash: hashPassword(password), PasswordResetRequired: resetRequired,
		MFABindRequired: mfaRequired, CreateDate: s.now()}
	err := s.st.Update(ctx, func(tx store.Tx) error {
		if _, err := getUserTx(tx, account, user); err != nil {
			return err
		}
		err := putJSON(tx, TableLogin, store.Key(account, user), lp, true)
		if errors.Is(err, store.ErrExists) {
			return ramErr(CodeLoginProfileExists, "The user %s already has a login profile.", user)
		}
		return err
	})
	if err != nil {
		return nil, storeErr(err, "Creating the login profile")
	}
	return lp.view(), nil
}

// GetLoginProfile returns a user's login profile.
func (s *Service) GetLoginProfile(ctx context.Context, account, user string) (*LoginProfile, error) {
	if err := checkUserName(user); err != nil {
		return nil, err
	}
	var out *LoginProfile
	err := s.st.View(ctx, func(tx store.Tx) error {
		if _, err := getUserTx(tx, account, user); err != nil {
			return err
		}
		lp, err := getLoginTx(tx, account, user)
		if err == nil {
			out = lp.view()
		}
		return err
	})
	return out, storeErr(err, "Reading the login profile")
}

// UpdateLoginProfile changes the password and/or flags; nil leaves a field.
func (s *Service) UpdateLoginProfile(ctx context.Context, account, user string, password *string, resetRequired, mfaRequired *bool) error {
	if err := checkUserName(user); err != nil {
		return err
	}
	hash := ""
	if password != nil {
		if err := checkPassword(*password); err != nil {
			return err
		}
		hash = hashPassword(*password) // outside the transaction: it is slow on purpose
	}
	err := s.st.Update(ctx, func(tx store.Tx) error {
		if _, err := getUserTx(tx, account, user); err != nil {
			return err
		}
		lp, err := getLoginTx(tx, account, user)
		if err != nil {
			return err
		}
		if hash != "" {
			lp.Hash = hash
		}
		if resetRequired != nil {
			lp.PasswordResetRequired = *resetRequired
		}
		if mfaRequired != nil {
			lp.MFABindRequired = *mfaRequired
		}
		return putJSON(tx, TableLogin, store.Key(account, user), lp, false)
	})
	return storeErr(err, "Updating the login profile")
}

// DeleteLoginProfile removes a user's console password.
func (s *Service) DeleteLoginProfile(ctx context.Context, account, user string) error {
	if err := checkUserName(user); err != nil {
		return err
	}
	err := s.st.Update(ctx, func(tx store.Tx) error {
		if _, err := getUserTx(tx, account, user); err != nil {
			return err
		}
		if _, err := getLoginTx(tx, account, user); err != nil {
			return err
		}
		return tx.Delete(TableLogin, store.Key(account, user))
	})
	return storeErr(err, "Deleting the login profile")
}

// ErrBadCredentials is the one answer to a failed sign-in, whatever failed
// (unknown account or user, no login profile, wrong password), so that a
// caller cannot probe which users exist.
var ErrBadCredentials = &errs.Error{Kind: errs.KindForbidden, Message: "The user name or password is not correct."}

// VerifyLogin checks a console sign-in. login is "name" (a user of the
// deployment's first account) or "name@account". It returns the user's
// principal and records the sign-in as LastLoginDate.
func (s *Service) VerifyLogin(ctx context.Context, login, password string) (account string, user *User, err error) {
	name, account, hasAccount := strings.Cut(login, "@")
	if !hasAccount {
		acct, err := s.DefaultAccount(ctx)
		if err != nil {
			return "", nil, ErrBadCredentials
		}
		account = acct.UID
	}
	if checkUserName(name) != nil || password == "" || len(password) > 4*maxPasswordChars {
		return "", nil, ErrBadCredentials
	}
	var lp *loginProfile
	err = s.st.View(ctx, func(tx store.Tx) error {
		var err error
		user, err = getUserTx(tx, account, name)
		if err != nil {
			return err
		}
		lp, err = getLoginTx(tx, account, name)
		return err
	})
	if err != nil {
		var ie *Error
		if errors.As(err, &ie) {
			// Spend the same time as a real check so timing tells nothing.
			verifyPassword(dummyHash(), password)
			return "", nil, ErrBadCredentials
		}
		return "", nil, storeErr(err, "Signing in")
	}
	if !verifyPassword(lp.Hash, password) {
		return "", nil, ErrBadCredentials
	}
	now := s.now()
	_ = s.st.Update(ctx, func(tx store.Tx) error {
		u, err := getUserTx(tx, account, name)
		if err != nil {
			return err
		}
		u.LastLoginDate = now
		return putJSON(tx, TableUsers, store.Key(account, name), u, false)
	})
	user.LastLoginDate = now
	return account, user, nil
}

// dummyHash is verified against when there is no real hash to check.
var dummyHash = sync.OnceValue(func() string { return hashPassword("keyhold-no-such-user") })
