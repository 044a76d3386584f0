// Package errs is the error type shared by Keyhold's domain packages.
//
// A domain package returns an *Error carrying a Kind (what went wrong, in
// terms the wire layer maps to a KMS code and HTTP status), a Message that is
// safe to show to the caller, and an optional Cause that is only logged.
// Neither Message nor Cause may ever contain a secret value, a password, a
// private key or key material. The single table from Kind to wire code lives
// in internal/kmsapi.
package errs

import (
	"errors"
	"fmt"
)

// Kind classifies an error for the wire layer. Domain packages never know
// HTTP status codes or KMS codes; they pick a Kind.
type Kind int

const (
	KindInternal         Kind = iota // InternalFailure
	KindInvalidParameter             // InvalidParameter
	KindMissingParameter             // MissingParameter
	KindSecretNotFound               // Forbidden.ResourceNotFound
	KindKeyNotFound                  // Forbidden.KeyNotFound
	KindAliasNotFound                // Forbidden.AliasNotFound
	KindNotFound                     // Forbidden.ResourceNotFound (other resources)
	KindAlreadyExists                // Rejected.ResourceExist
	KindInDeleteWindow               // Rejected.ResourceInDeleteWindow
	KindDisabled                     // Rejected.Disabled
	KindInUse                        // Rejected.ResourceInUse
	KindLimitExceeded                // Rejected.LimitExceeded
	KindForbidden                    // Forbidden.NoPermission
	KindUnavailable                  // ServiceUnavailableTemporary
	KindThrottled                    // Rejected.Throttling
	KindUnsupported                  // UnsupportedOperation
	KindInvalidState                 // Rejected.Unexpected / invalid state for the operation
	KindDecryptFailed                // Rejected.DecryptFailed (ciphertext does not open)
)

// Error is a domain error with a caller-safe message.
type Error struct {
	Kind    Kind
	Message string // safe to return to the caller
	Cause   error  // for logs only; never contains secret material
}

func (e *Error) Error() string {
	if e.Cause != nil {
		return e.Message + ": " + e.Cause.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Cause }

// E builds an *Error with a formatted safe message.
func E(kind Kind, format string, args ...any) *Error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// Wrap builds an *Error whose cause is err (logged, never shown).
func Wrap(kind Kind, err error, format string, args ...any) *Error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...), Cause: err}
}

// KindOf returns the Kind of err, or KindInternal when err is not an *Error.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindInternal
}

// Is reports whether err is an *Error of the given kind.
func Is(err error, kind Kind) bool {
	var e *Error
	return errors.As(err, &e) && e.Kind == kind
}
