// Package migrations owns everything that differs between the databases Tenantry runs on
// (SQLite, the embedded default, and PostgreSQL): the embedded, numbered SQL schema for each,
// the code that applies it, and how a database name is opened. Every other package writes
// portable SQL with ? placeholders and Rebind.
package migrations

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib" // PostgreSQL, registered as "pgx"
	"github.com/jmoiron/sqlx"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed sqlite/*.sql postgres/*.sql
var embedded embed.FS

// IsPostgres reports whether dsn names a PostgreSQL database (a postgres:// URL).
func IsPostgres(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// Open connects to the database named by dsn without changing its schema: a postgres:// URL
// (through pgx), or else a SQLite file path, created with its directory when missing.
func Open(dsn string) (*sqlx.DB, error) {
	if dsn == "" {
		return nil, errors.New("no database given: pass --database PATH or a postgres:// URL")
	}
	if IsPostgres(dsn) {
		return openPostgres(dsn)
	}
	return openSQLite(dsn)
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

func openPostgres(dsn string) (*sqlx.DB, error) {
	db, err := sqlx.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("open PostgreSQL: %w", err)
	}
	db.SetMaxOpenConns(32)
	db.SetMaxIdleConns(32)
	db.SetConnMaxIdleTime(5 * time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	return db, nil
}

func provider(db *sqlx.DB) (*goose.Provider, error) {
	dialect, dir := goose.DialectSQLite3, "sqlite"
	var opts []goose.ProviderOption
	if db.DriverName() == "pgx" {
		dialect, dir = goose.DialectPostgres, "postgres"
		// Replicas starting together take turns: an advisory lock held while migrating, one
		// per database and schema (goose's default id is one for the whole server, so that
		// Tenantrys in different schemas waited on each other), tried every second.
		var where string
		if err := db.Get(&where, `SELECT current_database() || '.' || current_schema()`); err != nil {
			return nil, fmt.Errorf("migration lock: %w", err)
		}
		id := fnv.New64a()
		id.Write([]byte("tenantry migrations " + where))
		locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(int64(id.Sum64()>>1)), lock.WithLockTimeout(1, 300))
		if err != nil {
			return nil, err
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	sub, err := fs.Sub(embedded, dir)
	if err != nil {
		return nil, err
	}
	// The provider is not closed: Close would close db, which belongs to the caller.
	return goose.NewProvider(dialect, db.DB, sub, opts...)
}

// Compact rewrites a SQLite database so that no page of it keeps content it no longer holds
// (VACUUM), and empties its write-ahead log: after secrets stored in clear are sealed, no copy
// of them is left in free pages. On PostgreSQL it does nothing: rows it no longer holds are
// reclaimed by its own (auto)vacuum.
func Compact(ctx context.Context, db *sqlx.DB) error {
	if db.DriverName() == "pgx" {
		return nil
	}
	if _, err := db.ExecContext(ctx, `VACUUM`); err != nil {
		return fmt.Errorf("compact the database: %w", err)
	}
	if _, err := db.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		return fmt.Errorf("empty the write-ahead log: %w", err)
	}
	return nil
}

// Listen calls notice with the payload of every notice sent on channel from this database
// schema (notices carry their schema first: "<schema> <payload>"; those of other schemas, as
// of other installations in the same database, are skipped), from a connection of its own,
// until ctx ends; when that connection is lost it calls lost with why (the caller may
// have missed notices) and listens again, after a pause. On SQLite, which has no notices, it
// returns at once: one process writes a SQLite database, and it learns of its own changes.
func Listen(ctx context.Context, db *sqlx.DB, channel string, notice func(payload string), lost func(error)) {
	if db.DriverName() != "pgx" {
		return
	}
	for ctx.Err() == nil {
		err := listenOnce(ctx, db, channel, notice)
		if ctx.Err() != nil {
			return
		}
		lost(err)
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func listenOnce(ctx context.Context, db *sqlx.DB, channel string, notice func(string)) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		pg := dc.(*stdlib.Conn).Conn()
		var schema string
		if err := pg.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
			return err
		}
		if _, err := pg.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
			return err
		}
		for {
			n, err := pg.WaitForNotification(ctx)
			if err != nil {
				return err
			}
			if payload, ok := strings.CutPrefix(n.Payload, schema+" "); ok {
				notice(payload)
			}
		}
	})
}
