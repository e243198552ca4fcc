package server_test

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tenantry/tenantry/server"
	"github.com/tenantry/tenantry/server/servertest"
	"github.com/tenantry/tenantry/tenants"
)

// midHour moves e's clock on to the middle of an hour, so that a test's requests all fall in
// one hour whenever it runs.
func midHour(e *env) {
	now := e.clock.now()
	mid := now.Truncate(time.Hour).Add(30 * time.Minute)
	if mid.Before(now) {
		mid = mid.Add(time.Hour)
	}
	e.clock.advance(mid.Sub(now))
}

// meteredKey is an organization of partner A with an admin, and the admin's key (and its id).
func meteredKey(e *env) (org string, key *servertest.Client, keyID string) {
	org = e.createOrg(e.partner, "Metered")
	key = e.anon.As(e.mintKey(e.partner, org, e.createUser(e.partner, org, "admin@metered.test", "admin")))
	return org, key, key.Do("GET", "/api/me", nil).Data()["key_id"].(string)
}

// usageOf reads a key's hourly usage as c (by id), expecting 200.
func usageOf(t *testing.T, c *servertest.Client, keyID, query string) []map[string]any {
	t.Helper()
	r := c.Do("GET", "/api/keys/"+keyID+"/usage"+query, nil)
	expect(t, r, 200, "")
	return r.List()
}

// Every request a key authenticates counts once, in its hour, and a token's counts for the key
// that minted it; nothing is written until the counts are flushed. The key's readers and its
// partner see the same numbers, per hour and per day.
func TestKeyUsageCountsEveryRequest(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	org := e.createOrg(e.partner, "Metered")
	admin := e.anon.As(e.mintKey(e.partner, org, e.createUser(e.partner, org, "admin@metered.test", "admin")))
	ci := admin.Do("POST", "/api/keys", map[string]any{"name": "ci"}).Data()
	key := e.anon.As(ci["value"].(string))
	midHour(e)
	const n = 17
	for range n {
		expect(t, key.Do("GET", "/api/me", nil), 200, "")
	}
	if got := usageOf(t, admin, ci["id"].(string), ""); len(got) != 0 {
		t.Fatalf("usage before a flush: %v (counting must not write on the request path)", got)
	}
	e.srv.FlushUsage(context.Background())
	hour := e.clock.now().UTC().Truncate(time.Hour).Format(time.RFC3339)
	got := usageOf(t, admin, ci["id"].(string), "")
	if len(got) != 1 || got[0]["hour"] != hour || got[0]["requests"] != float64(n) {
		t.Fatalf("usage after %d requests: %v, want %d in %s", n, got, n, hour)
	}
	// The key reads its own usage too (that request counts, from the next flush).
	if own := usageOf(t, key, ci["id"].(string), ""); len(own) != 1 || own[0]["requests"] != float64(n) {
		t.Fatalf("the key's own view: %v", own)
	}

	// A token's requests are its key's; a request answered 404 still authenticated.
	token := e.anon.As(key.Do("POST", "/api/auth/tokens", nil).Data()["token"].(string))
	for range 3 {
		expect(t, token.Do("GET", "/api/me", nil), 200, "")
	}
	expect(t, key.Do("GET", "/api/keys/00000000-0000-7000-8000-000000000001", nil), 404, "key_not_found")
	// Two hours on, in another hour.
	e.clock.advance(2 * time.Hour)
	for range 5 {
		expect(t, key.Do("GET", "/api/me", nil), 200, "")
	}
	e.srv.FlushUsage(context.Background())
	later := e.clock.now().UTC().Truncate(time.Hour).Format(time.RFC3339)
	got = usageOf(t, admin, ci["id"].(string), "")
	want := []map[string]any{{"hour": hour, "requests": float64(n + 1 + 1 + 3 + 1)}, {"hour": later, "requests": float64(5)}}
	if len(got) != 2 || got[0]["hour"] != want[0]["hour"] || got[0]["requests"] != want[0]["requests"] ||
		got[1]["hour"] != want[1]["hour"] || got[1]["requests"] != want[1]["requests"] {
		t.Fatalf("usage: %v, want %v", got, want)
	}
	// A window holding the later hour only.
	if w := usageOf(t, admin, ci["id"].(string), "?from="+url.QueryEscape(later)); len(w) != 1 || w[0]["hour"] != later {
		t.Fatalf("from=%s: %v", later, w)
	}

	// The partner's view: per key, in total and per day.
	r := e.partner.Do("GET", "/api/organizations/"+org+"/usage", nil)
	expect(t, r, 200, "")
	var row map[string]any
	for _, k := range r.List() {
		if k["key_id"] == ci["id"] {
			row = k
		}
	}
	total := float64(n + 1 + 1 + 3 + 1 + 5)
	if row == nil || row["requests"] != total || row["name"] != "ci" || row["kind"] != "user" {
		t.Fatalf("the partner's view of the key: %v in %s", row, r.Body)
	}
	var days float64
	for _, d := range row["days"].([]any) {
		days += d.(map[string]any)["requests"].(float64)
	}
	if days != total {
		t.Fatalf("the days add up to %v, want %v: %v", days, total, row["days"])
	}
	// Its own keys' usage is under its owner organization.
	e.srv.FlushUsage(context.Background())
	found := false
	for _, k := range e.partner.Do("GET", "/api/organizations/"+e.ownerID+"/usage", nil).List() {
		found = found || k["kind"] == "partner"
	}
	if !found {
		t.Fatalf("the partner's own key has no usage under its owner organization")
	}
}

// Each replica adds its counts to what is there: two servers on one database, both counting
// one key, add up, flush after flush.
func TestKeyUsageAddsUpAcrossServers(t *testing.T) {
	t.Parallel()
	a, b := twoServers(t)
	org := a.createOrg(a.partner, "Metered")
	admin := a.anon.As(a.mintKey(a.partner, org, a.createUser(a.partner, org, "admin@metered.test", "admin")))
	ci := admin.Do("POST", "/api/keys", map[string]any{"name": "ci"}).Data()
	onA, onB := a.anon.As(ci["value"].(string)), b.anon.As(ci["value"].(string))
	midHour(a) // b's clock is a's
	total := 0
	for round, counts := range [][2]int{{7, 4}, {3, 9}} {
		for range counts[0] {
			expect(t, onA.Do("GET", "/api/me", nil), 200, "")
		}
		for range counts[1] {
			expect(t, onB.Do("GET", "/api/me", nil), 200, "")
		}
		total += counts[0] + counts[1]
		a.srv.FlushUsage(context.Background())
		b.srv.FlushUsage(context.Background())
		got := usageOf(t, admin, ci["id"].(string), "")
		if len(got) != 1 || got[0]["requests"] != float64(total) {
			t.Fatalf("round %d: usage %v, want %d", round, got, total)
		}
	}
}

// Usage is another tenant's like the key it counts: 404, exactly as an unknown key or
// organization.
func TestUsageOfAnotherTenant(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	org, keyA, keyID := meteredKey(e)
	b, bOwner := e.newPartner("Partner B")
	orgB := e.createOrg(b, "Other")
	keyB := e.anon.As(e.mintKey(b, orgB, e.createUser(b, orgB, "admin@other.test", "admin")))
	const missing = "00000000-0000-7000-8000-000000000001"
	expect(t, keyB.Do("GET", "/api/keys/"+keyID+"/usage", nil), 404, "key_not_found")
	expect(t, keyB.Do("GET", "/api/keys/"+missing+"/usage", nil), 404, "key_not_found")
	for _, id := range []string{org, e.ownerID, missing} {
		expect(t, b.Do("GET", "/api/organizations/"+id+"/usage", nil), 404, "organization_not_found")
	}
	expect(t, b.Do("GET", "/api/organizations/"+bOwner+"/usage", nil), 200, "")
	expect(t, keyA.Do("GET", "/api/organizations/"+org+"/usage", nil), 403, "partner_key_required")
	expect(t, e.partner.Do("GET", "/api/keys/"+keyID+"/usage", nil), 403, "partner_key_not_allowed")
}

// from and to are RFC 3339 times, from before to, at most 31 days apart: anything else is a
// 400 naming the parameter and saying what to send.
func TestUsageWindowValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	org, key, keyID := meteredKey(e)
	routes := map[string]*servertest.Client{"/api/organizations/" + org + "/usage": e.partner, "/api/keys/" + keyID + "/usage": key}
	for name, tc := range map[string]struct {
		query    string
		says     map[string]string // field → what its problem says
		orgsOnly bool
	}{
		"from not a time":   {"?from=yesterday", map[string]string{"from": "RFC 3339"}, false},
		"to a date only":    {"?to=2026-12-03", map[string]string{"to": "RFC 3339"}, false},
		"from sent empty":   {"?from=", map[string]string{"from": "RFC 3339"}, false},
		"from after to":     {"?from=2026-12-03T10:00:00Z&to=2026-12-03T09:00:00Z", map[string]string{"from": "before to"}, false},
		"from equal to":     {"?from=2026-12-03T09:00:00Z&to=2026-12-03T09:00:00Z", map[string]string{"from": "before to"}, false},
		"more than 31 days": {"?from=2026-11-01T00:00:00Z&to=2026-12-03T00:00:00Z", map[string]string{"to": "31 days"}, false},
		"both bad":          {"?from=x&to=y", map[string]string{"from": "RFC 3339", "to": "RFC 3339"}, false},
		"a bad limit":       {"?limit=0&from=x", map[string]string{"limit": "1 to 100", "from": "RFC 3339"}, true},
	} {
		t.Run(name, func(t *testing.T) {
			for path, c := range routes {
				if tc.orgsOnly && c != e.partner {
					continue
				}
				r := c.Do("GET", path+tc.query, nil)
				expect(t, r, 400, "validation_failed")
				for field, says := range tc.says {
					if problem, _ := r.JSON()["metadata"].(map[string]any)[field].(string); !strings.Contains(problem, says) {
						t.Fatalf("%s%s: %s: %q does not say %q: %s", path, tc.query, field, problem, says, r.Body)
					}
				}
			}
		})
	}
	// A whole month, and a window in the future, are fine.
	expect(t, key.Do("GET", "/api/keys/"+keyID+"/usage?from=2026-12-01T00:00:00Z&to=2027-01-01T00:00:00Z", nil), 200, "")
	expect(t, key.Do("GET", "/api/keys/"+keyID+"/usage?from=2099-01-01T00:00:00%2B02:00&to=2099-01-02T00:00:00Z", nil), 200, "")
}

// Usage is kept as long as events: the sweeper deletes the hours that ended before the
// events' horizon, and keeps the rest.
func TestUsageIsKeptAsLongAsEvents(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, func(c *server.Config) { c.EventRetention = 48 * time.Hour })
	_, _, keyID := meteredKey(e)
	now := tenants.Now().Truncate(time.Hour)
	for _, h := range []time.Time{now.Add(-50 * time.Hour), now.Add(-47 * time.Hour), now} {
		if _, err := e.db.Exec(e.db.Rebind(`INSERT INTO api_key_usage (key_id, hour, requests) VALUES (?, ?, 1)`), keyID, h); err != nil {
			t.Fatal(err)
		}
	}
	e.srv.Sweep(context.Background())
	var hours []time.Time
	if err := e.db.Select(&hours, e.db.Rebind(`SELECT hour FROM api_key_usage WHERE key_id = ? ORDER BY hour`), keyID); err != nil {
		t.Fatal(err)
	}
	if len(hours) != 2 || !hours[0].Equal(now.Add(-47*time.Hour)) {
		t.Fatalf("after the sweep: %v", hours)
	}
}

// A verification spends the verified key's usage only when the caller may ask about it:
// another partner's probes (answered valid:false) never add to what a key is billed for.
func TestVerificationCountsOnlyInScope(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	org, key, keyID := meteredKey(e)
	midHour(e)
	before := func() float64 { // the key's requests so far, as its partner sees them
		e.srv.FlushUsage(context.Background())
		r := e.partner.Do("GET", "/api/organizations/"+org+"/usage", nil)
		expect(t, r, 200, "")
		for _, k := range r.List() {
			if k["key_id"] == keyID {
				return k["requests"].(float64)
			}
		}
		return 0
	}
	start := before()
	partnerB, _ := e.newPartner("Partner B")
	for range 5 {
		r := partnerB.Do("POST", "/api/keys/verify", map[string]any{"key": key.Key})
		if r.Status != 200 || r.Data()["valid"] != false {
			t.Fatalf("another partner's verification: %d %s", r.Status, r.Body)
		}
	}
	if got := before(); got != start {
		t.Fatalf("another partner's 5 verifications counted %v requests of the key", got-start)
	}
	for range 3 {
		if r := e.partner.Do("POST", "/api/keys/verify", map[string]any{"key": key.Key}); r.Data()["valid"] != true {
			t.Fatalf("its partner's verification: %s", r.Body)
		}
	}
	if got := before(); got != start+3 {
		t.Fatalf("its partner's 3 verifications counted %v requests of the key, want 3", got-start)
	}
}
