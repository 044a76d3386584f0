package migrate

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/keyhold/keyhold/internal/keys"
	"github.com/keyhold/keyhold/internal/store"
	"github.com/keyhold/keyhold/internal/store/bolt"
)

// Backup file: gzip of JSON lines — a header, one line per record, and a
// trailer with the per-table summary. Records are as stored (ciphertext);
// the root key is never in the file, only its check value, which is itself
// ciphertext and lets a restore tell whether the target's key is the one.
const backupFormat = "keyhold-backup"

type header struct {
	Format       string    `json:"format"`
	Version      int       `json:"version"`
	Created      time.Time `json:"created"`
	RootKeyCheck []byte    `json:"root_key_check"` // base64 in JSON
}

type line struct {
	T   string   `json:"t,omitempty"`
	K   []byte   `json:"k,omitempty"`
	V   []byte   `json:"v,omitempty"`
	End *Summary `json:"end,omitempty"`
}

// Backup writes every record of st, from one consistent snapshot, to w.
// It works while servers are running on a shared (PostgreSQL) store.
func Backup(ctx context.Context, st store.Store, w io.Writer) (Summary, error) {
	zw := gzip.NewWriter(w)
	bw := bufio.NewWriter(zw)
	enc := json.NewEncoder(bw)
	var s summer
	var wroteHeader bool
	err := walkWithCheck(ctx, st, func(chk []byte) error {
		wroteHeader = true
		return enc.Encode(header{Format: backupFormat, Version: 1, Created: time.Now().UTC(), RootKeyCheck: chk})
	}, func(table string, kv store.KV) error {
		// A caller that has gone (a client that hung up on an online
		// backup) releases the snapshot now, not at the next failed write.
		if err := ctx.Err(); err != nil {
			return err
		}
		s.add(table, kv)
		return enc.Encode(line{T: table, K: []byte(kv.Key), V: kv.Value})
	})
	if err != nil {
		return nil, err
	}
	if !wroteHeader {
		return nil, errors.New("backup: the storage holds no deployment (no root key check value)")
	}
	sum := s.flush()
	if err := enc.Encode(line{End: &sum}); err != nil {
		return nil, err
	}
	if err := bw.Flush(); err != nil {
		return nil, err
	}
	return sum, zw.Close()
}

// walkWithCheck reads the root key check value and then every record, all
// in one snapshot.
func walkWithCheck(ctx context.Context, st store.Store, head func(chk []byte) error, fn func(string, store.KV) error) error {
	return st.View(ctx, func(tx store.Tx) error {
		chk, err := tx.Get(tableMeta, keyRootChk)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := head(chk); err != nil {
			return err
		}
		return walkTx(tx, fn)
	})
}

// ErrWrongRootKey is returned by Restore when the target's root key does
// not open the backup.
var ErrWrongRootKey = errors.New("the backup was made under another root key: restore refused (use the root key file of the deployment the backup came from)")

// Restore reads a backup from r into dst. rootKey is the root key source
// the target deployment will run with; it must open the backup's check
// value, and dst, when it already holds a deployment, must have the same
// one. dst must be empty unless force.
func Restore(ctx context.Context, r io.Reader, dst store.Store, rootKey keys.RootKeySource, force bool) (Summary, error) {
	br, err := openBackup(r)
	if err != nil {
		return nil, err
	}
	if err := checkRootKey(ctx, rootKey, br.h.RootKeyCheck); err != nil {
		return nil, err
	}
	if err := prepare(ctx, dst, force); err != nil {
		return nil, err
	}
	w := &writer{ctx: ctx, dst: dst}
	end, err := br.each(func(table string, kv store.KV) error {
		if err := w.add(table, kv); err != nil {
			return fmt.Errorf("write target: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w (restore incomplete: rerun it with --force from a complete file)", err)
	}
	if err := w.flush(); err != nil {
		return nil, fmt.Errorf("write target: %w", err)
	}
	return end, verify(ctx, dst, end)
}

// BackupInfo is what Verify learns from a backup file.
type BackupInfo struct {
	Created time.Time
	Summary Summary
}

// Verify reads a whole backup without writing anywhere and checks it as
// Restore would: the header, every record against the trailer's counts and
// checksums, and the gzip checksum. A truncated or damaged file is an
// error. When rootKey is not nil, the backup must also open with it.
func Verify(ctx context.Context, r io.Reader, rootKey keys.RootKeySource) (BackupInfo, error) {
	br, err := openBackup(r)
	if err != nil {
		return BackupInfo{}, err
	}
	if rootKey != nil {
		if err := checkRootKey(ctx, rootKey, br.h.RootKeyCheck); err != nil {
			return BackupInfo{}, err
		}
	}
	sum, err := br.each(func(string, store.KV) error { return ctx.Err() })
	if err != nil {
		return BackupInfo{}, err
	}
	return BackupInfo{Created: br.h.Created, Summary: sum}, nil
}

// backupReader reads a backup file: the header first, then the records.
type backupReader struct {
	br  *bufio.Reader
	dec *json.Decoder
	h   header
}

func openBackup(r io.Reader) (*backupReader, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, errors.New("not a keyhold backup (the file is empty or truncated)")
		}
		return nil, fmt.Errorf("not a keyhold backup: %w", err)
	}
	br := &backupReader{br: bufio.NewReader(zr)}
	br.dec = json.NewDecoder(br.br)
	if err := br.dec.Decode(&br.h); err != nil || br.h.Format != backupFormat {
		return nil, errors.New("not a keyhold backup (bad header)")
	}
	if br.h.Version != 1 {
		return nil, fmt.Errorf("backup format version %d is not supported by this build", br.h.Version)
	}
	return br, nil
}

// each calls fn for every record, then checks what it read against the
// trailer and reads on to the end of the gzip stream, whose checksum and
// length catch a file cut after the trailer line. It returns the trailer.
func (br *backupReader) each(fn func(table string, kv store.KV) error) (Summary, error) {
	var s summer
	var end *Summary
	for end == nil {
		var l line
		if err := br.dec.Decode(&l); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, fmt.Errorf("read backup: %w", truncated(err))
		}
		if l.End != nil {
			end = l.End
			break
		}
		kv := store.KV{Key: string(l.K), Value: l.V}
		s.add(l.T, kv)
		if err := fn(l.T, kv); err != nil {
			return nil, err
		}
	}
	if end == nil {
		return nil, errors.New("the backup is truncated (no trailer)")
	}
	rest, err := io.ReadAll(io.MultiReader(br.dec.Buffered(), br.br))
	if err != nil {
		return nil, fmt.Errorf("the backup is damaged or truncated after its trailer: %w", truncated(err))
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, errors.New("the backup is damaged: data after its trailer")
	}
	if err := s.flush().diff(*end); err != nil {
		return nil, fmt.Errorf("the backup is damaged: %w", err)
	}
	return *end, nil
}

// truncated names the usual cause of an unexpected EOF.
func truncated(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("the file is truncated: %w", err)
	}
	return err
}

// checkRootKey opens the check value with the root key, using keys' own
// verification on a scratch store that holds only that record.
func checkRootKey(ctx context.Context, src keys.RootKeySource, chk []byte) error {
	key, err := src.Load(ctx)
	if err != nil {
		return err
	}
	b, err := keys.NewBarrier(key)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "keyhold-restore")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	scratch, err := bolt.Open(filepath.Join(dir, "check.db"))
	if err != nil {
		return err
	}
	defer scratch.Close()
	if err := scratch.Update(ctx, func(tx store.Tx) error { return tx.Put(tableMeta, keyRootChk, chk) }); err != nil {
		return err
	}
	if err := b.VerifyRootKey(ctx, scratch); err != nil {
		if errors.Is(err, keys.ErrRootKeyMismatch) {
			return ErrWrongRootKey
		}
		return err
	}
	return nil
}
