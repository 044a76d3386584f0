package postgres

import (
	"errors"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/keyhold/keyhold/internal/errs"
)

// errUnavailable marks a failure of the database itself (connection lost,
// server down, restarting or out of connections) as errs.KindUnavailable,
// so that the caller is answered ServiceUnavailableTemporary and may retry,
// instead of InternalFailure. The transaction it cut off was rolled back by
// PostgreSQL, except when the connection broke during COMMIT, whose outcome
// no client can know; the caller is told to retry either way.
func errUnavailable(err error) error {
	return errs.Wrap(errs.KindUnavailable, err, "The storage is unavailable; try again later.")
}

// unavailable reports an error of the connection or of the server's state
// rather than of the statement.
func unavailable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case strings.HasPrefix(pe.Code, "08"): // connection exception
			return true
		case strings.HasPrefix(pe.Code, "53"): // insufficient resources: too many connections, disk full
			return true
		}
		switch pe.Code {
		case "57P01", // admin_shutdown: pg_terminate_backend, pg_ctl stop -m fast
			"57P02", // crash_shutdown: another backend crashed, all are restarted
			"57P03", // cannot_connect_now: starting up or in recovery
			"57P05": // idle_session_timeout
			return true
		}
		return false
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	return errors.As(err, &ce) || errors.As(err, &ne) ||
		errors.Is(err, pgconn.ErrConnClosed) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}
