package migrations

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// StorageFull names SQLite's own "database or disk is full" (here from a page limit, the one
// way to have SQLite run out of room without a filesystem that fills), the operating system's
// refusals and PostgreSQL's disk_full; other failures are not it. The operating system's
// EFBIG as SQLite reports it is TestDiskFull's (cmd/tenantry), on the real program.
func TestStorageFull(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "full.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	conn, err := db.Conn(ctx) // max_page_count is a connection's
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `CREATE TABLE t (b BLOB UNIQUE)`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, `INSERT INTO t VALUES (x'01')`); err != nil {
		t.Fatal(err)
	}
	_, constraint := conn.ExecContext(ctx, `INSERT INTO t VALUES (x'01')`)
	if constraint == nil {
		t.Fatal("a duplicate was inserted")
	}
	if _, err := conn.ExecContext(ctx, `PRAGMA max_page_count = 3`); err != nil {
		t.Fatal(err)
	}
	_, full := conn.ExecContext(ctx, `INSERT INTO t VALUES (zeroblob(100000))`)

	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"SQLITE_FULL", fmt.Errorf("insert: %w", full), true},
		{"ENOSPC", fmt.Errorf("write dump: %w", &fs.PathError{Op: "write", Path: "x", Err: syscall.ENOSPC}), true},
		{"EDQUOT", &fs.PathError{Op: "write", Path: "x", Err: syscall.EDQUOT}, true},
		{"EFBIG", &fs.PathError{Op: "write", Path: "x", Err: syscall.EFBIG}, true},
		{"PostgreSQL disk_full", fmt.Errorf("commit: %w", &pgconn.PgError{Code: "53100"}), true},
		{"PostgreSQL out of memory", &pgconn.PgError{Code: "53200"}, false},
		{"a constraint", constraint, false},
		{"busy", ErrBusy, false},
		{"another errno", &fs.PathError{Op: "open", Path: "x", Err: syscall.EACCES}, false},
		{"none", nil, false},
		{"anything", errors.New("database or disk is full"), false},
	} {
		if got := StorageFull(c.err); got != c.want {
			t.Errorf("%s: StorageFull(%v) = %v, want %v", c.name, c.err, got, c.want)
		}
	}
}
