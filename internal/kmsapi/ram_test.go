package kmsapi

import (
	"fmt"
	"testing"

	"github.com/keyhold/keyhold/internal/errs"
	"github.com/keyhold/keyhold/internal/iam"
)

// Every code the identity domain can return has a status in the one error
// table; a missing one would reach callers as InternalFailure.
func TestEveryIAMCodeHasAStatus(t *testing.T) {
	for _, code := range iam.Codes {
		wc, internal := classify(fmt.Errorf("wrapped: %w", &iam.Error{Code: code, Message: "m"}))
		if internal || wc.Code != code || wc.Message != "m" {
			t.Errorf("%s classified as %+v (internal %v)", code, wc, internal)
		}
		want := 400
		switch {
		case len(code) > 14 && code[:14] == "EntityNotExist":
			want = 404
		case len(code) > 19 && code[:19] == "EntityAlreadyExists", len(code) > 14 && code[:14] == "DeleteConflict", len(code) > 13 && code[:13] == "LimitExceeded":
			want = 409
		}
		if wc.Status != want {
			t.Errorf("%s: status %d, want %d", code, wc.Status, want)
		}
	}
	// An unknown code is a programming error, never shown as such.
	if wc, internal := classify(&iam.Error{Code: "Made.Up", Message: "m"}); !internal || wc.Code != "InternalFailure" {
		t.Errorf("unknown code classified as %+v", wc)
	}
	// Plain errs errors from iam keep their kinds.
	if wc, _ := classify(errs.E(errs.KindMissingParameter, "The parameter UserName is required.")); wc.Code != "MissingParameter" {
		t.Errorf("missing parameter classified as %+v", wc)
	}
}

// The RAM routes authorize on RAM ARNs of the caller's account; access key
// and login actions without UserName act on the calling user itself.
func TestRAMRouteResources(t *testing.T) {
	routes := map[string]Route{}
	for _, r := range RAMRoutes(nil) {
		routes[r.Action] = r
	}
	user := Principal{Account: "100", Kind: iam.KindUser, Name: "me"}
	root := Principal{Account: "100", Kind: iam.KindRoot, Name: iam.RootName}
	for _, tc := range []struct {
		action string
		p      Principal
		params Params
		want   string
	}{
		{"CreateUser", root, Params{"UserName": "bob"}, "acs:ram::100:user/bob"},
		{"ListUsers", root, Params{}, "acs:ram::100:user/*"},
		{"CreateAccessKey", user, Params{}, "acs:ram::100:user/me"},
		{"CreateAccessKey", root, Params{}, "acs:ram::100:root"},
		{"UpdateAccessKey", root, Params{"UserName": "bob"}, "acs:ram::100:user/bob"},
		{"AddUserToGroup", root, Params{"GroupName": "ops", "UserName": "bob"}, "acs:ram::100:group/ops"},
		{"CreatePolicy", root, Params{"PolicyName": "P"}, "acs:ram::100:policy/P"},
		{"AttachPolicyToUser", root, Params{"PolicyName": "P", "UserName": "bob"}, "acs:ram::100:user/bob"},
		{"AttachPolicyToGroup", root, Params{"PolicyName": "P", "GroupName": "ops"}, "acs:ram::100:group/ops"},
	} {
		got := routes[tc.action].Resource(&Request{Principal: tc.p, Params: tc.params})
		if got != tc.want {
			t.Errorf("%s %v: resource %q, want %q", tc.action, tc.params, got, tc.want)
		}
	}
	if n := len(routes); n != 29 {
		t.Errorf("%d RAM actions, want 29", n)
	}
}
