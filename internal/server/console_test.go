package server_test

// These tests drive the web console in a real headless Chromium (Debian's
// chromium package, installed by .ci/run) against a server started in the
// test, over https. With KEYHOLD_SCREENSHOTS=<dir> they also write PNG
// screenshots of the main pages there (docs/screenshots/ in the repository;
// see docs/console.md).

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// chromiumPath finds the browser; without one the test is skipped, except
// under CI, where a missing browser is a broken set-up.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed (.ci/run installs Debian's chromium package)")
	}
	t.Skip("chromium is not installed; apt-get install -y chromium")
	return ""
}

// browser is one headless Chromium tab with its own profile.
type browser struct {
	t    *testing.T
	ctx  context.Context
	base string // https://127.0.0.1:port/console
	shot string // screenshot directory, "" for none
}

func newBrowser(t *testing.T, base string) *browser {
	t.Helper()
	exe := chromiumPath(t)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(exe),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		// The server's certificate is issued by the deployment CA the
		// test created; the browser does not know it.
		chromedp.IgnoreCertErrors,
		chromedp.WindowSize(1280, 900),
		chromedp.UserDataDir(t.TempDir()),
	)
	ctx, cancelC := chromedp.NewContext(actx)
	ctx, cancelT := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() { cancelT(); cancelC(); cancelA() })
	return &browser{t: t, ctx: ctx, base: base, shot: os.Getenv("KEYHOLD_SCREENSHOTS")}
}

func (b *browser) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.t.Fatalf("browser: %v (at %s)", err, b.location())
	}
}

func (b *browser) location() string {
	ctx, cancel := context.WithTimeout(b.ctx, 2*time.Second)
	defer cancel()
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	return loc
}

func (b *browser) open(path string) { b.t.Helper(); b.do(chromedp.Navigate(b.base + path)) }

// until waits for a JavaScript condition on the page to hold.
func (b *browser) until(expr string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 45*time.Second)
	defer cancel()
	for {
		_, err := chromedp.Run(ctx, chromedp.Poll[bool](expr))
		if err == nil {
			return
		}
		// A poll started before a form's navigation ends with it; poll
		// again on the new page.
		if ctx.Err() == nil && (strings.Contains(err.Error(), "navigated") || strings.Contains(err.Error(), "Cannot find context")) {
			continue
		}
		body, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string]("document.body ? document.body.innerText : ''"))
		b.t.Fatalf("waiting for %s: %v\nat %s:\n%s", expr, err, b.location(), body)
	}
}

// eval returns the value of a JavaScript expression.
func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

func (b *browser) text(sel string) string {
	return eval[string](b, fmt.Sprintf("(document.querySelector(%q)||{}).textContent||''", sel))
}

func (b *browser) exists(sel string) bool {
	return eval[bool](b, fmt.Sprintf("document.querySelector(%q) !== null", sel))
}

func (b *browser) fill(sel, value string) {
	b.t.Helper()
	b.do(chromedp.SetValue(chromedp.CSS(sel), value))
}

func (b *browser) click(sel string) {
	b.t.Helper()
	b.do(chromedp.Click(chromedp.CSS(sel)))
}

// screenshot saves the page as <name>.png when screenshots are on.
func (b *browser) screenshot(name string) {
	b.t.Helper()
	if b.shot == "" {
		return
	}
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(b.shot, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

func (b *browser) signIn(login, password string) {
	b.t.Helper()
	b.open("/")
	b.until(`location.pathname === "/console/signin"`)
	b.fill("#login", login)
	b.fill("#password", password)
	b.screenshot("signin")
	b.click(`form[action="/console/signin"] button[type=submit]`)
	b.until(`document.querySelector("#signout") !== null`)
}

// sessionCookie returns the browser's console session cookie.
func (b *browser) sessionCookie() *network.Cookie {
	b.t.Helper()
	res, err := chromedp.Call(b.ctx, network.GetCookies, network.GetCookiesParams{})
	if err != nil {
		b.t.Fatal(err)
	}
	for _, c := range res.Cookies {
		if c.Name == "kh_session" {
			return c
		}
	}
	b.t.Fatal("no kh_session cookie in the browser")
	return nil
}

// caTransport trusts the test deployment's CA.
func caTransport(t *testing.T, ts *testServer) *http.Transport {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ts.CACertPEM()) {
		t.Fatal("CA certificate does not parse")
	}
	return &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
}

// sessionClient talks to the test server's https listener with a cookie
// jar holding the browser's session, without following redirects.
func sessionClient(t *testing.T, ts *testServer, c *network.Cookie) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	u, _ := url.Parse(ts.HTTPSURL)
	jar.SetCookies(u, []*http.Cookie{{Name: c.Name, Value: c.Value, Path: "/console/"}})
	return &http.Client{
		Jar:           jar,
		Transport:     caTransport(t, ts),
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func TestConsoleSecretsWorkflow(t *testing.T) {
	chromiumPath(t)
	ts := startServer(t)
	base := ts.HTTPSURL + "/console"
	b := newBrowser(t, base)

	// A wrong secret is refused with the one message.
	b.open("/signin")
	b.fill("#login", ts.keyID)
	b.fill("#password", "not-the-secret")
	b.click(`form[action="/console/signin"] button[type=submit]`)
	b.until(`document.querySelector("#signin-error") !== null`)
	if got := b.text("#signin-error"); !strings.Contains(got, "not correct") {
		t.Fatalf("sign-in error = %q", got)
	}

	b.signIn(ts.keyID, ts.keySecret)
	ck := b.sessionCookie()
	if !ck.HTTPOnly || !ck.Secure || ck.SameSite != network.CookieSameSiteStrict {
		t.Fatalf("session cookie flags: HttpOnly=%v Secure=%v SameSite=%v", ck.HTTPOnly, ck.Secure, ck.SameSite)
	}
	b.screenshot("home")

	// Empty list says what to do next.
	b.open("/secrets")
	b.until(`document.querySelector(".empty") !== null`)
	b.screenshot("secrets-empty")

	// Create a generic secret.
	b.click("#new-secret")
	b.until(`document.querySelector("#new-secret-form") !== null`)
	b.fill("#SecretName", "app/db-password")
	b.fill("#SecretData", "s3cr3t-v1")
	b.fill("#Description", "database password of the app")
	b.fill("#Tags", "env=prod\nteam=db")
	b.screenshot("secret-new")
	b.click("#create-secret")
	b.until(`document.querySelector("#secret-name") !== null`)
	if got := b.text(".flash-ok"); !strings.Contains(got, "Created secret app/db-password") {
		t.Fatalf("flash after create = %q", got)
	}
	for i := 2; i <= 3; i++ {
		b.open("/secrets/new")
		b.fill("#SecretName", fmt.Sprintf("svc-%d", i))
		b.fill("#SecretData", "x")
		b.fill("#Tags", "env=dev")
		b.click("#create-secret")
		b.until(`document.querySelector("#secret-name") !== null`)
	}

	// Listed, and found by name and by tag.
	b.open("/secrets")
	b.until(`document.querySelector("#secrets-table") !== null`)
	if n := eval[int](b, `document.querySelectorAll("a.secret-link").length`); n != 3 {
		t.Fatalf("listed %d secrets, want 3", n)
	}
	b.screenshot("secrets")
	b.open("/secrets?tag=env%3Dprod")
	b.until(`document.querySelector("#secrets-table") !== null`)
	if got := eval[string](b, `[...document.querySelectorAll("a.secret-link")].map(a => a.textContent).join(",")`); got != "app/db-password" {
		t.Fatalf("tag search env=prod lists %q", got)
	}
	b.open("/secrets?q=nothing-like-this")
	b.until(`document.querySelector(".empty") !== null`)

	// Tag several selected secrets at once.
	b.open("/secrets?tag=env%3Ddev")
	b.until(`document.querySelectorAll("a.secret-link").length === 2`)
	b.click(`input[data-select-all]`)
	b.fill("#bulk-tags", "owner=ops")
	b.click(`button[name=action][value=add]`)
	b.until(`document.querySelector(".flash-ok") !== null`)
	b.open("/secrets?tag=owner%3Dops")
	b.until(`document.querySelectorAll("a.secret-link").length === 2`)

	// Reveal: an explicit POST, and the value appears.
	b.open("/secrets/" + url.PathEscape("app/db-password"))
	b.until(`document.querySelector("button.reveal") !== null`)
	if b.exists("#secret-value") {
		t.Fatal("the value is on the page before the reveal")
	}
	b.click(`tr[data-version="v1"] button.reveal`)
	b.until(`document.querySelector("#secret-value") !== null`)
	if got := b.text("#secret-value"); got != "s3cr3t-v1" {
		t.Fatalf("revealed %q", got)
	}
	b.screenshot("secret-revealed")

	// Put a new version: ACSCurrent moves to it, the old one is ACSPrevious.
	b.open("/secrets/" + url.PathEscape("app/db-password"))
	b.until(`document.querySelector("#put-form") !== null`)
	b.fill("#put-version", "v2")
	b.fill("#put-value", "s3cr3t-v2")
	b.click("#put-value-btn")
	b.until(`document.querySelector('tr[data-version="v2"]') !== null`)
	stages := func(v string) string {
		return b.text(fmt.Sprintf(`tr[data-version=%q] .stages`, v))
	}
	if s1, s2 := stages("v1"), stages("v2"); s2 != "ACSCurrent" || s1 != "ACSPrevious" {
		t.Fatalf("after put: v1 %q, v2 %q", s1, s2)
	}
	b.screenshot("secret")

	// Move ACSCurrent back to v1.
	b.do(chromedp.SetValue(chromedp.CSS("#stage-to"), "v1"))
	b.click("#move-stage")
	b.until(`document.querySelector('tr[data-version="v1"] .stages').textContent.includes("ACSCurrent")`)
	if s2 := stages("v2"); strings.Contains(s2, "ACSCurrent") {
		t.Fatalf("v2 still has ACSCurrent: %q", s2)
	}

	// Schedule deletion, then restore.
	b.fill("#window", "7")
	b.click("#schedule-delete")
	b.until(`(document.querySelector("#deletion-state")?.textContent ?? "") === "scheduled for deletion"`)
	if b.exists("button.reveal") {
		t.Fatal("a secret scheduled for deletion offers a reveal")
	}
	b.screenshot("secret-deleting")
	b.click("#restore")
	b.until(`(document.querySelector("#deletion-state")?.textContent ?? "") === "active"`)

	// The reveal is in the audit trail, attributed to the root.
	b.open("/audit?action=kms%3AGetSecretValue")
	b.until(`document.querySelector("#audit-table") !== null`)
	if got := b.text("#audit-table tbody"); !strings.Contains(got, "root") || !strings.Contains(got, "secret/app/db-password") {
		t.Fatalf("audit rows for GetSecretValue: %q", got)
	}
	b.open("/audit")
	b.until(`document.querySelector("#audit-table") !== null`)
	b.screenshot("audit")
	b.click("#verify-audit")
	b.until(`(document.querySelector(".flash-ok")?.textContent ?? "").includes("verifies")`)

	// Enrollment token: shown once with the agent command.
	b.open("/hosts")
	b.until(`document.querySelector("#create-token") !== null`)
	b.click("#create-token")
	b.until(`document.querySelector("#agent-command") !== null`)
	cmd := b.text("#agent-command")
	tok := b.text("#enroll-token")
	if tok == "" || !strings.Contains(cmd, "keyhold agent --server "+ts.HTTPSURL+" --token "+tok) {
		t.Fatalf("agent command %q (token %q)", cmd, tok)
	}
	b.screenshot("hosts-token")
	b.open("/hosts")
	b.until(`document.querySelector("#create-token") !== null`)
	if b.exists("#agent-command") {
		t.Fatal("the enrollment token is shown again")
	}

	// Keys: create one with an alias, disable and enable it.
	b.open("/keys")
	b.until(`document.querySelector("#create-key") !== null`)
	b.fill("#k-desc", "app key")
	b.fill("#k-alias", "alias/app")
	b.click("#create-key")
	b.until(`document.querySelector("#key-state") !== null`)
	b.click("#disable-key")
	b.until(`(document.querySelector("#key-state")?.textContent ?? "") === "Disabled"`)
	b.click("#enable-key")
	b.until(`(document.querySelector("#key-state")?.textContent ?? "") === "Enabled"`)
	b.open("/keys")
	b.until(`document.querySelector("#keys-table") !== null`)
	if !strings.Contains(b.text("#keys-table"), "alias/app") {
		t.Fatalf("keys list: %q", b.text("#keys-table"))
	}
	b.screenshot("keys")

	// A forged POST without the CSRF token is refused, and changes nothing.
	hc := sessionClient(t, ts, ck)
	resp, err := hc.PostForm(base+"/secret/delete/"+url.PathEscape("app/db-password"), url.Values{"RecoveryWindowInDays": {"7"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("POST without CSRF token: status %d, want 403", resp.StatusCode)
	}
	resp, err = hc.PostForm(base+"/secret/delete/"+url.PathEscape("app/db-password"), url.Values{"RecoveryWindowInDays": {"7"}, "csrf": {"forged"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("POST with a wrong CSRF token: status %d, want 403", resp.StatusCode)
	}
	b.open("/secrets/" + url.PathEscape("app/db-password"))
	b.until(`document.querySelector("#deletion-state") !== null`)
	if got := b.text("#deletion-state"); got != "active" {
		t.Fatalf("after forged posts the secret is %q", got)
	}

	// Force delete needs the typed name.
	b.open("/secrets/svc-3")
	b.until(`document.querySelector("#force-delete") !== null`)
	if !eval[bool](b, `document.querySelector("#force-delete").disabled`) {
		t.Fatal("force delete is enabled before the name is typed")
	}
	b.do(chromedp.SendKeys(chromedp.CSS("#confirm"), "svc-3"))
	b.click("#force-delete")
	b.until(`location.pathname === "/console/secrets" && document.querySelector(".flash-ok") !== null`)
	if n := eval[int](b, `document.querySelectorAll("a.secret-link").length`); n != 2 {
		t.Fatalf("after force delete %d secrets listed, want 2", n)
	}

	// Sign out ends the session: the old cookie no longer works.
	b.click("#signout")
	b.until(`location.pathname === "/console/signin"`)
	resp, err = hc.Get(base + "/secrets")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Location"), "/console/signin") {
		t.Fatalf("old session after sign-out: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestConsoleReaderSeesNoReveal(t *testing.T) {
	chromiumPath(t)
	ts := startServer(t)
	base := ts.HTTPSURL + "/console"
	admin := newBrowser(t, base)
	admin.signIn(ts.keyID, ts.keySecret)

	admin.open("/secrets/new")
	admin.fill("#SecretName", "shared/config")
	admin.fill("#SecretData", "do-not-show")
	admin.click("#create-secret")
	admin.until(`document.querySelector("#secret-name") !== null`)

	// Through the identity pages: a policy that may look but not read,
	// with a malformed document refused inline first.
	admin.open("/identities")
	admin.until(`document.querySelector("#policy-form") !== null`)
	admin.fill("#p-name", "SecretLooker")
	admin.fill("#p-doc", `{"Version":"1","Statement":[{"Effect":"Perhaps","Action":["kms:ListSecrets"],"Resource":"*"}]}`)
	admin.click("#create-policy")
	admin.until(`(document.querySelector("#p-doc-error")?.textContent ?? "").includes("Policy")`)
	if got := admin.text("#p-doc-error"); !strings.Contains(got, "MalformedPolicyDocument") {
		t.Fatalf("inline policy error = %q", got)
	}
	if v := eval[string](admin, `document.querySelector("#p-doc").value`); !strings.Contains(v, "Perhaps") {
		t.Fatal("the editor lost the text after a refused policy")
	}
	admin.screenshot("identities")
	admin.fill("#p-doc", `{"Version":"1","Statement":[{"Effect":"Allow","Action":["kms:ListSecrets","kms:DescribeSecret","kms:ListSecretVersionIds"],"Resource":"*"}]}`)
	admin.click("#create-policy")
	admin.until(`(document.querySelector(".flash-ok")?.textContent ?? "").includes("Created policy")`)

	admin.fill("#u-name", "reader")
	admin.click("#create-user")
	admin.until(`location.pathname === "/console/identities/users/reader"`)
	admin.fill("#pw1", "Reader-passw0rd!")
	admin.fill("#pw2", "Reader-passw0rd!")
	admin.click(`form[action="/console/identities/password"] button[type=submit]`)
	admin.until(`(document.querySelector(".flash-ok")?.textContent ?? "").includes("Console password set")`)
	admin.fill("#att-policy", "SecretLooker")
	admin.do(chromedp.SetValue(chromedp.CSS("#att-type"), "Custom"))
	admin.click(`form[action="/console/identities/attach"] button[type=submit]`)
	admin.until(`(document.querySelector(".flash-ok")?.textContent ?? "").includes("attached")`)
	admin.click("#create-access-key")
	admin.until(`document.querySelector("#nk-secret") !== null`)
	if s := admin.text("#nk-secret"); len(s) < 20 {
		t.Fatalf("new access key secret %q", s)
	}
	admin.screenshot("user")

	reader := newBrowser(t, base)
	reader.signIn("reader", "Reader-passw0rd!")
	reader.open("/secrets")
	reader.until(`document.querySelector("a.secret-link") !== null`)
	reader.open("/secrets/" + url.PathEscape("shared/config"))
	reader.until(`document.querySelector("#versions") !== null`)
	if reader.exists("button.reveal") {
		t.Fatal("a principal without kms:GetSecretValue is offered a reveal")
	}
	if !reader.exists("#no-reveal") {
		t.Fatal("no explanation why the value cannot be read")
	}
	if strings.Contains(eval[string](reader, "document.documentElement.outerHTML"), "do-not-show") {
		t.Fatal("the value is in the page")
	}

	// A hand-made reveal with a valid CSRF token is refused by the
	// authorizer, and the refusal shows the reason.
	csrf := eval[string](reader, `document.querySelector("input[name=csrf]").value`)
	hc := sessionClient(t, ts, reader.sessionCookie())
	resp, err := hc.PostForm(base+"/secret/reveal/"+url.PathEscape("shared/config"), url.Values{"csrf": {csrf}, "VersionId": {"v1"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("refused reveal: status %d", resp.StatusCode)
	}
	resp, err = hc.Get(base + "/secrets/" + url.PathEscape("shared/config"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "Forbidden") || strings.Contains(string(body), "do-not-show") {
		t.Fatalf("after a refused reveal the page says:\n%s", body)
	}

	// The reader cannot create secrets either; the refusal is shown.
	reader.open("/secrets/new")
	reader.fill("#SecretName", "mine")
	reader.fill("#SecretData", "x")
	reader.click("#create-secret")
	reader.until(`document.querySelector("#form-error") !== null`)
	if got := reader.text("#form-error"); !strings.Contains(got, "Forbidden") {
		t.Fatalf("refused create shows %q", got)
	}
}

// TestConsoleHTTP checks what needs no browser: headers, the sign-in rate
// limit and the plain-HTTP rule.
func TestConsoleHTTP(t *testing.T) {
	ts := startServer(t)
	hc := &http.Client{Transport: caTransport(t, ts), CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := hc.Get(ts.HTTPSURL + "/console/signin")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	h := resp.Header
	if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Fatalf("CSP %q", csp)
	}
	if h.Get("X-Frame-Options") != "DENY" || h.Get("Cache-Control") != "no-store" {
		t.Fatalf("headers %v", h)
	}
	if strings.Contains(string(body), "<script>") || strings.Contains(string(body), "style=") {
		t.Fatal("the sign-in page has inline script or style")
	}

	// Failed sign-ins for one name are limited, even with the right
	// secret afterwards.
	post := func(login, password string) int {
		t.Helper()
		jar, _ := cookiejar.New(nil)
		c := *hc
		c.Jar = jar
		r, err := c.Get(ts.HTTPSURL + "/console/signin")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		i := strings.Index(string(b), `name="csrf" value="`)
		tok := string(b)[i+len(`name="csrf" value="`):]
		tok = tok[:strings.IndexByte(tok, '"')]
		r, err = c.PostForm(ts.HTTPSURL+"/console/signin", url.Values{"csrf": {tok}, "login": {login}, "password": {password}})
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		return r.StatusCode
	}
	if got := post(ts.keyID, ts.keySecret); got != http.StatusSeeOther {
		t.Fatalf("root sign-in: %d", got)
	}
	for i := 0; i < 5; i++ {
		if got := post(ts.keyID, "wrong"); got != http.StatusUnauthorized {
			t.Fatalf("failed sign-in %d: %d", i, got)
		}
	}
	if got := post(ts.keyID, ts.keySecret); got != http.StatusTooManyRequests {
		t.Fatalf("sign-in after 5 failures: %d, want 429", got)
	}
	// The sign-in form's own token is required.
	r, err := hc.PostForm(ts.HTTPSURL+"/console/signin", url.Values{"login": {ts.keyID}, "password": {ts.keySecret}})
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusForbidden {
		t.Fatalf("sign-in without its token: %d", r.StatusCode)
	}

	// The plain listener is on loopback here, so it serves the console too.
	r, err = http.Get(ts.HTTPURL + "/console/signin")
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusOK {
		t.Fatalf("console on the loopback plain listener: %d", r.StatusCode)
	}
}
