package server_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/tenantry/tenantry/migrations/migrationstest"
	"github.com/tenantry/tenantry/server"
	"github.com/tenantry/tenantry/server/servertest"
)

// A write is one unit of work on one connection: its reads go through its transaction, never
// through a second pooled connection taken while the first is held. With a pool of one
// connection (two on PostgreSQL, whose change listener keeps one), a request that took a second
// one would wait for itself forever; each of these must answer.
func TestAWriteHoldsOneConnection(t *testing.T) {
	t.Parallel()
	db := migrationstest.Open(t)
	if migrationstest.Backend() == "postgres" {
		db.SetMaxOpenConns(2)
	} else {
		db.SetMaxOpenConns(1)
	}
	e := newEnvWith(t, func(c *server.Config) { c.DB = db })
	o := e.newOrg("Acme")
	old := []string{"X-Polytomic-Version", "2024-02-08"}
	role := o.admin.Do("POST", "/api/permissions/roles", map[string]any{"name": "Readers", "actions": []string{"users:read"}}).Data()["id"].(string)
	for _, w := range []struct {
		name         string
		client       *servertest.Client
		method, path string
		body         any
		headers      []string
	}{
		{"PATCH an organization", e.partner, "PATCH", "/api/organizations/" + o.id, map[string]any{"sso_org_id": "x"}, old},
		{"PATCH a user", e.partner, "PATCH", "/api/organizations/" + o.id + "/users/" + o.memberID, map[string]any{"role": "user"}, old},
		{"PATCH a role", o.admin, "PATCH", "/api/permissions/roles/" + role, map[string]any{"name": "Viewers"}, old},
		{"provision with Idempotency-Key", e.partner, "POST", "/api/provision",
			map[string]any{"organization": map[string]any{"name": "Beta"}, "user": map[string]any{"email": "root@beta.test"}},
			[]string{"Idempotency-Key", "one-connection-1"}},
		{"PUT a user with Idempotency-Key", e.partner, "PUT", "/api/organizations/" + o.id + "/users/" + o.memberID,
			map[string]any{"email": "member2@acme.test", "role": "user"}, []string{"Idempotency-Key", "one-connection-2"}},
	} {
		body, _ := json.Marshal(w.body)
		req, _ := http.NewRequest(w.method, e.url+w.path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+w.client.Key)
		req.Header.Set("Content-Type", "application/json")
		for i := 0; i < len(w.headers); i += 2 {
			req.Header.Set(w.headers[i], w.headers[i+1])
		}
		// The timeout ends the request on the server too, so a request stuck waiting fails
		// the test rather than hanging it.
		resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
		if err != nil {
			t.Fatalf("%s: %v (a request waiting for a second connection while holding the first never answers)", w.name, err)
		}
		answer, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", w.name, resp.StatusCode, answer)
		}
	}
}
