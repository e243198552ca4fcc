// Package migrations owns everything that differs between the databases Tenantry runs on:
// the embedded, numbered SQL schema for each dialect, the code that applies it, and how a
// database URL is opened. Every other package writes portable SQL with ? placeholders and Rebind.
package migrations

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/jmoiron/sqlx"
	_ "github.com/mattn/go-sqlite3" // the embedded default database
	"github.com/pressly/goose/v3"
)

//go:embed sqlite/*.sql
var embedded embed.FS

// Open connects to the database named by dsn without changing its schema. A dsn is a file
// path (SQLite, the default); the file and its directory are created when missing.
func Open(dsn string) (*sqlx.DB, error) {
	if dsn == "" {
		return nil, errors.New("no database given: pass --database PATH")
	}
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		return nil, errors.New("PostgreSQL is not supported yet: pass a SQLite file path")
	}
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
	// WAL lets readers run beside the single writer; immediate transactions take the write
	// lock up front so two writers wait (busy_timeout) instead of failing on lock upgrade.
	q := url.Values{}
	q.Set("_journal_mode", "WAL")
	q.Set("_busy_timeout", "10000")
	q.Set("_foreign_keys", "on")
	q.Set("_txlock", "immediate")
	db, err := sqlx.Open("sqlite3", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return db, nil
}

// Up applies every pending migration.
func Up(ctx context.Context, db *sqlx.DB) error {
	p, err := provider(db)
	if err != nil {
		return err
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("apply migrations: %w", err)
	}
	return nil
}

// Pending reports whether the database lacks migrations this binary has.
func Pending(ctx context.Context, db *sqlx.DB) (bool, error) {
	p, err := provider(db)
	if err != nil {
		return false, err
	}
	return p.HasPending(ctx)
}

// OpenAndMigrate is Open followed by Up: what the server and the CLI commands start with.
func OpenAndMigrate(ctx context.Context, dsn string) (*sqlx.DB, error) {
	db, err := Open(dsn)
	if err != nil {
		return nil, err
	}
	if err := Up(ctx, db); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

func provider(db *sqlx.DB) (*goose.Provider, error) {
	sub, err := fs.Sub(embedded, "sqlite")
	if err != nil {
		return nil, err
	}
	// The provider is not closed: Close would close db, which belongs to the caller.
	return goose.NewProvider(goose.DialectSQLite3, db.DB, sub)
}
