package server_test

// These tests drive the unmodified official RAM client
// (github.com/aliyun/alibaba-cloud-sdk-go/services/ram, signature V1)
// against a real server: the RAM API subset on Keyhold's endpoint.

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	sdkerrors "github.com/aliyun/alibaba-cloud-sdk-go/sdk/errors"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/ram"

	"github.com/keyhold/keyhold/client"
)

// ramClient is the official RAM client bound to the test server's plain
// HTTP listener (the SDK takes host:port as the request's Domain).
type ramClient struct {
	*ram.Client
	domain string
}

func (ts *testServer) ram(t *testing.T, id, secret string) *ramClient {
	t.Helper()
	c, err := ram.NewClientWithAccessKey("cn-hangzhou", id, secret)
	if err != nil {
		t.Fatal(err)
	}
	return &ramClient{Client: c, domain: strings.TrimPrefix(ts.HTTPURL, "http://")}
}

// apiClient is Keyhold's public Go client with the given key pair.
func (ts *testServer) apiClient(t *testing.T, id, secret string) *client.Client {
	t.Helper()
	c, err := client.New(client.Config{Endpoint: ts.HTTPURL, AccessKeyID: id, AccessKeySecret: secret, ReadRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// at points a request at the server.
func at[R requests.AcsRequest](c *ramClient, r R) R {
	r.SetDomain(c.domain)
	r.SetScheme("http")
	return r
}

// ramCode is the RAM error code of an SDK error ("" for nil).
func ramCode(err error) string {
	if err == nil {
		return ""
	}
	var se *sdkerrors.ServerError
	if errors.As(err, &se) {
		return se.ErrorCode()
	}
	return "?" + err.Error()
}

func wantRAM(t *testing.T, err error, code string, status int) *sdkerrors.ServerError {
	t.Helper()
	if got := ramCode(err); got != code {
		t.Fatalf("code = %q, want %q (err: %v)", got, code, err)
	}
	var se *sdkerrors.ServerError
	errors.As(err, &se)
	if se.HttpStatus() != status {
		t.Errorf("%s: HTTP status = %d, want %d", code, se.HttpStatus(), status)
	}
	return se
}

func (c *ramClient) createUser(t *testing.T, name string) *ram.CreateUserResponse {
	t.Helper()
	r := at(c, ram.CreateCreateUserRequest())
	r.UserName = name
	return must(c.CreateUser(r))
}

func (c *ramClient) createKey(t *testing.T, user string) ram.AccessKeyInCreateAccessKey {
	t.Helper()
	r := at(c, ram.CreateCreateAccessKeyRequest())
	r.UserName = user
	return must(c.CreateAccessKey(r)).AccessKey
}

func (c *ramClient) createPolicy(t *testing.T, name, doc string) {
	t.Helper()
	r := at(c, ram.CreateCreatePolicyRequest())
	r.PolicyName, r.PolicyDocument = name, doc
	must(c.CreatePolicy(r))
}

func (c *ramClient) attachUser(t *testing.T, ptype, policy, user string) {
	t.Helper()
	r := at(c, ram.CreateAttachPolicyToUserRequest())
	r.PolicyType, r.PolicyName, r.UserName = ptype, policy, user
	must(c.AttachPolicyToUser(r))
}

func TestRAMClientUsersAndAccessKeys(t *testing.T) {
	ts := startServer(t)
	c := ts.ram(t, ts.keyID, ts.keySecret)

	cr := at(c, ram.CreateCreateUserRequest())
	cr.UserName, cr.DisplayName, cr.Email, cr.Comments = "alice", "Alice", "alice@example.com", "ops"
	u := must(c.CreateUser(cr)).User
	if u.UserName != "alice" || u.DisplayName != "Alice" || u.Email != "alice@example.com" || u.UserId == "" || u.CreateDate == "" {
		t.Fatalf("CreateUser = %+v", u)
	}

	_, err := c.CreateUser(cr)
	wantRAM(t, err, "EntityAlreadyExists.User", 409)
	bad := at(c, ram.CreateCreateUserRequest())
	bad.UserName = "no spaces"
	_, err = c.CreateUser(bad)
	wantRAM(t, err, "InvalidParameter.UserName.InvalidChars", 400)
	bad.UserName = strings.Repeat("a", 65)
	_, err = c.CreateUser(bad)
	wantRAM(t, err, "InvalidParameter.UserName.Length", 400)

	gr := at(c, ram.CreateGetUserRequest())
	gr.UserName = "alice"
	if got := must(c.GetUser(gr)).User; got.UserId != u.UserId || got.Comments != "ops" {
		t.Fatalf("GetUser = %+v", got)
	}
	gr.UserName = "nobody"
	_, err = c.GetUser(gr)
	wantRAM(t, err, "EntityNotExist.User", 404)

	// Paging: three users, two per page.
	c.createUser(t, "bob")
	c.createUser(t, "carol")
	lr := at(c, ram.CreateListUsersRequest())
	lr.MaxItems = requests.NewInteger(2)
	p1 := must(c.ListUsers(lr))
	if !p1.IsTruncated || len(p1.Users.User) != 2 || p1.Marker != "bob" {
		t.Fatalf("page 1 = %+v", p1)
	}
	lr2 := at(c, ram.CreateListUsersRequest())
	lr2.MaxItems, lr2.Marker = requests.NewInteger(2), p1.Marker
	p2 := must(c.ListUsers(lr2))
	if p2.IsTruncated || len(p2.Users.User) != 1 || p2.Users.User[0].UserName != "carol" {
		t.Fatalf("page 2 = %+v", p2)
	}

	// Access keys: the secret is returned once; at most two per user.
	k1 := c.createKey(t, "alice")
	if !strings.HasPrefix(k1.AccessKeyId, "LTAI") || len(k1.AccessKeySecret) < 20 || k1.Status != "Active" {
		t.Fatalf("CreateAccessKey = %+v", k1)
	}
	k2 := c.createKey(t, "alice")
	kr := at(c, ram.CreateCreateAccessKeyRequest())
	kr.UserName = "alice"
	_, err = c.CreateAccessKey(kr)
	wantRAM(t, err, "LimitExceeded.User.AccessKey", 409)

	lk := at(c, ram.CreateListAccessKeysRequest())
	lk.UserName = "alice"
	resp := must(c.ListAccessKeys(lk))
	if n := len(resp.AccessKeys.AccessKey); n != 2 {
		t.Fatalf("ListAccessKeys: %d keys", n)
	}
	if strings.Contains(resp.GetHttpContentString(), k1.AccessKeySecret) || strings.Contains(resp.GetHttpContentString(), "AccessKeySecret") {
		t.Fatal("ListAccessKeys returned a secret")
	}

	ur := at(c, ram.CreateUpdateAccessKeyRequest())
	ur.UserName, ur.UserAccessKeyId, ur.Status = "alice", k2.AccessKeyId, "Inactive"
	must(c.UpdateAccessKey(ur))
	ur.Status = "Disabled"
	_, err = c.UpdateAccessKey(ur)
	wantRAM(t, err, "InvalidParameter.Status.InvalidValue", 400)
	// Another user's key is not alice's to change.
	kb := c.createKey(t, "bob")
	ur.UserName, ur.UserAccessKeyId, ur.Status = "alice", kb.AccessKeyId, "Inactive"
	_, err = c.UpdateAccessKey(ur)
	wantRAM(t, err, "EntityNotExist.User.AccessKey", 404)

	// Login profile: the password is hashed, never returned.
	lp := at(c, ram.CreateCreateLoginProfileRequest())
	lp.UserName, lp.Password, lp.PasswordResetRequired = "alice", "Corr3ct-Horse-Battery", requests.NewBoolean(true)
	got := must(c.CreateLoginProfile(lp))
	if got.LoginProfile.UserName != "alice" || !got.LoginProfile.PasswordResetRequired {
		t.Fatalf("CreateLoginProfile = %+v", got.LoginProfile)
	}
	if strings.Contains(got.GetHttpContentString(), "Corr3ct") {
		t.Fatal("the password was echoed")
	}
	_, err = c.CreateLoginProfile(lp)
	wantRAM(t, err, "EntityAlreadyExists.User.LoginProfile", 409)
	short := at(c, ram.CreateUpdateLoginProfileRequest())
	short.UserName, short.Password = "alice", "short"
	_, err = c.UpdateLoginProfile(short)
	wantRAM(t, err, "InvalidParameter.Password.Length", 400)
	glp := at(c, ram.CreateGetLoginProfileRequest())
	glp.UserName = "alice"
	if g := must(c.GetLoginProfile(glp)); !g.LoginProfile.PasswordResetRequired || strings.Contains(g.GetHttpContentString(), "argon2") {
		t.Fatalf("GetLoginProfile = %s", g.GetHttpContentString())
	}

	// DeleteUser refuses while keys and a login profile remain, then works.
	dr := at(c, ram.CreateDeleteUserRequest())
	dr.UserName = "alice"
	_, err = c.DeleteUser(dr)
	wantRAM(t, err, "DeleteConflict.User.AccessKey", 409)
	for _, id := range []string{k1.AccessKeyId, k2.AccessKeyId} {
		d := at(c, ram.CreateDeleteAccessKeyRequest())
		d.UserName, d.UserAccessKeyId = "alice", id
		must(c.DeleteAccessKey(d))
	}
	_, err = c.DeleteUser(dr)
	wantRAM(t, err, "DeleteConflict.User.LoginProfile", 409)
	dlp := at(c, ram.CreateDeleteLoginProfileRequest())
	dlp.UserName = "alice"
	must(c.DeleteLoginProfile(dlp))
	must(c.DeleteUser(dr))
	gr.UserName = "alice"
	_, err = c.GetUser(gr)
	wantRAM(t, err, "EntityNotExist.User", 404)

	// Rename carries the user's keys along: bob's key now names "robert".
	upd := at(c, ram.CreateUpdateUserRequest())
	upd.UserName, upd.NewUserName, upd.NewDisplayName = "bob", "robert", "Robert"
	if nu := must(c.UpdateUser(upd)).User; nu.UserName != "robert" || nu.DisplayName != "Robert" {
		t.Fatalf("UpdateUser = %+v", nu)
	}
	lk.UserName = "robert"
	if keys := must(c.ListAccessKeys(lk)).AccessKeys.AccessKey; len(keys) != 1 || keys[0].AccessKeyId != kb.AccessKeyId {
		t.Fatalf("robert's keys = %+v", keys)
	}

	// Nothing secret is in the storage file in plain form.
	ts.Close()
	raw, err := os.ReadFile(filepath.Join(ts.dir, "keyhold.db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{k1.AccessKeySecret, k2.AccessKeySecret, kb.AccessKeySecret, "Corr3ct-Horse-Battery"} {
		if bytes.Contains(raw, []byte(s)) {
			t.Fatal("a secret is stored in plain form")
		}
	}
}

func TestRAMClientGroupsAndPolicies(t *testing.T) {
	ts := startServer(t)
	c := ts.ram(t, ts.keyID, ts.keySecret)
	c.createUser(t, "dave")

	cg := at(c, ram.CreateCreateGroupRequest())
	cg.GroupName, cg.Comments = "ops", "operators"
	if g := must(c.CreateGroup(cg)).Group; g.GroupName != "ops" || g.Comments != "operators" {
		t.Fatalf("CreateGroup = %+v", g)
	}
	_, err := c.CreateGroup(cg)
	wantRAM(t, err, "EntityAlreadyExists.Group", 409)
	au := at(c, ram.CreateAddUserToGroupRequest())
	au.GroupName, au.UserName = "ops", "dave"
	must(c.AddUserToGroup(au))
	_, err = c.AddUserToGroup(au)
	wantRAM(t, err, "EntityAlreadyExists.User.Group", 409)
	au.GroupName = "nogroup"
	_, err = c.AddUserToGroup(au)
	wantRAM(t, err, "EntityNotExist.Group", 404)
	if gs := must(c.ListGroups(at(c, ram.CreateListGroupsRequest()))).Groups.Group; len(gs) != 1 || gs[0].GroupName != "ops" {
		t.Fatalf("ListGroups = %+v", gs)
	}

	// A malformed document is refused with a message naming the problem.
	cp := at(c, ram.CreateCreatePolicyRequest())
	cp.PolicyName = "broken"
	cp.PolicyDocument = `{"Version":"1","Statement":[{"Effect":"Maybe","Action":"kms:*","Resource":"*"}]}`
	_, err = c.CreatePolicy(cp)
	se := wantRAM(t, err, "MalformedPolicyDocument", 400)
	if !strings.Contains(se.Message(), "Effect") {
		t.Errorf("message %q does not name the problem", se.Message())
	}
	cp.PolicyDocument = `{"Version":"1","Statement":[`
	_, err = c.CreatePolicy(cp)
	wantRAM(t, err, "MalformedPolicyDocument", 400)

	doc := `{"Version":"1","Statement":[{"Effect":"Allow","Action":["kms:GetSecretValue"],"Resource":["acs:kms:*:*:secret/app/*"]}]}`
	cp.PolicyName, cp.Description, cp.PolicyDocument = "AppRead", "read app secrets", doc
	pol := must(c.CreatePolicy(cp)).Policy
	if pol.PolicyName != "AppRead" || pol.PolicyType != "Custom" || pol.DefaultVersion != "v1" {
		t.Fatalf("CreatePolicy = %+v", pol)
	}
	_, err = c.CreatePolicy(cp)
	wantRAM(t, err, "EntityAlreadyExists.Policy", 409)

	// GetPolicy of a system policy shows its full document.
	gp := at(c, ram.CreateGetPolicyRequest())
	gp.PolicyType, gp.PolicyName = "System", "KeyholdSecretAdministrator"
	sys := must(c.GetPolicy(gp))
	if sys.Policy.PolicyType != "System" || !strings.Contains(sys.DefaultPolicyVersion.PolicyDocument, "kms:PutSecretValue") ||
		sys.Policy.PolicyDocument != sys.DefaultPolicyVersion.PolicyDocument {
		t.Fatalf("GetPolicy(System) = %+v", sys)
	}
	if strings.Contains(sys.DefaultPolicyVersion.PolicyDocument, "GetSecretValue") {
		t.Error("the administrator's document grants GetSecretValue")
	}
	gp.PolicyName = "NoSuchPolicy"
	_, err = c.GetPolicy(gp)
	wantRAM(t, err, "EntityNotExist.Policy", 404)

	// Versions: v2 becomes the default.
	v2 := `{"Version":"1","Statement":[{"Effect":"Allow","Action":["kms:GetSecretValue","kms:DescribeSecret"],"Resource":["acs:kms:*:*:secret/app/*"]}]}`
	pv := at(c, ram.CreateCreatePolicyVersionRequest())
	pv.PolicyName, pv.PolicyDocument, pv.SetAsDefault = "AppRead", v2, requests.NewBoolean(true)
	if v := must(c.CreatePolicyVersion(pv)).PolicyVersion; v.VersionId != "v2" || !v.IsDefaultVersion {
		t.Fatalf("CreatePolicyVersion = %+v", v)
	}
	for i := 3; i <= 5; i++ {
		pv.SetAsDefault = requests.NewBoolean(false)
		must(c.CreatePolicyVersion(pv))
	}
	_, err = c.CreatePolicyVersion(pv)
	wantRAM(t, err, "LimitExceeded.Policy.Version", 409)
	gp.PolicyType, gp.PolicyName = "Custom", "AppRead"
	if got := must(c.GetPolicy(gp)); got.Policy.DefaultVersion != "v2" || got.DefaultPolicyVersion.PolicyDocument != v2 {
		t.Fatalf("GetPolicy(Custom) = %+v", got)
	}

	// Attach to a user and a group; list both ways.
	c.attachUser(t, "Custom", "AppRead", "dave")
	ar := at(c, ram.CreateAttachPolicyToUserRequest())
	ar.PolicyType, ar.PolicyName, ar.UserName = "Custom", "AppRead", "dave"
	_, err = c.AttachPolicyToUser(ar)
	wantRAM(t, err, "EntityAlreadyExists.User.Policy", 409)
	ar.PolicyType = "Managed"
	_, err = c.AttachPolicyToUser(ar)
	wantRAM(t, err, "InvalidParameter.PolicyType.InvalidValue", 400)
	ag := at(c, ram.CreateAttachPolicyToGroupRequest())
	ag.PolicyType, ag.PolicyName, ag.GroupName = "System", "KeyholdReadOnly", "ops"
	must(c.AttachPolicyToGroup(ag))

	lu := at(c, ram.CreateListPoliciesForUserRequest())
	lu.UserName = "dave"
	if ps := must(c.ListPoliciesForUser(lu)).Policies.Policy; len(ps) != 1 || ps[0].PolicyName != "AppRead" || ps[0].DefaultVersion != "v2" || ps[0].AttachDate == "" {
		t.Fatalf("ListPoliciesForUser = %+v", ps)
	}
	lg := at(c, ram.CreateListPoliciesForGroupRequest())
	lg.GroupName = "ops"
	if ps := must(c.ListPoliciesForGroup(lg)).Policies.Policy; len(ps) != 1 || ps[0].PolicyName != "KeyholdReadOnly" || ps[0].PolicyType != "System" {
		t.Fatalf("ListPoliciesForGroup = %+v", ps)
	}

	lp := at(c, ram.CreateListPoliciesRequest())
	lp.PolicyType = "Custom"
	if ps := must(c.ListPolicies(lp)).Policies.Policy; len(ps) != 1 || ps[0].AttachmentCount != 1 {
		t.Fatalf("ListPolicies(Custom) = %+v", ps)
	}
	lp.PolicyType = "System"
	sysList := must(c.ListPolicies(lp)).Policies.Policy
	names := map[string]bool{}
	for _, p := range sysList {
		names[p.PolicyName] = true
	}
	for _, n := range []string{"KeyholdSecretAdministrator", "KeyholdSecretUser", "KeyholdReadOnly", "KeyholdFullAccess", "KeyholdBastionAccess", "AliyunKMSFullAccess"} {
		if !names[n] {
			t.Errorf("system policy %s not listed", n)
		}
	}

	// Deletes refuse while things are attached.
	dp := at(c, ram.CreateDeletePolicyRequest())
	dp.PolicyName = "AppRead"
	_, err = c.DeletePolicy(dp)
	wantRAM(t, err, "DeleteConflict.Policy.User", 409)
	dg := at(c, ram.CreateDeleteGroupRequest())
	dg.GroupName = "ops"
	_, err = c.DeleteGroup(dg)
	wantRAM(t, err, "DeleteConflict.Group.User", 409)
	du := at(c, ram.CreateDeleteUserRequest())
	du.UserName = "dave"
	_, err = c.DeleteUser(du)
	wantRAM(t, err, "DeleteConflict.User.Group", 409)

	rg := at(c, ram.CreateRemoveUserFromGroupRequest())
	rg.GroupName, rg.UserName = "ops", "dave"
	must(c.RemoveUserFromGroup(rg))
	_, err = c.RemoveUserFromGroup(rg)
	wantRAM(t, err, "EntityNotExist.User.Group", 404)
	_, err = c.DeleteGroup(dg)
	wantRAM(t, err, "DeleteConflict.Group.Policy", 409)
	dgp := at(c, ram.CreateDetachPolicyFromGroupRequest())
	dgp.PolicyType, dgp.PolicyName, dgp.GroupName = "System", "KeyholdReadOnly", "ops"
	must(c.DetachPolicyFromGroup(dgp))
	must(c.DeleteGroup(dg))

	_, err = c.DeleteUser(du)
	wantRAM(t, err, "DeleteConflict.User.Policy", 409)
	dup := at(c, ram.CreateDetachPolicyFromUserRequest())
	dup.PolicyType, dup.PolicyName, dup.UserName = "Custom", "AppRead", "dave"
	must(c.DetachPolicyFromUser(dup))
	_, err = c.DetachPolicyFromUser(dup)
	wantRAM(t, err, "EntityNotExist.User.Policy", 404)
	must(c.DeletePolicy(dp))
	must(c.DeleteUser(du))
}

func TestAccountsCreateAndList(t *testing.T) {
	ts := startServer(t)
	ctx := context.Background()
	root := ts.apiClient(t, ts.keyID, ts.keySecret)

	var created struct {
		Account struct {
			AccountId   string
			DisplayName string
		}
		AccessKey struct {
			AccessKeyId     string
			AccessKeySecret string
		}
	}
	if err := root.Call(ctx, "2026-11-01", "CreateAccount", map[string]string{"DisplayName": "tenant-b"}, &created); err != nil {
		t.Fatal(err)
	}
	if created.Account.AccountId == ts.Account || len(created.Account.AccountId) != 16 || created.AccessKey.AccessKeySecret == "" {
		t.Fatalf("CreateAccount = %+v", created.Account)
	}
	var list struct {
		Accounts struct{ Account []struct{ AccountId string } }
	}
	if err := root.Call(ctx, "2026-11-01", "ListAccounts", nil, &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Accounts.Account) != 2 {
		t.Fatalf("ListAccounts = %+v", list)
	}

	// The new account's root works in its own account, but may not manage
	// the deployment's accounts.
	other := ts.apiClient(t, created.AccessKey.AccessKeyId, created.AccessKey.AccessKeySecret)
	if _, err := other.CreateSecret(ctx, &client.CreateSecretRequest{SecretName: "b-only", SecretData: "x", VersionId: "v1"}); err != nil {
		t.Fatal(err)
	}
	err := other.Call(ctx, "2026-11-01", "CreateAccount", nil, nil)
	if !client.IsCode(err, "Forbidden.NoPermission") {
		t.Fatalf("second account's root CreateAccount: %v", err)
	}
	// Accounts are isolated: the first root does not see b-only.
	if _, err := root.DescribeSecret(ctx, "b-only", false); !client.IsCode(err, "Forbidden.ResourceNotFound") {
		t.Fatalf("first account sees the second's secret: %v", err)
	}
}
