package agent_test

// The agent given several replica URLs: enrollment skips those that do not
// answer, the stored list is replaced or refused on a later start, and bad
// lists are refused before anything is written.

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/keyhold/keyhold/internal/agent"
	"github.com/keyhold/keyhold/internal/fleet"
	"github.com/keyhold/keyhold/internal/server"
	"github.com/keyhold/keyhold/internal/testutil/sshdtest"
)

// closedURL is an https URL on a loopback port nothing listens on.
func closedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "https://" + addr
}

// unavailable is a replica that lost its database: every request gets 503.
func unavailable(t *testing.T) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(`{"Code":"ServiceUnavailableTemporary","Message":"The database is unavailable."}`))
	}))
	t.Cleanup(s.Close)
	return s, &n
}

// foreignServer is another deployment: its own CA, not the pinned one.
func foreignServer(t *testing.T) *server.Server {
	t.Helper()
	srv, err := server.Start(context.Background(), server.Config{
		DataDir: t.TempDir(), Listen: "127.0.0.1:0", TLSListen: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(&syncBuffer{}, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// runAgent runs an agent until the returned stop is called (or the test ends).
func runAgent(t *testing.T, cfg agent.Config) (*agent.Agent, func()) {
	t.Helper()
	a, err := agent.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
	return a, stop
}

type storedIdentity struct {
	HostID  string   `json:"host_id"`
	Server  string   `json:"server"`
	Servers []string `json:"servers"`
}

func readIdentity(t *testing.T, dir string) (storedIdentity, map[string]any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "identity.json"))
	if err != nil {
		t.Fatal(err)
	}
	var id storedIdentity
	var raw map[string]any
	if err := json.Unmarshal(b, &id); err != nil {
		t.Fatal(err)
	}
	json.Unmarshal(b, &raw)
	return id, raw
}

func TestSeveralServers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sshdtest.Options{})
	const oldPW, newPW = "Old-passw0rd!", "N3w-Passw0rd-via-the-live-replica"
	u := sshdtest.NewUser(t, sshdtest.UserOptions{Password: oldPW})
	dead := closedURL(t)
	down, downHits := unavailable(t)
	foreign := foreignServer(t)
	live := e.srv.HTTPSURL

	// Enrollment: a closed port, a replica answering 503 and another
	// deployment's server (its certificate fails the pin) are each passed
	// over; the live replica enrolls the host. One URL comes in the
	// comma-separated form, the others as repeated flags.
	dir := t.TempDir()
	cfg := e.config(t, dir)
	cfg.Server = dead + "," + down.URL
	cfg.Servers = []string{foreign.HTTPSURL, live}
	a, stop := runAgent(t, cfg)
	if downHits.Load() == 0 {
		t.Fatal("the replica answering 503 was never asked")
	}
	id, _ := readIdentity(t, dir)
	if id.HostID != a.HostID() || id.Server != dead || strings.Join(id.Servers, ",") != strings.Join([]string{dead, down.URL, foreign.HTTPSURL, live}, ",") {
		t.Fatalf("stored identity %+v", id)
	}
	r := e.run(t, a.HostID(), fleet.Command{ID: "c1", RotationID: "r1", Op: fleet.OpPasswordApply, User: u.Name, Password: newPW})
	if r.Status != "ok" || r.Check != "ssh-login" {
		t.Fatalf("apply through the live replica: %+v", r)
	}
	if err := e.sshd.LoginPassword(u.Name, newPW); err != nil {
		t.Fatalf("new password: %v", err)
	}
	if !strings.Contains(e.logs.String(), "agent: switching to server "+live) {
		t.Fatalf("no switch to %s logged:\n%s", live, e.logs.String())
	}
	if strings.Contains(e.logs.String(), newPW) {
		t.Fatal("the password reached a log")
	}
	stop()

	// A later start with another list that reaches the deployment replaces
	// the stored list; the agent keeps working through it.
	cfg.Token, cfg.Server, cfg.Servers = "", live, nil
	a, stop = runAgent(t, cfg)
	if id, _ := readIdentity(t, dir); id.Server != live || len(id.Servers) != 1 || id.Servers[0] != live || a.HostID() != id.HostID {
		t.Fatalf("identity after a new list: %+v", id)
	}
	r = e.run(t, a.HostID(), fleet.Command{ID: "c2", RotationID: "r1", Op: fleet.OpPasswordRestore, User: u.Name})
	if r.Status != "ok" {
		t.Fatalf("restore: %+v", r)
	}
	if err := e.sshd.LoginPassword(u.Name, oldPW); err != nil {
		t.Fatalf("old password after restore: %v", err)
	}
	stop()

	// Only another deployment's server: this data directory is not its.
	cfg.Server = foreign.HTTPSURL
	if _, err := agent.New(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "belongs to the deployment") {
		t.Fatalf("a foreign server was accepted: %v", err)
	}
	// Nothing answers: the list cannot be checked; it is used but not stored.
	cfg.Server = closedURL(t)
	if _, err := agent.New(context.Background(), cfg); err != nil {
		t.Fatalf("unreachable list: %v", err)
	}
	if id, _ := readIdentity(t, dir); len(id.Servers) != 1 || id.Servers[0] != live {
		t.Fatalf("an unchecked list was stored: %+v", id)
	}

	// An identity written before the list existed ("server" only) loads
	// and works without --server.
	_, raw := readIdentity(t, dir)
	delete(raw, "servers")
	b, _ := json.Marshal(raw)
	if err := os.WriteFile(filepath.Join(dir, "identity.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.Server = ""
	a, _ = runAgent(t, cfg)
	r = e.run(t, a.HostID(), fleet.Command{ID: "c3", RotationID: "r2", Op: fleet.OpPasswordApply, User: u.Name, Password: newPW})
	if r.Status != "ok" || r.Check != "ssh-login" {
		t.Fatalf("apply with an old identity: %+v", r)
	}
}

func TestServerListRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sshdtest.Options{})
	for _, c := range []struct {
		name, server string
		servers      []string
		want         string
	}{
		{"plain http to another host", "", []string{e.srv.HTTPSURL, "http://192.0.2.1:8080"}, "plain http"},
		{"plain http in a comma list", e.srv.HTTPSURL + ",http://192.0.2.1:8080", nil, "plain http"},
		{"empty entry", e.srv.HTTPSURL + ",,https://127.0.0.1:1", nil, "empty entry"},
		{"trailing comma", e.srv.HTTPSURL + ",", nil, "empty entry"},
		{"empty flag", "", []string{e.srv.HTTPSURL, ""}, "empty entry"},
		{"credentials in the URL", "https://user:pw@127.0.0.1:1", nil, "must not carry credentials"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "agent")
			cfg := e.config(t, dir)
			cfg.Server, cfg.Servers = c.server, c.servers
			_, err := agent.New(context.Background(), cfg)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want %q", err, c.want)
			}
			if strings.Contains(err.Error(), "pw@") {
				t.Fatalf("the URL's password is in the error: %v", err)
			}
			// Refused before anything was written (the token is unused).
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Fatalf("data dir written: %v", err)
			}
		})
	}
	// Every URL failing: the error names each one, and the token is not used.
	dir := t.TempDir()
	cfg := e.config(t, dir)
	d1, d2 := closedURL(t), closedURL(t)
	cfg.Server = d1 + "," + d2
	_, err := agent.New(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "no server answered") || !strings.Contains(err.Error(), d1) || !strings.Contains(err.Error(), d2) {
		t.Fatalf("all down: %v", err)
	}
	cfg.Server = e.srv.HTTPSURL
	if _, err := agent.New(context.Background(), cfg); err != nil {
		t.Fatalf("the token was used by a failed enrollment: %v", err)
	}
}
