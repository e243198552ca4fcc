package server_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tenantry/tenantry/server"
	"github.com/tenantry/tenantry/server/servertest"
	"github.com/tenantry/tenantry/tenants"
)

// The one answer for a credential that is not valid, whatever the reason.
const notValid = `{"data":{"valid":false}}`

// verify asks c about key (requiring require) and returns the answer, after checking it is 200.
func verify(t *testing.T, c *servertest.Client, key string, require ...string) *servertest.Response {
	t.Helper()
	body := map[string]any{"key": key}
	if require != nil {
		body["require"] = require
	}
	r := c.Do("POST", "/api/keys/verify", body)
	expect(t, r, 200, "")
	if r.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("an answer about a credential must not be stored: %v", r.Header)
	}
	return r
}

// mustBeValid fails unless r says the credential is valid, and returns what it says.
func mustBeValid(t *testing.T, r *servertest.Response) map[string]any {
	t.Helper()
	d := r.Data()
	if d["valid"] != true {
		t.Fatalf("want valid: %s", r.Body)
	}
	return d
}

func mustNotBeValid(t *testing.T, r *servertest.Response) {
	t.Helper()
	if string(r.Body) != notValid {
		t.Fatalf("want exactly %s, got %s", notValid, r.Body)
	}
}

func TestVerifyKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	o := e.newOrg("Acme")
	adminKeyID := o.admin.Do("GET", "/api/me", nil).Data()["key_id"].(string)

	t.Run("what a valid key is", func(t *testing.T) {
		for name, caller := range map[string]*servertest.Client{"its partner": e.partner, "a member of its organization": o.member} {
			d := mustBeValid(t, verify(t, caller, o.admin.Key))
			if d["kind"] != "user" || d["organization_id"] != o.id || d["user_id"] != o.adminID || d["key_id"] != adminKeyID ||
				d["scopes"] != nil || d["expires_at"] != nil || len(toStrings(d["permissions"])) != len(tenants.Catalogue) {
				t.Errorf("asked by %s: %v", name, d)
			}
			if _, ok := d["rate_limit"]; ok {
				t.Errorf("rate_limit without rate limits: %v", d)
			}
		}
	})

	t.Run("scopes and require", func(t *testing.T) {
		r := o.member.Do("POST", "/api/keys", map[string]any{"name": "ci", "scopes": []string{"datasets:read", "users:read"}})
		expect(t, r, 200, "")
		ci := r.Data()["value"].(string)
		d := mustBeValid(t, verify(t, o.admin, ci, "datasets:read"))
		for _, field := range []string{"permissions", "scopes"} {
			if got := strings.Join(toStrings(d[field]), " "); got != "users:read datasets:read" {
				t.Errorf("%s %q, want users:read datasets:read", field, got)
			}
		}
		got := verify(t, o.admin, ci, "datasets:read", "datasets:write", "users:write")
		if want := `{"data":{"valid":false,"missing_permissions":["users:write","datasets:write"]}}`; string(got.Body) != want {
			t.Errorf("require what it lacks: %s, want %s", got.Body, want)
		}
		mustBeValid(t, verify(t, o.admin, ci, []string{}...))
	})

	t.Run("tokens, verified and verifying", func(t *testing.T) {
		r := o.member.Do("POST", "/api/auth/tokens", map[string]any{"scopes": []string{"datasets:read"}, "token_ttl": 600})
		expect(t, r, 200, "")
		scoped := r.Data()["token"].(string)
		d := mustBeValid(t, verify(t, e.partner, scoped))
		memberKeyID := o.member.Do("GET", "/api/me", nil).Data()["key_id"].(string)
		exp, _ := time.Parse(time.RFC3339, r.Data()["expires_at"].(string))
		got, _ := time.Parse(time.RFC3339, d["expires_at"].(string))
		if d["kind"] != "token" || d["key_id"] != memberKeyID || d["user_id"] != o.memberID || !got.Equal(exp) ||
			strings.Join(toStrings(d["scopes"]), " ") != "datasets:read" {
			t.Errorf("a token: %v", d)
		}
		// A token may ask too, when it holds keys:read: the member's unscoped token does, the
		// scoped one does not.
		token := e.anon.As(o.member.Do("POST", "/api/auth/tokens", nil).Data()["token"].(string))
		mustBeValid(t, verify(t, token, o.admin.Key))
		mustBeValid(t, verify(t, token, scoped))
		expect(t, e.anon.As(scoped).Do("POST", "/api/keys/verify", map[string]any{"key": o.admin.Key}), 403, "permission_denied")
	})

	t.Run("revoked, on the very next verification", func(t *testing.T) {
		r := o.member.Do("POST", "/api/keys", map[string]any{"name": "to-revoke"})
		value, id := r.Data()["value"].(string), r.Data()["id"].(string)
		tok := e.anon.As(value).Do("POST", "/api/auth/tokens", nil).Data()["token"].(string)
		mustBeValid(t, verify(t, o.admin, value)) // cached now, and the token too
		mustBeValid(t, verify(t, o.admin, tok))
		expect(t, o.admin.Do("DELETE", "/api/keys/"+id, nil), 200, "")
		mustNotBeValid(t, verify(t, o.admin, value))
		mustNotBeValid(t, verify(t, o.admin, tok))
		mustNotBeValid(t, verify(t, e.partner, value))
	})

	t.Run("who may not ask", func(t *testing.T) {
		asker := o.admin.Do("POST", "/api/keys", map[string]any{"name": "asker", "kind": "organization", "role": "asker"}).Data()["value"].(string)
		noKeysRead := o.admin.Do("POST", "/api/keys", map[string]any{"name": "readers", "scopes": []string{"datasets:read"}}).Data()["value"].(string)
		for _, c := range []string{asker, noKeysRead} {
			r := e.anon.As(c).Do("POST", "/api/keys/verify", map[string]any{"key": o.admin.Key})
			expect(t, r, 403, "permission_denied")
			if !strings.Contains(r.String(), "keys:read") {
				t.Errorf("the refusal should name keys:read: %s", r.Body)
			}
		}
		narrowed := e.partner.Do("POST", "/api/auth/tokens", map[string]any{"scopes": []string{"keys:read"}}).Data()["token"].(string)
		expect(t, e.anon.As(narrowed).Do("POST", "/api/keys/verify", map[string]any{"key": o.admin.Key}), 403, "permission_denied")
		expect(t, e.anon.Do("POST", "/api/keys/verify", map[string]any{"key": o.admin.Key}), 401, "missing_token")
	})

	t.Run("bad requests", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			body any
			key  string
			meta string // a metadata field the refusal must name
		}{
			{"no key", map[string]any{}, "validation_failed", "key"},
			{"empty key", map[string]any{"key": ""}, "validation_failed", "key"},
			{"blank key", map[string]any{"key": " \t"}, "validation_failed", "key"},
			{"unknown action", map[string]any{"key": o.admin.Key, "require": []string{"datasets:read", "datasets:delete"}}, "validation_failed", "require"},
			{"unknown field", map[string]any{"key": o.admin.Key, "scopes": []string{"datasets:read"}}, "unknown_field", "field"},
			{"key not a string", map[string]any{"key": 42}, "validation_failed", "key"},
			{"no body", "", "body_required", ""},
		} {
			r := o.admin.Do("POST", "/api/keys/verify", tc.body)
			expect(t, r, 400, tc.key)
			if meta, _ := r.JSON()["metadata"].(map[string]any); tc.meta != "" && meta[tc.meta] == nil {
				t.Errorf("%s: the refusal does not name %s: %s", tc.name, tc.meta, r.Body)
			}
		}
		r := o.admin.Do("POST", "/api/keys/verify", map[string]any{"key": o.admin.Key, "require": []string{"nope"}})
		if !strings.Contains(r.String(), "datasets:read, datasets:write") {
			t.Errorf("an unknown action's refusal should list the actions: %s", r.Body)
		}
		expect(t, o.admin.Do("POST", "/api/keys/verify", "key="+o.admin.Key, "Content-Type", "application/x-www-form-urlencoded"),
			415, "unsupported_media_type")
		// Anything that is no credential is simply not valid.
		for _, junk := range []string{"x", "tuk_" + strings.Repeat("a", 49), "a.b.c", "Bearer " + o.admin.Key, o.admin.Key + " "} {
			mustNotBeValid(t, verify(t, o.admin, junk))
		}
	})

	t.Run("Idempotency-Key is ignored", func(t *testing.T) {
		r := o.member.Do("POST", "/api/keys", map[string]any{"name": "idem"})
		value, id := r.Data()["value"].(string), r.Data()["id"].(string)
		body := map[string]any{"key": value}
		first := o.admin.Do("POST", "/api/keys/verify", body, "Idempotency-Key", "verify-the-key-1")
		mustBeValid(t, first)
		expect(t, o.admin.Do("DELETE", "/api/keys/"+id, nil), 200, "")
		again := o.admin.Do("POST", "/api/keys/verify", body, "Idempotency-Key", "verify-the-key-1")
		mustNotBeValid(t, again) // not a replay of the first answer, stale since
		if again.Header.Get("Idempotent-Replayed") != "" {
			t.Errorf("a verification was replayed: %v", again.Header)
		}
		// Not even a malformed key is looked at.
		expect(t, o.admin.Do("POST", "/api/keys/verify", body, "Idempotency-Key", "x"), 200, "")
	})
}

// Expiry and the end of a rotated-out value's grace period are seen by verification as by
// requests: at the time they happen, though the credential was verified (and cached) before.
func TestVerifyExpiryAndRotation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	o := e.newOrg("Acme")
	expires := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	r := o.member.Do("POST", "/api/keys", map[string]any{"name": "expiring", "expires_at": expires.Format(time.RFC3339)})
	expect(t, r, 200, "")
	expiring := r.Data()["value"].(string)
	r = o.member.Do("POST", "/api/keys", map[string]any{"name": "rotating"})
	old, id := r.Data()["value"].(string), r.Data()["id"].(string)
	mustBeValid(t, verify(t, e.partner, old))

	rot := o.admin.Do("POST", "/api/keys/"+id+"/rotate", map[string]any{"grace_seconds": 60})
	expect(t, rot, 200, "")
	fresh := rot.Data()["value"].(string)
	d := mustBeValid(t, verify(t, e.partner, old)) // in its grace period
	end, _ := time.Parse(time.RFC3339, d["expires_at"].(string))
	if until := time.Until(end); until <= 0 || until > time.Minute {
		t.Errorf("a value in its grace period expires at its end: %v", d["expires_at"])
	}
	d = mustBeValid(t, verify(t, e.partner, expiring))
	if got, _ := time.Parse(time.RFC3339, d["expires_at"].(string)); !got.Equal(expires) {
		t.Errorf("expires_at %v, want %v", d["expires_at"], expires)
	}

	e.clock.advance(61 * time.Second)
	mustNotBeValid(t, verify(t, e.partner, old))
	mustBeValid(t, verify(t, e.partner, fresh))
	mustBeValid(t, verify(t, e.partner, expiring))
	e.clock.advance(time.Hour)
	mustNotBeValid(t, verify(t, e.partner, expiring))
	mustBeValid(t, verify(t, e.partner, fresh))
}

// Verifying spends the verified credential's own rate limit, from the bucket its requests
// use: what verifications spend, its own requests no longer have, and the other way round. A
// credential out of requests is not valid, and says so in rate_limit. A caller that may not ask
// about a credential spends nothing of it.
func TestVerifyCountsAgainstTheVerifiedKey(t *testing.T) {
	t.Parallel()
	const burst = 30
	e := newEnvWith(t, func(c *server.Config) { c.RatePerSecond, c.RateBurst = 0.001, burst }) // no refill to speak of
	o := e.newOrg("Acme")
	other, _ := e.newPartner("Partner B")
	// The member spends all but 4 of its requests.
	for range burst - 4 {
		expect(t, o.member.Do("GET", "/api/me", nil), 200, "")
	}
	rateOf := func(r *servertest.Response) map[string]any {
		t.Helper()
		rl, _ := r.JSON()["data"].(map[string]any)["rate_limit"].(map[string]any)
		if rl == nil || rl["limit"] != float64(burst) || rl["reset"].(float64) < 1 {
			t.Fatalf("rate_limit: %s", r.Body)
		}
		return rl
	}
	d := mustBeValid(t, verify(t, o.admin, o.member.Key))
	if rl := rateOf(verify(t, o.admin, o.member.Key)); rl["remaining"] != float64(2) || d["rate_limit"].(map[string]any)["remaining"] != float64(3) {
		t.Fatalf("two verifications leave 2 of 4: %v, then %v", d["rate_limit"], rl)
	}
	// Another tenant asking spends nothing.
	for range 3 {
		mustNotBeValid(t, verify(t, other, o.member.Key))
	}
	// The member's own request sees what the verifications spent.
	if got := o.member.Do("GET", "/api/me", nil).Header.Get("RateLimit-Remaining"); got != "1" {
		t.Fatalf("the member's own request: RateLimit-Remaining %q, want 1", got)
	}
	if rl := rateOf(mustValid(t, verify(t, o.admin, o.member.Key))); rl["remaining"] != float64(0) {
		t.Fatalf("the last request: %v", rl)
	}
	// Out of requests: not valid, and rate_limit says why; the member's own request is 429.
	r := verify(t, o.admin, o.member.Key)
	if rl := rateOf(r); r.Data()["valid"] != false || rl["remaining"] != float64(0) || len(r.Data()) != 2 {
		t.Fatalf("out of requests: %s", r.Body)
	}
	expect(t, o.member.Do("GET", "/api/me", nil), 429, "rate_limited")
	// Introspection spends the same bucket: out of requests, inactive.
	in := o.admin.Do("POST", "/oauth/introspect", url.Values{"token": {o.member.Key}}.Encode(), "Content-Type", "application/x-www-form-urlencoded")
	if expect(t, in, 200, ""); string(in.Body) != `{"active":false}` {
		t.Fatalf("introspection of a credential out of requests: %s", in.Body)
	}
}

func mustValid(t *testing.T, r *servertest.Response) *servertest.Response {
	t.Helper()
	mustBeValid(t, r)
	return r
}
