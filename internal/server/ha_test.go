package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	kms "github.com/alibabacloud-go/kms-20160120/v3/client"
	"github.com/alibabacloud-go/tea/tea"

	"github.com/keyhold/keyhold/client"
	"github.com/keyhold/keyhold/internal/keys"
	"github.com/keyhold/keyhold/internal/migrate"
	"github.com/keyhold/keyhold/internal/server"
	"github.com/keyhold/keyhold/internal/store/postgres/pgtest"
	"github.com/keyhold/keyhold/internal/testutil/poll"
	"github.com/keyhold/keyhold/internal/testutil/rootcreds"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// startReplica starts a server on storage (a postgres URL, or "" for the
// embedded store) in its own data dir, with the root key file at keyFile
// ("" = DATA_DIR/root.key). Credentials are copied from creds (the first
// replica's) when given.
func startReplica(t *testing.T, storage, keyFile string, creds *testServer, mutate ...func(*server.Config)) (*testServer, error) {
	t.Helper()
	dir := t.TempDir()
	logs := &syncBuffer{}
	cfg := server.Config{
		DataDir:     dir,
		Storage:     storage,
		RootKeyFile: keyFile,
		Listen:      "127.0.0.1:0",
		TLSListen:   "127.0.0.1:0",
		Logger:      slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		LeaseTTL:    1500 * time.Millisecond,
	}
	for _, m := range mutate {
		m(&cfg)
	}
	srv, err := server.Start(context.Background(), cfg)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { srv.Close() })
	ts := &testServer{Server: srv, dir: dir, logs: logs}
	if creds != nil {
		ts.keyID, ts.keySecret = creds.keyID, creds.keySecret
		return ts, nil
	}
	c := rootcreds.Read(t, dir)
	ts.keyID, ts.keySecret = c.ID, c.Secret
	return ts, nil
}

func mustReplica(t *testing.T, storage, keyFile string, creds *testServer, mutate ...func(*server.Config)) *testServer {
	t.Helper()
	ts, err := startReplica(t, storage, keyFile, creds, mutate...)
	if err != nil {
		t.Fatalf("start replica: %v", err)
	}
	return ts
}

type deployment struct {
	Storage      string
	ServedBy     string
	Leader       string
	LeaderSince  string
	ReplicaCount int
	Replicas     struct {
		Replica []struct {
			ReplicaId string
			Online    bool
			Leader    bool
		}
	}
}

func describeDeployment(t *testing.T, ts *testServer) deployment {
	t.Helper()
	c, err := client.New(client.Config{Endpoint: ts.HTTPSURL, AccessKeyID: ts.keyID, AccessKeySecret: ts.keySecret, CACertPEM: ts.CACertPEM()})
	if err != nil {
		t.Fatal(err)
	}
	var d deployment
	if err := c.Call(context.Background(), client.VersionKeyhold, "DescribeDeployment", nil, &d); err != nil {
		t.Fatalf("DescribeDeployment: %v", err)
	}
	return d
}

func writeKeyFile(t *testing.T) string {
	t.Helper()
	k := make([]byte, keys.RootKeySize)
	rand.Read(k)
	path := filepath.Join(t.TempDir(), "other.key")
	if err := os.WriteFile(path, []byte(base64.StdEncoding.EncodeToString(k)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestThreeReplicas(t *testing.T) {
	dsn := pgtest.Shared(t).DSN(t)
	r1 := mustReplica(t, dsn, "", nil, func(c *server.Config) { c.ReplicaID = "r1" })
	keyFile := filepath.Join(r1.dir, "root.key")
	r2 := mustReplica(t, dsn, keyFile, r1, func(c *server.Config) { c.ReplicaID = "r2" })
	r3 := mustReplica(t, dsn, keyFile, r1, func(c *server.Config) { c.ReplicaID = "r3" })
	replicas := []*testServer{r1, r2, r3}
	if _, err := os.Stat(filepath.Join(r2.dir, "root-credentials.json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a joining replica wrote root credentials again: %v", err)
	}

	t.Run("WritesAreReadEverywhere", func(t *testing.T) {
		for i, w := range replicas {
			name := fmt.Sprintf("shared/%d", i)
			must(w.sdk(t, sdkModes[1]).CreateSecret(&kms.CreateSecretRequest{
				SecretName: tea.String(name), VersionId: tea.String("v1"), SecretData: tea.String("value-" + name)}))
			for _, r := range replicas {
				got := must(r.sdk(t, sdkModes[1]).GetSecretValue(&kms.GetSecretValueRequest{SecretName: tea.String(name)}))
				if tea.StringValue(got.Body.SecretData) != "value-"+name {
					t.Fatalf("replica read %q", tea.StringValue(got.Body.SecretData))
				}
			}
		}
		// An update on one replica is what the others serve next.
		must(r3.sdk(t, sdkModes[0]).PutSecretValue(&kms.PutSecretValueRequest{SecretName: tea.String("shared/0"), VersionId: tea.String("v2"), SecretData: tea.String("new")}))
		got := must(r1.sdk(t, sdkModes[0]).GetSecretValue(&kms.GetSecretValueRequest{SecretName: tea.String("shared/0")}))
		if tea.StringValue(got.Body.VersionId) != "v2" {
			t.Fatalf("r1 serves version %s after r3's put", tea.StringValue(got.Body.VersionId))
		}
		// Snapshots agree (same secrets, versions, stages, values, tags).
		if a, b := snapshot(t, r1.sdk(t, sdkModes[1])), snapshot(t, r2.sdk(t, sdkModes[1])); a != b {
			t.Fatalf("replicas disagree:\n%s\n%s", a, b)
		}
	})

	t.Run("NonceReplayedToAnotherReplica", func(t *testing.T) {
		p := r1.v1Params("DescribeSecret", time.Now(), map[string]string{"SecretName": "shared/0"})
		req := r1.v1Request(t, p)
		if res := rawDo(t, req); res.Status != 200 {
			t.Fatalf("first request: %d %s", res.Status, res.Body)
		}
		for _, other := range []*testServer{r2, r3} {
			replay, err := http.NewRequest(http.MethodPost, other.HTTPURL+"/?"+req.URL.RawQuery, nil)
			if err != nil {
				t.Fatal(err)
			}
			if res := rawDo(t, replay); res.Status != 400 || res.Code != "SignatureNonceUsed" {
				t.Fatalf("replay on another replica: %d %q, want 400 SignatureNonceUsed", res.Status, res.Code)
			}
		}
	})

	t.Run("WrongRootKeyRefused", func(t *testing.T) {
		_, err := startReplica(t, dsn, writeKeyFile(t), r1)
		if !errors.Is(err, keys.ErrRootKeyMismatch) {
			t.Fatalf("replica with another root key: %v, want a root key mismatch", err)
		}
		// A missing key file is not replaced by a new key on shared storage.
		_, err = startReplica(t, dsn, "", r1)
		if err == nil || !strings.Contains(err.Error(), "does not exist") {
			t.Fatalf("replica without the root key file: %v", err)
		}
	})

	t.Run("EveryReplicaServesTheDeploymentCA", func(t *testing.T) {
		for _, r := range replicas[1:] {
			if !bytes.Equal(r.CACertPEM(), r1.CACertPEM()) {
				t.Fatal("replicas serve different deployment CAs")
			}
			// The SDK pins r1's CA and talks TLS to r.
			r.keyID, r.keySecret = r1.keyID, r1.keySecret
			must(r.sdkWith(t, sdkModes[1], r1.keyID, r1.keySecret).ListSecrets(&kms.ListSecretsRequest{}))
		}
	})

	t.Run("ConsoleSessionOnAnyReplica", func(t *testing.T) {
		// A browser signed in on r1 is served by r2 (a load balancer need
		// not be sticky), and a sign-out on r2 ends it on r1 too.
		cookie := consoleSignIn(t, r1)
		page := consoleGet(t, r2, "/console/secrets", cookie)
		if page.StatusCode != http.StatusOK || !strings.Contains(page.body, "shared/0") {
			t.Fatalf("r2 with r1's session: %d", page.StatusCode)
		}
		csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page.body)
		if csrf == nil {
			t.Fatal("no CSRF token on the page")
		}
		form := url.Values{"csrf": {csrf[1]}}
		req, _ := http.NewRequest(http.MethodPost, r2.HTTPURL+"/console/signout", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", r2.HTTPURL)
		req.AddCookie(cookie)
		res, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusSeeOther {
			t.Fatalf("sign-out on r2: %d", res.StatusCode)
		}
		if after := consoleGet(t, r1, "/console/secrets", cookie); after.StatusCode != http.StatusSeeOther || !strings.Contains(after.Header.Get("Location"), "/console/signin") {
			t.Fatalf("r1 after sign-out on r2: %d %s", after.StatusCode, after.Header.Get("Location"))
		}
	})

	t.Run("OneLeaderAndFailover", func(t *testing.T) {
		var d deployment
		poll.Until(t, "a leader", func() bool {
			d = describeDeployment(t, r2)
			return d.Leader != ""
		})
		if d.Storage != server.StoragePostgres || d.ServedBy != "r2" {
			t.Fatalf("DescribeDeployment: %+v", d)
		}
		poll.Until(t, "three replicas online", func() bool {
			d = describeDeployment(t, r1)
			online := 0
			for _, r := range d.Replicas.Replica {
				if r.Online {
					online++
				}
			}
			return online >= 3
		})
		leading := 0
		var leader *testServer
		for _, r := range replicas {
			if r.Leading() {
				leading++
				leader = r
			}
		}
		if leading != 1 || leader.ReplicaID() != d.Leader || d.LeaderSince == "" {
			t.Fatalf("%d replicas lead; deployment says %q since %q", leading, d.Leader, d.LeaderSince)
		}
		leader.Close()
		var rest []*testServer
		for _, r := range replicas {
			if r != leader {
				rest = append(rest, r)
			}
		}
		poll.Until(t, "another replica to take the lease", func() bool { return rest[0].Leading() || rest[1].Leading() })
		// Exactly one: give a second taker every chance to appear.
		time.Sleep(2 * time.Second)
		if rest[0].Leading() == rest[1].Leading() {
			t.Fatalf("after failover: leading %v and %v, want exactly one", rest[0].Leading(), rest[1].Leading())
		}
		d = describeDeployment(t, rest[0])
		if d.Leader == leader.ReplicaID() || d.Leader == "" {
			t.Fatalf("leader after failover: %q", d.Leader)
		}
	})
}

// fixture writes secrets with several versions, stages, tags and a key.
func fixture(t *testing.T, ts *testServer) {
	t.Helper()
	c := ts.sdk(t, sdkModes[1])
	key := must(c.CreateKey(&kms.CreateKeyRequest{Description: tea.String("migrated key")}))
	for i := range 5 {
		name := fmt.Sprintf("app/secret-%d", i)
		must(c.CreateSecret(&kms.CreateSecretRequest{SecretName: tea.String(name), VersionId: tea.String("v1"),
			SecretData: tea.String(fmt.Sprintf("first-%d", i)), EncryptionKeyId: key.Body.KeyMetadata.KeyId,
			Tags: tea.String(fmt.Sprintf(`[{"TagKey":"team","TagValue":"t%d"}]`, i))}))
		must(c.PutSecretValue(&kms.PutSecretValueRequest{SecretName: tea.String(name), VersionId: tea.String("v2"), SecretData: tea.String(fmt.Sprintf("second-%d", i))}))
		must(c.PutSecretValue(&kms.PutSecretValueRequest{SecretName: tea.String(name), VersionId: tea.String("v3"), SecretData: tea.String("third"), VersionStages: tea.String(`["custom"]`)}))
	}
	must(c.DeleteSecret(&kms.DeleteSecretRequest{SecretName: tea.String("app/secret-4"), RecoveryWindowInDays: tea.String("7")}))
}

func fullSnapshot(t *testing.T, ts *testServer) string {
	t.Helper()
	c := ts.sdk(t, sdkModes[1])
	s := snapshot(t, c)
	list := must(c.ListKeys(&kms.ListKeysRequest{PageSize: tea.Int32(100)}))
	for _, k := range list.Body.Keys.Key {
		d := must(c.DescribeKey(&kms.DescribeKeyRequest{KeyId: k.KeyId}))
		s += fmt.Sprintf("key %s %s %s\n", tea.StringValue(k.KeyId), tea.StringValue(d.Body.KeyMetadata.Description), tea.StringValue(d.Body.KeyMetadata.KeyState))
	}
	return s
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestMigrateAndBackupRoundTrip(t *testing.T) {
	ctx := context.Background()
	pg := pgtest.Shared(t)
	emb := mustReplica(t, "", "", nil)
	fixture(t, emb)
	want := fullSnapshot(t, emb)
	keyFile := filepath.Join(t.TempDir(), "root.key")
	copyFile(t, filepath.Join(emb.dir, "root.key"), keyFile)
	emb.Close()

	// embedded -> PostgreSQL
	dsn := pg.DSN(t)
	copyStore(t, emb.dir, dsn, false)
	onPG := mustReplica(t, dsn, keyFile, emb)
	if got := fullSnapshot(t, onPG); got != want {
		t.Fatalf("after migrating to PostgreSQL:\n%s\nwant:\n%s", got, want)
	}
	// A second migration onto the now non-empty target is refused.
	src, err := migrate.Open(ctx, emb.dir)
	if err != nil {
		t.Fatal(err)
	}
	dst, err := migrate.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := migrate.Copy(ctx, src, dst, false); !errors.Is(err, migrate.ErrNotEmpty) {
		t.Fatalf("migrate onto a non-empty target: %v, want ErrNotEmpty", err)
	}
	src.Close()

	// Online backup of PostgreSQL while the replica runs.
	var backup bytes.Buffer
	if _, err := migrate.Backup(ctx, dst, &backup); err != nil {
		t.Fatal(err)
	}
	dst.Close()
	onPG.Close()
	if bytes.Contains(backup.Bytes(), []byte("second-1")) {
		t.Fatal("backup holds a secret value in plain form")
	}

	// PostgreSQL -> embedded
	back := t.TempDir()
	copyStore(t, dsn, back, false)
	embBack := mustReplica(t, "", keyFile, emb, func(c *server.Config) { c.DataDir = back })
	if got := fullSnapshot(t, embBack); got != want {
		t.Fatalf("after migrating back to embedded:\n%s\nwant:\n%s", got, want)
	}
	embBack.Close()

	// backup -> restore into an empty embedded deployment.
	restored := t.TempDir()
	st, err := migrate.Open(ctx, restored)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := migrate.Restore(ctx, bytes.NewReader(backup.Bytes()), st, keys.FileSource{Path: writeKeyFile(t)}, false); !errors.Is(err, migrate.ErrWrongRootKey) {
		t.Fatalf("restore under another root key: %v, want ErrWrongRootKey", err)
	}
	if empty, _ := server.IsEmpty(ctx, st); !empty {
		t.Fatal("a refused restore wrote to the target")
	}
	truncated := backup.Bytes()[:backup.Len()/2]
	if _, err := migrate.Restore(ctx, bytes.NewReader(truncated), st, keys.FileSource{Path: keyFile}, true); err == nil {
		t.Fatal("restore of a truncated backup succeeded")
	}
	if _, err := migrate.Restore(ctx, bytes.NewReader(backup.Bytes()), st, keys.FileSource{Path: keyFile}, true); err != nil {
		t.Fatal(err)
	}
	st.Close()
	embRestored := mustReplica(t, "", keyFile, emb, func(c *server.Config) { c.DataDir = restored })
	if got := fullSnapshot(t, embRestored); got != want {
		t.Fatalf("after restore:\n%s\nwant:\n%s", got, want)
	}
}

func copyStore(t *testing.T, from, to string, force bool) {
	t.Helper()
	ctx := context.Background()
	src, err := migrate.Open(ctx, from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := migrate.Open(ctx, to)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	sum, err := migrate.Copy(ctx, src, dst, force)
	if err != nil {
		t.Fatalf("migrate %s -> %s: %v", from, to, err)
	}
	if sum.Records() == 0 {
		t.Fatal("migrated nothing")
	}
}

var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

type pageResponse struct {
	*http.Response
	body string
}

func consoleGet(t *testing.T, ts *testServer, path string, cookies ...*http.Cookie) pageResponse {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, ts.HTTPURL+path, nil)
	for _, c := range cookies {
		req.AddCookie(c)
	}
	res, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return pageResponse{res, string(b)}
}

// consoleSignIn signs the root in on ts's console with its key pair, as
// the sign-in form does, and returns the session cookie.
func consoleSignIn(t *testing.T, ts *testServer) *http.Cookie {
	t.Helper()
	form := consoleGet(t, ts, "/console/signin")
	var signin *http.Cookie
	for _, c := range form.Cookies() {
		if c.Name == "kh_signin" {
			signin = c
		}
	}
	if signin == nil {
		t.Fatal("the sign-in page set no form token")
	}
	vals := url.Values{"login": {ts.keyID}, "password": {ts.keySecret}, "csrf": {signin.Value}}
	req, _ := http.NewRequest(http.MethodPost, ts.HTTPURL+"/console/signin", strings.NewReader(vals.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", ts.HTTPURL)
	req.AddCookie(signin)
	res, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	for _, c := range res.Cookies() {
		if c.Name == "kh_session" && c.Value != "" {
			return c
		}
	}
	t.Fatalf("sign-in: %d and no session cookie", res.StatusCode)
	return nil
}
