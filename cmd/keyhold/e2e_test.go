package main

// TestBinaryTour builds the real binary and walks the README's tour: start
// `keyhold server` on free loopback ports, import root-credentials.json into
// a profile, create/read/put/list/delete/restore a secret, use a key, and
// stop the server with SIGTERM. Nothing here is faked.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "keyhold")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

type runningServer struct {
	cmd    *exec.Cmd
	stderr *lockedBuffer
	done   chan struct{} // closed when the process has exited
	err    error         // its exit error, valid once done is closed
	urls   []string
}

type lockedBuffer struct {
	mu chan struct{}
	b  bytes.Buffer
}

func newLockedBuffer() *lockedBuffer { return &lockedBuffer{mu: make(chan struct{}, 1)} }

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu <- struct{}{}
	defer func() { <-l.mu }()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu <- struct{}{}
	defer func() { <-l.mu }()
	return l.b.String()
}

var listeningRE = regexp.MustCompile(`url=(https?://127\.0\.0\.1:\d+)`)

func startBinaryServer(t *testing.T, bin, dataDir string) *runningServer {
	t.Helper()
	cmd := exec.Command(bin, "server", "--data-dir", dataDir, "--listen", "127.0.0.1:0", "--tls-listen", "127.0.0.1:0")
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	rs := &runningServer{cmd: cmd, stderr: newLockedBuffer(), done: make(chan struct{})}
	found := make(chan string, 4)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			rs.stderr.Write([]byte(line + "\n"))
			if m := listeningRE.FindStringSubmatch(line); m != nil && strings.Contains(line, "listening") {
				found <- m[1]
			}
		}
	}()
	go func() { rs.err = cmd.Wait(); close(rs.done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-rs.done
	})
	deadline := time.After(30 * time.Second)
	for len(rs.urls) < 2 {
		select {
		case u := <-found:
			rs.urls = append(rs.urls, u)
		case <-rs.done:
			t.Fatalf("server exited early: %v\n%s", rs.err, rs.stderr.String())
		case <-deadline:
			t.Fatalf("server did not log two listener URLs:\n%s", rs.stderr.String())
		}
	}
	return rs
}

type cli struct {
	t   *testing.T
	bin string
	env []string
}

func (c cli) run(stdin string, args ...string) (string, string, error) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, args...)
	cmd.Env = c.env
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

func (c cli) ok(stdin string, args ...string) string {
	c.t.Helper()
	out, stderr, err := c.run(stdin, args...)
	if err != nil {
		c.t.Fatalf("keyhold %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, stderr)
	}
	return out
}

func TestBinaryTour(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildBinary(t)
	dataDir := filepath.Join(t.TempDir(), "data")
	srv := startBinaryServer(t, bin, dataDir)

	var httpURL, httpsURL string
	for _, u := range srv.urls {
		if strings.HasPrefix(u, "https://") {
			httpsURL = u
		} else {
			httpURL = u
		}
	}
	if httpURL == "" || httpsURL == "" {
		t.Fatalf("listener URLs = %v", srv.urls)
	}
	credsPath := filepath.Join(dataDir, "root-credentials.json")
	raw, err := os.ReadFile(credsPath)
	if err != nil {
		t.Fatal(err)
	}
	var creds map[string]string
	if err := json.Unmarshal(raw, &creds); err != nil {
		t.Fatal(err)
	}
	if creds["endpoint"] != httpsURL || creds["access_key_id"] == "" || creds["access_key_secret"] == "" {
		t.Fatalf("root-credentials.json = endpoint %q, id set %v", creds["endpoint"], creds["access_key_id"] != "")
	}
	logs := srv.stderr.String()
	if strings.Contains(logs, creds["access_key_secret"]) {
		t.Fatal("the server logged the root access key secret")
	}
	if !strings.Contains(logs, credsPath) {
		t.Errorf("the server did not log the credentials file path:\n%s", logs)
	}

	home := t.TempDir()
	c := cli{t: t, bin: bin, env: []string{"HOME=" + home, "PATH=" + os.Getenv("PATH"), "KEYHOLD_CONFIG=" + filepath.Join(home, "config.json")}}
	c.ok("", "configure", "import", credsPath)
	if fi, err := os.Stat(filepath.Join(home, "config.json")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("config file: %v %v", fi, err)
	}

	c.ok("s3cr3t-db-password", "secret", "create", "MyDbCreds", "--value-file", "-", "--tag", "env=prod")
	if got := c.ok("", "secret", "get", "MyDbCreds"); got != "s3cr3t-db-password" {
		t.Fatalf("secret get = %q", got)
	}
	c.ok("n3w-password", "secret", "put", "MyDbCreds", "--version-id", "v2", "--value-file", "-")
	var versions struct {
		VersionIds struct {
			VersionId []struct {
				VersionId     string
				VersionStages struct{ VersionStage []string }
			}
		}
	}
	if err := json.Unmarshal([]byte(c.ok("", "secret", "versions", "MyDbCreds", "--output", "json")), &versions); err != nil {
		t.Fatal(err)
	}
	stages := map[string]string{}
	for _, v := range versions.VersionIds.VersionId {
		stages[v.VersionId] = strings.Join(v.VersionStages.VersionStage, ",")
	}
	if stages["v2"] != "ACSCurrent" || stages["v1"] != "ACSPrevious" {
		t.Errorf("stages = %v", stages)
	}
	c.ok("", "secret", "delete", "MyDbCreds", "--recovery-window-days", "7")
	_, stderr, err := c.run("", "secret", "get", "MyDbCreds")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(stderr, "Rejected.ResourceInDeleteWindow") {
		t.Errorf("get during delete window: err %v, stderr %q", err, stderr)
	}
	c.ok("", "secret", "restore", "MyDbCreds")
	if got := c.ok("", "secret", "get", "MyDbCreds"); got != "n3w-password" {
		t.Errorf("after restore = %q", got)
	}

	var key struct{ KeyMetadata struct{ KeyId string } }
	if err := json.Unmarshal([]byte(c.ok("", "key", "create", "--description", "app key", "--output", "json")), &key); err != nil {
		t.Fatal(err)
	}
	c.ok("", "key", "alias", "create", "alias/app", key.KeyMetadata.KeyId)
	blob := strings.TrimSpace(c.ok("hello", "key", "encrypt", "alias/app", "--plaintext-file", "-"))
	if got := c.ok(blob, "key", "decrypt", "--ciphertext-file", "-"); got != "hello" {
		t.Errorf("decrypt = %q", got)
	}

	// Plain HTTP endpoint with environment credentials, V1 signatures.
	env := append([]string{}, c.env...)
	env = append(env, "KEYHOLD_ENDPOINT="+httpURL, "KEYHOLD_ACCESS_KEY_ID="+creds["access_key_id"], "KEYHOLD_ACCESS_KEY_SECRET="+creds["access_key_secret"])
	c2 := cli{t: t, bin: bin, env: env}
	if got := c2.ok("", "secret", "get", "MyDbCreds", "--signature-scheme", "V1"); got != "n3w-password" {
		t.Errorf("over http with V1 = %q", got)
	}

	// Graceful shutdown on SIGTERM: exit status 0.
	srv.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-srv.done:
		if srv.err != nil {
			t.Errorf("server exit after SIGTERM: %v\n%s", srv.err, srv.stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("server did not stop on SIGTERM")
	}
	if !strings.Contains(srv.stderr.String(), "root credentials file exists") {
		t.Error("no warning about root-credentials.json")
	}
}
