package bench

import (
	"context"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Op is one request of a load phase. worker is in [0, clients); seq counts
// the worker's calls from 0 across warm-up and measurement, so an Op can
// derive unique version ids from (worker, seq).
type Op func(ctx context.Context, worker, seq int) error

// Load bounds one phase: it stops at Duration or after MaxRequests measured
// requests, whichever comes first.
type Load struct {
	Clients     int
	Duration    time.Duration
	MaxRequests int
	// Warmup runs the same load for this long first, unrecorded, so that
	// connections are open and caches warm when measurement starts.
	Warmup time.Duration
}

// Stats is what one phase measured. Every latency is recorded, so the
// percentiles are exact (nearest rank), not estimated from buckets.
type Stats struct {
	Clients    int
	Requests   int // completed without error
	Errors     int
	FirstError string
	Elapsed    time.Duration
	PerSec     float64 // Requests / Elapsed
	P50        time.Duration
	P90        time.Duration
	P99        time.Duration
	Max        time.Duration
	// Process-wide heap allocations per request during measurement: client
	// and, for an in-process server, server together.
	AllocsPerOp float64
	BytesPerOp  float64
	// CPUPerOp is this process's CPU time (user+system) per request during
	// measurement: client and in-process server together. Unlike req/s it
	// hardly depends on what else the machine runs at the time.
	CPUPerOp time.Duration
}

// RunLoad runs op from l.Clients goroutines, first for l.Warmup (results
// discarded), then measured. It returns early, with what it has, if ctx
// ends.
func RunLoad(ctx context.Context, l Load, op Op) Stats {
	if l.Clients < 1 {
		l.Clients = 1
	}
	if l.MaxRequests <= 0 {
		l.MaxRequests = int(^uint(0) >> 1)
	}
	seqs := make([]int, l.Clients) // each owned by its worker
	if l.Warmup > 0 {
		run(ctx, l.Clients, time.Now().Add(l.Warmup), int(^uint(0)>>1), seqs, op, nil)
	}

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	cpu0 := processCPU()
	lat := make([][]time.Duration, l.Clients)
	start := time.Now()
	errCount, firstErr := run(ctx, l.Clients, start.Add(l.Duration), l.MaxRequests, seqs, op, lat)
	elapsed := time.Since(start)
	cpu := processCPU() - cpu0
	runtime.ReadMemStats(&after)

	st := Stats{Clients: l.Clients, Errors: errCount, FirstError: firstErr, Elapsed: elapsed}
	var all []time.Duration
	for _, w := range lat {
		all = append(all, w...)
	}
	st.Requests = len(all)
	if n := st.Requests + st.Errors; n > 0 {
		st.AllocsPerOp = float64(after.Mallocs-before.Mallocs) / float64(n)
		st.BytesPerOp = float64(after.TotalAlloc-before.TotalAlloc) / float64(n)
		st.CPUPerOp = cpu / time.Duration(n)
	}
	if st.Requests == 0 {
		return st
	}
	slices.Sort(all)
	st.PerSec = float64(st.Requests) / elapsed.Seconds()
	st.P50 = Percentile(all, 50)
	st.P90 = Percentile(all, 90)
	st.P99 = Percentile(all, 99)
	st.Max = all[len(all)-1]
	return st
}

// run drives the workers until deadline or until max requests have been
// started. lat, when not nil, receives each worker's successful latencies.
func run(ctx context.Context, clients int, deadline time.Time, max int, seqs []int, op Op, lat [][]time.Duration) (int, string) {
	var started, errs atomic.Int64
	var firstErr atomic.Pointer[string]
	var wg sync.WaitGroup
	for w := range clients {
		wg.Go(func() {
			var mine []time.Duration
			if lat != nil {
				mine = make([]time.Duration, 0, 4096)
			}
			for ctx.Err() == nil && started.Add(1) <= int64(max) {
				t0 := time.Now()
				if !t0.Before(deadline) {
					break
				}
				err := op(ctx, w, seqs[w])
				d := time.Since(t0)
				seqs[w]++
				if err != nil {
					if ctx.Err() != nil {
						break
					}
					errs.Add(1)
					msg := err.Error()
					firstErr.CompareAndSwap(nil, &msg)
					continue
				}
				if lat != nil {
					mine = append(mine, d)
				}
			}
			if lat != nil {
				lat[w] = mine
			}
		})
	}
	wg.Wait()
	var fe string
	if p := firstErr.Load(); p != nil {
		fe = *p
	}
	return int(errs.Load()), fe
}

// Percentile returns the nearest-rank p-th percentile of sorted: the
// smallest value at least p% of the samples are less than or equal to.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	// rank = ceil(p/100 * n), in integers to avoid float rounding.
	rank := int((int64(p*1000)*int64(n) + 100*1000 - 1) / (100 * 1000))
	if rank < 1 {
		rank = 1
	}
	if rank > n {
		rank = n
	}
	return sorted[rank-1]
}
