package keys_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/mattn/go-sqlite3"

	"github.com/tenantry/tenantry/keys"
	"github.com/tenantry/tenantry/migrations"
)

// TestLookupsAreCompiledOnce: a key or token the cache does not hold costs one execution of
// a prepared statement, not a compilation of it. SQLite asks an authorizer about every
// column a statement reads while it compiles the statement, so counting its calls counts
// compilations: before the lookups bound their values in a one-table subquery, SQLite
// recompiled the join on every execution (see Service.prepared).
func TestLookupsAreCompiledOnce(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "tenantry.db")
	migrated, err := migrations.OpenAndMigrate(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	migrated.Close()
	var compiling atomic.Int64
	counted := &sqlite3.SQLiteDriver{ConnectHook: func(c *sqlite3.SQLiteConn) error {
		c.RegisterAuthorizer(func(int, string, string, string) int {
			compiling.Add(1)
			return sqlite3.SQLITE_OK
		})
		return nil
	}}
	sql.Register("sqlite3-compilations-"+t.Name(), counted)
	db, err := sqlx.Open("sqlite3-compilations-"+t.Name(), "file:"+path+"?_foreign_keys=on&_journal_mode=WAL")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	db.SetMaxOpenConns(1) // one connection: its statements are prepared once

	svc := keys.NewService(db) // no principal cache: every call looks its credential up
	p, value := userKey(t, svc)
	tok, err := svc.MintToken(ctx, p, keys.TokenInput{})
	if err != nil {
		t.Fatal(err)
	}
	for name, credential := range map[string]string{"user key": value, "token": tok.Token} {
		if _, err := svc.Authenticate(ctx, credential); err != nil { // prepares the statement
			t.Fatal(err)
		}
		before := compiling.Load()
		for range 50 {
			if _, err := svc.Authenticate(ctx, credential); err != nil {
				t.Fatal(err)
			}
		}
		if n := compiling.Load() - before; n != 0 {
			t.Errorf("%s: 50 lookups compiled SQL (%d authorizer calls): the lookup is recompiled on every execution", name, n)
		}
	}
}
