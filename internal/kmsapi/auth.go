package kmsapi

import (
	"context"
	"crypto/hmac"
	"errors"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/keyhold/keyhold/acssign"
	"github.com/keyhold/keyhold/internal/errs"
)

// maxNonceLen bounds what a caller can make us store per request.
const maxNonceLen = 128

// parseParams merges the query string and a form body into one parameter
// set. A name given twice (twice in one place, or in both) is refused: the
// signature would cover one value while a handler might read the other.
// query is the query string alone, which ACS3 signs separately.
func parseParams(r *http.Request, body []byte) (query, params Params, err error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, nil, errs.E(errs.KindInvalidParameter, "The query string is malformed.")
	}
	query = make(Params, len(q))
	params = make(Params, len(q)+8)
	for k, vs := range q {
		if len(vs) > 1 {
			return nil, nil, errs.E(errs.KindInvalidParameter, "The parameter %s is repeated.", safeName(k))
		}
		query[k] = vs[0]
		params[k] = vs[0]
	}
	if len(body) == 0 {
		return query, params, nil
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/x-www-form-urlencoded" {
		return nil, nil, errs.E(errs.KindInvalidParameter, "The request body must be application/x-www-form-urlencoded.")
	}
	f, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, nil, errs.E(errs.KindInvalidParameter, "The form body is malformed.")
	}
	for k, vs := range f {
		if _, dup := params[k]; dup || len(vs) > 1 {
			return nil, nil, errs.E(errs.KindInvalidParameter, "The parameter %s is repeated.", safeName(k))
		}
		params[k] = vs[0]
	}
	return query, params, nil
}

// safeName lets a parameter name into a message only when it looks like
// one: names are chosen by the caller and could be anything.
func safeName(k string) string {
	if len(k) > 64 || strings.ContainsFunc(k, func(r rune) bool {
		return !(r == '.' || r == '_' || r == '-' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9')
	}) {
		return "(name not shown)"
	}
	return k
}

// authn is what authentication learnt, also when it failed part-way.
type authn struct {
	accessKeyID string
	version     string
	action      string
	principal   Principal
}

// authenticate detects the scheme, checks timestamp, key, signature and
// nonce, in that order: the nonce is recorded only once the signature
// verified, so nobody but the key holder can burn nonces.
func (s *Server) authenticate(ctx context.Context, r *http.Request, body []byte, query, params Params) (authn, error) {
	if auth := r.Header.Get("Authorization"); auth != "" {
		if strings.HasPrefix(auth, acssign.AlgorithmACS3) {
			return s.authACS3(ctx, r, auth, body, query, params)
		}
		if !params.Has("Signature") {
			return authn{}, wireErr(ErrIncompleteSignature, "The Authorization scheme is not supported; use ACS3-HMAC-SHA256.")
		}
	}
	return s.authV1(ctx, r, params)
}

func (s *Server) authV1(ctx context.Context, r *http.Request, p Params) (authn, error) {
	// Only signed values count: V1 signs the parameters, not the
	// x-acs-action/x-acs-version headers the Go SDK also sends.
	a := authn{accessKeyID: p["AccessKeyId"], version: p["Version"], action: p["Action"]}
	for _, name := range []string{"Action", "Version", "AccessKeyId", "Signature", "SignatureNonce", "Timestamp"} {
		if p[name] == "" {
			return a, missingParam(name)
		}
	}
	if m := p["SignatureMethod"]; m != acssign.SignatureMethodV1 {
		return a, wireErr(ErrIncompleteSignature, "The SignatureMethod must be HMAC-SHA1.")
	}
	if v := p["SignatureVersion"]; v != acssign.SignatureVersionV1 {
		return a, wireErr(ErrIncompleteSignature, "The SignatureVersion must be 1.0.")
	}
	ts, err := s.checkTimestamp(p["Timestamp"])
	if err != nil {
		return a, err
	}
	principal, secret, err := s.lookup(ctx, a.accessKeyID)
	if err != nil {
		return a, err
	}
	want := acssign.SignV1(r.Method, p, secret)
	if !hmac.Equal([]byte(want), []byte(p["Signature"])) {
		return a, wireErr(ErrSignatureDoesNotMatch, "")
	}
	if err := s.useNonce(ctx, a.accessKeyID, p["SignatureNonce"], ts); err != nil {
		return a, err
	}
	a.principal = principal
	return a, nil
}

// requiredSigned are the headers an ACS3 request must sign: without them a
// captured request could be re-dated, re-nonced, re-bodied or re-targeted.
var requiredSigned = []string{acssign.HeaderAction, acssign.HeaderVersion, acssign.HeaderDate, acssign.HeaderNonce, acssign.HeaderContentSHA256}

func (s *Server) authACS3(ctx context.Context, r *http.Request, auth string, body []byte, query, params Params) (authn, error) {
	a := authn{
		version: r.Header.Get(acssign.HeaderVersion),
		action:  r.Header.Get(acssign.HeaderAction),
	}
	id, signed, sig, err := acssign.ParseAuthorization(auth)
	if err != nil {
		return a, wireErr(ErrIncompleteSignature, "The Authorization header is malformed.")
	}
	a.accessKeyID = id
	// Action and Version may also appear as signed query parameters; they
	// must then agree with the headers.
	for hdr, name := range map[string]string{acssign.HeaderAction: "Action", acssign.HeaderVersion: "Version"} {
		if v, ok := params[name]; ok && v != r.Header.Get(hdr) {
			return a, errs.E(errs.KindInvalidParameter, "The parameter %s does not match the header %s.", name, hdr)
		}
	}
	if a.action == "" {
		return a, missingParam("Action")
	}
	if a.version == "" {
		return a, missingParam("Version")
	}
	lower := make(map[string]bool, len(signed))
	for _, h := range signed {
		lower[strings.ToLower(h)] = true
	}
	for _, h := range requiredSigned {
		if !lower[h] || r.Header.Get(h) == "" {
			return a, wireErr(ErrIncompleteSignature, "The header "+h+" must be present and signed.")
		}
	}
	ts, err := s.checkTimestamp(r.Header.Get(acssign.HeaderDate))
	if err != nil {
		return a, err
	}
	payload := r.Header.Get(acssign.HeaderContentSHA256)
	if !strings.EqualFold(payload, acssign.HashPayload(body)) {
		return a, wireErr(ErrSignatureDoesNotMatch, "The request body does not match x-acs-content-sha256.")
	}
	principal, secret, err := s.lookup(ctx, id)
	if err != nil {
		return a, err
	}
	hdrs := make(http.Header, len(signed))
	for _, h := range signed {
		if strings.EqualFold(h, "host") {
			hdrs.Set("Host", r.Host)
			continue
		}
		hdrs[http.CanonicalHeaderKey(h)] = r.Header.Values(h)
	}
	canonical := acssign.CanonicalRequestACS3(r.Method, r.URL.EscapedPath(), query, hdrs, signed, payload)
	want := acssign.SignACS3(canonical, secret)
	if !hmac.Equal([]byte(want), []byte(strings.ToLower(sig))) {
		return a, wireErr(ErrSignatureDoesNotMatch, "")
	}
	if err := s.useNonce(ctx, id, r.Header.Get(acssign.HeaderNonce), ts); err != nil {
		return a, err
	}
	a.principal = principal
	return a, nil
}

func missingParam(name string) error {
	return errs.E(errs.KindMissingParameter, "The input parameter %s that is mandatory for processing this request is not supplied.", name)
}

func (s *Server) checkTimestamp(v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, wireErr(ErrIllegalTimestamp, "")
	}
	ts, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, wireErr(ErrIllegalTimestamp, "The timestamp must be in ISO 8601 form, e.g. 2006-01-02T15:04:05Z.")
	}
	if d := s.cfg.Now().Sub(ts); d > TimestampWindow || d < -TimestampWindow {
		return time.Time{}, wireErr(ErrIllegalTimestamp, "The timestamp is more than 15 minutes away from the server time.")
	}
	return ts, nil
}

func (s *Server) lookup(ctx context.Context, id string) (Principal, string, error) {
	p, secret, err := s.cfg.Credentials.LookupAccessKey(ctx, id)
	switch {
	case err == nil:
		if secret == "" {
			return Principal{}, "", errs.E(errs.KindInternal, "access key %s has an empty secret", id)
		}
		return p, secret, nil
	case errors.Is(err, ErrAccessKeyDisabled), errs.Is(err, errs.KindForbidden):
		return Principal{}, "", wireErr(ErrAccessKeyDisabled, "")
	case errs.Is(err, errs.KindNotFound):
		return Principal{}, "", wireErr(ErrInvalidAccessKeyID, "")
	}
	return Principal{}, "", err
}

// useNonce records the nonce for as long as its request's timestamp stays
// acceptable. Nonces are scoped by access key: keys cannot collide.
func (s *Server) useNonce(ctx context.Context, accessKeyID, nonce string, ts time.Time) error {
	if nonce == "" {
		return missingParam("SignatureNonce")
	}
	if len(nonce) > maxNonceLen {
		return errs.E(errs.KindInvalidParameter, "The SignatureNonce is longer than %d characters.", maxNonceLen)
	}
	fresh, err := s.cfg.Nonces.PutNonce(ctx, "acs/"+accessKeyID+"/"+nonce, ts.Add(TimestampWindow))
	if err != nil {
		return errs.Wrap(errs.KindUnavailable, err, "The request cannot be checked for replay now; retry.")
	}
	if !fresh {
		return wireErr(ErrSignatureNonceUsed, "")
	}
	return nil
}
