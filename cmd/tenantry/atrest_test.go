package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jmoiron/sqlx"

	"github.com/tenantry/tenantry/migrations"
	"github.com/tenantry/tenantry/migrations/migrationstest"
	"github.com/tenantry/tenantry/server/servertest"
	"github.com/tenantry/tenantry/tenants"
)

// run executes one command of the program and fails the test if it fails.
func run(t *testing.T, stdout *bytes.Buffer, args ...string) string {
	t.Helper()
	var logs bytes.Buffer
	if stdout == nil {
		stdout = &bytes.Buffer{}
	}
	if err := (&Main{Stdout: stdout, Stderr: &logs}).Run(context.Background(), args); err != nil {
		t.Fatalf("tenantry %s: %v\n%s", strings.Join(args, " "), err, logs.String())
	}
	return logs.String()
}

// everything is the text of every row of every table of the database at dsn, the raw bytes of
// a SQLite file (and its WAL) included: what a reader of the database could see.
func everything(t *testing.T, dsn string) string {
	t.Helper()
	db, err := migrations.Open(dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var tables []string
	q := `SELECT name FROM sqlite_master WHERE type = 'table'`
	if migrations.IsPostgres(dsn) {
		q = `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()`
	}
	if err := db.Select(&tables, q); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	for _, table := range tables {
		rows, err := db.Queryx(`SELECT * FROM ` + table)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			row := map[string]any{}
			if err := rows.MapScan(row); err != nil {
				t.Fatal(err)
			}
			for k, v := range row {
				if b, ok := v.([]byte); ok {
					v = string(b)
				}
				fmt.Fprintf(&out, "%s.%s=%v\n", table, k, v)
			}
		}
		rows.Close()
	}
	if !migrations.IsPostgres(dsn) {
		for _, f := range []string{dsn, dsn + "-wal"} {
			raw, _ := os.ReadFile(f)
			out.Write(raw)
		}
	}
	return out.String()
}

// Secrets at rest, as a reader of the database or of an export sees them. Whatever the
// configuration, the database holds no credential a response handed out (the idempotency
// records of those responses are encrypted under the credential that sent the request), while
// every replay still returns the first response byte for byte. With a secret key file, neither
// does it hold any secret it must read back in clear: SSO client secrets, webhook secrets,
// connection secrets and token signing keys are sealed.
func TestNoSecretInClearAtRest(t *testing.T) {
	t.Parallel()
	for _, sealed := range []bool{false, true} {
		t.Run(map[bool]string{false: "without a secret key file", true: "with a secret key file"}[sealed], func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			dsn := migrationstest.DSN(t)
			env := map[string]string{"TENANTRY_DATABASE": dsn, "TENANTRY_BOOTSTRAP_KEY_FILE": filepath.Join(dir, "bootstrap"),
				"TENANTRY_WEBHOOK_ALLOW_PRIVATE": "true"}
			if sealed {
				env["TENANTRY_SECRET_KEY_FILE"] = filepath.Join(dir, "secret-key")
				run(t, nil, "secret-key", "generate", "--secret-key-file", env["TENANTRY_SECRET_KEY_FILE"])
			}
			m, logs := start(t, env)
			defer m.Close()
			receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
			defer receiver.Close()
			raw, _ := os.ReadFile(env["TENANTRY_BOOTSTRAP_KEY_FILE"])
			api := servertest.New(t, "http://"+m.Addr())
			partner := api.As(strings.TrimSpace(string(raw)))

			// Each write with an Idempotency-Key, replayed at once: the same bytes come back.
			n := 0
			write := func(c *servertest.Client, method, path string, body any) map[string]any {
				t.Helper()
				n++
				key := fmt.Sprintf("at-rest-%04d", n)
				first := c.Do(method, path, body, "Idempotency-Key", key)
				again := c.Do(method, path, body, "Idempotency-Key", key)
				if first.Status != 200 || again.Status != 200 || !bytes.Equal(first.Body, again.Body) || again.Header.Get("Idempotent-Replayed") != "true" {
					t.Fatalf("%s %s and its replay: %d %s / %d %s", method, path, first.Status, first.Body, again.Status, again.Body)
				}
				return first.Data()
			}
			minted := map[string]string{} // credentials a response handed out: only their hashes are kept
			given := map[string]string{}  // secrets the server must read back (to sign, or to hand on)
			org := write(partner, "POST", "/api/organizations", map[string]any{"name": "Vault Co", "client_secret": "sso-client-secret-at-rest"})["id"].(string)
			given["SSO client secret"] = "sso-client-secret-at-rest"
			user := write(partner, "POST", "/api/organizations/"+org+"/users", map[string]any{"email": "root@vault.test", "role": "admin"})["id"].(string)
			minted["partner-minted user key"] = write(partner, "POST", "/api/organizations/"+org+"/users/"+user+"/keys", nil)["value"].(string)
			admin := api.As(minted["partner-minted user key"])
			personal := write(admin, "POST", "/api/keys", map[string]any{"name": "ci"})
			minted["personal key"] = personal["value"].(string)
			minted["organization key"] = write(admin, "POST", "/api/keys", map[string]any{"name": "backend", "kind": "organization", "role": "admin"})["value"].(string)
			minted["rotated key value"] = write(admin, "POST", "/api/keys/"+personal["id"].(string)+"/rotate", map[string]any{"grace_seconds": 60})["value"].(string)
			minted["token"] = write(admin, "POST", "/api/auth/tokens", nil)["token"].(string)
			given["generated webhook secret"] = write(admin, "POST", "/api/webhooks", map[string]any{"endpoint": receiver.URL + "/a"})["secret"].(string)
			write(admin, "POST", "/api/webhooks", map[string]any{"endpoint": receiver.URL + "/b", "secret": "own-webhook-secret-at-rest"})
			given["webhook secret"] = "own-webhook-secret-at-rest"
			write(admin, "POST", "/api/connections", map[string]any{"name": "DB", "type": "postgresql",
				"configuration": map[string]any{"host": "db", "password": "conn-password-at-rest", "hdr": map[string]any{"name": "Authorization", "value": "conn-header-at-rest"}}})
			given["connection password"], given["connection header"] = "conn-password-at-rest", "conn-header-at-rest"
			minted["partner key"] = write(partner, "POST", "/api/partner/keys", map[string]any{"name": "second"})["value"].(string)
			minted["provisioned key"] = write(partner, "POST", "/api/provision", map[string]any{"organization": map[string]any{"name": "Prov"},
				"user": map[string]any{"email": "r@prov.test"}})["key"].(map[string]any)["value"].(string)
			minted["key from a command"] = write(admin, "POST", "/api", map[string]any{"command": "create_key", "params": map[string]any{"name": "cmd"}})["value"].(string)
			if me := api.As(minted["key from a command"]).Do("GET", "/api/me", nil); me.Status != 200 {
				t.Fatalf("the minted key works: %d", me.Status)
			}
			if err := m.Close(); err != nil {
				t.Fatal(err)
			}

			exportFile := filepath.Join(dir, "dump.jsonl")
			f, err := os.Create(exportFile)
			if err != nil {
				t.Fatal(err)
			}
			m2 := &Main{Stdout: f, Stderr: &bytes.Buffer{}}
			if err := m2.Run(context.Background(), []string{"export", "--database", dsn}); err != nil {
				t.Fatal(err)
			}
			f.Close()
			if st, _ := os.Stat(exportFile); st.Mode().Perm() != 0o600 {
				t.Fatalf("the export file has mode %o, want 600", st.Mode().Perm())
			}
			dump, _ := os.ReadFile(exportFile)
			stored := everything(t, dsn)
			for what, s := range minted {
				if strings.Contains(stored, s) || bytes.Contains(dump, []byte(s)) {
					t.Errorf("the %s is in clear in the database or the export", what)
				}
			}
			// The token signing key, as the server opens it.
			db, err := migrations.Open(dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			private := signingKey(t, db, env["TENANTRY_SECRET_KEY_FILE"])
			given["token signing key"] = string(private)
			given["token signing key (base64)"] = base64.StdEncoding.EncodeToString(private)
			for what, s := range given {
				inClear := strings.Contains(stored, s) || bytes.Contains(dump, []byte(s))
				if sealed && inClear {
					t.Errorf("with a secret key file, the %s is in clear in the database or the export", what)
				}
				if !sealed && !inClear && what != "token signing key (base64)" && what != "token signing key" {
					t.Errorf("without a secret key file the %s is stored as given, as the README says; not found", what)
				}
			}
			if unencrypted := strings.Count(logs.String(), "secrets are stored unencrypted"); unencrypted != map[bool]int{false: 1, true: 0}[sealed] {
				t.Errorf("the warning that secrets are stored unencrypted was logged %d times", unencrypted)
			}
		})
	}
}

// signingKey is the current token signing private key, opened with the key file (if any).
func signingKey(t *testing.T, db *sqlx.DB, keyFile string) []byte {
	t.Helper()
	var rows []struct {
		ID      string `db:"id"`
		Private []byte `db:"private_key"`
	}
	if err := db.Select(&rows, `SELECT id, private_key FROM signing_keys`); err != nil || len(rows) == 0 {
		t.Fatalf("signing keys: %v", err)
	}
	var s *tenants.Sealer
	if keyFile != "" {
		var err error
		if s, err = tenants.LoadSealer(keyFile); err != nil {
			t.Fatal(err)
		}
	}
	private, err := s.Open(rows[0].Private, tenants.SealedAt("signing_keys", "private_key", rows[0].ID))
	if err != nil || len(private) != 64 {
		t.Fatalf("signing key: %d bytes, %v", len(private), err)
	}
	return private
}
