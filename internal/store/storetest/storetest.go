// Package storetest is the conformance suite every store.Store backend runs
// unchanged from its own _test.go (after Vault's sdk/physical/testing.go):
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { ... })
//	}
//
// plus RunCrash, which kills a writer process with SIGKILL and checks that
// every acknowledged write survived intact.
//
// The suite knows the contract only; it must not import a backend.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyhold/keyhold/internal/store"
)

// Opener returns a fresh, empty store for one subtest and registers its
// Close with t.Cleanup.
type Opener func(t *testing.T) store.Store

// Run runs every conformance subtest, each against its own fresh store.
func Run(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(*testing.T, store.Store)
	}{
		{"CRUD", testCRUD},
		{"TablesAreSeparate", testTablesAreSeparate},
		{"EmptyValue", testEmptyValue},
		{"InsertExisting", testInsertExisting},
		{"DeleteAbsent", testDeleteAbsent},
		{"ViewIsReadOnly", testViewIsReadOnly},
		{"RollbackOnError", testRollbackOnError},
		{"FailedUpdateAmongConcurrent", testFailedUpdateAmongConcurrent},
		{"CanceledContext", testCanceledContext},
		{"ConcurrentIncrements", testConcurrentIncrements},
		{"ListOrderAndPaging", testList},
		{"ListOffset", testListOffset},
		{"Count", testCount},
		{"ValuesAreCopies", testValuesAreCopies},
		{"Nonces", testNonces},
		{"ConcurrentNonces", testConcurrentNonces},
		{"Leases", testLeases},
		{"FenceRollsBackWrites", testFenceRollsBack},
		{"NotifyAfterCommit", testNotifyAfterCommit},
		{"NotifyNotOnRollback", testNotifyNotOnRollback},
		{"NotifyCoalesced", testNotifyCoalesced},
		{"Lock", testLock},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

var errBoom = errors.New("storetest: deliberate failure")

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

func put(t *testing.T, s store.Store, table, key, value string) {
	t.Helper()
	if err := s.Update(ctx(t), func(tx store.Tx) error {
		return tx.Put(table, key, []byte(value))
	}); err != nil {
		t.Fatalf("Put %s/%s: %v", table, key, err)
	}
}

// get returns the value, or "<absent>" for ErrNotFound.
func get(t *testing.T, s store.Store, table, key string) string {
	t.Helper()
	var v []byte
	err := s.View(ctx(t), func(tx store.Tx) error {
		var err error
		v, err = tx.Get(table, key)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return "<absent>"
	}
	if err != nil {
		t.Fatalf("Get %s/%s: %v", table, key, err)
	}
	return string(v)
}

func testCRUD(t *testing.T, s store.Store) {
	if got := get(t, s, "crud", "k"); got != "<absent>" {
		t.Fatalf("Get on empty store = %q, want ErrNotFound", got)
	}
	put(t, s, "crud", "k", "v1")
	if got := get(t, s, "crud", "k"); got != "v1" {
		t.Fatalf("Get = %q, want v1", got)
	}
	put(t, s, "crud", "k", "v2")
	if got := get(t, s, "crud", "k"); got != "v2" {
		t.Fatalf("Get after overwrite = %q, want v2", got)
	}
	// A transaction sees its own writes.
	err := s.Update(ctx(t), func(tx store.Tx) error {
		if err := tx.Put("crud", "k2", []byte("x")); err != nil {
			return err
		}
		v, err := tx.Get("crud", "k2")
		if err != nil || string(v) != "x" {
			return fmt.Errorf("read own write: %q, %v", v, err)
		}
		if err := tx.Delete("crud", "k2"); err != nil {
			return err
		}
		if _, err := tx.Get("crud", "k2"); !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("read own delete: %v, want ErrNotFound", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Update(ctx(t), func(tx store.Tx) error { return tx.Delete("crud", "k") }); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if got := get(t, s, "crud", "k"); got != "<absent>" {
		t.Fatalf("Get after Delete = %q, want ErrNotFound", got)
	}
}

func testTablesAreSeparate(t *testing.T, s store.Store) {
	put(t, s, "a", "k", "in-a")
	put(t, s, "b", "k", "in-b")
	if a, b := get(t, s, "a", "k"), get(t, s, "b", "k"); a != "in-a" || b != "in-b" {
		t.Fatalf("a/k=%q b/k=%q", a, b)
	}
	if got := get(t, s, "c", "k"); got != "<absent>" {
		t.Fatalf("Get from a table never written = %q, want ErrNotFound", got)
	}
}

func testEmptyValue(t *testing.T, s store.Store) {
	put(t, s, "t", "empty", "")
	var v []byte
	err := s.View(ctx(t), func(tx store.Tx) error {
		var err error
		v, err = tx.Get("t", "empty")
		return err
	})
	if err != nil || len(v) != 0 {
		t.Fatalf("Get of empty value = %q, %v; want empty, nil", v, err)
	}
}

func testInsertExisting(t *testing.T, s store.Store) {
	if err := s.Update(ctx(t), func(tx store.Tx) error { return tx.Insert("t", "k", []byte("first")) }); err != nil {
		t.Fatalf("Insert of new key: %v", err)
	}
	err := s.Update(ctx(t), func(tx store.Tx) error { return tx.Insert("t", "k", []byte("second")) })
	if !errors.Is(err, store.ErrExists) {
		t.Fatalf("Insert of existing key: %v, want ErrExists", err)
	}
	if got := get(t, s, "t", "k"); got != "first" {
		t.Fatalf("value after refused Insert = %q, want first", got)
	}
	// Inserting a key deleted earlier in the same transaction is allowed.
	err = s.Update(ctx(t), func(tx store.Tx) error {
		if err := tx.Delete("t", "k"); err != nil {
			return err
		}
		return tx.Insert("t", "k", []byte("third"))
	})
	if err != nil || get(t, s, "t", "k") != "third" {
		t.Fatalf("Insert after Delete in one tx: %v", err)
	}
}

func testDeleteAbsent(t *testing.T, s store.Store) {
	err := s.Update(ctx(t), func(tx store.Tx) error {
		if err := tx.Delete("never-written", "k"); err != nil {
			return fmt.Errorf("absent table: %w", err)
		}
		if err := tx.Put("t", "other", []byte("x")); err != nil {
			return err
		}
		if err := tx.Delete("t", "k"); err != nil {
			return fmt.Errorf("absent key: %w", err)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Delete of absent key: %v, want nil", err)
	}
}

func testViewIsReadOnly(t *testing.T, s store.Store) {
	err := s.View(ctx(t), func(tx store.Tx) error { return tx.Put("t", "k", []byte("v")) })
	if err == nil {
		t.Fatal("Put inside View succeeded, want an error")
	}
	if got := get(t, s, "t", "k"); got != "<absent>" {
		t.Fatalf("write inside View is visible: %q", got)
	}
}

func testRollbackOnError(t *testing.T, s store.Store) {
	put(t, s, "t", "keep", "old")
	err := s.Update(ctx(t), func(tx store.Tx) error {
		for _, op := range []error{
			tx.Put("t", "new", []byte("v")),
			tx.Put("t", "keep", []byte("changed")),
			tx.Put("other", "new", []byte("v")),
			tx.Delete("t", "keep2"),
		} {
			if op != nil {
				return op
			}
		}
		return fmt.Errorf("wrapped: %w", errBoom)
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("Update returned %v, want the fn's error", err)
	}
	if get(t, s, "t", "new") != "<absent>" || get(t, s, "other", "new") != "<absent>" {
		t.Fatal("write of a failed Update is visible")
	}
	if got := get(t, s, "t", "keep"); got != "old" {
		t.Fatalf("overwrite of a failed Update is visible: %q", got)
	}
}

// testFailedUpdateAmongConcurrent catches group-commit bugs: a failing fn
// batched with others must not take their writes down, nor leak its own.
func testFailedUpdateAmongConcurrent(t *testing.T, s store.Store) {
	const n = 32
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.Update(ctx(t), func(tx store.Tx) error {
				if err := tx.Put("t", fmt.Sprintf("k%02d", i), []byte("v")); err != nil {
					return err
				}
				if i%3 == 0 {
					return errBoom
				}
				return nil
			})
		}()
	}
	wg.Wait()
	for i := range n {
		got := get(t, s, "t", fmt.Sprintf("k%02d", i))
		if i%3 == 0 {
			if !errors.Is(errs[i], errBoom) || got != "<absent>" {
				t.Errorf("failing Update %d: err=%v value=%q; want errBoom and absent", i, errs[i], got)
			}
		} else if errs[i] != nil || got != "v" {
			t.Errorf("Update %d: err=%v value=%q; want nil and v", i, errs[i], got)
		}
	}
}

func testCanceledContext(t *testing.T, s store.Store) {
	c, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.Update(c, func(tx store.Tx) error { return tx.Put("t", "k", []byte("v")) })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Update with canceled context: %v, want context.Canceled", err)
	}
	if get(t, s, "t", "k") != "<absent>" {
		t.Fatal("Update with canceled context wrote")
	}
}

func testConcurrentIncrements(t *testing.T, s store.Store) {
	const writers, each = 32, 20
	var wg sync.WaitGroup
	var failures atomic.Int32
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				err := s.Update(ctx(t), func(tx store.Tx) error {
					n := 0
					v, err := tx.Get("t", "counter")
					if err == nil {
						fmt.Sscan(string(v), &n)
					} else if !errors.Is(err, store.ErrNotFound) {
						return err
					}
					return tx.Put("t", "counter", []byte(fmt.Sprint(n+1)))
				})
				if err != nil {
					failures.Add(1)
					t.Errorf("increment: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if got, want := get(t, s, "t", "counter"), fmt.Sprint(writers*each); failures.Load() == 0 && got != want {
		t.Fatalf("counter = %s, want %s (lost updates)", got, want)
	}
}

func keys(kvs []store.KV) []string {
	out := make([]string, len(kvs))
	for i, kv := range kvs {
		out[i] = kv.Key
	}
	return out
}

func testList(t *testing.T, s store.Store) {
	// Byte order, not collation: "B" < "a", "b" < "b0" < "c", "z" < "é".
	in := []string{"p/c", "p/a", "p/é", "p/b0", "p/B", "p/b", "p/z", "o/x", "pa", "q/x", "p"}
	err := s.Update(ctx(t), func(tx store.Tx) error {
		for _, k := range in {
			if err := tx.Put("list", k, []byte("v:"+k)); err != nil {
				return err
			}
			// Same keys in another table must not leak into listings.
			if err := tx.Put("list2", k+"2", []byte("x")); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	all := []string{"p/B", "p/a", "p/b", "p/b0", "p/c", "p/z", "p/é"}
	cases := []struct {
		prefix, after string
		limit         int
		want          []string
	}{
		{"p/", "", 0, all},
		{"p/", "", -1, all},
		{"p/", "", 3, all[:3]},
		{"p/", "p/a", 3, []string{"p/b", "p/b0", "p/c"}},
		{"p/", "p/b", 0, []string{"p/b0", "p/c", "p/z", "p/é"}},
		{"p/", "p/b00", 0, []string{"p/c", "p/z", "p/é"}}, // after need not exist
		{"p/", "p/é", 0, nil},
		{"p/", "a", 0, all}, // after sorts before the prefix
		{"p/", "q", 0, nil}, // after sorts beyond the prefix
		{"p/", "p/", 2, all[:2]},
		{"p", "", 0, append(append([]string{"p"}, all...), "pa")},
		{"", "", 0, []string{"o/x", "p", "p/B", "p/a", "p/b", "p/b0", "p/c", "p/z", "p/é", "pa", "q/x"}},
		{"", "pa", 0, []string{"q/x"}},
		{"nothing/", "", 0, nil},
	}
	err = s.View(ctx(t), func(tx store.Tx) error {
		for _, c := range cases {
			got, err := tx.List("list", c.prefix, c.after, c.limit)
			if err != nil {
				return err
			}
			if fmt.Sprint(keys(got)) != fmt.Sprint(c.want) {
				t.Errorf("List(%q, after %q, limit %d) = %q, want %q", c.prefix, c.after, c.limit, keys(got), c.want)
			}
			for _, kv := range got {
				if string(kv.Value) != "v:"+kv.Key {
					t.Errorf("List value of %q = %q", kv.Key, kv.Value)
				}
			}
		}
		if got, err := tx.List("never-written", "", "", 0); err != nil || len(got) != 0 {
			t.Errorf("List of a table never written = %q, %v; want empty, nil", keys(got), err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// Paging by limit+after walks every key exactly once.
	var paged []string
	after := ""
	for {
		var page []store.KV
		if err := s.View(ctx(t), func(tx store.Tx) error {
			var err error
			page, err = tx.List("list", "p/", after, 2)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		paged = append(paged, keys(page)...)
		after = page[len(page)-1].Key
	}
	if fmt.Sprint(paged) != fmt.Sprint(all) {
		t.Fatalf("paging by 2 = %q, want %q", paged, all)
	}
}

func testListOffset(t *testing.T, s store.Store) {
	// Neighbours on both sides of the prefix, and in another table, must
	// neither be skipped nor returned.
	in := []string{"p/c", "p/a", "p/é", "p/b0", "p/B", "p/b", "p/z", "o/x", "pa", "q/x", "p", "p\xff"}
	err := s.Update(ctx(t), func(tx store.Tx) error {
		for _, k := range in {
			if err := tx.Put("off", k, []byte("v:"+k)); err != nil {
				return err
			}
			if err := tx.Put("off2", "p/"+k, []byte("x")); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	all := []string{"p/B", "p/a", "p/b", "p/b0", "p/c", "p/z", "p/é"}
	cases := []struct {
		prefix        string
		offset, limit int
		want          []string
	}{
		{"p/", 0, 0, all},
		{"p/", 0, 3, all[:3]},
		{"p/", -5, 2, all[:2]},                // negative offset counts as 0
		{"p/", 3, 2, []string{"p/b0", "p/c"}}, // a middle page
		{"p/", 6, 3, all[6:]},                 // a last partial page
		{"p/", 5, 0, all[5:]},                 // the rest
		{"p/", 7, 1, nil},                     // just past the end
		{"p/", 1000, 10, nil},                 // far beyond the end
		{"p", 1, 2, all[:2]},                  // "p" itself is the first key
		{"p", 8, 5, []string{"pa", "p\xff"}},
		{"", 0, 2, []string{"o/x", "p"}},
		{"", 10, 0, []string{"p\xff", "q/x"}},
		{"nothing/", 0, 5, nil},
		{"nothing/", 2, 5, nil},
	}
	check := func(tx store.Tx) error {
		for _, c := range cases {
			got, err := tx.ListOffset("off", c.prefix, c.offset, c.limit)
			if err != nil {
				return err
			}
			if fmt.Sprint(keys(got)) != fmt.Sprint(c.want) {
				t.Errorf("ListOffset(%q, offset %d, limit %d) = %q, want %q", c.prefix, c.offset, c.limit, keys(got), c.want)
			}
			for _, kv := range got {
				if string(kv.Value) != "v:"+kv.Key {
					t.Errorf("ListOffset value of %q = %q", kv.Key, kv.Value)
				}
			}
		}
		if got, err := tx.ListOffset("never-written", "", 3, 0); err != nil || len(got) != 0 {
			t.Errorf("ListOffset of a table never written = %q, %v; want empty, nil", keys(got), err)
		}
		return nil
	}
	if err := s.View(ctx(t), check); err != nil {
		t.Fatal(err)
	}

	// Paging by offset walks every key exactly once, as paging by after does.
	var paged []string
	err = s.View(ctx(t), func(tx store.Tx) error {
		for off := 0; ; off += 2 {
			page, err := tx.ListOffset("off", "p/", off, 2)
			if err != nil {
				return err
			}
			if len(page) == 0 {
				return nil
			}
			paged = append(paged, keys(page)...)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(paged) != fmt.Sprint(all) {
		t.Fatalf("paging by offset 2 = %q, want %q", paged, all)
	}

	// A write transaction sees its own uncommitted writes and deletes.
	err = s.Update(ctx(t), func(tx store.Tx) error {
		if err := tx.Delete("off", "p/B"); err != nil {
			return err
		}
		if err := tx.Put("off", "p/b1", []byte("v:p/b1")); err != nil {
			return err
		}
		got, err := tx.ListOffset("off", "p/", 2, 3)
		if err != nil {
			return err
		}
		if want := []string{"p/b0", "p/b1", "p/c"}; fmt.Sprint(keys(got)) != fmt.Sprint(want) {
			t.Errorf("ListOffset in the writing transaction = %q, want %q", keys(got), want)
		}
		return errBoom // roll back: the committed listing must be unchanged
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("Update = %v, want the deliberate failure", err)
	}
	if err := s.View(ctx(t), check); err != nil {
		t.Fatal(err)
	}
}

func testCount(t *testing.T, s store.Store) {
	err := s.Update(ctx(t), func(tx store.Tx) error {
		for _, k := range []string{"acc1/a", "acc1/b", "acc1/c", "acc10/a", "acc2/a"} {
			if err := tx.Put("c", k, []byte("v")); err != nil {
				return err
			}
		}
		return tx.Put("other", "acc1/z", []byte("v"))
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.View(ctx(t), func(tx store.Tx) error {
		for prefix, want := range map[string]int{"acc1/": 3, "acc1": 4, "acc2/": 1, "": 5, "none": 0} {
			if got, err := tx.Count("c", prefix); err != nil || got != want {
				t.Errorf("Count(%q) = %d, %v; want %d", prefix, got, err, want)
			}
		}
		if got, err := tx.Count("never-written", ""); err != nil || got != 0 {
			t.Errorf("Count of a table never written = %d, %v", got, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func testValuesAreCopies(t *testing.T, s store.Store) {
	buf := []byte("original")
	err := s.Update(ctx(t), func(tx store.Tx) error {
		if err := tx.Put("t", "k", buf); err != nil {
			return err
		}
		copy(buf, "MUTATED!") // the backend must have copied on Put
		return tx.Insert("t", "k2", buf[:4])
	})
	if err != nil {
		t.Fatal(err)
	}
	copy(buf, "AGAIN!!!")
	if got := get(t, s, "t", "k"); got != "original" {
		t.Fatalf("stored value follows the caller's buffer: %q", got)
	}
	err = s.View(ctx(t), func(tx store.Tx) error {
		v, err := tx.Get("t", "k")
		if err != nil {
			return err
		}
		copy(v, "XXXXXXXX")
		kvs, err := tx.List("t", "", "", 0)
		if err != nil {
			return err
		}
		for _, kv := range kvs {
			copy(kv.Value, "YYYYYYYY")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := get(t, s, "t", "k"); got != "original" {
		t.Fatalf("mutating a returned value changed the store: %q", got)
	}
	if got := get(t, s, "t", "k2"); got != "MUTA" {
		t.Fatalf("k2 = %q, want MUTA", got)
	}
}

func testNonces(t *testing.T, s store.Store) {
	c := ctx(t)
	exp := time.Now().Add(15 * time.Minute)
	if ok, err := s.PutNonce(c, "n1", exp); err != nil || !ok {
		t.Fatalf("first PutNonce = %v, %v; want true", ok, err)
	}
	if ok, err := s.PutNonce(c, "n1", exp); err != nil || ok {
		t.Fatalf("replayed PutNonce = %v, %v; want false", ok, err)
	}
	if ok, err := s.PutNonce(c, "n2", exp); err != nil || !ok {
		t.Fatalf("other nonce = %v, %v; want true", ok, err)
	}
	// Nonces are not table rows.
	var n int
	if err := s.View(c, func(tx store.Tx) error { n, _ = tx.Count("nonces", ""); return nil }); err != nil || n != 0 {
		t.Fatalf("nonces leak into a table: %d, %v", n, err)
	}

	short := time.Now().Add(150 * time.Millisecond)
	if ok, err := s.PutNonce(c, "short", short); err != nil || !ok {
		t.Fatalf("PutNonce = %v, %v", ok, err)
	}
	if ok, _ := s.PutNonce(c, "short", time.Now().Add(time.Minute)); ok {
		t.Fatal("replay of a live nonce accepted")
	}
	time.Sleep(time.Until(short) + 50*time.Millisecond)
	if ok, err := s.PutNonce(c, "short", time.Now().Add(time.Minute)); err != nil || !ok {
		t.Fatalf("PutNonce after expiry = %v, %v; want true", ok, err)
	}
	if ok, _ := s.PutNonce(c, "short", time.Now().Add(time.Minute)); ok {
		t.Fatal("replay of a renewed nonce accepted")
	}
}

func testConcurrentNonces(t *testing.T, s store.Store) {
	// 8 goroutines race for the same 20 nonces: each is accepted once.
	var accepted atomic.Int32
	var wg sync.WaitGroup
	exp := time.Now().Add(time.Minute)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				ok, err := s.PutNonce(ctx(t), fmt.Sprintf("race-%d", i), exp)
				if err != nil {
					t.Error(err)
					return
				}
				if ok {
					accepted.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if got := accepted.Load(); got != 20 {
		t.Fatalf("%d nonces accepted, want 20", got)
	}
}

func testLeases(t *testing.T, s store.Store) {
	c := ctx(t)
	if _, err := s.GetLease(c, "leader"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetLease of a lease never taken: %v, want ErrNotFound", err)
	}
	const ttl = 300 * time.Millisecond
	a, err := s.AcquireLease(c, "leader", "A", ttl)
	if err != nil || a.Holder != "A" || a.Name != "leader" || a.Token == 0 {
		t.Fatalf("AcquireLease A = %+v, %v", a, err)
	}
	if _, err := s.AcquireLease(c, "leader", "B", ttl); !errors.Is(err, store.ErrLeaseHeld) {
		t.Fatalf("AcquireLease B while A holds: %v, want ErrLeaseHeld", err)
	}
	if other, err := s.AcquireLease(c, "other", "B", ttl); err != nil || other.Holder != "B" {
		t.Fatalf("leases are per name: %+v, %v", other, err)
	}
	renewed, err := s.AcquireLease(c, "leader", "A", ttl)
	if err != nil || renewed.Token != a.Token || renewed.Expires.Before(a.Expires) {
		t.Fatalf("renewal = %+v, %v; want token %d kept and expiry extended", renewed, err, a.Token)
	}
	got, err := s.GetLease(c, "leader")
	if err != nil || got.Holder != "A" || got.Token != a.Token {
		t.Fatalf("GetLease = %+v, %v", got, err)
	}
	if err := s.Update(c, func(tx store.Tx) error { return tx.CheckFence("leader", a.Token) }); err != nil {
		t.Fatalf("CheckFence with the live token: %v", err)
	}
	if err := s.Update(c, func(tx store.Tx) error { return tx.CheckFence("leader", a.Token+1) }); !errors.Is(err, store.ErrFenced) {
		t.Fatalf("CheckFence with a wrong token: %v, want ErrFenced", err)
	}
	if err := s.View(c, func(tx store.Tx) error { return tx.CheckFence("never", 1) }); !errors.Is(err, store.ErrFenced) {
		t.Fatalf("CheckFence of a lease never taken: %v, want ErrFenced", err)
	}

	time.Sleep(time.Until(renewed.Expires) + 50*time.Millisecond)
	if err := s.View(c, func(tx store.Tx) error { return tx.CheckFence("leader", a.Token) }); !errors.Is(err, store.ErrFenced) {
		t.Fatalf("CheckFence after expiry: %v, want ErrFenced", err)
	}
	b, err := s.AcquireLease(c, "leader", "B", time.Minute)
	if err != nil || b.Holder != "B" || b.Token <= a.Token {
		t.Fatalf("AcquireLease B after expiry = %+v, %v; want token > %d", b, err, a.Token)
	}
	if err := s.View(c, func(tx store.Tx) error { return tx.CheckFence("leader", a.Token) }); !errors.Is(err, store.ErrFenced) {
		t.Fatalf("CheckFence with the old holder's token: %v, want ErrFenced", err)
	}
	// The old holder can neither release nor renew the new holder's lease.
	if err := s.ReleaseLease(c, "leader", "A", a.Token); err != nil {
		t.Fatalf("stale ReleaseLease: %v", err)
	}
	if _, err := s.AcquireLease(c, "leader", "A", ttl); !errors.Is(err, store.ErrLeaseHeld) {
		t.Fatalf("AcquireLease A while B holds: %v, want ErrLeaseHeld", err)
	}
	if err := s.ReleaseLease(c, "leader", "B", b.Token); err != nil {
		t.Fatalf("ReleaseLease: %v", err)
	}
	if err := s.View(c, func(tx store.Tx) error { return tx.CheckFence("leader", b.Token) }); !errors.Is(err, store.ErrFenced) {
		t.Fatalf("CheckFence after release: %v, want ErrFenced", err)
	}
	a2, err := s.AcquireLease(c, "leader", "A", ttl)
	if err != nil || a2.Token <= b.Token {
		t.Fatalf("AcquireLease after release = %+v, %v; want token > %d", a2, err, b.Token)
	}
}

func testFenceRollsBack(t *testing.T, s store.Store) {
	c := ctx(t)
	// The lease must outlive the first fenced write even on a loaded CI
	// machine (200 ms did not, on PostgreSQL), so it is 2 s.
	l, err := s.AcquireLease(c, "leader", "A", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	fenced := func(key string) error {
		return s.Update(c, func(tx store.Tx) error {
			if err := tx.Put("t", key, []byte("v")); err != nil {
				return err
			}
			return tx.CheckFence("leader", l.Token)
		})
	}
	if err := fenced("while-leader"); err != nil {
		t.Fatalf("fenced write by the leader: %v", err)
	}
	time.Sleep(time.Until(l.Expires) + 50*time.Millisecond)
	if _, err := s.AcquireLease(c, "leader", "B", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := fenced("after-takeover"); !errors.Is(err, store.ErrFenced) {
		t.Fatalf("fenced write by the old leader: %v, want ErrFenced", err)
	}
	if get(t, s, "t", "while-leader") != "v" || get(t, s, "t", "after-takeover") != "<absent>" {
		t.Fatal("fenced Update kept its writes, or the leader's write was lost")
	}
}

func recv(ch <-chan struct{}, wait time.Duration) bool {
	select {
	case <-ch:
		return true
	case <-time.After(wait):
		return false
	}
}

func testNotifyAfterCommit(t *testing.T, s store.Store) {
	ch, cancel := s.Subscribe("secrets")
	defer cancel()
	other, cancelOther := s.Subscribe("unrelated")
	defer cancelOther()
	err := s.Update(ctx(t), func(tx store.Tx) error {
		tx.Notify("secrets")
		return tx.Put("t", "k", []byte("v"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if !recv(ch, 5*time.Second) {
		t.Fatal("no notification after commit")
	}
	// Delivered after commit: the write is already visible.
	if get(t, s, "t", "k") != "v" {
		t.Fatal("notification arrived before the write was visible")
	}
	if recv(other, 100*time.Millisecond) {
		t.Fatal("notification delivered to another topic")
	}
	cancel()
	if err := s.Update(ctx(t), func(tx store.Tx) error { tx.Notify("secrets"); return nil }); err != nil {
		t.Fatal(err)
	}
	if recv(ch, 200*time.Millisecond) {
		t.Fatal("notification delivered after cancel")
	}
}

func testNotifyNotOnRollback(t *testing.T, s store.Store) {
	ch, cancel := s.Subscribe("secrets")
	defer cancel()
	err := s.Update(ctx(t), func(tx store.Tx) error {
		tx.Notify("secrets")
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatal(err)
	}
	if recv(ch, 300*time.Millisecond) {
		t.Fatal("notification delivered for a rolled-back transaction")
	}
}

func testNotifyCoalesced(t *testing.T, s store.Store) {
	ch, cancel := s.Subscribe("secrets")
	defer cancel()
	for range 5 {
		if err := s.Update(ctx(t), func(tx store.Tx) error { tx.Notify("secrets"); tx.Notify("secrets"); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if !recv(ch, 5*time.Second) {
		t.Fatal("no notification")
	}
	time.Sleep(200 * time.Millisecond) // let a shared backend's deliveries settle
	select {
	case <-ch:
		// One pending signal may remain from deliveries after the first
		// receive; more than that would mean a queue, not coalescing.
		if recv(ch, 100*time.Millisecond) {
			t.Fatal("notifications are queued, not coalesced")
		}
	default:
	}
}

func testLock(t *testing.T, s store.Store) {
	unlock, err := s.Lock(ctx(t), "setup")
	if err != nil {
		t.Fatal(err)
	}
	c, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if u, err := s.Lock(c, "setup"); err == nil {
		u()
		t.Fatal("second Lock succeeded while held")
	}
	other, err := s.Lock(ctx(t), "other-name")
	if err != nil {
		t.Fatalf("Lock of another name: %v", err)
	}
	other()
	unlock()
	unlock() // idempotent

	var holders, maxHolders atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				u, err := s.Lock(ctx(t), "setup")
				if err != nil {
					t.Error(err)
					return
				}
				n := holders.Add(1)
				if n > maxHolders.Load() {
					maxHolders.Store(n)
				}
				time.Sleep(time.Millisecond)
				holders.Add(-1)
				u()
			}
		}()
	}
	wg.Wait()
	if maxHolders.Load() != 1 {
		t.Fatalf("%d holders at once, want 1", maxHolders.Load())
	}
}
