package migrate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyhold/keyhold/internal/keys"
	"github.com/keyhold/keyhold/internal/store"
	"github.com/keyhold/keyhold/internal/store/bolt"
)

// deployment returns an embedded store with a root key check value (written
// by keys.Open, as a server's first start does) and n records in two
// tables, and the root key file.
func deployment(t *testing.T, n int) (store.Store, keys.FileSource) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := bolt.Open(filepath.Join(dir, "keyhold.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	src := keys.FileSource{Path: filepath.Join(dir, "root.key"), Create: true}
	ks, err := keys.Open(ctx, st, src, "cn-hangzhou")
	if err != nil {
		t.Fatal(err)
	}
	ks.Close()
	err = st.Update(ctx, func(tx store.Tx) error {
		for i := range n {
			if err := tx.Put("alpha", fmt.Sprintf("k%04d", i), bytes.Repeat([]byte{byte(i)}, 100+i)); err != nil {
				return err
			}
			if err := tx.Put("beta", fmt.Sprintf("k%04d", i), []byte(fmt.Sprintf("value %d", i))); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return st, keys.FileSource{Path: src.Path}
}

func backupBytes(t *testing.T, st store.Store) ([]byte, Summary) {
	t.Helper()
	var buf bytes.Buffer
	sum, err := Backup(context.Background(), st, &buf)
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), sum
}

func TestVerifyAcceptsACompleteBackup(t *testing.T) {
	st, key := deployment(t, 50)
	b, sum := backupBytes(t, st)
	info, err := Verify(context.Background(), bytes.NewReader(b), key)
	if err != nil {
		t.Fatal(err)
	}
	if info.Summary.diff(sum) != nil || info.Summary.Records() < 100 || info.Created.IsZero() {
		t.Fatalf("info %+v, backup summary %+v", info, sum)
	}
	if _, err := Verify(context.Background(), bytes.NewReader(b), nil); err != nil {
		t.Fatalf("without a root key: %v", err)
	}
}

func TestVerifyRefusesEveryTruncation(t *testing.T) {
	st, key := deployment(t, 30)
	b, _ := backupBytes(t, st)
	// Every cut in the last 64 bytes (trailer line, deflate end, gzip
	// CRC and length) and a spread of cuts before them.
	var cuts []int
	for n := 0; n < len(b)-64; n += max(1, len(b)/97) {
		cuts = append(cuts, n)
	}
	for n := max(0, len(b)-64); n < len(b); n++ {
		cuts = append(cuts, n)
	}
	for _, n := range cuts {
		if _, err := Verify(context.Background(), bytes.NewReader(b[:n]), key); err == nil {
			t.Fatalf("a backup cut to %d of %d bytes verified", n, len(b))
		}
	}
}

func TestVerifyRefusesDamage(t *testing.T) {
	st, key := deployment(t, 30)
	b, _ := backupBytes(t, st)
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "not a keyhold backup"},
		{"not gzip", []byte("hello, world"), "not a keyhold backup"},
		{"flipped byte", flip(b, len(b)/2), ""},
		{"second gzip member", append(append([]byte{}, b...), b...), "after its trailer"},
	} {
		_, err := Verify(context.Background(), bytes.NewReader(tc.data), key)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
}

func flip(b []byte, i int) []byte {
	c := append([]byte{}, b...)
	c[i] ^= 0x40
	return c
}

func TestVerifyAndRestoreRefuseAnotherRootKey(t *testing.T) {
	st, _ := deployment(t, 5)
	b, _ := backupBytes(t, st)
	_, otherKey := deployment(t, 0)
	if _, err := Verify(context.Background(), bytes.NewReader(b), otherKey); !errors.Is(err, ErrWrongRootKey) {
		t.Fatalf("Verify under another root key: %v", err)
	}
	dst, err := bolt.Open(filepath.Join(t.TempDir(), "keyhold.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	if _, err := Restore(context.Background(), bytes.NewReader(b), dst, otherKey, false); !errors.Is(err, ErrWrongRootKey) {
		t.Fatalf("Restore under another root key: %v", err)
	}
	if empty, err := isEmpty(context.Background(), dst); err != nil || !empty {
		t.Fatalf("a refused restore wrote to the target (empty %v, %v)", empty, err)
	}
}

func TestRestoreRoundTripAndTruncatedRestore(t *testing.T) {
	st, key := deployment(t, 40)
	b, sum := backupBytes(t, st)
	dst, err := bolt.Open(filepath.Join(t.TempDir(), "keyhold.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	ctx := context.Background()
	if _, err := Restore(ctx, bytes.NewReader(b[:len(b)-3]), dst, key, false); err == nil || !strings.Contains(err.Error(), "rerun it with --force") {
		t.Fatalf("restore of a backup missing its gzip trailer: %v", err)
	}
	got, err := Restore(ctx, bytes.NewReader(b), dst, key, true)
	if err != nil {
		t.Fatal(err)
	}
	if got.diff(sum) != nil {
		t.Fatalf("restored %+v, backed up %+v", got, sum)
	}
	again, err := Sum(ctx, dst)
	if err != nil || again.diff(sum) != nil {
		t.Fatalf("target sums %+v (%v), want %+v", again, err, sum)
	}
}

func TestOpenALockedDataDirFailsWithErrLocked(t *testing.T) {
	dir := t.TempDir()
	st, err := Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := Open(context.Background(), dir); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open of a held data dir: %v, want ErrLocked", err)
	}
}
