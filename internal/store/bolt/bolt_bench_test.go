package bolt_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/keyhold/keyhold/internal/store"
	"github.com/keyhold/keyhold/internal/store/bolt"
	"github.com/keyhold/keyhold/internal/store/storetest"
)

// Every figure here is a durable (fsynced) commit per acknowledged call.
// Run: go test -run x -bench . -benchtime 2s ./internal/store/bolt/

var value = func() []byte { v := make([]byte, 512); rand.Read(v); return v }()

// parallel runs op from `writers` goroutines (b.RunParallel starts
// SetParallelism × GOMAXPROCS of them).
func parallel(b *testing.B, writers int, op func(i uint64) error) {
	var seq atomic.Uint64
	b.ResetTimer()
	if writers == 1 {
		for range b.N {
			if err := op(seq.Add(1)); err != nil {
				b.Fatal(err)
			}
		}
	} else {
		b.SetParallelism(max(1, writers/testingProcs()))
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := op(seq.Add(1)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

// reportBatch reports the average number of calls per commit.
func reportBatch(b *testing.B, s *bolt.Store) {
	st := s.Stats()
	if st.Commits > 0 {
		b.ReportMetric(float64(st.Updates)/float64(st.Commits), "calls/commit")
	}
}

func testingProcs() int { return max(1, runtime.GOMAXPROCS(0)) }

func BenchmarkUpdate(b *testing.B) {
	for _, writers := range []int{1, 32} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			s, err := bolt.Open(filepath.Join(b.TempDir(), "keyhold.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			ctx := context.Background()
			defer reportBatch(b, s)
			parallel(b, writers, func(i uint64) error {
				return s.Update(ctx, func(tx store.Tx) error {
					return tx.Put("bench", strconv.FormatUint(i, 10), value)
				})
			})
		})
	}
}

func BenchmarkPutNonce(b *testing.B) {
	for _, writers := range []int{1, 32} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			s, err := bolt.Open(filepath.Join(b.TempDir(), "keyhold.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			ctx := context.Background()
			exp := time.Now().Add(15 * time.Minute)
			defer reportBatch(b, s)
			b.ReportAllocs()
			// Random nonces, as clients send them (UUIDs).
			parallel(b, writers, func(uint64) error {
				ok, err := s.PutNonce(ctx, "acs/LTAI5tBenchmarkKey/"+rand.Text(), exp)
				if err == nil && !ok {
					err = fmt.Errorf("fresh nonce refused")
				}
				return err
			})
		})
	}
}

// BenchmarkBoltBatch is the alternative we measured against: bbolt's own
// db.Batch, which waits up to MaxBatchDelay to gather a batch.
func BenchmarkBoltBatch(b *testing.B) {
	for _, delay := range []time.Duration{10 * time.Millisecond, time.Millisecond} {
		for _, writers := range []int{1, 32} {
			b.Run(fmt.Sprintf("delay=%v/writers=%d", delay, writers), func(b *testing.B) {
				db, err := bbolt.Open(filepath.Join(b.TempDir(), "raw.db"), 0o600, nil)
				if err != nil {
					b.Fatal(err)
				}
				defer db.Close()
				db.MaxBatchDelay = delay
				db.MaxBatchSize = 1000
				parallel(b, writers, func(i uint64) error {
					return db.Batch(func(tx *bbolt.Tx) error {
						bk, err := tx.CreateBucketIfNotExists([]byte("bench"))
						if err != nil {
							return err
						}
						return bk.Put([]byte(strconv.FormatUint(i, 10)), value)
					})
				})
			})
		}
	}
}

// BenchmarkListing: Count and ListOffset pages over 1,000,000 records
// (ListSecrets at a million secrets). Loading takes a while: run alone,
// go test -run x -bench Listing -benchtime 20x ./internal/store/bolt/
func BenchmarkListing(b *testing.B) {
	const n = 1_000_000
	s, err := bolt.Open(filepath.Join(b.TempDir(), "keyhold.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	storetest.LoadListing(b, s, n)
	storetest.BenchListing(b, s, n)
}
