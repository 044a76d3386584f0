package audit_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyhold/keyhold/internal/audit"
	"github.com/keyhold/keyhold/internal/store"
	"github.com/keyhold/keyhold/internal/store/postgres"
	"github.com/keyhold/keyhold/internal/store/postgres/pgtest"
)

// countingStore counts Updates, to report how many appends each carried.
type countingStore struct {
	store.Store
	updates atomic.Int64
}

func (c *countingStore) Update(ctx context.Context, fn func(store.Tx) error) error {
	c.updates.Add(1)
	return c.Store.Update(ctx, fn)
}

// BenchmarkAppend measures durable appends (bolt, fsync per commit) from 1
// and 32 concurrent appenders on one account's chain: concurrent appends
// are batched into one Update, and the group committer lets concurrent
// Updates share a commit.
//
//	go test -run XXX -bench Append -benchtime 3s ./internal/audit
func BenchmarkAppend(b *testing.B) {
	for _, n := range []int{1, 32} {
		b.Run(map[int]string{1: "appenders=1", 32: "appenders=32"}[n], func(b *testing.B) {
			st := openStore(b)
			benchAppend(b, st, n)
			stats := st.Stats()
			b.ReportMetric(float64(stats.Updates)/float64(max(stats.Commits, 1)), "updates/commit")
		})
	}
}

// BenchmarkAppendPostgres is the same on a throw-away PostgreSQL server
// (skipped without the binaries): every Update is a SERIALIZABLE
// transaction that reads and rewrites the account's head row.
func BenchmarkAppendPostgres(b *testing.B) {
	srv := pgtest.Start(b)
	for _, n := range []int{1, 32} {
		b.Run(map[int]string{1: "appenders=1", 32: "appenders=32"}[n], func(b *testing.B) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			st, err := postgres.Open(ctx, srv.DSN(b))
			cancel()
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			benchAppend(b, st, n)
		})
	}
}

func benchAppend(b *testing.B, st store.Store, n int) {
	cs := &countingStore{Store: st}
	tr := audit.New(cs, barrier(b, 1))
	ev := event(1)
	var left atomic.Int64
	left.Store(int64(b.N))
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for left.Add(-1) >= 0 {
				if _, err := tr.Append(context.Background(), ev); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "appends/s")
	b.ReportMetric(float64(b.N)/float64(max(cs.updates.Load(), 1)), "appends/update")
}
