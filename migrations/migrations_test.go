package migrations

import (
	"io/fs"
	"regexp"
	"testing"
)

// The PostgreSQL migrations are the SQLite ones with PostgreSQL's types, and with what only
// PostgreSQL has between "-- PostgreSQL only" and "-- end PostgreSQL only": a change made to
// one dialect and forgotten in the other fails here.
func TestDialectsInStep(t *testing.T) {
	sqlite, _ := fs.Glob(embedded, "sqlite/*.sql")
	postgres, _ := fs.Glob(embedded, "postgres/*.sql")
	if len(sqlite) == 0 || len(sqlite) != len(postgres) {
		t.Fatalf("%d SQLite migrations, %d PostgreSQL ones", len(sqlite), len(postgres))
	}
	pgOnly := regexp.MustCompile(`(?s)\n-- PostgreSQL only.*?-- end PostgreSQL only\n`)
	timestamp := regexp.MustCompile(`\bTIMESTAMP\b`)
	blob := regexp.MustCompile(`\bBLOB\b`)
	for i, name := range sqlite {
		s, _ := fs.ReadFile(embedded, name)
		p, _ := fs.ReadFile(embedded, postgres[i])
		want := blob.ReplaceAll(timestamp.ReplaceAll(s, []byte("TIMESTAMPTZ")), []byte("BYTEA"))
		if string(want) != string(pgOnly.ReplaceAll(p, nil)) {
			t.Errorf("%s is not %s with PostgreSQL's types (TIMESTAMPTZ, BYTEA)", postgres[i], name)
		}
	}
}
