package migrations

import (
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// Unavailable reports whether err means the database could not be reached or went away: a
// PostgreSQL server refusing or dropping connections, shutting down or starting up, the
// network between them failing. A retry may succeed once it is back. It does not say whether
// a change was applied: a connection lost during COMMIT leaves that unknown, which is what
// Idempotency-Key is for.
func Unavailable(err error) bool {
	var connect *pgconn.ConnectError
	var pgErr *pgconn.PgError
	var netErr net.Error
	switch {
	case err == nil:
		return false
	case errors.As(err, &connect), errors.As(err, &netErr):
		return true
	case errors.As(err, &pgErr):
		// Class 08: connection exceptions; 57P01-57P03: the server shutting down, crashed
		// or not yet accepting connections.
		return strings.HasPrefix(pgErr.Code, "08") || pgErr.Code == "57P01" || pgErr.Code == "57P02" || pgErr.Code == "57P03"
	case errors.Is(err, driver.ErrBadConn), errors.Is(err, io.ErrUnexpectedEOF):
		return true
	}
	return false
}
