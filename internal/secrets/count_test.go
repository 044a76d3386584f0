package secrets

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/keyhold/keyhold/internal/store"
	"github.com/keyhold/keyhold/internal/store/postgres"
	"github.com/keyhold/keyhold/internal/store/postgres/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// storedCount reads the account's count records as ListSecrets does, and
// the number of keys actually stored.
func storedCount(t *testing.T, st store.Store, account string) (shards, count, keys int) {
	t.Helper()
	err := st.View(ctx, func(tx store.Tx) error {
		kvs, err := tx.List(tableCounts, store.Key(account, ""), "", 0)
		if err != nil {
			return err
		}
		shards = len(kvs)
		if count, err = secretCount(tx, account); err != nil {
			return err
		}
		keys, err = tx.Count(tableSecrets, store.Key(account, ""))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return shards, count, keys
}

// A store written before the count existed has secrets but no count
// records: ListSecrets counts them, and the first create or delete writes
// the count from what is stored.
func TestCountOfAnOlderStore(t *testing.T) {
	for _, first := range []string{"create", "force-delete", "purge"} {
		t.Run(first, func(t *testing.T) {
			f := newFixture(t)
			seedList(t, f, 9)
			if _, err := f.svc.DeleteSecret(ctx, acct, "s-004", 7, false); err != nil {
				t.Fatal(err)
			}
			// Forget the counts, as a build without them would never have
			// written them.
			err := f.st.Update(ctx, func(tx store.Tx) error {
				for _, a := range []string{acct, acct + "0", "0" + acct} {
					for i := range countShards {
						if err := tx.Delete(tableCounts, countKey(a, i)); err != nil {
							return err
						}
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if shards, n, _ := storedCount(t, f.st, acct); shards != 0 || n != 9 {
				t.Fatalf("without count records: %d shards, count %d; want 0, 9", shards, n)
			}
			checkList(t, f, nil, 1, 4)
			checkList(t, f, nil, 3, 4)

			want := 0
			switch first {
			case "create":
				f.create(t, "s-100", "x")
				want = 10
			case "force-delete":
				if _, err := f.svc.DeleteSecret(ctx, acct, "s-001", 0, true); err != nil {
					t.Fatal(err)
				}
				want = 8
			case "purge":
				if n, err := f.svc.PurgeDue(ctx, f.clock.Now().Add(8*24*time.Hour)); err != nil || n != 1 {
					t.Fatalf("PurgeDue = %d, %v", n, err)
				}
				want = 8
			}
			if shards, n, keys := storedCount(t, f.st, acct); shards != countShards || n != want || keys != want {
				t.Fatalf("after the first %s: %d shards, count %d, %d stored; want %d, %d, %d", first, shards, n, keys, countShards, want, want)
			}
			f.create(t, "s-101", "x")
			if _, err := f.svc.DeleteSecret(ctx, acct, "s-002", 0, true); err != nil {
				t.Fatal(err)
			}
			if _, n, keys := storedCount(t, f.st, acct); n != want || keys != want {
				t.Fatalf("then a create and a delete: count %d, %d stored; want %d", n, keys, want)
			}
			checkList(t, f, nil, 1, 100)
			// The other accounts still count by scan, correctly.
			if shards, n, _ := storedCount(t, f.st, acct+"0"); shards != 0 || n != 3 {
				t.Errorf("untouched account: %d shards, count %d", shards, n)
			}
		})
	}
}

// A refused create (name taken) and a failed transaction leave the count
// alone.
func TestCountUnchangedByRefusals(t *testing.T) {
	f := newFixture(t)
	seedList(t, f, 5)
	_, err := f.svc.CreateSecret(ctx, acct, CreateInput{Name: "s-001", VersionID: "v1", Data: "x"})
	if err == nil {
		t.Fatal("CreateSecret of a taken name succeeded")
	}
	_, err = f.svc.DeleteSecret(ctx, acct, "absent", 0, true)
	if err == nil {
		t.Fatal("DeleteSecret of an absent secret succeeded")
	}
	if _, n, keys := storedCount(t, f.st, acct); n != 5 || keys != 5 {
		t.Fatalf("count %d, %d stored; want 5", n, keys)
	}
}

// On PostgreSQL concurrent creates and deletes in one account conflict on
// the shards they share (SERIALIZABLE): every retried transaction must
// still count once. Run against a real PostgreSQL.
func TestCountConcurrentPostgres(t *testing.T) {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, err := postgres.Open(c, pgtest.Shared(t).DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := newFixtureOn(t, st)
	const workers, each = 16, 8
	var wg sync.WaitGroup
	errc := make(chan error, workers*each*2)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				name := fmt.Sprintf("w%02d-%02d", w, i)
				if _, err := f.svc.CreateSecret(c, acct, CreateInput{Name: name, VersionID: "v1", Data: "x"}); err != nil {
					errc <- fmt.Errorf("create %s: %w", name, err)
					continue
				}
				if i%2 == 1 { // delete every other one again
					if _, err := f.svc.DeleteSecret(c, acct, name, 0, true); err != nil {
						errc <- fmt.Errorf("delete %s: %w", name, err)
					}
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	want := workers * each / 2
	if shards, n, keys := storedCount(t, st, acct); shards != countShards || n != want || keys != want {
		t.Fatalf("%d shards, count %d, %d stored; want %d, %d, %d", shards, n, keys, countShards, want, want)
	}
	got, total := checkList(t, f, nil, 2, 50)
	if total != want || len(got) != want-50 {
		t.Errorf("page 2 of 50: %d items, total %d", len(got), total)
	}
}

// A count left wrong by a writer that did not keep it (an older build
// beside this one) is found and rebuilt by PurgeDue's walk; accounts whose
// count is right, or that have none, are not written.
func TestPurgeDueRepairsDriftedCount(t *testing.T) {
	f := newFixture(t)
	seedList(t, f, 6) // acct: 6 secrets with a count; two neighbours: 3 each
	// What an older build does: insert and delete secrets without the count.
	err := f.st.Update(ctx, func(tx store.Tx) error {
		for _, name := range []string{"old-a", "old-b"} {
			if err := putSecret(tx, acct, &Secret{Name: name, Type: TypeGeneric}); err != nil {
				return err
			}
		}
		if err := tx.Delete(tableSecrets, secretKey(acct+"0", "zz")); err != nil {
			return err
		}
		// This neighbour has never had a count: readers count its keys.
		for i := range countShards {
			if err := tx.Delete(tableCounts, countKey("0"+acct, i)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, n, keys := storedCount(t, f.st, acct); n != 6 || keys != 8 {
		t.Fatalf("before the repair: count %d, %d stored; want 6 and 8 (the drift)", n, keys)
	}
	countRecords := func() map[string]string {
		out := map[string]string{}
		f.st.View(ctx, func(tx store.Tx) error {
			kvs, err := tx.List(tableCounts, "", "", 0)
			for _, kv := range kvs {
				out[kv.Key] = string(kv.Value)
			}
			return err
		})
		return out
	}
	if _, err := f.svc.PurgeDue(ctx, f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	for account, want := range map[string]int{acct: 8, acct + "0": 2, "0" + acct: 3} {
		if _, n, keys := storedCount(t, f.st, account); n != want || keys != want {
			t.Errorf("after the repair, %s: count %d, %d stored; want %d", account, n, keys, want)
		}
	}
	if shards, _, _ := storedCount(t, f.st, "0"+acct); shards != 0 {
		t.Errorf("an account without a count got %d count records", shards)
	}
	checkList(t, f, nil, 1, 100)
	// The rebuilt count keeps counting, in the new secret's shard (not 0,
	// so that a needless rebuild, which puts everything in shard 0, shows).
	name := "new"
	for i := 0; countShard(name) == 0; i++ {
		name = fmt.Sprintf("new%d", i)
	}
	f.create(t, name, "x")
	if _, n, keys := storedCount(t, f.st, acct); n != 9 || keys != 9 {
		t.Errorf("after a create: count %d, %d stored", n, keys)
	}
	// Nothing drifted now: a second walk writes nothing.
	before := countRecords()
	if _, err := f.svc.PurgeDue(ctx, f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if after := countRecords(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("a walk without drift rewrote the counts:\n%v\n%v", before, after)
	}
}
