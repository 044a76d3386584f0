package postgres

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultOpTimeout bounds each round trip to the database (see opCtx).
const DefaultOpTimeout = 30 * time.Second

// OpTimeoutParam is the storage URL's query parameter that sets the bound
// (a Go duration: "5s", "1m30s"). Keyhold removes it before pgx parses the
// URL: pgx would send an unknown parameter to the server as a run-time
// setting, which PostgreSQL refuses.
const OpTimeoutParam = "keyhold_op_timeout"

// errNoAnswer is the cause of an operation's context when its own bound
// fired, told apart from the caller's cancellation or deadline.
var errNoAnswer = errors.New("postgres: no answer from the database")

// splitOpTimeout removes OpTimeoutParam from a postgres:// URL and returns
// its value (0 when absent). Only the query string is touched, textually,
// so the rest of the URL (multi-host lists, escaped passwords) reaches pgx
// byte for byte. A key=value DSN is returned unchanged: the parameter is a
// URL one. Errors never include the URL, which may hold a password.
func splitOpTimeout(dsn string) (string, time.Duration, error) {
	if !strings.HasPrefix(dsn, "postgres://") && !strings.HasPrefix(dsn, "postgresql://") {
		return dsn, 0, nil
	}
	base, query, ok := strings.Cut(dsn, "?")
	if !ok {
		return dsn, 0, nil
	}
	var fragment string
	if q, f, ok := strings.Cut(query, "#"); ok {
		query, fragment = q, "#"+f
	}
	var kept []string
	var d time.Duration
	found := false
	for _, part := range strings.Split(query, "&") {
		k, v, _ := strings.Cut(part, "=")
		if key, err := url.QueryUnescape(k); err != nil || key != OpTimeoutParam {
			kept = append(kept, part)
			continue
		}
		if found {
			return "", 0, fmt.Errorf("postgres: the storage URL sets %s twice", OpTimeoutParam)
		}
		found = true
		val, err := url.QueryUnescape(v)
		if err == nil {
			d, err = time.ParseDuration(val)
		}
		if err != nil || d <= 0 {
			return "", 0, fmt.Errorf("postgres: %s=%q in the storage URL: want a positive duration such as 30s or 2m", OpTimeoutParam, v)
		}
	}
	out := base
	if len(kept) > 0 {
		out += "?" + strings.Join(kept, "&")
	}
	return out + fragment, d, nil
}

// opCtx bounds one round trip (a pool acquire, BEGIN, a statement, COMMIT,
// a lock wait) rather than a whole transaction: an online backup reads page
// after page in one read transaction for minutes, while a database that
// stops answering without closing the connection (a frozen host, a network
// black hole) must fail the request instead of holding it forever. When
// the bound fires pgx sets a past deadline on the socket and closes the
// connection (its protocol state is unknown), so the pool never hands out
// a half-read one.
func (s *Store) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(ctx, s.opTimeout, errNoAnswer)
}

// cleanupCtx bounds work that must run even when the caller has gone
// (ROLLBACK, unlock): detached from its cancellation, not unbounded.
func (s *Store) cleanupCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(context.WithoutCancel(ctx), s.opTimeout, errNoAnswer)
}

// opErr is wrap for an error of an operation run under c from opCtx: when
// c's own bound fired (not the caller's cancellation or deadline, which
// stay context errors) the database is unavailable, and the caller is
// answered ServiceUnavailableTemporary.
func (s *Store) opErr(c context.Context, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(context.Cause(c), errNoAnswer) {
		return errUnavailable(fmt.Errorf("%w within %s (%s)", errNoAnswer, s.opTimeout, OpTimeoutParam))
	}
	if c.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
		// A deadline inside pgx, not the caller's: the connect timeout of a
		// dial that began with another call. Not wrapped with %w, so that
		// no caller takes it for its own deadline.
		return errUnavailable(fmt.Errorf("postgres: %v", err))
	}
	return wrap(err)
}

// begin is BEGIN as one bounded round trip.
func (s *Store) begin(ctx context.Context, b interface {
	BeginTx(context.Context, pgx.TxOptions) (pgx.Tx, error)
}, opts pgx.TxOptions) (pgx.Tx, error) {
	c, cancel := s.opCtx(ctx)
	defer cancel()
	ptx, err := b.BeginTx(c, opts)
	return ptx, s.opErr(c, err)
}

// rollback ends ptx when the transaction did not commit.
func (s *Store) rollback(ctx context.Context, ptx pgx.Tx) {
	c, cancel := s.cleanupCtx(ctx)
	defer cancel()
	ptx.Rollback(c)
}
