// Package sshdtest starts a real OpenSSH sshd on a loopback port with its
// own configuration and host key, and creates throw-away local users, for
// tests of the agent (docs/testing.md). Nothing of the machine's own ssh
// set-up is touched. Without sshd (or without root) a test is skipped,
// unless CI=true, where it fails.
package sshdtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// SSHD is the sshd binary.
const SSHD = "/usr/sbin/sshd"

// Require skips the test (fails it under CI=true) when sshd is missing or
// the test does not run as root.
func Require(t testing.TB) {
	t.Helper()
	var why string
	if _, err := os.Stat(SSHD); err != nil {
		why = "sshd is not installed (apt-get install -y openssh-server)"
	} else if os.Geteuid() != 0 {
		why = "the sshd and user tests need root"
	}
	if why == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal(why)
	}
	t.Skip(why)
}

// Options vary the sshd configuration.
type Options struct {
	PermitRootLogin        string // default "yes"; "prohibit-password", "no"
	PasswordAuthentication bool   // default true unless NoPassword
	NoPassword             bool   // PasswordAuthentication no
	Extra                  []string
}

// Server is a running sshd.
type Server struct {
	Addr       string
	ConfigPath string
	HostKey    ssh.PublicKey
	Dir        string
	LogPath    string
}

// Start runs sshd -D for the test's lifetime.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	Require(t)
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	keyPath := filepath.Join(dir, "hostkey")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", keyPath).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	pubBytes, err := os.ReadFile(keyPath + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	hostKey, _, _, _, err := ssh.ParseAuthorizedKey(pubBytes)
	if err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	root := opts.PermitRootLogin
	if root == "" {
		root = "yes"
	}
	pw := "yes"
	if opts.NoPassword {
		pw = "no"
	}
	cfg := strings.Join(append([]string{
		"Port " + strconv.Itoa(port),
		"ListenAddress 127.0.0.1",
		"HostKey " + keyPath,
		"PidFile " + filepath.Join(dir, "sshd.pid"),
		"PasswordAuthentication " + pw,
		"KbdInteractiveAuthentication no",
		"UsePAM no",
		"PubkeyAuthentication yes",
		"PermitRootLogin " + root,
		"MaxStartups 100",
	}, opts.Extra...), "\n") + "\n"
	cfgPath := filepath.Join(dir, "sshd_config")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &Server{Addr: "127.0.0.1:" + strconv.Itoa(port), ConfigPath: cfgPath, HostKey: hostKey, Dir: dir, LogPath: filepath.Join(dir, "sshd.log")}
	cmd := exec.Command(SSHD, "-D", "-f", cfgPath, "-E", s.LogPath)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sshd: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	// Wait until it accepts connections (bounded; this is readiness, not a
	// timing assertion).
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.Addr, time.Second)
		if err == nil {
			c.Close()
			return s
		}
		select {
		case err := <-exited:
			log, _ := os.ReadFile(s.LogPath)
			t.Fatalf("sshd exited: %v: %s", err, log)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(s.LogPath)
			t.Fatalf("sshd did not start listening on %s: %s", s.Addr, log)
		}
	}
}

func freePort(t testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// User is a throw-away local account.
type User struct {
	Name     string
	UID, GID int
	Home     string
}

// UserOptions shape a new user.
type UserOptions struct {
	Password string // set with chpasswd; "" leaves the account key-only ('*')
	System   bool   // useradd -r (UID < 1000)
}

// NewUser creates a user with useradd -m, removed with userdel -r when the
// test ends.
func NewUser(t testing.TB, opts UserOptions) *User {
	t.Helper()
	Require(t)
	b := make([]byte, 6)
	rand.Read(b)
	name := "kh" + strings.ToLower(fmt.Sprintf("%x", b))
	args := []string{"-m", "-s", "/bin/bash"}
	if opts.System {
		args = append(args, "-r")
	}
	if out, err := exec.Command("useradd", append(args, name)...).CombinedOutput(); err != nil {
		t.Fatalf("useradd: %v: %s", err, out)
	}
	t.Cleanup(func() {
		exec.Command("userdel", "-r", "-f", name).Run()
	})
	if opts.Password != "" {
		SetPassword(t, name, opts.Password)
	} else {
		// With UsePAM no, useradd's "!" counts as locked even for keys.
		if out, err := exec.Command("usermod", "-p", "*", name).CombinedOutput(); err != nil {
			t.Fatalf("usermod: %v: %s", err, out)
		}
	}
	out, err := exec.Command("getent", "passwd", name).Output()
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Split(strings.TrimSpace(string(out)), ":")
	uid, _ := strconv.Atoi(f[2])
	gid, _ := strconv.Atoi(f[3])
	return &User{Name: name, UID: uid, GID: gid, Home: f[5]}
}

// SetPassword changes a password outside Keyhold (through chpasswd's stdin).
func SetPassword(t testing.TB, user, pw string) {
	t.Helper()
	cmd := exec.Command("chpasswd")
	cmd.Stdin = strings.NewReader(user + ":" + pw + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chpasswd: %v: %s", err, out)
	}
}

// AuthorizeKeys writes the user's ~/.ssh/authorized_keys (0600 in a 0700
// .ssh, owned by the user).
func (u *User) AuthorizeKeys(t testing.TB, keys ...ssh.PublicKey) string {
	t.Helper()
	dir := filepath.Join(u.Home, ".ssh")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	for _, k := range keys {
		buf.Write(ssh.MarshalAuthorizedKey(k))
	}
	path := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir, path} {
		if err := os.Chown(p, u.UID, u.GID); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

// ErrRefused is returned when sshd refuses the login.
var ErrRefused = errors.New("sshd refused the login")

// Login authenticates as user with the given methods, trusting only the
// server's host key, and returns nil when sshd accepts.
func (s *Server) Login(user string, auth ...ssh.AuthMethod) error {
	cfg := &ssh.ClientConfig{User: user, Auth: auth, HostKeyCallback: ssh.FixedHostKey(s.HostKey), Timeout: 10 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", s.Addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	c, chans, reqs, err := ssh.NewClientConn(conn, s.Addr, cfg)
	if err != nil {
		if strings.Contains(err.Error(), "unable to authenticate") {
			return ErrRefused
		}
		return err
	}
	ssh.NewClient(c, chans, reqs).Close()
	return nil
}

// LoginPassword logs in with a password.
func (s *Server) LoginPassword(user, pw string) error { return s.Login(user, ssh.Password(pw)) }

// LoginKey logs in with a private key.
func (s *Server) LoginKey(user string, signer ssh.Signer) error {
	return s.Login(user, ssh.PublicKeys(signer))
}
