package postgres

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// connWatch makes the pool check its idle connections after one of them
// was found dead. pgxpool pings a connection before reuse only when it was
// idle for over a second; when PostgreSQL restarts (a crashed backend
// restarts them all) or an operator ends sessions, every pooled
// connection dies at once, and without this each would fail one more
// request before the pool let it go. A connection returned closed marks
// the moment; connections put back before it are pinged before reuse.
type connWatch struct {
	lost atomic.Int64 // unix ns when a pooled connection was last found closed
}

func (w *connWatch) install(cfg *pgxpool.Config) {
	cfg.ConnConfig.Tracer = w // pgxpool calls TraceRelease on a Tracer that has it
	cfg.ShouldPing = w.shouldPing
}

func (w *connWatch) TraceRelease(_ *pgxpool.Pool, d pgxpool.TraceReleaseData) {
	if d.Conn.IsClosed() {
		w.lost.Store(time.Now().UnixNano())
	}
}

func (w *connWatch) shouldPing(_ context.Context, p pgxpool.ShouldPingParams) bool {
	idleSince := time.Now().Add(-p.IdleDuration).UnixNano()
	return p.IdleDuration > time.Second || w.lost.Load() >= idleSince
}

// A Tracer must trace queries; these do nothing.
func (w *connWatch) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	return ctx
}

func (w *connWatch) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
