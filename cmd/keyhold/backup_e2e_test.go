package main

// Online backup (issue 8): `keyhold backup` against a running server on the
// embedded storage (the real binary, which holds the bbolt lock) while
// writes continue, restored into an empty deployment and served again;
// refusals (a non-admin key, another root key, a running target) and
// downloads cut short. TestBackupPostgres covers the PostgreSQL path.

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyhold/keyhold/client"
	"github.com/keyhold/keyhold/internal/keys"
	"github.com/keyhold/keyhold/internal/server"
	"github.com/keyhold/keyhold/internal/store/postgres/pgtest"
	"github.com/keyhold/keyhold/internal/testutil/rootcreds"
)

// backupOut is `keyhold backup --output json`.
type backupOut struct {
	Message string
	Records int
	Bytes   int64
	SHA256  string
	Tables  []struct {
		Table   string
		Records int
		SHA256  string
	}
}

// restoreOut is `keyhold restore --output json`.
type restoreOut struct {
	Message string
	Records int
	Tables  []struct {
		Table   string
		Records int
		SHA256  string
	}
}

func urlsOf(t *testing.T, rs *runningServer) (httpURL, httpsURL string) {
	t.Helper()
	for _, u := range rs.urls {
		if strings.HasPrefix(u, "https://") {
			httpsURL = u
		} else {
			httpURL = u
		}
	}
	if httpURL == "" || httpsURL == "" {
		t.Fatalf("listener URLs = %v", rs.urls)
	}
	return httpURL, httpsURL
}

func rootCreds(t *testing.T, dataDir string) (id, secret string) {
	t.Helper()
	c := rootcreds.Read(t, dataDir)
	return c.ID, c.Secret
}

func apiClient(t *testing.T, endpoint, caFile, id, secret string) *client.Client {
	t.Helper()
	var ca []byte
	if caFile != "" {
		var err error
		if ca, err = os.ReadFile(caFile); err != nil {
			t.Fatal(err)
		}
	}
	c, err := client.New(client.Config{Endpoint: endpoint, AccessKeyID: id, AccessKeySecret: secret, CACertPEM: ca, Timeout: 60 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// writer creates secrets w-00000, w-00001, … one after the other (each
// acknowledged before the next starts), so that any consistent snapshot
// holds exactly a prefix of them.
type writer struct {
	mu    sync.Mutex
	n     int
	err   error
	more  chan struct{} // signalled after each write
	stop  chan struct{}
	done  chan struct{}
	value func(i int) string
}

func startWriter(c *client.Client) *writer {
	w := &writer{more: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
		value: func(i int) string { return fmt.Sprintf("written-%05d-while-backing-up", i) }}
	go func() {
		defer close(w.done)
		for i := 0; ; i++ {
			select {
			case <-w.stop:
				return
			default:
			}
			_, err := c.CreateSecret(context.Background(), &client.CreateSecretRequest{
				SecretName: fmt.Sprintf("w-%05d", i), SecretData: w.value(i), VersionId: "v1"})
			w.mu.Lock()
			if err != nil {
				w.err = err
			} else {
				w.n = i + 1
			}
			w.mu.Unlock()
			select {
			case w.more <- struct{}{}:
			default:
			}
			if err != nil {
				return
			}
		}
	}()
	return w
}

func (w *writer) count() (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n, w.err
}

// waitCount waits (generously) until at least n secrets were written.
func (w *writer) waitCount(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		got, err := w.count()
		if err != nil {
			t.Fatalf("concurrent writer: %v", err)
		}
		if got >= n {
			return
		}
		select {
		case <-w.more:
		case <-deadline:
			t.Fatalf("concurrent writer wrote %d secrets in 60 s, want %d", got, n)
		}
	}
}

func (w *writer) halt(t *testing.T) int {
	t.Helper()
	close(w.stop)
	<-w.done
	n, err := w.count()
	if err != nil {
		t.Fatalf("concurrent writer: %v", err)
	}
	return n
}

func fileSHA(t *testing.T, path string) (string, int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:]), int64(len(b))
}

func listSecretNames(t *testing.T, c *client.Client) []string {
	t.Helper()
	var names []string
	for page := 1; ; page++ {
		out, err := c.ListSecrets(context.Background(), &client.ListSecretsRequest{Page: client.Page{PageNumber: page, PageSize: 100}})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range out.SecretList.Secret {
			names = append(names, s.SecretName)
		}
		if len(out.SecretList.Secret) < 100 {
			break
		}
	}
	sort.Strings(names)
	return names
}

func secretValue(t *testing.T, c *client.Client, name string) string {
	t.Helper()
	out, err := c.GetSecretValue(context.Background(), &client.GetSecretValueRequest{SecretName: name})
	if err != nil {
		t.Fatalf("GetSecretValue %s: %v", name, err)
	}
	return out.SecretData
}

// noBackupFiles fails when anything named like the backup, or a temporary
// file of one, is in dir.
func noBackupFiles(t *testing.T, dir, name string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() == name || strings.HasPrefix(e.Name(), ".keyhold-backup-") {
			t.Errorf("%s left in %s", e.Name(), dir)
		}
	}
}

func exitCode(err error) int {
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

func TestBackupOnlineEmbedded(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	ctx := context.Background()
	bin := buildBinary(t)
	dataDir := filepath.Join(t.TempDir(), "data")
	srv := startBinaryServer(t, bin, dataDir)
	httpURL, httpsURL := urlsOf(t, srv)
	rootID, rootSecret := rootCreds(t, dataDir)
	api := apiClient(t, httpsURL, filepath.Join(dataDir, "ca.pem"), rootID, rootSecret)

	home := t.TempDir()
	c := cli{t: t, bin: bin, env: []string{"HOME=" + home, "PATH=" + os.Getenv("PATH"), "KEYHOLD_CONFIG=" + filepath.Join(home, "config.json")}}
	c.ok("", "configure", "import", filepath.Join(dataDir, "root-credentials.json"))

	// A fixed set of secrets with two versions each.
	const fixed = 30
	for i := range fixed {
		name := fmt.Sprintf("fixed-%02d", i)
		if _, err := api.CreateSecret(ctx, &client.CreateSecretRequest{SecretName: name, SecretData: name + "-first", VersionId: "v1"}); err != nil {
			t.Fatal(err)
		}
		if _, err := api.PutSecretValue(ctx, &client.PutSecretValueRequest{SecretName: name, SecretData: name + "-second", VersionId: "v2"}); err != nil {
			t.Fatal(err)
		}
	}

	// Backups while another client keeps writing.
	w := startWriter(api)
	w.waitCount(t, 5)
	outDir := t.TempDir()
	viaDataDir := filepath.Join(outDir, "via-data-dir.khb")
	before, _ := w.count()
	out, stderr, err := c.run("", "backup", "--data-dir", dataDir, "--to", viaDataDir, "--output", "json")
	if err != nil {
		t.Fatalf("backup --data-dir of a running server: %v\n%s", err, stderr)
	}
	if after, _ := w.count(); after == before {
		// The command waits 1 s for the lock alone; writes take milliseconds.
		t.Errorf("no write completed while the backup command ran (%d secrets written)", after)
	}
	if !strings.Contains(stderr, "in use by a running server: backing up through its API") || !strings.Contains(stderr, "verifying") {
		t.Errorf("stderr does not say the backup went through the API and was verified:\n%s", stderr)
	}
	var b1 backupOut
	if err := json.Unmarshal([]byte(out), &b1); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	duringFirst, _ := w.count()
	w.waitCount(t, duringFirst+3) // writes went on after the first backup
	online := filepath.Join(outDir, "online.khb")
	var b2 backupOut
	if err := json.Unmarshal([]byte(c.ok("", "backup", "--to", online, "--output", "json")), &b2); err != nil {
		t.Fatal(err)
	}
	w.waitCount(t, duringFirst+6)
	written := w.halt(t)

	for _, f := range []struct {
		path string
		out  backupOut
	}{{viaDataDir, b1}, {online, b2}} {
		fi, err := os.Stat(f.path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %04o, want 0600", f.path, fi.Mode().Perm())
		}
		sum, size := fileSHA(t, f.path)
		if f.out.SHA256 != sum || f.out.Bytes != size || f.out.Records == 0 || len(f.out.Tables) == 0 {
			t.Errorf("summary %+v does not match the file (%d bytes, sha256 %s)", f.out, size, sum)
		}
		// Ciphertext only: no value in plain form, even decompressed.
		raw, _ := os.ReadFile(f.path)
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		plain, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range []string{"fixed-00-second", "fixed-29-first", w.value(0), rootSecret} {
			if bytes.Contains(plain, []byte(v)) {
				t.Fatalf("%s holds %q in plain form", f.path, v)
			}
		}
	}
	if b2.Records <= b1.Records {
		t.Errorf("the second backup (%d records) does not hold the writes made since the first (%d)", b2.Records, b1.Records)
	}
	noBackupFiles(t, outDir, "") // no temporary file left

	// Restore the first backup into an empty deployment with the same
	// root key, and serve it.
	restored := filepath.Join(t.TempDir(), "restored")
	if err := os.MkdirAll(restored, 0o700); err != nil {
		t.Fatal(err)
	}
	rootKey := filepath.Join(restored, "root.key")
	copyFile0600(t, filepath.Join(dataDir, "root.key"), rootKey)
	var r1 restoreOut
	if err := json.Unmarshal([]byte(c.ok("", "restore", "--from", viaDataDir, "--data-dir", restored, "--output", "json")), &r1); err != nil {
		t.Fatal(err)
	}
	if r1.Records != b1.Records || len(r1.Tables) != len(b1.Tables) {
		t.Fatalf("restored %d records in %d tables, the backup reported %d in %d", r1.Records, len(r1.Tables), b1.Records, len(b1.Tables))
	}
	for i := range r1.Tables {
		if r1.Tables[i] != b1.Tables[i] {
			t.Errorf("table %+v restored, %+v backed up", r1.Tables[i], b1.Tables[i])
		}
	}

	// The restore's target is refused while a server runs on it.
	srv2 := startBinaryServer(t, bin, restored)
	_, stderr, err = c.run("", "restore", "--from", viaDataDir, "--data-dir", restored, "--force")
	if exitCode(err) != 1 || !strings.Contains(stderr, "in use by a running keyhold server: stop it first") {
		t.Errorf("restore onto a running server: %v\n%s", err, stderr)
	}

	// Every secret in the backup reads through the API, and the writes
	// it holds are a prefix of the writer's (one consistent snapshot).
	_, https2 := urlsOf(t, srv2)
	api2 := apiClient(t, https2, filepath.Join(restored, "ca.pem"), rootID, rootSecret)
	names := listSecretNames(t, api2)
	var ws []string
	nFixed := 0
	for _, n := range names {
		switch {
		case strings.HasPrefix(n, "w-"):
			ws = append(ws, n)
		case strings.HasPrefix(n, "fixed-"):
			nFixed++
			if got := secretValue(t, api2, n); got != n+"-second" {
				t.Errorf("%s = %q after restore", n, got)
			}
		default:
			t.Errorf("unexpected secret %q after restore", n)
		}
	}
	if nFixed != fixed {
		t.Errorf("%d fixed secrets after restore, want %d", nFixed, fixed)
	}
	if len(ws) < 5 || len(ws) >= written {
		t.Errorf("the backup holds %d of the %d concurrent writes; want at least the 5 made before it and not the later ones", len(ws), written)
	}
	for i, n := range ws {
		if want := fmt.Sprintf("w-%05d", i); n != want {
			t.Fatalf("concurrent writes in the backup are not a prefix: %v", ws)
		}
		if got := secretValue(t, api2, n); got != w.value(i) {
			t.Errorf("%s = %q after restore", n, got)
		}
	}

	// A deployment with another root key refuses the backup and stays empty.
	other := filepath.Join(t.TempDir(), "other")
	otherKey := filepath.Join(t.TempDir(), "other.key")
	if _, err := (keys.FileSource{Path: otherKey, Create: true}).Load(ctx); err != nil {
		t.Fatal(err)
	}
	_, stderr, err = c.run("", "restore", "--from", online, "--data-dir", other, "--root-key-file", otherKey)
	if exitCode(err) != 1 || !strings.Contains(stderr, "another root key: restore refused") {
		t.Fatalf("restore under another root key: %v\n%s", err, stderr)
	}
	// Still empty: a restore without --force is accepted there.
	c.ok("", "restore", "--from", online, "--data-dir", other, "--root-key-file", rootKey)

	// A user with full access is not the deployment's administrator.
	if err := api.RAM(ctx, "CreateUser", map[string]string{"UserName": "ops"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := api.RAM(ctx, "AttachPolicyToUser", map[string]string{"PolicyType": "System", "PolicyName": "KeyholdFullAccess", "UserName": "ops"}, nil); err != nil {
		t.Fatal(err)
	}
	var ak client.CreateAccessKeyResponse
	if err := api.RAM(ctx, "CreateAccessKey", map[string]string{"UserName": "ops"}, &ak); err != nil {
		t.Fatal(err)
	}
	userEnv := append(append([]string{}, c.env...), "KEYHOLD_ENDPOINT="+httpURL,
		"KEYHOLD_ACCESS_KEY_ID="+ak.AccessKey.AccessKeyId, "KEYHOLD_ACCESS_KEY_SECRET="+ak.AccessKey.AccessKeySecret)
	cu := cli{t: t, bin: bin, env: userEnv}
	denied := filepath.Join(outDir, "denied.khb")
	_, stderr, err = cu.run("", "backup", "--online", "--to", denied)
	if exitCode(err) != 1 || !strings.Contains(stderr, "Forbidden") {
		t.Errorf("backup with a user's key: %v\n%s", err, stderr)
	}
	noBackupFiles(t, outDir, "denied.khb")
	userAPI := apiClient(t, httpURL, "", ak.AccessKey.AccessKeyId, ak.AccessKey.AccessKeySecret)
	var sink bytes.Buffer
	if _, err := userAPI.DownloadBackup(ctx, &sink); !client.IsCode(err, "Forbidden.NoPermission") || sink.Len() != 0 {
		t.Errorf("DownloadBackup with a user's key: %v, %d bytes", err, sink.Len())
	}

	// A data dir held by another deployment's server than the profile's:
	// the fallback's download does not open with that dir's root key.
	third := filepath.Join(t.TempDir(), "third")
	startBinaryServer(t, bin, third)
	_, stderr, err = c.run("", "backup", "--data-dir", third, "--to", filepath.Join(outDir, "wrong.khb"))
	if exitCode(err) != 1 || !strings.Contains(stderr, "does not serve the deployment in "+third) {
		t.Errorf("backup of a locked data dir through another deployment's server: %v\n%s", err, stderr)
	}
	noBackupFiles(t, outDir, "wrong.khb")

	// Downloads cut short, through a proxy, leave nothing at --to.
	for _, cut := range []struct {
		name, want string
		keep       func(n int) int // bytes passed on; -1 body cut by a reset
		abort      bool
	}{
		{"half, ended cleanly", "does not verify", func(n int) int { return n / 2 }, false},
		{"gzip trailer missing, ended cleanly", "does not verify", func(n int) int { return n - 4 }, false},
		{"half, connection reset", "cut short", func(n int) int { return n / 2 }, true},
	} {
		proxy := cuttingProxy(t, httpURL, cut.keep, cut.abort)
		cp := cli{t: t, bin: bin, env: append(append([]string{}, c.env...), "KEYHOLD_ENDPOINT="+proxy,
			"KEYHOLD_ACCESS_KEY_ID="+rootID, "KEYHOLD_ACCESS_KEY_SECRET="+rootSecret)}
		_, stderr, err := cp.run("", "backup", "--to", filepath.Join(outDir, "cut.khb"))
		if exitCode(err) != 1 || !strings.Contains(stderr, cut.want) {
			t.Errorf("%s: %v\n%s", cut.name, err, stderr)
		}
		noBackupFiles(t, outDir, "cut.khb")
	}

	// The trail shows the backups and the refusal, with no content.
	var events struct {
		Events struct {
			Event []struct {
				Action, Result, Stage, PrincipalName string
				Params                               map[string]string
			}
		}
	}
	if err := api.Keyhold(ctx, "ListAuditEvents", map[string]string{"EventAction": "keyhold:BackupDeployment", "MaxResults": "100"}, &events); err != nil {
		t.Fatal(err)
	}
	var ok, refused int
	for _, e := range events.Events.Event {
		if e.Stage == "Outcome" && e.Result == "OK" && e.PrincipalName == "root" {
			ok++
		}
		if e.Result == "Forbidden.NoPermission" && e.PrincipalName == "ops" {
			refused++
		}
		for k := range e.Params {
			if k != "RegionId" {
				t.Errorf("audit record carries parameter %s", k)
			}
		}
	}
	if ok < 2 || refused != 2 {
		t.Errorf("audit: %d successful backups (want >= 2), %d refused (want 2): %+v", ok, refused, events.Events.Event)
	}
}

func copyFile0600(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// cuttingProxy forwards API calls to upstream and passes on only keep(n)
// bytes of a streamed response of n bytes: ending the response cleanly, or
// resetting the connection when abort.
func cuttingProxy(t *testing.T, upstream string, keep func(int) int, abort bool) string {
	t.Helper()
	up, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		out := r.Clone(r.Context())
		out.RequestURI = ""
		out.URL.Scheme, out.URL.Host = up.Scheme, up.Host
		out.Host = r.Host // signed by the client
		resp, err := tr.RoundTrip(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		if resp.Header.Get("Content-Type") != "application/octet-stream" {
			w.Write(body)
			return
		}
		w.Write(body[:keep(len(body))])
		if abort {
			panic(http.ErrAbortHandler)
		}
	}))
	t.Cleanup(hs.Close)
	t.Cleanup(tr.CloseIdleConnections)
	return hs.URL
}

// TestBackupPostgres: a server on PostgreSQL is backed up both through its
// API and by reading the database while it runs; the two restore.
func TestBackupPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary, starts PostgreSQL")
	}
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	bin := buildBinary(t)
	dataDir := t.TempDir()
	srv, err := server.Start(ctx, server.Config{DataDir: dataDir, Storage: dsn, Listen: "127.0.0.1:0",
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	rootID, rootSecret := rootCreds(t, dataDir)
	api := apiClient(t, srv.HTTPURL, "", rootID, rootSecret)
	for i := range 10 {
		if _, err := api.CreateSecret(ctx, &client.CreateSecretRequest{SecretName: fmt.Sprintf("pg-%02d", i), SecretData: fmt.Sprintf("pg-value-%02d", i), VersionId: "v1"}); err != nil {
			t.Fatal(err)
		}
	}
	home := t.TempDir()
	c := cli{t: t, bin: bin, env: []string{"HOME=" + home, "PATH=" + os.Getenv("PATH"), "KEYHOLD_CONFIG=" + filepath.Join(home, "config.json"),
		"KEYHOLD_ENDPOINT=" + srv.HTTPURL, "KEYHOLD_ACCESS_KEY_ID=" + rootID, "KEYHOLD_ACCESS_KEY_SECRET=" + rootSecret}}
	outDir := t.TempDir()
	for _, args := range [][]string{
		{"--online"},
		{"--storage", dsn},
	} {
		file := filepath.Join(outDir, "pg.khb")
		var b backupOut
		if err := json.Unmarshal([]byte(c.ok("", append([]string{"backup", "--to", file, "--output", "json"}, args...)...)), &b); err != nil {
			t.Fatal(err)
		}
		if b.Records == 0 {
			t.Fatalf("backup %v: %+v", args, b)
		}
		restored := t.TempDir()
		key := filepath.Join(restored, "root.key")
		copyFile0600(t, filepath.Join(dataDir, "root.key"), key)
		var r restoreOut
		if err := json.Unmarshal([]byte(c.ok("", "restore", "--from", file, "--data-dir", restored, "--output", "json")), &r); err != nil {
			t.Fatal(err)
		}
		if r.Records != b.Records {
			t.Fatalf("backup %v: restored %d records of %d", args, r.Records, b.Records)
		}
		emb, err := server.Start(ctx, server.Config{DataDir: restored, Listen: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		api2 := apiClient(t, emb.HTTPURL, "", rootID, rootSecret)
		for i := range 10 {
			if got := secretValue(t, api2, fmt.Sprintf("pg-%02d", i)); got != fmt.Sprintf("pg-value-%02d", i) {
				t.Errorf("backup %v: pg-%02d = %q after restore", args, i, got)
			}
		}
		emb.Close()
		os.Remove(file)
	}
}
