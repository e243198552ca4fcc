package server_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenantry/tenantry/server"
	"github.com/tenantry/tenantry/server/delivery"
	"github.com/tenantry/tenantry/server/servertest"
)

// receiver is a real HTTP endpoint that records every request it gets and answers each with
// the status answer picks for it (0-based count of requests so far).
type receiver struct {
	t      *testing.T
	srv    *httptest.Server
	answer func(n int) int
	mu     sync.Mutex
	got    []received
}

type received struct {
	header http.Header
	body   []byte
	at     time.Time
}

// newReceiver starts a receiver answering 204 unless answer says otherwise.
func newReceiver(t *testing.T, answer func(n int) int) *receiver {
	t.Helper()
	if answer == nil {
		answer = func(int) int { return http.StatusNoContent }
	}
	rc := &receiver{t: t, answer: answer}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		n := len(rc.got)
		rc.got = append(rc.got, received{header: r.Header.Clone(), body: body, at: time.Now()})
		rc.mu.Unlock()
		w.WriteHeader(rc.answer(n))
		io.WriteString(w, "thanks")
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) url() string { return rc.srv.URL + "/hook?token=abc" }

func (rc *receiver) requests() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.got...)
}

// eventTypes lists the "type" of each request body received, sorted (deliveries run
// concurrently: their order is not guaranteed).
func (rc *receiver) eventTypes() string {
	var out []string
	for _, r := range rc.requests() {
		var ev struct{ Type string }
		json.Unmarshal(r.body, &ev)
		out = append(out, ev.Type)
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

// fastWebhooks is a delivery configuration for tests: loopback receivers allowed, quick polls
// and retries.
func fastWebhooks(c *server.Config) {
	c.Webhooks = delivery.Config{AllowPrivate: true, PollInterval: 20 * time.Millisecond, BaseBackoff: 40 * time.Millisecond,
		MaxBackoff: 150 * time.Millisecond, MaxAttempts: 3, Timeout: 3 * time.Second}
}

func createWebhook(t *testing.T, c *servertest.Client, body map[string]any) map[string]any {
	t.Helper()
	r := c.Do("POST", "/api/webhooks", body)
	expect(t, r, 200, "")
	return r.Data()
}

func deliveries(t *testing.T, c *servertest.Client, id string) []map[string]any {
	t.Helper()
	r := c.Do("GET", "/api/webhooks/"+id+"/deliveries?limit=100", nil)
	expect(t, r, 200, "")
	return r.List()
}

// settled reports whether every delivery is delivered or failed.
func settled(list []map[string]any) bool {
	for _, d := range list {
		if d["state"] == "pending" {
			return false
		}
	}
	return true
}

func TestWebhookLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, fastWebhooks)
	o := e.newOrg("Hooks")
	rc := newReceiver(t, nil)

	r := o.admin.Do("POST", "/api/webhooks", map[string]any{"endpoint": rc.url()})
	expect(t, r, 200, "")
	if r.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("the answer holding the secret may be cached: %v", r.Header)
	}
	hook := r.Data()
	id := hook["id"].(string)
	secret, _ := hook["secret"].(string)
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if !strings.HasPrefix(secret, "whsec_") || err != nil || len(key) != 32 {
		t.Fatalf("generated secret %q: want whsec_ and the base64 of 32 bytes", secret)
	}
	if hook["enabled"] != true || hook["organization_id"] != o.id || hook["endpoint"] != rc.url() || len(hook["event_types"].([]any)) != 0 {
		t.Fatalf("created webhook: %s", r.Body)
	}

	servertest.Eventually(t, 5*time.Second, "webhook.created reaches the endpoint", func() bool { return len(rc.requests()) == 1 })

	// The secret is never shown again.
	get := o.admin.Do("GET", "/api/webhooks/"+id, nil)
	expect(t, get, 200, "")
	list := o.member.Do("GET", "/api/webhooks", nil) // members read webhooks
	expect(t, list, 200, "")
	if len(list.List()) != 1 || list.List()[0]["id"] != id {
		t.Fatalf("list: %s", list.Body)
	}
	for _, r := range []*servertest.Response{get, list} {
		if strings.Contains(string(r.Body), secret) || strings.Contains(string(r.Body), `"secret"`) {
			t.Fatalf("the secret is shown again: %s", r.Body)
		}
	}

	// PUT replaces endpoint and event types and keeps the secret.
	rc2 := newReceiver(t, nil)
	put := o.admin.Do("PUT", "/api/webhooks/"+id, map[string]any{"endpoint": rc2.url(), "event_types": []string{"dataset.created", "webhook.disabled"}})
	expect(t, put, 200, "")
	if put.Data()["endpoint"] != rc2.url() || fmt.Sprint(put.Data()["event_types"]) != "[dataset.created webhook.disabled]" || strings.Contains(string(put.Body), secret) {
		t.Fatalf("updated webhook: %s", put.Body)
	}
	expect(t, o.admin.Do("POST", "/api/datasets", map[string]any{"name": "Orders", "slug": "orders"}), 200, "")
	servertest.Eventually(t, 5*time.Second, "the dataset.created delivery reaches the new endpoint", func() bool { return len(rc2.requests()) == 1 })
	if got := rc2.requests()[0]; !validSignatures(got, secret) {
		t.Fatalf("after a PUT without secret, deliveries must be signed with the old secret: %v", got.header)
	}

	// PUT with a new secret: signed with it from then on, and it is not echoed.
	newSecret := "whsec_" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	put = o.admin.Do("PUT", "/api/webhooks/"+id, map[string]any{"endpoint": rc2.url(), "secret": newSecret, "event_types": []string{"dataset.created", "dataset.created"}})
	expect(t, put, 200, "")
	if strings.Contains(string(put.Body), newSecret) || fmt.Sprint(put.Data()["event_types"]) != "[dataset.created]" {
		t.Fatalf("PUT with a secret: %s", put.Body)
	}
	expect(t, o.admin.Do("POST", "/api/datasets", map[string]any{"name": "Refunds", "slug": "refunds"}), 200, "")
	servertest.Eventually(t, 5*time.Second, "the second dataset.created delivery", func() bool { return len(rc2.requests()) == 2 })
	if got := rc2.requests()[1]; !validSignatures(got, newSecret) || validSignatures(got, secret) {
		t.Fatalf("after a PUT with a secret, deliveries must be signed with the new one")
	}

	// Disable, enable: events, and no change when already in that state. (Once the deliveries
	// so far are recorded: a receiver answers before its attempt is recorded, and disabling
	// fails what is still pending.)
	servertest.Eventually(t, 5*time.Second, "the deliveries so far settle", func() bool { return settled(deliveries(t, o.admin, id)) })
	dis := o.admin.Do("POST", "/api/webhooks/"+id+"/disable", nil)
	expect(t, dis, 200, "")
	if dis.Data()["enabled"] != false {
		t.Fatalf("disable: %s", dis.Body)
	}
	expect(t, o.admin.Do("POST", "/api/webhooks/"+id+"/disable", nil), 200, "")
	en := o.admin.Do("POST", "/api/webhooks/"+id+"/enable", nil)
	expect(t, en, 200, "")
	if en.Data()["enabled"] != true {
		t.Fatalf("enable: %s", en.Body)
	}

	// Deliveries list: newest first, paginated, each with its attempts.
	servertest.Eventually(t, 5*time.Second, "every delivery settles", func() bool { return settled(deliveries(t, o.admin, id)) })
	all := deliveries(t, o.admin, id)
	if len(all) != 3 { // webhook.created (to itself), then the two dataset.created
		t.Fatalf("deliveries: %d, want 3: %v", len(all), all)
	}
	if all[0]["event_type"] != "dataset.created" || all[2]["event_type"] != "webhook.created" {
		t.Fatalf("deliveries are not newest first: %v", all)
	}
	for _, d := range all {
		if d["state"] != "delivered" || d["attempt_count"] != 1.0 || d["next_attempt_at"] != nil || d["delivered_at"] == nil ||
			len(d["attempts"].([]any)) != 1 || d["webhook_id"] != id {
			t.Fatalf("delivery: %v", d)
		}
		a := d["attempts"].([]any)[0].(map[string]any)
		if a["status_code"] != 204.0 || a["error"] != "" || a["attempted_at"] == nil {
			t.Fatalf("attempt: %v", a)
		}
	}
	page := o.admin.Do("GET", "/api/webhooks/"+id+"/deliveries?limit=2", nil)
	expect(t, page, 200, "")
	next := page.JSON()["pagination"].(map[string]any)["next_page_token"].(string)
	rest := o.admin.Do("GET", "/api/webhooks/"+id+"/deliveries?limit=2&page_token="+next, nil)
	expect(t, rest, 200, "")
	if len(page.List()) != 2 || len(rest.List()) != 1 || rest.List()[0]["id"] != all[2]["id"] ||
		rest.JSON()["pagination"].(map[string]any)["next_page_token"] != "" {
		t.Fatalf("pagination: %s then %s", page.Body, rest.Body)
	}
	expect(t, o.admin.Do("GET", "/api/webhooks/"+id+"/deliveries?limit=0", nil), 400, "validation_failed")

	// Every change recorded an event; none holds the secret.
	var types []string
	if err := e.db.Select(&types, e.db.Rebind(`SELECT type FROM events WHERE organization_id = ? AND type LIKE 'webhook.%' ORDER BY id`), o.id); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(types, " "); got != "webhook.created webhook.updated webhook.updated webhook.disabled webhook.enabled" {
		t.Fatalf("webhook events: %s", got)
	}

	// Delete: gone, with its deliveries and attempts.
	del := o.admin.Do("DELETE", "/api/webhooks/"+id, nil)
	expect(t, del, 200, "")
	expect(t, o.admin.Do("GET", "/api/webhooks/"+id, nil), 404, "webhook_not_found")
	expect(t, o.admin.Do("GET", "/api/webhooks/"+id+"/deliveries", nil), 404, "webhook_not_found")
	var left int
	e.db.Get(&left, e.db.Rebind(`SELECT COUNT(*) FROM webhook_deliveries WHERE webhook_id = ?`), id)
	if left != 0 {
		t.Fatalf("%d deliveries outlive their webhook", left)
	}
	e.db.Get(&left, e.db.Rebind(`SELECT COUNT(*) FROM events WHERE type = 'webhook.deleted' AND organization_id = ?`), o.id)
	if left != 1 {
		t.Fatalf("no webhook.deleted event")
	}

	// The secrets appear nowhere: not in events, payloads, the logs or what receivers got.
	var stored []string
	e.db.Select(&stored, `SELECT data FROM events UNION ALL SELECT payload FROM webhook_deliveries UNION ALL SELECT error FROM webhook_attempts`)
	for _, rc := range []*receiver{rc, rc2} {
		for _, r := range rc.requests() {
			stored = append(stored, string(r.body))
		}
	}
	stored = append(stored, e.logs.String())
	for _, s := range stored {
		if strings.Contains(s, secret) || strings.Contains(s, newSecret) || strings.Contains(s, strings.TrimPrefix(secret, "whsec_")) {
			t.Fatalf("a webhook secret leaked: %s", s)
		}
	}
}

// validSignatures recomputes both signatures of a received delivery with secret.
func validSignatures(r received, secret string) bool {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return false
	}
	id, ts := r.header.Get("webhook-id"), r.header.Get("webhook-timestamp")
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(r.body)
	standard := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	mac = hmac.New(sha256.New, key)
	mac.Write(r.body)
	polytomic := hex.EncodeToString(mac.Sum(nil))
	return hmac.Equal([]byte(r.header.Get("webhook-signature")), []byte(standard)) &&
		hmac.Equal([]byte(r.header.Get("Polytomic-Signature")), []byte(polytomic))
}

func TestWebhookSignatures(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, fastWebhooks)
	rc := newReceiver(t, nil)
	// A caller-chosen secret of 24 bytes; the partner key acts on its owner organization.
	secret := "whsec_" + base64.StdEncoding.EncodeToString([]byte("twenty-four bytes of key"))
	hook := createWebhook(t, e.partner, map[string]any{"endpoint": rc.url(), "secret": secret, "event_types": []string{"user.created"}})
	if hook["secret"] != secret || hook["organization_id"] != e.ownerID {
		t.Fatalf("created: %v", hook)
	}
	u := e.partner.Do("POST", "/api/organization/users", map[string]any{"email": "signed@owner.test"})
	expect(t, u, 200, "")
	servertest.Eventually(t, 5*time.Second, "the user.created delivery arrives", func() bool { return len(rc.requests()) == 1 })
	got := rc.requests()[0]
	var ev map[string]any
	if err := json.Unmarshal(got.body, &ev); err != nil {
		t.Fatal(err)
	}
	data, _ := ev["event"].(map[string]any) // the object, under Polytomic's name
	if ev["type"] != "user.created" || ev["organization_id"] != e.ownerID || data["id"] != u.Data()["id"] || ev["actor"] == nil || ev["created_at"] == nil {
		t.Fatalf("payload: %s", got.body)
	}
	h := got.header
	if h.Get("webhook-id") != ev["id"] || h.Get("Content-Type") != "application/json" || h.Get("User-Agent") != "Tenantry-Webhooks/1" {
		t.Fatalf("headers: %v", h)
	}
	ts, err := strconv.ParseInt(h.Get("webhook-timestamp"), 10, 64)
	if err != nil || time.Since(time.Unix(ts, 0)).Abs() > time.Minute {
		t.Fatalf("webhook-timestamp %q is not the current Unix time", h.Get("webhook-timestamp"))
	}
	if !strings.HasPrefix(h.Get("webhook-signature"), "v1,") || !validSignatures(got, secret) {
		t.Fatalf("signatures do not verify: %v", h)
	}
	// A tampered body does not verify.
	got.body = append(got.body[:len(got.body)-1], ' ', '}')
	if validSignatures(got, secret) {
		t.Fatalf("a changed body still verifies")
	}
}

func TestWebhookRetries(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, fastWebhooks)
	// Fails twice (500, then a redirect, which is not followed), then succeeds.
	rc := newReceiver(t, func(n int) int { return []int{500, 302, 200}[min(n, 2)] })
	hook := createWebhook(t, e.partner, map[string]any{"endpoint": rc.url(), "event_types": []string{"role.created"}})
	id := hook["id"].(string)
	expect(t, e.partner.Do("POST", "/api/permissions/roles", map[string]any{"name": "Auditor", "actions": []string{"users:read"}}), 200, "")
	servertest.Eventually(t, 10*time.Second, "the delivery succeeds on its third attempt", func() bool { return settled(deliveries(t, e.partner, id)) })
	list := deliveries(t, e.partner, id)
	if len(list) != 1 {
		t.Fatalf("deliveries: %v", list)
	}
	d := list[0]
	attempts := d["attempts"].([]any)
	if d["state"] != "delivered" || d["attempt_count"] != 3.0 || len(attempts) != 3 || d["next_attempt_at"] != nil {
		t.Fatalf("delivery: %v", d)
	}
	var statuses []string
	var prev time.Time
	for _, a := range attempts {
		a := a.(map[string]any)
		statuses = append(statuses, fmt.Sprint(a["status_code"]))
		at, _ := time.Parse(time.RFC3339Nano, a["attempted_at"].(string))
		if at.Before(prev) || a["latency_ms"].(float64) < 0 {
			t.Fatalf("attempts out of order or negative latency: %v", attempts)
		}
		prev = at
	}
	if strings.Join(statuses, " ") != "500 302 200" {
		t.Fatalf("attempt statuses %v", statuses)
	}
	if msg := attempts[1].(map[string]any)["error"].(string); !strings.Contains(msg, "redirect") {
		t.Fatalf("a redirect's error should say it is not followed: %q", msg)
	}
	reqs := rc.requests()
	if len(reqs) != 3 || reqs[0].header.Get("webhook-id") != reqs[2].header.Get("webhook-id") || reqs[0].header.Get("webhook-id") != d["event_id"] {
		t.Fatalf("retries must carry the same webhook-id (the event id): %d requests", len(reqs))
	}
}

func TestWebhookPermanentFailure(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, fastWebhooks)
	rc := newReceiver(t, func(int) int { return http.StatusServiceUnavailable })
	failing := createWebhook(t, e.partner, map[string]any{"endpoint": rc.url(), "event_types": []string{"role.created"}})["id"].(string)
	// An endpoint nobody listens on: no status, an error.
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	refused := createWebhook(t, e.partner, map[string]any{"endpoint": closed.URL + "/x?token=secret-in-query", "event_types": []string{"role.created"}})["id"].(string)

	expect(t, e.partner.Do("POST", "/api/permissions/roles", map[string]any{"name": "Doomed", "actions": []string{}}), 200, "")
	for _, id := range []string{failing, refused} {
		servertest.Eventually(t, 10*time.Second, "the delivery fails for good", func() bool { return settled(deliveries(t, e.partner, id)) })
		d := deliveries(t, e.partner, id)[0]
		attempts := d["attempts"].([]any)
		if d["state"] != "failed" || d["attempt_count"] != 3.0 || len(attempts) != 3 || d["next_attempt_at"] != nil || d["delivered_at"] != nil {
			t.Fatalf("after MaxAttempts (3): %v", d)
		}
		for _, a := range attempts {
			a := a.(map[string]any)
			switch id {
			case failing:
				if a["status_code"] != 503.0 || !strings.Contains(a["error"].(string), "503") {
					t.Fatalf("attempt: %v", a)
				}
			case refused:
				if a["status_code"] != nil || a["error"] == "" || strings.Contains(a["error"].(string), "secret-in-query") {
					t.Fatalf("attempt on a closed port: %v", a)
				}
			}
		}
	}
	time.Sleep(200 * time.Millisecond) // no attempt after the last
	if n := len(rc.requests()); n != 3 {
		t.Fatalf("the receiver got %d requests, want exactly MaxAttempts = 3", n)
	}
}

func TestWebhookDisabled(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, fastWebhooks)
	rc := newReceiver(t, nil)
	id := createWebhook(t, e.partner, map[string]any{"endpoint": rc.url()})["id"].(string)
	servertest.Eventually(t, 5*time.Second, "webhook.created arrives", func() bool { return len(rc.requests()) == 1 })
	expect(t, e.partner.Do("POST", "/api/webhooks/"+id+"/disable", nil), 200, "")
	for i := range 5 {
		expect(t, e.partner.Do("POST", "/api/permissions/roles", map[string]any{"name": fmt.Sprint("Quiet ", i), "actions": []string{}}), 200, "")
	}
	time.Sleep(300 * time.Millisecond) // many polls
	if got := rc.eventTypes(); got != "webhook.created" {
		t.Fatalf("a disabled webhook received %v", got)
	}
	if n := len(deliveries(t, e.partner, id)); n != 1 {
		t.Fatalf("a disabled webhook queued deliveries: %d", n)
	}
	expect(t, e.partner.Do("POST", "/api/webhooks/"+id+"/enable", nil), 200, "")
	expect(t, e.partner.Do("POST", "/api/permissions/roles", map[string]any{"name": "Loud", "actions": []string{}}), 200, "")
	servertest.Eventually(t, 5*time.Second, "deliveries resume after enable", func() bool { return len(rc.requests()) == 3 })
	if got := rc.eventTypes(); got != "role.created webhook.created webhook.enabled" {
		t.Fatalf("received %s", got)
	}
}

// Deliveries pending when their webhook is disabled end as failed and are never sent, even
// after it is enabled again. The worker is off here, so they are surely pending.
func TestWebhookDisableEndsPendingDeliveries(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, func(c *server.Config) { fastWebhooks(c); c.Webhooks.Disabled = true })
	rc := newReceiver(t, nil)
	id := createWebhook(t, e.partner, map[string]any{"endpoint": rc.url()})["id"].(string)
	expect(t, e.partner.Do("POST", "/api/permissions/roles", map[string]any{"name": "Queued", "actions": []string{}}), 200, "")
	list := deliveries(t, e.partner, id)
	if len(list) != 2 || list[0]["state"] != "pending" || list[0]["next_attempt_at"] == nil || list[0]["attempt_count"] != 0.0 {
		t.Fatalf("queued deliveries: %v", list)
	}
	expect(t, e.partner.Do("POST", "/api/webhooks/"+id+"/disable", nil), 200, "")
	for _, d := range deliveries(t, e.partner, id) {
		if d["state"] != "failed" || d["next_attempt_at"] != nil || len(d["attempts"].([]any)) != 0 {
			t.Fatalf("a delivery pending at disable: %v", d)
		}
	}
	expect(t, e.partner.Do("POST", "/api/webhooks/"+id+"/enable", nil), 200, "")
	if list := deliveries(t, e.partner, id); len(list) != 3 || list[0]["event_type"] != "webhook.enabled" || list[0]["state"] != "pending" {
		t.Fatalf("after enable: %v", list)
	}
}

func TestWebhookEventTypesFilter(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, fastWebhooks)
	o := e.newOrg("Filter")
	users, everything := newReceiver(t, nil), newReceiver(t, nil)
	createWebhook(t, o.admin, map[string]any{"endpoint": users.url(), "event_types": []string{"user.created", "user.deleted"}})
	createWebhook(t, o.admin, map[string]any{"endpoint": everything.url(), "event_types": nil})
	uid := o.admin.Do("POST", "/api/organization/users", map[string]any{"email": "new@filter.test"}).Data()["id"].(string)
	expect(t, o.admin.Do("POST", "/api/datasets", map[string]any{"name": "Orders", "slug": "orders"}), 200, "")
	expect(t, o.admin.Do("DELETE", "/api/organization/users/"+uid, nil), 200, "")
	// Another organization's events never reach this organization's webhooks.
	other := e.newOrg("Elsewhere")
	expect(t, other.admin.Do("POST", "/api/datasets", map[string]any{"name": "Theirs", "slug": "theirs"}), 200, "")

	servertest.Eventually(t, 5*time.Second, "every delivery arrives", func() bool { return len(users.requests()) == 2 && len(everything.requests()) == 4 })
	time.Sleep(100 * time.Millisecond)
	if got := users.eventTypes(); got != "user.created user.deleted" {
		t.Fatalf("filtered webhook got %s", got)
	}
	// Its own webhook.created, not the first webhook's (it did not exist yet).
	if got := everything.eventTypes(); got != "dataset.created user.created user.deleted webhook.created" {
		t.Fatalf("unfiltered webhook got %s", got)
	}
}

func TestWebhookValidation(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, func(c *server.Config) { fastWebhooks(c); c.Webhooks.Disabled = true })
	rc := newReceiver(t, nil)
	good := rc.url()
	for _, tc := range []struct {
		name  string
		body  map[string]any
		field string
	}{
		{"no endpoint", map[string]any{}, "endpoint"},
		{"blank endpoint", map[string]any{"endpoint": "  "}, "endpoint"},
		{"relative", map[string]any{"endpoint": "/hook"}, "endpoint"},
		{"not a URL", map[string]any{"endpoint": "hooks example com"}, "endpoint"},
		{"ftp", map[string]any{"endpoint": "ftp://files.example.com/hook"}, "endpoint"},
		{"user info", map[string]any{"endpoint": strings.Replace(good, "http://", "http://user:pw@", 1)}, "endpoint"},
		{"fragment", map[string]any{"endpoint": good + "#frag"}, "endpoint"},
		{"too long", map[string]any{"endpoint": good + strings.Repeat("a", 2100)}, "endpoint"},
		{"unresolvable host", map[string]any{"endpoint": "https://no-such-host.invalid/hook"}, "endpoint"},
		{"plain secret with a control character", map[string]any{"endpoint": good, "secret": "plain\tsecret-with-a-tab"}, "secret"},
		{"plain secret too short", map[string]any{"endpoint": good, "secret": "short-secret"}, "secret"},
		{"secret too short", map[string]any{"endpoint": good, "secret": "whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 16))}, "secret"},
		{"secret too long", map[string]any{"endpoint": good, "secret": "whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 65))}, "secret"},
		{"secret not base64", map[string]any{"endpoint": good, "secret": "whsec_not*base64*at*all*not*base64*at*all"}, "secret"},
		{"empty secret", map[string]any{"endpoint": good, "secret": ""}, "secret"},
		{"unknown event type", map[string]any{"endpoint": good, "event_types": []string{"user.created", "user.exploded"}}, "event_types"},
	} {
		r := e.partner.Do("POST", "/api/webhooks", tc.body)
		expect(t, r, 400, "validation_failed")
		hasField(t, r, tc.field)
		if tc.name == "unresolvable host" && !strings.Contains(r.JSON()["metadata"].(map[string]any)["endpoint"].(string), "does not resolve") {
			t.Fatalf("an unresolvable host must say so: %s", r.Body)
		}
	}
	expect(t, e.partner.Do("POST", "/api/webhooks", map[string]any{"endpoint": good, "events": []string{}}), 400, "unknown_field")
	expect(t, e.partner.Do("POST", "/api/webhooks", nil), 400, "body_required")
	expect(t, e.partner.Do("POST", "/api/webhooks", "endpoint="+good, "Content-Type", "application/x-www-form-urlencoded"), 415, "unsupported_media_type")

	id := createWebhook(t, e.partner, map[string]any{"endpoint": good})["id"].(string)
	r := e.partner.Do("PUT", "/api/webhooks/"+id, map[string]any{"endpoint": "https://no-such-host.invalid/", "secret": "whsec_x"})
	expect(t, r, 400, "validation_failed")
	hasField(t, r, "endpoint")
	hasField(t, r, "secret")
	expect(t, e.partner.Do("PUT", "/api/webhooks/"+id, map[string]any{}), 400, "validation_failed")
	expect(t, e.partner.Do("GET", "/api/webhooks/not-a-uuid", nil), 404, "webhook_not_found")
	expect(t, e.partner.Do("GET", "/api/webhooks?limit=101", nil), 400, "validation_failed")
	// A refused update changed nothing.
	if got := e.partner.Do("GET", "/api/webhooks/"+id, nil).Data(); got["endpoint"] != good {
		t.Fatalf("a refused update changed the webhook: %v", got)
	}
}

// With private targets not allowed (the default), endpoints on the server's own networks are
// refused at creation and update, whether given as an address or as a name resolving to one.
func TestWebhookSSRFRefused(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, func(c *server.Config) { c.Webhooks = delivery.Config{Disabled: true} })
	for _, endpoint := range []string{
		"https://127.0.0.1/hook", "https://127.1.2.3:8443/hook", "https://10.0.0.1/hook", "https://172.16.5.4/hook",
		"https://192.168.1.1/hook", "https://169.254.169.254/latest/meta-data", "https://[::1]/hook", "https://[fe80::1]/hook",
		"https://[fd00::1]/hook", "https://100.64.0.1/hook", "https://0.0.0.0/hook", "https://[::]/hook", "https://224.0.0.1/hook",
		"https://[::ffff:127.0.0.1]/hook", "https://[64:ff9b::a9fe:a9fe]/hook", "https://localhost/hook", "https://localhost./hook",
		"https://[fe80::1%25eth0]/hook",
	} {
		r := e.partner.Do("POST", "/api/webhooks", map[string]any{"endpoint": endpoint})
		expect(t, r, 400, "validation_failed")
		msg := r.JSON()["metadata"].(map[string]any)["endpoint"].(string)
		if !strings.Contains(msg, "public addresses") {
			t.Fatalf("%s: the refusal should say why: %s", endpoint, msg)
		}
	}
	// Plain http is refused too when private targets are not allowed.
	r := e.partner.Do("POST", "/api/webhooks", map[string]any{"endpoint": "http://93.184.215.14/hook"})
	expect(t, r, 400, "validation_failed")
	if !strings.Contains(r.JSON()["metadata"].(map[string]any)["endpoint"].(string), "https") {
		t.Fatalf("http refusal: %s", r.Body)
	}
	// A public address is accepted (delivery is off here: nothing is sent to it), and may not
	// be changed to a private one.
	id := createWebhook(t, e.partner, map[string]any{"endpoint": "https://93.184.215.14/hook"})["id"].(string)
	expect(t, e.partner.Do("PUT", "/api/webhooks/"+id, map[string]any{"endpoint": "https://169.254.169.254/"}), 400, "validation_failed")
	if got := e.partner.Do("GET", "/api/webhooks/"+id, nil).Data()["endpoint"]; got != "https://93.184.215.14/hook" {
		t.Fatalf("endpoint after a refused update: %v", got)
	}
}

// IPv6 transition and special-purpose ranges that can carry, or reach, the server's own
// networks are refused too, at creation and update: IPv4-compatible (::/96), IPv4-mapped,
// NAT64 (the well-known prefix with a private IPv4 address, and the local-use 64:ff9b:1::/48),
// 6to4 (2002::/16), Teredo (2001::/32) and discard-only (100::/64). The operator's
// --webhook-allow-private still lets them through.
func TestWebhookSSRFTransitionRanges(t *testing.T) {
	t.Parallel()
	endpoints := []string{
		"https://[::127.0.0.1]/", "https://[::10.0.0.1]/hook", "https://[64:ff9b:1::a00:1]/", "https://[2002:7f00:1::]/",
		"https://[2002:a00:1::1]/hook", "https://[100::1]/", "https://[::ffff:127.0.0.1]/", "https://[::ffff:192.168.0.1]/",
		"https://[64:ff9b::a00:1]/", "https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",
	}
	// Delivery is off in both servers: nothing is ever sent to these addresses.
	strict := newEnvWith(t, func(c *server.Config) { c.Webhooks = delivery.Config{Disabled: true} })
	id := createWebhook(t, strict.partner, map[string]any{"endpoint": "https://93.184.215.14/hook"})["id"].(string)
	for _, endpoint := range endpoints {
		for _, call := range []struct{ method, path string }{{"POST", "/api/webhooks"}, {"PUT", "/api/webhooks/" + id}} {
			r := strict.partner.Do(call.method, call.path, map[string]any{"endpoint": endpoint})
			expect(t, r, 400, "validation_failed")
			msg, _ := r.JSON()["metadata"].(map[string]any)["endpoint"].(string)
			if !strings.Contains(msg, "webhooks may only reach public addresses") {
				t.Fatalf("%s %s: the refusal should say why: %q", call.method, endpoint, msg)
			}
		}
	}
	if got := strict.partner.Do("GET", "/api/webhooks/"+id, nil).Data()["endpoint"]; got != "https://93.184.215.14/hook" {
		t.Fatalf("endpoint after refused updates: %v", got)
	}
	// Public addresses written in IPv6 or through NAT64 stay accepted.
	for _, endpoint := range []string{"https://[2606:4700::1111]/hook", "https://[64:ff9b::808:808]/hook", "https://[::ffff:8.8.8.8]/hook"} {
		createWebhook(t, strict.partner, map[string]any{"endpoint": endpoint})
	}
	open := newEnvWith(t, func(c *server.Config) { c.Webhooks = delivery.Config{AllowPrivate: true, Disabled: true} })
	for _, endpoint := range endpoints {
		createWebhook(t, open.partner, map[string]any{"endpoint": endpoint})
	}
}

func TestWebhookAccess(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, func(c *server.Config) { fastWebhooks(c); c.Webhooks.Disabled = true })
	a, b := e.newOrg("Alpha"), e.newOrg("Beta")
	rc := newReceiver(t, nil)
	id := createWebhook(t, a.admin, map[string]any{"endpoint": rc.url()})["id"].(string)
	ownerHook := createWebhook(t, e.partner, map[string]any{"endpoint": rc.url()})["id"].(string)

	// Another organization's webhook does not exist for it.
	body := map[string]any{"endpoint": rc.url()}
	for _, call := range []struct {
		method, path string
		body         any
	}{
		{"GET", "/api/webhooks/" + id, nil}, {"PUT", "/api/webhooks/" + id, body}, {"DELETE", "/api/webhooks/" + id, nil},
		{"POST", "/api/webhooks/" + id + "/disable", nil}, {"POST", "/api/webhooks/" + id + "/enable", nil},
		{"GET", "/api/webhooks/" + id + "/deliveries", nil},
	} {
		for _, c := range []*servertest.Client{b.admin, e.partner} {
			expect(t, c.Do(call.method, call.path, call.body), 404, "webhook_not_found")
		}
		expect(t, a.admin.Do(call.method, "/api/webhooks/"+ownerHook+strings.TrimPrefix(call.path, "/api/webhooks/"+id), call.body), 404, "webhook_not_found")
	}
	for _, c := range []*servertest.Client{b.admin, e.partner} {
		for _, h := range c.Do("GET", "/api/webhooks", nil).List() {
			if h["id"] == id {
				t.Fatalf("another organization lists the webhook")
			}
		}
	}
	// Members read but do not write; asker keys do neither.
	expect(t, a.member.Do("GET", "/api/webhooks/"+id, nil), 200, "")
	expect(t, a.member.Do("GET", "/api/webhooks/"+id+"/deliveries", nil), 200, "")
	expect(t, a.member.Do("POST", "/api/webhooks", body), 403, "permission_denied")
	expect(t, a.member.Do("POST", "/api/webhooks/"+id+"/disable", nil), 403, "permission_denied")
	asker := a.admin.Do("POST", "/api/keys", map[string]any{"name": "asker", "kind": "organization", "role": "asker"}).Data()["value"].(string)
	expect(t, e.anon.As(asker).Do("GET", "/api/webhooks", nil), 403, "asker_not_allowed")
	expect(t, e.anon.Do("GET", "/api/webhooks", nil), 401, "missing_token")
	// The webhook is untouched.
	if got := a.admin.Do("GET", "/api/webhooks/"+id, nil).Data(); got["enabled"] != true {
		t.Fatalf("another organization changed the webhook: %v", got)
	}
}

// What Polytomic's clients send works: a plain-string secret and their own organization_id.
func TestWebhookPolytomicShape(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, func(c *server.Config) { c.Webhooks.Disabled = true })
	o := e.newOrg("Acme")
	ok := o.admin.Do("POST", "/api/webhooks", map[string]any{"endpoint": "https://93.184.215.14/hook",
		"secret": "a-plain-shared-secret", "organization_id": o.id})
	expect(t, ok, 200, "")
	// Polytomic's clients read disabled, not enabled.
	id := ok.Data()["id"].(string)
	for _, step := range []struct {
		method, path string
		disabled     bool
	}{{"GET", "", false}, {"POST", "/disable", true}, {"GET", "", true}, {"POST", "/enable", false}} {
		r := o.admin.Do(step.method, "/api/webhooks/"+id+step.path, nil)
		if expect(t, r, 200, ""); r.Data()["disabled"] != step.disabled || r.Data()["enabled"] != !step.disabled {
			t.Fatalf("%s %s: want disabled %v (and enabled the opposite): %s", step.method, step.path, step.disabled, r.Body)
		}
	}
	if ok.Data()["disabled"] != false {
		t.Fatalf("a new webhook is not disabled: %s", ok.Body)
	}
	expect(t, o.admin.Do("POST", "/api/webhooks", map[string]any{"endpoint": "https://93.184.215.14/hook",
		"organization_id": e.ownerID}), 404, "organization_not_found")
	expect(t, o.admin.Do("POST", "/api/webhooks", map[string]any{"endpoint": "https://93.184.215.14/hook",
		"secret": "short"}), 400, "validation_failed")
}

// A committed change that queues deliveries wakes the delivery worker: the receiver hears of it
// at once, long before the next poll (an hour away here).
func TestWebhookSentOnCommit(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, func(c *server.Config) {
		fastWebhooks(c)
		c.Webhooks.PollInterval = time.Hour
	})
	o := e.newOrg("Prompt")
	rc := newReceiver(t, nil)
	createWebhook(t, o.admin, map[string]any{"endpoint": rc.url(), "event_types": []string{"dataset.created"}})
	start := time.Now()
	expect(t, o.admin.Do("POST", "/api/datasets", map[string]any{"name": "Orders", "slug": "orders"}), 200, "")
	servertest.Eventually(t, 10*time.Second, "the delivery arrives without waiting for a poll", func() bool { return len(rc.requests()) == 1 })
	t.Logf("delivered %s after the change's response", time.Since(start).Round(time.Millisecond))
}
