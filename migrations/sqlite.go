package migrations

import (
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
)

// sqliteDriver is the name Tenantry's SQLite databases are registered under with sqlx (?
// placeholders). Code that asks which database it is on compares DriverName with "pgx".
const sqliteDriver = "tenantry-sqlite3"

func init() { sqlx.BindDriver(sqliteDriver, sqlx.QUESTION) }

func openSQLite(dsn string) (*sqlx.DB, error) {
	path := strings.TrimPrefix(dsn, "file:")
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	if path == ":memory:" || path == "" {
		// Each pooled connection would get its own empty database.
		return nil, errors.New("an in-memory SQLite database is not supported: pass a file path")
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("create database directory: %w", err)
		}
	}
	// The file holds key hashes and SSO secrets: create it readable by the owner only (SQLite
	// gives its -wal and -shm files the database file's mode).
	if f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
		f.Close()
	} else if !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("create database file: %w", err)
	}
	conn := newWriteTurns(sqliteDSN(path))
	db := sqlx.NewDb(sql.OpenDB(conn), sqliteDriver)
	// Keep connections: opening one costs a file open and a schema parse, and database/sql
	// keeps only two idle by default, so under load they were opened and closed all the time.
	db.SetMaxIdleConns(32)
	db.SetConnMaxIdleTime(5 * time.Minute)
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	go conn.checkpoint()
	return db, nil
}

// sqliteDSN is how each connection opens the file at path.
func sqliteDSN(path string) string {
	// WAL lets readers run beside the single writer; immediate transactions take the write
	// lock up front so two writers never fail on a lock upgrade (and this process's writers
	// take turns before they ask for it: writeturns.go). Each connection keeps its prepared
	// statements: preparing one cost as much as running it.
	q := url.Values{}
	q.Set("_journal_mode", "WAL")
	q.Set("_busy_timeout", strconv.Itoa(int(WriteWait.Milliseconds())))
	q.Set("_foreign_keys", "on")
	q.Set("_txlock", "immediate")
	q.Set("_stmt_cache_size", "128")
	return "file:" + path + "?" + q.Encode()
}
