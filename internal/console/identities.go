package console

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/keyhold/keyhold/internal/kmsapi"
)

const ram = kmsapi.VersionRAM

type userRow struct{ UserName, DisplayName, Comments, CreateDate, LastLoginDate string }
type groupRow struct{ GroupName, Comments, CreateDate string }
type policyRow struct {
	PolicyName, PolicyType, Description, DefaultVersion, CreateDate, UpdateDate string
	AttachmentCount                                                             *int
}
type accessKeyRow struct{ AccessKeyId, AccessKeySecret, Status, CreateDate string }
type attachedRow struct{ PolicyName, PolicyType, AttachDate string }

func (c *Console) identities(w http.ResponseWriter, r *http.Request, s *session) {
	c.showIdentities(w, r, s, map[string]any{})
}

func (c *Console) showIdentities(w http.ResponseWriter, r *http.Request, s *session, data map[string]any) {
	data["Title"] = "Identities"
	var users struct{ Users struct{ User []userRow } }
	if err := c.call(r, s, ram, "ListUsers", map[string]string{"MaxItems": "1000"}, &users); err != nil {
		data["Error"] = errText(err)
	}
	var groups struct{ Groups struct{ Group []groupRow } }
	_ = c.call(r, s, ram, "ListGroups", map[string]string{"MaxItems": "1000"}, &groups)
	var pols struct{ Policies struct{ Policy []policyRow } }
	_ = c.call(r, s, ram, "ListPolicies", map[string]string{"PolicyType": "Custom", "MaxItems": "1000"}, &pols)
	data["Users"], data["Groups"], data["Policies"] = users.Users.User, groups.Groups.Group, pols.Policies.Policy
	if _, ok := data["PolicyDoc"]; !ok {
		data["PolicyDoc"] = "{\n  \"Version\": \"1\",\n  \"Statement\": [\n    {\n      \"Effect\": \"Allow\",\n      \"Action\": [\"kms:GetSecretValue\"],\n      \"Resource\": [\"acs:kms:*:*:secret/app/*\"]\n    }\n  ]\n}"
	}
	c.render(w, r, http.StatusOK, "identities", s, data)
}

func userURL(name string) string { return Prefix + "identities/users/" + url.PathEscape(name) }

func (c *Console) userDetail(w http.ResponseWriter, r *http.Request, s *session) {
	c.showUser(w, r, s, r.PathValue("name"), nil)
}

func (c *Console) showUser(w http.ResponseWriter, r *http.Request, s *session, name string, newKey *accessKeyRow) {
	var u struct{ User userRow }
	if err := c.call(r, s, ram, "GetUser", map[string]string{"UserName": name}, &u); err != nil {
		c.fail(w, r, s, err)
		return
	}
	var keys struct {
		AccessKeys struct{ AccessKey []accessKeyRow }
	}
	_ = c.call(r, s, ram, "ListAccessKeys", map[string]string{"UserName": name}, &keys)
	var att struct {
		Policies struct{ Policy []attachedRow }
	}
	_ = c.call(r, s, ram, "ListPoliciesForUser", map[string]string{"UserName": name}, &att)
	var grp struct{ Groups struct{ Group []groupRow } }
	_ = c.call(r, s, ram, "ListGroups", map[string]string{"MaxItems": "1000"}, &grp)
	var pols struct{ Policies struct{ Policy []policyRow } }
	_ = c.call(r, s, ram, "ListPolicies", map[string]string{"MaxItems": "1000"}, &pols)
	hasLogin := c.call(r, s, ram, "GetLoginProfile", map[string]string{"UserName": name}, nil) == nil
	c.render(w, r, http.StatusOK, "user", s, map[string]any{
		"Title": "User " + name, "U": u.User, "Keys": keys.AccessKeys.AccessKey, "Attached": att.Policies.Policy,
		"Groups": grp.Groups.Group, "AllPolicies": pols.Policies.Policy, "HasLogin": hasLogin, "NewKey": newKey,
	})
}

func (c *Console) policyDetail(w http.ResponseWriter, r *http.Request, s *session) {
	name := r.PathValue("name")
	typ := r.URL.Query().Get("type")
	if typ == "" {
		typ = "Custom"
	}
	var out struct {
		Policy               policyRow
		DefaultPolicyVersion struct{ VersionId, PolicyDocument string }
	}
	if err := c.call(r, s, ram, "GetPolicy", map[string]string{"PolicyName": name, "PolicyType": typ}, &out); err != nil {
		c.fail(w, r, s, err)
		return
	}
	c.render(w, r, http.StatusOK, "policy", s, map[string]any{"Title": "Policy " + name, "P": out.Policy,
		"Doc": prettyJSON(out.DefaultPolicyVersion.PolicyDocument), "Version": out.DefaultPolicyVersion.VersionId})
}

// identityOp runs one identity action; the form names the action.
func (c *Console) identityOp(w http.ResponseWriter, r *http.Request, s *session) {
	f := r.PostForm
	get := func(k string) string { return strings.TrimSpace(f.Get(k)) }
	back := Prefix + "identities"
	var err error
	var msg string
	switch r.PathValue("op") {
	case "user":
		p := map[string]string{"UserName": get("UserName")}
		if d := get("DisplayName"); d != "" {
			p["DisplayName"] = d
		}
		err = c.call(r, s, ram, "CreateUser", p, nil)
		msg, back = "Created user "+p["UserName"]+".", userURL(p["UserName"])
		if err != nil {
			back = Prefix + "identities"
		}
	case "deleteuser":
		err = c.call(r, s, ram, "DeleteUser", map[string]string{"UserName": get("UserName")}, nil)
		msg = "Deleted user " + get("UserName") + "."
		if err != nil {
			back = userURL(get("UserName"))
		}
	case "password":
		name := get("UserName")
		back = userURL(name)
		p := map[string]string{"UserName": name, "Password": f.Get("Password")}
		if f.Get("Password") != f.Get("Password2") {
			c.sessions.addFlash(s, "error", "The two passwords differ.")
			http.Redirect(w, r, back, http.StatusSeeOther)
			return
		}
		if f.Get("HasLogin") == "true" {
			err = c.call(r, s, ram, "UpdateLoginProfile", p, nil)
		} else {
			err = c.call(r, s, ram, "CreateLoginProfile", p, nil)
		}
		msg = "Console password set for " + name + "."
	case "accesskey":
		name := get("UserName")
		var out struct{ AccessKey accessKeyRow }
		if err = c.call(r, s, ram, "CreateAccessKey", map[string]string{"UserName": name}, &out); err == nil {
			// Shown once, in this response only.
			c.showUser(w, r, s, name, &out.AccessKey)
			return
		}
		back = userURL(name)
	case "accesskeystatus", "deleteaccesskey":
		name := get("UserName")
		back = userURL(name)
		p := map[string]string{"UserName": name, "UserAccessKeyId": get("AccessKeyId")}
		if r.PathValue("op") == "deleteaccesskey" {
			err = c.call(r, s, ram, "DeleteAccessKey", p, nil)
			msg = "Access key deleted."
		} else {
			p["Status"] = get("Status")
			err = c.call(r, s, ram, "UpdateAccessKey", p, nil)
			msg = "Access key is now " + p["Status"] + "."
		}
	case "attach", "detach":
		name := get("UserName")
		p := map[string]string{"PolicyName": get("PolicyName"), "PolicyType": get("PolicyType")}
		action := "AttachPolicyToUser"
		if r.PathValue("op") == "detach" {
			action = "DetachPolicyFromUser"
		}
		if g := get("GroupName"); g != "" {
			p["GroupName"] = g
			action = strings.Replace(action, "User", "Group", 1)
		} else {
			p["UserName"] = name
			back = userURL(name)
		}
		err = c.call(r, s, ram, action, p, nil)
		msg = "Policy " + p["PolicyName"] + " " + r.PathValue("op") + "ed."
	case "group":
		err = c.call(r, s, ram, "CreateGroup", map[string]string{"GroupName": get("GroupName"), "Comments": get("Comments")}, nil)
		msg = "Created group " + get("GroupName") + "."
	case "groupmember", "removemember":
		name := get("UserName")
		back = userURL(name)
		action := "AddUserToGroup"
		if r.PathValue("op") == "removemember" {
			action = "RemoveUserFromGroup"
		}
		err = c.call(r, s, ram, action, map[string]string{"UserName": name, "GroupName": get("GroupName")}, nil)
		msg = "Group membership changed."
	case "policy":
		p := map[string]string{"PolicyName": get("PolicyName"), "PolicyDocument": f.Get("PolicyDocument")}
		if d := get("Description"); d != "" {
			p["Description"] = d
		}
		if err = c.call(r, s, ram, "CreatePolicy", p, nil); err != nil {
			// The editor keeps the text and shows the error beside it.
			c.showIdentities(w, r, s, map[string]any{"PolicyError": errText(err), "PolicyDoc": f.Get("PolicyDocument"),
				"PolicyName": p["PolicyName"], "PolicyDescription": p["Description"]})
			return
		}
		msg = "Created policy " + p["PolicyName"] + "."
	case "policyversion":
		name := get("PolicyName")
		back = Prefix + "identities/policies/" + url.PathEscape(name)
		err = c.call(r, s, ram, "CreatePolicyVersion", map[string]string{"PolicyName": name,
			"PolicyDocument": f.Get("PolicyDocument"), "SetAsDefault": "true", "RotateStrategy": "DeleteOldestNonDefaultVersionWhenLimitExceeded"}, nil)
		msg = "Saved a new default version of " + name + "."
	case "deletepolicy":
		err = c.call(r, s, ram, "DeletePolicy", map[string]string{"PolicyName": get("PolicyName")}, nil)
		msg = "Deleted policy " + get("PolicyName") + "."
	default:
		http.NotFound(w, r)
		return
	}
	if err != nil {
		c.failTo(w, r, s, back, err)
		return
	}
	c.done(w, r, s, back, msg)
}
