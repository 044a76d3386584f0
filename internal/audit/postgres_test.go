package audit_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/keyhold/keyhold/internal/audit"
	"github.com/keyhold/keyhold/internal/store/postgres"
	"github.com/keyhold/keyhold/internal/store/postgres/pgtest"
)

// Two PostgreSQL stores on one database are two replicas in two processes'
// stead: the head row, read and rewritten in each append's SERIALIZABLE
// transaction, orders their appends into one chain with no leader.
func TestReplicasOnPostgresAppendToOneChain(t *testing.T) {
	dsn := pgtest.Start(t).DSN(t)
	var replicas []*audit.Trail
	for range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		st, err := postgres.Open(ctx, dsn)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		replicas = append(replicas, audit.New(st, barrier(t, 1)))
	}
	var wg sync.WaitGroup
	errc := make(chan error, 80)
	for g := range 16 {
		wg.Go(func() {
			for i := range 5 {
				if _, err := replicas[(g+i)%2].Append(context.Background(), event(g*10+i)); err != nil {
					errc <- err
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	for i, tr := range replicas {
		rep, err := tr.Verify(context.Background(), acct, nil)
		if err != nil || !rep.Valid || rep.RecordCount != 80 || rep.HeadSeq != 80 {
			t.Errorf("replica %d: %+v %v", i, rep, err)
		}
	}
}
