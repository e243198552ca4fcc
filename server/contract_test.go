package server_test

import (
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/tenantry/tenantry/server/servertest"
	"github.com/tenantry/tenantry/tenants"
)

// The server's routes and openapi.yaml's operations are the same set.
func TestRoutesMatchSpec(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	param := regexp.MustCompile(`:([A-Za-z_]+)`)
	served := map[string]bool{}
	for _, r := range e.srv.Routes() {
		served[r.Method+" "+param.ReplaceAllString(r.Path, "{$1}")] = true
	}
	documented := map[string]bool{}
	for path, item := range servertest.Spec(t).Paths.Map() {
		for method := range item.Operations() {
			documented[method+" "+path] = true
		}
	}
	var missing, extra []string
	for k := range served {
		if !documented[k] {
			missing = append(missing, k)
		}
	}
	for k := range documented {
		if !served[k] {
			extra = append(extra, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 || len(extra) > 0 {
		t.Fatalf("served but not in openapi.yaml: %v\nin openapi.yaml but not served: %v", missing, extra)
	}
	if len(served) < 18 {
		t.Fatalf("only %d routes: the route list is wrong", len(served))
	}
}

// The versions are tenants.Versions: openapi.yaml's ApiVersion lists them, oldest first, and
// defaults to the newest.
func TestSpecVersionsAreTenants(t *testing.T) {
	t.Parallel()
	schema := servertest.Spec(t).Components.Schemas["ApiVersion"].Value
	var enum []string
	for _, v := range schema.Enum {
		enum = append(enum, v.(string))
	}
	if !slices.Equal(enum, tenants.Versions) || schema.Default != tenants.LatestVersion {
		t.Fatalf("openapi.yaml's ApiVersion is %v, default %v; tenants.Versions is %v", enum, schema.Default, tenants.Versions)
	}
}

func TestVersionHeader(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, v := range tenants.Versions {
		r := e.partner.Do("GET", "/api/me", nil, "X-Polytomic-Version", v)
		expect(t, r, 200, "")
		if got := r.Header.Get("X-Polytomic-Version"); got != v {
			t.Fatalf("asked for %s, served %s", v, got)
		}
	}
	if got := e.partner.Do("GET", "/api/me", nil).Header.Get("X-Polytomic-Version"); got != "2025-09-18" {
		t.Fatalf("no header: served %s, want the newest", got)
	}
	for _, bad := range []string{"2020-01-01", "latest", "2025-9-18", strings.Repeat("9", 300)} {
		r := e.partner.Do("GET", "/api/me", nil, "X-Polytomic-Version", bad)
		expect(t, r, 400, "unsupported_version")
		if got, _ := r.JSON()["metadata"].(map[string]any)["supported_versions"].([]any); len(got) != len(tenants.Versions) {
			t.Fatalf("metadata must list the supported versions: %s", r.Body)
		}
	}
	// Errors and unknown routes carry the header too (servertest checks every response).
	expect(t, e.anon.Do("GET", "/api/organizations", nil, "X-Polytomic-Version", "2022-12-12"), 401, "missing_token")
	r := e.anon.Do("GET", "/no/such/route", nil, "X-Polytomic-Version", "2022-12-12")
	expect(t, r, 404, "route_not_found")
	if r.Header.Get("X-Polytomic-Version") != "2022-12-12" {
		t.Fatalf("404 served at %q", r.Header.Get("X-Polytomic-Version"))
	}
	r = e.partner.Do("PATCH", "/api/organizations", map[string]any{})
	expect(t, r, 405, "method_not_allowed")
	if !strings.Contains(r.Header.Get("Allow"), "GET") {
		t.Fatalf("405 without Allow: %v", r.Header)
	}
}

// What Polytomic's official clients send must work: the Go SDK sends no version header and
// Content-Type: application/json on GETs; the npm SDK sends Bearer with an empty token.
func TestPolytomicClientQuirks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	expect(t, e.partner.Do("GET", "/api/organizations", nil, "Content-Type", "application/json"), 200, "")
	expect(t, e.partner.Do("GET", "/api/organizations", "", "Content-Type", "application/json"), 200, "")
	expect(t, e.anon.Do("GET", "/api/me", nil, "Authorization", "Bearer ", "X-Polytomic-Version", "2025-09-18"), 401, "missing_token")
	expect(t, e.partner.Do("POST", "/api/organizations", map[string]any{"name": "Charset"}, "Content-Type", "application/json; charset=utf-8"), 200, "")
}

func TestRequestID(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.partner.Do("GET", "/api/me", nil, "X-Request-Id", "trace-123")
	if r.Header.Get("X-Request-Id") != "trace-123" {
		t.Fatalf("request id not echoed: %v", r.Header)
	}
	r = e.partner.Do("GET", "/api/me", nil, "X-Request-Id", "bad id with spaces\t")
	if id := r.Header.Get("X-Request-Id"); id == "" || strings.Contains(id, " ") {
		t.Fatalf("unsafe request id echoed: %q", id)
	}
	if !strings.Contains(e.logs.String(), `"request_id":"trace-123"`) {
		t.Fatalf("access log lacks the request id")
	}
}

// A failure the server does not expect is a 500 that reveals nothing; the log has the cause.
func TestInternalErrorRevealsNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	o := e.newOrg("Acme")
	if _, err := e.db.Exec(`ALTER TABLE datasets RENAME TO datasets_gone`); err != nil {
		t.Fatal(err)
	}
	r := o.admin.Do("GET", "/api/datasets", nil)
	expect(t, r, 500, "internal_error")
	body := strings.ToLower(string(r.Body))
	for _, leak := range []string{"sql", "table", "datasets", "no such"} {
		if strings.Contains(body, leak) {
			t.Fatalf("500 body reveals %q: %s", leak, r.Body)
		}
	}
	id := r.Header.Get("X-Request-Id")
	if !strings.Contains(string(r.Body), id) || !strings.Contains(e.logs.String(), "datasets") {
		t.Fatalf("500 must quote the request id and the log must hold the cause")
	}
}

// Nothing secret reaches the logs: not key values, not the Authorization header, not SSO secrets.
func TestLogsHoldNoSecrets(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	org := e.partner.Do("POST", "/api/organizations", map[string]any{"name": "Acme", "client_secret": "sso-secret-123"}).Data()["id"].(string)
	user := e.createUser(e.partner, org, "ada@acme.test", "admin")
	key := e.mintKey(e.partner, org, user)
	e.anon.As(key).Do("GET", "/api/me", nil)
	e.anon.Do("GET", "/api/me", nil, "Authorization", "Bearer not-a-real-key-but-secret")
	logs := e.logs.String()
	for _, s := range []string{e.partner.Key, key, "sso-secret-123", "not-a-real-key-but-secret", "Bearer"} {
		if strings.Contains(logs, s) {
			t.Fatalf("logs contain %q", s)
		}
	}
	if strings.Count(logs, `"msg":"request"`) < 5 {
		t.Fatalf("access log missing lines:\n%s", logs)
	}
}
