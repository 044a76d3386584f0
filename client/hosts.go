package client

import (
	"context"
	"strconv"
)

// EnrollmentToken is CreateEnrollmentToken's response; Token is shown once.
type EnrollmentToken struct {
	RequestId  string
	Token      string
	ExpireTime string
	Uses       int
}

// LocalUser is a host account as its agent reports it.
type LocalUser struct {
	UserName      string
	Uid           int
	Allowed       bool // the agent may change it
	PasswordLogin bool // sshd allows a password login for it
	PubkeyLogin   bool // sshd allows a key login for it
}

// HostDriftEvent is a change to a managed account that Keyhold did not make.
type HostDriftEvent struct {
	UserName string
	What     string // "password" or "authorized_keys"
	Time     string
}

// Host is an enrolled host.
type Host struct {
	RequestId    string `json:",omitempty"`
	InstanceId   string
	HostName     string
	SshAddress   string
	AgentVersion string
	EnrollTime   string
	LastSeen     string
	Online       bool
	Removed      bool `json:",omitempty"`
	DriftCount   int
	SshHostKeys  struct{ SshHostKey []string }
	AllowUsers   struct{ UserName []string }
	LocalUsers   struct{ LocalUser []LocalUser }
	Drift        struct{ DriftEvent []HostDriftEvent }
}

// HostList is ListHosts' response.
type HostList struct {
	RequestId string
	Hosts     struct{ Host []Host }
	NextToken string
}

// CreateEnrollmentToken creates an enrollment token for `keyhold agent`;
// ttl is a duration such as "1h" ("" = 1h), uses 0 = 1.
func (c *Client) CreateEnrollmentToken(ctx context.Context, ttl string, uses int) (*EnrollmentToken, error) {
	p := map[string]string{}
	if ttl != "" {
		p["Ttl"] = ttl
	}
	if uses != 0 {
		p["Uses"] = strconv.Itoa(uses)
	}
	out := new(EnrollmentToken)
	return out, c.Call(ctx, VersionKeyhold, "CreateEnrollmentToken", p, out)
}

// ListHosts lists one page of enrolled hosts (maxResults 0 = 50).
func (c *Client) ListHosts(ctx context.Context, maxResults int, nextToken string) (*HostList, error) {
	p := map[string]string{}
	if maxResults != 0 {
		p["MaxResults"] = strconv.Itoa(maxResults)
	}
	if nextToken != "" {
		p["NextToken"] = nextToken
	}
	out := new(HostList)
	return out, c.Call(ctx, VersionKeyhold, "ListHosts", p, out)
}

// DescribeHost returns one host with its users, host keys and drift.
func (c *Client) DescribeHost(ctx context.Context, instanceID string) (*Host, error) {
	out := new(Host)
	return out, c.Call(ctx, VersionKeyhold, "DescribeHost", map[string]string{"InstanceId": instanceID}, out)
}

// RemoveHost removes a host and revokes its agent's identity.
func (c *Client) RemoveHost(ctx context.Context, instanceID string) error {
	var out Response
	return c.Call(ctx, VersionKeyhold, "RemoveHost", map[string]string{"InstanceId": instanceID}, &out)
}
