package kmsapi

import (
	"errors"

	"github.com/keyhold/keyhold/internal/errs"
)

// wireCode is what a caller sees for an error: the KMS Code, the HTTP status
// and the message used when the error carries none of its own.
type wireCode struct {
	Code    string
	Status  int
	Message string
}

// WireError is an error raised by the transport itself (signature, nonce,
// framing), never by a domain package. Compare with errors.Is against the
// sentinels below; Message is safe to show.
type WireError struct {
	sentinel *sentinel
	Message  string
}

func (e *WireError) Error() string { return e.sentinel.name + ": " + e.Message }
func (e *WireError) Unwrap() error { return e.sentinel }

type sentinel struct{ name string }

func (s *sentinel) Error() string { return "kmsapi: " + s.name }

// Wire-level sentinel errors, matched with errors.Is.
var (
	ErrIncompleteSignature   = &sentinel{"incomplete signature"}
	ErrSignatureDoesNotMatch = &sentinel{"signature does not match"}
	ErrIllegalTimestamp      = &sentinel{"illegal timestamp"}
	ErrSignatureNonceUsed    = &sentinel{"signature nonce used"}
	ErrInvalidAccessKeyID    = &sentinel{"access key id not found"}
	// ErrAccessKeyDisabled may also be returned by Credentials for a key
	// that exists but is not active; an errs.KindForbidden error from
	// Credentials means the same.
	ErrAccessKeyDisabled     = &sentinel{"access key disabled"}
	ErrInvalidAction         = &sentinel{"action not found"}
	ErrInvalidVersion        = &sentinel{"version not found"}
	ErrUnsupportedHTTPMethod = &sentinel{"http method not supported"}
	ErrBodyTooLarge          = &sentinel{"request body too large"}
	ErrNotFound              = &sentinel{"path not found"}
)

func wireErr(s *sentinel, msg string) *WireError { return &WireError{sentinel: s, Message: msg} }

// The one table from error to wire code. Codes and statuses follow
// docs/kms-api.md and Alibaba Cloud's KMS "common error codes" page;
// choices of our own are marked.
var (
	sentinelTable = map[*sentinel]wireCode{
		ErrIncompleteSignature:   {"IncompleteSignature", 400, "The request signature does not conform to Alibaba Cloud standards."},
		ErrSignatureDoesNotMatch: {"SignatureDoesNotMatch", 400, "The request signature we calculated does not match the signature you provided. Check your AccessKeySecret and signing method."},
		ErrIllegalTimestamp:      {"IllegalTimestamp", 400, "The input parameter \"Timestamp\" is missing or not within 15 minutes of the server time."},
		ErrSignatureNonceUsed:    {"SignatureNonceUsed", 400, "The request signature nonce has been used."},
		ErrInvalidAccessKeyID:    {"InvalidAccessKeyId.NotFound", 404, "The AccessKey ID provided does not exist in our records."},
		ErrAccessKeyDisabled:     {"Forbidden.AccessKeyDisabled", 403, "The AccessKey is disabled."},
		ErrInvalidAction:         {"InvalidAction.NotFound", 400, "The specified action is not valid."},
		// Our choice: Alibaba's gateways answer InvalidVersion for an
		// unknown API version.
		ErrInvalidVersion:        {"InvalidVersion", 400, "The specified parameter Version is not valid."},
		ErrUnsupportedHTTPMethod: {"UnsupportedHTTPMethod", 403, "This http method is not supported."},
		// Our choice: refused before parsing with 413 (as the KMS instance
		// gateway does) and a code every SDK treats as a non-retryable
		// client error.
		ErrBodyTooLarge: {"InvalidParameter", 413, "The request body is too large."},
		ErrNotFound:     {"InvalidAction.NotFound", 404, "The specified path is not served."},
	}

	kindTable = map[errs.Kind]wireCode{
		errs.KindInternal:         internalFailure,
		errs.KindInvalidParameter: {"InvalidParameter", 400, "The specified parameter is not valid."},
		errs.KindMissingParameter: {"MissingParameter", 400, "A required parameter is missing."},
		errs.KindSecretNotFound:   {"Forbidden.ResourceNotFound", 404, "The specified secret is not found."},
		errs.KindKeyNotFound:      {"Forbidden.KeyNotFound", 404, "The specified Key is not found."},
		errs.KindAliasNotFound:    {"Forbidden.AliasNotFound", 404, "The specified Alias is not found."},
		errs.KindNotFound:         {"Forbidden.ResourceNotFound", 404, "The specified resource is not found."},
		errs.KindAlreadyExists:    {"Rejected.ResourceExist", 409, "The resource already exists."},
		errs.KindInDeleteWindow:   {"Rejected.ResourceInDeleteWindow", 409, "The resource is scheduled for deletion."},
		errs.KindDisabled:         {"Rejected.Disabled", 409, "The request was rejected because the key state is Disabled."},
		errs.KindInUse:            {"Rejected.ResourceInUse", 409, "The resource is in use."},
		errs.KindLimitExceeded:    {"Rejected.LimitExceeded", 409, "The request was rejected because a limit was exceeded."},
		errs.KindForbidden:        {"Forbidden.NoPermission", 403, "This operation is forbidden by permission system."},
		errs.KindUnavailable:      {"ServiceUnavailableTemporary", 503, "Service Unavailable Temporary."},
		errs.KindThrottled:        {"Rejected.Throttling", 429, "QPS Limit Exceeded."},
		// Alibaba's KMS API reference uses Rejected.UnsupportedOperation (400).
		errs.KindUnsupported: {"Rejected.UnsupportedOperation", 400, "Unsupported operation."},
		// Our choices: no public KMS code was found for these two.
		errs.KindInvalidState:  {"Rejected.Unexpected", 409, "The resource is not in a state that allows this operation."},
		errs.KindDecryptFailed: {"Rejected.DecryptFailed", 400, "The ciphertext cannot be decrypted."},
	}

	internalFailure = wireCode{"InternalFailure", 500, "Internal Failure."}

	// ramStatus gives the HTTP status of each code that identity errors
	// carry themselves (see ramCoded), from Alibaba Cloud's RAM API error
	// list: 404 for a missing entity, 409 for conflicts and limits, 400 for
	// bad input. A code missing here is a programming error: it is answered
	// as InternalFailure, and the kmsapi tests check every iam code is here.
	ramStatus = map[string]int{
		"EntityNotExist.User":                       404,
		"EntityNotExist.Group":                      404,
		"EntityNotExist.Policy":                     404,
		"EntityNotExist.PolicyVersion":              404,
		"EntityNotExist.User.AccessKey":             404,
		"EntityNotExist.User.LoginProfile":          404,
		"EntityNotExist.User.Group":                 404,
		"EntityNotExist.User.Policy":                404,
		"EntityNotExist.Group.Policy":               404,
		"EntityAlreadyExists.User":                  409,
		"EntityAlreadyExists.Group":                 409,
		"EntityAlreadyExists.Policy":                409,
		"EntityAlreadyExists.User.LoginProfile":     409,
		"EntityAlreadyExists.User.Group":            409,
		"EntityAlreadyExists.User.Policy":           409,
		"EntityAlreadyExists.Group.Policy":          409,
		"DeleteConflict.User.AccessKey":             409,
		"DeleteConflict.User.Group":                 409,
		"DeleteConflict.User.LoginProfile":          409,
		"DeleteConflict.User.Policy":                409,
		"DeleteConflict.Group.User":                 409,
		"DeleteConflict.Group.Policy":               409,
		"DeleteConflict.Policy.User":                409,
		"DeleteConflict.Policy.Group":               409,
		"DeleteConflict.PolicyVersion.Default":      409,
		"LimitExceeded.User.AccessKey":              409,
		"LimitExceeded.Policy.Version":              409,
		"MalformedPolicyDocument":                   400,
		"InvalidParameter.UserName.InvalidChars":    400,
		"InvalidParameter.UserName.Length":          400,
		"InvalidParameter.NewUserName.InvalidChars": 400,
		"InvalidParameter.NewUserName.Length":       400,
		"InvalidParameter.GroupName.InvalidChars":   400,
		"InvalidParameter.GroupName.Length":         400,
		"InvalidParameter.PolicyName.InvalidChars":  400,
		"InvalidParameter.PolicyName.Length":        400,
		"InvalidParameter.PolicyType.InvalidValue":  400,
		"InvalidParameter.Status.InvalidValue":      400,
		"InvalidParameter.Password.Length":          400,
		"InvalidParameter.Length":                   400,
	}
)

// ramCoded is an error that names its own RAM code (iam.Error); the wire
// layer knows it only by these methods.
type ramCoded interface {
	error
	RAMCode() string
	SafeMessage() string
}

// classify maps any error to what the caller sees. Only messages that are
// safe by contract (errs.Error.Message, WireError.Message) are passed on;
// anything else becomes InternalFailure with a generic message. internal
// reports whether the cause deserves an error log.
func classify(err error) (wc wireCode, internal bool) {
	var we *WireError
	if errors.As(err, &we) {
		wc = sentinelTable[we.sentinel]
		if we.Message != "" {
			wc.Message = we.Message
		}
		return wc, false
	}
	var s *sentinel
	if errors.As(err, &s) {
		return sentinelTable[s], false
	}
	var rc ramCoded
	if errors.As(err, &rc) {
		status, ok := ramStatus[rc.RAMCode()]
		if !ok {
			return internalFailure, true
		}
		return wireCode{Code: rc.RAMCode(), Status: status, Message: rc.SafeMessage()}, false
	}
	var e *errs.Error
	if errors.As(err, &e) {
		if e.Kind == errs.KindInternal {
			// A domain that wrapped a storage outage as its own internal
			// failure still answers a retryable 503.
			if u := unavailableCause(e.Cause); u != nil {
				e = u
			}
		}
		wc, ok := kindTable[e.Kind]
		if !ok || e.Kind == errs.KindInternal {
			// An internal error's message is for operators, not callers.
			return internalFailure, true
		}
		if e.Message != "" {
			wc.Message = e.Message
		}
		return wc, false
	}
	return internalFailure, true
}

// unavailableCause is the first errs.KindUnavailable error in err's chain.
func unavailableCause(err error) *errs.Error {
	var e *errs.Error
	for errors.As(err, &e) {
		if e.Kind == errs.KindUnavailable {
			return e
		}
		err = e.Cause
	}
	return nil
}
