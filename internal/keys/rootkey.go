package keys

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// RootKeySize is the size of the root key: AES-256.
const RootKeySize = 32

// RootKeySource yields the 256-bit root key. The file source is the default;
// a passphrase (KDF), a Shamir unseal or a PKCS#11 HSM plug in behind the
// same interface. Load returns a fresh slice the caller may zero.
type RootKeySource interface {
	Load(ctx context.Context) ([]byte, error)
}

// FileSource reads the root key from a file.
//
// File format: the key as standard Base64 (44 characters, optional trailing
// newline), which is what Create writes. Raw bytes are not accepted: a
// 32-character password would pass for a 32-byte key.
//
// Permissions: a file that group or others may access in any way is
// refused, not merely warned about, because anyone who reads it can decrypt
// every backup of the storage. Files mounted from an orchestrator's secret
// store need mode 0400/0600 (e.g. Kubernetes defaultMode: 0400).
type FileSource struct {
	Path string
	// Create writes a fresh random key when Path does not exist (first
	// start). Without it a missing file is an error, which is what a
	// deployment with an existing storage wants.
	Create bool
}

// Load implements RootKeySource.
func (f FileSource) Load(ctx context.Context) ([]byte, error) {
	if f.Path == "" {
		return nil, errors.New("root key file: no path configured")
	}
	key, err := f.read()
	if errors.Is(err, fs.ErrNotExist) && f.Create {
		if err := f.create(); err != nil {
			return nil, err
		}
		key, err = f.read()
	}
	return key, err
}

func (f FileSource) read() ([]byte, error) {
	fh, err := os.Open(f.Path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("root key file %s does not exist: %w", f.Path, fs.ErrNotExist)
		}
		return nil, fmt.Errorf("root key file: %w", err)
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, fmt.Errorf("root key file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("root key file %s is not a regular file", f.Path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("root key file %s is accessible by group or others (mode %04o); run chmod 600 on it", f.Path, perm)
	}
	if st.Size() > 256 {
		return nil, fmt.Errorf("root key file %s has the wrong size (want a 256-bit key)", f.Path)
	}
	data, err := io.ReadAll(io.LimitReader(fh, 257))
	defer clear(data)
	if err != nil {
		return nil, fmt.Errorf("root key file: %w", err)
	}
	text := bytes.TrimSpace(data)
	key := make([]byte, base64.StdEncoding.DecodedLen(len(text)))
	m, err := base64.StdEncoding.Decode(key, text)
	if err != nil || m != RootKeySize {
		clear(key)
		// The file's content stays out of the message.
		return nil, fmt.Errorf("root key file %s is malformed (want a 256-bit key in Base64)", f.Path)
	}
	return key[:RootKeySize], nil
}

// create writes a new random key atomically: a temp file in the same
// directory is fsynced, then hard-linked into place. Linking (unlike rename)
// never replaces a file another replica created meanwhile; the loser simply
// reads the winner's key.
func (f FileSource) create() error {
	dir := filepath.Dir(f.Path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("root key file: %w", err)
	}
	key := make([]byte, RootKeySize)
	defer clear(key)
	if _, err := rand.Read(key); err != nil {
		return fmt.Errorf("root key: %w", err)
	}
	text := []byte(base64.StdEncoding.EncodeToString(key) + "\n")
	defer clear(text)

	tmp, err := os.CreateTemp(dir, ".root-key-*")
	if err != nil {
		return fmt.Errorf("root key file: %w", err)
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName)
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("root key file: %w", err)
	}
	if _, err := tmp.Write(text); err != nil {
		tmp.Close()
		return fmt.Errorf("root key file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("root key file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("root key file: %w", err)
	}
	if err := os.Link(tmpName, f.Path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil // another process won the race; use its key
		}
		// Some file systems lack hard links: fall back to rename, which
		// is atomic but may replace a concurrently created file.
		if err := os.Rename(tmpName, f.Path); err != nil {
			return fmt.Errorf("root key file: %w", err)
		}
	}
	if d, err := os.Open(dir); err == nil {
		// Make the new directory entry durable too.
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// StaticSource is a root key held by the caller (tests, or a source that
// derives the key elsewhere). Load returns a copy.
type StaticSource []byte

// Load implements RootKeySource.
func (s StaticSource) Load(context.Context) ([]byte, error) { return bytes.Clone(s), nil }
