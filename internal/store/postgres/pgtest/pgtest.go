// Package pgtest starts a throw-away PostgreSQL server for tests: initdb in
// a temporary directory as the postgres user, a free loopback port, and
// `pg_ctl stop -m immediate` when the test ends. Without the binaries the
// test is skipped, except under CI=true, where it fails: CI installs them.
package pgtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// BinDir is where Debian 12's postgresql package puts the server binaries.
var BinDir = "/usr/lib/postgresql/15/bin"

// Server is a running throw-away server.
type Server struct {
	Port int
	dir  string
	base string // DSN of the server's default database
	n    atomic.Int64
}

// Start starts a server that lives until t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	return start(t, t.Cleanup)
}

func start(t testing.TB, cleanup func(func())) *Server {
	t.Helper()
	initdb := filepath.Join(BinDir, "initdb")
	if _, err := os.Stat(initdb); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL binaries missing in %s (CI installs the postgresql package): %v", BinDir, err)
		}
		t.Skipf("PostgreSQL binaries missing in %s (apt-get install postgresql): %v", BinDir, err)
	}
	// A short path: the Unix socket's path must fit in 107 bytes.
	dir, err := os.MkdirTemp("", "khpg")
	if err != nil {
		t.Fatal(err)
	}
	cleanup(func() { os.RemoveAll(dir) })
	asPostgres := os.Geteuid() == 0 // PostgreSQL refuses to run as root
	if asPostgres {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root needs the postgres user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	run := func(name string, args ...string) error {
		bin := filepath.Join(BinDir, name)
		var cmd *exec.Cmd
		if asPostgres {
			cmd = exec.Command("runuser", append([]string{"-u", "postgres", "--", bin}, args...)...)
		} else {
			cmd = exec.Command(bin, args...)
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %v\n%s", name, err, out)
		}
		return nil
	}
	data, logf := filepath.Join(dir, "data"), filepath.Join(dir, "log")
	if err := run("initdb", "-D", data, "-A", "trust", "-U", "keyhold", "--no-sync", "-E", "UTF8"); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	if err := run("pg_ctl", "-D", data, "-o", serverOpts(port, dir), "-l", logf, "-w", "-t", "60", "start"); err != nil {
		log, _ := os.ReadFile(logf)
		t.Fatalf("%v\nserver log:\n%s", err, log)
	}
	cleanup(func() { run("pg_ctl", "-D", data, "-m", "immediate", "stop") })
	return &Server{Port: port, dir: dir, base: fmt.Sprintf("postgres://keyhold@127.0.0.1:%d/postgres?sslmode=disable", port)}
}

// DSN returns the URL of a fresh, empty deployment on s: its own schema
// (search_path), which is how Keyhold separates deployments in a database
// and much faster to create than a database.
func (s *Server) DSN(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("kh%d", s.n.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.base)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+name); err != nil {
		t.Fatal(err)
	}
	return s.base + "&search_path=" + name
}

// DSN starts a server for t and returns the URL of an empty deployment.
func DSN(t testing.TB) string { return Start(t).DSN(t) }

var (
	mainActive bool
	shared     struct {
		sync.Mutex
		srv  *Server
		stop []func()
	}
)

// Main runs a package's tests and then stops the server Shared started.
// Packages that call Shared must have
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
func Main(m *testing.M) int {
	mainActive = true
	code := m.Run()
	shared.Lock()
	for i := len(shared.stop) - 1; i >= 0; i-- {
		shared.stop[i]()
	}
	shared.Unlock()
	return code
}

// Shared returns one server per test binary, started on first use, so that
// a package's tests pay for initdb once. It needs Main in TestMain.
func Shared(t testing.TB) *Server {
	t.Helper()
	if !mainActive {
		t.Fatal("pgtest.Shared needs func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }")
	}
	shared.Lock()
	defer shared.Unlock()
	if shared.srv == nil {
		shared.srv = start(t, func(f func()) { shared.stop = append(shared.stop, f) })
	}
	return shared.srv
}

func freePort(t testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
