// Package apicall holds what an authenticated API call is, as the domain
// side sees it: the caller (Principal), the call (Request with its Params)
// and the Authorizer seam. It knows no HTTP, so access control (internal/iam)
// can depend on it without depending on the wire layer.
package apicall

import (
	"context"
	"strconv"
	"strings"

	"github.com/keyhold/keyhold/internal/errs"
)

// Principal is the authenticated caller.
type Principal struct {
	Account     string // account UID
	AccessKeyID string
	Kind        string // "root", "user", ...
	Name        string // user name; "root" for the account root
}

// Request is one authenticated API call as a handler sees it.
type Request struct {
	RequestID string
	Version   string
	Action    string
	Params    Params
	Principal Principal
	Region    string // deployment region id
	SourceIP  string
	Secure    bool   // arrived over TLS
	OnBehalf  string // x-keyhold-on-behalf-of, when present
}

// Params are the merged query and form parameters (minus the signature
// parameters).
type Params map[string]string

// String returns the parameter or "".
func (p Params) String(name string) string { return p[name] }

// Has reports whether the parameter was sent (even empty).
func (p Params) Has(name string) bool { _, ok := p[name]; return ok }

// Required returns the parameter or a MissingParameter error.
func (p Params) Required(name string) (string, error) {
	v, ok := p[name]
	if !ok || v == "" {
		return "", errs.E(errs.KindMissingParameter, "The parameter %s is required.", name)
	}
	return v, nil
}

// Bool parses "true"/"false" (case-insensitive); absent → def.
func (p Params) Bool(name string, def bool) (bool, error) {
	v, ok := p[name]
	if !ok || v == "" {
		return def, nil
	}
	switch strings.ToLower(v) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, errs.E(errs.KindInvalidParameter, "The parameter %s must be true or false.", name)
}

// Int parses an integer; absent → def.
func (p Params) Int(name string, def int) (int, error) {
	v, ok := p[name]
	if !ok || v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, errs.E(errs.KindInvalidParameter, "The parameter %s must be an integer.", name)
	}
	return n, nil
}

// List collects repeated parameters Name.1, Name.2, ... in order.
func (p Params) List(name string) []string {
	var out []string
	for i := 1; ; i++ {
		v, ok := p[name+"."+strconv.Itoa(i)]
		if !ok {
			return out
		}
		out = append(out, v)
	}
}

// Authorizer decides whether a principal may perform an action
// ("kms:GetSecretValue") on a resource ARN. The access-control layer plugs
// in here; handlers never check permissions themselves.
type Authorizer interface {
	Authorize(ctx context.Context, p Principal, action, resource string, r *Request) error
}
