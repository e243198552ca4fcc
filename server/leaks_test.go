package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tenantry/tenantry/keys"
	"github.com/tenantry/tenantry/migrations/migrationstest"
	"github.com/tenantry/tenantry/server"
	"github.com/tenantry/tenantry/server/servertest"
)

// report sends a report of leaked credentials, anonymously, and expects the one answer.
func report(t *testing.T, e *env, values ...string) *servertest.Response {
	t.Helper()
	r := e.anon.Do("POST", "/api/credentials/revoke", map[string]any{"credentials": values})
	expect(t, r, 202, "")
	return r
}

// metric is the value of one series of the server's /metrics ("" when it has none).
func metric(t *testing.T, e *env, series string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(e.anon.Do("GET", "/metrics", nil).String())
	if m == nil {
		return ""
	}
	return m[1]
}

// A report of leaked credentials ends each that works at once: keys are revoked (user,
// organization and partner keys), a token ends its key's tokens until it but not the key. Each
// revocation is an event with the reason, which the organization's webhooks receive; the
// answer is the same whatever was reported; a second report changes nothing.
func TestReportedLeaksAreRevoked(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, fastWebhooks)
	org := e.createOrg(e.partner, "Leaky")
	admin := e.anon.As(e.mintKey(e.partner, org, e.createUser(e.partner, org, "admin@leaky.test", "admin")))
	member := e.anon.As(e.mintKey(e.partner, org, e.createUser(e.partner, org, "member@leaky.test", "user")))
	rc := newReceiver(t, nil)
	createWebhook(t, admin, map[string]any{"endpoint": rc.url(), "event_types": []string{"api_key.revoked", "api_key.tokens_revoked"}})
	orgKey := admin.Do("POST", "/api/keys", map[string]any{"name": "widget", "kind": "organization", "role": "asker"}).Data()
	partnerKey := e.partner.Do("POST", "/api/partner/keys", map[string]any{"name": "ci"}).Data()
	leakedToken := member.Do("POST", "/api/auth/tokens", nil).Data()["token"].(string)
	// A token minted in the next second: after the leaked one, so it lives on.
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second)))
	laterToken := member.Do("POST", "/api/auth/tokens", nil).Data()["token"].(string)
	for _, c := range []*servertest.Client{admin, e.anon.As(orgKey["value"].(string)), e.anon.As(partnerKey["value"].(string)), e.anon.As(leakedToken)} {
		expect(t, c.Do("GET", "/api/me", nil), 200, "") // all cached now: the revocation must reach the cache
	}
	// A well-formed key of another server, a mistyped one, junk and a forged token.
	var foreign string
	if _, err := keys.NewService(migrationstest.Open(t)).CreatePartner(context.Background(), "Elsewhere", func(v string) error { foreign = v; return nil }); err != nil {
		t.Fatal(err)
	}
	last := admin.Key[len(admin.Key)-1]
	mistyped := admin.Key[:len(admin.Key)-1] + map[bool]string{true: "b", false: "a"}[last == 'a']
	junk := []string{foreign, mistyped, "not a key", "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"}
	reported := func() map[string]map[string]any { // the events of reported revocations, by type and key id
		out := map[string]map[string]any{}
		for _, ev := range e.partner.Do("GET", "/api/events?limit=100", nil).List() {
			object := ev["event"].(map[string]any)
			if object["reason"] == nil {
				continue
			}
			if object["reason"] != "reported_leaked" || ev["actor"].(map[string]any)["kind"] != "reporter" {
				t.Fatalf("a reported revocation's event: %v", ev)
			}
			name := ev["type"].(string) + " " + object["id"].(string)
			if out[name] != nil {
				t.Fatalf("two events %s", name)
			}
			out[name] = ev
		}
		return out
	}

	nothing := report(t, e, junk...)
	if got := reported(); len(got) != 0 {
		t.Fatalf("a report of nothing that works revoked something: %v", got)
	}
	adminKeyID := admin.Do("GET", "/api/me", nil).Data()["key_id"].(string)
	memberKeyID := member.Do("GET", "/api/me", nil).Data()["key_id"].(string)
	real := report(t, e, append([]string{admin.Key, orgKey["value"].(string), partnerKey["value"].(string), leakedToken, admin.Key}, junk...)...)
	if !bytes.Equal(nothing.Body, real.Body) || real.String() != `{"data":{"status":"accepted"}}` {
		t.Fatalf("the answers differ, or say something: %s / %s", nothing.Body, real.Body)
	}

	for name, value := range map[string]string{"user key": admin.Key, "organization key": orgKey["value"].(string),
		"partner key": partnerKey["value"].(string), "leaked token": leakedToken} {
		if r := e.anon.As(value).Do("GET", "/api/me", nil); r.Status != 401 {
			t.Errorf("the reported %s still works: %d %s", name, r.Status, r.Body)
		}
	}
	// The token's key works on, and so does its later token; a new token too.
	expect(t, member.Do("GET", "/api/me", nil), 200, "")
	expect(t, e.anon.As(laterToken).Do("GET", "/api/me", nil), 200, "")
	expect(t, e.anon.As(member.Do("POST", "/api/auth/tokens", nil).Data()["token"].(string)).Do("GET", "/api/me", nil), 200, "")
	expect(t, e.partner.Do("GET", "/api/me", nil), 200, "") // the partner's first key was not reported

	// The events: who, why, once each; and the organization's webhook heard them.
	got := reported()
	for _, want := range []string{"api_key.revoked " + adminKeyID, "api_key.revoked " + orgKey["id"].(string),
		"partner_key.revoked " + partnerKey["id"].(string), "api_key.tokens_revoked " + memberKeyID} {
		if got[want] == nil {
			t.Errorf("no event %s among %v", want, got)
		}
	}
	if len(got) != 4 {
		t.Errorf("%d reported revocations recorded, want 4 (a user, an organization and a partner key, a key's tokens): %v", len(got), got)
	}
	if ev := got["api_key.tokens_revoked "+memberKeyID]; ev == nil || ev["event"].(map[string]any)["tokens_revoked_until"] == nil {
		t.Errorf("the tokens' event does not say until when: %v", ev)
	}
	servertest.Eventually(t, 10*time.Second, "the webhook hears the organization's reported revocations", func() bool {
		return rc.eventTypes() == "api_key.revoked api_key.revoked api_key.tokens_revoked"
	})
	for _, r := range rc.requests() {
		if !strings.Contains(string(r.body), `"reason":"reported_leaked"`) {
			t.Fatalf("a delivery without the reason: %s", r.body)
		}
	}

	// Again: nothing more happens.
	report(t, e, admin.Key, orgKey["value"].(string), partnerKey["value"].(string), leakedToken)
	if again := reported(); len(again) != len(got) {
		t.Fatalf("a second report recorded more events: %v", again)
	}
	for outcome, want := range map[string]string{"malformed": "4", "unknown": "4", "revoked": "3", "tokens_revoked": "1", "already_revoked": "4"} {
		if got := metric(t, e, `tenantry_reported_credentials_total{outcome="`+outcome+`"}`); got != want {
			t.Errorf("reported credentials %s: %s, want %s", outcome, got, want)
		}
	}
	if got := metric(t, e, "tenantry_credential_reports_total"); got != "3" {
		t.Errorf("reports: %s, want 3", got)
	}
	if strings.Contains(e.logs.String(), admin.Key) || strings.Contains(e.logs.String(), leakedToken) {
		t.Fatalf("the logs hold a reported value")
	}
}

// A report revokes a key on every server at once: another replica that has the key cached
// refuses it on its next request (within its notice, or its poll of the epoch).
func TestReportedLeakEndsKeyOnEveryServer(t *testing.T) {
	t.Parallel()
	a, b := twoServers(t)
	org := a.createOrg(a.partner, "Leaky")
	key := a.mintKey(a.partner, org, a.createUser(a.partner, org, "ada@leaky.test", "admin"))
	expect(t, b.anon.As(key).Do("GET", "/api/me", nil), 200, "") // cached on b
	report(t, a, key)
	servertest.Eventually(t, 2*time.Second, "the other server refuses the reported key", func() bool {
		return b.anon.As(key).Do("GET", "/api/me", nil).Status == 401
	})
}

// Reports are checked as bodies are: 1 to 100 values, strings, nothing else.
func TestReportValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	many := make([]string, 101)
	for i := range many {
		many[i] = fmt.Sprintf("tuk_%049d", i)
	}
	for name, tc := range map[string]struct {
		body  any
		key   string
		field string
	}{
		"no values":        {map[string]any{"credentials": []string{}}, "validation_failed", "credentials"},
		"null":             {map[string]any{"credentials": nil}, "validation_failed", "credentials"},
		"101 values":       {map[string]any{"credentials": many}, "validation_failed", "credentials"},
		"not strings":      {map[string]any{"credentials": []int{1}}, "validation_failed", ""},
		"an unknown field": {map[string]any{"credentials": []string{"x"}, "keys": []string{"x"}}, "unknown_field", ""},
		"no body":          {nil, "body_required", ""},
	} {
		t.Run(name, func(t *testing.T) {
			r := e.anon.Do("POST", "/api/credentials/revoke", tc.body)
			expect(t, r, 400, tc.key)
			if tc.field != "" && r.JSON()["metadata"].(map[string]any)[tc.field] == nil {
				t.Fatalf("the refusal does not name %s: %s", tc.field, r.Body)
			}
		})
	}
	// 100 values are fine.
	report(t, e, many[:100]...)
}

// Each client address may send so many reports: past its bucket, 429 before the body is read,
// with the RateLimit fields of the address's policy; counted in the metrics.
func TestReportRateLimit(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, func(c *server.Config) { c.ReportsPerSecond, c.ReportBurst = 1, 2 })
	for i := range 2 {
		r := report(t, e, "tuk_junk")
		if r.Header.Get("RateLimit-Policy") != `"address";q=1;w=1;tenantry-burst=2` || r.Header.Get("RateLimit") != fmt.Sprintf(`"address";r=%d;t=1`, 1-i) {
			t.Fatalf("report %d: rate fields %v", i, r.Header)
		}
	}
	r := e.anon.Do("POST", "/api/credentials/revoke", "not even JSON")
	expect(t, r, 429, "rate_limited")
	if r.Header.Get("Retry-After") != "1" || r.Header.Get("RateLimit") != `"address";r=0;t=1` {
		t.Fatalf("429 fields: %v", r.Header)
	}
	if metric(t, e, `tenantry_rate_limited_total{limit="credential_reports"}`) != "1" {
		t.Fatalf("the refusal is not counted")
	}
	// Credentials are not limited by it.
	expect(t, e.partner.Do("GET", "/api/me", nil), 200, "")
}

// The reported revocation's event object is a key as the API shows it, plus the reason.
func TestReportedEventShape(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	org := e.createOrg(e.partner, "Leaky")
	user := e.createUser(e.partner, org, "ada@leaky.test", "admin")
	key := e.mintKey(e.partner, org, user)
	report(t, e, key)
	list := e.partner.Do("GET", "/api/events?type=api_key.revoked&organization_id="+org, nil).List()
	if len(list) != 1 {
		t.Fatalf("events: %v", list)
	}
	raw, _ := json.Marshal(list[0]["event"])
	var object map[string]any
	json.Unmarshal(raw, &object)
	for _, field := range []string{"id", "name", "kind", "hint", "organization_id", "user_id", "revoked_at", "reason"} {
		if _, ok := object[field]; !ok {
			t.Errorf("the event's object lacks %s: %s", field, raw)
		}
	}
	if _, ok := object["value"]; ok || strings.Contains(string(raw), key) {
		t.Fatalf("the event holds the key's value: %s", raw)
	}
}
