package audit_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/keyhold/keyhold/internal/audit"
	"github.com/keyhold/keyhold/internal/errs"
	"github.com/keyhold/keyhold/internal/store"
)

// hookStore wraps a store to count, hold, fail or re-run Updates.
type hookStore struct {
	store.Store
	updates atomic.Int64
	// before, when set, runs at the start of every Update.
	before func()
	// fail makes Update run fn and then discard it with this error.
	fail atomic.Pointer[error]
	// rerun makes every Update first run fn in a transaction that is
	// rolled back, then call between, then run fn again for real.
	rerun   bool
	between func()
}

var errDiscard = errors.New("discarded by the test")

func (h *hookStore) Update(ctx context.Context, fn func(store.Tx) error) error {
	h.updates.Add(1)
	if h.before != nil {
		h.before()
	}
	if p := h.fail.Load(); p != nil {
		err := h.Store.Update(ctx, func(tx store.Tx) error {
			if err := fn(tx); err != nil {
				return err
			}
			return *p // everything fn wrote is rolled back
		})
		return err
	}
	if h.rerun {
		err := h.Store.Update(ctx, func(tx store.Tx) error {
			if err := fn(tx); err != nil {
				return err
			}
			return errDiscard
		})
		if !errors.Is(err, errDiscard) {
			return err
		}
		if h.between != nil {
			h.between()
		}
	}
	return h.Store.Update(ctx, fn)
}

func appendConcurrently(t *testing.T, tr *audit.Trail, n int, ev func(i int) audit.Event) ([]audit.Record, []error) {
	t.Helper()
	recs, errl := make([]audit.Record, n), make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { recs[i], errl[i] = tr.Append(context.Background(), ev(i)) })
	}
	wg.Wait()
	return recs, errl
}

// The splice that keeps JSON encoding out of the store transaction must
// produce exactly the bytes canonical and json.Marshal produce, or records
// would not verify (and old trails would not continue).
func TestSplicedEncodingMatchesTheCanonicalOne(t *testing.T) {
	recs := []audit.Record{
		{Time: "t", Account: "a", RequestId: "r", Stage: "Outcome", Result: "OK"},
		{Time: "2026-01-02T03:04:05Z", Account: acct, PrincipalType: "user", PrincipalName: "al\"ice\u2028<>&",
			AccessKeyId: "LTAI", SourceIp: "::1", OnBehalfOf: "op/1", ApiVersion: "2016-01-20", Action: "kms:Get",
			Resource: "acs:kms:*", RequestId: "", Stage: "Attempt", Result: "Pending", HttpStatus: 503,
			Params: map[string]string{"b": "2", "a": "\x00\xff", "SecretData": "***"}},
	}
	for _, r := range recs {
		tmpl, err := audit.CanonicalTemplate(r)
		if err != nil {
			t.Fatal(err)
		}
		for _, seq := range []uint64{1, 9, 10, 12345, math.MaxUint64} {
			r.Seq, r.Mac = seq, ""
			want, _ := json.Marshal(r)
			got, err := audit.WithSeq(tmpl, seq)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("seq %d: %s, want %s (%v)", seq, got, want, err)
			}
			r.Mac = hex.EncodeToString(bytes.Repeat([]byte{0xab}, 32))
			want, _ = json.Marshal(r)
			if body := audit.WithMac(got, r.Mac); !bytes.Equal(body, want) {
				t.Fatalf("seq %d: stored form %s, want %s", seq, body, want)
			}
		}
	}
	if _, err := audit.WithSeq([]byte(`{"Time":"x"}`), 1); err == nil {
		t.Error("a template not starting with Seq was accepted")
	}
}

// Records appended concurrently on two accounts land in the store exactly
// as the documented chain says: Mac(n) = HMAC(K, Mac(n-1) || JSON without
// Mac), recomputed here independently of the package.
func TestBatchedAppendsFollowTheDocumentedChain(t *testing.T) {
	st := openStore(t)
	br := barrier(t, 1)
	tr := audit.New(st, br)
	const other = "2000000000000002"
	appendN(t, tr, 3) // a trail started one record at a time continues
	returned, errl := appendConcurrently(t, tr, 40, func(i int) audit.Event {
		e := event(100 + i)
		if i%3 == 0 {
			e.Account = other
		}
		return e
	})
	for _, err := range errl {
		if err != nil {
			t.Fatal(err)
		}
	}
	k := br.DeriveKey("keyhold/audit/mac/v1")
	for _, a := range []string{acct, other} {
		var rows []store.KV
		st.View(context.Background(), func(tx store.Tx) error {
			var err error
			rows, err = tx.List(audit.TableRecords, a+"/", "", 0)
			return err
		})
		want := map[string]int{acct: 3 + 26, other: 14}[a]
		if len(rows) != want {
			t.Fatalf("%s: %d records, want %d", a, len(rows), want)
		}
		prev := make([]byte, 32)
		for i, kv := range rows {
			var r audit.Record
			if err := json.Unmarshal(kv.Value, &r); err != nil {
				t.Fatal(err)
			}
			if r.Seq != uint64(i+1) || r.Account != a {
				t.Fatalf("%s: row %d holds seq %d of %s", a, i, r.Seq, r.Account)
			}
			if again, _ := json.Marshal(r); !bytes.Equal(again, kv.Value) {
				t.Fatalf("seq %d stored as %s, not as encoding/json writes it", r.Seq, kv.Value)
			}
			mac := r.Mac
			r.Mac = ""
			c, _ := json.Marshal(r)
			m := hmac.New(sha256.New, k)
			m.Write(prev)
			m.Write(c)
			if got := hex.EncodeToString(m.Sum(nil)); got != mac {
				t.Fatalf("%s seq %d: Mac %s, want %s", a, r.Seq, mac, got)
			}
			prev = m.Sum(nil)
		}
		if rep, err := tr.Verify(context.Background(), a, nil); err != nil || !rep.Valid || rep.HeadSeq != uint64(want) {
			t.Fatalf("%s: %+v %v", a, rep, err)
		}
	}
	// Each caller got its own record back, as stored.
	seen := map[string]bool{}
	for i, r := range returned {
		key := fmt.Sprintf("%s/%d", r.Account, r.Seq)
		if seen[key] || r.RequestId != fmt.Sprintf("REQ-%d", 100+i) || r.Mac == "" {
			t.Fatalf("caller %d got %+v", i, r)
		}
		seen[key] = true
	}
}

// While one batch's Update runs, later appends gather and go out together
// in the next Update: 1 + 12 appends, 2 Updates.
func TestAppendsQueuedDuringAnUpdateShareTheNext(t *testing.T) {
	release := make(chan struct{})
	var first sync.Once
	h := &hookStore{Store: openStore(t)}
	h.before = func() { first.Do(func() { <-release }) }
	tr := audit.New(h, barrier(t, 1))
	done := make(chan error, 1)
	go func() { _, err := tr.Append(context.Background(), event(0)); done <- err }()
	for h.updates.Load() == 0 {
		runtime.Gosched()
	}
	var wg sync.WaitGroup
	errc := make(chan error, 12)
	for i := range 12 {
		wg.Go(func() {
			if _, err := tr.Append(context.Background(), event(i+1)); err != nil {
				errc <- err
			}
		})
	}
	for tr.Queued() < 12 {
		runtime.Gosched()
	}
	close(release)
	wg.Wait()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	if n := h.updates.Load(); n != 2 {
		t.Errorf("%d Updates for 13 appends, want 2", n)
	}
	if rep := mustVerify(t, tr, nil); !rep.Valid || rep.HeadSeq != 13 {
		t.Errorf("report %+v", rep)
	}
}

// A batch whose Update fails fails every caller in it with
// ServiceUnavailable, and nothing of it is kept: the chain continues from
// the old head afterwards.
func TestAFailedBatchFailsEveryCallerAndKeepsNothing(t *testing.T) {
	h := &hookStore{Store: openStore(t)}
	tr := audit.New(h, barrier(t, 1))
	appendN(t, tr, 2)
	boom := errors.New("disk full")
	h.fail.Store(&boom)
	_, errl := appendConcurrently(t, tr, 24, event)
	for i, err := range errl {
		if !errs.Is(err, errs.KindUnavailable) || !errors.Is(err, boom) {
			t.Fatalf("caller %d: %v", i, err)
		}
	}
	if rep := mustVerify(t, tr, nil); !rep.Valid || rep.RecordCount != 2 || rep.HeadSeq != 2 {
		t.Fatalf("after the failed batch: %+v", rep)
	}
	h.fail.Store(nil)
	r, err := tr.Append(context.Background(), event(3))
	if err != nil || r.Seq != 3 {
		t.Fatalf("append after recovery: seq %d, %v", r.Seq, err)
	}
	if rep := mustVerify(t, tr, nil); !rep.Valid || rep.HeadSeq != 3 {
		t.Fatalf("report %+v", rep)
	}
}

// The Update function runs again after another replica moved the head in
// between (a serialization retry, a group-commit re-run): the batch must
// chain after the new head, not reuse what its first run computed.
func TestARerunBatchChainsAfterTheCurrentHead(t *testing.T) {
	bs := openStore(t)
	other := audit.New(bs, barrier(t, 1))
	var n atomic.Int64
	h := &hookStore{Store: bs, rerun: true}
	h.between = func() {
		if _, err := other.Append(context.Background(), event(int(1000+n.Add(1)))); err != nil {
			t.Error(err)
		}
	}
	tr := audit.New(h, barrier(t, 1))
	recs, errl := appendConcurrently(t, tr, 16, event)
	for _, err := range errl {
		if err != nil {
			t.Fatal(err)
		}
	}
	total := uint64(16 + n.Load())
	rep := mustVerify(t, tr, nil)
	if !rep.Valid || rep.HeadSeq != total || rep.RecordCount != total {
		t.Fatalf("report %+v, want %d records", rep, total)
	}
	if n.Load() == 0 {
		t.Fatal("no Update was re-run")
	}
	// What each caller was told is what is stored.
	got, _, err := tr.List(context.Background(), acct, audit.Query{Limit: 100})
	if err != nil || uint64(len(got)) != total {
		t.Fatalf("list: %d records, %v", len(got), err)
	}
	for _, r := range recs {
		if s := got[r.Seq-1]; s.Mac != r.Mac || s.RequestId != r.RequestId {
			t.Fatalf("caller told seq %d %s, stored %s %s", r.Seq, r.RequestId, s.RequestId, s.Mac)
		}
	}
}

func TestAnAppendWithAnEndedContextWritesNothing(t *testing.T) {
	st := openStore(t)
	tr := audit.New(st, barrier(t, 1))
	appendN(t, tr, 1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := tr.Append(ctx, event(2)); !errs.Is(err, errs.KindUnavailable) || !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
	if rep := mustVerify(t, tr, nil); !rep.Valid || rep.HeadSeq != 1 {
		t.Fatalf("report %+v", rep)
	}
}

// A caller that gives up while its record still waits for a batch gets its
// context's error, and its record is never written.
func TestAnAppendAbandonedWhileQueuedWritesNothing(t *testing.T) {
	release := make(chan struct{})
	var first sync.Once
	h := &hookStore{Store: openStore(t)}
	h.before = func() { first.Do(func() { <-release }) }
	tr := audit.New(h, barrier(t, 1))
	done := make(chan error, 1)
	go func() { _, err := tr.Append(context.Background(), event(1)); done <- err }()
	for h.updates.Load() == 0 {
		runtime.Gosched()
	}
	ctx, cancel := context.WithCancel(context.Background())
	queued := make(chan error, 1)
	go func() { _, err := tr.Append(ctx, event(2)); queued <- err }()
	for tr.Queued() < 1 {
		runtime.Gosched()
	}
	cancel()
	if err := <-queued; !errs.Is(err, errs.KindUnavailable) || !errors.Is(err, context.Canceled) {
		t.Fatalf("abandoned append: %v", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	r, err := tr.Append(context.Background(), event(3))
	if err != nil || r.Seq != 2 {
		t.Fatalf("next append: seq %d, %v", r.Seq, err)
	}
	recs, _, _ := tr.List(context.Background(), acct, audit.Query{})
	for _, r := range recs {
		if r.RequestId == "REQ-2" {
			t.Fatalf("abandoned record stored as seq %d", r.Seq)
		}
	}
}
