package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tenantry/tenantry/migrations"
	"github.com/tenantry/tenantry/migrations/migrationstest"
	"github.com/tenantry/tenantry/server/servertest"
)

// start runs `tenantry serve` on a free port with env as its environment.
func start(t *testing.T, env map[string]string, args ...string) (*Main, *servertest.LogBuffer) {
	t.Helper()
	logs := &servertest.LogBuffer{}
	m := &Main{Stdout: logs, Stderr: logs, Getenv: func(k string) string { return env[k] }}
	if err := m.Run(context.Background(), append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)); err != nil {
		t.Fatalf("serve: %v\n%s", err, logs)
	}
	return m, logs
}

// The partner workflow of the README, end to end against the real program.
func TestEndToEnd(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "data", "bootstrap-partner-key")
	env := map[string]string{"TENANTRY_DATABASE": migrationstest.DSN(t)}
	if migrationstest.Backend() == "sqlite" {
		env["TENANTRY_DATABASE"] = filepath.Join(dir, "data", "tenantry.db") // the key file goes beside it
	} else {
		env["TENANTRY_BOOTSTRAP_KEY_FILE"] = keyFile
	}
	m, logs := start(t, env)
	closed := false
	t.Cleanup(func() {
		if !closed {
			m.Close()
		}
	})

	info, err := os.Stat(keyFile)
	if err != nil {
		t.Fatalf("bootstrap key file: %v", err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Fatalf("bootstrap key file mode %v, want 0600", info.Mode().Perm())
	}
	if info, err := os.Stat(env["TENANTRY_DATABASE"]); migrationstest.Backend() == "sqlite" && (err != nil || info.Mode().Perm() != 0o600) {
		t.Fatalf("database file: %v, %v; want mode 0600", info, err)
	}
	raw, _ := os.ReadFile(keyFile)
	partnerKey := strings.TrimSpace(string(raw))
	if !strings.Contains(logs.String(), keyFile) {
		t.Fatalf("the log must name the key file:\n%s", logs)
	}

	api := servertest.New(t, "http://"+m.Addr())
	partner := api.As(partnerKey)
	me := partner.Do("GET", "/api/me", nil)
	if me.Status != 200 || me.Data()["is_partner"] != true {
		t.Fatalf("partner /api/me: %d %s", me.Status, me.Body)
	}

	org := partner.Do("POST", "/api/organizations", map[string]any{"name": "Acme Inc", "sso_domain": "acme.test", "client_secret": "sso-secret"})
	if org.Status != 200 {
		t.Fatalf("create organization: %d %s", org.Status, org.Body)
	}
	orgID := org.Data()["id"].(string)
	user := partner.Do("POST", "/api/organizations/"+orgID+"/users", map[string]any{"email": "root@acme.test", "role": "admin"})
	if user.Status != 200 {
		t.Fatalf("create user: %d %s", user.Status, user.Body)
	}
	userID := user.Data()["id"].(string)
	keyPath := "/api/organizations/" + orgID + "/users/" + userID + "/keys"
	first := partner.Do("POST", keyPath, nil)
	if first.Status != 200 {
		t.Fatalf("mint key: %d %s", first.Status, first.Body)
	}
	if again := partner.Do("POST", keyPath, nil); again.Status != 409 {
		t.Fatalf("second mint without force: %d", again.Status)
	}
	forced := partner.Do("POST", keyPath+"?force=true", nil)
	if forced.Status != 200 {
		t.Fatalf("mint with force: %d %s", forced.Status, forced.Body)
	}
	userKey := api.As(forced.Data()["value"].(string))
	if r := api.As(first.Data()["value"].(string)).Do("GET", "/api/me", nil); r.Status != 401 {
		t.Fatalf("the replaced key still works: %d", r.Status)
	}

	who := userKey.Do("GET", "/api/me", nil)
	if who.Status != 200 || who.Data()["is_user"] != true || who.Data()["email"] != "root@acme.test" || who.Data()["role"] != "admin" || who.Data()["organization_id"] != orgID {
		t.Fatalf("user /api/me: %d %s", who.Status, who.Body)
	}
	if r := userKey.Do("GET", "/api/organization", nil); r.Status != 200 || r.Data()["name"] != "Acme Inc" {
		t.Fatalf("user /api/organization: %d %s", r.Status, r.Body)
	}
	if r := userKey.Do("GET", "/api/organizations", nil); r.Status != 403 {
		t.Fatalf("user key on a partner endpoint: %d", r.Status)
	}

	// The data survives a restart, and a second start does not bootstrap again.
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	closed = true
	m2, logs2 := start(t, env)
	defer m2.Close()
	api2 := servertest.New(t, "http://"+m2.Addr())
	if r := api2.As(userKey.Key).Do("GET", "/api/me", nil); r.Status != 200 {
		t.Fatalf("user key after restart: %d", r.Status)
	}
	if raw2, _ := os.ReadFile(keyFile); string(raw2) != string(raw) || strings.Contains(logs2.String(), "bootstrap") {
		t.Fatalf("second start bootstrapped again")
	}

	// Cleanup: deleting the organization revokes the key.
	if r := api2.As(partnerKey).Do("DELETE", "/api/organizations/"+orgID, nil); r.Status != 200 {
		t.Fatalf("delete organization: %d %s", r.Status, r.Body)
	}
	if r := api2.As(userKey.Key).Do("GET", "/api/me", nil); r.Status != 401 {
		t.Fatalf("key of a deleted organization: %d", r.Status)
	}
	m2.Close() // its logs are written out
	for _, secret := range []string{partnerKey, userKey.Key, "sso-secret"} {
		if strings.Contains(logs.String()+logs2.String(), secret) {
			t.Fatalf("a secret reached the logs")
		}
	}
}

func TestPartnerCreateCommand(t *testing.T) {
	t.Parallel()
	db := migrationstest.DSN(t)
	var stdout, stderr bytes.Buffer
	m := &Main{Stdout: &stdout, Stderr: &stderr}
	if err := m.Run(context.Background(), []string{"partner", "create", "--name", "Globex", "--database", db}); err != nil {
		t.Fatalf("partner create: %v\n%s", err, stderr.String())
	}
	key := strings.TrimSuffix(stdout.String(), "\n")
	if !strings.HasPrefix(key, "tpk_") || strings.ContainsAny(key, "\n ") {
		t.Fatalf("stdout must hold the key alone, got %q", stdout.String())
	}
	if strings.Contains(stderr.String(), key) || !strings.Contains(stderr.String(), "created partner") {
		t.Fatalf("stderr: %s", stderr.String())
	}
	var again bytes.Buffer
	err := (&Main{Stdout: &again, Stderr: &again}).Run(context.Background(), []string{"partner", "create", "--name", "globex", "--database", db})
	if err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("duplicate partner: %v", err)
	}

	srv, logs := start(t, nil, "--database", db)
	defer srv.Close()
	me := servertest.New(t, "http://"+srv.Addr()).As(key).Do("GET", "/api/me", nil)
	if me.Status != 200 || me.Data()["organization_name"] != "Globex" {
		t.Fatalf("/api/me with the printed key: %d %s", me.Status, me.Body)
	}
	if strings.Contains(logs.String(), "bootstrap") {
		t.Fatalf("a database with a partner must not be bootstrapped")
	}
}

func TestCommandLine(t *testing.T) {
	t.Parallel()
	db := migrationstest.DSN(t)
	run := func(args ...string) error {
		var out bytes.Buffer
		return (&Main{Stdout: &out, Stderr: &out}).Run(context.Background(), args)
	}
	if err := run("migrate", "--database", db); err != nil {
		t.Fatal(err)
	}
	conn, err := migrations.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if pending, err := migrations.Pending(context.Background(), conn); err != nil || pending {
		t.Fatalf("after migrate: pending=%v err=%v", pending, err)
	}
	for range 2 {
		if err := run("signing-key", "rotate", "--database", db); err != nil {
			t.Fatalf("signing-key rotate: %v", err)
		}
	}
	var active, verifying int
	conn.Get(&active, `SELECT COUNT(*) FROM signing_keys WHERE verify_until IS NULL`)
	conn.Get(&verifying, conn.Rebind(`SELECT COUNT(*) FROM signing_keys WHERE verify_until > ?`), time.Now().UTC())
	if active != 1 || verifying != 1 {
		t.Fatalf("after two rotations: %d active and %d still verifying, want 1 and 1", active, verifying)
	}
	for _, args := range [][]string{{}, {"frobnicate"}, {"partner", "create"}, {"serve", "--nope"}, {"migrate", "extra"}, {"signing-key"}} {
		if err := run(args...); !errors.Is(err, errUsage) {
			t.Fatalf("%v: %v, want a usage error", args, err)
		}
	}
	if err := run("migrate", "--database", ":memory:"); err == nil {
		t.Fatalf("an in-memory database must be refused")
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }

// If the key cannot be printed, no partner is created: nobody would hold its key, and the
// name would be taken.
func TestPartnerCreateLosesNothing(t *testing.T) {
	t.Parallel()
	db := migrationstest.DSN(t)
	var stderr bytes.Buffer
	err := (&Main{Stdout: failingWriter{}, Stderr: &stderr}).Run(context.Background(), []string{"partner", "create", "--name", "Initech", "--database", db})
	if err == nil || !strings.Contains(err.Error(), "broken pipe") {
		t.Fatalf("partner create with a broken stdout: %v", err)
	}
	var stdout bytes.Buffer
	if err := (&Main{Stdout: &stdout, Stderr: &stderr}).Run(context.Background(), []string{"partner", "create", "--name", "Initech", "--database", db}); err != nil {
		t.Fatalf("retry after the failure: %v", err)
	}
	if !strings.HasPrefix(stdout.String(), "tpk_") {
		t.Fatalf("retry printed %q", stdout.String())
	}
}

// An Idempotency-Key replays after the server restarts: records live in the database.
func TestIdempotencyAcrossRestart(t *testing.T) {
	t.Parallel()
	keyFile := filepath.Join(t.TempDir(), "bootstrap-partner-key")
	env := map[string]string{"TENANTRY_DATABASE": migrationstest.DSN(t), "TENANTRY_BOOTSTRAP_KEY_FILE": keyFile}
	m, _ := start(t, env)
	raw, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	key := strings.TrimSpace(string(raw))
	body := map[string]any{"organization": map[string]any{"name": "Retry Corp"}, "user": map[string]any{"email": "root@retry.test"}}
	first := servertest.New(t, "http://"+m.Addr()).As(key).Do("POST", "/api/provision", body, "Idempotency-Key", "restart-provision-1")
	if first.Status != 200 {
		t.Fatalf("provision: %d %s", first.Status, first.Body)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	m2, _ := start(t, env)
	defer m2.Close()
	again := servertest.New(t, "http://"+m2.Addr()).As(key).Do("POST", "/api/provision", body, "Idempotency-Key", "restart-provision-1")
	if again.Status != 200 || !bytes.Equal(first.Body, again.Body) || again.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("after a restart: %d %s", again.Status, again.Body)
	}
}

// The operator can give a partner that lost its keys a new one.
func TestPartnerIssueKey(t *testing.T) {
	t.Parallel()
	db := migrationstest.DSN(t)
	var out, errs bytes.Buffer
	if err := (&Main{Stdout: &out, Stderr: &errs}).Run(context.Background(), []string{"partner", "create", "--name", "Lost", "--database", db}); err != nil {
		t.Fatal(err)
	}
	var partnerID string
	for _, line := range strings.Split(errs.String(), "\n") {
		if i := strings.Index(line, `"partner_id":"`); i >= 0 {
			partnerID = line[i+14 : i+14+36]
		}
	}
	var issued bytes.Buffer
	if err := (&Main{Stdout: &issued, Stderr: &errs}).Run(context.Background(), []string{"partner", "issue-key", "--partner-id", partnerID, "--database", db}); err != nil {
		t.Fatalf("issue-key: %v\n%s", err, errs.String())
	}
	key := strings.TrimSpace(issued.String())
	srv, _ := start(t, nil, "--database", db)
	defer srv.Close()
	if r := servertest.New(t, "http://"+srv.Addr()).As(key).Do("GET", "/api/me", nil); r.Status != 200 || r.Data()["partner_id"] != partnerID {
		t.Fatalf("issued key: %d %s", r.Status, r.Body)
	}
	err := (&Main{Stdout: &issued, Stderr: &errs}).Run(context.Background(), []string{"partner", "issue-key", "--partner-id", "00000000-0000-0000-0000-000000000000", "--database", db})
	if err == nil || !strings.Contains(err.Error(), "No partner") {
		t.Fatalf("unknown partner: %v", err)
	}
}

// What never reaches the handlers is refused by the real server too: oversized headers (431)
// and broken percent-encoding (400), never a 5xx.
func TestBadInputAtTheDoor(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	m, _ := start(t, map[string]string{"TENANTRY_DATABASE": migrationstest.DSN(t), "TENANTRY_BOOTSTRAP_KEY_FILE": filepath.Join(dir, "key")})
	defer m.Close()
	req, _ := http.NewRequest("GET", "http://"+m.Addr()+"/api/me", nil)
	req.Header.Set("X-Padding", strings.Repeat("a", 100<<10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("a 100 KiB header: %d, want 431", resp.StatusCode)
	}
	conn, err := net.Dial("tcp", m.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /api/organizations/%%zz HTTP/1.1\r\nHost: x\r\n\r\n")
	status, _ := bufio.NewReader(conn).ReadString('\n')
	if !strings.Contains(status, " 400 ") {
		t.Fatalf("broken percent-encoding: %q, want 400", status)
	}
}

// Logs are JSON lines by default, text with --log-format text.
func TestLogFormat(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	m, logs := start(t, map[string]string{"TENANTRY_DATABASE": migrationstest.DSN(t), "TENANTRY_BOOTSTRAP_KEY_FILE": filepath.Join(dir, "key")},
		"--log-format", "text")
	// Log lines go out in batches, at least every 100 ms, and all of them at shutdown.
	servertest.New(t, "http://"+m.Addr()).Do("GET", "/healthz", nil)
	for deadline := time.Now().Add(time.Second); !strings.Contains(logs.String(), `msg=request`); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the request's log line was not written within a second:\n%s", logs.String())
		}
	}
	for range 50 {
		servertest.New(t, "http://"+m.Addr()).Do("GET", "/healthz", nil)
	}
	m.Close()
	if n := strings.Count(logs.String(), `msg=request`); n != 51 {
		t.Fatalf("%d request lines after shutdown, want 51", n)
	}
	if !strings.Contains(logs.String(), `msg=request`) || strings.Contains(logs.String(), `{"time"`) {
		t.Fatalf("text logs expected:\n%s", logs.String())
	}
	var out bytes.Buffer
	if err := (&Main{Stdout: &out, Stderr: &out}).Run(context.Background(), []string{"serve", "--log-format", "xml"}); !errors.Is(err, errUsage) {
		t.Fatalf("--log-format xml: %v", err)
	}
}
