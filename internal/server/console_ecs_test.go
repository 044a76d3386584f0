package server_test

import (
	"strings"
	"testing"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/keyhold/keyhold/internal/testutil/sshdtest"
)

// An operator creates an ECS secret in the console as the seeds describe
// (pick the enrolled host, then its user, then the value that logs in now),
// then rotates it with "Rotate now": a real agent changes the password on a
// real sshd, and the stored ACSCurrent logs in.
func TestConsoleECSSecret(t *testing.T) {
	chromiumPath(t)
	e := newRotEnv(t, sshdtest.Options{})
	const oldPW = "Initial-Passw0rd-for-console"
	u := sshdtest.NewUser(t, sshdtest.UserOptions{Password: oldPW})
	e.startAgent()
	e.waitUser(u.Name)

	b := newBrowser(t, e.ts.HTTPSURL+"/console")
	// "Rotate now" asks for confirmation: accept it as the operator would.
	b.signIn(e.ts.keyID, e.ts.keySecret)
	dialogs := chromedp.Events(b.ctx, page.JavascriptDialogOpening)
	go func() {
		for _, err := range dialogs {
			if err != nil {
				return
			}
			chromedp.Call(b.ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
	b.open("/secrets")
	b.click("#new-ecs-secret")
	b.until(`document.querySelector("#pick-host-form") !== null`)
	b.do(chromedp.SetValue(chromedp.CSS("#instance"), e.hostID))
	b.click("#pick-host")
	b.until(`document.querySelector("#new-ecs-form") !== null`)
	if !eval[bool](b, `[...document.querySelectorAll("#UserName option")].some(o => o.value === "`+u.Name+`" && !o.disabled)`) {
		t.Fatalf("the host's user %s is not offered", u.Name)
	}
	b.do(chromedp.SetValue(chromedp.CSS("#UserName"), u.Name))

	// A key pair without its private key is refused, and nothing typed
	// secret comes back into the page.
	b.click("#subtype-sshkey")
	b.fill("#Password", "typed-then-abandoned-pw")
	b.fill("#PublicKey", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDummyDummyDummyDummyDummyDummyDummyDummy")
	b.click("#create-ecs-secret")
	b.until(`document.querySelector("#form-error") !== null`)
	if got := b.text("#form-error"); !strings.Contains(got, "private key") {
		t.Fatalf("error for a key pair without its private key: %q", got)
	}
	if html := eval[string](b, "document.documentElement.outerHTML"); strings.Contains(html, "typed-then-abandoned-pw") {
		t.Fatal("the password typed in the form is echoed back into the page")
	}

	b.click("#subtype-password")
	b.fill("#Password", oldPW)
	b.click("#ecs-auto-rot")
	b.fill("#RotationInterval", "30d")
	b.screenshot("secret-new-ecs")
	b.click("#create-ecs-secret")
	b.until(`document.querySelector("#secret-name") !== null`)
	name := "acs/ecs/" + e.hostID + "/" + u.Name
	if got := b.text("#secret-name"); got != name {
		t.Fatalf("created %q, want the default name %q", got, name)
	}
	if got := b.text(".flash-ok"); !strings.Contains(got, "Created ECS secret") {
		t.Fatalf("flash after create = %q", got)
	}
	old := ecsValue{UserName: u.Name, Password: oldPW}
	if cur, _ := e.stage(name, "ACSCurrent"); cur != old {
		t.Fatal("ACSCurrent is not the value entered in the console")
	}
	if html := eval[string](b, "document.documentElement.outerHTML"); !strings.Contains(html, "Enabled") {
		t.Error("the detail page does not show automatic rotation enabled")
	}

	b.click("#rotate-now")
	r := e.converged(name, old)
	if r.State != "succeeded" {
		t.Fatalf("rotation from the console ended %s", r.State)
	}
	if strings.Contains(e.ts.logs.String(), oldPW) {
		t.Fatal("the password appears in the server log")
	}
}
