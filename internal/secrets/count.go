package secrets

import (
	"errors"
	"fmt"
	"hash/fnv"
	"sort"
	"strconv"
	"strings"

	"github.com/keyhold/keyhold/internal/store"
)

// The number of secrets of an account, kept so that ListSecrets' TotalCount
// does not count keys: a Count of a million-key prefix walks every leaf
// page of the secrets table (measured 170 ms of CPU on bolt, docs/
// BENCHMARKS.md). It is split into countShards records,
// "<account>/<shard>" in tableCounts, each adjusted in the transaction that
// inserts or deletes a secret (the shard chosen by the name), and summed
// on read. One record per account would make every CreateSecret of an
// account write the same row, which on PostgreSQL (SERIALIZABLE) turns
// concurrent creates into serialization failures and retries; with 32
// shards two concurrent creates rarely touch the same one.
//
// An account written before the count existed has no shard records: the
// first insert or delete creates all of them from a Count of the secrets
// table (once, in the same transaction), and until then readers count. A
// build without the count writing beside this one (a downgrade, or mixed
// replicas) would leave it wrong: PurgeDue's periodic walk compares and
// rebuilds it.
const (
	tableCounts = "secret_counts"
	countShards = 32
)

func countKey(account string, shard int) string {
	return store.Key(account, fmt.Sprintf("%02d", shard))
}

func countShard(name string) int {
	h := fnv.New32a()
	h.Write([]byte(name))
	return int(h.Sum32() % countShards)
}

// addCount adjusts the account's count by delta for a change to secret
// name that tx has already made.
func addCount(tx store.Tx, account, name string, delta int) error {
	key := countKey(account, countShard(name))
	b, err := tx.Get(tableCounts, key)
	if errors.Is(err, store.ErrNotFound) {
		return initCount(tx, account)
	}
	if err != nil {
		return internal(err, "reading the secret count")
	}
	n, err := strconv.Atoi(string(b))
	if err != nil {
		return internal(err, "decoding the secret count")
	}
	if err := tx.Put(tableCounts, key, []byte(strconv.Itoa(n+delta))); err != nil {
		return internal(err, "writing the secret count")
	}
	return nil
}

// initCount writes every shard of an account: shard 0 holds the secrets
// stored now (the caller's change included), the others 0.
func initCount(tx store.Tx, account string) error {
	n, err := tx.Count(tableSecrets, store.Key(account, ""))
	if err != nil {
		return internal(err, "counting secrets")
	}
	for i := range countShards {
		v := 0
		if i == 0 {
			v = n
		}
		if err := tx.Put(tableCounts, countKey(account, i), []byte(strconv.Itoa(v))); err != nil {
			return internal(err, "writing the secret count")
		}
	}
	return nil
}

// secretCount returns the number of secrets of the account.
func secretCount(tx store.Tx, account string) (int, error) {
	kvs, err := tx.List(tableCounts, store.Key(account, ""), "", 0)
	if err != nil {
		return 0, internal(err, "reading the secret count")
	}
	if len(kvs) != countShards { // never written (see initCount): count
		n, err := tx.Count(tableSecrets, store.Key(account, ""))
		if err != nil {
			return 0, internal(err, "counting secrets")
		}
		return n, nil
	}
	total := 0
	for _, kv := range kvs {
		n, err := strconv.Atoi(string(kv.Value))
		if err != nil {
			return 0, internal(err, "decoding the secret count")
		}
		total += n
	}
	return total, nil
}

// countsDrifted returns the accounts whose stored count differs from seen
// (secrets per account, counted in the same snapshot). Accounts without
// count records are counted by readers and need nothing.
func countsDrifted(tx store.Tx, seen map[string]int) ([]string, error) {
	stored := map[string]int{}
	after := ""
	for {
		kvs, err := tx.List(tableCounts, "", after, listChunk)
		if err != nil {
			return nil, internal(err, "reading the secret counts")
		}
		for _, kv := range kvs {
			account, _, _ := strings.Cut(kv.Key, "/")
			n, err := strconv.Atoi(string(kv.Value))
			if err != nil {
				return nil, internal(err, "decoding the secret count")
			}
			stored[account] += n
		}
		if len(kvs) < listChunk {
			break
		}
		after = kvs[len(kvs)-1].Key
	}
	var out []string
	for account, n := range stored {
		if n != seen[account] {
			out = append(out, account)
		}
	}
	sort.Strings(out)
	return out, nil
}

// rebuildCount rewrites the account's count from its stored secrets,
// counted in the write transaction (O(N), only after a drift was seen).
func rebuildCount(tx store.Tx, account string) error { return initCount(tx, account) }
