package server_test

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/tenantry/tenantry/keys"
	"github.com/tenantry/tenantry/migrations"
	"github.com/tenantry/tenantry/migrations/migrationstest"
	"github.com/tenantry/tenantry/server"
	"github.com/tenantry/tenantry/server/servertest"
	"github.com/tenantry/tenantry/tenants"
)

// TestMain runs the tests with Gin quiet, as the program runs it.
func TestMain(m *testing.M) {
	server.ReleaseMode()
	os.Exit(m.Run())
}

// env is a real server on a real, migrated SQLite file, with one partner ("A") ready.
type env struct {
	t       testing.TB
	db      *sqlx.DB
	srv     *server.Server
	url     string
	logs    *servertest.LogBuffer
	anon    *servertest.Client
	partner *servertest.Client // partner A
	ownerID string             // partner A's owner organization
	sealer  *tenants.Sealer    // the server's, nil when it stores secrets unsealed
	clock   *clock             // the time the server checks credentials against
}

// clock is the real time moved on by what a test has advanced it.
type clock struct{ offset atomic.Int64 }

func (c *clock) now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) advance(d time.Duration) { c.offset.Add(int64(d)) }

func newEnv(t testing.TB) *env {
	t.Helper()
	return newEnvWith(t, func(*server.Config) {})
}

// newEnvWith is newEnv with a server configured by configure.
func newEnvWith(t testing.TB, configure func(*server.Config)) *env {
	t.Helper()
	db := migrationstest.Open(t)
	logs := &servertest.LogBuffer{}
	// No rate limits unless a test sets them: tests send many requests, fast, from one address.
	// Secrets are sealed at rest, as with --secret-key-file (a test may set Sealer to nil).
	clk := &clock{}
	cfg := server.Config{DB: db, Log: slog.New(slog.NewJSONHandler(logs, nil)), RatePerSecond: -1, AuthFailuresPerSecond: -1, ReportsPerSecond: -1,
		Sealer: newSealer(t), Clock: clk.now}
	configure(&cfg)
	db = cfg.DB // a test may give it a database of its own
	srv := server.New(cfg)
	ts := httptest.NewServer(srv)
	t.Cleanup(func() { ts.Close(); srv.Close() })
	e := &env{t: t, db: db, srv: srv, url: ts.URL, logs: logs, anon: servertest.New(t, ts.URL), sealer: cfg.Sealer, clock: clk}
	e.partner, e.ownerID = e.newPartner("Partner A")
	return e
}

// twoServers is two servers, each with a connection pool of its own, on one database (on
// PostgreSQL when the suite runs on it), on one clock: replicas. Both hold partner A's key;
// configure, if any, sets up both.
func twoServers(t *testing.T, configure ...func(*server.Config)) (a, b *env) {
	t.Helper()
	dsn := migrationstest.DSN(t)
	open := func() *sqlx.DB {
		db, err := migrations.OpenAndMigrate(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	dbA, dbB := open(), open()
	setUp := func(c *server.Config) {
		for _, f := range configure {
			f(c)
		}
	}
	a = newEnvWith(t, func(c *server.Config) { setUp(c); c.DB = dbA })
	logs := &servertest.LogBuffer{}
	cfg := server.Config{DB: dbB, Log: slog.New(slog.NewJSONHandler(logs, nil)), RatePerSecond: -1,
		AuthFailuresPerSecond: -1, ReportsPerSecond: -1, Sealer: a.sealer, Clock: a.clock.now}
	setUp(&cfg)
	srv := server.New(cfg)
	ts := httptest.NewServer(srv)
	t.Cleanup(func() { ts.Close(); srv.Close() })
	b = &env{t: t, db: dbB, srv: srv, url: ts.URL, logs: logs, anon: servertest.New(t, ts.URL), sealer: a.sealer, clock: a.clock,
		ownerID: a.ownerID}
	b.partner = b.anon.As(a.partner.Key)
	return a, b
}

// newSealer is a sealer with a new secret key file of its own.
func newSealer(t testing.TB) *tenants.Sealer {
	t.Helper()
	path := filepath.Join(t.TempDir(), "secret-key")
	if err := os.WriteFile(path, []byte(tenants.GenerateSecretKey()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := tenants.LoadSealer(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// opened reads a secret column of one row as the server holds it: opened when sealed.
func (e *env) opened(table, column, id string) []byte {
	e.t.Helper()
	var stored []byte
	if err := e.db.Get(&stored, e.db.Rebind(`SELECT `+column+` FROM `+table+` WHERE id = ?`), id); err != nil {
		e.t.Fatalf("%s.%s of %s: %v", table, column, id, err)
	}
	plain, err := e.sealer.Open(stored, tenants.SealedAt(table, column, id))
	if err != nil {
		e.t.Fatalf("%s.%s of %s: %v", table, column, id, err)
	}
	return plain
}

// newPartner creates a partner the way the CLI does and returns a client holding its key.
func (e *env) newPartner(name string) (*servertest.Client, string) {
	e.t.Helper()
	var key string
	p, err := keys.NewService(e.db).CreatePartner(context.Background(), name, func(v string) error { key = v; return nil })
	if err != nil {
		e.t.Fatal(err)
	}
	return e.anon.As(key), p.OwnerOrgID
}

func (e *env) createOrg(c *servertest.Client, name string) string {
	e.t.Helper()
	r := c.Do("POST", "/api/organizations", map[string]any{"name": name})
	if r.Status != 200 {
		e.t.Fatalf("create organization %q: %d %s", name, r.Status, r.Body)
	}
	return r.Data()["id"].(string)
}

func (e *env) createUser(c *servertest.Client, orgID, email, role string) string {
	e.t.Helper()
	r := c.Do("POST", "/api/organizations/"+orgID+"/users", map[string]any{"email": email, "role": role})
	if r.Status != 200 {
		e.t.Fatalf("create user %q: %d %s", email, r.Status, r.Body)
	}
	return r.Data()["id"].(string)
}

func (e *env) mintKey(c *servertest.Client, orgID, userID string) string {
	e.t.Helper()
	r := c.Do("POST", "/api/organizations/"+orgID+"/users/"+userID+"/keys?force=true", nil)
	if r.Status != 200 {
		e.t.Fatalf("mint key: %d %s", r.Status, r.Body)
	}
	return r.Data()["value"].(string)
}

// expect fails the test unless r has the status and (for errors) the error key.
func expect(t *testing.T, r *servertest.Response, status int, key string) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d: %s", r.Status, status, r.Body)
	}
	if key != "" && r.ErrorKey() != key {
		t.Fatalf("error key %q, want %q: %s", r.ErrorKey(), key, r.Body)
	}
}
