// Package rootcreds reads the root credentials file a Keyhold server writes
// into its data directory at first start, for tests that then act as root.
package rootcreds

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// Creds is the content of DATA_DIR/root-credentials.json.
type Creds struct {
	ID       string `json:"access_key_id"`
	Secret   string `json:"access_key_secret"`
	Endpoint string `json:"endpoint"`
}

// Read returns the root credentials of the server whose data directory is
// dataDir, failing the test when the file is missing or not JSON.
func Read(t testing.TB, dataDir string) Creds {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dataDir, "root-credentials.json"))
	if err != nil {
		t.Fatalf("root credentials: %v", err)
	}
	var c Creds
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatalf("root credentials: %v", err)
	}
	return c
}
