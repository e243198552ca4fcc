package server_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/tenantry/tenantry/server"
)

// An Idempotency-Key belongs to the exact credential that sent it: a token of the same key,
// or a rotated-out value of it, runs its own request instead of replaying another's answer.
func TestIdempotencyIsPerCredential(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	o := e.newOrg("Acme")
	key := []string{"Idempotency-Key", "mint-for-member-1"}
	path := "/api/organizations/" + o.id + "/users/" + o.memberID + "/keys?force=true"
	expect(t, e.partner.Do("POST", path, nil, key...), 200, "")
	narrow := e.anon.As(e.partner.Do("POST", "/api/auth/tokens", map[string]any{"scopes": []string{}}).Data()["token"].(string))
	r := narrow.Do("POST", path, nil, key...)
	expect(t, r, 403, "token_not_allowed")
	if r.Header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("a token replayed its key's answer")
	}
	// A rotated-out value cannot replay a rotation to get the new value.
	kr := o.admin.Do("POST", "/api/keys", map[string]any{"name": "r"})
	id, old := kr.Data()["id"].(string), e.anon.As(kr.Data()["value"].(string))
	rk := []string{"Idempotency-Key", "rotate-r-0001"}
	expect(t, old.Do("POST", "/api/keys/"+id+"/rotate", map[string]any{"grace_seconds": 3600}, rk...), 200, "")
	expect(t, old.Do("POST", "/api/keys/"+id+"/rotate", map[string]any{"grace_seconds": 3600}, rk...), 403, "rotated_key_value")
}

// A failure that is not the request's fault is not its recorded answer: a panic answers 500
// (never an empty 200) and frees the key; a 429 is not replayed either.
func TestIdempotencyDoesNotRecordTransientFailures(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.srv.SetProvisionFault(func(step string) error {
		if step == "user" {
			panic("injected panic")
		}
		return nil
	})
	body := map[string]any{"organization": map[string]any{"name": "Boom"}, "user": map[string]any{"email": "r@boom.test"}}
	for range 2 {
		r := e.partner.Do("POST", "/api/provision", body, "Idempotency-Key", "panicking-provision")
		expect(t, r, 500, "internal_error")
	}
	var n int
	e.db.Get(&n, `SELECT COUNT(*) FROM organizations WHERE name = 'Boom'`)
	if n != 0 {
		t.Fatalf("a panicking provisioning left %d organizations", n)
	}

	limited := newEnvWith(t, func(c *server.Config) { c.RatePerSecond, c.RateBurst = 0.001, 1 })
	key := []string{"Idempotency-Key", "limited-create-1"}
	limited.partner.Do("GET", "/api/me", nil) // spends the one token
	expect(t, limited.partner.Do("POST", "/api/organizations", map[string]any{"name": "L"}, key...), 429, "rate_limited")
	var stored int
	limited.db.Get(&stored, `SELECT COUNT(*) FROM idempotency_keys`)
	if stored != 0 {
		t.Fatalf("a 429 was recorded as the key's answer")
	}
}

// The first token ever minted inside an idempotent request creates the signing key in that
// request's transaction and must still sign with it.
func TestFirstTokenWithIdempotencyKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.partner.Do("POST", "/api/auth/tokens", nil, "Idempotency-Key", "first-token-ever")
	expect(t, r, 200, "")
	expect(t, e.anon.As(r.Data()["token"].(string)).Do("GET", "/api/me", nil), 200, "")
}

// Provisioning without an Idempotency-Key is all or nothing too (its own transaction).
func TestProvisionAllOrNothingWithoutKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.srv.SetProvisionFault(func(step string) error {
		if step == "key" {
			return errors.New("injected")
		}
		return nil
	})
	expect(t, e.partner.Do("POST", "/api/provision", map[string]any{"organization": map[string]any{"name": "Half"},
		"user": map[string]any{"email": "r@half.test"}}), 500, "internal_error")
	var n int
	e.db.Get(&n, `SELECT COUNT(*) FROM organizations WHERE name = 'Half'`)
	if n != 0 {
		t.Fatalf("a failed provisioning without a key left its organization")
	}
}

// Concurrent PATCHes of different fields keep both; concurrent rotations leave one value.
func TestConcurrentPatchesAndRotations(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	o := e.newOrg("Acme")
	old := []string{"X-Polytomic-Version", "2024-02-08"}
	for round := range 5 {
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			e.partner.Do("PATCH", "/api/organizations/"+o.id, map[string]any{"sso_org_id": fmt.Sprint("org-", round)}, old...)
		}()
		go func() {
			defer wg.Done()
			e.partner.Do("PATCH", "/api/organizations/"+o.id, map[string]any{"client_id": fmt.Sprint("client-", round)}, old...)
		}()
		wg.Wait()
		got := e.partner.Do("GET", "/api/organizations/"+o.id, nil).Data()
		if got["sso_org_id"] != fmt.Sprint("org-", round) || got["client_id"] != fmt.Sprint("client-", round) {
			t.Fatalf("round %d: a concurrent PATCH lost a field: %v", round, got)
		}
	}
	kid := o.admin.Do("POST", "/api/keys", map[string]any{"name": "spin"}).Data()["id"].(string)
	const n = 6
	values := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := o.admin.Do("POST", "/api/keys/"+kid+"/rotate", nil); r.Status == 200 {
				values[i] = r.Data()["value"].(string)
			}
		}()
	}
	wg.Wait()
	working := 0
	for _, v := range values {
		if v != "" && e.anon.As(v).Do("GET", "/api/me", nil).Status == 200 {
			working++
		}
	}
	if working != 1 {
		t.Fatalf("%d values work after %d concurrent rotations, want 1", working, n)
	}
}

// A webhook receives the organization's events: making one needs events:read.
func TestWebhookNeedsEventsRead(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, func(c *server.Config) { c.Webhooks.Disabled = true })
	o := e.newOrg("Acme")
	hooker := o.admin.Do("POST", "/api/keys", map[string]any{"name": "hooks", "scopes": []string{"webhooks:read", "webhooks:write"}}).Data()["value"].(string)
	expect(t, e.anon.As(hooker).Do("POST", "/api/webhooks", map[string]any{"endpoint": "https://93.184.215.14/x"}), 403, "permission_denied")
}

// /metrics is the operator's: a token when one is set, and made-up methods make no series.
func TestMetricsAccess(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, func(c *server.Config) { c.MetricsToken = "scrape-token-123" })
	expect(t, e.anon.Do("GET", "/metrics", nil), 403, "metrics_token_required")
	expect(t, e.partner.Do("GET", "/metrics", nil), 403, "metrics_token_required")
	for i := range 5 {
		e.anon.Do(fmt.Sprint("FOO", i), "/api/me", nil)
	}
	r := e.anon.Do("GET", "/metrics", nil, "Authorization", "Bearer scrape-token-123")
	expect(t, r, 200, "")
	if strings.Contains(r.String(), `method="FOO`) || !strings.Contains(r.String(), `method="other"`) {
		t.Fatalf("made-up methods must count as other")
	}
}

// A command is counted once against the caller's rate limit, and its inner request keeps the
// caller's address (failures from one client never lock out another).
func TestCommandsAndRateLimits(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, func(c *server.Config) { c.RatePerSecond, c.RateBurst = 0.001, 3 })
	for i := range 3 {
		r := e.partner.Do("POST", "/api", map[string]any{"command": "get_identity"})
		expect(t, r, 200, "")
		if got := r.Header.Get("RateLimit-Remaining"); got != fmt.Sprint(2-i) {
			t.Fatalf("command %d left %s requests, want %d: a command must cost one", i, got, 2-i)
		}
	}
	expect(t, e.partner.Do("POST", "/api", map[string]any{"command": "get_identity"}), 429, "rate_limited")
}
