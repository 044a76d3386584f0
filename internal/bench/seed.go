package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keyhold/keyhold/client"
)

// Phases of "keyhold bench seed" (measured once the secrets are loaded).
const (
	PhaseListFirst  = "list-first"  // ListSecrets, first page
	PhaseListMiddle = "list-middle" // ListSecrets, the middle page
	PhaseListLast   = "list-last"   // ListSecrets, last page (the deepest offset)
	PhaseGetSeeded  = "get-seeded"  // GetSecretValue of a random seeded secret
)

// listPageSize is the largest page ListSecrets serves.
const listPageSize = 100

// SeedConfig configures Seed.
type SeedConfig struct {
	Secrets   int    // how many secrets must exist, named Prefix-0000000 …
	Prefix    string // default "seed"
	Clients   int    // concurrent CreateSecret callers; default 32
	ValueSize int    // default 256

	// Measure, after loading: ListSecrets page latency (first, middle and
	// last page, 100 per page) and GetSecretValue of random seeded secrets, with these
	// client counts and Load bounds. Empty Measure: load only.
	Measure     []int
	SkipList    bool // measure GetSecretValue only
	Duration    time.Duration
	Warmup      time.Duration
	MaxRequests int

	// The server to load (a running one: seeding is for its storage).
	Endpoint        string
	AccessKeyID     string
	AccessKeySecret string
	CACertPEM       []byte
	Insecure        bool

	Progress io.Writer // a line every 10 s while loading; nil: none
}

// SeedResult is what Seed did and measured.
type SeedResult struct {
	Created  int           // secrets created by this run
	Existing int           // already there (a resumed or repeated run)
	Elapsed  time.Duration // loading time
	Report   *Report       // the measured phases; nil without Measure
}

// Seed creates cfg.Secrets secrets through the API — the path every secret
// takes in production, so the storage holds what a real deployment would —
// skipping names that already exist, so that an interrupted run resumes.
// The secrets are left in place: they are the load.
func Seed(ctx context.Context, cfg SeedConfig) (*SeedResult, error) {
	if cfg.Secrets < 1 {
		return nil, errors.New("bench seed: --secrets must be at least 1")
	}
	if cfg.Endpoint == "" {
		return nil, errors.New("bench seed: needs --endpoint (and the root's credentials): it loads a running server")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "seed"
	}
	if cfg.Clients < 1 {
		cfg.Clients = 32
	}
	if cfg.ValueSize < 1 {
		cfg.ValueSize = 256
	}
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	hc, err := httpClient(max(cfg.Clients, slicesMax(cfg.Measure)), cfg.CACertPEM, cfg.Insecure)
	if err != nil {
		return nil, err
	}
	kc, err := newClient(cfg.Endpoint, cfg.AccessKeyID, cfg.AccessKeySecret, hc)
	if err != nil {
		return nil, err
	}
	name := func(i int) string { return fmt.Sprintf("%s-%07d", cfg.Prefix, i) }

	res := &SeedResult{}
	var next, created, existing atomic.Int64
	// Resume: names are created in index order, so a run that stopped left
	// every name below some index in place and holes only among the last
	// Clients it had in flight. Skip what lies safely below the highest
	// loaded index instead of re-creating a million names one refusal at a
	// time.
	skip, err := loadedBelow(ctx, kc, name, cfg.Secrets)
	if err != nil {
		return res, err
	}
	next.Store(int64(skip))
	existing.Store(int64(skip))
	if skip > 0 {
		fmt.Fprintf(cfg.Progress, "bench seed: %s … %s exist, resuming from %s\n", name(0), name(skip-1), name(skip))
	}
	var firstErr error
	var errOnce sync.Once
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	done := make(chan struct{})
	go func() { // progress
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				c, e := created.Load(), existing.Load()
				fmt.Fprintf(cfg.Progress, "bench seed: %d/%d (%d created, %d existing), %.0f created/s\n",
					c+e, cfg.Secrets, c, e, float64(c)/time.Since(start).Seconds())
			}
		}
	}()
	var wg sync.WaitGroup
	for range cfg.Clients {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= cfg.Secrets || ctx.Err() != nil {
					return
				}
				_, err := kc.CreateSecret(ctx, &client.CreateSecretRequest{
					SecretName: name(i), SecretData: randValue(cfg.ValueSize), VersionId: "v1",
				})
				var ae *client.Error
				switch {
				case err == nil:
					created.Add(1)
				case errors.As(err, &ae) && ae.Code == "Rejected.ResourceExist":
					existing.Add(1)
				default:
					errOnce.Do(func() { firstErr = fmt.Errorf("bench seed: create %s: %w", name(i), err); cancel() })
					return
				}
			}
		})
	}
	wg.Wait()
	close(done)
	res.Created, res.Existing, res.Elapsed = int(created.Load()), int(existing.Load()), time.Since(start)
	if firstErr != nil {
		return res, firstErr
	}
	fmt.Fprintf(cfg.Progress, "bench seed: %d secrets in place (%d created in %s, %.0f/s; %d existing)\n",
		cfg.Secrets, res.Created, res.Elapsed.Round(time.Millisecond), float64(res.Created)/res.Elapsed.Seconds(), res.Existing)
	if len(cfg.Measure) == 0 {
		return res, nil
	}

	// Measure with the whole account's secrets in the listing: the seeded
	// ones and whatever else the account holds.
	first, err := kc.ListSecrets(ctx, &client.ListSecretsRequest{Page: client.Page{PageNumber: 1, PageSize: listPageSize}})
	if err != nil {
		return res, fmt.Errorf("bench seed: ListSecrets: %w", err)
	}
	lastPage := max(1, (first.TotalCount+listPageSize-1)/listPageSize)
	middlePage := (lastPage + 1) / 2
	rep := &Report{Machine: DescribeMachine(), Target: cfg.Endpoint, Duration: cfg.Duration, Warmup: cfg.Warmup, Clients: cfg.Measure, ValueSize: cfg.ValueSize}
	l := func(n int) Load {
		return Load{Clients: n, Duration: cfg.Duration, MaxRequests: cfg.MaxRequests, Warmup: cfg.Warmup}
	}
	list := func(page int) Op {
		return func(ctx context.Context, _, _ int) error {
			r, err := kc.ListSecrets(ctx, &client.ListSecretsRequest{Page: client.Page{PageNumber: page, PageSize: listPageSize}})
			if err == nil && len(r.SecretList.Secret) == 0 {
				err = fmt.Errorf("page %d of %d empty", page, lastPage)
			}
			return err
		}
	}
	get := func(ctx context.Context, _, _ int) error {
		_, err := kc.GetSecretValue(ctx, &client.GetSecretValueRequest{SecretName: name(rand.IntN(cfg.Secrets))})
		return err
	}
	for _, n := range cfg.Measure {
		if !cfg.SkipList {
			rep.add(cfg.Progress, PhaseListFirst, fmt.Sprintf("ListSecrets page 1 of %d", lastPage), l(n), RunLoad(ctx, l(n), list(1)))
			rep.add(cfg.Progress, PhaseListMiddle, fmt.Sprintf("ListSecrets page %d of %d", middlePage, lastPage), l(n), RunLoad(ctx, l(n), list(middlePage)))
			rep.add(cfg.Progress, PhaseListLast, fmt.Sprintf("ListSecrets page %d of %d", lastPage, lastPage), l(n), RunLoad(ctx, l(n), list(lastPage)))
		}
		rep.add(cfg.Progress, PhaseGetSeeded, fmt.Sprintf("GetSecretValue, random of %d", cfg.Secrets), l(n), RunLoad(ctx, l(n), get))
	}
	res.Report = rep
	return res, nil
}

// resumeMargin is how far below the highest loaded index a resumed load
// starts: more than any --clients, so every hole an interrupted run left
// is re-checked.
var resumeMargin = 1024 // a variable for the test

// loadedBelow returns an index below which every seeded name exists: a
// binary search with DescribeSecret for the first missing name (about 20
// calls for a million), less resumeMargin. 0 when nothing is loaded.
func loadedBelow(ctx context.Context, kc *client.Client, name func(int) string, n int) (int, error) {
	exists := func(i int) (bool, error) {
		_, err := kc.DescribeSecret(ctx, name(i), false)
		var ae *client.Error
		switch {
		case err == nil:
			return true, nil
		case errors.As(err, &ae) && ae.Code == "Forbidden.ResourceNotFound":
			return false, nil
		default:
			return false, fmt.Errorf("bench seed: DescribeSecret %s: %w", name(i), err)
		}
	}
	lo, hi := 0, n // name(lo-1) exists; name(hi) is missing or past the end
	for lo < hi {
		mid := lo + (hi-lo)/2
		ok, err := exists(mid)
		if err != nil {
			return 0, err
		}
		if ok {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return max(0, lo-resumeMargin), nil
}

func slicesMax(s []int) int {
	m := 0
	for _, v := range s {
		m = max(m, v)
	}
	return m
}
