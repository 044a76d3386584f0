package bolt

import (
	"context"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// BenchmarkNonceStores compares the two ways of persisting a nonce — the
// nonce log (default) and a bbolt commit to sys:nonce-ids — with random
// nonces, as the server sends them (UUIDs).
func BenchmarkNonceStores(b *testing.B) {
	for _, mode := range []struct {
		name string
		opts []Option
	}{{"log", nil}, {"bbolt", []Option{withNoncesInDB()}}} {
		for _, writers := range []int{1, 32} {
			b.Run(fmt.Sprintf("%s/writers=%d", mode.name, writers), func(b *testing.B) {
				s, err := Open(filepath.Join(b.TempDir(), "keyhold.db"), mode.opts...)
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				ctx := context.Background()
				exp := time.Now().Add(15 * time.Minute)
				op := func() error {
					ok, err := s.PutNonce(ctx, "acs/LTAI5tBenchmarkKey/"+rand.Text(), exp)
					if err == nil && !ok {
						err = fmt.Errorf("fresh nonce refused")
					}
					return err
				}
				b.ReportAllocs()
				b.ResetTimer()
				if writers == 1 {
					for range b.N {
						if err := op(); err != nil {
							b.Fatal(err)
						}
					}
				} else {
					b.SetParallelism(max(1, writers/runtime.GOMAXPROCS(0)))
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							if err := op(); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
			})
		}
	}
}
