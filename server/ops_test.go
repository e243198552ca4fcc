package server_test

import (
	"context"
	"database/sql"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/tenantry/tenantry/migrations"
	"github.com/tenantry/tenantry/migrations/migrationstest"
	"github.com/tenantry/tenantry/server"
	"github.com/tenantry/tenantry/server/servertest"
)

func TestHealthAndReadiness(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	expect(t, e.anon.Do("GET", "/healthz", nil), 200, "")
	ready := e.anon.Do("GET", "/readyz", nil)
	if ready.Status != 200 || ready.JSON()["status"] != "ok" {
		t.Fatalf("readyz: %d %s", ready.Status, ready.Body)
	}
	// A schema behind the binary is not ready.
	e.db.MustExec(`DELETE FROM goose_db_version WHERE version_id = (SELECT MAX(version_id) FROM goose_db_version)`)
	if r := e.anon.Do("GET", "/readyz", nil); r.Status != 503 || r.ErrorKey() != "not_ready" || !strings.Contains(string(r.Body), "migrate") {
		t.Fatalf("readyz with a pending migration: %d %s", r.Status, r.Body)
	}
	expect(t, e.anon.Do("GET", "/healthz", nil), 200, "")
	// An unreachable database is not ready either.
	e.db.Close()
	if r := e.anon.Do("GET", "/readyz", nil); r.Status != 503 {
		t.Fatalf("readyz without a database: %d %s", r.Status, r.Body)
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	o := e.newOrg("Acme")
	o.admin.Do("GET", "/api/me", nil)
	e.anon.Do("GET", "/api/me", nil, "Authorization", "Bearer tuk_nonsense")
	key := []string{"Idempotency-Key", "metrics-replay-1"}
	e.partner.Do("POST", "/api/organizations", map[string]any{"name": "M"}, key...)
	e.partner.Do("POST", "/api/organizations", map[string]any{"name": "M"}, key...)
	r := e.anon.Do("GET", "/metrics", nil)
	expect(t, r, 200, "")
	body := string(r.Body)
	for _, want := range []string{
		`tenantry_http_requests_total{method="GET",route="/api/me",status="200"}`,
		`tenantry_http_request_duration_seconds_bucket{method="GET",route="/api/me"`,
		`tenantry_authentications_total{outcome="malformed"} 1`,
		`tenantry_authentications_total{outcome="ok"}`,
		`tenantry_idempotent_replays_total 1`,
		`go_sql_max_open_connections{db_name="tenantry"}`,
	} {
		if !strings.Contains(body, want) {
			t.Fatalf("metrics lack %s", want)
		}
	}
	// Route templates, never raw paths: ids would make the series unbounded.
	if strings.Contains(body, o.id) || strings.Contains(body, e.partner.Key) {
		t.Fatalf("metrics hold an id or a key")
	}
}

func TestRateLimits(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, func(c *server.Config) {
		c.RatePerSecond, c.RateBurst = 1, 5
		c.AuthFailuresPerSecond, c.AuthFailureBurst = 1, 3
	})
	var last int
	for i := range 7 {
		r := e.partner.Do("GET", "/api/me", nil)
		if i < 5 {
			expect(t, r, 200, "")
			remaining, _ := strconv.Atoi(r.Header.Get("RateLimit-Remaining"))
			if r.Header.Get("RateLimit-Limit") != "5" || (i > 0 && remaining >= last) {
				t.Fatalf("rate headers on request %d: %v", i, r.Header)
			}
			last = remaining
			continue
		}
		expect(t, r, 429, "rate_limited")
		if r.Header.Get("Retry-After") == "" || r.Header.Get("RateLimit-Remaining") != "0" {
			t.Fatalf("429 without Retry-After: %v", r.Header)
		}
	}
	// Another credential has its own bucket.
	other, _ := e.newPartner("Partner B")
	expect(t, other.Do("GET", "/api/me", nil), 200, "")

	// Guessing keys from one address is cut short: after 3 failures every credential from it
	// waits, before it is even checked.
	for range 3 {
		expect(t, e.anon.Do("GET", "/api/me", nil, "Authorization", "Bearer tuk_guess"), 401, "invalid_token")
	}
	expect(t, e.anon.Do("GET", "/api/me", nil, "Authorization", "Bearer tuk_guess"), 429, "rate_limited")
	expect(t, other.Do("GET", "/api/me", nil), 429, "rate_limited")
	if !strings.Contains(e.anon.Do("GET", "/metrics", nil).String(), `tenantry_rate_limited_total{limit="auth_failures"}`) {
		t.Fatalf("the refusals are not counted")
	}
}

// A SQLite database whose lock another process holds for longer than the busy timeout (a
// `sqlite3` shell left in a transaction, a backup tool) refuses writes with a 503 the client
// may retry, changes nothing, and serves the retry once the lock is free.
func TestBusyDatabaseIsRetryable(t *testing.T) {
	if migrationstest.Backend() != "sqlite" {
		t.Skip("SQLite's write lock")
	}
	t.Parallel()
	path := filepath.Join(t.TempDir(), "tenantry.db")
	db, err := migrations.OpenAndMigrate(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvWith(t, func(cfg *server.Config) { cfg.DB = db })
	other, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	conn, err := other.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(context.Background(), `BEGIN IMMEDIATE`); err != nil {
		t.Fatal(err)
	}
	retry := []string{"Idempotency-Key", "busy-database-1"}
	start := time.Now()
	r := e.partner.Do("POST", "/api/organizations", map[string]any{"name": "Busy"}, retry...)
	expect(t, r, 503, "database_busy")
	if r.Header.Get("Retry-After") != "1" || !strings.Contains(string(r.Body), "nothing was changed") {
		t.Fatalf("busy answer: Retry-After %q, %s", r.Header.Get("Retry-After"), r.Body)
	}
	t.Logf("refused after %v", time.Since(start).Round(time.Millisecond))
	// Reads go on beside the lock.
	expect(t, e.partner.Do("GET", "/api/organizations", nil), 200, "")
	if _, err := conn.ExecContext(context.Background(), `ROLLBACK`); err != nil {
		t.Fatal(err)
	}
	expect(t, e.partner.Do("POST", "/api/organizations", map[string]any{"name": "Busy"}, retry...), 200, "")
	n := 0
	for _, o := range e.partner.Do("GET", "/api/organizations", nil).List() {
		if o["name"] == "Busy" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d organizations named Busy after a refused write and its retry, want 1", n)
	}
}

// The server's defaults are applied in one place; a negative rate or cache size disables.
func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	c := server.Config{}.WithDefaults()
	if c.IdempotencyTTL != server.DefaultIdempotencyTTL || c.EventRetention != server.DefaultEventRetention ||
		c.SweepInterval != 10*time.Minute || c.RatePerSecond != server.DefaultRatePerSecond || c.RateBurst != server.DefaultRateBurst ||
		c.AuthFailuresPerSecond != server.DefaultAuthFailuresPerIP || c.AuthFailureBurst != server.DefaultAuthFailureBurst ||
		c.CachedKeys != 50_000 || c.CachedTokens != 20_000 {
		t.Fatalf("defaults: %+v", c)
	}
	off := server.Config{RatePerSecond: -1, AuthFailuresPerSecond: -1, CachedKeys: -1, RateBurst: 7}.WithDefaults()
	if off.RatePerSecond != -1 || off.AuthFailuresPerSecond != -1 || off.CachedKeys != -1 || off.RateBurst != 7 {
		t.Fatalf("a negative setting must stay (it disables), a set one must stay: %+v", off)
	}
}

// A database that cannot be reached (here a PostgreSQL address nothing listens on) makes every
// request that needs it a 503 database_unavailable the client may retry, never a 500 with the
// driver's words; the server stays alive (/healthz) and says it is not ready (/readyz).
func TestUnreachableDatabaseIsRetryable(t *testing.T) {
	t.Parallel()
	e := newEnv(t) // for a well-formed key: the server must look it up to refuse it
	db, err := sqlx.Open("pgx", "postgres://postgres@127.0.0.1:1/test?sslmode=disable&connect_timeout=2")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	logs := &servertest.LogBuffer{}
	srv := server.New(server.Config{DB: db, Log: slog.New(slog.NewJSONHandler(logs, nil)), RatePerSecond: -1, AuthFailuresPerSecond: -1})
	ts := httptest.NewServer(srv)
	t.Cleanup(func() { ts.Close(); srv.Close() })
	c := servertest.New(t, ts.URL).As(e.partner.Key)
	for _, r := range []*servertest.Response{
		c.Do("GET", "/api/me", nil),
		c.Do("POST", "/api/organizations", map[string]any{"name": "Unreachable"}, "Idempotency-Key", "unreachable-1"),
	} {
		expect(t, r, 503, "database_unavailable")
		if r.Header.Get("Retry-After") != "1" || strings.Contains(string(r.Body), "127.0.0.1") || strings.Contains(string(r.Body), "dial") {
			t.Fatalf("an unreachable database's answer: Retry-After %q, %s", r.Header.Get("Retry-After"), r.Body)
		}
	}
	expect(t, c.Do("GET", "/readyz", nil), 503, "not_ready")
	expect(t, c.Do("GET", "/healthz", nil), 200, "")
	if !strings.Contains(logs.String(), "database unavailable") || strings.Contains(logs.String(), e.partner.Key) {
		t.Fatalf("the operator's log must say why, and never hold the key: %s", logs.String())
	}
}
