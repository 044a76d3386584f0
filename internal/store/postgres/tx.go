package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/keyhold/keyhold/internal/store"
)

// tx implements store.Tx on one pgx transaction. Every call is a round trip,
// bounded on its own (Store.opCtx) under the caller's ctx; records are
// bytea so keys keep their exact bytes.
type tx struct {
	s        *Store
	ctx      context.Context
	ptx      pgx.Tx
	readOnly bool
	topics   []string
	// retry is the first serialization failure seen: the transaction is
	// aborted after it, whatever fn makes of the error.
	retry error
}

// op is the context of one round trip.
func (t *tx) op() (context.Context, context.CancelFunc) { return t.s.opCtx(t.ctx) }

// note wraps the error of a round trip run under c.
func (t *tx) note(c context.Context, err error) error {
	if err == nil {
		return nil
	}
	if t.retry == nil && retryable(err) {
		t.retry = wrap(err)
		return t.retry
	}
	return t.s.opErr(c, err)
}

var errReadOnly = errors.New("postgres: write in a read-only transaction")

func (t *tx) Get(table, key string) ([]byte, error) {
	c, cancel := t.op()
	defer cancel()
	var v []byte
	err := t.ptx.QueryRow(c, "SELECT value FROM kh_records WHERE tbl = $1 AND key = $2", []byte(table), []byte(key)).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, t.note(c, err)
	}
	if v == nil {
		v = []byte{}
	}
	return v, nil
}

func (t *tx) Put(table, key string, value []byte) error {
	if t.readOnly {
		return errReadOnly
	}
	c, cancel := t.op()
	defer cancel()
	if value == nil {
		value = []byte{} // the column is NOT NULL; nil and empty are the same to callers
	}
	_, err := t.ptx.Exec(c, `INSERT INTO kh_records (tbl, key, value) VALUES ($1, $2, $3)
		ON CONFLICT (tbl, key) DO UPDATE SET value = EXCLUDED.value`, []byte(table), []byte(key), value)
	return t.note(c, err)
}

func (t *tx) Insert(table, key string, value []byte) error {
	if t.readOnly {
		return errReadOnly
	}
	c, cancel := t.op()
	defer cancel()
	if value == nil {
		value = []byte{}
	}
	tag, err := t.ptx.Exec(c, `INSERT INTO kh_records (tbl, key, value) VALUES ($1, $2, $3)
		ON CONFLICT (tbl, key) DO NOTHING`, []byte(table), []byte(key), value)
	if err != nil {
		return t.note(c, err)
	}
	if tag.RowsAffected() == 0 {
		return store.ErrExists
	}
	return nil
}

func (t *tx) Delete(table, key string) error {
	if t.readOnly {
		return errReadOnly
	}
	c, cancel := t.op()
	defer cancel()
	_, err := t.ptx.Exec(c, "DELETE FROM kh_records WHERE tbl = $1 AND key = $2", []byte(table), []byte(key))
	return t.note(c, err)
}

// prefixEnd is the smallest key greater than every key with the prefix, or
// nil when there is none (the prefix is all 0xff bytes).
func prefixEnd(prefix []byte) []byte {
	end := slices.Clone(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// keyRange is the WHERE clause for keys with prefix (and after `after`),
// written as a range on the primary key so that the index bounds it.
func keyRange(table, prefix, after string) (string, []any) {
	lo := []byte(prefix)
	q := "tbl = $1 AND key >= $2"
	args := []any{[]byte(table), lo}
	if end := prefixEnd(lo); end != nil {
		args = append(args, end)
		q += " AND key < $3"
	}
	if after != "" {
		args = append(args, []byte(after))
		q += fmt.Sprintf(" AND key > $%d", len(args))
	}
	return q, args
}

func (t *tx) List(table, prefix, after string, limit int) ([]store.KV, error) {
	where, args := keyRange(table, prefix, after)
	q := "SELECT key, value FROM kh_records WHERE " + where + " ORDER BY key"
	if limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", limit)
	}
	return t.query(q, args...)
}

// query runs a SELECT of (key, value) rows.
func (t *tx) query(q string, args ...any) ([]store.KV, error) {
	c, cancel := t.op()
	defer cancel()
	rows, err := t.ptx.Query(c, q, args...)
	if err != nil {
		return nil, t.note(c, err)
	}
	defer rows.Close()
	var out []store.KV
	for rows.Next() {
		var k, v []byte
		if err := rows.Scan(&k, &v); err != nil {
			return nil, t.note(c, err)
		}
		if v == nil {
			v = []byte{}
		}
		out = append(out, store.KV{Key: string(k), Value: v})
	}
	return out, t.note(c, rows.Err())
}

// ListOffset finds the page's first key with an index-only subquery (the
// skipped rows' values are never fetched from the heap, as a plain OFFSET
// on "SELECT key, value" would), then reads the page from that key.
func (t *tx) ListOffset(table, prefix string, offset, limit int) ([]store.KV, error) {
	if offset <= 0 {
		return t.List(table, prefix, "", limit)
	}
	where, args := keyRange(table, prefix, "")
	args = append(args, offset)
	q := "SELECT key, value FROM kh_records WHERE " + where +
		fmt.Sprintf(" AND key >= (SELECT key FROM kh_records WHERE %s ORDER BY key OFFSET $%d LIMIT 1)", where, len(args)) +
		" ORDER BY key"
	if limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", limit)
	}
	return t.query(q, args...)
}

func (t *tx) Count(table, prefix string) (int, error) {
	c, cancel := t.op()
	defer cancel()
	where, args := keyRange(table, prefix, "")
	var n int
	err := t.ptx.QueryRow(c, "SELECT count(*) FROM kh_records WHERE "+where, args...).Scan(&n)
	return n, t.note(c, err)
}

// CheckFence reads the lease in the caller's transaction. In a read-write
// transaction the row is locked FOR SHARE, so a new holder's AcquireLease
// waits until the fenced writes committed or rolled back; a read-only
// transaction cannot lock rows and reads its snapshot.
func (t *tx) CheckFence(name string, token uint64) error {
	q := "SELECT token, holder <> '' AND expires > clock_timestamp() FROM kh_leases WHERE name = $1"
	if !t.readOnly {
		q += " FOR SHARE"
	}
	var cur int64
	var live bool
	c, cancel := t.op()
	defer cancel()
	err := t.ptx.QueryRow(c, q, name).Scan(&cur, &live)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ErrFenced
	}
	if err != nil {
		return t.note(c, err)
	}
	if !live || uint64(cur) != token {
		return store.ErrFenced
	}
	return nil
}

func (t *tx) Notify(topic string) {
	if !slices.Contains(t.topics, topic) {
		t.topics = append(t.topics, topic)
	}
}

var _ store.TableLister = (*tx)(nil)

// Tables lists the tables holding at least one record.
func (t *tx) Tables() ([]string, error) {
	c, cancel := t.op()
	defer cancel()
	rows, err := t.ptx.Query(c, "SELECT DISTINCT tbl FROM kh_records ORDER BY tbl")
	if err != nil {
		return nil, t.note(c, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return nil, t.note(c, err)
		}
		out = append(out, string(b))
	}
	return out, t.note(c, rows.Err())
}
