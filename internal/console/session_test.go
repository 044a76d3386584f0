package console

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold/internal/apicall"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func withCookie(v string) *http.Request {
	r := httptest.NewRequest("GET", "/console/", nil)
	r.AddCookie(&http.Cookie{Name: sessionCookie, Value: v})
	return r
}

func TestSessionIdleAndMaxLifetime(t *testing.T) {
	c := &clock{time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	st := newSessionStore(nil, nil, c.now, 15*time.Minute, time.Hour)
	id := mustCreate(t, st, apicall.Principal{Account: "1", Kind: "root", Name: "root"}, "AK")
	if st.get(withCookie("other")) != nil || st.get(httptest.NewRequest("GET", "/", nil)) != nil {
		t.Fatal("an unknown or missing cookie resolved to a session")
	}
	// Used every 10 minutes the session lives on, up to the maximum.
	for i := 0; i < 5; i++ {
		c.t = c.t.Add(10 * time.Minute)
		if st.get(withCookie(id)) == nil {
			t.Fatalf("session ended after %d uses", i)
		}
	}
	c.t = c.t.Add(11 * time.Minute) // 61 minutes after creation
	if st.get(withCookie(id)) != nil {
		t.Fatal("session outlived its maximum lifetime")
	}

	id = mustCreate(t, st, apicall.Principal{Account: "1", Kind: "root", Name: "root"}, "AK")
	c.t = c.t.Add(15*time.Minute + time.Second)
	if st.get(withCookie(id)) != nil {
		t.Fatal("session outlived its idle timeout")
	}

	id = mustCreate(t, st, apicall.Principal{Account: "1", Kind: "root", Name: "root"}, "AK")
	st.end(withCookie(id))
	if st.get(withCookie(id)) != nil {
		t.Fatal("session lives on after sign-out")
	}
}

func mustCreate(t *testing.T, st *sessionStore, p apicall.Principal, akid string) string {
	t.Helper()
	id, _, err := st.create(context.Background(), p, akid)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// Two replicas share one backend (the server gives each the deployment's
// storage): a browser signed in on one is served by the other, a message
// queued on one shows on the other, and a sign-out on either ends it.
func TestSessionsSharedAcrossReplicas(t *testing.T) {
	c := &clock{time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	be := &memorySessions{m: map[string][]byte{}}
	r1 := newSessionStore(be, nil, c.now, 15*time.Minute, time.Hour)
	r2 := newSessionStore(be, nil, c.now, 15*time.Minute, time.Hour)
	p := apicall.Principal{Account: "1", Kind: "user", Name: "alice"}
	id := mustCreate(t, r1, p, "")
	for k, v := range be.m {
		if strings.Contains(k+string(v), id) {
			t.Fatal("the cookie value is stored; only its hash may be")
		}
	}
	s1 := r1.get(withCookie(id))
	s2 := r2.get(withCookie(id))
	if s2 == nil || s2.principal != p || s2.csrf != s1.csrf {
		t.Fatalf("replica 2 sees %+v, want the session of replica 1", s2)
	}
	r1.addFlash(s1, "ok", "Created secret db")
	if f := r2.takeFlash(r2.get(withCookie(id))); len(f) != 1 || f[0].Text != "Created secret db" {
		t.Fatalf("flash on replica 2: %+v", f)
	}
	if f := r1.takeFlash(r1.get(withCookie(id))); len(f) != 0 {
		t.Fatalf("a taken message shows again: %+v", f)
	}
	// Use on one replica keeps the session alive on the other.
	for range 3 {
		c.t = c.t.Add(10 * time.Minute)
		if r1.get(withCookie(id)) == nil {
			t.Fatal("session ended while in use")
		}
	}
	if r2.get(withCookie(id)) == nil {
		t.Fatal("replica 2 timed out a session replica 1 kept in use")
	}
	if err := r2.end(withCookie(id)); err != nil {
		t.Fatal(err)
	}
	if r1.get(withCookie(id)) != nil {
		t.Fatal("signed out on replica 2, still signed in on replica 1")
	}
}

func TestExpiredSessionsAreSwept(t *testing.T) {
	c := &clock{time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	be := &memorySessions{m: map[string][]byte{}}
	st := newSessionStore(be, nil, c.now, 15*time.Minute, time.Hour)
	for range 5 {
		mustCreate(t, st, apicall.Principal{Account: "1", Kind: "root", Name: "root"}, "AK")
	}
	c.t = c.t.Add(20 * time.Minute) // all five idle too long; a sweep is due
	live := mustCreate(t, st, apicall.Principal{Account: "1", Kind: "root", Name: "root"}, "AK")
	if len(be.m) != 1 || st.get(withCookie(live)) == nil {
		t.Fatalf("%d sessions stored after the sweep, want only the new one", len(be.m))
	}
}

// A backend that fails sends the browser to sign in (fails closed) and a
// sign-in that cannot be stored is refused.
func TestSessionBackendFailure(t *testing.T) {
	c := &clock{time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	be := &failingSessions{memorySessions: memorySessions{m: map[string][]byte{}}}
	st := newSessionStore(be, nil, c.now, 15*time.Minute, time.Hour)
	id := mustCreate(t, st, apicall.Principal{Account: "1", Kind: "root", Name: "root"}, "AK")
	be.fail = true
	if st.get(withCookie(id)) != nil {
		t.Fatal("a session was served while its backend fails")
	}
	if _, _, err := st.create(context.Background(), apicall.Principal{Account: "1"}, ""); err == nil {
		t.Fatal("a session was created while its backend fails")
	}
	be.fail = false
	if st.get(withCookie(id)) == nil {
		t.Fatal("the session is lost after the backend recovered")
	}
}

type failingSessions struct {
	memorySessions
	fail bool
}

func (f *failingSessions) LoadSession(ctx context.Context, key string) ([]byte, error) {
	if f.fail {
		return nil, errors.New("storage unavailable")
	}
	return f.memorySessions.LoadSession(ctx, key)
}

func (f *failingSessions) SaveSession(ctx context.Context, key string, rec []byte) error {
	if f.fail {
		return errors.New("storage unavailable")
	}
	return f.memorySessions.SaveSession(ctx, key, rec)
}

func TestLimiterWindow(t *testing.T) {
	c := &clock{time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	l := newLimiter(c.now, 15*time.Minute)
	for i := 0; i < 3; i++ {
		if b, _ := l.blocked("name:a", 3); b {
			t.Fatalf("blocked after %d failures", i)
		}
		l.fail("name:a")
		c.t = c.t.Add(time.Minute)
	}
	b, wait := l.blocked("name:a", 3)
	if !b || wait <= 0 || wait > 15*time.Minute {
		t.Fatalf("after 3 failures: blocked=%v wait=%v", b, wait)
	}
	if b, _ := l.blocked("name:b", 3); b {
		t.Fatal("another name is blocked")
	}
	c.t = c.t.Add(13 * time.Minute) // the first failure left the window
	if b, _ := l.blocked("name:a", 3); b {
		t.Fatal("still blocked after the oldest failure left the window")
	}
	l.fail("name:a")
	l.reset("name:a")
	if b, _ := l.blocked("name:a", 1); b {
		t.Fatal("blocked after reset")
	}
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"/console/secrets?q=a": "/console/secrets?q=a",
		"https://evil.example": Prefix,
		"//evil.example/x":     Prefix,
		"/console/\\evil":      Prefix,
		"":                     Prefix,
		"/elsewhere":           Prefix,
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSameOrigin(t *testing.T) {
	for origin, want := range map[string]bool{"": true, "null": true, "https://kh.example:8443": true, "https://evil.example": false} {
		r := httptest.NewRequest("POST", "https://kh.example:8443/console/signout", nil)
		if origin != "" {
			r.Header.Set("Origin", origin)
		}
		if got := sameOrigin(r); got != want {
			t.Errorf("sameOrigin(Origin %q) = %v", origin, got)
		}
	}
}

func TestRelTime(t *testing.T) {
	now := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]string{
		"2026-01-10T11:59:50Z": "just now",
		"2026-01-10T11:00:00Z": "1 hour ago",
		"2026-01-10T11:55:00Z": "5 minutes ago",
		"2026-01-17T12:00:00Z": "in 7 days",
		"not a time":           "not a time",
	} {
		if got := relTime(in, now); got != want {
			t.Errorf("relTime(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPlainHTTPRefusedUnlessAllowed(t *testing.T) {
	c, err := New(Config{API: nilAPI{}, Identities: nilIDs{}})
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	c.ServeHTTP(w, httptest.NewRequest("GET", "http://kh.example/console/signin", nil))
	if w.Code != http.StatusNotFound {
		t.Fatalf("plain HTTP without AllowPlain: %d", w.Code)
	}
	c.cfg.AllowPlain = true
	w = httptest.NewRecorder()
	c.ServeHTTP(w, httptest.NewRequest("GET", "http://127.0.0.1/console/signin", nil))
	if w.Code != http.StatusOK {
		t.Fatalf("plain HTTP with AllowPlain: %d", w.Code)
	}
}
