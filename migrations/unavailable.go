package migrations

import (
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/mattn/go-sqlite3"
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

// StorageFull reports whether err means the database's storage is full: SQLite's SQLITE_FULL,
// a write the operating system refused for want of space (ENOSPC), of quota (EDQUOT) or past
// the process's file-size limit (EFBIG, which SQLite reports as an I/O error), or PostgreSQL's
// disk_full (53100). The statement failed and its transaction rolls back, so nothing was
// changed; reads go on, and writes work again once space is freed.
func StorageFull(err error) bool {
	var lite sqlite3.Error
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		return false
	case errors.As(err, &lite):
		// SystemErrno is the connection's last one: it says why only for an I/O error.
		return lite.Code == sqlite3.ErrFull || lite.Code == sqlite3.ErrIoErr && outOfSpace(lite.SystemErrno)
	case errors.As(err, &pgErr):
		return pgErr.Code == "53100"
	}
	var errno syscall.Errno
	return errors.As(err, &errno) && outOfSpace(errno)
}

func outOfSpace(errno syscall.Errno) bool {
	return errno == syscall.ENOSPC || errno == syscall.EDQUOT || errno == syscall.EFBIG
}
