package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tenantry/tenantry/migrations/migrationstest"
	"github.com/tenantry/tenantry/server/servertest"
)

// A SQLite installation moves to another database (PostgreSQL when the suite runs on it) with
// export and import, and serves the same answers there: same objects, same keys, same tokens.
func TestExportImport(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	source := filepath.Join(dir, "source.db")
	keyFile := filepath.Join(dir, "key")
	m, _ := start(t, map[string]string{"TENANTRY_DATABASE": source, "TENANTRY_BOOTSTRAP_KEY_FILE": keyFile})
	raw, _ := os.ReadFile(keyFile)
	partner := servertest.New(t, "http://"+m.Addr()).As(strings.TrimSpace(string(raw)))
	prov := partner.Do("POST", "/api/provision", map[string]any{"organization": map[string]any{"name": "Moving Co", "client_secret": "sso"},
		"user": map[string]any{"email": "root@moving.test", "role": "admin"}}).Data()
	orgID := prov["organization"].(map[string]any)["id"].(string)
	user := servertest.New(t, "http://"+m.Addr()).As(prov["key"].(map[string]any)["value"].(string))
	conn := user.Do("POST", "/api/connections", map[string]any{"name": "DB", "type": "postgresql",
		"configuration": map[string]any{"host": "db", "password": "kept"}}).Data()["id"].(string)
	role := user.Do("POST", "/api/permissions/roles", map[string]any{"name": "Finance", "actions": []string{}}).Data()["id"].(string)
	policy := user.Do("POST", "/api/permissions/policies", map[string]any{"name": "Finance only",
		"policy_actions": []map[string]any{{"action": "connections:read", "role_ids": []string{role}}, {"action": "datasets:write"}}}).Data()["id"].(string)
	for _, r := range []*servertest.Response{
		user.Do("PUT", "/api/connections/"+conn, map[string]any{"name": "DB", "type": "postgresql", "policies": []string{policy}}),
		user.Do("POST", "/api/datasets", map[string]any{"name": "Orders", "slug": "orders", "connection_id": conn, "policies": []string{policy}}),
	} {
		if r.Status != 200 {
			t.Fatalf("a resource with a policy: %d %s", r.Status, r.Body)
		}
	}
	token := user.Do("POST", "/api/auth/tokens", nil).Data()["token"].(string)
	paths := []string{"/api/me", "/api/organization", "/api/connections", "/api/datasets", "/api/keys", "/api/permissions/roles",
		"/api/permissions/policies", "/api/events?limit=100"}
	before := map[string][]byte{}
	for _, p := range paths {
		before[p] = user.Do("GET", p, nil).Body
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}

	var dump, logs bytes.Buffer
	if err := (&Main{Stdout: &dump, Stderr: &logs}).Run(context.Background(), []string{"export", "--database", source}); err != nil {
		t.Fatalf("export: %v\n%s", err, logs.String())
	}
	if strings.Contains(dump.String(), prov["key"].(map[string]any)["value"].(string)) {
		t.Fatalf("the dump holds a key value; it must hold hashes only")
	}
	// The keys' usage moves too (written when the server stopped): what partners bill on.
	if !strings.Contains(dump.String(), `"table":"api_key_usage"`) {
		t.Fatalf("the dump holds no key usage")
	}
	target := migrationstest.DSN(t)
	if err := (&Main{Stdin: bytes.NewReader(dump.Bytes()), Stdout: &logs, Stderr: &logs}).Run(context.Background(), []string{"import", "--database", target}); err != nil {
		t.Fatalf("import: %v\n%s", err, logs.String())
	}
	// A second import into the same database is refused, not doubled.
	if err := (&Main{Stdin: bytes.NewReader(dump.Bytes()), Stdout: &logs, Stderr: &logs}).Run(context.Background(), []string{"import", "--database", target}); err == nil {
		t.Fatalf("importing into a database that holds partners must fail")
	}

	m2, _ := start(t, map[string]string{"TENANTRY_DATABASE": target, "TENANTRY_BOOTSTRAP_KEY_FILE": filepath.Join(dir, "unused")})
	defer m2.Close()
	moved := servertest.New(t, "http://"+m2.Addr()).As(user.Key)
	for _, p := range paths {
		after := moved.Do("GET", p, nil).Body
		if p == "/api/keys" {
			continue // last_used_at moves on with use
		}
		if !bytes.Equal(before[p], after) {
			t.Errorf("GET %s differs after the move:\n%s\n%s", p, before[p], after)
		}
	}
	if r := servertest.New(t, "http://"+m2.Addr()).As(token).Do("GET", "/api/me", nil); r.Status != 200 {
		t.Fatalf("a token minted before the move: %d", r.Status)
	}
	if r := servertest.New(t, "http://"+m2.Addr()).As(partner.Key).Do("GET", "/api/organizations/"+orgID, nil); r.Status != 200 {
		t.Fatalf("the partner key after the move: %d", r.Status)
	}
	if _, err := os.Stat(filepath.Join(dir, "unused")); err == nil {
		t.Fatalf("the imported database was bootstrapped again")
	}
}
