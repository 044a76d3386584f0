package postgres

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keyhold/keyhold/internal/store"
)

// --- replay nonces ---

// PutNonce is one statement: insert, or take over an expired row. A live
// row makes it affect nothing, which is a replay. PostgreSQL's ON CONFLICT
// settles concurrent inserts of one key, on any replica, to one winner.
func (s *Store) PutNonce(ctx context.Context, key string, expires time.Time) (bool, error) {
	if key == "" {
		return false, errors.New("postgres: empty nonce")
	}
	if err := s.usable(ctx); err != nil {
		return false, err
	}
	tag, err := s.exec(ctx, s.pool, `INSERT INTO kh_nonces AS n (key, expires) VALUES ($1, $2)
		ON CONFLICT (key) DO UPDATE SET expires = EXCLUDED.expires
		WHERE n.expires <= clock_timestamp()`, []byte(key), expires)
	if err != nil {
		return false, err
	}
	return tag.RowsAffected() == 1, nil
}

// purgeNonces deletes expired nonces in bounded batches. Unpurged ones are
// harmless (an expired row counts as absent), so failures are only logged.
func (s *Store) purgeNonces(every time.Duration) {
	defer s.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), every)
		for {
			tag, err := s.pool.Exec(ctx, `DELETE FROM kh_nonces WHERE key IN (
				SELECT key FROM kh_nonces WHERE expires <= clock_timestamp() ORDER BY expires LIMIT 1000)`)
			if err != nil || tag.RowsAffected() < 1000 || s.closed() {
				break
			}
		}
		cancel()
	}
}

// --- leases ---

// AcquireLease is one upsert judged by the database clock: take the row
// when it is free, expired, released or ours; keep the token only when we
// renew our own live lease, otherwise increment it. The row is never
// deleted, so the token never goes back. The round trip is bounded by ttl
// too (when shorter than the operation bound): an answer later than that
// could only renew a lease the holder must already consider lapsed.
func (s *Store) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (store.Lease, error) {
	if holder == "" || name == "" {
		return store.Lease{}, errors.New("postgres: lease name and holder must not be empty")
	}
	if err := s.usable(ctx); err != nil {
		return store.Lease{}, err
	}
	var token int64
	var exp time.Time
	c, cancel := s.opCtx(ctx)
	defer cancel()
	if ttl > 0 && ttl < s.opTimeout {
		var cancelTTL context.CancelFunc
		c, cancelTTL = context.WithTimeoutCause(c, ttl, errNoAnswer)
		defer cancelTTL()
	}
	err := s.pool.QueryRow(c, `INSERT INTO kh_leases AS l (name, holder, token, expires)
		VALUES ($1, $2, 1, clock_timestamp() + $3 * interval '1 microsecond')
		ON CONFLICT (name) DO UPDATE SET
			token = CASE WHEN l.holder = $2 AND l.expires > clock_timestamp() THEN l.token ELSE l.token + 1 END,
			holder = $2,
			expires = clock_timestamp() + $3 * interval '1 microsecond'
		WHERE l.holder = $2 OR l.holder = '' OR l.expires IS NULL OR l.expires <= clock_timestamp()
		RETURNING token, expires`, name, holder, ttl.Microseconds()).Scan(&token, &exp)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Lease{}, store.ErrLeaseHeld
	}
	if err != nil {
		return store.Lease{}, s.opErr(c, err)
	}
	return store.Lease{Name: name, Holder: holder, Token: uint64(token), Expires: exp}, nil
}

// ReleaseLease clears holder and expiry if holder holds the live lease with
// token; anything else is a no-op.
func (s *Store) ReleaseLease(ctx context.Context, name, holder string, token uint64) error {
	if err := s.usable(ctx); err != nil {
		return err
	}
	_, err := s.exec(ctx, s.pool, `UPDATE kh_leases SET holder = '', expires = NULL
		WHERE name = $1 AND holder = $2 AND token = $3 AND expires > clock_timestamp()`, name, holder, int64(token))
	return err
}

// GetLease returns the lease as stored (a released lease keeps its token).
func (s *Store) GetLease(ctx context.Context, name string) (store.Lease, error) {
	if err := s.usable(ctx); err != nil {
		return store.Lease{}, err
	}
	var l store.Lease
	var token int64
	var exp *time.Time
	c, cancel := s.opCtx(ctx)
	defer cancel()
	err := s.pool.QueryRow(c, "SELECT holder, token, expires FROM kh_leases WHERE name = $1", name).Scan(&l.Holder, &token, &exp)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Lease{}, store.ErrNotFound
	}
	if err != nil {
		return store.Lease{}, s.opErr(c, err)
	}
	l.Name, l.Token = name, uint64(token)
	if exp != nil {
		l.Expires = *exp
	}
	return l, nil
}

// --- notifications ---

type subscriber struct{ ch chan struct{} }

// Subscribe registers for topic; the channel is never closed.
func (s *Store) Subscribe(topic string) (<-chan struct{}, func()) {
	sub := &subscriber{ch: make(chan struct{}, 1)}
	s.subMu.Lock()
	if s.subs[topic] == nil {
		s.subs[topic] = make(map[*subscriber]struct{})
	}
	s.subs[topic][sub] = struct{}{}
	s.subMu.Unlock()
	var once sync.Once
	return sub.ch, func() {
		once.Do(func() {
			s.subMu.Lock()
			delete(s.subs[topic], sub)
			if len(s.subs[topic]) == 0 {
				delete(s.subs, topic)
			}
			s.subMu.Unlock()
		})
	}
}

// deliver signals topic's subscribers, or all of them when all is set
// (after a reconnect, notifications may have been missed).
func (s *Store) deliver(topic string, all bool) {
	s.subMu.Lock()
	defer s.subMu.Unlock()
	for t, subs := range s.subs {
		if !all && t != topic {
			continue
		}
		for sub := range subs {
			select {
			case sub.ch <- struct{}{}:
			default: // one already pending: coalesced
			}
		}
	}
}

// listen holds one connection in LISTEN on the deployment's channel and
// reconnects with backoff when it breaks. Every reconnect wakes every
// subscriber, since notifications sent meanwhile were lost; subscribers
// re-read the state they watch, so a spurious wake-up is harmless.
func (s *Store) listen(cfg *pgx.ConnConfig) {
	defer s.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-s.done
		cancel()
	}()
	var first sync.Once
	lost := false
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err == nil {
			_, err = s.exec(ctx, conn, "LISTEN "+pgx.Identifier{s.channel}.Sanitize())
			if err == nil {
				backoff = 100 * time.Millisecond
				first.Do(func() { close(s.listening) })
				if lost {
					// Listening again: whatever was sent while we were
					// away is lost, so everyone re-reads.
					s.deliver("", true)
					lost = false
				}
				err = s.receive(ctx, conn)
			}
			conn.Close(context.Background())
		}
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("storage notifications: connection lost, reconnecting", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
		lost = true
	}
}

// receive delivers notifications until the connection fails. A database
// that stops answering without closing the connection (a frozen host, a
// network black hole) would leave it waiting for good while notifications
// are lost, so after opTimeout without one it pings, itself bounded; a
// wait that times out keeps the connection (pgx closes it only on other
// errors), a ping that does not answer ends it and the listener reconnects.
func (s *Store) receive(ctx context.Context, conn *pgx.Conn) error {
	for {
		c, cancel := s.opCtx(ctx)
		n, err := conn.WaitForNotification(c)
		cancel()
		if n != nil {
			s.deliver(n.Payload, false)
		}
		if err == nil {
			continue
		}
		if ctx.Err() != nil || !errors.Is(context.Cause(c), errNoAnswer) || conn.IsClosed() {
			return err
		}
		pc, cancel := s.opCtx(ctx)
		err = s.opErr(pc, conn.Ping(pc))
		cancel()
		if err != nil {
			return err
		}
	}
}
