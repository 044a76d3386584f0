package storetest

import (
	"context"
	"fmt"
	"testing"

	"github.com/keyhold/keyhold/internal/store"
)

// Listing benchmark layout: n records keyed ListingKey(i) in ListingTable,
// under ListingPrefix, with values of ListingValueSize bytes (about a
// stored secret's metadata), beside records of a neighbouring prefix.
const (
	ListingTable     = "bench_list"
	ListingPrefix    = "1000000000000001/"
	ListingValueSize = 400
)

// ListingKey is the key of record i (name order = i order).
func ListingKey(i int) string { return fmt.Sprintf("%sseed-%07d", ListingPrefix, i) }

// LoadListing writes n listing records through the contract, 20,000 per
// transaction, and a few records of a neighbouring account on each side.
// (A backend may load faster by its own means; see the backends' tests.)
func LoadListing(b *testing.B, s store.Store, n int) {
	b.Helper()
	v := make([]byte, ListingValueSize)
	for i := range v {
		v[i] = byte('a' + i%26)
	}
	ctx := context.Background()
	for lo := 0; lo < n; lo += 20000 {
		err := s.Update(ctx, func(tx store.Tx) error {
			for i := lo; i < min(lo+20000, n); i++ {
				if err := tx.Put(ListingTable, ListingKey(i), v); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	err := s.Update(ctx, func(tx store.Tx) error {
		for _, k := range []string{"1000000000000000/x", "1000000000000002/x"} {
			if err := tx.Put(ListingTable, k, v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}

// BenchListing measures, over n loaded records (LoadListing or the
// backend's own loader), what one ListSecrets page costs the store: Count
// of the prefix, and ListOffset of 100 records at the first, middle and
// last page, each in its own read transaction.
func BenchListing(b *testing.B, s store.Store, n int) {
	ctx := context.Background()
	view := func(b *testing.B, fn func(tx store.Tx) error) {
		b.Helper()
		for b.Loop() {
			if err := s.View(ctx, fn); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("Count", func(b *testing.B) {
		view(b, func(tx store.Tx) error {
			got, err := tx.Count(ListingTable, ListingPrefix)
			if err == nil && got != n {
				err = fmt.Errorf("Count = %d, want %d", got, n)
			}
			return err
		})
	})
	lastPage := (n - 1) / 100
	for _, p := range []struct {
		name string
		page int
	}{{"ListOffset/first", 0}, {"ListOffset/middle", lastPage / 2}, {"ListOffset/last", lastPage}} {
		b.Run(p.name, func(b *testing.B) {
			view(b, func(tx store.Tx) error {
				kvs, err := tx.ListOffset(ListingTable, ListingPrefix, p.page*100, 100)
				if err == nil && (len(kvs) == 0 || kvs[0].Key != ListingKey(p.page*100)) {
					err = fmt.Errorf("page %d starts wrong: %d records", p.page, len(kvs))
				}
				return err
			})
		})
	}
}
