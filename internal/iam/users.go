package iam

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/keyhold/keyhold/internal/errs"
	"github.com/keyhold/keyhold/internal/store"
)

// Tables of users, groups, memberships, policies, attachments and login
// profiles. Every key starts with the account UID (store.Key); names never
// contain "/", so "<acct>/u/<user>/" lists exactly one user's rows.
//
//	iam_users        <acct>/<user>                         -> User
//	iam_groups       <acct>/<group>                        -> Group
//	iam_members      <acct>/g/<group>/<user>, <acct>/u/<user>/<group> -> join time
//	iam_policies     <acct>/<policy>                       -> customPolicy (versions inline)
//	iam_attach       <acct>/u/<user>/<type>/<policy>, <acct>/g/<group>/<type>/<policy> -> attachment
//	                 <acct>/p/<type>/<policy>/<u|g>/<name> -> reverse index (counts, delete checks)
//	iam_login        <acct>/<user>                         -> loginProfile (password hash)
//	iam_user_keys    <acct>/u/<user>/<akid>, <acct>/r/<akid> -> "" (keys of a user / of the root)
const (
	TableUsers    = "iam_users"
	TableGroups   = "iam_groups"
	TableMembers  = "iam_members"
	TablePolicies = "iam_policies"
	TableAttach   = "iam_attach"
	TableLogin    = "iam_login"
	TableUserKeys = "iam_user_keys"

	// topicPolicies is notified on every change that can alter a user's
	// effective permissions, so that every replica drops its cache.
	topicPolicies = "iam/policies"
)

// KindUser is the principal kind of a RAM user's access key.
const KindUser = "user"

// User is a RAM user of an account.
type User struct {
	UserID        string    `json:"user_id"`
	UserName      string    `json:"user_name"`
	DisplayName   string    `json:"display_name,omitempty"`
	MobilePhone   string    `json:"mobile_phone,omitempty"`
	Email         string    `json:"email,omitempty"`
	Comments      string    `json:"comments,omitempty"`
	CreateDate    time.Time `json:"create_date"`
	UpdateDate    time.Time `json:"update_date"`
	LastLoginDate time.Time `json:"last_login_date,omitzero"`
}

// UserInput carries the optional fields of CreateUser and UpdateUser; a nil
// field is left unchanged by UpdateUser.
type UserInput struct {
	NewUserName *string
	DisplayName *string
	MobilePhone *string
	Email       *string
	Comments    *string
}

// Group is a user group of an account.
type Group struct {
	GroupName  string    `json:"group_name"`
	Comments   string    `json:"comments,omitempty"`
	CreateDate time.Time `json:"create_date"`
	UpdateDate time.Time `json:"update_date"`
}

// Page is one page of a Marker/MaxItems listing, as RAM pages.
type Page struct {
	Marker   string // last name of the previous page; "" for the first
	MaxItems int    // 1..1000; 0 means 100
}

const (
	defaultMaxItems = 100
	maxMaxItems     = 1000
	maxNameChars    = 64
	maxPolicyName   = 128
	maxDisplayName  = 128
	maxComments     = 128
)

func (p Page) limit() (int, error) {
	switch {
	case p.MaxItems == 0:
		return defaultMaxItems, nil
	case p.MaxItems < 1 || p.MaxItems > maxMaxItems:
		return 0, errs.E(errs.KindInvalidParameter, "The parameter MaxItems must be between 1 and %d.", maxMaxItems)
	}
	return p.MaxItems, nil
}

func nameChar(c rune, extra string) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune(extra, c)
}

// checkName validates a user, group or policy name. RAM allows letters,
// digits and a few punctuation marks; "/" never, since names are key parts.
func checkName(param, name, extra string, max int, codeChars, codeLen string) error {
	if name == "" {
		return errs.E(errs.KindMissingParameter, "The parameter %s is required.", param)
	}
	if utf8.RuneCountInString(name) > max {
		return ramErr(codeLen, "The parameter %s exceeds %d characters.", param, max)
	}
	for _, c := range name {
		if !nameChar(c, extra) {
			return ramErr(codeChars, "The parameter %s contains invalid characters (allowed: letters, digits and %s).", param, spaced(extra))
		}
	}
	return nil
}

func spaced(s string) string {
	parts := make([]string, 0, len(s))
	for _, c := range s {
		parts = append(parts, string(c))
	}
	return strings.Join(parts, " ")
}

func checkUserName(n string) error {
	return checkName("UserName", n, ".@-_", maxNameChars, CodeInvalidUserName, CodeUserNameLength)
}

func checkGroupName(n string) error {
	return checkName("GroupName", n, "-_.", maxNameChars, CodeInvalidGroupName, CodeGroupNameLength)
}

func checkPolicyName(n string) error {
	return checkName("PolicyName", n, "-_.", maxPolicyName, CodeInvalidPolicyName, CodePolicyNameLength)
}

func checkLen(param string, v *string, max int) error {
	if v != nil && utf8.RuneCountInString(*v) > max {
		return ramErr(CodeInvalidLength, "The parameter %s exceeds %d characters.", param, max)
	}
	return nil
}

func (in UserInput) check() error {
	for _, c := range []struct {
		name string
		v    *string
		max  int
	}{{"DisplayName", in.DisplayName, maxDisplayName}, {"MobilePhone", in.MobilePhone, 32},
		{"Email", in.Email, 128}, {"Comments", in.Comments, maxComments}} {
		if err := checkLen(c.name, c.v, c.max); err != nil {
			return err
		}
	}
	return nil
}

func (s *Service) now() time.Time { return time.Now().UTC().Truncate(time.Second) }

// storeErr turns a storage failure into an internal error; iam and errs
// errors pass through.
func storeErr(err error, what string) error {
	if err == nil {
		return nil
	}
	var ie *Error
	var ee *errs.Error
	if errors.As(err, &ie) || errors.As(err, &ee) {
		return err
	}
	return errs.Wrap(errs.KindInternal, err, "%s failed.", what)
}

func getJSON(tx store.Tx, table, key string, v any) error {
	raw, err := tx.Get(table, key)
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, v)
}

func putJSON(tx store.Tx, table, key string, v any, insert bool) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("iam: encode %s: %w", table, err)
	}
	if insert {
		return tx.Insert(table, key, raw)
	}
	return tx.Put(table, key, raw)
}

func getUserTx(tx store.Tx, account, name string) (*User, error) {
	var u User
	err := getJSON(tx, TableUsers, store.Key(account, name), &u)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ramErr(CodeUserNotExist, "The user %s does not exist.", name)
	}
	if err != nil {
		return nil, err
	}
	return &u, nil
}

func getGroupTx(tx store.Tx, account, name string) (*Group, error) {
	var g Group
	err := getJSON(tx, TableGroups, store.Key(account, name), &g)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ramErr(CodeGroupNotExist, "The group %s does not exist.", name)
	}
	if err != nil {
		return nil, err
	}
	return &g, nil
}

// CreateUser adds a RAM user to the account.
func (s *Service) CreateUser(ctx context.Context, account, name string, in UserInput) (*User, error) {
	if err := checkUserName(name); err != nil {
		return nil, err
	}
	if err := in.check(); err != nil {
		return nil, err
	}
	now := s.now()
	u := &User{UserID: newAccountUID(), UserName: name, CreateDate: now, UpdateDate: now}
	apply(u, in)
	err := s.st.Update(ctx, func(tx store.Tx) error {
		err := putJSON(tx, TableUsers, store.Key(account, name), u, true)
		if errors.Is(err, store.ErrExists) {
			return ramErr(CodeUserExists, "The user %s already exists.", name)
		}
		return err
	})
	if err != nil {
		return nil, storeErr(err, "Creating the user")
	}
	return u, nil
}

func apply(u *User, in UserInput) {
	for _, f := range []struct {
		dst *string
		v   *string
	}{{&u.DisplayName, in.DisplayName}, {&u.MobilePhone, in.MobilePhone}, {&u.Email, in.Email}, {&u.Comments, in.Comments}} {
		if f.v != nil {
			*f.dst = *f.v
		}
	}
}

// GetUser returns one user.
func (s *Service) GetUser(ctx context.Context, account, name string) (*User, error) {
	if err := checkUserName(name); err != nil {
		return nil, err
	}
	var u *User
	err := s.st.View(ctx, func(tx store.Tx) error {
		var err error
		u, err = getUserTx(tx, account, name)
		return err
	})
	return u, storeErr(err, "Reading the user")
}

// ListUsers lists the account's users by name. more reports whether
// another page follows; its Marker is the last name returned.
func (s *Service) ListUsers(ctx context.Context, account string, p Page) ([]*User, bool, error) {
	users, more, err := listPage[User](ctx, s.st, TableUsers, account, p)
	return users, more, storeErr(err, "Listing users")
}

// listPage reads one page of an account's records of table in key (name)
// order, decoding each as a T; more reports whether another page follows.
func listPage[T any](ctx context.Context, st store.Store, table, account string, p Page) (out []*T, more bool, err error) {
	n, err := p.limit()
	if err != nil {
		return nil, false, err
	}
	err = st.View(ctx, func(tx store.Tx) error {
		out, more = nil, false
		kvs, err := tx.List(table, store.Key(account, ""), afterKey(account, p.Marker), n+1)
		if err != nil {
			return err
		}
		if len(kvs) > n {
			kvs, more = kvs[:n], true
		}
		for _, kv := range kvs {
			v := new(T)
			if err := json.Unmarshal(kv.Value, v); err != nil {
				return err
			}
			out = append(out, v)
		}
		return nil
	})
	return out, more, err
}

func afterKey(account, marker string) string {
	if marker == "" {
		return ""
	}
	return store.Key(account, marker)
}

// UpdateUser changes a user's fields, and renames it when NewUserName is
// set. A rename moves every row that names the user (keys, memberships,
// attachments, login profile) in the same transaction.
func (s *Service) UpdateUser(ctx context.Context, account, name string, in UserInput) (*User, error) {
	if err := checkUserName(name); err != nil {
		return nil, err
	}
	if in.NewUserName != nil {
		if err := checkName("NewUserName", *in.NewUserName, ".@-_", maxNameChars, CodeInvalidNewUserName, CodeNewUserNameLength); err != nil {
			return nil, err
		}
	}
	if err := in.check(); err != nil {
		return nil, err
	}
	var out *User
	renamed := false
	err := s.st.Update(ctx, func(tx store.Tx) error {
		renamed = false
		u, err := getUserTx(tx, account, name)
		if err != nil {
			return err
		}
		apply(u, in)
		u.UpdateDate = s.now()
		if in.NewUserName != nil && *in.NewUserName != name {
			renamed = true
			if err := s.renameUserTx(tx, account, name, *in.NewUserName); err != nil {
				return err
			}
			u.UserName = *in.NewUserName
		}
		out = u
		return putJSON(tx, TableUsers, store.Key(account, u.UserName), u, false)
	})
	if err != nil {
		return nil, storeErr(err, "Updating the user")
	}
	if renamed {
		s.invalidate("")
		s.invalidatePolicies()
	}
	return out, nil
}

func (s *Service) renameUserTx(tx store.Tx, account, from, to string) error {
	if _, err := tx.Get(TableUsers, store.Key(account, to)); err == nil {
		return ramErr(CodeUserExists, "The user %s already exists.", to)
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if err := tx.Delete(TableUsers, store.Key(account, from)); err != nil {
		return err
	}
	// Access keys: index rows and the key records' user name.
	keys, err := tx.List(TableUserKeys, store.Key(account, "u", from, ""), "", 0)
	if err != nil {
		return err
	}
	for _, kv := range keys {
		id := kv.Key[strings.LastIndexByte(kv.Key, '/')+1:]
		rec, err := getRecordTx(tx, id)
		if err != nil {
			return err
		}
		rec.UserName = to
		if err := putRecordTx(tx, rec); err != nil {
			return err
		}
		if err := moveRow(tx, TableUserKeys, kv, store.Key(account, "u", to, id)); err != nil {
			return err
		}
	}
	tx.Notify(topicAccessKeys)
	// Memberships.
	groups, err := tx.List(TableMembers, store.Key(account, "u", from, ""), "", 0)
	if err != nil {
		return err
	}
	for _, kv := range groups {
		g := kv.Key[strings.LastIndexByte(kv.Key, '/')+1:]
		if err := moveRow(tx, TableMembers, kv, store.Key(account, "u", to, g)); err != nil {
			return err
		}
		if err := tx.Delete(TableMembers, store.Key(account, "g", g, from)); err != nil {
			return err
		}
		if err := tx.Put(TableMembers, store.Key(account, "g", g, to), kv.Value); err != nil {
			return err
		}
	}
	// Attachments and their reverse index.
	atts, err := tx.List(TableAttach, store.Key(account, "u", from, ""), "", 0)
	if err != nil {
		return err
	}
	for _, kv := range atts {
		rest := strings.TrimPrefix(kv.Key, store.Key(account, "u", from, ""))
		ptype, pname, _ := strings.Cut(rest, "/")
		if err := moveRow(tx, TableAttach, kv, store.Key(account, "u", to, ptype, pname)); err != nil {
			return err
		}
		if err := tx.Delete(TableAttach, store.Key(account, "p", ptype, pname, "u", from)); err != nil {
			return err
		}
		if err := tx.Put(TableAttach, store.Key(account, "p", ptype, pname, "u", to), nil); err != nil {
			return err
		}
	}
	// Login profile.
	if raw, err := tx.Get(TableLogin, store.Key(account, from)); err == nil {
		var lp loginProfile
		if err := json.Unmarshal(raw, &lp); err != nil {
			return err
		}
		lp.UserName = to
		if err := tx.Delete(TableLogin, store.Key(account, from)); err != nil {
			return err
		}
		if err := putJSON(tx, TableLogin, store.Key(account, to), lp, false); err != nil {
			return err
		}
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	tx.Notify(topicPolicies)
	return nil
}

func moveRow(tx store.Tx, table string, kv store.KV, to string) error {
	if err := tx.Delete(table, kv.Key); err != nil {
		return err
	}
	return tx.Put(table, to, kv.Value)
}

// DeleteUser removes a user. As RAM does, it refuses while the user still
// has access keys, a login profile, group memberships or attached policies,
// so that deleting a user never silently revokes something else.
func (s *Service) DeleteUser(ctx context.Context, account, name string) error {
	if err := checkUserName(name); err != nil {
		return err
	}
	err := s.st.Update(ctx, func(tx store.Tx) error {
		if _, err := getUserTx(tx, account, name); err != nil {
			return err
		}
		for _, c := range []struct {
			table, prefix, code, msg string
		}{
			{TableUserKeys, store.Key(account, "u", name, ""), CodeDeleteUserAccessKey, "The user %s still has access keys; delete them first."},
			{TableLogin, store.Key(account, name), CodeDeleteUserLogin, "The user %s still has a login profile; delete it first."},
			{TableMembers, store.Key(account, "u", name, ""), CodeDeleteUserGroup, "The user %s is still in a group; remove it first."},
			{TableAttach, store.Key(account, "u", name, ""), CodeDeleteUserPolicy, "The user %s still has attached policies; detach them first."},
		} {
			n, err := tx.Count(c.table, c.prefix)
			if err != nil {
				return err
			}
			if c.table == TableLogin {
				// Count is by prefix: "<acct>/bob" also counts "<acct>/bobby".
				_, gerr := tx.Get(TableLogin, c.prefix)
				n = 0
				if gerr == nil {
					n = 1
				} else if !errors.Is(gerr, store.ErrNotFound) {
					return gerr
				}
			}
			if n > 0 {
				return ramErr(c.code, c.msg, name)
			}
		}
		tx.Notify(topicPolicies)
		return tx.Delete(TableUsers, store.Key(account, name))
	})
	return storeErr(err, "Deleting the user")
}

// CreateGroup adds a user group.
func (s *Service) CreateGroup(ctx context.Context, account, name, comments string) (*Group, error) {
	if err := checkGroupName(name); err != nil {
		return nil, err
	}
	if err := checkLen("Comments", &comments, maxComments); err != nil {
		return nil, err
	}
	now := s.now()
	g := &Group{GroupName: name, Comments: comments, CreateDate: now, UpdateDate: now}
	err := s.st.Update(ctx, func(tx store.Tx) error {
		err := putJSON(tx, TableGroups, store.Key(account, name), g, true)
		if errors.Is(err, store.ErrExists) {
			return ramErr(CodeGroupExists, "The group %s already exists.", name)
		}
		return err
	})
	if err != nil {
		return nil, storeErr(err, "Creating the group")
	}
	return g, nil
}

// ListGroups lists the account's groups by name.
func (s *Service) ListGroups(ctx context.Context, account string, p Page) ([]*Group, bool, error) {
	groups, more, err := listPage[Group](ctx, s.st, TableGroups, account, p)
	return groups, more, storeErr(err, "Listing groups")
}

// DeleteGroup removes an empty group with no attached policies.
func (s *Service) DeleteGroup(ctx context.Context, account, name string) error {
	if err := checkGroupName(name); err != nil {
		return err
	}
	err := s.st.Update(ctx, func(tx store.Tx) error {
		if _, err := getGroupTx(tx, account, name); err != nil {
			return err
		}
		if n, err := tx.Count(TableMembers, store.Key(account, "g", name, "")); err != nil {
			return err
		} else if n > 0 {
			return ramErr(CodeDeleteGroupUser, "The group %s still has members; remove them first.", name)
		}
		if n, err := tx.Count(TableAttach, store.Key(account, "g", name, "")); err != nil {
			return err
		} else if n > 0 {
			return ramErr(CodeDeleteGroupPolicy, "The group %s still has attached policies; detach them first.", name)
		}
		return tx.Delete(TableGroups, store.Key(account, name))
	})
	return storeErr(err, "Deleting the group")
}

// AddUserToGroup makes a user a member of a group.
func (s *Service) AddUserToGroup(ctx context.Context, account, group, user string) error {
	if err := checkGroupName(group); err != nil {
		return err
	}
	if err := checkUserName(user); err != nil {
		return err
	}
	err := s.st.Update(ctx, func(tx store.Tx) error {
		if _, err := getGroupTx(tx, account, group); err != nil {
			return err
		}
		if _, err := getUserTx(tx, account, user); err != nil {
			return err
		}
		when, _ := s.now().MarshalText()
		err := tx.Insert(TableMembers, store.Key(account, "u", user, group), when)
		if errors.Is(err, store.ErrExists) {
			return ramErr(CodeUserGroupExists, "The user %s is already in the group %s.", user, group)
		}
		if err != nil {
			return err
		}
		tx.Notify(topicPolicies)
		return tx.Put(TableMembers, store.Key(account, "g", group, user), when)
	})
	if err == nil {
		s.invalidatePolicies()
	}
	return storeErr(err, "Adding the user to the group")
}

// RemoveUserFromGroup ends a membership.
func (s *Service) RemoveUserFromGroup(ctx context.Context, account, group, user string) error {
	if err := checkGroupName(group); err != nil {
		return err
	}
	if err := checkUserName(user); err != nil {
		return err
	}
	err := s.st.Update(ctx, func(tx store.Tx) error {
		if _, err := getGroupTx(tx, account, group); err != nil {
			return err
		}
		if _, err := getUserTx(tx, account, user); err != nil {
			return err
		}
		if _, err := tx.Get(TableMembers, store.Key(account, "u", user, group)); errors.Is(err, store.ErrNotFound) {
			return ramErr(CodeUserGroupNotExist, "The user %s is not in the group %s.", user, group)
		} else if err != nil {
			return err
		}
		if err := tx.Delete(TableMembers, store.Key(account, "u", user, group)); err != nil {
			return err
		}
		tx.Notify(topicPolicies)
		return tx.Delete(TableMembers, store.Key(account, "g", group, user))
	})
	if err == nil {
		s.invalidatePolicies()
	}
	return storeErr(err, "Removing the user from the group")
}

// GroupsOfUser lists the groups a user belongs to.
func (s *Service) GroupsOfUser(ctx context.Context, account, user string) ([]string, error) {
	var out []string
	err := s.st.View(ctx, func(tx store.Tx) error {
		out = nil
		kvs, err := tx.List(TableMembers, store.Key(account, "u", user, ""), "", 0)
		for _, kv := range kvs {
			out = append(out, kv.Key[strings.LastIndexByte(kv.Key, '/')+1:])
		}
		return err
	})
	return out, storeErr(err, "Listing the user's groups")
}
