package console

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/keyhold/keyhold/internal/apicall"
)

const (
	sessionCookie = "kh_session"
	signinCookie  = "kh_signin" // double-submit token of the sign-in form
	maxSessions   = 10000
)

// session is one signed-in browser. Sessions live in this replica's memory:
// a restart (or a request served by another replica) signs the user out,
// which errs on the safe side.
type session struct {
	principal   apicall.Principal
	accessKeyID string // set when the root signed in with its key pair
	csrf        string
	created     time.Time
	lastSeen    time.Time
	flash       []flash
}

type flash struct {
	Kind string // "ok" or "error"
	Text string
}

type sessionStore struct {
	mu       sync.Mutex
	now      func() time.Time
	idle     time.Duration
	max      time.Duration
	sessions map[[32]byte]*session // by SHA-256 of the cookie value
}

func newSessionStore(now func() time.Time, idle, max time.Duration) *sessionStore {
	return &sessionStore{now: now, idle: idle, max: max, sessions: map[[32]byte]*session{}}
}

func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// create opens a session and returns the cookie value.
func (st *sessionStore) create(p apicall.Principal, accessKeyID string) (string, *session) {
	id := randomToken()
	now := st.now()
	s := &session{principal: p, accessKeyID: accessKeyID, csrf: randomToken(), created: now, lastSeen: now}
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.sessions) >= maxSessions {
		st.pruneLocked(now)
	}
	st.sessions[sha256.Sum256([]byte(id))] = s
	return id, s
}

func (st *sessionStore) pruneLocked(now time.Time) {
	for k, s := range st.sessions {
		if st.expired(s, now) {
			delete(st.sessions, k)
		}
	}
}

func (st *sessionStore) expired(s *session, now time.Time) bool {
	return now.Sub(s.lastSeen) > st.idle || now.Sub(s.created) > st.max
}

// get returns the request's live session and marks it used.
func (st *sessionStore) get(r *http.Request) *session {
	ck, err := r.Cookie(sessionCookie)
	if err != nil || ck.Value == "" {
		return nil
	}
	k := sha256.Sum256([]byte(ck.Value))
	now := st.now()
	st.mu.Lock()
	defer st.mu.Unlock()
	s := st.sessions[k]
	if s == nil {
		return nil
	}
	if st.expired(s, now) {
		delete(st.sessions, k)
		return nil
	}
	s.lastSeen = now
	return s
}

func (st *sessionStore) end(r *http.Request) {
	if ck, err := r.Cookie(sessionCookie); err == nil {
		st.mu.Lock()
		delete(st.sessions, sha256.Sum256([]byte(ck.Value)))
		st.mu.Unlock()
	}
}

func (st *sessionStore) addFlash(s *session, kind, text string) {
	st.mu.Lock()
	s.flash = append(s.flash, flash{kind, text})
	st.mu.Unlock()
}

func (st *sessionStore) takeFlash(s *session) []flash {
	st.mu.Lock()
	defer st.mu.Unlock()
	f := s.flash
	s.flash = nil
	return f
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
	id, _ := c.sessions.create(p, keyID)
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
	c.sessions.end(r)
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: Prefix, MaxAge: -1, HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	c.log.Info("console: signed out", "principal", s.principal.Kind+"/"+s.principal.Name)
	http.Redirect(w, r, Prefix+"signin", http.StatusSeeOther)
}
