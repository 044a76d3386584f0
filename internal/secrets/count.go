package secrets

import (
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"

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
// table (once, in the same transaction), and until then readers count.
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

// initCount writes every shard of an account that has none: shard 0 holds
// the secrets stored now (the caller's change included), the others 0.
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
