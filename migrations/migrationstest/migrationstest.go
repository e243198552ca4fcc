// Package migrationstest gives each test a database of its own, migrated: a SQLite file in
// the test's temporary directory or, when TENANTRY_TEST_BACKEND=postgres, a fresh schema of
// the PostgreSQL database at TENANTRY_TEST_POSTGRES_URL, dropped when the test ends. One
// schema per test keeps tests parallel. `make test` runs the suite once for each backend.
package migrationstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/jmoiron/sqlx"

	"github.com/tenantry/tenantry/migrations"
)

// Backend is "postgres" when the tests run against PostgreSQL, else "sqlite".
func Backend() string {
	if os.Getenv("TENANTRY_TEST_BACKEND") == "postgres" {
		return "postgres"
	}
	return "sqlite"
}

var (
	adminOnce sync.Once
	admin     *sqlx.DB
	adminErr  error
)

// DSN returns the name of a new, empty database for t (not yet migrated): what a test that
// starts the program passes as --database.
func DSN(t testing.TB) string {
	t.Helper()
	if Backend() != "postgres" {
		return filepath.Join(t.TempDir(), "tenantry.db")
	}
	base := os.Getenv("TENANTRY_TEST_POSTGRES_URL")
	if base == "" {
		t.Fatal("TENANTRY_TEST_BACKEND=postgres needs TENANTRY_TEST_POSTGRES_URL")
	}
	adminOnce.Do(func() { admin, adminErr = migrations.Open(base) })
	if adminErr != nil {
		t.Fatalf("PostgreSQL at TENANTRY_TEST_POSTGRES_URL: %v", adminErr)
	}
	b := make([]byte, 8)
	rand.Read(b)
	schema := "test_" + hex.EncodeToString(b)
	if _, err := admin.Exec(`CREATE SCHEMA ` + schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() { admin.Exec(`DROP SCHEMA ` + schema + ` CASCADE`) })
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("TENANTRY_TEST_POSTGRES_URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// Open returns a migrated database of t's own, closed when the test ends.
func Open(t testing.TB) *sqlx.DB {
	t.Helper()
	db, err := migrations.OpenAndMigrate(context.Background(), DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
