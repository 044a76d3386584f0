package iam

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/keyhold/keyhold/internal/errs"
	"github.com/keyhold/keyhold/internal/store"
)

// Policy types, as RAM names them.
const (
	PolicyTypeSystem = "System"
	PolicyTypeCustom = "Custom"
)

const (
	// maxPolicyVersions is RAM's limit of versions per custom policy.
	maxPolicyVersions = 5
	maxDescription    = 1024
	// Rotate strategies of CreatePolicyVersion.
	RotateNone         = "None"
	RotateDeleteOldest = "DeleteOldestNonDefaultVersionWhenLimitExceeded"
)

// Policy is a policy as RAM shows it, with its default version's document.
type Policy struct {
	PolicyName      string
	PolicyType      string
	Description     string
	DefaultVersion  string
	Document        string // of the default version
	CreateDate      time.Time
	UpdateDate      time.Time
	VersionDate     time.Time // creation of the default version
	AttachmentCount int
}

// PolicyVersion is one version of a custom policy.
type PolicyVersion struct {
	VersionID  string    `json:"version_id"`
	Document   string    `json:"document"`
	IsDefault  bool      `json:"is_default"`
	CreateDate time.Time `json:"create_date"`
}

// Attachment is a policy attached to a user or a group.
type Attachment struct {
	PolicyName     string
	PolicyType     string
	Description    string
	DefaultVersion string
	AttachDate     time.Time
}

type customPolicy struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	CreateDate  time.Time       `json:"create_date"`
	UpdateDate  time.Time       `json:"update_date"`
	NextVersion int             `json:"next_version"`
	Versions    []PolicyVersion `json:"versions"`
}

func (p *customPolicy) defaultVersion() *PolicyVersion {
	for i := range p.Versions {
		if p.Versions[i].IsDefault {
			return &p.Versions[i]
		}
	}
	return nil
}

func (p *customPolicy) view(attachments int) *Policy {
	out := &Policy{
		PolicyName: p.Name, PolicyType: PolicyTypeCustom, Description: p.Description,
		CreateDate: p.CreateDate, UpdateDate: p.UpdateDate, AttachmentCount: attachments,
	}
	if v := p.defaultVersion(); v != nil {
		out.DefaultVersion, out.Document, out.VersionDate = v.VersionID, v.Document, v.CreateDate
	}
	return out
}

type attachment struct {
	AttachDate time.Time `json:"attach_date"`
}

// systemEpoch is the creation date shown for system policies.
var systemEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func systemView(sp SystemPolicy) *Policy {
	return &Policy{
		PolicyName: sp.Name, PolicyType: PolicyTypeSystem, Description: sp.Description,
		DefaultVersion: "v1", Document: sp.Document,
		CreateDate: systemEpoch, UpdateDate: systemEpoch, VersionDate: systemEpoch,
	}
}

func checkPolicyType(t string, required bool) error {
	switch t {
	case PolicyTypeSystem, PolicyTypeCustom:
		return nil
	case "":
		if !required {
			return nil
		}
		return errs.E(errs.KindMissingParameter, "The parameter PolicyType is required.")
	}
	return ramErr(CodeInvalidPolicyType, "The parameter PolicyType must be System or Custom.")
}

func checkDescription(d string) error {
	if utf8.RuneCountInString(d) > maxDescription {
		return ramErr(CodeInvalidLength, "The parameter Description exceeds %d characters.", maxDescription)
	}
	return nil
}

func getCustomTx(tx store.Tx, account, name string) (*customPolicy, error) {
	var p customPolicy
	err := getJSON(tx, TablePolicies, store.Key(account, name), &p)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ramErr(CodePolicyNotExist, "The policy %s (Custom) does not exist.", name)
	}
	if err != nil {
		return nil, err
	}
	return &p, nil
}

func attachCount(tx store.Tx, account, ptype, name string) (int, error) {
	return tx.Count(TableAttach, store.Key(account, "p", ptype, name, ""))
}

// CreatePolicy creates a custom policy whose version v1 holds doc. A
// document that does not parse is refused with MalformedPolicyDocument and
// a message naming the problem.
func (s *Service) CreatePolicy(ctx context.Context, account, name, description, doc string) (*Policy, error) {
	if err := checkPolicyName(name); err != nil {
		return nil, err
	}
	if err := checkDescription(description); err != nil {
		return nil, err
	}
	if err := checkIdentityDocument(doc); err != nil {
		return nil, err
	}
	if _, ok := systemPolicy(name); ok {
		return nil, ramErr(CodePolicyExists, "The policy %s already exists as a system policy.", name)
	}
	now := s.now()
	p := &customPolicy{
		Name: name, Description: description, CreateDate: now, UpdateDate: now, NextVersion: 2,
		Versions: []PolicyVersion{{VersionID: "v1", Document: doc, IsDefault: true, CreateDate: now}},
	}
	err := s.st.Update(ctx, func(tx store.Tx) error {
		err := putJSON(tx, TablePolicies, store.Key(account, name), p, true)
		if errors.Is(err, store.ErrExists) {
			return ramErr(CodePolicyExists, "The policy %s already exists.", name)
		}
		return err
	})
	if err != nil {
		return nil, storeErr(err, "Creating the policy")
	}
	return p.view(0), nil
}

// GetPolicy returns a system or custom policy with its default document.
func (s *Service) GetPolicy(ctx context.Context, account, ptype, name string) (*Policy, error) {
	if err := checkPolicyName(name); err != nil {
		return nil, err
	}
	if err := checkPolicyType(ptype, true); err != nil {
		return nil, err
	}
	var out *Policy
	err := s.st.View(ctx, func(tx store.Tx) error {
		n, err := attachCount(tx, account, ptype, name)
		if err != nil {
			return err
		}
		if ptype == PolicyTypeSystem {
			sp, ok := systemPolicy(name)
			if !ok {
				return ramErr(CodePolicyNotExist, "The policy %s (System) does not exist.", name)
			}
			out = systemView(sp)
			out.AttachmentCount = n
			return nil
		}
		p, err := getCustomTx(tx, account, name)
		if err != nil {
			return err
		}
		out = p.view(n)
		return nil
	})
	return out, storeErr(err, "Reading the policy")
}

// ListPolicies lists system and/or custom policies by name: system ones
// first, then the account's custom ones, as one Marker-paged sequence.
func (s *Service) ListPolicies(ctx context.Context, account, ptype string, p Page) (out []*Policy, more bool, err error) {
	if err := checkPolicyType(ptype, false); err != nil {
		return nil, false, err
	}
	n, err := p.limit()
	if err != nil {
		return nil, false, err
	}
	err = s.st.View(ctx, func(tx store.Tx) error {
		out, more = nil, false
		var all []*Policy
		if ptype == "" || ptype == PolicyTypeSystem {
			for _, sp := range systemPolicies() {
				v := systemView(sp)
				c, err := attachCount(tx, account, PolicyTypeSystem, sp.Name)
				if err != nil {
					return err
				}
				v.AttachmentCount = c
				all = append(all, v)
			}
		}
		if ptype == "" || ptype == PolicyTypeCustom {
			kvs, err := tx.List(TablePolicies, store.Key(account, ""), "", 0)
			if err != nil {
				return err
			}
			for _, kv := range kvs {
				var cp customPolicy
				if err := json.Unmarshal(kv.Value, &cp); err != nil {
					return err
				}
				c, err := attachCount(tx, account, PolicyTypeCustom, cp.Name)
				if err != nil {
					return err
				}
				all = append(all, cp.view(c))
			}
		}
		// Marker is "<type>:<name>" so that a system and a custom policy of
		// the same name page apart.
		start := 0
		if p.Marker != "" {
			start = len(all)
			for i, v := range all {
				if v.PolicyType+":"+v.PolicyName == p.Marker {
					start = i + 1
					break
				}
			}
		}
		all = all[start:]
		if len(all) > n {
			all, more = all[:n], true
		}
		out = all
		return nil
	})
	return out, more, storeErr(err, "Listing policies")
}

// PolicyMarker is the Marker that continues a ListPolicies after p.
func PolicyMarker(p *Policy) string { return p.PolicyType + ":" + p.PolicyName }

// DeletePolicy deletes a custom policy that is attached nowhere.
func (s *Service) DeletePolicy(ctx context.Context, account, name string) error {
	if err := checkPolicyName(name); err != nil {
		return err
	}
	err := s.st.Update(ctx, func(tx store.Tx) error {
		if _, err := getCustomTx(tx, account, name); err != nil {
			return err
		}
		for _, c := range []struct{ kind, code, what string }{
			{"u", CodeDeletePolicyUser, "users"}, {"g", CodeDeletePolicyGroup, "groups"},
		} {
			n, err := tx.Count(TableAttach, store.Key(account, "p", PolicyTypeCustom, name, c.kind, ""))
			if err != nil {
				return err
			}
			if n > 0 {
				return ramErr(c.code, "The policy %s is still attached to %s; detach it first.", name, c.what)
			}
		}
		return tx.Delete(TablePolicies, store.Key(account, name))
	})
	return storeErr(err, "Deleting the policy")
}

// CreatePolicyVersion adds a version to a custom policy, optionally making
// it the default. At most five versions are kept: with RotateNone the sixth
// is refused, with RotateDeleteOldest the oldest non-default one goes.
func (s *Service) CreatePolicyVersion(ctx context.Context, account, name, doc string, setDefault bool, rotate string) (*PolicyVersion, error) {
	if err := checkPolicyName(name); err != nil {
		return nil, err
	}
	switch rotate {
	case "":
		rotate = RotateNone
	case RotateNone, RotateDeleteOldest:
	default:
		return nil, errs.E(errs.KindInvalidParameter, "The parameter RotateStrategy must be %s or %s.", RotateNone, RotateDeleteOldest)
	}
	if err := checkIdentityDocument(doc); err != nil {
		return nil, err
	}
	var out PolicyVersion
	err := s.st.Update(ctx, func(tx store.Tx) error {
		p, err := getCustomTx(tx, account, name)
		if err != nil {
			return err
		}
		if len(p.Versions) >= maxPolicyVersions {
			if rotate == RotateNone {
				return ramErr(CodePolicyVersionLimit, "The policy %s already has %d versions; delete one or pass RotateStrategy=%s.", name, maxPolicyVersions, RotateDeleteOldest)
			}
			for i, v := range p.Versions { // oldest first
				if !v.IsDefault {
					p.Versions = append(p.Versions[:i:i], p.Versions[i+1:]...)
					break
				}
			}
		}
		now := s.now()
		out = PolicyVersion{VersionID: "v" + strconv.Itoa(p.NextVersion), Document: doc, IsDefault: setDefault, CreateDate: now}
		p.NextVersion++
		if setDefault {
			for i := range p.Versions {
				p.Versions[i].IsDefault = false
			}
		}
		p.Versions = append(p.Versions, out)
		p.UpdateDate = now
		if setDefault {
			tx.Notify(topicPolicies)
		}
		return putJSON(tx, TablePolicies, store.Key(account, name), p, false)
	})
	if err != nil {
		return nil, storeErr(err, "Creating the policy version")
	}
	if setDefault {
		s.invalidatePolicies()
	}
	return &out, nil
}

// ListPolicyVersions returns a custom policy's versions, oldest first.
func (s *Service) ListPolicyVersions(ctx context.Context, account, name string) ([]PolicyVersion, error) {
	var out []PolicyVersion
	err := s.st.View(ctx, func(tx store.Tx) error {
		p, err := getCustomTx(tx, account, name)
		if err == nil {
			out = p.Versions
		}
		return err
	})
	return out, storeErr(err, "Listing policy versions")
}

// principalKind is "u" (user) or "g" (group) in attachment keys.
func (s *Service) attach(ctx context.Context, account, kind, who, ptype, name string) error {
	if err := checkPolicyType(ptype, true); err != nil {
		return err
	}
	if err := checkPolicyName(name); err != nil {
		return err
	}
	err := s.st.Update(ctx, func(tx store.Tx) error {
		if err := existsTx(tx, account, kind, who); err != nil {
			return err
		}
		if err := policyExistsTx(tx, account, ptype, name); err != nil {
			return err
		}
		raw, _ := json.Marshal(attachment{AttachDate: s.now()})
		err := tx.Insert(TableAttach, store.Key(account, kind, who, ptype, name), raw)
		if errors.Is(err, store.ErrExists) {
			if kind == "u" {
				return ramErr(CodeUserPolicyExists, "The policy %s is already attached to the user %s.", name, who)
			}
			return ramErr(CodeGroupPolicyExists, "The policy %s is already attached to the group %s.", name, who)
		}
		if err != nil {
			return err
		}
		tx.Notify(topicPolicies)
		return tx.Put(TableAttach, store.Key(account, "p", ptype, name, kind, who), nil)
	})
	if err == nil {
		s.invalidatePolicies()
	}
	return storeErr(err, "Attaching the policy")
}

func (s *Service) detach(ctx context.Context, account, kind, who, ptype, name string) error {
	if err := checkPolicyType(ptype, true); err != nil {
		return err
	}
	if err := checkPolicyName(name); err != nil {
		return err
	}
	err := s.st.Update(ctx, func(tx store.Tx) error {
		if err := existsTx(tx, account, kind, who); err != nil {
			return err
		}
		if err := policyExistsTx(tx, account, ptype, name); err != nil {
			return err
		}
		key := store.Key(account, kind, who, ptype, name)
		if _, err := tx.Get(TableAttach, key); errors.Is(err, store.ErrNotFound) {
			if kind == "u" {
				return ramErr(CodeUserPolicyNotExist, "The policy %s is not attached to the user %s.", name, who)
			}
			return ramErr(CodeGroupPolicyNotExist, "The policy %s is not attached to the group %s.", name, who)
		} else if err != nil {
			return err
		}
		if err := tx.Delete(TableAttach, key); err != nil {
			return err
		}
		tx.Notify(topicPolicies)
		return tx.Delete(TableAttach, store.Key(account, "p", ptype, name, kind, who))
	})
	if err == nil {
		s.invalidatePolicies()
	}
	return storeErr(err, "Detaching the policy")
}

func existsTx(tx store.Tx, account, kind, who string) error {
	if kind == "u" {
		if err := checkUserName(who); err != nil {
			return err
		}
		_, err := getUserTx(tx, account, who)
		return err
	}
	if err := checkGroupName(who); err != nil {
		return err
	}
	_, err := getGroupTx(tx, account, who)
	return err
}

func policyExistsTx(tx store.Tx, account, ptype, name string) error {
	if ptype == PolicyTypeSystem {
		if _, ok := systemPolicy(name); !ok {
			return ramErr(CodePolicyNotExist, "The policy %s (System) does not exist.", name)
		}
		return nil
	}
	_, err := getCustomTx(tx, account, name)
	return err
}

// AttachPolicyToUser, DetachPolicyFromUser, AttachPolicyToGroup and
// DetachPolicyFromGroup change attachments; effective permissions change on
// every replica at once (cache invalidation through the store).
func (s *Service) AttachPolicyToUser(ctx context.Context, account, ptype, name, user string) error {
	return s.attach(ctx, account, "u", user, ptype, name)
}

func (s *Service) DetachPolicyFromUser(ctx context.Context, account, ptype, name, user string) error {
	return s.detach(ctx, account, "u", user, ptype, name)
}

func (s *Service) AttachPolicyToGroup(ctx context.Context, account, ptype, name, group string) error {
	return s.attach(ctx, account, "g", group, ptype, name)
}

func (s *Service) DetachPolicyFromGroup(ctx context.Context, account, ptype, name, group string) error {
	return s.detach(ctx, account, "g", group, ptype, name)
}

// ListPoliciesForUser lists the policies attached to a user directly.
func (s *Service) ListPoliciesForUser(ctx context.Context, account, user string) ([]Attachment, error) {
	return s.listAttached(ctx, account, "u", user)
}

// ListPoliciesForGroup lists the policies attached to a group.
func (s *Service) ListPoliciesForGroup(ctx context.Context, account, group string) ([]Attachment, error) {
	return s.listAttached(ctx, account, "g", group)
}

func (s *Service) listAttached(ctx context.Context, account, kind, who string) ([]Attachment, error) {
	var out []Attachment
	err := s.st.View(ctx, func(tx store.Tx) error {
		out = nil
		if err := existsTx(tx, account, kind, who); err != nil {
			return err
		}
		prefix := store.Key(account, kind, who, "")
		kvs, err := tx.List(TableAttach, prefix, "", 0)
		if err != nil {
			return err
		}
		for _, kv := range kvs {
			ptype, name, _ := strings.Cut(strings.TrimPrefix(kv.Key, prefix), "/")
			var a attachment
			if err := json.Unmarshal(kv.Value, &a); err != nil {
				return err
			}
			at := Attachment{PolicyName: name, PolicyType: ptype, AttachDate: a.AttachDate}
			if ptype == PolicyTypeSystem {
				if sp, ok := systemPolicy(name); ok {
					at.Description, at.DefaultVersion = sp.Description, "v1"
				}
			} else if p, err := getCustomTx(tx, account, name); err == nil {
				at.Description = p.Description
				if v := p.defaultVersion(); v != nil {
					at.DefaultVersion = v.VersionID
				}
			}
			out = append(out, at)
		}
		sort.Slice(out, func(i, j int) bool { return out[i].AttachDate.Before(out[j].AttachDate) })
		return nil
	})
	return out, storeErr(err, "Listing attached policies")
}

// attachedDocs returns the default-version documents of every policy that
// applies to a user: attached to it, or to one of its groups.
func (s *Service) attachedDocs(ctx context.Context, account, user string) ([]string, error) {
	var docs []string
	err := s.st.View(ctx, func(tx store.Tx) error {
		docs = nil
		owners := []string{store.Key(account, "u", user, "")}
		groups, err := tx.List(TableMembers, store.Key(account, "u", user, ""), "", 0)
		if err != nil {
			return err
		}
		for _, kv := range groups {
			owners = append(owners, store.Key(account, "g", kv.Key[strings.LastIndexByte(kv.Key, '/')+1:], ""))
		}
		for _, prefix := range owners {
			kvs, err := tx.List(TableAttach, prefix, "", 0)
			if err != nil {
				return err
			}
			for _, kv := range kvs {
				ptype, name, _ := strings.Cut(strings.TrimPrefix(kv.Key, prefix), "/")
				if ptype == PolicyTypeSystem {
					if sp, ok := systemPolicy(name); ok {
						docs = append(docs, sp.Document)
					}
					continue
				}
				p, err := getCustomTx(tx, account, name)
				if err != nil {
					var ie *Error
					if errors.As(err, &ie) {
						continue // deleted meanwhile: grants nothing
					}
					return err
				}
				if v := p.defaultVersion(); v != nil {
					docs = append(docs, v.Document)
				}
			}
		}
		return nil
	})
	return docs, storeErr(err, "Reading the user's policies")
}
