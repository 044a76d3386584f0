package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/keyhold/keyhold/internal/iam"
)

// RootCredentialsFile is the bootstrap file, relative to the data directory.
const RootCredentialsFile = "root-credentials.json"

// DefaultDataDir is where the server keeps its data unless --data-dir says
// otherwise: $XDG_DATA_HOME/keyhold, else ~/.local/share/keyhold (the XDG
// base-directory default, so the data sits with other applications' data
// rather than in a new dot-directory). Without a home directory it falls
// back to ./keyhold-data, which at least is visible to the operator.
func DefaultDataDir() string {
	// The XDG spec says a relative XDG_DATA_HOME is invalid and ignored.
	if x := os.Getenv("XDG_DATA_HOME"); x != "" && filepath.IsAbs(x) {
		return filepath.Join(x, "keyhold")
	}
	if home, err := os.UserHomeDir(); err == nil && home != "" {
		return filepath.Join(home, ".local", "share", "keyhold")
	}
	return "keyhold-data"
}

// EnsureDataDir creates the data directory with mode 0700 when missing. An
// existing directory keeps the mode its operator gave it.
func EnsureDataDir(dir string) error {
	if dir == "" {
		return errors.New("data directory: no path given")
	}
	fi, err := os.Stat(dir)
	if err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("data directory %s exists and is not a directory", dir)
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("data directory: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	// Set the mode explicitly: MkdirAll's is filtered by the umask.
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	return nil
}

// RootCredentialsExist reports whether the bootstrap file is still in dir,
// and its path, so that the server can warn at every start until the
// operator has imported and deleted it.
func RootCredentialsExist(dir string) (string, bool) {
	path := filepath.Join(dir, RootCredentialsFile)
	_, err := os.Lstat(path)
	return path, err == nil
}

// WriteRootCredentials writes the account's root access key pair to
// dir/root-credentials.json as
//
//	{"access_key_id": "...", "access_key_secret": "...", "endpoint": "..."}
//
// with mode 0600. It never overwrites: an existing file is an error, since
// it may hold the only copy of an earlier key. The file appears whole or not
// at all (written to a temporary file, then hard-linked into place, which
// fails if the name exists). Errors name the path, never the secret.
func WriteRootCredentials(dir string, pair iam.AccessKeyPair, endpoint string) (path string, err error) {
	path = filepath.Join(dir, RootCredentialsFile)
	if _, err := os.Lstat(path); err == nil {
		return path, fmt.Errorf("%s already exists: refusing to overwrite it", path)
	}
	data, err := rootCredentialsJSON(pair, endpoint)
	if err != nil {
		return path, err
	}
	defer clear(data)

	f, err := os.CreateTemp(dir, "."+RootCredentialsFile+".tmp-*") // O_EXCL, mode 0600
	if err != nil {
		return path, fmt.Errorf("write root credentials: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // the link below keeps the data; drop the temporary name
	if _, err := f.Write(data); err != nil {
		f.Close()
		return path, fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return path, fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return path, fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return path, fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return path, fmt.Errorf("%s already exists: refusing to overwrite it", path)
		}
		return path, fmt.Errorf("write root credentials: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync() // make the new name durable; best effort
		d.Close()
	}
	return path, nil
}

// rootCredentialsJSON renders the file in its documented one-line layout,
// keys in a fixed order.
func rootCredentialsJSON(pair iam.AccessKeyPair, endpoint string) ([]byte, error) {
	var out []byte
	for i, kv := range [][2]string{
		{"access_key_id", pair.AccessKeyID},
		{"access_key_secret", pair.AccessKeySecret},
		{"endpoint", endpoint},
	} {
		v, err := json.Marshal(kv[1])
		if err != nil {
			return nil, errors.New("encode root credentials") // no value in the message
		}
		if i == 0 {
			out = append(out, '{')
		} else {
			out = append(out, ", "...)
		}
		out = append(out, '"')
		out = append(out, kv[0]...)
		out = append(out, `": `...)
		out = append(out, v...)
		clear(v)
	}
	return append(out, "}\n"...), nil
}
