package postgres_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/keyhold/keyhold/internal/store/postgres/pgtest"
	"github.com/keyhold/keyhold/internal/store/storetest"
)

// BenchmarkListing: Count and ListOffset pages over 1,000,000 records
// (ListSecrets at a million secrets), right after a bulk load and again
// after VACUUM, which sets the visibility map that index-only scans need
// (autovacuum does the same on its own schedule). Run alone:
// CI=true go test -run x -bench Listing -benchtime 20x ./internal/store/postgres/
func BenchmarkListing(b *testing.B) {
	const n = 1_000_000
	dsn := pgtest.Shared(b).DSN(b)
	s := openDSN(b, dsn)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	// One statement instead of a million round trips; the same rows
	// storetest.LoadListing writes.
	_, err = conn.Exec(ctx, `INSERT INTO kh_records (tbl, key, value)
		SELECT convert_to($1, 'UTF8'), convert_to($2 || 'seed-' || lpad(i::text, 7, '0'), 'UTF8'),
		       convert_to(substr(repeat('abcdefghijklmnopqrstuvwxyz', 16), 1, $3), 'UTF8')
		FROM generate_series(0, $4 - 1) AS i`,
		storetest.ListingTable, storetest.ListingPrefix, storetest.ListingValueSize, n)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("loaded", func(b *testing.B) { storetest.BenchListing(b, s, n) })
	if _, err := conn.Exec(ctx, "VACUUM (ANALYZE) kh_records"); err != nil {
		b.Fatal(err)
	}
	b.Run("vacuumed", func(b *testing.B) { storetest.BenchListing(b, s, n) })
}
