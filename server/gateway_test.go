package server_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tenantry/tenantry/server"
	"github.com/tenantry/tenantry/server/servertest"
)

// principalHeaders are the headers GET /api/auth/check answers a passing credential with.
var principalHeaders = []string{"X-Tenantry-Organization-Id", "X-Tenantry-User-Id", "X-Tenantry-Key-Id",
	"X-Tenantry-Credential-Kind", "X-Tenantry-Permissions"}

// principalOf reads the principal headers of r, "" for one not sent, and fails unless each
// was sent at most once.
func principalOf(t *testing.T, h http.Header) map[string]string {
	t.Helper()
	got := map[string]string{}
	for _, name := range principalHeaders {
		if len(h.Values(name)) > 1 {
			t.Fatalf("%s sent %d times: %q", name, len(h.Values(name)), h.Values(name))
		}
		got[name] = h.Get(name)
	}
	return got
}

func wantPrincipal(t *testing.T, got map[string]string, org, user, key, kind, permissions string) {
	t.Helper()
	want := map[string]string{"X-Tenantry-Organization-Id": org, "X-Tenantry-User-Id": user, "X-Tenantry-Key-Id": key,
		"X-Tenantry-Credential-Kind": kind, "X-Tenantry-Permissions": permissions}
	for name, v := range want {
		if got[name] != v {
			t.Errorf("%s: %q, want %q", name, got[name], v)
		}
	}
}

// The gateway check answers a valid credential 200 with its principal in headers and no body,
// narrowed as the credential is: a key's scopes, an organization key's role, a token's parent.
func TestGatewayCheckPrincipal(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	o := e.newOrg("Gate")
	admin := o.admin.Do("GET", "/api/me", nil).Data()
	scoped := o.member.Do("POST", "/api/keys", map[string]any{"name": "reports", "scopes": []string{"datasets:read", "connections:read"}})
	expect(t, scoped, 200, "")
	asker := o.admin.Do("POST", "/api/keys", map[string]any{"name": "widget", "kind": "organization", "role": "asker"})
	expect(t, asker, 200, "")
	scopedKey := e.anon.As(scoped.Data()["value"].(string))
	tok := scopedKey.Do("POST", "/api/auth/tokens", map[string]any{"scopes": []string{"datasets:read"}})
	expect(t, tok, 200, "")

	cases := []struct {
		name                         string
		c                            *servertest.Client
		user, key, kind, permissions string
	}{
		{"admin's user key", o.admin, o.adminID, admin["key_id"].(string), "user",
			"users:read users:write keys:read keys:write roles:read roles:write policies:read policies:write connections:read connections:write datasets:read datasets:write events:read webhooks:read webhooks:write"},
		{"member's key narrowed by scopes", scopedKey, o.memberID, scoped.Data()["id"].(string), "user", "connections:read datasets:read"},
		{"asker organization key", e.anon.As(asker.Data()["value"].(string)), "", asker.Data()["id"].(string), "organization", "connections:read datasets:read"},
		{"token of the scoped key, narrowed again", e.anon.As(tok.Data()["token"].(string)), o.memberID, scoped.Data()["id"].(string), "token", "datasets:read"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.c.Do("GET", "/api/auth/check", nil)
			expect(t, r, 200, "")
			if len(r.Body) != 0 {
				t.Errorf("a body: %q", r.Body)
			}
			got := principalOf(t, r.Header)
			wantPrincipal(t, got, o.id, tc.user, tc.key, tc.kind, tc.permissions)
			for _, name := range principalHeaders { // each sent, empty or not: a proxy overwrites a client's
				if _, sent := r.Header[name]; !sent {
					t.Errorf("%s not sent", name)
				}
			}
		})
	}
	// A partner key provisions organizations; it does not pass the gateway, nor do its tokens.
	expect(t, e.partner.Do("GET", "/api/auth/check", nil), 403, "partner_key_not_allowed")
	ptok := e.partner.Do("POST", "/api/auth/tokens", nil)
	expect(t, ptok, 200, "")
	expect(t, e.anon.As(ptok.Data()["token"].(string)).Do("GET", "/api/auth/check", nil), 403, "partner_key_not_allowed")
}

// A proxy names the permissions a route needs in ?require= and X-Tenantry-Require (commas or
// spaces, either repeated); the credential needs every one, else 403 listing what it lacks.
// An unknown permission is 400, however good the credential.
func TestGatewayCheckRequire(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	o := e.newOrg("Req")
	reader := e.anon.As(o.member.Do("POST", "/api/keys", map[string]any{"name": "r", "scopes": []string{"datasets:read", "connections:read"}}).Data()["value"].(string))
	cases := []struct {
		name    string
		query   string
		headers []string
		status  int
		key     string
		missing string // metadata.missing_actions, joined by spaces
	}{
		{"nothing required", "", nil, 200, "", ""},
		{"one held, in the query", "?require=datasets:read", nil, 200, "", ""},
		{"two held, comma-separated", "?require=datasets:read,connections:read", nil, 200, "", ""},
		{"two held, space-separated and repeated", "?require=datasets:read%20connections:read&require=datasets:read", nil, 200, "", ""},
		{"one held, in the header", "", []string{"X-Tenantry-Require", "connections:read"}, 200, "", ""},
		{"empty lists require nothing", "?require=", []string{"X-Tenantry-Require", " , "}, 200, "", ""},
		{"one lacking", "?require=datasets:write", nil, 403, "permission_denied", "datasets:write"},
		{"query and header add up", "?require=datasets:read", []string{"X-Tenantry-Require", "users:read, datasets:write"}, 403, "permission_denied", "users:read datasets:write"},
		{"unknown in the query", "?require=datasets:reed", nil, 400, "validation_failed", ""},
		{"unknown in the header", "", []string{"X-Tenantry-Require", "admin"}, 400, "validation_failed", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := reader.Do("GET", "/api/auth/check"+tc.query, nil, tc.headers...)
			expect(t, r, tc.status, tc.key)
			switch tc.status {
			case 200:
				wantPrincipal(t, principalOf(t, r.Header), o.id, o.memberID, principalOf(t, r.Header)["X-Tenantry-Key-Id"], "user", "connections:read datasets:read")
			case 403:
				meta, _ := r.JSON()["metadata"].(map[string]any)
				if got := strings.Join(toStrings(meta["missing_actions"]), " "); got != tc.missing {
					t.Errorf("missing_actions %q, want %q: %s", got, tc.missing, r.Body)
				}
				for _, a := range strings.Fields(tc.missing) {
					if !strings.Contains(r.JSON()["message"].(string), a) {
						t.Errorf("the message does not name %s: %s", a, r.Body)
					}
				}
			case 400:
				field := "require"
				if tc.headers != nil {
					field = "X-Tenantry-Require"
				}
				meta, _ := r.JSON()["metadata"].(map[string]any)
				if msg, _ := meta[field].(string); !strings.Contains(msg, "datasets:read") {
					t.Errorf("metadata.%s should name the catalogue: %s", field, r.Body)
				}
			}
			if tc.status != 200 {
				for _, name := range principalHeaders {
					if v, sent := r.Header[name]; sent {
						t.Errorf("a refusal carries %s: %q", name, v)
					}
				}
			}
		})
	}
}

// Missing, malformed, unknown, revoked and expired credentials are 401 with the WWW-Authenticate
// challenge of every route; revocation and a role change take effect on the next check, though
// the credential was just checked (and so cached).
func TestGatewayCheckRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	o := e.newOrg("Refuse")
	mk := func(body map[string]any) (string, *servertest.Client) {
		r := o.member.Do("POST", "/api/keys", body)
		expect(t, r, 200, "")
		return r.Data()["id"].(string), e.anon.As(r.Data()["value"].(string))
	}
	challenge := func(t *testing.T, r *servertest.Response, key string) {
		t.Helper()
		expect(t, r, 401, key)
		want := `Bearer realm="tenantry", error="invalid_token"`
		if key == "missing_token" {
			want = `Bearer realm="tenantry"`
		}
		if got := r.Header.Get("WWW-Authenticate"); got != want {
			t.Errorf("WWW-Authenticate %q, want %q", got, want)
		}
	}
	challenge(t, e.anon.Do("GET", "/api/auth/check", nil), "missing_token")
	challenge(t, e.anon.As("tuk_not-a-key").Do("GET", "/api/auth/check", nil), "invalid_token")
	challenge(t, e.anon.Do("GET", "/api/auth/check", nil, "Authorization", "Basic "+o.member.Key), "invalid_token")

	id, revoked := mk(map[string]any{"name": "revoked"})
	expect(t, revoked.Do("GET", "/api/auth/check", nil), 200, "")
	expect(t, o.admin.Do("DELETE", "/api/keys/"+id, nil), 200, "")
	challenge(t, revoked.Do("GET", "/api/auth/check", nil), "invalid_token")

	_, expiring := mk(map[string]any{"name": "expiring", "expires_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)})
	expect(t, expiring.Do("GET", "/api/auth/check", nil), 200, "")
	e.clock.advance(2 * time.Hour)
	challenge(t, expiring.Do("GET", "/api/auth/check", nil), "invalid_token")

	// The member made admin: users:write passes on the next check.
	expect(t, o.member.Do("GET", "/api/auth/check?require=users:write", nil), 403, "permission_denied")
	expect(t, o.admin.Do("PUT", "/api/organization/users/"+o.memberID, map[string]any{"email": "member@refuse.test", "role": "admin"}), 200, "")
	expect(t, o.member.Do("GET", "/api/auth/check?require=users:write", nil), 200, "")
}

// A check counts against the credential's rate limit as any request with it does: the same
// bucket, the same 429 with Retry-After.
func TestGatewayCheckRateLimit(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, func(c *server.Config) { c.RatePerSecond, c.RateBurst = 0.001, 10 })
	o := e.newOrg("Rate") // 5 requests of the partner key's bucket, none of the member's
	for i := range 9 {
		r := o.member.Do("GET", "/api/auth/check", nil)
		expect(t, r, 200, "")
		if got := r.Header.Get("RateLimit-Remaining"); got != fmt.Sprint(9-i) {
			t.Fatalf("check %d: RateLimit-Remaining %q", i+1, got)
		}
	}
	expect(t, o.member.Do("GET", "/api/me", nil), 200, "") // the tenth request of the bucket
	r := o.member.Do("GET", "/api/auth/check", nil)
	expect(t, r, 429, "rate_limited")
	if r.Header.Get("Retry-After") == "" {
		t.Fatalf("429 without Retry-After: %v", r.Header)
	}
	expect(t, o.member.Do("GET", "/api/me", nil), 429, "rate_limited")
	expect(t, o.admin.Do("GET", "/api/auth/check", nil), 200, "") // another key, another bucket
}

// Envoy's HTTP ext_authz asks with its client's method: every method answers as GET does, a
// body is not read, and an Idempotency-Key records nothing (a repeat is checked afresh, so a
// key revoked meanwhile is refused, not replayed 200).
func TestGatewayCheckAnyMethod(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	o := e.newOrg("Envoy")
	want := principalOf(t, o.member.Do("GET", "/api/auth/check", nil).Header)
	for _, method := range []string{"POST", "PUT", "PATCH", "DELETE"} {
		r := o.member.Do(method, "/api/auth/check?require=datasets:read", map[string]any{"the": "client's body"}, "Idempotency-Key", "envoy-check-"+method)
		expect(t, r, 200, "")
		if got := principalOf(t, r.Header); fmt.Sprint(got) != fmt.Sprint(want) || r.Header.Get("Idempotent-Replayed") != "" {
			t.Fatalf("%s: %v, want %v as GET answers", method, got, want)
		}
		expect(t, o.member.Do(method, "/api/auth/check?require=users:write", nil), 403, "permission_denied")
	}
	keyID := o.member.Do("GET", "/api/me", nil).Data()["key_id"].(string)
	expect(t, e.partner.Do("DELETE", "/api/organizations/"+o.id+"/keys/"+keyID, nil), 200, "")
	r := o.member.Do("POST", "/api/auth/check?require=datasets:read", map[string]any{"the": "client's body"}, "Idempotency-Key", "envoy-check-POST")
	expect(t, r, 401, "invalid_token")
}
