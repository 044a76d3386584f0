package secrets

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyhold/keyhold/internal/store"
	"github.com/keyhold/keyhold/internal/store/bolt"
	"github.com/keyhold/keyhold/internal/store/postgres"
	"github.com/keyhold/keyhold/internal/store/postgres/pgtest"
)

// attemptStore counts how often Update runs its fn: above one per call,
// the backend retried after a serialization failure.
type attemptStore struct {
	store.Store
	attempts atomic.Int64
}

func (a *attemptStore) Update(ctx context.Context, fn func(store.Tx) error) error {
	return a.Store.Update(ctx, func(tx store.Tx) error { a.attempts.Add(1); return fn(tx) })
}

// BenchmarkCreateSecret: 32 concurrent CreateSecret calls in one account,
// the case the count's shards are for (every create adjusts the count in
// its transaction). attempts/op above 1 are serialization retries.
//
//	CI=true go test -run x -bench CreateSecret -benchtime 2000x ./internal/secrets/
func BenchmarkCreateSecret(b *testing.B) {
	open := map[string]func(b *testing.B) store.Store{
		"bolt": func(b *testing.B) store.Store {
			st, err := bolt.Open(filepath.Join(b.TempDir(), "keyhold.db"))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { st.Close() })
			return st
		},
		"postgres": func(b *testing.B) store.Store {
			c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			st, err := postgres.Open(c, pgtest.Shared(b).DSN(b))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { st.Close() })
			return st
		},
	}
	for _, backend := range []string{"bolt", "postgres"} {
		b.Run(backend, func(b *testing.B) {
			st := &attemptStore{Store: open[backend](b)}
			svc := New(st, newFakeEnvelope(b), WithRegion("cn-test"))
			var seq atomic.Int64
			b.SetParallelism(16) // 32 goroutines on 2 CPUs
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					name := fmt.Sprintf("b-%07d", seq.Add(1))
					if _, err := svc.CreateSecret(context.Background(), acct, CreateInput{Name: name, VersionID: "v1", Data: "x"}); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "creates/s")
			b.ReportMetric(float64(st.attempts.Load())/float64(b.N), "attempts/op")
		})
	}
}
