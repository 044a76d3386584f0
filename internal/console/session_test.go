package console

import (
	"net/http"
	"net/http/httptest"
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
	st := newSessionStore(c.now, 15*time.Minute, time.Hour)
	id, _ := st.create(apicall.Principal{Account: "1", Kind: "root", Name: "root"}, "AK")
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

	id, _ = st.create(apicall.Principal{Account: "1", Kind: "root", Name: "root"}, "AK")
	c.t = c.t.Add(15*time.Minute + time.Second)
	if st.get(withCookie(id)) != nil {
		t.Fatal("session outlived its idle timeout")
	}

	id, _ = st.create(apicall.Principal{Account: "1", Kind: "root", Name: "root"}, "AK")
	st.end(withCookie(id))
	if st.get(withCookie(id)) != nil {
		t.Fatal("session lives on after sign-out")
	}
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
