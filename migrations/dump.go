package migrations

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
)

// dumpTables are the tables a dump carries, parents before children, each with the order
// that keeps rows that refer to rows of the same table after them.
var dumpTables = []struct{ name, order string }{
	{"partners", "id"},
	{"organizations", "id"},
	{"roles", "id"},
	{"users", "id"},
	{"user_roles", "user_id, role_id"},
	{"api_keys", "id"},
	{"api_key_secrets", "key_id, created_at"},
	{"api_key_usage", "key_id, hour"},
	{"signing_keys", "id"},
	{"connections", "CASE WHEN parent_id IS NULL THEN 0 ELSE 1 END, id"},
	{"datasets", "id"},
	{"policies", "id"},
	{"policy_actions", "policy_id, action"},
	{"policy_grants", "policy_id, action, role_id"},
	{"connection_policies", "connection_id, policy_id"},
	{"dataset_policies", "dataset_id, policy_id"},
	{"idempotency_keys", "credential_id, idem_key"},
	{"events", "id"},
	{"webhooks", "id"},
	{"webhook_deliveries", "id"},
	{"webhook_attempts", "id"},
}

// A dump is JSON lines: a header line, then one line per row. Values keep their type across
// databases: times as {"$time": RFC 3339}, bytes as {"$bytes": base64}.
type dumpHeader struct {
	Format  string `json:"format"`
	Version int64  `json:"schema_version"`
}

type dumpLine struct {
	Table string         `json:"table"`
	Row   map[string]any `json:"row"`
}

const dumpFormat = "tenantry-dump-1"

// Export writes every row of db to w, so Import can load it into another database (SQLite to
// PostgreSQL, or a backup). Run it on a stopped server or accept that writes made meanwhile
// may be missed; it reads in one transaction, so what it writes is consistent.
func Export(ctx context.Context, db *sqlx.DB, w io.Writer) (rows int, err error) {
	version, err := schemaVersion(ctx, db)
	if err != nil {
		return 0, err
	}
	tx, done, err := readSnapshot(ctx, db)
	if err != nil {
		return 0, err
	}
	defer done()
	out := bufio.NewWriter(w)
	enc := json.NewEncoder(out)
	if err := enc.Encode(dumpHeader{Format: dumpFormat, Version: version}); err != nil {
		return 0, err
	}
	for _, t := range dumpTables {
		cur, err := tx.QueryxContext(ctx, `SELECT * FROM `+t.name+` ORDER BY `+t.order)
		if err != nil {
			return rows, fmt.Errorf("read %s: %w", t.name, err)
		}
		for cur.Next() {
			row := map[string]any{}
			if err := cur.MapScan(row); err != nil {
				cur.Close()
				return rows, fmt.Errorf("read %s: %w", t.name, err)
			}
			for k, v := range row {
				row[k] = encodeValue(v)
			}
			if err := enc.Encode(dumpLine{Table: t.name, Row: row}); err != nil {
				cur.Close()
				return rows, err
			}
			rows++
		}
		if err := cur.Err(); err != nil {
			return rows, fmt.Errorf("read %s: %w", t.name, err)
		}
		cur.Close()
	}
	return rows, out.Flush()
}

func encodeValue(v any) any {
	switch x := v.(type) {
	case time.Time:
		return map[string]string{"$time": x.UTC().Format(time.RFC3339Nano)}
	case []byte:
		return map[string]string{"$bytes": base64.StdEncoding.EncodeToString(x)}
	}
	return v
}

func decodeValue(v any) (any, error) {
	m, ok := v.(map[string]any)
	if !ok {
		if f, ok := v.(float64); ok && f == float64(int64(f)) {
			return int64(f), nil
		}
		return v, nil
	}
	if s, ok := m["$time"].(string); ok {
		return time.Parse(time.RFC3339Nano, s)
	}
	if s, ok := m["$bytes"].(string); ok {
		return base64.StdEncoding.DecodeString(s)
	}
	return nil, errors.New("unknown typed value in dump")
}

// Import loads a dump written by Export into db, which must be migrated to the same schema
// version and hold no partner yet. It is one transaction: it loads all or nothing.
func Import(ctx context.Context, db *sqlx.DB, r io.Reader) (rows int, err error) {
	version, err := schemaVersion(ctx, db)
	if err != nil {
		return 0, err
	}
	dec := json.NewDecoder(bufio.NewReader(r))
	dec.UseNumber()
	var h dumpHeader
	if err := dec.Decode(&h); err != nil || h.Format != dumpFormat {
		return 0, errors.New("not a Tenantry dump: export one with `tenantry export`")
	}
	if h.Version != version {
		return 0, fmt.Errorf("the dump is of schema version %d and this database is at %d: migrate both to the same version first", h.Version, version)
	}
	tx, err := db.BeginTxx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	var partners int
	if err := tx.GetContext(ctx, &partners, `SELECT COUNT(*) FROM partners`); err != nil {
		return 0, err
	}
	if partners > 0 {
		return 0, errors.New("the target database already holds partners: import into a new, migrated database")
	}
	known := map[string]bool{}
	for _, t := range dumpTables {
		known[t.name] = true
	}
	for {
		var line struct {
			Table string         `json:"table"`
			Row   map[string]any `json:"row"`
		}
		if err := dec.Decode(&line); err == io.EOF {
			break
		} else if err != nil {
			return rows, fmt.Errorf("dump line %d: %w", rows+2, err)
		}
		if !known[line.Table] {
			return rows, fmt.Errorf("dump line %d: unknown table %q", rows+2, line.Table)
		}
		cols := make([]string, 0, len(line.Row))
		for c := range line.Row {
			cols = append(cols, c)
		}
		sort.Strings(cols)
		args := make([]any, len(cols))
		for i, c := range cols {
			if strings.ContainsFunc(c, func(r rune) bool { return !(r == '_' || r >= 'a' && r <= 'z') }) {
				return rows, fmt.Errorf("dump line %d: bad column name %q", rows+2, c)
			}
			v := line.Row[c]
			if n, ok := v.(json.Number); ok {
				v, _ = n.Int64()
			}
			if args[i], err = decodeValue(v); err != nil {
				return rows, fmt.Errorf("dump line %d, %s.%s: %w", rows+2, line.Table, c, err)
			}
		}
		q := `INSERT INTO ` + line.Table + ` (` + strings.Join(cols, ", ") + `) VALUES (?` + strings.Repeat(", ?", len(cols)-1) + `)`
		if _, err := tx.ExecContext(ctx, tx.Rebind(q), args...); err != nil {
			return rows, fmt.Errorf("dump line %d, into %s: %w", rows+2, line.Table, err)
		}
		rows++
	}
	return rows, tx.Commit()
}

// schemaVersion is the version of the newest migration db has had.
func schemaVersion(ctx context.Context, db *sqlx.DB) (int64, error) {
	p, err := provider(db)
	if err != nil {
		return 0, err
	}
	v, err := p.GetDBVersion(ctx)
	if err != nil {
		return 0, fmt.Errorf("schema version: %w", err)
	}
	return v, nil
}

// readSnapshot opens a read-only, consistent view of db that does not stop a live server's
// writers: a repeatable-read transaction on PostgreSQL; on SQLite a deferred transaction on
// one connection (the pool's transactions are immediate, which would hold the write lock).
func readSnapshot(ctx context.Context, db *sqlx.DB) (sqlx.QueryerContext, func(), error) {
	if db.DriverName() == "pgx" {
		tx, err := db.BeginTxx(ctx, &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead})
		if err != nil {
			return nil, nil, err
		}
		return tx, func() { tx.Rollback() }, nil
	}
	conn, err := db.Connx(ctx)
	if err != nil {
		return nil, nil, err
	}
	if _, err := conn.ExecContext(ctx, "BEGIN DEFERRED"); err != nil {
		conn.Close()
		return nil, nil, err
	}
	return conn, func() {
		conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
		conn.Close()
	}, nil
}
