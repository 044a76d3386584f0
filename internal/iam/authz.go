package iam

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/keyhold/keyhold/internal/apicall"
	"github.com/keyhold/keyhold/internal/errs"
	"github.com/keyhold/keyhold/internal/policy"
)

// SecretFacts is what authorization needs to know about a secret: its
// type and tags (for the kms:SecretType and kms:tag/<k> condition keys), its
// resource policy ("" when none was set) and its encryption key id. The
// secrets service implements it; a missing secret is an errs.Error of kind
// KindSecretNotFound.
type SecretFacts interface {
	SecretFacts(ctx context.Context, account, name string) (secretType string, tags map[string]string, policy string, encryptionKeyID string, err error)
}

// SecretHosts names the host an ECS secret's credentials live on (the
// InstanceId of its ExtendedConfig; "" for other types). The secrets service
// implements it beside SecretFacts. Without it the Authorizer refuses a
// supplied-value rotation of an ECS secret by a user: it cannot tell which
// host's credentials would change.
type SecretHosts interface {
	SecretHost(ctx context.Context, account, name string) (instanceID string, err error)
}

// ServiceKeys tells the account's default service key apart from customer
// keys: reading a secret under a customer key needs kms:Decrypt on that key,
// under the service key it does not. keys.Service implements it (id "" =
// the default key).
type ServiceKeys interface {
	ResolveKey(ctx context.Context, account, keyIDOrAlias string) (string, error)
}

// SystemPolicy is a built-in policy.
type SystemPolicy = policy.SystemPolicyDef

func systemPolicy(name string) (SystemPolicy, bool) {
	p, ok := policy.SystemPolicy(name)
	if !ok {
		return SystemPolicy{}, false
	}
	return *p, true
}

func systemPolicies() []SystemPolicy { return policy.System() }

// checkIdentityDocument refuses a policy document that does not parse, with
// RAM's MalformedPolicyDocument and the parser's message naming the problem.
func checkIdentityDocument(doc string) error {
	if doc == "" {
		return errs.E(errs.KindMissingParameter, "The parameter PolicyDocument is required.")
	}
	if _, err := policy.ParseIdentity(doc); err != nil {
		var e *errs.Error
		if errors.As(err, &e) {
			return ramErr(CodeMalformedPolicy, "%s", e.Message)
		}
		return ramErr(CodeMalformedPolicy, "The policy document is not valid.")
	}
	return nil
}

// Actions only the deployment's first account root may call: they act on
// the deployment, not on one account.
var deploymentActions = map[string]bool{
	"keyhold:CreateAccount": true,
	"keyhold:ListAccounts":  true,
	// A backup holds every account's records (ciphertext, but all of it).
	"keyhold:BackupDeployment": true,
}

// crossAccountActions are what a secret policy may grant to another
// account (as KMS's cross-account users get: List*, Describe*,
// GetSecretValue). Anything else across accounts is refused whatever the
// policies say.
func crossAccountAction(action string) bool {
	name, ok := strings.CutPrefix(action, "kms:")
	return ok && (strings.HasPrefix(name, "List") || strings.HasPrefix(name, "Describe") || name == "GetSecretValue")
}

const (
	// policyCacheMaxAge bounds how long cached effective policies are
	// trusted should a change notification from another replica be lost.
	policyCacheMaxAge = 5 * time.Minute
	// maxParsedResourcePolicies bounds the cache of parsed secret policies.
	maxParsedResourcePolicies = 4096
)

// authzState is the Authorizer's wiring and caches.
type authzState struct {
	secrets SecretFacts
	keys    ServiceKeys

	// users maps "<account>/<user>" -> *userPolicies; pmu orders fills
	// against invalidations, pgen counts invalidations (as for keys).
	users sync.Map
	pmu   sync.Mutex
	pgen  uint64

	// parsed secret policies by text; they are immutable once parsed.
	resMu  sync.Mutex
	parsed map[string]*policy.Document
}

type userPolicies struct {
	docs   []*policy.Document
	loaded time.Time
}

// UseResources wires the lookups the Authorizer needs for secret
// conditions, secret policies and the kms:Decrypt rule. Call it before
// serving; without it, secret facts are unknown (conditions on them do not
// hold, secret policies grant nothing) and no kms:Decrypt check is made.
func (s *Service) UseResources(secrets SecretFacts, keys ServiceKeys) {
	s.authz.secrets, s.authz.keys = secrets, keys
}

// invalidatePolicies drops every cached effective policy set.
func (s *Service) invalidatePolicies() {
	s.authz.pmu.Lock()
	s.authz.pgen++
	s.authz.users.Clear()
	s.authz.pmu.Unlock()
}

// userDocs returns a user's effective identity policies: its own attached
// policies and its groups', each at its default version, parsed. They are
// cached; any change to users, groups, memberships, attachments or policy
// versions invalidates the cache on every replica.
func (s *Service) userDocs(ctx context.Context, account, user string) ([]*policy.Document, error) {
	k := account + "/" + user
	now := time.Now()
	if v, ok := s.authz.users.Load(k); ok {
		e := v.(*userPolicies)
		if now.Sub(e.loaded) < policyCacheMaxAge {
			return e.docs, nil
		}
	}
	s.authz.pmu.Lock()
	gen := s.authz.pgen
	s.authz.pmu.Unlock()
	texts, err := s.attachedDocs(ctx, account, user)
	if err != nil {
		return nil, err
	}
	docs := make([]*policy.Document, 0, len(texts))
	for _, t := range texts {
		if sp := systemByText(t); sp != nil {
			docs = append(docs, sp)
			continue
		}
		d, err := policy.Parse(t)
		if err != nil {
			// Stored documents were validated at creation; one that no
			// longer parses (a stricter parser) grants nothing.
			continue
		}
		docs = append(docs, d)
	}
	s.authz.pmu.Lock()
	if s.authz.pgen == gen {
		s.authz.users.Store(k, &userPolicies{docs: docs, loaded: now})
	}
	s.authz.pmu.Unlock()
	return docs, nil
}

var (
	systemTextsOnce sync.Once
	systemTexts     map[string]*policy.Document
)

// systemByText returns the shared parsed form of a system policy text.
func systemByText(t string) *policy.Document {
	systemTextsOnce.Do(func() {
		systemTexts = map[string]*policy.Document{}
		for _, p := range policy.System() {
			systemTexts[p.Document] = p.Parsed
		}
	})
	return systemTexts[t]
}

// resourceDoc parses (once) a secret policy text; nil when it does not parse.
func (s *Service) resourceDoc(text string) *policy.Document {
	a := &s.authz
	a.resMu.Lock()
	defer a.resMu.Unlock()
	if d, ok := a.parsed[text]; ok {
		return d
	}
	d, err := policy.ParseResource(text)
	if err != nil {
		d = nil
	}
	if a.parsed == nil || len(a.parsed) >= maxParsedResourcePolicies {
		a.parsed = map[string]*policy.Document{}
	}
	a.parsed[text] = d
	return d
}

// PrincipalARN is a caller's RAM ARN, as secret policies name it.
func PrincipalARN(p apicall.Principal) string {
	if p.Kind == KindRoot {
		return "acs:ram::" + p.Account + ":root"
	}
	return "acs:ram::" + p.Account + ":user/" + p.Name
}

// arn is a parsed acs:<service>:<region>:<account>:<resource>.
type arn struct {
	service, region, account, resource string
}

func parseARN(s string) (arn, bool) {
	parts := strings.SplitN(s, ":", 5)
	if len(parts) != 5 || parts[0] != "acs" {
		return arn{}, false
	}
	return arn{parts[1], parts[2], parts[3], parts[4]}, true
}

func errDenied(action, resource string) error {
	return errs.E(errs.KindForbidden, "You are not authorized to perform %s on %s.", action, resource)
}

// Authorize implements apicall.Authorizer. It is the one place that decides
// permissions, once per request, in this order:
//
//  1. A caller without an account is refused. Deployment actions
//     (CreateAccount, ListAccounts, BackupDeployment) are for the first
//     account's root only.
//  2. The resource's account is read from its ARN ("*" and "" mean the
//     caller's own account).
//  3. Own account: the root may do everything. A user needs an Allow from
//     its identity policies (its own and its groups', system and custom) or
//     from the secret's policy when it names that user; an explicit Deny in
//     either refuses; no Allow refuses.
//  4. Another account: only List*, Describe* and GetSecretValue on a
//     secret, and only when both the caller's identity policies (a root's
//     are all-allowing) and the secret's policy allow, neither denies.
//  5. GetSecretValue on a secret under a customer key also needs
//     kms:Decrypt on that key, decided by the same rules.
//  6. Calls that set a host's credentials also need
//     keyhold:ManageHostCredentials on the host, and RotateSecret with a
//     supplied SecretData also kms:GetSecretValue (see hostChecks).
//
// Conditions see acs:SourceIp, acs:CurrentTime, acs:SecureTransport, and
// for secrets kms:SecretType and kms:tag/<TagKey>.
func (s *Service) Authorize(ctx context.Context, p apicall.Principal, action, resource string, r *apicall.Request) error {
	if p.Account == "" || (p.Kind != KindRoot && p.Kind != KindUser) || (p.Kind == KindUser && p.Name == "") {
		return errDenied(action, resource)
	}
	if deploymentActions[action] {
		uid, err := s.defaultAccountUID(ctx)
		if err != nil {
			return err
		}
		if p.Kind == KindRoot && p.Account == uid {
			return nil
		}
		return errs.E(errs.KindForbidden, "Only the root of the deployment's first account may perform %s.", action)
	}
	owner := p.Account
	a, isARN := parseARN(resource)
	if isARN && a.account != "" && a.account != "*" {
		owner = a.account
	}
	if p.Kind == KindRoot && owner == p.Account {
		return nil // the account root may do everything in its own account
	}
	if owner != p.Account && !(isARN && a.service == "kms" && strings.HasPrefix(a.resource, "secret/") && crossAccountAction(action)) {
		return errDenied(action, resource)
	}

	req := &policy.Request{
		Action: action, Resource: resource, Principal: PrincipalARN(p), Account: p.Account,
		Conditions: requestConditions(r),
	}
	var secretPolicy *policy.Document
	keyID, secretType := "", ""
	if isARN && a.service == "kms" && strings.HasPrefix(a.resource, "secret/") && s.authz.secrets != nil {
		name := strings.TrimPrefix(a.resource, "secret/")
		typ, tags, pol, kid, err := s.authz.secrets.SecretFacts(ctx, owner, name)
		switch {
		case err == nil:
			secretType = typ
			req.Conditions["kms:SecretType"] = []string{typ}
			for k, v := range tags {
				req.Conditions["kms:tag/"+k] = []string{v}
			}
			if pol != "" {
				if secretPolicy = s.resourceDoc(pol); secretPolicy == nil {
					// A stored policy that does not parse grants nothing and
					// must not silently widen access either.
					return errDenied(action, resource)
				}
			}
			keyID = kid
		case errs.Is(err, errs.KindSecretNotFound) || errs.Is(err, errs.KindNotFound):
			// Decided without facts; the handler reports the missing secret
			// (to callers of its own account only: others are refused here).
		default:
			return err
		}
	}
	if err := s.decide(ctx, p, owner, req, secretPolicy); err != nil {
		return err
	}
	if action == "kms:GetSecretValue" && keyID != "" && s.authz.keys != nil {
		svcKey, err := s.authz.keys.ResolveKey(ctx, owner, "")
		if err != nil {
			return err
		}
		if keyID != svcKey {
			region := a.region
			if region == "" && r != nil {
				region = r.Region
			}
			dec := *req
			dec.Action, dec.Resource = "kms:Decrypt", "acs:kms:"+region+":"+owner+":key/"+keyID
			if err := s.decide(ctx, p, owner, &dec, secretPolicy); err != nil {
				return errs.E(errs.KindForbidden, "You are not authorized to perform kms:Decrypt on %s, which encrypts the secret.", dec.Resource)
			}
		}
	}
	return s.hostChecks(ctx, p, owner, a, req, secretType, secretPolicy, r)
}

// secretTypeECS is secrets.TypeECS (iam does not import the domain).
const secretTypeECS = "ECS"

// hostChecks adds the permissions that setting a host's credentials needs
// beyond the action's own (issue 5, "Who may change which account"):
//
//   - CreateSecret of an ECS secret: keyhold:ManageHostCredentials on the
//     host its ExtendedConfig names, since creating it hands that host
//     account to Keyhold's rotation;
//   - RotateSecret with a supplied SecretData: kms:GetSecretValue on the
//     secret (the caller knows the new value, whatever the type) and, for
//     an ECS secret, keyhold:ManageHostCredentials on its host (the caller
//     chooses the host account's password or key).
//
// Only users get here: the root was allowed in its own account already,
// and these actions never cross accounts.
func (s *Service) hostChecks(ctx context.Context, p apicall.Principal, owner string, a arn, req *policy.Request, secretType string, secretPolicy *policy.Document, r *apicall.Request) error {
	if r == nil {
		return nil
	}
	switch req.Action {
	case "kms:CreateSecret":
		if r.Params.String("SecretType") != secretTypeECS {
			return nil
		}
		// Unreadable, or an InstanceId that no host can have: the handler
		// refuses it with InvalidParameter before storing anything, so only
		// the base action is decided here (and the caller learns why).
		id := instanceIDOf(r.Params.String("ExtendedConfig"))
		if !hostIDForm(id) {
			return nil
		}
		return s.hostPermission(ctx, p, owner, a, req, id, r)

	case "kms:RotateSecret":
		if !r.Params.Has("SecretData") {
			return nil // a generated value: the action's own permission suffices
		}
		get := *req
		get.Action = "kms:GetSecretValue"
		if err := s.decide(ctx, p, owner, &get, secretPolicy); err != nil {
			return errs.E(errs.KindForbidden, "You are not authorized to perform kms:GetSecretValue on %s, which rotating with a supplied SecretData requires.", req.Resource)
		}
		if secretType != secretTypeECS {
			return nil
		}
		hosts, ok := s.authz.secrets.(SecretHosts)
		if !ok {
			return errs.E(errs.KindForbidden, "The host of %s cannot be determined, so its credentials cannot be set.", req.Resource)
		}
		id, err := hosts.SecretHost(ctx, owner, strings.TrimPrefix(a.resource, "secret/"))
		switch {
		case errs.Is(err, errs.KindSecretNotFound) || errs.Is(err, errs.KindNotFound):
			return nil // gone since the facts were read; the handler says so
		case err != nil:
			return err
		case id == "":
			return errs.E(errs.KindForbidden, "The host of %s cannot be determined, so its credentials cannot be set.", req.Resource)
		}
		return s.hostPermission(ctx, p, owner, a, req, id, r)
	}
	return nil
}

// hostPermission decides keyhold:ManageHostCredentials on a host. Only
// identity policies count: a secret's policy does not speak for the host.
func (s *Service) hostPermission(ctx context.Context, p apicall.Principal, owner string, a arn, req *policy.Request, instanceID string, r *apicall.Request) error {
	region := r.Region
	if region == "" {
		region = a.region
	}
	h := *req
	h.Action = "keyhold:ManageHostCredentials"
	h.Resource = "acs:keyhold:" + region + ":" + owner + ":host/" + instanceID
	if err := s.decide(ctx, p, owner, &h, nil); err != nil {
		return errs.E(errs.KindForbidden, "You are not authorized to perform keyhold:ManageHostCredentials on %s, whose credentials this call sets.", h.Resource)
	}
	return nil
}

// hostIDForm reports whether id has the form every host id has (fleet's
// ValidHostID: "i-" and 20 lowercase letters or digits; iam does not
// import the hosts domain).
func hostIDForm(id string) bool {
	if len(id) != 22 || !strings.HasPrefix(id, "i-") {
		return false
	}
	for _, c := range []byte(id[2:]) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// instanceIDOf reads ExtendedConfig.InstanceId as the secrets service does
// (a JSON object decoded into a map, the field a string), so that the host
// checked here is the host the handler acts on; "" when there is none.
func instanceIDOf(extendedConfig string) string {
	var m map[string]any
	if json.Unmarshal([]byte(extendedConfig), &m) != nil {
		return ""
	}
	id, _ := m["InstanceId"].(string)
	return id
}

// decide applies steps 3 and 4 of Authorize to one (action, resource).
func (s *Service) decide(ctx context.Context, p apicall.Principal, owner string, req *policy.Request, secretPolicy *policy.Document) error {
	id := policy.Allow // a root's identity side allows everything
	if p.Kind == KindUser {
		docs, err := s.userDocs(ctx, p.Account, p.Name)
		if err != nil {
			return err
		}
		id = policy.Decide(req, docs...)
	}
	rp := policy.NoMatch
	if secretPolicy != nil {
		rp = secretPolicy.EvaluateResource(req)
		if rp == policy.Allow && owner == p.Account && accountWideAllow(secretPolicy, req) {
			// Within its own account, a grant to the whole account (the
			// default "acs:ram::<uid>:*" statement, or the account id)
			// delegates to RAM policies instead of granting every user.
			rp = policy.NoMatch
		}
	}
	if id == policy.Deny || rp == policy.Deny {
		return errDenied(req.Action, req.Resource)
	}
	if owner == p.Account {
		if id == policy.Allow || rp == policy.Allow {
			return nil
		}
		return errDenied(req.Action, req.Resource)
	}
	if id == policy.Allow && rp == policy.Allow {
		return nil
	}
	return errDenied(req.Action, req.Resource)
}

// noSuchUser is a user name no real user can have (names never hold
// spaces); a secret policy that allows it allows the whole account.
const noSuchUser = "no such user"

func accountWideAllow(d *policy.Document, req *policy.Request) bool {
	probe := *req
	probe.Principal = "acs:ram::" + req.Account + ":user/" + noSuchUser
	return d.EvaluateResource(&probe) == policy.Allow
}

// requestConditions are the condition keys every request carries.
func requestConditions(r *apicall.Request) map[string][]string {
	c := map[string][]string{
		"acs:CurrentTime": {time.Now().UTC().Format(time.RFC3339)},
	}
	if r != nil {
		if r.SourceIP != "" {
			c["acs:SourceIp"] = []string{r.SourceIP}
		}
		c["acs:SecureTransport"] = []string{strconv.FormatBool(r.Secure)}
	}
	return c
}
