package kmsapi

import (
	"context"
	"time"

	"github.com/keyhold/keyhold/internal/errs"
	"github.com/keyhold/keyhold/internal/iam"
)

// RAMService is what the RAM (2015-05-01) actions and the account actions
// need from the identity domain; *iam.Service implements it.
type RAMService interface {
	CreateUser(ctx context.Context, account, name string, in iam.UserInput) (*iam.User, error)
	GetUser(ctx context.Context, account, name string) (*iam.User, error)
	ListUsers(ctx context.Context, account string, p iam.Page) ([]*iam.User, bool, error)
	UpdateUser(ctx context.Context, account, name string, in iam.UserInput) (*iam.User, error)
	DeleteUser(ctx context.Context, account, name string) error

	CreateAccessKey(ctx context.Context, account, user string) (iam.AccessKeyPair, iam.AccessKey, error)
	ListAccessKeys(ctx context.Context, account, user string) ([]iam.AccessKey, error)
	UpdateAccessKey(ctx context.Context, account, user, id string, status iam.AccessKeyStatus) error
	DeleteAccessKey(ctx context.Context, account, user, id string) error

	CreateGroup(ctx context.Context, account, name, comments string) (*iam.Group, error)
	ListGroups(ctx context.Context, account string, p iam.Page) ([]*iam.Group, bool, error)
	DeleteGroup(ctx context.Context, account, name string) error
	AddUserToGroup(ctx context.Context, account, group, user string) error
	RemoveUserFromGroup(ctx context.Context, account, group, user string) error

	CreatePolicy(ctx context.Context, account, name, description, doc string) (*iam.Policy, error)
	GetPolicy(ctx context.Context, account, ptype, name string) (*iam.Policy, error)
	ListPolicies(ctx context.Context, account, ptype string, p iam.Page) ([]*iam.Policy, bool, error)
	DeletePolicy(ctx context.Context, account, name string) error
	CreatePolicyVersion(ctx context.Context, account, name, doc string, setDefault bool, rotate string) (*iam.PolicyVersion, error)
	AttachPolicyToUser(ctx context.Context, account, ptype, name, user string) error
	DetachPolicyFromUser(ctx context.Context, account, ptype, name, user string) error
	AttachPolicyToGroup(ctx context.Context, account, ptype, name, group string) error
	DetachPolicyFromGroup(ctx context.Context, account, ptype, name, group string) error
	ListPoliciesForUser(ctx context.Context, account, user string) ([]iam.Attachment, error)
	ListPoliciesForGroup(ctx context.Context, account, group string) ([]iam.Attachment, error)

	CreateLoginProfile(ctx context.Context, account, user, password string, resetRequired, mfaRequired bool) (*iam.LoginProfile, error)
	GetLoginProfile(ctx context.Context, account, user string) (*iam.LoginProfile, error)
	UpdateLoginProfile(ctx context.Context, account, user string, password *string, resetRequired, mfaRequired *bool) error
	DeleteLoginProfile(ctx context.Context, account, user string) error

	CreateAccount(ctx context.Context, displayName string) (iam.Account, iam.AccessKeyPair, error)
	ListAccounts(ctx context.Context) ([]iam.Account, error)
}

var _ RAMService = (*iam.Service)(nil)

// ramTime formats a RAM date: ISO 8601 in UTC, seconds precision.
func ramTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04:05Z")
}

// Wire shapes, field for field as the official RAM client
// (github.com/aliyun/alibaba-cloud-sdk-go/services/ram) decodes them.

type ramUser struct {
	UserId        string `json:"UserId" xml:"UserId"`
	UserName      string `json:"UserName" xml:"UserName"`
	DisplayName   string `json:"DisplayName" xml:"DisplayName"`
	MobilePhone   string `json:"MobilePhone" xml:"MobilePhone"`
	Email         string `json:"Email" xml:"Email"`
	Comments      string `json:"Comments" xml:"Comments"`
	CreateDate    string `json:"CreateDate" xml:"CreateDate"`
	UpdateDate    string `json:"UpdateDate,omitempty" xml:"UpdateDate,omitempty"`
	LastLoginDate string `json:"LastLoginDate,omitempty" xml:"LastLoginDate,omitempty"`
}

func toRAMUser(u *iam.User) ramUser {
	return ramUser{
		UserId: u.UserID, UserName: u.UserName, DisplayName: u.DisplayName, MobilePhone: u.MobilePhone,
		Email: u.Email, Comments: u.Comments, CreateDate: ramTime(u.CreateDate), UpdateDate: ramTime(u.UpdateDate),
		LastLoginDate: ramTime(u.LastLoginDate),
	}
}

type ramUserResponse struct {
	User ramUser `json:"User" xml:"User"`
}

type listUsersResponse struct {
	IsTruncated bool   `json:"IsTruncated" xml:"IsTruncated"`
	Marker      string `json:"Marker,omitempty" xml:"Marker,omitempty"`
	Users       struct {
		User []ramUser `json:"User" xml:"User"`
	} `json:"Users" xml:"Users"`
}

type ramAccessKey struct {
	AccessKeyId     string `json:"AccessKeyId" xml:"AccessKeyId"`
	AccessKeySecret string `json:"AccessKeySecret,omitempty" xml:"AccessKeySecret,omitempty"`
	Status          string `json:"Status" xml:"Status"`
	CreateDate      string `json:"CreateDate" xml:"CreateDate"`
}

type createAccessKeyResponse struct {
	AccessKey ramAccessKey `json:"AccessKey" xml:"AccessKey"`
}

type listAccessKeysResponse struct {
	AccessKeys struct {
		AccessKey []ramAccessKey `json:"AccessKey" xml:"AccessKey"`
	} `json:"AccessKeys" xml:"AccessKeys"`
}

type ramGroup struct {
	GroupName  string `json:"GroupName" xml:"GroupName"`
	Comments   string `json:"Comments" xml:"Comments"`
	CreateDate string `json:"CreateDate" xml:"CreateDate"`
	UpdateDate string `json:"UpdateDate,omitempty" xml:"UpdateDate,omitempty"`
}

type createGroupResponse struct {
	Group ramGroup `json:"Group" xml:"Group"`
}

type listGroupsResponse struct {
	IsTruncated bool   `json:"IsTruncated" xml:"IsTruncated"`
	Marker      string `json:"Marker,omitempty" xml:"Marker,omitempty"`
	Groups      struct {
		Group []ramGroup `json:"Group" xml:"Group"`
	} `json:"Groups" xml:"Groups"`
}

type ramPolicy struct {
	PolicyName      string `json:"PolicyName" xml:"PolicyName"`
	PolicyType      string `json:"PolicyType" xml:"PolicyType"`
	Description     string `json:"Description" xml:"Description"`
	DefaultVersion  string `json:"DefaultVersion" xml:"DefaultVersion"`
	PolicyDocument  string `json:"PolicyDocument,omitempty" xml:"PolicyDocument,omitempty"`
	CreateDate      string `json:"CreateDate" xml:"CreateDate"`
	UpdateDate      string `json:"UpdateDate,omitempty" xml:"UpdateDate,omitempty"`
	AttachmentCount *int   `json:"AttachmentCount,omitempty" xml:"AttachmentCount,omitempty"`
}

func toRAMPolicy(p *iam.Policy, withDoc bool) ramPolicy {
	n := p.AttachmentCount
	out := ramPolicy{
		PolicyName: p.PolicyName, PolicyType: p.PolicyType, Description: p.Description,
		DefaultVersion: p.DefaultVersion, CreateDate: ramTime(p.CreateDate), UpdateDate: ramTime(p.UpdateDate),
		AttachmentCount: &n,
	}
	if withDoc {
		out.PolicyDocument = p.Document
	}
	return out
}

type ramPolicyVersion struct {
	VersionId        string `json:"VersionId" xml:"VersionId"`
	IsDefaultVersion bool   `json:"IsDefaultVersion" xml:"IsDefaultVersion"`
	PolicyDocument   string `json:"PolicyDocument" xml:"PolicyDocument"`
	CreateDate       string `json:"CreateDate" xml:"CreateDate"`
}

type createPolicyResponse struct {
	Policy ramPolicy `json:"Policy" xml:"Policy"`
}

type getPolicyResponse struct {
	Policy               ramPolicy        `json:"Policy" xml:"Policy"`
	DefaultPolicyVersion ramPolicyVersion `json:"DefaultPolicyVersion" xml:"DefaultPolicyVersion"`
}

type listPoliciesResponse struct {
	IsTruncated bool   `json:"IsTruncated" xml:"IsTruncated"`
	Marker      string `json:"Marker,omitempty" xml:"Marker,omitempty"`
	Policies    struct {
		Policy []ramPolicy `json:"Policy" xml:"Policy"`
	} `json:"Policies" xml:"Policies"`
}

type createPolicyVersionResponse struct {
	PolicyVersion ramPolicyVersion `json:"PolicyVersion" xml:"PolicyVersion"`
}

type ramAttachedPolicy struct {
	PolicyName     string `json:"PolicyName" xml:"PolicyName"`
	PolicyType     string `json:"PolicyType" xml:"PolicyType"`
	Description    string `json:"Description" xml:"Description"`
	DefaultVersion string `json:"DefaultVersion" xml:"DefaultVersion"`
	AttachDate     string `json:"AttachDate" xml:"AttachDate"`
}

type listAttachedResponse struct {
	Policies struct {
		Policy []ramAttachedPolicy `json:"Policy" xml:"Policy"`
	} `json:"Policies" xml:"Policies"`
}

type ramLoginProfile struct {
	UserName              string `json:"UserName" xml:"UserName"`
	PasswordResetRequired bool   `json:"PasswordResetRequired" xml:"PasswordResetRequired"`
	MFABindRequired       bool   `json:"MFABindRequired" xml:"MFABindRequired"`
	CreateDate            string `json:"CreateDate" xml:"CreateDate"`
}

type loginProfileResponse struct {
	LoginProfile ramLoginProfile `json:"LoginProfile" xml:"LoginProfile"`
}

type ramAccount struct {
	AccountId   string `json:"AccountId" xml:"AccountId"`
	DisplayName string `json:"DisplayName" xml:"DisplayName"`
	CreateDate  string `json:"CreateDate" xml:"CreateDate"`
}

type createAccountResponse struct {
	Account   ramAccount   `json:"Account" xml:"Account"`
	AccessKey ramAccessKey `json:"AccessKey" xml:"AccessKey"`
}

type listAccountsResponse struct {
	Accounts struct {
		Account []ramAccount `json:"Account" xml:"Account"`
	} `json:"Accounts" xml:"Accounts"`
}

// ramARN is a RAM resource ARN of the caller's account (RAM ARNs have no
// region).
func ramARN(r *Request, kind, name string) string {
	return "acs:ram::" + r.Principal.Account + ":" + kind + "/" + name
}

// targetUser is the user an access key or login profile action acts on:
// UserName, or the caller itself when it is a user and names no one; ""
// means the account root (access key actions only).
func targetUser(r *Request) string {
	if u := r.Params.String("UserName"); u != "" {
		return u
	}
	if r.Principal.Kind == iam.KindUser {
		return r.Principal.Name
	}
	return ""
}

func userResource(r *Request) string {
	if u := targetUser(r); u != "" {
		return ramARN(r, "user", u)
	}
	return "acs:ram::" + r.Principal.Account + ":root"
}

func groupResource(r *Request) string { return ramARN(r, "group", r.Params.String("GroupName")) }
func policyResource(r *Request) string {
	return ramARN(r, "policy", r.Params.String("PolicyName"))
}

func fixed(kind string) func(*Request) string {
	return func(r *Request) string { return ramARN(r, kind, "*") }
}

// RAMRoutes returns the RAM API subset (Version 2015-05-01), authorized as
// ram:<Action> on acs:ram::<uid>:user/<name>, group/<name> or
// policy/<name>.
func RAMRoutes(svc RAMService) []Route {
	h := &ramHandlers{svc: svc}
	rt := func(action string, fn HandlerFunc, res func(*Request) string) Route {
		return Route{Version: VersionRAM, Action: action, Handler: fn, Resource: res}
	}
	user := userResource
	return []Route{
		rt("CreateUser", h.createUser, user),
		rt("GetUser", h.getUser, user),
		rt("ListUsers", h.listUsers, fixed("user")),
		rt("UpdateUser", h.updateUser, user),
		rt("DeleteUser", h.deleteUser, user),
		rt("CreateAccessKey", h.createAccessKey, user),
		rt("ListAccessKeys", h.listAccessKeys, user),
		rt("UpdateAccessKey", h.updateAccessKey, user),
		rt("DeleteAccessKey", h.deleteAccessKey, user),
		rt("CreateGroup", h.createGroup, groupResource),
		rt("ListGroups", h.listGroups, fixed("group")),
		rt("DeleteGroup", h.deleteGroup, groupResource),
		rt("AddUserToGroup", h.addUserToGroup, groupResource),
		rt("RemoveUserFromGroup", h.removeUserFromGroup, groupResource),
		rt("CreatePolicy", h.createPolicy, policyResource),
		rt("GetPolicy", h.getPolicy, policyResource),
		rt("ListPolicies", h.listPolicies, fixed("policy")),
		rt("DeletePolicy", h.deletePolicy, policyResource),
		rt("CreatePolicyVersion", h.createPolicyVersion, policyResource),
		// Attaching grants power to the user or group: authorized on it.
		rt("AttachPolicyToUser", h.attachPolicyToUser, user),
		rt("DetachPolicyFromUser", h.detachPolicyFromUser, user),
		rt("AttachPolicyToGroup", h.attachPolicyToGroup, groupResource),
		rt("DetachPolicyFromGroup", h.detachPolicyFromGroup, groupResource),
		rt("ListPoliciesForUser", h.listPoliciesForUser, user),
		rt("ListPoliciesForGroup", h.listPoliciesForGroup, groupResource),
		rt("CreateLoginProfile", h.createLoginProfile, user),
		rt("GetLoginProfile", h.getLoginProfile, user),
		rt("UpdateLoginProfile", h.updateLoginProfile, user),
		rt("DeleteLoginProfile", h.deleteLoginProfile, user),
	}
}

// AccountRoutes returns Keyhold's account actions (Version 2026-11-01):
// CreateAccount and ListAccounts, authorized as keyhold:<Action> on the
// deployment; only the first account's root may call them.
func AccountRoutes(svc RAMService) []Route {
	h := &ramHandlers{svc: svc}
	deployment := func(r *Request) string {
		return "acs:keyhold:" + r.Region + ":" + r.Principal.Account + ":deployment"
	}
	return []Route{
		{Version: VersionKeyhold, Action: "CreateAccount", Handler: h.createAccount, Resource: deployment},
		{Version: VersionKeyhold, Action: "ListAccounts", Handler: h.listAccounts, Resource: deployment},
	}
}

type ramHandlers struct{ svc RAMService }

func optional(p Params, name string) *string {
	if !p.Has(name) {
		return nil
	}
	v := p.String(name)
	return &v
}

func optionalBool(p Params, name string) (*bool, error) {
	if !p.Has(name) {
		return nil, nil
	}
	b, err := p.Bool(name, false)
	if err != nil {
		return nil, err
	}
	return &b, nil
}

func ramPage(p Params) (iam.Page, error) {
	n, err := p.Int("MaxItems", 0)
	if err != nil {
		return iam.Page{}, err
	}
	if p.Has("MaxItems") && n == 0 {
		return iam.Page{}, errs.E(errs.KindInvalidParameter, "The parameter MaxItems must be between 1 and 1000.")
	}
	return iam.Page{Marker: p.String("Marker"), MaxItems: n}, nil
}

func (h *ramHandlers) createUser(ctx context.Context, r *Request) (any, error) {
	p := r.Params
	u, err := h.svc.CreateUser(ctx, r.Principal.Account, p.String("UserName"), iam.UserInput{
		DisplayName: optional(p, "DisplayName"), MobilePhone: optional(p, "MobilePhone"),
		Email: optional(p, "Email"), Comments: optional(p, "Comments"),
	})
	if err != nil {
		return nil, err
	}
	out := toRAMUser(u)
	out.UpdateDate = ""
	return &ramUserResponse{User: out}, nil
}

func (h *ramHandlers) getUser(ctx context.Context, r *Request) (any, error) {
	u, err := h.svc.GetUser(ctx, r.Principal.Account, targetUser(r))
	if err != nil {
		return nil, err
	}
	return &ramUserResponse{User: toRAMUser(u)}, nil
}

func (h *ramHandlers) listUsers(ctx context.Context, r *Request) (any, error) {
	pg, err := ramPage(r.Params)
	if err != nil {
		return nil, err
	}
	users, more, err := h.svc.ListUsers(ctx, r.Principal.Account, pg)
	if err != nil {
		return nil, err
	}
	out := &listUsersResponse{IsTruncated: more}
	out.Users.User = make([]ramUser, 0, len(users))
	for _, u := range users {
		ru := toRAMUser(u)
		ru.LastLoginDate = ""
		out.Users.User = append(out.Users.User, ru)
	}
	if more {
		out.Marker = users[len(users)-1].UserName
	}
	return out, nil
}

func (h *ramHandlers) updateUser(ctx context.Context, r *Request) (any, error) {
	p := r.Params
	u, err := h.svc.UpdateUser(ctx, r.Principal.Account, p.String("UserName"), iam.UserInput{
		NewUserName: optional(p, "NewUserName"), DisplayName: optional(p, "NewDisplayName"),
		MobilePhone: optional(p, "NewMobilePhone"), Email: optional(p, "NewEmail"), Comments: optional(p, "NewComments"),
	})
	if err != nil {
		return nil, err
	}
	out := toRAMUser(u)
	out.LastLoginDate = ""
	return &ramUserResponse{User: out}, nil
}

func (h *ramHandlers) deleteUser(ctx context.Context, r *Request) (any, error) {
	return emptyOrError(h.svc.DeleteUser(ctx, r.Principal.Account, r.Params.String("UserName")))
}

func (h *ramHandlers) createAccessKey(ctx context.Context, r *Request) (any, error) {
	pair, k, err := h.svc.CreateAccessKey(ctx, r.Principal.Account, targetUser(r))
	if err != nil {
		return nil, err
	}
	return &createAccessKeyResponse{AccessKey: ramAccessKey{
		AccessKeyId: pair.AccessKeyID, AccessKeySecret: pair.AccessKeySecret,
		Status: string(k.Status), CreateDate: ramTime(k.CreateDate),
	}}, nil
}

func (h *ramHandlers) listAccessKeys(ctx context.Context, r *Request) (any, error) {
	keys, err := h.svc.ListAccessKeys(ctx, r.Principal.Account, targetUser(r))
	if err != nil {
		return nil, err
	}
	out := &listAccessKeysResponse{}
	out.AccessKeys.AccessKey = make([]ramAccessKey, 0, len(keys))
	for _, k := range keys {
		out.AccessKeys.AccessKey = append(out.AccessKeys.AccessKey, ramAccessKey{
			AccessKeyId: k.AccessKeyID, Status: string(k.Status), CreateDate: ramTime(k.CreateDate),
		})
	}
	return out, nil
}

func (h *ramHandlers) updateAccessKey(ctx context.Context, r *Request) (any, error) {
	p := r.Params
	id, err := p.Required("UserAccessKeyId")
	if err != nil {
		return nil, err
	}
	status, err := p.Required("Status")
	if err != nil {
		return nil, err
	}
	return emptyOrError(h.svc.UpdateAccessKey(ctx, r.Principal.Account, targetUser(r), id, iam.AccessKeyStatus(status)))
}

func (h *ramHandlers) deleteAccessKey(ctx context.Context, r *Request) (any, error) {
	id, err := r.Params.Required("UserAccessKeyId")
	if err != nil {
		return nil, err
	}
	return emptyOrError(h.svc.DeleteAccessKey(ctx, r.Principal.Account, targetUser(r), id))
}

func toRAMGroup(g *iam.Group) ramGroup {
	return ramGroup{GroupName: g.GroupName, Comments: g.Comments, CreateDate: ramTime(g.CreateDate), UpdateDate: ramTime(g.UpdateDate)}
}

func (h *ramHandlers) createGroup(ctx context.Context, r *Request) (any, error) {
	g, err := h.svc.CreateGroup(ctx, r.Principal.Account, r.Params.String("GroupName"), r.Params.String("Comments"))
	if err != nil {
		return nil, err
	}
	out := toRAMGroup(g)
	out.UpdateDate = ""
	return &createGroupResponse{Group: out}, nil
}

func (h *ramHandlers) listGroups(ctx context.Context, r *Request) (any, error) {
	pg, err := ramPage(r.Params)
	if err != nil {
		return nil, err
	}
	groups, more, err := h.svc.ListGroups(ctx, r.Principal.Account, pg)
	if err != nil {
		return nil, err
	}
	out := &listGroupsResponse{IsTruncated: more}
	out.Groups.Group = make([]ramGroup, 0, len(groups))
	for _, g := range groups {
		out.Groups.Group = append(out.Groups.Group, toRAMGroup(g))
	}
	if more {
		out.Marker = groups[len(groups)-1].GroupName
	}
	return out, nil
}

func (h *ramHandlers) deleteGroup(ctx context.Context, r *Request) (any, error) {
	return emptyOrError(h.svc.DeleteGroup(ctx, r.Principal.Account, r.Params.String("GroupName")))
}

func (h *ramHandlers) addUserToGroup(ctx context.Context, r *Request) (any, error) {
	return emptyOrError(h.svc.AddUserToGroup(ctx, r.Principal.Account, r.Params.String("GroupName"), r.Params.String("UserName")))
}

func (h *ramHandlers) removeUserFromGroup(ctx context.Context, r *Request) (any, error) {
	return emptyOrError(h.svc.RemoveUserFromGroup(ctx, r.Principal.Account, r.Params.String("GroupName"), r.Params.String("UserName")))
}

func (h *ramHandlers) createPolicy(ctx context.Context, r *Request) (any, error) {
	p := r.Params
	pol, err := h.svc.CreatePolicy(ctx, r.Principal.Account, p.String("PolicyName"), p.String("Description"), p.String("PolicyDocument"))
	if err != nil {
		return nil, err
	}
	out := toRAMPolicy(pol, false)
	out.UpdateDate, out.AttachmentCount = "", nil
	return &createPolicyResponse{Policy: out}, nil
}

func (h *ramHandlers) getPolicy(ctx context.Context, r *Request) (any, error) {
	p := r.Params
	pol, err := h.svc.GetPolicy(ctx, r.Principal.Account, p.String("PolicyType"), p.String("PolicyName"))
	if err != nil {
		return nil, err
	}
	return &getPolicyResponse{
		Policy: toRAMPolicy(pol, true),
		DefaultPolicyVersion: ramPolicyVersion{
			VersionId: pol.DefaultVersion, IsDefaultVersion: true, PolicyDocument: pol.Document,
			CreateDate: ramTime(pol.VersionDate),
		},
	}, nil
}

func (h *ramHandlers) listPolicies(ctx context.Context, r *Request) (any, error) {
	pg, err := ramPage(r.Params)
	if err != nil {
		return nil, err
	}
	pols, more, err := h.svc.ListPolicies(ctx, r.Principal.Account, r.Params.String("PolicyType"), pg)
	if err != nil {
		return nil, err
	}
	out := &listPoliciesResponse{IsTruncated: more}
	out.Policies.Policy = make([]ramPolicy, 0, len(pols))
	for _, p := range pols {
		out.Policies.Policy = append(out.Policies.Policy, toRAMPolicy(p, false))
	}
	if more {
		out.Marker = iam.PolicyMarker(pols[len(pols)-1])
	}
	return out, nil
}

func (h *ramHandlers) deletePolicy(ctx context.Context, r *Request) (any, error) {
	return emptyOrError(h.svc.DeletePolicy(ctx, r.Principal.Account, r.Params.String("PolicyName")))
}

func (h *ramHandlers) createPolicyVersion(ctx context.Context, r *Request) (any, error) {
	p := r.Params
	setDefault, err := p.Bool("SetAsDefault", false)
	if err != nil {
		return nil, err
	}
	v, err := h.svc.CreatePolicyVersion(ctx, r.Principal.Account, p.String("PolicyName"), p.String("PolicyDocument"), setDefault, p.String("RotateStrategy"))
	if err != nil {
		return nil, err
	}
	return &createPolicyVersionResponse{PolicyVersion: ramPolicyVersion{
		VersionId: v.VersionID, IsDefaultVersion: v.IsDefault, PolicyDocument: v.Document, CreateDate: ramTime(v.CreateDate),
	}}, nil
}

func (h *ramHandlers) attachPolicyToUser(ctx context.Context, r *Request) (any, error) {
	p := r.Params
	return emptyOrError(h.svc.AttachPolicyToUser(ctx, r.Principal.Account, p.String("PolicyType"), p.String("PolicyName"), p.String("UserName")))
}

func (h *ramHandlers) detachPolicyFromUser(ctx context.Context, r *Request) (any, error) {
	p := r.Params
	return emptyOrError(h.svc.DetachPolicyFromUser(ctx, r.Principal.Account, p.String("PolicyType"), p.String("PolicyName"), p.String("UserName")))
}

func (h *ramHandlers) attachPolicyToGroup(ctx context.Context, r *Request) (any, error) {
	p := r.Params
	return emptyOrError(h.svc.AttachPolicyToGroup(ctx, r.Principal.Account, p.String("PolicyType"), p.String("PolicyName"), p.String("GroupName")))
}

func (h *ramHandlers) detachPolicyFromGroup(ctx context.Context, r *Request) (any, error) {
	p := r.Params
	return emptyOrError(h.svc.DetachPolicyFromGroup(ctx, r.Principal.Account, p.String("PolicyType"), p.String("PolicyName"), p.String("GroupName")))
}

func attachedResponse(list []iam.Attachment) *listAttachedResponse {
	out := &listAttachedResponse{}
	out.Policies.Policy = make([]ramAttachedPolicy, 0, len(list))
	for _, a := range list {
		out.Policies.Policy = append(out.Policies.Policy, ramAttachedPolicy{
			PolicyName: a.PolicyName, PolicyType: a.PolicyType, Description: a.Description,
			DefaultVersion: a.DefaultVersion, AttachDate: ramTime(a.AttachDate),
		})
	}
	return out
}

func (h *ramHandlers) listPoliciesForUser(ctx context.Context, r *Request) (any, error) {
	list, err := h.svc.ListPoliciesForUser(ctx, r.Principal.Account, r.Params.String("UserName"))
	if err != nil {
		return nil, err
	}
	return attachedResponse(list), nil
}

func (h *ramHandlers) listPoliciesForGroup(ctx context.Context, r *Request) (any, error) {
	list, err := h.svc.ListPoliciesForGroup(ctx, r.Principal.Account, r.Params.String("GroupName"))
	if err != nil {
		return nil, err
	}
	return attachedResponse(list), nil
}

func toRAMLogin(lp *iam.LoginProfile) ramLoginProfile {
	return ramLoginProfile{UserName: lp.UserName, PasswordResetRequired: lp.PasswordResetRequired,
		MFABindRequired: lp.MFABindRequired, CreateDate: ramTime(lp.CreateDate)}
}

func (h *ramHandlers) createLoginProfile(ctx context.Context, r *Request) (any, error) {
	p := r.Params
	reset, err := p.Bool("PasswordResetRequired", false)
	if err != nil {
		return nil, err
	}
	mfa, err := p.Bool("MFABindRequired", false)
	if err != nil {
		return nil, err
	}
	lp, err := h.svc.CreateLoginProfile(ctx, r.Principal.Account, p.String("UserName"), p.String("Password"), reset, mfa)
	if err != nil {
		return nil, err
	}
	return &loginProfileResponse{LoginProfile: toRAMLogin(lp)}, nil
}

func (h *ramHandlers) getLoginProfile(ctx context.Context, r *Request) (any, error) {
	lp, err := h.svc.GetLoginProfile(ctx, r.Principal.Account, targetUser(r))
	if err != nil {
		return nil, err
	}
	return &loginProfileResponse{LoginProfile: toRAMLogin(lp)}, nil
}

func (h *ramHandlers) updateLoginProfile(ctx context.Context, r *Request) (any, error) {
	p := r.Params
	reset, err := optionalBool(p, "PasswordResetRequired")
	if err != nil {
		return nil, err
	}
	mfa, err := optionalBool(p, "MFABindRequired")
	if err != nil {
		return nil, err
	}
	var pw *string
	if v := p.String("Password"); v != "" {
		pw = &v
	}
	return emptyOrError(h.svc.UpdateLoginProfile(ctx, r.Principal.Account, p.String("UserName"), pw, reset, mfa))
}

func (h *ramHandlers) deleteLoginProfile(ctx context.Context, r *Request) (any, error) {
	return emptyOrError(h.svc.DeleteLoginProfile(ctx, r.Principal.Account, r.Params.String("UserName")))
}

func toRAMAccount(a iam.Account) ramAccount {
	return ramAccount{AccountId: a.UID, DisplayName: a.DisplayName, CreateDate: ramTime(a.CreateDate)}
}

func (h *ramHandlers) createAccount(ctx context.Context, r *Request) (any, error) {
	a, pair, err := h.svc.CreateAccount(ctx, r.Params.String("DisplayName"))
	if err != nil {
		return nil, err
	}
	return &createAccountResponse{
		Account: toRAMAccount(a),
		AccessKey: ramAccessKey{AccessKeyId: pair.AccessKeyID, AccessKeySecret: pair.AccessKeySecret,
			Status: string(iam.StatusActive), CreateDate: ramTime(a.CreateDate)},
	}, nil
}

func (h *ramHandlers) listAccounts(ctx context.Context, r *Request) (any, error) {
	list, err := h.svc.ListAccounts(ctx)
	if err != nil {
		return nil, err
	}
	out := &listAccountsResponse{}
	out.Accounts.Account = make([]ramAccount, 0, len(list))
	for _, a := range list {
		out.Accounts.Account = append(out.Accounts.Account, toRAMAccount(a))
	}
	return out, nil
}
