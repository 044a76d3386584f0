// Package deptest enforces Keyhold's layering: which packages may depend on
// which. It fails when a forbidden import creeps in, directly or not.
package deptest

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

const mod = "github.com/keyhold/keyhold"

// rules: package → forbidden dependency prefixes, with the reason.
var rules = []struct {
	pkg, reason string
	forbidden   []string
}{
	{mod + "/internal/secrets", "domain packages know neither HTTP nor a storage engine",
		[]string{"net/http", "database/sql", "go.etcd.io/bbolt", "github.com/jackc/pgx", mod + "/internal/kmsapi", mod + "/internal/store/"}},
	{mod + "/internal/keys", "the barrier knows neither HTTP nor a storage engine",
		[]string{"net/http", "database/sql", "go.etcd.io/bbolt", "github.com/jackc/pgx", mod + "/internal/kmsapi", mod + "/internal/store/"}},
	{mod + "/internal/iam", "identities know no storage engine and no HTTP",
		[]string{"net/http", "database/sql", "go.etcd.io/bbolt", "github.com/jackc/pgx", mod + "/internal/store/", mod + "/internal/kmsapi"}},
	{mod + "/internal/pki", "certificates know no storage engine and no wire layer",
		[]string{"database/sql", "go.etcd.io/bbolt", "github.com/jackc/pgx", mod + "/internal/store/", mod + "/internal/kmsapi"}},
	{mod + "/internal/store", "the storage contract is engine-neutral",
		[]string{"go.etcd.io/bbolt", "github.com/jackc/pgx", "net/http"}},
	{mod + "/internal/store/postgres", "a storage engine knows the contract and the error kinds, no domain, no wire layer, no HTTP",
		[]string{"net/http", mod + "/internal/kmsapi", mod + "/internal/secrets", mod + "/internal/keys", mod + "/internal/iam", mod + "/internal/audit", mod + "/internal/server"}},
	{mod + "/internal/kmsapi", "the wire layer reaches storage only through domain services",
		[]string{"go.etcd.io/bbolt", "github.com/jackc/pgx", "database/sql", mod + "/internal/store/"}},
	{mod + "/internal/apicall", "the call types are shared by access control: no HTTP",
		[]string{"net/http", mod + "/internal/kmsapi"}},
	{mod + "/internal/policy", "the policy language is pure logic: no HTTP, no storage, no wire layer",
		[]string{"net/http", "database/sql", "go.etcd.io/bbolt", "github.com/jackc/pgx", mod + "/internal/store", mod + "/internal/kmsapi"}},
	{mod + "/internal/migrate", "migration and backup move ciphertext as stored: no wire layer, no domain that decrypts",
		[]string{"net/http", mod + "/internal/kmsapi", mod + "/internal/secrets", mod + "/internal/iam"}},
	{mod + "/internal/audit", "the audit trail knows neither HTTP, a storage engine nor the wire layer",
		[]string{"net/http", "database/sql", "go.etcd.io/bbolt", "github.com/jackc/pgx", mod + "/internal/store/", mod + "/internal/kmsapi"}},
	{mod + "/internal/rotation", "the rotation engine is a domain package: no HTTP, no storage engine, no wire layer",
		[]string{"net/http", "database/sql", "go.etcd.io/bbolt", "github.com/jackc/pgx", mod + "/internal/store/", mod + "/internal/kmsapi"}},
	{mod + "/internal/fleet", "the hosts domain knows no HTTP, no storage engine and no wire layer",
		[]string{"net/http", "database/sql", "go.etcd.io/bbolt", "github.com/jackc/pgx", mod + "/internal/store/", mod + "/internal/kmsapi"}},
	{mod + "/internal/agentapi/wire", "the agent protocol's shared types: no HTTP, no server internals",
		[]string{"net/http", mod + "/internal/store", mod + "/internal/fleet", mod + "/internal/kmsapi", mod + "/internal/keys", mod + "/internal/secrets", mod + "/internal/iam", mod + "/internal/server"}},
	{mod + "/internal/agent", "the host agent shares only the protocol's wire types with the server",
		[]string{mod + "/internal/store", mod + "/internal/fleet", mod + "/internal/kmsapi", mod + "/internal/keys", mod + "/internal/secrets", mod + "/internal/iam", mod + "/internal/server", mod + "/internal/audit", mod + "/internal/rotation", "go.etcd.io/bbolt", "github.com/jackc/pgx"}},
	{mod + "/internal/agentapi", "the agent protocol's HTTP side reaches storage only through the fleet domain",
		[]string{"go.etcd.io/bbolt", "github.com/jackc/pgx", "database/sql", mod + "/internal/store/", mod + "/internal/kmsapi"}},
	{mod + "/internal/console", "the console acts through the API server (kmsapi.Invoke), never on a storage engine",
		[]string{"database/sql", "go.etcd.io/bbolt", "github.com/jackc/pgx", mod + "/internal/store/"}},
	{mod + "/client", "the public client is used by third parties: no server internals",
		[]string{mod + "/internal/"}},
	{mod + "/acssign", "the signer is public: no server internals",
		[]string{mod + "/internal/"}},
	{mod + "/internal/bastion", "the bastion is a client of the public API like a third-party program: no server internals",
		[]string{mod + "/internal/"}},
	{mod + "/internal/e2e/failover", "end-to-end tests run the real binary as processes: no server internals",
		[]string{mod + "/internal/"}},
}

// allowed: package → dependency prefixes exempt from its forbidden list.
var allowed = map[string][]string{
	mod + "/internal/bastion": {mod + "/internal/bastion"}, // its own sub-packages
	// The harness may use the test helpers that start nothing of the server.
	mod + "/internal/e2e/failover": {mod + "/internal/testutil"},
}

func deps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", "-json=ImportPath", pkg).Output()
	if err != nil {
		t.Fatalf("go list %s: %v", pkg, err)
	}
	var list []string
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p struct{ ImportPath string }
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		list = append(list, p.ImportPath)
	}
	return list
}

func TestLayering(t *testing.T) {
	for _, r := range rules {
		t.Run(strings.TrimPrefix(r.pkg, mod+"/"), func(t *testing.T) {
		deps:
			for _, d := range deps(t, r.pkg) {
				if d == r.pkg {
					continue
				}
				for _, a := range allowed[r.pkg] {
					if d == a || strings.HasPrefix(d, a+"/") {
						continue deps
					}
				}
				for _, f := range r.forbidden {
					if d == f || strings.HasPrefix(d, f) && (strings.HasSuffix(f, "/") || strings.HasPrefix(d, f+"/")) {
						t.Errorf("%s depends on %s: %s", r.pkg, d, r.reason)
					}
				}
			}
		})
	}
}

// e2eTestHelpers are the only internal packages end-to-end tests may
// import: they start real components (sshd, PostgreSQL), nothing of the
// server. The rest goes through the binary, the CLI and the public client.
var e2eTestHelpers = []string{mod + "/internal/testutil/", mod + "/internal/store/postgres/pgtest"}

// TestE2ETestsUseNoServerInternals checks the test files' own imports,
// which TestLayering (go list -deps) does not see.
func TestE2ETestsUseNoServerInternals(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{range .TestImports}}{{$.ImportPath}} {{.}}
{{end}}{{range .XTestImports}}{{$.ImportPath}} {{.}}
{{end}}`, mod+"/internal/e2e/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
imports:
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, dep, _ := strings.Cut(line, " ")
		if !strings.HasPrefix(dep, mod+"/internal/") || strings.HasPrefix(dep, mod+"/internal/e2e/") {
			continue
		}
		for _, a := range e2eTestHelpers {
			if dep == a || strings.HasPrefix(dep, a) && strings.HasSuffix(a, "/") {
				continue imports
			}
		}
		t.Errorf("%s tests import %s: end-to-end tests use the binary and the public client, not server internals", pkg, dep)
	}
}
