// Package migrate copies a whole deployment's storage as stored — every
// table and record, still encrypted under the same root key — from one
// backend to another (Copy), or to and from a backup file (Backup,
// Restore). It reads from one consistent snapshot (a single View) and
// verifies what it wrote by count and SHA-256 per table. It never sees a
// plaintext secret or the root key; a restore only checks that the target's
// root key opens the backup's root key check value.
package migrate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/keyhold/keyhold/internal/store"
	"github.com/keyhold/keyhold/internal/store/bolt"
	"github.com/keyhold/keyhold/internal/store/postgres"
)

// Where keys keeps the root key check value (internal/keys: tableMeta,
// keyRootChk). A backup carries it in its header so that a restore can be
// refused before anything is written.
const (
	tableMeta  = "meta"
	keyRootChk = "rootkey-check"
)

// pageSize bounds the records read per List and written per Update.
const pageSize = 500

// ErrNotEmpty is returned when the target holds data and force is off.
var ErrNotEmpty = errors.New("the target storage is not empty (pass --force to replace its contents)")

// ErrLocked is wrapped by Open when the embedded storage is held by a
// running server (bbolt allows one process per file).
var ErrLocked = bolt.ErrLocked

// lockWait is how long Open waits for the embedded file's lock. A running
// server holds it for its lifetime, so waiting longer only delays the
// message (or the online fallback of `keyhold backup`).
const lockWait = time.Second

// Open opens a storage location: a postgres:// URL, or a data directory
// holding (or to hold) keyhold.db.
func Open(ctx context.Context, loc string) (store.Store, error) {
	if strings.HasPrefix(loc, "postgres://") || strings.HasPrefix(loc, "postgresql://") {
		return postgres.Open(ctx, loc)
	}
	if err := os.MkdirAll(loc, 0o700); err != nil {
		return nil, err
	}
	return bolt.Open(filepath.Join(loc, "keyhold.db"), bolt.WithOpenTimeout(lockWait))
}

// TableSum is one table's record count and checksum.
type TableSum struct {
	Table   string
	Records int
	SHA256  string // over (len key, key, len value, value) of every record, in key order
}

// Summary is the per-table checksums of a deployment, in table order.
type Summary []TableSum

// Records is the total record count.
func (s Summary) Records() int {
	n := 0
	for _, t := range s {
		n += t.Records
	}
	return n
}

// Equal reports identical summaries, or describes the first difference.
func (s Summary) diff(o Summary) error {
	m := map[string]TableSum{}
	for _, t := range o {
		m[t.Table] = t
	}
	for _, t := range s {
		got, ok := m[t.Table]
		if !ok {
			return fmt.Errorf("table %q missing in the target", t.Table)
		}
		if got != t {
			return fmt.Errorf("table %q differs: %d records in the source, %d in the target, or a checksum mismatch", t.Table, t.Records, got.Records)
		}
		delete(m, t.Table)
	}
	for name := range m {
		return fmt.Errorf("table %q exists only in the target", name)
	}
	return nil
}

// walk calls fn for every record of every table in one snapshot.
func walk(ctx context.Context, st store.Store, fn func(table string, kv store.KV) error) error {
	return st.View(ctx, func(tx store.Tx) error { return walkTx(tx, fn) })
}

// walkTx calls fn for every record of every table visible to tx, table by
// table in key order, a page at a time.
func walkTx(tx store.Tx, fn func(table string, kv store.KV) error) error {
	tl, ok := tx.(store.TableLister)
	if !ok {
		return errors.New("this storage cannot list its tables")
	}
	tables, err := tl.Tables()
	if err != nil {
		return err
	}
	for _, table := range tables {
		after := ""
		for {
			page, err := tx.List(table, "", after, pageSize)
			if err != nil {
				return err
			}
			for _, kv := range page {
				if err := fn(table, kv); err != nil {
					return err
				}
			}
			if len(page) < pageSize {
				break
			}
			after = page[len(page)-1].Key
		}
	}
	return nil
}

type summer struct {
	sums []TableSum
	h    hashState
}

type hashState struct {
	table string
	n     int
	h     interface {
		Write([]byte) (int, error)
		Sum([]byte) []byte
	}
}

func (s *summer) add(table string, kv store.KV) {
	if s.h.h == nil || s.h.table != table {
		s.flush()
		s.h = hashState{table: table, h: sha256.New()}
	}
	s.h.n++
	var l [8]byte
	for _, b := range [][]byte{[]byte(kv.Key), kv.Value} {
		n := len(b)
		for i := range l {
			l[i] = byte(n >> (56 - 8*i))
		}
		s.h.h.Write(l[:])
		s.h.h.Write(b)
	}
}

func (s *summer) flush() Summary {
	if s.h.h != nil {
		s.sums = append(s.sums, TableSum{Table: s.h.table, Records: s.h.n, SHA256: hex.EncodeToString(s.h.h.Sum(nil))})
		s.h = hashState{}
	}
	sort.Slice(s.sums, func(i, j int) bool { return s.sums[i].Table < s.sums[j].Table })
	return s.sums
}

// Sum computes the per-table summary of a store from one snapshot.
func Sum(ctx context.Context, st store.Store) (Summary, error) {
	var s summer
	err := walk(ctx, st, func(table string, kv store.KV) error { s.add(table, kv); return nil })
	if err != nil {
		return nil, err
	}
	return s.flush(), nil
}

// isEmpty reports a store without records.
func isEmpty(ctx context.Context, st store.Store) (bool, error) {
	empty := true
	err := st.View(ctx, func(tx store.Tx) error {
		tl, ok := tx.(store.TableLister)
		if !ok {
			return errors.New("this storage cannot list its tables")
		}
		tables, err := tl.Tables()
		empty = len(tables) == 0
		return err
	})
	return empty, err
}

// clearAll deletes every record of dst (for --force).
func clearAll(ctx context.Context, dst store.Store) error {
	for {
		var batch []struct{ table, key string }
		err := walk(ctx, dst, func(table string, kv store.KV) error {
			if len(batch) < pageSize {
				batch = append(batch, struct{ table, key string }{table, kv.Key})
			}
			return nil
		})
		if err != nil || len(batch) == 0 {
			return err
		}
		if err := dst.Update(ctx, func(tx store.Tx) error {
			for _, r := range batch {
				if err := tx.Delete(r.table, r.key); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return err
		}
	}
}

// writer batches records into Updates of pageSize.
type writer struct {
	ctx  context.Context
	dst  store.Store
	buf  []rec
	sumr summer
}

type rec struct {
	table string
	kv    store.KV
}

func (w *writer) add(table string, kv store.KV) error {
	w.buf = append(w.buf, rec{table, kv})
	w.sumr.add(table, kv)
	if len(w.buf) >= pageSize {
		return w.flush()
	}
	return nil
}

func (w *writer) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	err := w.dst.Update(w.ctx, func(tx store.Tx) error {
		for _, r := range w.buf {
			if err := tx.Put(r.table, r.kv.Key, r.kv.Value); err != nil {
				return err
			}
		}
		return nil
	})
	w.buf = w.buf[:0]
	return err
}

// prepare refuses a non-empty target unless force, in which case it is
// emptied first so that the result equals the source.
func prepare(ctx context.Context, dst store.Store, force bool) error {
	empty, err := isEmpty(ctx, dst)
	if err != nil {
		return err
	}
	if !empty {
		if !force {
			return ErrNotEmpty
		}
		return clearAll(ctx, dst)
	}
	return nil
}

// Copy copies every record of src into dst and verifies dst against the
// snapshot it copied. The source should not be written meanwhile (stop the
// servers): the copy is of one snapshot, and later writes would be missing.
func Copy(ctx context.Context, src, dst store.Store, force bool) (Summary, error) {
	if err := prepare(ctx, dst, force); err != nil {
		return nil, err
	}
	w := &writer{ctx: ctx, dst: dst}
	if err := walk(ctx, src, w.add); err != nil {
		return nil, fmt.Errorf("read source: %w", err)
	}
	if err := w.flush(); err != nil {
		return nil, fmt.Errorf("write target: %w", err)
	}
	want := w.sumr.flush()
	return want, verify(ctx, dst, want)
}

func verify(ctx context.Context, dst store.Store, want Summary) error {
	got, err := Sum(ctx, dst)
	if err != nil {
		return fmt.Errorf("verify target: %w", err)
	}
	if err := want.diff(got); err != nil {
		return fmt.Errorf("verify target: %w", err)
	}
	return nil
}
