// Package acssign implements the two Alibaba Cloud request signature schemes
// Keyhold speaks: V1 (HMAC-SHA1 over the sorted RPC parameters) and
// ACS3-HMAC-SHA256 (a canonical request over method, query, signed headers
// and the body hash).
//
// The server verifies with it and the public Go client signs with it, so the
// two can never drift apart. It imports nothing of Keyhold's internals and
// holds no state: callers pass secrets in and get signatures out.
//
// Canonicalisation follows what the official SDKs actually send (see
// darabonba-openapi utils: GetRPCSignature, GetAuthorization): parameters are
// sorted by their raw (decoded) names and every name and value is
// percent-encoded per RFC 3986.
package acssign

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"
)

// Names used on the wire.
const (
	// AlgorithmACS3 is the Authorization scheme and string-to-sign prefix.
	AlgorithmACS3 = "ACS3-HMAC-SHA256"
	// SignatureMethodV1 and SignatureVersionV1 are the V1 common parameters.
	SignatureMethodV1  = "HMAC-SHA1"
	SignatureVersionV1 = "1.0"
	// TimeFormat is the layout of Timestamp and x-acs-date.
	TimeFormat = "2006-01-02T15:04:05Z"

	HeaderDate          = "x-acs-date"
	HeaderNonce         = "x-acs-signature-nonce"
	HeaderContentSHA256 = "x-acs-content-sha256"
	HeaderAction        = "x-acs-action"
	HeaderVersion       = "x-acs-version"
)

// PercentEncode encodes s per RFC 3986: only A-Z a-z 0-9 - _ . ~ stay as
// they are; everything else, byte by byte, becomes %XX (upper-case hex), so
// a space is %20 and * is %2A.
func PercentEncode(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if !unreserved(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	const hexUpper = "0123456789ABCDEF"
	b := make([]byte, 0, len(s)+2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if unreserved(c) {
			b = append(b, c)
			continue
		}
		b = append(b, '%', hexUpper[c>>4], hexUpper[c&15])
	}
	return string(b)
}

func unreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '-' || c == '_' || c == '.' || c == '~'
}

// canonicalQuery sorts by raw name (as the SDKs do) and joins enc(k)=enc(v)
// with '&'. skip names a parameter to leave out ("" for none).
func canonicalQuery(params map[string]string, skip string) string {
	keys := make([]string, 0, len(params))
	for k := range params {
		if k != skip {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(PercentEncode(k))
		b.WriteByte('=')
		b.WriteString(PercentEncode(params[k]))
	}
	return b.String()
}

// StringToSignV1 returns the V1 string to sign for all params except
// "Signature": METHOD&%2F&enc(canonicalized query).
func StringToSignV1(method string, params map[string]string) string {
	return strings.ToUpper(method) + "&" + PercentEncode("/") + "&" + PercentEncode(canonicalQuery(params, "Signature"))
}

// SignV1 returns Base64(HMAC-SHA1(accessKeySecret+"&", StringToSignV1)).
func SignV1(method string, params map[string]string, accessKeySecret string) string {
	m := hmac.New(sha1.New, []byte(accessKeySecret+"&"))
	m.Write([]byte(StringToSignV1(method, params)))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// HashPayload returns hex(SHA-256(body)), the x-acs-content-sha256 value.
func HashPayload(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}

// CanonicalRequestACS3 builds the ACS3 canonical request. Each name in
// signedHeaders (in the order given, which is the order the client sent) is
// looked up in headers case-insensitively; several values are trimmed,
// sorted and joined by ','. Callers on the server side must add "host" to
// headers themselves, since net/http moves it to Request.Host.
func CanonicalRequestACS3(method, path string, query map[string]string, headers http.Header, signedHeaders []string, hashedPayload string) string {
	if path == "" {
		path = "/"
	}
	var b strings.Builder
	// One allocation for the usual request: a handful of short headers.
	b.Grow(len(method) + len(path) + len(hashedPayload) + 64*len(signedHeaders) + 64)
	b.WriteString(strings.ToUpper(method))
	b.WriteByte('\n')
	b.WriteString(path)
	b.WriteByte('\n')
	if len(query) > 0 {
		b.WriteString(canonicalQuery(query, ""))
	}
	b.WriteByte('\n')
	for _, h := range signedHeaders {
		vals := headers.Values(h)
		b.WriteString(h)
		b.WriteByte(':')
		if len(vals) == 1 {
			// The common case needs no sort or join.
			b.WriteString(strings.TrimSpace(vals[0]))
		} else {
			trimmed := make([]string, len(vals))
			for i, v := range vals {
				trimmed[i] = strings.TrimSpace(v)
			}
			sort.Strings(trimmed)
			b.WriteString(strings.Join(trimmed, ","))
		}
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	for i, h := range signedHeaders {
		if i > 0 {
			b.WriteByte(';')
		}
		b.WriteString(h)
	}
	b.WriteByte('\n')
	b.WriteString(hashedPayload)
	return b.String()
}

// StringToSignACS3 is "ACS3-HMAC-SHA256\n" + hex(SHA-256(canonicalRequest)).
func StringToSignACS3(canonicalRequest string) string {
	sum := sha256.Sum256([]byte(canonicalRequest))
	return AlgorithmACS3 + "\n" + hex.EncodeToString(sum[:])
}

// SignACS3 returns hex(HMAC-SHA256(accessKeySecret, StringToSignACS3)).
func SignACS3(canonicalRequest, accessKeySecret string) string {
	m := hmac.New(sha256.New, []byte(accessKeySecret))
	m.Write([]byte(StringToSignACS3(canonicalRequest)))
	return hex.EncodeToString(m.Sum(nil))
}

// Errors from ParseAuthorization.
var (
	ErrNotACS3          = errors.New("acssign: authorization is not ACS3-HMAC-SHA256")
	ErrMalformedACS3    = errors.New("acssign: malformed ACS3 authorization")
	ErrIncompleteACS3   = errors.New("acssign: ACS3 authorization lacks Credential, SignedHeaders or Signature")
	errDuplicateElement = errors.New("acssign: repeated element in ACS3 authorization")
)

// ParseAuthorization splits an "ACS3-HMAC-SHA256 Credential=…,
// SignedHeaders=a;b,Signature=…" header. Element order is free and spaces
// after commas are tolerated; unknown elements are refused so that a
// misreading never passes silently.
func ParseAuthorization(h string) (accessKeyID string, signedHeaders []string, signature string, err error) {
	rest, ok := strings.CutPrefix(h, AlgorithmACS3)
	if !ok {
		return "", nil, "", ErrNotACS3
	}
	if rest == "" || (rest[0] != ' ' && rest[0] != '\t') {
		if rest == "" {
			return "", nil, "", ErrIncompleteACS3
		}
		return "", nil, "", ErrNotACS3
	}
	var haveCred, haveSH, haveSig bool
	var sh string
	for part := range strings.SplitSeq(strings.TrimSpace(rest), ",") {
		part = strings.TrimSpace(part)
		name, val, ok := strings.Cut(part, "=")
		if !ok {
			return "", nil, "", ErrMalformedACS3
		}
		switch name {
		case "Credential":
			if haveCred {
				return "", nil, "", errDuplicateElement
			}
			haveCred, accessKeyID = true, val
		case "SignedHeaders":
			if haveSH {
				return "", nil, "", errDuplicateElement
			}
			haveSH, sh = true, val
		case "Signature":
			if haveSig {
				return "", nil, "", errDuplicateElement
			}
			haveSig, signature = true, val
		default:
			return "", nil, "", ErrMalformedACS3
		}
	}
	if accessKeyID == "" || sh == "" || signature == "" {
		return "", nil, "", ErrIncompleteACS3
	}
	signedHeaders = strings.Split(sh, ";")
	if slices.Contains(signedHeaders, "") {
		return "", nil, "", ErrMalformedACS3
	}
	return accessKeyID, signedHeaders, signature, nil
}

// NewNonce returns a fresh random signature nonce.
func NewNonce() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

// SignRequestACS3 signs req for the ACS3 scheme: it sets x-acs-date and
// x-acs-signature-nonce (unless already set), x-acs-content-sha256 from body
// (unless already set) and Authorization. It signs host, content-type, every
// x-acs-* header and every x-keyhold-* header (so that on-behalf-of cannot be
// altered in transit). body must be the exact bytes req will send; the
// caller sets x-acs-action and x-acs-version before calling. Repeated query
// parameters are not supported: only the first value is signed.
func SignRequestACS3(req *http.Request, body []byte, accessKeyID, accessKeySecret string) {
	if req.Header == nil {
		req.Header = http.Header{}
	}
	if req.Header.Get(HeaderDate) == "" {
		req.Header.Set(HeaderDate, time.Now().UTC().Format(TimeFormat))
	}
	if req.Header.Get(HeaderNonce) == "" {
		req.Header.Set(HeaderNonce, NewNonce())
	}
	payload := req.Header.Get(HeaderContentSHA256)
	if payload == "" {
		payload = HashPayload(body)
		req.Header.Set(HeaderContentSHA256, payload)
	}
	host := req.Host
	if host == "" && req.URL != nil {
		host = req.URL.Host
	}
	toSign := make(http.Header, len(req.Header)+1)
	names := make([]string, 0, len(req.Header)+1)
	for k, vs := range req.Header {
		lk := strings.ToLower(k)
		if lk == "content-type" || strings.HasPrefix(lk, "x-acs-") || strings.HasPrefix(lk, "x-keyhold-") {
			ck := http.CanonicalHeaderKey(lk)
			toSign[ck] = append(toSign[ck], vs...)
			if !slices.Contains(names, lk) {
				names = append(names, lk)
			}
		}
	}
	if host != "" {
		toSign.Set("Host", host)
		names = append(names, "host")
	}
	sort.Strings(names)

	var query map[string]string
	path := "/"
	if req.URL != nil && req.URL.RawQuery != "" {
		query = map[string]string{}
		for k, vs := range req.URL.Query() {
			query[k] = vs[0]
		}
	}
	if req.URL != nil {
		if req.URL.Path != "" {
			path = req.URL.Path
		}
	}
	canonical := CanonicalRequestACS3(req.Method, path, query, toSign, names, payload)
	req.Header.Set("Authorization", AlgorithmACS3+" Credential="+accessKeyID+
		",SignedHeaders="+strings.Join(names, ";")+",Signature="+SignACS3(canonical, accessKeySecret))
}
