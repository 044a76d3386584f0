package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/spf13/cobra"
)

// credEnv lists every variable resolution reads; each test starts with all
// of them empty so that the machine's own environment cannot leak in.
var credEnv = []string{
	"KEYHOLD_ENDPOINT", "KEYHOLD_ACCESS_KEY_ID", "KEYHOLD_ACCESS_KEY_SECRET",
	"ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
	"KEYHOLD_PROFILE", "KEYHOLD_CA_FILE", "KEYHOLD_REGION_ID", "KEYHOLD_SIGNATURE_SCHEME",
}

// isolate points the CLI at a fresh config path and clears the environment.
func isolate(t *testing.T) (configFile string) {
	t.Helper()
	for _, k := range credEnv {
		t.Setenv(k, "")
	}
	configFile = filepath.Join(t.TempDir(), "cfgdir", "config.json")
	t.Setenv("KEYHOLD_CONFIG", configFile)
	return configFile
}

// run executes the CLI with stdin and returns stdout, stderr and the exit
// code.
func run(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := execute(context.Background(), args, stdio{in: strings.NewReader(stdin), out: &out, err: &errb})
	return out.String(), errb.String(), code
}

func writeConfig(t *testing.T, path string, cfg *config) {
	t.Helper()
	if err := saveConfig(path, cfg); err != nil {
		t.Fatal(err)
	}
}

func TestCredentialResolutionOrder(t *testing.T) {
	secretFile := filepath.Join(t.TempDir(), "ak-secret")
	os.WriteFile(secretFile, []byte("flag-secret\n"), 0o600)

	tests := []struct {
		name      string
		env       map[string]string
		flags     app
		wantID    string
		wantSec   string
		wantSrc   string
		wantEP    string
		wantErr   string
		noProfile bool
	}{
		{name: "default profile only", wantID: "prof-id", wantSec: "prof-secret", wantSrc: "profile default", wantEP: "https://prof:8443"},
		{name: "alibaba env beats profile",
			env:    map[string]string{"ALIBABA_CLOUD_ACCESS_KEY_ID": "ali-id", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "ali-secret"},
			wantID: "ali-id", wantSec: "ali-secret", wantSrc: "env ALIBABA_CLOUD_*", wantEP: "https://prof:8443"},
		{name: "keyhold env beats alibaba env",
			env: map[string]string{"KEYHOLD_ACCESS_KEY_ID": "kh-id", "KEYHOLD_ACCESS_KEY_SECRET": "kh-secret",
				"ALIBABA_CLOUD_ACCESS_KEY_ID": "ali-id", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "ali-secret", "KEYHOLD_ENDPOINT": "http://env:8080"},
			wantID: "kh-id", wantSec: "kh-secret", wantSrc: "env KEYHOLD_*", wantEP: "http://env:8080"},
		{name: "flags beat everything",
			env:    map[string]string{"KEYHOLD_ACCESS_KEY_ID": "kh-id", "KEYHOLD_ACCESS_KEY_SECRET": "kh-secret", "KEYHOLD_ENDPOINT": "http://env:8080"},
			flags:  app{accessKeyID: "flag-id", accessSecretFile: secretFile, endpoint: "https://flag:1"},
			wantID: "flag-id", wantSec: "flag-secret", wantSrc: "flags", wantEP: "https://flag:1"},
		{name: "KEYHOLD_PROFILE selects a profile",
			env:    map[string]string{"KEYHOLD_PROFILE": "other"},
			wantID: "other-id", wantSec: "other-secret", wantSrc: "profile other", wantEP: "https://other:8443"},
		{name: "--profile beats KEYHOLD_PROFILE",
			env:   map[string]string{"KEYHOLD_PROFILE": "missing"},
			flags: app{profile: "other"}, wantID: "other-id", wantSec: "other-secret", wantSrc: "profile other", wantEP: "https://other:8443"},
		{name: "named profile that does not exist", flags: app{profile: "nope"}, wantErr: `profile "nope" not found`},
		{name: "id flag without secret file", flags: app{accessKeyID: "x"}, wantErr: "go together"},
		{name: "half a pair in env", env: map[string]string{"KEYHOLD_ACCESS_KEY_ID": "kh-id"}, wantErr: "incomplete credentials from env KEYHOLD_*"},
		{name: "nothing configured", noProfile: true, wantErr: "no credentials"},
		{name: "env pair but no endpoint anywhere", noProfile: true,
			env: map[string]string{"KEYHOLD_ACCESS_KEY_ID": "kh-id", "KEYHOLD_ACCESS_KEY_SECRET": "kh-secret"}, wantErr: "no endpoint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfgPath := isolate(t)
			if !tt.noProfile {
				writeConfig(t, cfgPath, &config{DefaultProfile: "default", Profiles: map[string]*profile{
					"default": {Endpoint: "https://prof:8443", AccessKeyID: "prof-id", AccessKeySecret: "prof-secret"},
					"other":   {Endpoint: "https://other:8443", AccessKeyID: "other-id", AccessKeySecret: "other-secret"},
				}})
			}
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			a := tt.flags
			a.io = stdio{in: strings.NewReader(""), out: io.Discard, err: io.Discard}
			r, err := a.resolve()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.AccessKeyID != tt.wantID || r.AccessKeySecret != tt.wantSec || r.KeySource != tt.wantSrc || r.Endpoint != tt.wantEP {
				t.Fatalf("got id=%s src=%s ep=%s, want id=%s src=%s ep=%s", r.AccessKeyID, r.KeySource, r.Endpoint, tt.wantID, tt.wantSrc, tt.wantEP)
			}
		})
	}
}

func TestNoCredentialsNeverFallsBackToRootCredentialsFile(t *testing.T) {
	isolate(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "root-credentials.json"), []byte(`{"access_key_id":"a","access_key_secret":"b","endpoint":"http://127.0.0.1:1"}`), 0o600)
	t.Chdir(dir)
	_, stderr, code := run(t, "", "secret", "list")
	if code != exitError || !strings.Contains(stderr, "no credentials") {
		t.Fatalf("code=%d stderr=%q", code, stderr)
	}
}

func TestConfigureSetWritesMode0600(t *testing.T) {
	cfgPath := isolate(t)
	stdout, stderr, code := run(t, "super-secret-value\n", "configure", "set", "--profile", "lab",
		"--endpoint", "https://127.0.0.1:8443", "--access-key-id", "LTAIlab", "--access-key-secret-file", "-")
	if code != 0 {
		t.Fatalf("code=%d stderr=%s", code, stderr)
	}
	if strings.Contains(stdout+stderr, "super-secret-value") {
		t.Fatal("configure set printed the secret")
	}
	fi, err := os.Stat(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("config mode %04o, want 0600", fi.Mode().Perm())
	}
	di, _ := os.Stat(filepath.Dir(cfgPath))
	if di.Mode().Perm() != 0o700 {
		t.Errorf("config dir mode %04o, want 0700", di.Mode().Perm())
	}
	cfg, _, err := loadConfig()
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.Profiles["lab"]
	if p == nil || p.AccessKeySecret != "super-secret-value" || p.AccessKeyID != "LTAIlab" || cfg.DefaultProfile != "lab" {
		t.Fatalf("config = %+v %+v", cfg, p)
	}

	// A file someone loosened is rewritten 0600; only the given flag changes.
	os.Chmod(cfgPath, 0o644)
	if _, stderr, code := run(t, "", "configure", "set", "--profile", "lab", "--region-id", "cn-shanghai"); code != 0 {
		t.Fatalf("second set: %s", stderr)
	}
	fi, _ = os.Stat(cfgPath)
	cfg, _, _ = loadConfig()
	if fi.Mode().Perm() != 0o600 || cfg.Profiles["lab"].RegionID != "cn-shanghai" || cfg.Profiles["lab"].AccessKeySecret != "super-secret-value" {
		t.Fatalf("after update: mode %04o profile %+v", fi.Mode().Perm(), cfg.Profiles["lab"])
	}
	if entries, _ := os.ReadDir(filepath.Dir(cfgPath)); len(entries) != 1 {
		t.Errorf("temp files left behind: %v", entries)
	}
}

func TestConfigureSetNeedsAFullProfile(t *testing.T) {
	isolate(t)
	_, stderr, code := run(t, "", "configure", "set", "--profile", "x", "--endpoint", "https://h:1")
	if code != exitUsage || !strings.Contains(stderr, "needs --endpoint, --access-key-id and --access-key-secret-file") {
		t.Fatalf("code=%d stderr=%s", code, stderr)
	}
}

const testCAPEM = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"

func TestConfigureImportRootCredentials(t *testing.T) {
	isolate(t)
	dir := t.TempDir()
	credFile := filepath.Join(dir, "root-credentials.json")
	os.WriteFile(credFile, []byte(`{"access_key_id": "LTAIroot", "access_key_secret": "root-secret", "endpoint": "https://127.0.0.1:8443"}`), 0o600)
	os.WriteFile(filepath.Join(dir, "ca.pem"), []byte(testCAPEM), 0o644)

	stdout, stderr, code := run(t, "", "configure", "import", credFile, "--profile", "demo")
	if code != 0 {
		t.Fatalf("code=%d stderr=%s", code, stderr)
	}
	if strings.Contains(stdout+stderr, "root-secret") {
		t.Fatal("import printed the secret")
	}
	cfg, _, err := loadConfig()
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.Profiles["demo"]
	if p == nil || p.AccessKeyID != "LTAIroot" || p.AccessKeySecret != "root-secret" || p.Endpoint != "https://127.0.0.1:8443" || p.CACert != testCAPEM {
		t.Fatalf("profile = %+v", p)
	}
	if cfg.DefaultProfile != "demo" {
		t.Errorf("first profile should become the default, got %q", cfg.DefaultProfile)
	}

	stdout, _, code = run(t, "", "configure", "get", "--profile", "demo")
	if code != 0 || strings.Contains(stdout, "root-secret") || !strings.Contains(stdout, "********") || !strings.Contains(stdout, "LTAIroot") {
		t.Fatalf("configure get: %q", stdout)
	}
	stdout, _, _ = run(t, "", "configure", "list", "-o", "json")
	var list struct{ Profiles []map[string]any }
	if err := json.Unmarshal([]byte(stdout), &list); err != nil || len(list.Profiles) != 1 || list.Profiles[0]["Profile"] != "demo" {
		t.Fatalf("configure list json: %v %q", err, stdout)
	}
	if strings.Contains(stdout, "root-secret") {
		t.Fatal("configure list printed the secret")
	}
}

func TestConfigureImportRejectsIncompleteFile(t *testing.T) {
	isolate(t)
	f := filepath.Join(t.TempDir(), "rc.json")
	os.WriteFile(f, []byte(`{"access_key_id": "x"}`), 0o600)
	if _, stderr, code := run(t, "", "configure", "import", f); code == 0 || !strings.Contains(stderr, "lacks") {
		t.Fatalf("code=%d stderr=%s", code, stderr)
	}
}

// fakeKMS answers a few actions with canned bodies and records the last
// request's parameters.
type fakeKMS struct {
	mu     sync.Mutex
	action string
	params url.Values
}

func (f *fakeKMS) last() (string, url.Values) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.action, f.params
}

func startFake(t *testing.T) (*fakeKMS, string) {
	f := &fakeKMS{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		action := r.Header.Get("x-acs-action")
		f.mu.Lock()
		f.action, f.params = action, r.PostForm
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch action {
		case "GetSecretValue":
			if r.PostForm.Get("SecretName") == "missing" {
				w.WriteHeader(404)
				io.WriteString(w, `{"RequestId":"req-404","Code":"Forbidden.ResourceNotFound","Message":"The resource does not exist."}`)
				return
			}
			io.WriteString(w, `{"RequestId":"r1","SecretName":"db","SecretData":"pa ss\nword","SecretDataType":"text","VersionId":"v1","VersionStages":{"VersionStage":["ACSCurrent"]}}`)
		case "CreateSecret":
			io.WriteString(w, `{"RequestId":"r2","Arn":"acs:kms:cn-hangzhou:1:secret/db","SecretName":"db","VersionId":"v1","SecretType":"Generic"}`)
		case "DescribeSecret":
			io.WriteString(w, `{"RequestId":"r3","SecretName":"db","Arn":"acs:kms:cn-hangzhou:1:secret/db","Description":"orders","Tags":{"Tag":[{"TagKey":"env","TagValue":"prod"}]}}`)
		case "ListSecrets":
			io.WriteString(w, `{"RequestId":"r4","PageNumber":1,"PageSize":10,"TotalCount":2,"SecretList":{"Secret":[{"SecretName":"a","SecretType":"Generic","CreateTime":"2026-01-01T00:00:00Z"},{"SecretName":"b","SecretType":"ECS"}]}}`)
		default:
			io.WriteString(w, `{"RequestId":"r0"}`)
		}
	}))
	t.Cleanup(srv.Close)
	return f, srv.URL
}

// withFake isolates the environment and points it at a fake server.
func withFake(t *testing.T) *fakeKMS {
	isolate(t)
	f, u := startFake(t)
	t.Setenv("KEYHOLD_ENDPOINT", u)
	t.Setenv("KEYHOLD_ACCESS_KEY_ID", "LTAItest")
	t.Setenv("KEYHOLD_ACCESS_KEY_SECRET", "test-secret")
	return f
}

func TestSecretGetPrintsExactValueOrJSON(t *testing.T) {
	withFake(t)
	stdout, stderr, code := run(t, "", "secret", "get", "db")
	if code != 0 || stdout != "pa ss\nword" {
		t.Fatalf("code=%d stdout=%q stderr=%s", code, stdout, stderr)
	}
	stdout, _, code = run(t, "", "secret", "get", "db", "--output", "json", "--stage", "ACSPrevious")
	var resp map[string]any
	if code != 0 || json.Unmarshal([]byte(stdout), &resp) != nil || resp["SecretData"] != "pa ss\nword" || resp["RequestId"] != "r1" {
		t.Fatalf("json: code=%d %q", code, stdout)
	}
}

func TestSecretGetSendsStageAndVersion(t *testing.T) {
	f := withFake(t)
	run(t, "", "secret", "get", "db", "--stage", "ACSPrevious", "--version-id", "v7")
	action, p := f.last()
	if action != "GetSecretValue" || p.Get("SecretName") != "db" || p.Get("VersionStage") != "ACSPrevious" || p.Get("VersionId") != "v7" {
		t.Fatalf("%s %v", action, p)
	}
}

func TestSecretCreateReadsValueFromStdinOrFile(t *testing.T) {
	f := withFake(t)
	stdout, stderr, code := run(t, "s3cr3t", "secret", "create", "db", "--value-file", "-", "--tag", "env=prod", "--description", "orders")
	if code != 0 {
		t.Fatalf("code=%d stderr=%s", code, stderr)
	}
	_, p := f.last()
	if p.Get("SecretData") != "s3cr3t" || p.Get("VersionId") != "v1" || p.Get("Tags") != `[{"TagKey":"env","TagValue":"prod"}]` || p.Get("Description") != "orders" {
		t.Fatalf("params %v", p)
	}
	if strings.Contains(stdout, "s3cr3t") || !strings.Contains(stdout, "SecretName:") || !strings.Contains(stdout, "acs:kms:cn-hangzhou:1:secret/db") {
		t.Fatalf("stdout %q", stdout)
	}

	file := filepath.Join(t.TempDir(), "v")
	os.WriteFile(file, []byte{0, 1, 2}, 0o600)
	if _, stderr, code := run(t, "", "secret", "create", "bin", "--value-file", file, "--data-type", "binary"); code != 0 {
		t.Fatal(stderr)
	}
	if _, p := f.last(); p.Get("SecretData") != "AAEC" || p.Get("SecretDataType") != "binary" {
		t.Fatalf("binary params %v", p)
	}
}

func TestSecretValueNeverFromArgv(t *testing.T) {
	withFake(t)
	for _, args := range [][]string{
		{"secret", "create", "db", "--value", "x"},
		{"secret", "put", "db", "--secret-data", "x"},
		{"--access-key-secret", "x", "secret", "list"},
	} {
		if _, _, code := run(t, "", args...); code != exitUsage {
			t.Errorf("%v: code %d, want usage error", args, code)
		}
	}
	// A terminal on stdin and no --value-file: refuse instead of waiting.
	var out, errb bytes.Buffer
	code := execute(context.Background(), []string{"secret", "put", "db"}, stdio{in: strings.NewReader(""), out: &out, err: &errb, inTTY: true})
	if code != exitUsage || !strings.Contains(errb.String(), "--value-file") {
		t.Fatalf("code=%d stderr=%s", code, errb.String())
	}
}

func TestAPIErrorPrintsCodeAndExits1(t *testing.T) {
	withFake(t)
	stdout, stderr, code := run(t, "", "secret", "get", "missing")
	if code != exitError {
		t.Fatalf("code = %d, want 1", code)
	}
	want := "Error: Forbidden.ResourceNotFound: The resource does not exist. (RequestId: req-404)\n"
	if stderr != want || stdout != "" {
		t.Fatalf("stderr=%q stdout=%q", stderr, stdout)
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	withFake(t)
	for _, args := range [][]string{
		{"secret", "get"},
		{"secret", "get", "a", "b"},
		{"secret", "nosuch"},
		{"nosuch"},
		{"secret", "list", "--output", "yaml"},
		{"secret", "list", "--bogus"},
		{"secret", "stage", "db", "ACSCurrent"},
		{"key", "alias", "create", "alias/x"},
	} {
		if _, stderr, code := run(t, "", args...); code != exitUsage || !strings.HasPrefix(stderr, "Error: ") {
			t.Errorf("%v: code=%d stderr=%q", args, code, stderr)
		}
	}
}

func TestTextAndJSONViews(t *testing.T) {
	withFake(t)
	stdout, _, code := run(t, "", "secret", "list")
	if code != 0 || !strings.Contains(stdout, "NAME") || !strings.Contains(stdout, "TYPE") ||
		!strings.Contains(stdout, "a ") || !strings.Contains(stdout, "ECS") {
		t.Fatalf("list text: %q", stdout)
	}
	stdout, _, _ = run(t, "", "secret", "describe", "db")
	for _, want := range []string{"SecretName:", "db", "Description:", "orders", "Tags:", "env=prod"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("describe text lacks %q: %q", want, stdout)
		}
	}
	stdout, _, _ = run(t, "", "secret", "list", "-o", "json")
	var resp struct {
		TotalCount int
		SecretList struct{ Secret []struct{ SecretName string } }
	}
	if err := json.Unmarshal([]byte(stdout), &resp); err != nil || resp.TotalCount != 2 || resp.SecretList.Secret[1].SecretName != "b" {
		t.Fatalf("list json: %v %q", err, stdout)
	}
}

func TestKeyEncryptSendsBase64Plaintext(t *testing.T) {
	f := withFake(t)
	if _, stderr, code := run(t, "hello", "key", "encrypt", "alias/app", "--plaintext-file", "-", "--context", "app=x"); code != 0 {
		t.Fatal(stderr)
	}
	action, p := f.last()
	if action != "Encrypt" || p.Get("Plaintext") != "aGVsbG8=" || p.Get("KeyId") != "alias/app" || p.Get("EncryptionContext") != `{"app":"x"}` {
		t.Fatalf("%s %v", action, p)
	}
}

func TestEveryCommandHasExamples(t *testing.T) {
	root := newRootCmd(stdio{in: strings.NewReader(""), out: io.Discard, err: io.Discard})
	var missing []string
	for _, group := range root.Commands() {
		if group.Name() == "server" || group.Name() == "help" || group.Name() == "completion" {
			continue
		}
		stack := []*cobra.Command{group}
		for len(stack) > 0 {
			c := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if c.Example == "" {
				missing = append(missing, c.CommandPath())
			}
			stack = append(stack, c.Commands()...)
		}
	}
	if len(missing) > 0 {
		t.Errorf("commands without examples: %v", missing)
	}
}

func TestTLSCAFileAndInsecureWarning(t *testing.T) {
	isolate(t)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"RequestId":"r","TotalCount":0,"SecretList":{"Secret":[]}}`)
	}))
	defer srv.Close()
	t.Setenv("KEYHOLD_ENDPOINT", srv.URL)
	t.Setenv("KEYHOLD_ACCESS_KEY_ID", "id")
	t.Setenv("KEYHOLD_ACCESS_KEY_SECRET", "sec")

	if _, stderr, code := run(t, "", "secret", "list"); code != exitError || !strings.Contains(stderr, "--ca-file") {
		t.Fatalf("unknown CA: code=%d stderr=%q", code, stderr)
	}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644)
	if _, stderr, code := run(t, "", "secret", "list", "--ca-file", ca); code != 0 || stderr != "" {
		t.Fatalf("--ca-file: code=%d stderr=%q", code, stderr)
	}
	if _, stderr, code := run(t, "", "secret", "list", "--insecure"); code != 0 || !strings.Contains(stderr, "Warning: TLS certificate verification is disabled") {
		t.Fatalf("--insecure: code=%d stderr=%q", code, stderr)
	}
}
