package pgtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Fault tests take a server down and bring it back (Stop, Restart): use a
// server of their own (Start), never Shared, whose other users would see
// the outage.

// serverOpts are the postmaster options of a server on port with its
// socket in dir; a restart must reuse them to come back at the same address.
func serverOpts(port int, dir string) string {
	return fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=on", port, dir)
}

// pgCtl runs pg_ctl on s's data directory, as the postgres user when
// running as root (PostgreSQL refuses to run as root).
func (s *Server) pgCtl(args ...string) error {
	bin := filepath.Join(BinDir, "pg_ctl")
	args = append([]string{"-D", filepath.Join(s.dir, "data")}, args...)
	var cmd *exec.Cmd
	if os.Geteuid() == 0 {
		cmd = exec.Command("runuser", append([]string{"-u", "postgres", "--", bin}, args...)...)
	} else {
		cmd = exec.Command(bin, args...)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pg_ctl %v: %v\n%s", args, err, out)
	}
	return nil
}

// Stop stops the server the way a crash or a power loss would: `pg_ctl
// stop -m immediate` ends every backend without a checkpoint, and the next
// start replays the WAL. Clients' connections break at once.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	if err := s.pgCtl("-m", "immediate", "-w", "-t", "60", "stop"); err != nil {
		t.Fatal(err)
	}
}

// Restart starts a stopped server again on the same port and data
// directory, and returns once it accepts connections (after crash
// recovery). The test's cleanup stops it again.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	logf := filepath.Join(s.dir, "log")
	if err := s.pgCtl("-o", serverOpts(s.Port, s.dir), "-l", logf, "-w", "-t", "60", "start"); err != nil {
		log, _ := os.ReadFile(logf)
		t.Fatalf("%v\nserver log:\n%s", err, log)
	}
}

// Log is the server's log so far (for a failing test's message).
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "log"))
	return string(b)
}
