// Package console is Keyhold's web console: server-rendered pages under
// /console/ for every operator workflow. It holds no business rules and
// touches no storage: every action is dispatched into the API server as the
// signed-in principal (kmsapi.Server.Invoke), so the console is authorized
// and audited exactly like a signed API call. Its own concerns are the
// browser's: sign-in and sessions, CSRF, security headers and pages.
package console

import (
	"context"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/keyhold/keyhold/internal/apicall"
	"github.com/keyhold/keyhold/internal/errs"
	"github.com/keyhold/keyhold/internal/kmsapi"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Prefix is where the console is mounted.
const Prefix = "/console/"

// API is what the console needs of the API server: run an action as a
// principal (authorized and audited), or only ask whether it would be
// allowed. *kmsapi.Server implements it.
type API interface {
	Invoke(ctx context.Context, p apicall.Principal, version, action string, params apicall.Params, meta kmsapi.CallMeta) (any, error)
	Allowed(ctx context.Context, p apicall.Principal, version, action string, params apicall.Params, meta kmsapi.CallMeta) error
}

// Identities checks sign-in credentials.
type Identities interface {
	// VerifyLogin checks a user's console password; login is "name" or
	// "name@account".
	VerifyLogin(ctx context.Context, login, password string) (apicall.Principal, error)
	// LookupAccessKey resolves an access key (the root signs in with its
	// access key pair).
	LookupAccessKey(ctx context.Context, accessKeyID string) (apicall.Principal, string, error)
}

// Config configures the console.
type Config struct {
	API        API
	Identities Identities
	// AllowPlain serves the console on plain HTTP too; the server sets it
	// only while the plain listener is bound to loopback.
	AllowPlain bool
	// AgentServer is the endpoint shown in the enrollment command.
	AgentServer string
	Logger      *slog.Logger
	Now         func() time.Time
	// IdleTimeout ends a session unused this long (default 15m);
	// MaxSession bounds any session (default 12h).
	IdleTimeout, MaxSession time.Duration
	// FailLimit failed sign-ins per name, and 4× that per IP, within
	// FailWindow lock further attempts until the window passes (defaults
	// 5 and 15m).
	FailLimit  int
	FailWindow time.Duration
	// Sessions keeps sign-in sessions; nil keeps them in memory (one
	// replica only: a browser served by another replica signs in again).
	Sessions SessionBackend
}

// Console is the /console/ handler.
type Console struct {
	cfg      Config
	log      *slog.Logger
	pages    map[string]*template.Template
	sessions *sessionStore
	limiter  *limiter
	mux      *http.ServeMux
	static   http.Handler
}

// New builds the console.
func New(cfg Config) (*Console, error) {
	if cfg.API == nil || cfg.Identities == nil {
		return nil, errors.New("console: API and Identities are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 15 * time.Minute
	}
	if cfg.MaxSession <= 0 {
		cfg.MaxSession = 12 * time.Hour
	}
	if cfg.FailLimit <= 0 {
		cfg.FailLimit = 5
	}
	if cfg.FailWindow <= 0 {
		cfg.FailWindow = 15 * time.Minute
	}
	c := &Console{
		cfg:      cfg,
		log:      cfg.Logger,
		sessions: newSessionStore(cfg.Sessions, cfg.Logger, cfg.Now, cfg.IdleTimeout, cfg.MaxSession),
		limiter:  newLimiter(cfg.Now, cfg.FailWindow),
	}
	var err error
	if c.pages, err = parseTemplates(cfg.Now); err != nil {
		return nil, err
	}
	sub, _ := fs.Sub(staticFS, "static")
	c.static = http.StripPrefix(Prefix+"static/", http.FileServerFS(sub))
	c.routes()
	return c, nil
}

func (c *Console) routes() {
	m := http.NewServeMux()
	m.HandleFunc("GET /console/{$}", c.authed(c.home))
	m.HandleFunc("GET /console/signin", c.signinPage)
	m.HandleFunc("POST /console/signin", c.signin)
	m.HandleFunc("POST /console/signout", c.authed(c.signout))

	m.HandleFunc("GET /console/secrets", c.authed(c.secretsList))
	m.HandleFunc("GET /console/secrets/new", c.authed(c.secretNewPage))
	m.HandleFunc("POST /console/secrets/new", c.authed(c.secretCreate))
	m.HandleFunc("GET /console/secrets/new-ecs", c.authed(c.secretNewECSPage))
	m.HandleFunc("POST /console/secrets/new-ecs", c.authed(c.secretCreateECS))
	m.HandleFunc("POST /console/secrets/tags", c.authed(c.secretsTags))
	// Secret names may hold "/": the name is the rest of the path.
	m.HandleFunc("GET /console/secrets/{name...}", c.authed(c.secretDetail))
	m.HandleFunc("POST /console/secret/{op}/{name...}", c.authed(c.secretOp))

	m.HandleFunc("GET /console/keys", c.authed(c.keysList))
	m.HandleFunc("POST /console/keys/new", c.authed(c.keyCreate))
	m.HandleFunc("GET /console/keys/{id}", c.authed(c.keyDetail))
	m.HandleFunc("POST /console/keys/{id}/{op}", c.authed(c.keyOp))

	m.HandleFunc("GET /console/hosts", c.authed(c.hostsList))
	m.HandleFunc("POST /console/hosts/token", c.authed(c.hostToken))
	m.HandleFunc("POST /console/hosts/{id}/remove", c.authed(c.hostRemove))

	m.HandleFunc("GET /console/rotations", c.authed(c.rotationsList))
	m.HandleFunc("GET /console/rotations/{id}", c.authed(c.rotationDetail))

	m.HandleFunc("GET /console/identities", c.authed(c.identities))
	m.HandleFunc("POST /console/identities/{op}", c.authed(c.identityOp))
	m.HandleFunc("GET /console/identities/users/{name}", c.authed(c.userDetail))
	m.HandleFunc("GET /console/identities/policies/{name}", c.authed(c.policyDetail))

	m.HandleFunc("GET /console/audit", c.authed(c.auditList))
	m.HandleFunc("POST /console/audit/verify", c.authed(c.auditVerify))
	m.HandleFunc("GET /console/audit/export", c.authed(c.auditExport))
	c.mux = m
}

// ServeHTTP serves /console/ with the security headers every answer gets.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.TLS == nil && !c.cfg.AllowPlain {
		// Session cookies and secret values never cross plain HTTP off
		// the machine.
		http.Error(w, "The console is served over https only.", http.StatusNotFound)
		return
	}
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "+
		"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	// same-origin, not no-referrer: with no-referrer browsers send
	// "Origin: null" on form posts, which hides a cross-site post.
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	if r.URL.Path == "/console" {
		http.Redirect(w, r, Prefix, http.StatusSeeOther)
		return
	}
	if strings.HasPrefix(r.URL.Path, Prefix+"static/") {
		h.Set("Cache-Control", "public, max-age=300")
		c.static.ServeHTTP(w, r)
		return
	}
	// Pages may show secret values and one-time credentials.
	h.Set("Cache-Control", "no-store")
	if r.Method == http.MethodPost && !sameOrigin(r) {
		http.Error(w, "Cross-origin form posts are refused.", http.StatusForbidden)
		return
	}
	c.mux.ServeHTTP(w, r)
}

// sameOrigin refuses a POST whose Origin header names another site (a
// second line behind the CSRF token; browsers send Origin on form posts).
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" || o == "null" {
		// Not decisive (privacy settings send "null"); the token decides.
		return true
	}
	u, err := url.Parse(o)
	return err == nil && strings.EqualFold(u.Host, r.Host)
}

// handlerFunc is a page handler for a signed-in session.
type handlerFunc func(w http.ResponseWriter, r *http.Request, s *session)

// authed resolves the session (or sends the browser to sign in) and, for a
// POST, checks the CSRF token bound to the session.
func (c *Console) authed(h handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s := c.sessions.get(r)
		if s == nil {
			if r.Method != http.MethodGet {
				http.Error(w, "Your session has ended; sign in again.", http.StatusUnauthorized)
				return
			}
			http.Redirect(w, r, Prefix+"signin?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, 256<<10)
			if err := r.ParseForm(); err != nil {
				http.Error(w, "The form cannot be read.", http.StatusBadRequest)
				return
			}
			if tok := r.PostForm.Get("csrf"); tok == "" || subtle.ConstantTimeCompare([]byte(tok), []byte(s.csrf)) != 1 {
				http.Error(w, "The form's security token is missing or stale; reload the page and try again.", http.StatusForbidden)
				return
			}
		}
		h(w, r, s)
	}
}

// call runs an API action as the session's principal and decodes the
// wire-shaped result into out (when non-nil).
func (c *Console) call(r *http.Request, s *session, version, action string, params map[string]string, out any) error {
	if params == nil {
		params = map[string]string{}
	}
	v, err := c.cfg.API.Invoke(r.Context(), s.principal, version, action, params, c.meta(r, s))
	if err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

// allowed asks, without running or recording anything, whether the
// principal may perform the action.
func (c *Console) allowed(r *http.Request, s *session, version, action string, params map[string]string) bool {
	return c.cfg.API.Allowed(r.Context(), s.principal, version, action, params, c.meta(r, s)) == nil
}

func (c *Console) meta(r *http.Request, s *session) kmsapi.CallMeta {
	return kmsapi.CallMeta{SourceIP: clientIP(r), Secure: r.TLS != nil, AccessKeyID: s.accessKeyID}
}

// errText is the message a refused or failed action shows: the API's own
// code and message, never an internal detail.
func errText(err error) string {
	if err == nil {
		return ""
	}
	_, code, msg := kmsapi.ErrorInfo(err)
	if code == "" {
		return msg
	}
	return code + ": " + msg
}

// isKind reports whether err is of the domain kind (for "not found" pages).
func isKind(err error, k errs.Kind) bool { return errs.Is(err, k) }

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func errInfo(err error) (int, string, string) { return kmsapi.ErrorInfo(err) }

func urlEscape(s string) string { return url.QueryEscape(s) }
