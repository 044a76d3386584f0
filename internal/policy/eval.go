package policy

import "strings"

// Request is what a policy is evaluated against. The authorizer builds it
// once per API call.
type Request struct {
	// Action is "<service>:<ApiName>", e.g. "kms:GetSecretValue".
	Action string
	// Resource is the ARN the action applies to, e.g.
	// "acs:kms:cn-hangzhou:123:secret/app/db", a container
	// "acs:kms:cn-hangzhou:123:secret", or "*".
	Resource string
	// Principal is the caller's ARN: "acs:ram::<uid>:root" or
	// "acs:ram::<uid>:user/<name>". Only resource policies look at it.
	Principal string
	// Account is the caller's account UID.
	Account string
	// Conditions holds the request's condition keys (acs:SourceIp,
	// acs:CurrentTime, acs:SecureTransport, kms:tag/<TagKey>, ...). Key
	// names match case-insensitively.
	Conditions map[string][]string
}

// Evaluate evaluates an identity policy: statements with a Principal
// element never apply. It returns Deny if an applicable statement denies,
// else Allow if one allows, else NoMatch.
func (d *Document) Evaluate(r *Request) Effect {
	return d.eval(r, false)
}

// EvaluateResource evaluates a resource (secret) policy: a statement
// applies only if its Principal matches the caller; statements without one
// never apply.
func (d *Document) EvaluateResource(r *Request) Effect {
	return d.eval(r, true)
}

func (d *Document) eval(r *Request, resourcePolicy bool) Effect {
	if d == nil || r == nil {
		return NoMatch
	}
	res := foldService(r.Resource)
	out := NoMatch
	for i := range d.Statements {
		st := &d.Statements[i]
		if st.Effect == Allow && out == Allow {
			continue // cannot change the outcome; only a Deny still can
		}
		if (st.Principal != nil) != resourcePolicy {
			continue
		}
		if !st.applies(r, res) {
			continue
		}
		if st.Effect == Deny {
			return Deny
		}
		out = Allow
	}
	return out
}

// applies reports whether the statement covers the request; res is
// r.Resource with its service folded.
func (st *Statement) applies(r *Request, res string) bool {
	if st.Principal != nil && !st.Principal.Matches(r.Principal, r.Account) {
		return false
	}
	hit := false
	for i := range st.actions {
		if st.actions[i].matchAction(r.Action) {
			hit = true
			break
		}
	}
	if hit == st.NotAction {
		return false
	}
	hit = false
	for i := range st.resources {
		if st.resources[i].matchResource(res) {
			hit = true
			break
		}
	}
	if hit == st.NotResource {
		return false
	}
	for i := range st.Conditions {
		if !st.Conditions[i].holds(r.Conditions) {
			return false
		}
	}
	return true
}

// Matches reports whether the principal element covers a caller with ARN
// principal in account account. An account ID, or acs:ram::<uid>:root,
// stands for the whole account: it delegates to that account, whose own
// RAM policies then decide which of its users may act (so cross-account
// access needs both sides to allow). acs:ram::<uid>:user/<name> names one
// user exactly; '*' and '?' match as in ARNs (acs:ram::<uid>:* is every
// identity of the account).
func (p *Principal) Matches(principal, account string) bool {
	if p == nil {
		return false
	}
	if p.Any {
		return true
	}
	for _, s := range p.RAM {
		if isUID(s) {
			if account != "" && s == account {
				return true
			}
			continue
		}
		if uid, ok := strings.CutSuffix(strings.TrimPrefix(s, "acs:ram::"), ":root"); ok && isUID(uid) {
			if account != "" && uid == account {
				return true
			}
			continue
		}
		if principal == "" {
			continue
		}
		if strings.ContainsAny(s, "*?") {
			if glob(s, principal, false) {
				return true
			}
		} else if s == principal {
			return true
		}
	}
	return false
}

// Decide combines identity policies: any Deny → Deny; else any Allow →
// Allow; else NoMatch (implicit deny). Nil documents are skipped.
func Decide(r *Request, docs ...*Document) Effect {
	out := NoMatch
	for _, d := range docs {
		switch d.Evaluate(r) {
		case Deny:
			return Deny
		case Allow:
			out = Allow
		}
	}
	return out
}

// Combine merges already-computed effects with the same rule as Decide.
func Combine(effects ...Effect) Effect {
	out := NoMatch
	for _, e := range effects {
		if e == Deny {
			return Deny
		}
		if e == Allow {
			out = Allow
		}
	}
	return out
}

// DecideWithResource is the full rule for a call on a resource that has a
// resource policy (a secret policy). An explicit Deny on either side
// denies. A caller of the resource's own account needs an Allow from its
// identity policies or from the resource policy; a caller of another
// account needs an Allow from both, because the resource owner grants the
// account and the caller's administrator grants the user. owner is the
// resource's account UID; resource may be nil (no resource policy).
func DecideWithResource(r *Request, owner string, resource *Document, identity ...*Document) Effect {
	id := Decide(r, identity...)
	rp := NoMatch
	if resource != nil {
		rp = resource.EvaluateResource(r)
	}
	if id == Deny || rp == Deny {
		return Deny
	}
	if r.Account == owner {
		return Combine(id, rp)
	}
	if id == Allow && rp == Allow {
		return Allow
	}
	return NoMatch
}
