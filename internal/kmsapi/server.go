package kmsapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/keyhold/keyhold/internal/errs"
)

// Credentials resolves an access key id to its principal and secret. An
// unknown key is an errs.KindNotFound error (InvalidAccessKeyId.NotFound);
// a key that exists but is not active is ErrAccessKeyDisabled or an
// errs.KindForbidden error (Forbidden.AccessKeyDisabled).
type Credentials interface {
	LookupAccessKey(ctx context.Context, accessKeyID string) (p Principal, secret string, err error)
}

// Nonces remembers signature nonces until they expire; store.Store
// satisfies it. PutNonce returns false for a nonce already recorded.
type Nonces interface {
	PutNonce(ctx context.Context, key string, expires time.Time) (bool, error)
}

// Auditor appends one record per API call to a durable trail and returns
// once it is durable. It is the fail-closed seam: when Record fails, the
// call is answered ServiceUnavailableTemporary. A call that may change
// state is recorded first as an attempt (Event.Attempt), before its handler
// runs, so that no change happens unrecorded; every call's outcome is
// recorded before the response is written, so that no reply (a secret
// value) leaves unrecorded. See docs/audit.md.
type Auditor interface {
	Record(ctx context.Context, e Event) error
}

// Event is what the audit trail is told of one request.
type Event struct {
	Time        time.Time
	RequestID   string
	AccessKeyID string    // as claimed by the request, even when unknown
	Principal   Principal // zero unless the signature verified
	// Account is the principal's account, or for a refused call the
	// account of the claimed access key when it exists ("" otherwise).
	Account  string
	SourceIP string
	OnBehalf string // x-keyhold-on-behalf-of
	Version  string
	Action   string // e.g. "kms:GetSecretValue"; "" when not determined
	Resource string // ARN authorized against; "" when not reached
	// Params are the call's parameters as received, signature parameters
	// removed. They may hold secret values: an Auditor must redact them
	// before keeping anything (internal/audit keeps an allow-list).
	Params     Params
	Attempt    bool   // recorded before the handler runs; Status and Code unset
	Authorized bool   // authentication and authorization passed
	Status     int    // HTTP status sent
	Code       string // KMS error code; "" on success
}

// Config configures a Server.
type Config struct {
	Region      string // deployment region id, passed to handlers
	Credentials Credentials
	Nonces      Nonces
	// Authorizer decides every call; nil means the root-only default
	// (see rootOnly).
	Authorizer Authorizer
	// Audit, when set, records every call and fails it closed when a
	// record cannot be written.
	Audit  Auditor
	Logger *slog.Logger // default slog.Default()
	Now    func() time.Time
	// MaxBodyBytes bounds the request body (default 128 KiB); a larger body
	// is refused before it is parsed, with HTTP 413 and InvalidParameter.
	MaxBodyBytes int64
	// Ready reports whether the server can serve (GET /readyz); nil means
	// always ready.
	Ready func() error
}

// DefaultMaxBodyBytes fits the largest legal request (a 30,720-byte secret
// value, form-encoded at up to 3 bytes per byte, plus the other parameters).
const DefaultMaxBodyBytes = 128 << 10

// TimestampWindow is how far a request's timestamp may be from the server
// clock, and so how long a nonce must be remembered.
const TimestampWindow = 15 * time.Minute

// Server is the KMS-compatible API endpoint: POST/GET "/" plus /healthz and
// /readyz.
type Server struct {
	cfg      Config
	log      *slog.Logger
	authz    Authorizer
	routes   map[routeKey]Route
	versions map[string]bool
}

type routeKey struct{ version, action string }

// New builds a Server serving the given route sets. A route registered
// twice is a programming error and panics.
func New(cfg Config, routes ...[]Route) *Server {
	if cfg.Credentials == nil || cfg.Nonces == nil {
		panic("kmsapi: Config.Credentials and Config.Nonces are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	s := &Server{
		cfg:      cfg,
		log:      cfg.Logger,
		authz:    cfg.Authorizer,
		routes:   map[routeKey]Route{},
		versions: map[string]bool{},
	}
	if s.authz == nil {
		s.authz = rootOnly{}
	}
	for _, set := range routes {
		for _, rt := range set {
			k := routeKey{rt.Version, rt.Action}
			if _, dup := s.routes[k]; dup {
				panic(fmt.Sprintf("kmsapi: route %s %s registered twice", rt.Version, rt.Action))
			}
			if rt.Handler == nil {
				panic(fmt.Sprintf("kmsapi: route %s %s has no handler", rt.Version, rt.Action))
			}
			s.routes[k] = rt
			s.versions[rt.Version] = true
		}
	}
	return s
}

// rootOnly is the default Authorizer until access control is configured:
// the account root may do anything, every other principal nothing.
type rootOnly struct{}

func (rootOnly) Authorize(_ context.Context, p Principal, _, _ string, _ *Request) error {
	if p.Kind == "root" {
		return nil
	}
	return errs.E(errs.KindForbidden, "This operation is forbidden by permission system.")
}

// actionPrefix names the authorization namespace of an API version.
func actionPrefix(version string) string {
	switch version {
	case VersionRAM:
		return "ram:"
	case VersionKeyhold:
		return "keyhold:"
	}
	return "kms:"
}

type ctxKey struct{}

// RequestIDFrom returns the request id of the API call ctx belongs to.
func RequestIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(ctxKey{}).(string)
	return id
}

// apiCall is the state of one request, gathered for the response, the log
// line and the audit event.
type apiCall struct {
	start       time.Time
	id          string
	host        string
	xml         bool
	version     string
	action      string
	accessKeyID string
	principal   Principal
	resource    string
	authorized  bool
	sourceIP    string
	onBehalf    string
	params      Params
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/healthz":
		s.serveHealth(w, r)
		return
	case "/readyz":
		s.serveReady(w, r)
		return
	}
	c := &apiCall{
		start:    s.cfg.Now(),
		id:       newRequestID(),
		host:     r.Host,
		sourceIP: sourceIP(r),
	}
	// Known before anything is parsed, so early errors honour it too.
	c.xml = strings.EqualFold(r.URL.Query().Get("Format"), "XML")
	ctx := context.WithValue(r.Context(), ctxKey{}, c.id)

	var v any
	var err error
	if r.URL.Path != "/" {
		err = wireErr(ErrNotFound, "")
	} else {
		v, err = s.handle(ctx, c, r)
	}
	if st, ok := v.(*Stream); ok && err == nil {
		s.sendStream(ctx, w, c, st) // a raw body, audited around its writing
		return
	}
	status, code, body := s.render(c, v, err)
	if s.cfg.Audit != nil {
		if aerr := s.record(ctx, c, false, status, code); aerr != nil {
			// Fail closed: nothing leaves that the trail does not show.
			status, code, body = s.render(c, nil, aerr)
		}
	}
	s.send(w, c, status, code, body)
}

// handle runs one API call: parse, authenticate, route, authorize, invoke.
func (s *Server) handle(ctx context.Context, c *apiCall, r *http.Request) (any, error) {
	if r.Method != http.MethodPost && r.Method != http.MethodGet {
		return nil, wireErr(ErrUnsupportedHTTPMethod, "")
	}
	body, err := s.readBody(r)
	if err != nil {
		return nil, err
	}
	query, params, err := parseParams(r, body)
	if err != nil {
		return nil, err
	}
	c.params = params
	if f, ok := params["Format"]; ok {
		c.xml = strings.EqualFold(f, "XML")
	}
	if ob := r.Header.Get("x-keyhold-on-behalf-of"); ob != "" {
		if len(ob) > 256 || strings.ContainsFunc(ob, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return nil, errs.E(errs.KindInvalidParameter, "The header x-keyhold-on-behalf-of is not valid.")
		}
		c.onBehalf = ob
	}

	a, err := s.authenticate(ctx, r, body, query, params)
	c.accessKeyID, c.version, c.action = a.accessKeyID, a.version, a.action
	if err != nil {
		return nil, err
	}
	c.principal = a.principal

	if !s.versions[a.version] {
		return nil, wireErr(ErrInvalidVersion, "")
	}
	rt, ok := s.routes[routeKey{a.version, a.action}]
	if !ok {
		return nil, wireErr(ErrInvalidAction, "The specified action is not valid for API version "+a.version+".")
	}
	for _, name := range signatureParams {
		delete(params, name)
	}
	req := &Request{
		RequestID: c.id,
		Version:   a.version,
		Action:    a.action,
		Params:    params,
		Principal: a.principal,
		Region:    s.cfg.Region,
		SourceIP:  c.sourceIP,
		Secure:    r.TLS != nil,
		OnBehalf:  c.onBehalf,
	}
	c.resource = "*"
	if rt.Resource != nil {
		if res := rt.Resource(req); res != "" {
			c.resource = res
		}
	}
	if err := s.authz.Authorize(ctx, a.principal, actionPrefix(a.version)+a.action, c.resource, req); err != nil {
		return nil, err
	}
	c.authorized = true
	if s.cfg.Audit != nil && !readOnlyAction(a.action) {
		if err := s.record(ctx, c, true, 0, ""); err != nil {
			return nil, err
		}
	}
	return invokeHandler(ctx, rt.Handler, req)
}

// signatureParams are consumed by the wire layer and not shown to handlers.
var signatureParams = []string{"Signature", "SignatureMethod", "SignatureVersion", "SignatureNonce", "SignatureType", "AccessKeyId", "Timestamp"}

// errPanic carries a recovered handler panic to the log.
type errPanic struct {
	value any
	stack []byte
}

func (e *errPanic) Error() string { return fmt.Sprintf("handler panic: %v", e.value) }

func invokeHandler(ctx context.Context, h HandlerFunc, req *Request) (v any, err error) {
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			v, err = nil, &errPanic{value: p, stack: debug.Stack()}
		}
	}()
	return h(ctx, req)
}

// readBody reads the whole body once, refusing more than MaxBodyBytes
// before parsing any of it.
func (s *Server) readBody(r *http.Request) ([]byte, error) {
	limit := s.cfg.MaxBodyBytes
	if r.ContentLength > limit {
		return nil, wireErr(ErrBodyTooLarge, fmt.Sprintf("The request body exceeds %d bytes.", limit))
	}
	if r.Body == nil {
		return nil, nil
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, errs.Wrap(errs.KindInvalidParameter, err, "The request body cannot be read.")
	}
	if int64(len(b)) > limit {
		return nil, wireErr(ErrBodyTooLarge, fmt.Sprintf("The request body exceeds %d bytes.", limit))
	}
	return b, nil
}

// render builds the response to the result or the error: the status and
// code (for the audit record) and the body.
func (s *Server) render(c *apiCall, v any, err error) (int, string, []byte) {
	status, code := http.StatusOK, ""
	var body []byte
	if err == nil {
		var rerr error
		if c.xml {
			body, rerr = renderXML(c.action+"Response", c.id, v)
		} else {
			body, rerr = renderJSON(c.id, v)
		}
		if rerr != nil {
			err = fmt.Errorf("render %s response: %w", c.action, rerr)
		}
	}
	if err != nil {
		wc, internal := classify(err)
		status, code = wc.Status, wc.Code
		if internal {
			attrs := []any{"request_id", c.id, "action", c.action, "access_key_id", c.accessKeyID, "err", err}
			if p, ok := errors.AsType[*errPanic](err); ok {
				attrs = append(attrs, "stack", string(p.stack))
			}
			s.log.Error("api: internal failure", attrs...)
		}
		eb := errorFields{HostID: c.host, Code: wc.Code, Message: wc.Message}
		if c.xml {
			body, _ = renderXML("Error", c.id, eb)
		} else {
			body, _ = renderJSON(c.id, eb)
		}
	}
	return status, code, body
}

// send writes a rendered response.
func (s *Server) send(w http.ResponseWriter, c *apiCall, status int, code string, body []byte) {
	h := w.Header()
	h.Set("x-acs-request-id", c.id)
	// Responses may carry secret values: no cache may keep them.
	h.Set("Cache-Control", "no-store")
	if c.xml {
		h.Set("Content-Type", contentTypeXML)
	} else {
		h.Set("Content-Type", contentTypeJSON)
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
	s.log.Debug("api: request", "request_id", c.id, "action", c.action, "version", c.version,
		"access_key_id", c.accessKeyID, "status", status, "code", code, "duration", s.cfg.Now().Sub(c.start))
}

// newRequestID returns an upper-case UUID (version 4), the form Alibaba
// Cloud request ids take.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:], b[10:])
	return strings.ToUpper(string(out[:]))
}

// sourceIP is the peer address. Forwarded-for headers are not trusted:
// anyone can set them.
func sourceIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// CallMeta describes an in-process call's origin (the web console).
type CallMeta struct {
	SourceIP    string
	Secure      bool   // the caller reached the server over TLS
	AccessKeyID string // the key the session was opened with, if any
}

// Invoke runs one action as p without a signed request, through the same
// route, authorization and audit path as ServeHTTP: the console acts as
// its signed-in principal and its calls are recorded like API calls. The
// result is the handler's value; errors keep their kind (see ErrorInfo).
func (s *Server) Invoke(ctx context.Context, p Principal, version, action string, params Params, meta CallMeta) (any, error) {
	c := &apiCall{
		start: s.cfg.Now(), id: newRequestID(), sourceIP: meta.SourceIP,
		version: version, action: action, accessKeyID: meta.AccessKeyID, principal: p, params: params,
	}
	ctx = context.WithValue(ctx, ctxKey{}, c.id)
	v, err := s.invoke(ctx, c, meta, false)
	if err == nil {
		// Render as the wire would, so that a value that cannot be sent
		// fails here too.
		if _, rerr := renderJSON(c.id, v); rerr != nil {
			err = fmt.Errorf("render %s response: %w", action, rerr)
		}
	}
	status, code := http.StatusOK, ""
	if err != nil {
		wc, internal := classify(err)
		status, code = wc.Status, wc.Code
		if internal {
			s.log.Error("api: internal failure", "request_id", c.id, "action", action, "via", "console", "err", err)
		}
	}
	if s.cfg.Audit != nil {
		if aerr := s.record(ctx, c, false, status, code); aerr != nil {
			return nil, aerr
		}
	}
	return v, err
}

// Allowed asks the authorizer whether p may perform the action with these
// parameters, running nothing and recording nothing: the console uses it
// to offer only the controls (a value's reveal) the principal may use.
func (s *Server) Allowed(ctx context.Context, p Principal, version, action string, params Params, meta CallMeta) error {
	c := &apiCall{start: s.cfg.Now(), version: version, action: action, principal: p, params: params, sourceIP: meta.SourceIP}
	_, err := s.invoke(ctx, c, meta, true)
	return err
}

func (s *Server) invoke(ctx context.Context, c *apiCall, meta CallMeta, dryRun bool) (any, error) {
	rt, ok := s.routes[routeKey{c.version, c.action}]
	if !ok {
		return nil, wireErr(ErrInvalidAction, "The specified action is not valid for API version "+c.version+".")
	}
	req := &Request{
		RequestID: c.id, Version: c.version, Action: c.action, Params: c.params,
		Principal: c.principal, Region: s.cfg.Region, SourceIP: c.sourceIP, Secure: meta.Secure,
	}
	c.resource = "*"
	if rt.Resource != nil {
		if res := rt.Resource(req); res != "" {
			c.resource = res
		}
	}
	if err := s.authz.Authorize(ctx, c.principal, actionPrefix(c.version)+c.action, c.resource, req); err != nil {
		return nil, err
	}
	if dryRun {
		return nil, nil
	}
	c.authorized = true
	if s.cfg.Audit != nil && !readOnlyAction(c.action) {
		if err := s.record(ctx, c, true, 0, ""); err != nil {
			return nil, err
		}
	}
	return invokeHandler(ctx, rt.Handler, req)
}

// ErrorInfo is what the wire would answer for err: the HTTP status, the
// KMS error code and the message safe to show the caller.
func ErrorInfo(err error) (status int, code, message string) {
	wc, _ := classify(err)
	return wc.Status, wc.Code, wc.Message
}
