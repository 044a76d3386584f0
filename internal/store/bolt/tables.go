package bolt

import (
	"sort"
	"strings"

	bbolt "go.etcd.io/bbolt"

	"github.com/keyhold/keyhold/internal/store"
)

var _ store.TableLister = (*tx)(nil)

// Tables lists the user tables (buckets under "t:") that hold a record; a
// bucket emptied by deletes is skipped, as the contract cannot tell it
// from a table never written.
func (t *tx) Tables() ([]string, error) {
	var out []string
	err := t.btx.ForEach(func(name []byte, b *bbolt.Bucket) error {
		n := string(name)
		if strings.HasPrefix(n, tablePrefix) {
			if k, _ := b.Cursor().First(); k != nil {
				out = append(out, strings.TrimPrefix(n, tablePrefix))
			}
		}
		return nil
	})
	sort.Strings(out)
	return out, err
}
