package audit_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyhold/keyhold/internal/audit"
)

// BenchmarkAppend measures durable appends (bolt, fsync per commit) from 1
// and 32 concurrent appenders on one account's chain: the group committer
// lets concurrent appends share a commit, and the head row serializes them.
//
//	go test -run XXX -bench Append -benchtime 3s ./internal/audit
func BenchmarkAppend(b *testing.B) {
	for _, n := range []int{1, 32} {
		b.Run(map[int]string{1: "appenders=1", 32: "appenders=32"}[n], func(b *testing.B) {
			st := openStore(b)
			tr := audit.New(st, barrier(b, 1))
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
			stats := st.Stats()
			b.ReportMetric(float64(stats.Updates)/float64(max(stats.Commits, 1)), "appends/commit")
		})
	}
}
