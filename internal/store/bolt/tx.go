package bolt

import (
	"bytes"
	"errors"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/keyhold/keyhold/internal/store"
)

var (
	errReadOnly = errors.New("bolt: write in a read-only transaction")
	errEmptyKey = errors.New("bolt: empty key")
	errNoTable  = errors.New("bolt: empty table name")
)

// tx adapts a bbolt transaction to store.Tx. One tx wraps one caller's fn,
// even when several share a bbolt transaction, so topics stay per caller.
type tx struct {
	btx      *bbolt.Tx
	writable bool
	now      func() time.Time
	topics   []string
}

var _ store.Tx = (*tx)(nil)

func bucketName(table string) []byte { return []byte(tablePrefix + table) }

func (t *tx) bucket(table string) *bbolt.Bucket { return t.btx.Bucket(bucketName(table)) }

func (t *tx) writeBucket(table, key string) (*bbolt.Bucket, error) {
	if !t.writable {
		return nil, errReadOnly
	}
	if table == "" {
		return nil, errNoTable
	}
	if key == "" {
		return nil, errEmptyKey
	}
	return t.btx.CreateBucketIfNotExists(bucketName(table))
}

// clone copies a value out of the mmap: bbolt's slices are only valid
// during the transaction and must never be written to.
func clone(v []byte) []byte { return append(make([]byte, 0, len(v)), v...) }

func (t *tx) Get(table, key string) ([]byte, error) {
	b := t.bucket(table)
	if b == nil || key == "" {
		return nil, store.ErrNotFound
	}
	v := b.Get([]byte(key))
	if v == nil {
		return nil, store.ErrNotFound
	}
	return clone(v), nil
}

func (t *tx) Put(table, key string, value []byte) error {
	b, err := t.writeBucket(table, key)
	if err != nil {
		return err
	}
	// bbolt keeps the slice until commit, so copy: the caller may reuse it.
	return b.Put([]byte(key), clone(value))
}

func (t *tx) Insert(table, key string, value []byte) error {
	b, err := t.writeBucket(table, key)
	if err != nil {
		return err
	}
	if b.Get([]byte(key)) != nil {
		return store.ErrExists
	}
	return b.Put([]byte(key), clone(value))
}

func (t *tx) Delete(table, key string) error {
	if !t.writable {
		return errReadOnly
	}
	b := t.bucket(table)
	if b == nil || key == "" {
		return nil
	}
	return b.Delete([]byte(key))
}

func (t *tx) List(table, prefix, after string, limit int) ([]store.KV, error) {
	b := t.bucket(table)
	if b == nil {
		return nil, nil
	}
	var out []store.KV
	c := b.Cursor()
	p := []byte(prefix)
	start := p
	if after >= prefix {
		start = []byte(after)
	}
	for k, v := c.Seek(start); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
		if string(k) <= after {
			continue // Seek lands on `after` itself when it exists
		}
		out = append(out, store.KV{Key: string(k), Value: clone(v)})
		if limit > 0 && len(out) >= limit {
			break
		}
	}
	return out, nil
}

// ListOffset walks the cursor over the first offset keys without touching
// their values (bbolt hands out slices into the mmap: nothing is copied or
// decoded), then collects the page.
func (t *tx) ListOffset(table, prefix string, offset, limit int) ([]store.KV, error) {
	b := t.bucket(table)
	if b == nil {
		return nil, nil
	}
	var out []store.KV
	c := b.Cursor()
	p := []byte(prefix)
	k, v := c.Seek(p)
	for ; offset > 0 && k != nil && bytes.HasPrefix(k, p); offset-- {
		k, v = c.Next()
	}
	for ; k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
		out = append(out, store.KV{Key: string(k), Value: clone(v)})
		if limit > 0 && len(out) >= limit {
			break
		}
	}
	return out, nil
}

func (t *tx) Count(table, prefix string) (int, error) {
	b := t.bucket(table)
	if b == nil {
		return 0, nil
	}
	n := 0
	c := b.Cursor()
	p := []byte(prefix)
	for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
		n++
	}
	return n, nil
}

func (t *tx) CheckFence(name string, token uint64) error {
	l, ok := getLease(t.btx, name)
	if !ok || l.Holder == "" || !t.now().Before(l.Expires) || l.Token != token {
		return store.ErrFenced
	}
	return nil
}

func (t *tx) Notify(topic string) {
	for _, have := range t.topics {
		if have == topic {
			return
		}
	}
	t.topics = append(t.topics, topic)
}
