package server

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyhold/keyhold/internal/iam"
)

func TestWriteRootCredentials(t *testing.T) {
	dir := t.TempDir()
	pair := iam.AccessKeyPair{AccessKeyID: "LTAI0123456789abcdefABCD", AccessKeySecret: `sec"ret\value`}

	path, err := WriteRootCredentials(dir, pair, "https://127.0.0.1:8443")
	if err != nil {
		t.Fatal(err)
	}
	if path != filepath.Join(dir, RootCredentialsFile) {
		t.Fatalf("path %s", path)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"access_key_id": "LTAI0123456789abcdefABCD", "access_key_secret": "sec\"ret\\value", "endpoint": "https://127.0.0.1:8443"}` + "\n"
	if string(got) != want {
		t.Fatalf("content\n got %s\nwant %s", got, want)
	}
	var parsed map[string]string
	if err := json.Unmarshal(got, &parsed); err != nil || parsed["access_key_secret"] != pair.AccessKeySecret {
		t.Fatalf("does not round-trip: %v %v", parsed, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("directory holds %d entries, want only the credentials file", len(entries))
	}
}

func TestWriteRootCredentialsRefusesToOverwrite(t *testing.T) {
	dir := t.TempDir()
	first := iam.AccessKeyPair{AccessKeyID: "LTAIfirst", AccessKeySecret: "firstsecret"}
	if _, err := WriteRootCredentials(dir, first, "http://127.0.0.1:8080"); err != nil {
		t.Fatal(err)
	}
	second := iam.AccessKeyPair{AccessKeyID: "LTAIsecond", AccessKeySecret: "SECONDSECRETMARKER"}
	_, err := WriteRootCredentials(dir, second, "http://127.0.0.1:8080")
	if err == nil {
		t.Fatal("existing credentials file overwritten")
	}
	if strings.Contains(err.Error(), "SECONDSECRETMARKER") {
		t.Fatal("error message holds the secret")
	}
	got, _ := os.ReadFile(filepath.Join(dir, RootCredentialsFile))
	if !strings.Contains(string(got), "firstsecret") {
		t.Fatalf("file changed: %s", got)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("temporary file left behind: %d entries", len(entries))
	}
}

func TestRootCredentialsExist(t *testing.T) {
	dir := t.TempDir()
	if _, ok := RootCredentialsExist(dir); ok {
		t.Fatal("reported in an empty directory")
	}
	if _, err := WriteRootCredentials(dir, iam.AccessKeyPair{AccessKeyID: "a", AccessKeySecret: "b"}, "e"); err != nil {
		t.Fatal(err)
	}
	path, ok := RootCredentialsExist(dir)
	if !ok || path != filepath.Join(dir, RootCredentialsFile) {
		t.Fatalf("got %s, %v", path, ok)
	}
	os.Remove(path)
	if _, ok := RootCredentialsExist(dir); ok {
		t.Fatal("reported after deletion")
	}
}

func TestEnsureDataDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "keyhold")
	for range 2 { // idempotent
		if err := EnsureDataDir(dir); err != nil {
			t.Fatal(err)
		}
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Fatalf("mode %v, want a 0700 directory", fi.Mode())
	}
	file := filepath.Join(t.TempDir(), "f")
	os.WriteFile(file, nil, 0o600)
	if err := EnsureDataDir(file); err == nil {
		t.Fatal("a regular file accepted as data directory")
	}
	if err := EnsureDataDir(""); err == nil {
		t.Fatal("empty path accepted")
	}
}

func TestDefaultDataDir(t *testing.T) {
	t.Setenv("HOME", "/home/alice")
	t.Setenv("XDG_DATA_HOME", "")
	if got := DefaultDataDir(); got != "/home/alice/.local/share/keyhold" {
		t.Errorf("without XDG_DATA_HOME: %s", got)
	}
	t.Setenv("XDG_DATA_HOME", "/srv/data")
	if got := DefaultDataDir(); got != "/srv/data/keyhold" {
		t.Errorf("with XDG_DATA_HOME: %s", got)
	}
	t.Setenv("XDG_DATA_HOME", "relative/data") // invalid per the XDG spec
	if got := DefaultDataDir(); got != "/home/alice/.local/share/keyhold" {
		t.Errorf("with relative XDG_DATA_HOME: %s", got)
	}
}
