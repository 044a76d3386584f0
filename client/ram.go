package client

import "context"

// VersionRAM selects the RAM API subset (users, groups, access keys,
// policies, login profiles) served on the same endpoint.
const VersionRAM = "2015-05-01"

// RAM response shapes, as the RAM API returns them.

// RAMUser is a RAM user.
type RAMUser struct {
	UserId        string `json:"UserId"`
	UserName      string `json:"UserName"`
	DisplayName   string `json:"DisplayName,omitempty"`
	MobilePhone   string `json:"MobilePhone,omitempty"`
	Email         string `json:"Email,omitempty"`
	Comments      string `json:"Comments,omitempty"`
	CreateDate    string `json:"CreateDate,omitempty"`
	UpdateDate    string `json:"UpdateDate,omitempty"`
	LastLoginDate string `json:"LastLoginDate,omitempty"`
}

// UserResponse is CreateUser's, GetUser's and UpdateUser's result.
type UserResponse struct {
	RequestId string  `json:"RequestId,omitempty"`
	User      RAMUser `json:"User"`
}

// ListUsersResponse is one page of ListUsers.
type ListUsersResponse struct {
	RequestId   string `json:"RequestId,omitempty"`
	IsTruncated bool   `json:"IsTruncated"`
	Marker      string `json:"Marker,omitempty"`
	Users       struct {
		User []RAMUser `json:"User"`
	} `json:"Users"`
}

// RAMAccessKey is an access key; AccessKeySecret is set only by
// CreateAccessKey and CreateAccount (the one time it is shown).
type RAMAccessKey struct {
	AccessKeyId     string `json:"AccessKeyId"`
	AccessKeySecret string `json:"AccessKeySecret,omitempty"`
	Status          string `json:"Status"`
	CreateDate      string `json:"CreateDate,omitempty"`
}

// String hides the secret.
func (k RAMAccessKey) String() string {
	return "RAMAccessKey{" + k.AccessKeyId + ", " + k.Status + ", secret: [redacted]}"
}

// GoString hides the secret from %#v.
func (k RAMAccessKey) GoString() string { return k.String() }

// CreateAccessKeyResponse is CreateAccessKey's result.
type CreateAccessKeyResponse struct {
	RequestId string       `json:"RequestId,omitempty"`
	AccessKey RAMAccessKey `json:"AccessKey"`
}

// ListAccessKeysResponse is ListAccessKeys' result.
type ListAccessKeysResponse struct {
	RequestId  string `json:"RequestId,omitempty"`
	AccessKeys struct {
		AccessKey []RAMAccessKey `json:"AccessKey"`
	} `json:"AccessKeys"`
}

// RAMGroup is a user group.
type RAMGroup struct {
	GroupName  string `json:"GroupName"`
	Comments   string `json:"Comments,omitempty"`
	CreateDate string `json:"CreateDate,omitempty"`
	UpdateDate string `json:"UpdateDate,omitempty"`
}

// CreateGroupResponse is CreateGroup's result.
type CreateGroupResponse struct {
	RequestId string   `json:"RequestId,omitempty"`
	Group     RAMGroup `json:"Group"`
}

// ListGroupsResponse is one page of ListGroups.
type ListGroupsResponse struct {
	RequestId   string `json:"RequestId,omitempty"`
	IsTruncated bool   `json:"IsTruncated"`
	Marker      string `json:"Marker,omitempty"`
	Groups      struct {
		Group []RAMGroup `json:"Group"`
	} `json:"Groups"`
}

// RAMPolicy is a system or custom policy.
type RAMPolicy struct {
	PolicyName      string `json:"PolicyName"`
	PolicyType      string `json:"PolicyType"`
	Description     string `json:"Description,omitempty"`
	DefaultVersion  string `json:"DefaultVersion,omitempty"`
	PolicyDocument  string `json:"PolicyDocument,omitempty"`
	CreateDate      string `json:"CreateDate,omitempty"`
	UpdateDate      string `json:"UpdateDate,omitempty"`
	AttachmentCount int    `json:"AttachmentCount"`
	AttachDate      string `json:"AttachDate,omitempty"` // ListPoliciesFor*
}

// RAMPolicyVersion is one version of a policy.
type RAMPolicyVersion struct {
	VersionId        string `json:"VersionId"`
	IsDefaultVersion bool   `json:"IsDefaultVersion"`
	PolicyDocument   string `json:"PolicyDocument"`
	CreateDate       string `json:"CreateDate,omitempty"`
}

// PolicyResponse is CreatePolicy's and GetPolicy's result.
type PolicyResponse struct {
	RequestId            string           `json:"RequestId,omitempty"`
	Policy               RAMPolicy        `json:"Policy"`
	DefaultPolicyVersion RAMPolicyVersion `json:"DefaultPolicyVersion"`
}

// ListPoliciesResponse is ListPolicies' (one page) and ListPoliciesFor*'s
// result.
type ListPoliciesResponse struct {
	RequestId   string `json:"RequestId,omitempty"`
	IsTruncated bool   `json:"IsTruncated"`
	Marker      string `json:"Marker,omitempty"`
	Policies    struct {
		Policy []RAMPolicy `json:"Policy"`
	} `json:"Policies"`
}

// CreatePolicyVersionResponse is CreatePolicyVersion's result.
type CreatePolicyVersionResponse struct {
	RequestId     string           `json:"RequestId,omitempty"`
	PolicyVersion RAMPolicyVersion `json:"PolicyVersion"`
}

// LoginProfileResponse is CreateLoginProfile's and GetLoginProfile's result.
type LoginProfileResponse struct {
	RequestId    string `json:"RequestId,omitempty"`
	LoginProfile struct {
		UserName              string `json:"UserName"`
		PasswordResetRequired bool   `json:"PasswordResetRequired"`
		MFABindRequired       bool   `json:"MFABindRequired"`
		CreateDate            string `json:"CreateDate,omitempty"`
	} `json:"LoginProfile"`
}

// Account is a tenant of the deployment.
type Account struct {
	AccountId   string `json:"AccountId"`
	DisplayName string `json:"DisplayName,omitempty"`
	CreateDate  string `json:"CreateDate,omitempty"`
}

// CreateAccountResponse is CreateAccount's result: the account and its
// root access key pair, shown this once.
type CreateAccountResponse struct {
	RequestId string       `json:"RequestId,omitempty"`
	Account   Account      `json:"Account"`
	AccessKey RAMAccessKey `json:"AccessKey"`
}

// ListAccountsResponse is ListAccounts' result.
type ListAccountsResponse struct {
	RequestId string `json:"RequestId,omitempty"`
	Accounts  struct {
		Account []Account `json:"Account"`
	} `json:"Accounts"`
}

// RAM calls a RAM action; params with empty values are not sent.
func (c *Client) RAM(ctx context.Context, action string, params map[string]string, out any) error {
	return c.Call(ctx, VersionRAM, action, compact(params), out)
}

// Keyhold calls a Keyhold action (Version 2026-11-01); params with empty
// values are not sent.
func (c *Client) Keyhold(ctx context.Context, action string, params map[string]string, out any) error {
	return c.Call(ctx, VersionKeyhold, action, compact(params), out)
}

func compact(p map[string]string) map[string]string {
	out := make(map[string]string, len(p))
	for k, v := range p {
		if v != "" {
			out[k] = v
		}
	}
	return out
}
