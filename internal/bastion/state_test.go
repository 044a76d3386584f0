package bastion_test

import (
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/keyhold/keyhold/internal/bastion"
)

func TestParseTarget(t *testing.T) {
	for _, c := range []struct{ in, acct, host string }{
		{"root@web1", "root", "web1"},
		{"a@b@web1", "a@b", "web1"}, // split at the last '@'
	} {
		a, h, err := bastion.ParseTarget(c.in)
		if err != nil || a != c.acct || h != c.host {
			t.Errorf("%q: %q %q %v", c.in, a, h, err)
		}
	}
	for _, bad := range []string{"", "root", "@web1", "root@", "@"} {
		if _, _, err := bastion.ParseTarget(bad); err == nil || !strings.Contains(err.Error(), "ACCOUNT@HOST@bastion") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestAdminBadInput(t *testing.T) {
	d := must(bastion.OpenDir(filepath.Join(t.TempDir(), "b")))
	_, pub := writeKey(t, t.TempDir(), "k")
	cases := []struct {
		name string
		err  error
		want string
	}{
		{"bad host id", d.AddHost(bastion.Host{ID: "we@b", Address: "127.0.0.1:22"}), "host id"},
		{"bad address", d.AddHost(bastion.Host{ID: "web", Address: "nowhere"}), "HOST:PORT"},
		{"bad host key", d.AddHost(bastion.Host{ID: "web", Address: "127.0.0.1:22", HostKeys: []string{"not a key"}}), "not an SSH public key"},
		{"bad account", d.AddHost(bastion.Host{ID: "web", Address: "127.0.0.1:22", Accounts: []bastion.Account{{User: "root"}}}), "USER=SECRET_NAME"},
		{"bad operator", d.AddOperator("bad name", nil), "operator"},
		{"no key", d.AddOperator("alice", nil), "public key"},
		{"grant unknown operator", second(d.AddGrant(bastion.Grant{Operator: "x", Host: "web", Account: "root"})), "no operator x"},
		{"revoke nothing", d.Revoke("x", "web", "root"), "has no grant"},
		{"remove unknown", d.RemoveOperator("x"), "no operator x"},
		{"kill bad id", d.RequestKill("../x"), "not a session id"},
		{"kill unknown", d.RequestKill("0123456789abcdef"), "no session"},
	}
	for _, c := range cases {
		if c.err == nil || !strings.Contains(c.err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, c.err, c.want)
		}
	}
	// Valid changes land; a name taken by another host is refused; a key
	// belongs to one operator only.
	check(t, d.AddHost(bastion.Host{ID: "i-1", Name: "web", Address: "127.0.0.1:22", Accounts: []bastion.Account{{User: "root", Secret: "acs/ecs/i-1/root"}}}))
	if err := d.AddHost(bastion.Host{ID: "i-2", Name: "web", Address: "127.0.0.1:23"}); err == nil {
		t.Error("a second host named web was accepted")
	}
	check(t, d.AddOperator("alice", []ssh.PublicKey{pub}))
	if err := d.AddOperator("bob", []ssh.PublicKey{pub}); err == nil || !strings.Contains(err.Error(), "already belongs to operator alice") {
		t.Errorf("shared key: %v", err)
	}
	g := must(d.AddGrant(bastion.Grant{Operator: "alice", Host: "web", Account: "root"}))
	if g.Host != "i-1" {
		t.Errorf("grant by name stored host %q, want the id", g.Host)
	}
	if _, err := d.AddGrant(bastion.Grant{Operator: "alice", Host: "web", Account: "admin"}); err == nil {
		t.Error("grant of a missing account was accepted")
	}
	check(t, d.RemoveHost("web"))
	if st := must(d.Load()); len(st.Grants) != 0 || len(st.Hosts) != 0 {
		t.Errorf("after removing the host: %+v", st)
	}
}

func second[T any](_ T, err error) error { return err }
