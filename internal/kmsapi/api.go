// Package kmsapi is Keyhold's wire layer: it parses RPC-style requests in the
// Alibaba Cloud KMS format (V1 HMAC-SHA1 and ACS3-HMAC-SHA256 signatures,
// query string and form body, JSON or XML responses), authenticates and
// authorizes them, dispatches by (Version, Action) to a handler, and renders
// results and errors. It owns the single table from domain error kinds
// (internal/errs) to KMS error codes and HTTP statuses.
//
// Handlers call domain packages (secrets, keys, ...) through interfaces
// declared here; this package never touches storage directly.
package kmsapi

import (
	"context"

	"github.com/keyhold/keyhold/internal/apicall"
)

// API versions served on the one endpoint.
const (
	VersionKMS     = "2016-01-20"
	VersionRAM     = "2015-05-01"
	VersionKeyhold = "2026-11-01"
)

// The call types live in internal/apicall so that access control can use
// them without importing the wire layer; these aliases keep handler code
// short.
type (
	Principal  = apicall.Principal
	Request    = apicall.Request
	Params     = apicall.Params
	Authorizer = apicall.Authorizer
)

// HandlerFunc serves one action. It returns a response value (a struct or
// map whose JSON field names are the wire names; RequestId is added by the
// dispatcher) or an error, preferably an *errs.Error.
type HandlerFunc func(ctx context.Context, r *Request) (any, error)

// Route describes one action.
type Route struct {
	Version string
	Action  string
	Handler HandlerFunc
	// Resource returns the ARN the call acts on, for authorization; nil or
	// "" means "*" (account-wide actions such as List*).
	Resource func(r *Request) string
}
