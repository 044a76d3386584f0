package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// The bastion's administration commands edit its data directory; this walks
// hosts, operators and grants through add, list (text and JSON) and remove,
// with the bad inputs a person types.
func TestBastionAdminCommands(t *testing.T) {
	isolate(t)
	dir := filepath.Join(t.TempDir(), "bastion")
	b := func(args ...string) (string, string, int) {
		return run(t, "", append([]string{"bastion", "--data-dir", dir}, args...)...)
	}
	ok := func(args ...string) string {
		t.Helper()
		out, errOut, code := b(args...)
		if code != 0 {
			t.Fatalf("bastion %v: exit %d: %s", args, code, errOut)
		}
		return out
	}
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	spk, _ := ssh.NewPublicKey(pub)
	keyFile := filepath.Join(t.TempDir(), "alice.pub")
	os.WriteFile(keyFile, ssh.MarshalAuthorizedKey(spk), 0o644)
	junk := filepath.Join(t.TempDir(), "junk.pub")
	os.WriteFile(junk, []byte("not a key\n"), 0o644)

	if out := ok("hosts", "add", "lab1", "--address", "127.0.0.1:22", "--name", "lab", "--account", "root=acs/ecs/lab1/root"); !strings.Contains(out, "Host lab1 saved") {
		t.Fatalf("hosts add: %q", out)
	}
	if out := ok("hosts", "list"); !strings.Contains(out, "lab1") || !strings.Contains(out, "root=acs/ecs/lab1/root") {
		t.Fatalf("hosts list: %q", out)
	}
	if out := ok("operator", "add", "alice", "--public-key", keyFile); !strings.Contains(out, "1 key(s) added") {
		t.Fatalf("operator add: %q", out)
	}
	if out := ok("operator", "list"); !strings.Contains(out, ssh.FingerprintSHA256(spk)) {
		t.Fatalf("operator list lacks the key's fingerprint: %q", out)
	}
	ok("grant", "alice", "lab1", "root")
	var grants []struct{ Operator, Host, Account string }
	if err := json.Unmarshal([]byte(ok("grants", "--output", "json")), &grants); err != nil || len(grants) != 1 || grants[0].Operator != "alice" || grants[0].Account != "root" {
		t.Fatalf("grants: %+v %v", grants, err)
	}

	for _, bad := range [][]string{
		{"hosts", "add", "lab2", "--address", "127.0.0.1:22", "--account", "no-equals-sign"},
		{"operator", "add", "bob"},                       // no --public-key
		{"operator", "add", "bob", "--public-key", junk}, // not a key
		{"hosts", "add", "lab3"},                         // --address is required
	} {
		if _, errOut, code := b(bad...); code != 2 || errOut == "" {
			t.Errorf("bastion %v: exit %d, want a usage error (2) with a message; stderr %q", bad, code, errOut)
		}
	}
	if _, _, code := b("grant", "alice", "nohost", "root"); code == 0 {
		t.Error("a grant on an unknown host was accepted")
	}

	ok("revoke", "alice", "lab1", "root")
	if out := ok("grants", "--output", "json"); strings.TrimSpace(out) != "[]" && strings.TrimSpace(out) != "null" {
		t.Fatalf("grants after revoke: %q", out)
	}
	ok("operator", "remove", "alice")
	ok("hosts", "remove", "lab1")
	if out := ok("hosts", "list", "--output", "json"); strings.Contains(out, "lab1") {
		t.Fatalf("host still listed after remove: %q", out)
	}
}
