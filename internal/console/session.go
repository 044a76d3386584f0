package console

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/keyhold/keyhold/internal/apicall"
)

const (
	sessionCookie = "kh_session"
	signinCookie  = "kh_signin" // double-submit token of the sign-in form
	// touchEvery bounds how often a session's last use is written back: a
	// page view costs a storage write at most once a minute per session.
	touchEvery = time.Minute
	// pruneEvery is how often expired sessions are swept (at a sign-in).
	pruneEvery = 5 * time.Minute
)

// SessionBackend keeps session records, keyed by the SHA-256 of the cookie
// (the cookie itself is never stored). The server keeps them in the
// deployment's storage so that any replica serves any browser; without one
// they live in this process's memory.
type SessionBackend interface {
	LoadSession(ctx context.Context, key string) ([]byte, error) // nil, nil when absent
	SaveSession(ctx context.Context, key string, rec []byte) error
	DeleteSession(ctx context.Context, key string) error
	// ListSessions calls fn for every record (to sweep expired ones).
	ListSessions(ctx context.Context, fn func(key string, rec []byte)) error
}

// session is one signed-in browser. It holds no secret: the principal's
// name and account, the CSRF token bound to it, and pending messages.
type session struct {
	key         string // backend key, not stored
	principal   apicall.Principal
	accessKeyID string // set when the root signed in with its key pair
	csrf        string
	created     time.Time
	lastSeen    time.Time
	flash       []flash
}

// sessionRecord is session as stored.
type sessionRecord struct {
	Principal   apicall.Principal `json:"principal"`
	AccessKeyID string            `json:"akid,omitempty"`
	CSRF        string            `json:"csrf"`
	Created     time.Time         `json:"created"`
	LastSeen    time.Time         `json:"seen"`
	Flash       []flash           `json:"flash,omitempty"`
}

type flash struct {
	Kind string // "ok" or "error"
	Text string
}

type sessionStore struct {
	be   SessionBackend
	log  *slog.Logger
	now  func() time.Time
	idle time.Duration
	max  time.Duration

	mu        sync.Mutex
	lastPrune time.Time
}

func newSessionStore(be SessionBackend, log *slog.Logger, now func() time.Time, idle, max time.Duration) *sessionStore {
	if be == nil {
		be = &memorySessions{m: map[string][]byte{}}
	}
	if log == nil {
		log = slog.Default()
	}
	return &sessionStore{be: be, log: log, now: now, idle: idle, max: max, lastPrune: now()}
}

func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func sessionKey(cookie string) string {
	k := sha256.Sum256([]byte(cookie))
	return hex.EncodeToString(k[:])
}

func (st *sessionStore) save(ctx context.Context, s *session) error {
	b, err := json.Marshal(sessionRecord{s.principal, s.accessKeyID, s.csrf, s.created, s.lastSeen, s.flash})
	if err != nil {
		return err
	}
	return st.be.SaveSession(ctx, s.key, b)
}

// create opens a session and returns the cookie value.
func (st *sessionStore) create(ctx context.Context, p apicall.Principal, accessKeyID string) (string, *session, error) {
	id := randomToken()
	now := st.now()
	s := &session{key: sessionKey(id), principal: p, accessKeyID: accessKeyID, csrf: randomToken(), created: now, lastSeen: now}
	if err := st.save(ctx, s); err != nil {
		return "", nil, err
	}
	st.mu.Lock()
	due := now.Sub(st.lastPrune) >= pruneEvery
	if due {
		st.lastPrune = now
	}
	st.mu.Unlock()
	if due {
		st.prune(ctx, now)
	}
	return id, s, nil
}

// prune deletes expired sessions; a failure only delays the sweep.
func (st *sessionStore) prune(ctx context.Context, now time.Time) {
	var dead []string
	err := st.be.ListSessions(ctx, func(key string, b []byte) {
		var rec sessionRecord
		if json.Unmarshal(b, &rec) != nil || st.expired(rec.Created, rec.LastSeen, now) {
			dead = append(dead, key)
		}
	})
	for _, k := range dead {
		if err == nil {
			err = st.be.DeleteSession(ctx, k)
		}
	}
	if err != nil {
		st.log.Warn("console: sweeping expired sessions failed", "err", err)
	}
}

func (st *sessionStore) expired(created, lastSeen, now time.Time) bool {
	return now.Sub(lastSeen) > st.idle || now.Sub(created) > st.max
}

// get returns the request's live session and marks it used.
func (st *sessionStore) get(r *http.Request) *session {
	ck, err := r.Cookie(sessionCookie)
	if err != nil || ck.Value == "" {
		return nil
	}
	ctx, key, now := r.Context(), sessionKey(ck.Value), st.now()
	b, err := st.be.LoadSession(ctx, key)
	if err != nil {
		// Fails closed: the browser is sent to sign in.
		st.log.Warn("console: reading a session failed", "err", err)
		return nil
	}
	if b == nil {
		return nil
	}
	var rec sessionRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		st.log.Warn("console: a stored session cannot be read", "err", err)
		return nil
	}
	if st.expired(rec.Created, rec.LastSeen, now) {
		_ = st.be.DeleteSession(ctx, key)
		return nil
	}
	s := &session{key: key, principal: rec.Principal, accessKeyID: rec.AccessKeyID, csrf: rec.CSRF,
		created: rec.Created, lastSeen: rec.LastSeen, flash: rec.Flash}
	if now.Sub(s.lastSeen) >= touchEvery {
		s.lastSeen = now
		if err := st.save(ctx, s); err != nil {
			st.log.Warn("console: recording a session's use failed", "err", err)
		}
	}
	return s
}

func (st *sessionStore) end(r *http.Request) error {
	ck, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil
	}
	return st.be.DeleteSession(r.Context(), sessionKey(ck.Value))
}

// addFlash queues a message for the session's next page, which may be
// served by another replica.
func (st *sessionStore) addFlash(s *session, kind, text string) {
	s.flash = append(s.flash, flash{kind, text})
	st.persist(s)
}

func (st *sessionStore) takeFlash(s *session) []flash {
	f := s.flash
	if len(f) == 0 {
		return nil
	}
	s.flash = nil
	st.persist(s)
	return f
}

// persist writes a changed session back. The page handlers that change it
// have already acted, so a failure costs only the message: log it.
func (st *sessionStore) persist(s *session) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := st.save(ctx, s); err != nil {
		st.log.Warn("console: saving a session failed", "err", err)
	}
}

// memorySessions is the backend without storage: this process's memory.
type memorySessions struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (m *memorySessions) LoadSession(_ context.Context, key string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.m[key], nil
}

func (m *memorySessions) SaveSession(_ context.Context, key string, rec []byte) error {
	m.mu.Lock()
	m.m[key] = rec
	m.mu.Unlock()
	return nil
}

func (m *memorySessions) DeleteSession(_ context.Context, key string) error {
	m.mu.Lock()
	delete(m.m, key)
	m.mu.Unlock()
	return nil
}

func (m *memorySessions) ListSessions(_ context.Context, fn func(string, []byte)) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, v := range m.m {
		fn(k, v)
	}
	return nil
}

// limiter counts failed sign-ins per key within a sliding window.
type limiter struct {
	mu     sync.Mutex
	now    func() time.Time
	window time.Duration
	fails  map[string][]time.Time
}

func newLimiter(now func() time.Time, window time.Duration) *limiter {
	return &limiter{now: now, window: window, fails: map[string][]time.Time{}}
}

// blocked reports whether key has limit failures within the window, and
// when the oldest of them leaves it.
func (l *limiter) blocked(key string, limit int) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ts := l.recentLocked(key)
	if len(ts) < limit {
		return false, 0
	}
	return true, ts[0].Add(l.window).Sub(l.now())
}

func (l *limiter) recentLocked(key string) []time.Time {
	cut := l.now().Add(-l.window)
	ts := l.fails[key]
	i := 0
	for i < len(ts) && !ts[i].After(cut) {
		i++
	}
	ts = ts[i:]
	if len(ts) == 0 {
		delete(l.fails, key)
	} else {
		l.fails[key] = ts
	}
	return ts
}

func (l *limiter) fail(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.fails) > 100000 {
		// Bound memory under a spray of names: forget the old entries.
		for k := range l.fails {
			l.recentLocked(k)
		}
	}
	l.fails[key] = append(l.recentLocked(key), l.now())
}

func (l *limiter) reset(key string) {
	l.mu.Lock()
	delete(l.fails, key)
	l.mu.Unlock()
}

// signinPage shows the form; a signed-in browser goes to the console.
func (c *Console) signinPage(w http.ResponseWriter, r *http.Request) {
	if c.sessions.get(r) != nil {
		http.Redirect(w, r, Prefix, http.StatusSeeOther)
		return
	}
	c.renderSignin(w, r, http.StatusOK, "", "")
}

func (c *Console) renderSignin(w http.ResponseWriter, r *http.Request, status int, login, msg string) {
	tok := randomToken()
	http.SetCookie(w, &http.Cookie{Name: signinCookie, Value: tok, Path: Prefix, HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode, MaxAge: 3600})
	c.render(w, r, status, "signin", nil, map[string]any{
		"Title": "Sign in", "Login": login, "Error": msg, "SigninToken": tok, "Next": safeNext(r.FormValue("next")),
	})
}

// safeNext keeps a post-sign-in redirect inside the console.
func safeNext(n string) string {
	if !strings.HasPrefix(n, Prefix) || strings.HasPrefix(n, "//") || strings.ContainsAny(n, "\\\r\n") {
		return Prefix
	}
	return n
}

func (c *Console) signin(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "The form cannot be read.", http.StatusBadRequest)
		return
	}
	ck, err := r.Cookie(signinCookie)
	tok := r.PostForm.Get("csrf")
	if err != nil || tok == "" || subtle.ConstantTimeCompare([]byte(ck.Value), []byte(tok)) != 1 {
		http.Error(w, "The sign-in form's security token is missing or stale; reload the page.", http.StatusForbidden)
		return
	}
	login := strings.TrimSpace(r.PostForm.Get("login"))
	password := r.PostForm.Get("password")
	ip := clientIP(r)
	nameKey, ipKey := "name:"+strings.ToLower(login), "ip:"+ip
	for _, k := range []struct {
		key   string
		limit int
	}{{nameKey, c.cfg.FailLimit}, {ipKey, 4 * c.cfg.FailLimit}} {
		if blocked, wait := c.limiter.blocked(k.key, k.limit); blocked {
			c.log.Warn("console: sign-in refused, too many failures", "login", login, "ip", ip)
			c.renderSignin(w, r, http.StatusTooManyRequests, login,
				fmt.Sprintf("Too many failed sign-ins. Try again in %s.", roundUp(wait)))
			return
		}
	}
	if login == "" || password == "" {
		c.renderSignin(w, r, http.StatusBadRequest, login, "Enter your user name and password.")
		return
	}
	p, keyID, ok := c.verify(r, login, password)
	if !ok {
		c.limiter.fail(nameKey)
		c.limiter.fail(ipKey)
		c.log.Info("console: failed sign-in", "login", login, "ip", ip)
		c.renderSignin(w, r, http.StatusUnauthorized, login, "The user name or password is not correct.")
		return
	}
	c.limiter.reset(nameKey)
	id, _, err := c.sessions.create(r.Context(), p, keyID)
	if err != nil {
		c.log.Error("console: a session cannot be stored", "err", err)
		c.renderSignin(w, r, http.StatusServiceUnavailable, login, "The console cannot sign you in right now; try again shortly.")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: id, Path: Prefix, HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	http.SetCookie(w, &http.Cookie{Name: signinCookie, Value: "", Path: Prefix, MaxAge: -1})
	c.log.Info("console: signed in", "account", p.Account, "principal", p.Kind+"/"+p.Name, "ip", ip)
	http.Redirect(w, r, safeNext(r.PostForm.Get("next")), http.StatusSeeOther)
}

// verify checks a user's console password, or the root's access key pair
// (the root has no console password of its own).
func (c *Console) verify(r *http.Request, login, password string) (apicall.Principal, string, bool) {
	if !strings.Contains(login, "@") {
		p, secret, err := c.cfg.Identities.LookupAccessKey(r.Context(), login)
		if err == nil {
			if p.Kind == "root" && subtle.ConstantTimeCompare([]byte(secret), []byte(password)) == 1 {
				return p, login, true
			}
			// A user's access key is for the API, not the console.
			return apicall.Principal{}, "", false
		}
	}
	p, err := c.cfg.Identities.VerifyLogin(r.Context(), login, password)
	if err != nil {
		return apicall.Principal{}, "", false
	}
	return p, "", true
}

func roundUp(d time.Duration) string {
	if d < time.Minute {
		return "a minute"
	}
	m := int((d + time.Minute - 1) / time.Minute)
	return fmt.Sprintf("%d minutes", m)
}

func (c *Console) signout(w http.ResponseWriter, r *http.Request, s *session) {
	if err := c.sessions.end(r); err != nil {
		c.log.Error("console: a session could not be deleted at sign-out (it ends at its idle timeout)", "err", err)
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: Prefix, MaxAge: -1, HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	c.log.Info("console: signed out", "principal", s.principal.Kind+"/"+s.principal.Name)
	http.Redirect(w, r, Prefix+"signin", http.StatusSeeOther)
}
