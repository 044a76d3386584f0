// Package policy is Keyhold's RAM-style policy language: it parses and
// validates policy documents and evaluates them against a request.
//
// It owns the grammar (Version, Statement, Effect, Action/NotAction,
// Resource/NotResource, Condition, Principal), wildcard matching, the
// condition operators and the combining rule (explicit Deny wins, then
// Allow, else implicit deny), plus the built-in system policies. It is pure
// logic: it knows no HTTP, no storage and no wire codes; callers build a
// Request and decide what to do with the Effect. docs/policies.md describes
// the language for users.
package policy

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/keyhold/keyhold/internal/errs"
)

// Size limits, as RAM and KMS enforce them.
const (
	// MaxIdentityPolicyChars is RAM's limit on a custom policy document
	// (CreatePolicy: "1 to 6,144 characters"), counted in characters.
	MaxIdentityPolicyChars = 6144
	// MaxResourcePolicyBytes is KMS's limit on a secret policy
	// (SetSecretPolicy: "up to 32,768 bytes"), counted in bytes.
	MaxResourcePolicyBytes = 32768
)

// Effect is the outcome of evaluating a statement, a document or a set of
// documents.
type Effect int

const (
	NoMatch Effect = iota // nothing applied: implicit deny
	Allow
	Deny
)

func (e Effect) String() string {
	switch e {
	case Allow:
		return "Allow"
	case Deny:
		return "Deny"
	}
	return "NoMatch"
}

// Document is a parsed, validated policy document.
type Document struct {
	raw        string
	Version    string
	Statements []Statement
}

// String returns the document text exactly as it was given to Parse.
func (d *Document) String() string { return d.raw }

// HasPrincipal reports whether any statement carries a Principal element,
// i.e. whether the document is written as a resource policy.
func (d *Document) HasPrincipal() bool {
	for i := range d.Statements {
		if d.Statements[i].Principal != nil {
			return true
		}
	}
	return false
}

// Statement is one element of the Statement array.
type Statement struct {
	Sid    string
	Effect Effect // Allow or Deny
	// Actions holds the Action or, when NotAction is set, the NotAction list.
	Actions   []string
	NotAction bool
	// Resources holds the Resource or, when NotResource is set, the
	// NotResource list.
	Resources   []string
	NotResource bool
	// Principal is nil when the element is absent (identity policies).
	Principal  *Principal
	Conditions []Condition

	actions   []pattern
	resources []pattern
}

// Principal is a resource policy's Principal element.
type Principal struct {
	Any bool     // "*" or {"RAM":"*"}: every caller
	RAM []string // as written: "acs:ram::<uid>:root", "acs:ram::<uid>:user/<name>", "<uid>", patterns with *
}

// Parse validates an identity (RAM) policy document of at most
// MaxIdentityPolicyChars characters. Statements may carry a Principal element
// (Evaluate skips them); use ParseIdentity to refuse it or ParseResource for
// secret policies. A malformed document yields an *errs.Error of kind
// KindInvalidParameter whose message names the problem.
func Parse(doc string) (*Document, error) {
	return parse(doc, identityLimit, principalOptional)
}

// ParseIdentity is Parse for a policy attached to a user or group: a
// Principal element is refused, since it would never apply.
func ParseIdentity(doc string) (*Document, error) {
	return parse(doc, identityLimit, principalForbidden)
}

// ParseResource validates a resource (secret) policy of at most
// MaxResourcePolicyBytes bytes: every statement must name its Principal.
func ParseResource(doc string) (*Document, error) {
	return parse(doc, resourceLimit, principalRequired)
}

type sizeLimit struct {
	max   int
	chars bool // count characters (RAM) rather than bytes (KMS)
}

var (
	identityLimit = sizeLimit{MaxIdentityPolicyChars, true}
	resourceLimit = sizeLimit{MaxResourcePolicyBytes, false}
)

type principalRule int

const (
	principalOptional principalRule = iota
	principalForbidden
	principalRequired
)

func malformed(format string, args ...any) error {
	return errs.E(errs.KindInvalidParameter, format, args...)
}

func parse(doc string, limit sizeLimit, pr principalRule) (*Document, error) {
	if strings.TrimSpace(doc) == "" {
		return nil, malformed("policy document is empty")
	}
	if limit.chars {
		// Cheap bound first so a huge input is not scanned rune by rune.
		if n := len(doc); n > 4*limit.max || utf8.RuneCountInString(doc) > limit.max {
			return nil, malformed("policy document is longer than %d characters", limit.max)
		}
	} else if len(doc) > limit.max {
		return nil, malformed("policy document is %d bytes; the limit is %d", len(doc), limit.max)
	}
	v, err := decodeJSON(doc)
	if err != nil {
		return nil, malformed("policy document is not valid JSON: %v", err)
	}
	top, ok := v.([]member)
	if !ok {
		return nil, malformed("policy document must be a JSON object, not %s", jsonType(v))
	}
	d := &Document{raw: doc}
	var stmts any
	haveVersion, haveStmts := false, false
	for _, m := range top {
		switch m.name {
		case "Version":
			s, ok := m.value.(string)
			if !ok || s != "1" {
				return nil, malformed("Version must be \"1\"")
			}
			d.Version, haveVersion = s, true
		case "Statement":
			stmts, haveStmts = m.value, true
		default:
			return nil, malformed("unknown policy element %q (expected Version and Statement)", m.name)
		}
	}
	if !haveVersion {
		return nil, malformed("Version is missing; it must be \"1\"")
	}
	if !haveStmts {
		return nil, malformed("Statement is missing")
	}
	list, ok := stmts.([]any)
	if !ok {
		return nil, malformed("Statement must be an array of statements, not %s", jsonType(stmts))
	}
	if len(list) == 0 {
		return nil, malformed("Statement must contain at least one statement")
	}
	for i, sv := range list {
		st, err := parseStatement(sv, fmt.Sprintf("Statement[%d]", i), pr)
		if err != nil {
			return nil, err
		}
		d.Statements = append(d.Statements, st)
	}
	return d, nil
}

func parseStatement(v any, at string, pr principalRule) (Statement, error) {
	var st Statement
	obj, ok := v.([]member)
	if !ok {
		return st, malformed("%s must be an object, not %s", at, jsonType(v))
	}
	var haveEffect, haveAction, haveNotAction, haveResource, haveNotResource bool
	for _, m := range obj {
		var err error
		switch m.name {
		case "Sid":
			s, ok := m.value.(string)
			if !ok {
				return st, malformed("%s.Sid must be a string", at)
			}
			st.Sid = s
		case "Effect":
			s, _ := m.value.(string)
			switch s {
			case "Allow":
				st.Effect = Allow
			case "Deny":
				st.Effect = Deny
			default:
				return st, malformed("%s.Effect must be Allow or Deny", at)
			}
			haveEffect = true
		case "Action", "NotAction":
			st.Actions, err = stringList(m.value, at+"."+m.name)
			if err != nil {
				return st, err
			}
			for j, a := range st.Actions {
				if err := checkAction(a); err != nil {
					return st, malformed("%s.%s[%d] %q %s", at, m.name, j, a, err)
				}
			}
			st.NotAction = m.name == "NotAction"
			haveAction = haveAction || m.name == "Action"
			haveNotAction = haveNotAction || m.name == "NotAction"
		case "Resource", "NotResource":
			st.Resources, err = stringList(m.value, at+"."+m.name)
			if err != nil {
				return st, err
			}
			for j, r := range st.Resources {
				if err := checkResource(r); err != nil {
					return st, malformed("%s.%s[%d] %q %s", at, m.name, j, r, err)
				}
			}
			st.NotResource = m.name == "NotResource"
			haveResource = haveResource || m.name == "Resource"
			haveNotResource = haveNotResource || m.name == "NotResource"
		case "Principal":
			if pr == principalForbidden {
				return st, malformed("%s.Principal is not allowed in a policy attached to a user or group", at)
			}
			st.Principal, err = parsePrincipal(m.value, at+".Principal")
			if err != nil {
				return st, err
			}
		case "Condition":
			st.Conditions, err = parseConditions(m.value, at+".Condition")
			if err != nil {
				return st, err
			}
		default:
			return st, malformed("%s has unknown element %q", at, m.name)
		}
	}
	switch {
	case !haveEffect:
		return st, malformed("%s.Effect is missing; it must be Allow or Deny", at)
	case haveAction && haveNotAction:
		return st, malformed("%s has both Action and NotAction; use one", at)
	case !haveAction && !haveNotAction:
		return st, malformed("%s.Action is missing", at)
	case haveResource && haveNotResource:
		return st, malformed("%s has both Resource and NotResource; use one", at)
	case !haveResource && !haveNotResource:
		return st, malformed("%s.Resource is missing", at)
	case pr == principalRequired && st.Principal == nil:
		return st, malformed("%s.Principal is missing; a secret policy statement must name its principal", at)
	}
	st.actions = make([]pattern, len(st.Actions))
	for i, a := range st.Actions {
		st.actions[i] = compileAction(a)
	}
	st.resources = make([]pattern, len(st.Resources))
	for i, r := range st.Resources {
		st.resources[i] = compileResource(r)
	}
	return st, nil
}

// stringList reads an element that is a string or a non-empty array of
// strings.
func stringList(v any, at string) ([]string, error) {
	switch t := v.(type) {
	case string:
		if t == "" {
			return nil, malformed("%s must not be empty", at)
		}
		return []string{t}, nil
	case []any:
		if len(t) == 0 {
			return nil, malformed("%s must not be an empty array", at)
		}
		out := make([]string, len(t))
		for i, e := range t {
			s, ok := e.(string)
			if !ok {
				return nil, malformed("%s[%d] must be a string, not %s", at, i, jsonType(e))
			}
			if s == "" {
				return nil, malformed("%s[%d] must not be empty", at, i)
			}
			out[i] = s
		}
		return out, nil
	}
	return nil, malformed("%s must be a string or an array of strings, not %s", at, jsonType(v))
}

// checkAction accepts "*" or "<ram-code>:<action-name>" (either part may hold
// wildcards).
func checkAction(a string) error {
	if a == "*" {
		return nil
	}
	svc, name, ok := strings.Cut(a, ":")
	if !ok || svc == "" || name == "" || strings.Contains(name, ":") {
		return fmt.Errorf("must be \"*\" or <service>:<action>, e.g. \"kms:GetSecretValue\"")
	}
	if bad := strings.IndexFunc(a, func(r rune) bool { return r <= ' ' || r == 0x7f }); bad >= 0 {
		return fmt.Errorf("contains a space or control character")
	}
	return nil
}

// checkResource accepts "*" or an ARN acs:<service>:<region>:<account>:<relative-id>.
func checkResource(r string) error {
	if r == "*" {
		return nil
	}
	parts := strings.SplitN(r, ":", 5)
	if len(parts) < 5 || parts[0] != "acs" || parts[1] == "" {
		return fmt.Errorf("must be \"*\" or an ARN acs:<service>:<region>:<account>:<resource>")
	}
	if bad := strings.IndexFunc(r, func(c rune) bool { return c < ' ' || c == 0x7f }); bad >= 0 {
		return fmt.Errorf("contains a control character")
	}
	return nil
}

func parsePrincipal(v any, at string) (*Principal, error) {
	if s, ok := v.(string); ok {
		if s != "*" {
			return nil, malformed("%s must be \"*\" or {\"RAM\": [...]}", at)
		}
		return &Principal{Any: true}, nil
	}
	obj, ok := v.([]member)
	if !ok {
		return nil, malformed("%s must be \"*\" or {\"RAM\": [...]}, not %s", at, jsonType(v))
	}
	if len(obj) == 0 {
		return nil, malformed("%s must name at least one principal", at)
	}
	p := &Principal{}
	for _, m := range obj {
		if m.name != "RAM" {
			return nil, malformed("%s has unknown principal type %q (Keyhold supports \"RAM\")", at, m.name)
		}
		list, err := stringList(m.value, at+".RAM")
		if err != nil {
			return nil, err
		}
		for i, s := range list {
			if s == "*" {
				p.Any = true
				continue
			}
			if err := checkPrincipal(s); err != nil {
				return nil, malformed("%s.RAM[%d] %q %s", at, i, s, err)
			}
		}
		p.RAM = list
	}
	return p, nil
}

// checkPrincipal accepts an account UID or acs:ram::<uid>:<root|user/..|role/..|*>.
func checkPrincipal(s string) error {
	if isUID(s) {
		return nil
	}
	rest, ok := strings.CutPrefix(s, "acs:ram::")
	uid, rel, ok2 := strings.Cut(rest, ":")
	if !ok || !ok2 || !(isUID(uid) || uid == "*") || rel == "" {
		return fmt.Errorf("must be an account ID or acs:ram::<account-id>:root, :user/<name>, :role/<name> or :*")
	}
	switch {
	case rel == "root", rel == "*",
		strings.HasPrefix(rel, "user/") && len(rel) > len("user/"),
		strings.HasPrefix(rel, "role/") && len(rel) > len("role/"):
		return nil
	}
	return fmt.Errorf("must end in :root, :user/<name>, :role/<name> or :*")
}

func isUID(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// scalarString renders a condition value given as a string, number or
// boolean the way RAM compares it.
func scalarString(v any) (string, bool) {
	switch t := v.(type) {
	case string:
		return t, true
	case json.Number:
		return t.String(), true
	case bool:
		if t {
			return "true", true
		}
		return "false", true
	}
	return "", false
}
