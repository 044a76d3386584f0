package bench

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/keyhold/keyhold/client"
)

// ramVersion is the RAM API the user set-up calls (client.Call).
const ramVersion = "2015-05-01"

// PolicyStatements is the size of the policy the get-user phase's caller
// holds (issue 4: "a caller with a 20-statement policy").
const PolicyStatements = 20

// benchPolicy is a PolicyStatements-statement document whose only statement
// allowing GetSecretValue on secretName is the last, so every request
// evaluates all of them. The 19 others are plausible grants that do not
// match: half name the action on other secrets (the resource fails), half
// other actions on every secret (the action fails), each with a condition
// the evaluator never reaches.
func benchPolicy(secretName string) string {
	stmts := make([]string, 0, PolicyStatements)
	for i := range PolicyStatements - 1 {
		if i%2 == 0 {
			stmts = append(stmts, fmt.Sprintf(`{"Effect":"Allow","Action":["kms:GetSecretValue","kms:DescribeSecret"],"Resource":"acs:kms:*:*:secret/team%d/*","Condition":{"IpAddress":{"acs:SourceIp":"10.%d.0.0/16"}}}`, i, i))
		} else {
			stmts = append(stmts, fmt.Sprintf(`{"Effect":"Allow","Action":["kms:List*","kms:Describe*","kms:PutSecretValue"],"Resource":"acs:kms:*:*:secret/*","Condition":{"StringEquals":{"kms:tag/team":"team%d"}}}`, i))
		}
	}
	stmts = append(stmts, `{"Effect":"Allow","Action":"kms:GetSecretValue","Resource":"acs:kms:*:*:secret/`+secretName+`"}`)
	return `{"Version":"1","Statement":[` + strings.Join(stmts, ",") + `]}`
}

// benchUser is the RAM user the get-user phase calls as, made through the
// server's own RAM API with root's client.
type benchUser struct {
	name, policy string
	keyID        string
	keySecret    string
}

// createUser creates a RAM user holding benchPolicy(secretName) as its only
// policy, and an access key for it.
func createUser(ctx context.Context, root *client.Client, prefix, secretName string) (*benchUser, error) {
	u := &benchUser{name: prefix + "-user", policy: prefix + "-policy"}
	if err := root.Call(ctx, ramVersion, "CreateUser", map[string]string{"UserName": u.name}, nil); err != nil {
		return nil, fmt.Errorf("bench: CreateUser: %w", err)
	}
	if err := root.Call(ctx, ramVersion, "CreatePolicy", map[string]string{
		"PolicyName": u.policy, "PolicyDocument": benchPolicy(secretName),
		"Description": "keyhold bench: 20 statements, the match last",
	}, nil); err != nil {
		u.remove(root)
		return nil, fmt.Errorf("bench: CreatePolicy: %w", err)
	}
	if err := root.Call(ctx, ramVersion, "AttachPolicyToUser", map[string]string{
		"PolicyType": "Custom", "PolicyName": u.policy, "UserName": u.name,
	}, nil); err != nil {
		u.remove(root)
		return nil, fmt.Errorf("bench: AttachPolicyToUser: %w", err)
	}
	var out struct {
		AccessKey struct{ AccessKeyId, AccessKeySecret string }
	}
	if err := root.Call(ctx, ramVersion, "CreateAccessKey", map[string]string{"UserName": u.name}, &out); err != nil {
		u.remove(root)
		return nil, fmt.Errorf("bench: CreateAccessKey: %w", err)
	}
	if out.AccessKey.AccessKeyId == "" || out.AccessKey.AccessKeySecret == "" {
		u.remove(root)
		return nil, fmt.Errorf("bench: CreateAccessKey returned no key")
	}
	u.keyID, u.keySecret = out.AccessKey.AccessKeyId, out.AccessKey.AccessKeySecret
	return u, nil
}

// remove deletes what createUser made, best effort (a running server keeps
// nothing of the run; an in-process one goes with its data directory).
func (u *benchUser) remove(root *client.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if u.keyID != "" {
		_ = root.Call(ctx, ramVersion, "DeleteAccessKey", map[string]string{"UserName": u.name, "UserAccessKeyId": u.keyID}, nil)
	}
	_ = root.Call(ctx, ramVersion, "DetachPolicyFromUser", map[string]string{"PolicyType": "Custom", "PolicyName": u.policy, "UserName": u.name}, nil)
	_ = root.Call(ctx, ramVersion, "DeleteUser", map[string]string{"UserName": u.name}, nil)
	_ = root.Call(ctx, ramVersion, "DeletePolicy", map[string]string{"PolicyName": u.policy}, nil)
}
