package server_test

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestEvents(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	o := e.newOrg("Acme")
	conn := o.admin.Do("POST", "/api/connections", map[string]any{"name": "DB", "type": "postgresql",
		"configuration": map[string]any{"password": "hunter2"}}).Data()["id"].(string)
	o.admin.Do("PUT", "/api/connections/"+conn, map[string]any{"name": "DB2", "type": "postgresql"})
	k := o.admin.Do("POST", "/api/keys", map[string]any{"name": "ci"})
	o.admin.Do("POST", "/api/keys/"+k.Data()["id"].(string)+"/rotate", nil)
	o.admin.Do("DELETE", "/api/keys/"+k.Data()["id"].(string), nil)

	list := o.admin.Do("GET", "/api/events?limit=100", nil)
	expect(t, list, 200, "")
	var types []string
	for _, ev := range list.List() {
		types = append(types, ev["type"].(string))
		if ev["organization_id"] != o.id || ev["actor"] == nil || ev["event"] == nil {
			t.Fatalf("event: %v", ev)
		}
	}
	got := strings.Join(types, " ")
	for _, want := range []string{"organization.created", "user.created", "api_key.created", "connection.created",
		"connection.updated", "api_key.rotated", "api_key.revoked"} {
		if !strings.Contains(got, want) {
			t.Fatalf("events lack %s: %s", want, got)
		}
	}
	if types[0] != "api_key.revoked" {
		t.Fatalf("events are newest first: %s", got)
	}
	// Events never carry secrets: not connection passwords, not key values.
	if strings.Contains(string(list.Body), "hunter2") || strings.Contains(string(list.Body), k.Data()["value"].(string)) {
		t.Fatalf("an event holds a secret")
	}
	rotated := o.admin.Do("GET", "/api/events?type=api_key.rotated", nil).List()
	if len(rotated) != 1 || rotated[0]["actor"].(map[string]any)["user_id"] != o.adminID {
		t.Fatalf("filtered events: %v", rotated)
	}
	// Paging: two at a time, no repeats, newest first.
	seen := map[string]bool{}
	next := ""
	for pages := 0; pages < 20; pages++ {
		r := o.admin.Do("GET", "/api/events?limit=2&page_token="+next, nil)
		expect(t, r, 200, "")
		for _, ev := range r.List() {
			if seen[ev["id"].(string)] {
				t.Fatalf("event %s on two pages", ev["id"])
			}
			seen[ev["id"].(string)] = true
		}
		if next = r.JSON()["pagination"].(map[string]any)["next_page_token"].(string); next == "" {
			break
		}
	}
	if len(seen) != len(types) {
		t.Fatalf("paged through %d events, the full list has %d", len(seen), len(types))
	}
	before := o.admin.Do("GET", "/api/events?ending_before="+list.List()[3]["id"].(string), nil).List()
	if len(before) != 3 || before[0]["id"] != list.List()[0]["id"] {
		t.Fatalf("ending_before must give the newer events: %d", len(before))
	}
	after := o.admin.Do("GET", "/api/events?limit=1&starting_after="+list.List()[0]["id"].(string), nil).List()
	if len(after) != 1 || after[0]["id"] != list.List()[1]["id"] {
		t.Fatalf("starting_after must give the older events")
	}

	// A partner sees all its organizations' events, and can narrow to one.
	all := e.partner.Do("GET", "/api/events?limit=100", nil).List()
	narrowed := e.partner.Do("GET", "/api/events?limit=100&organization_id="+o.id, nil).List()
	if len(all) <= len(narrowed) || len(narrowed) != len(types) {
		t.Fatalf("partner events: %d in all, %d for the organization (which has %d)", len(all), len(narrowed), len(types))
	}
	// Another organization's filter yields nothing for an organization credential.
	if n := len(o.admin.Do("GET", "/api/events?organization_id="+e.ownerID, nil).List()); n != 0 {
		t.Fatalf("an organization credential saw %d events of another organization", n)
	}
	for _, bad := range []string{"type=nope", "limit=0", "limit=101", "starting_after=x", "page_token=zz"} {
		expect(t, o.admin.Do("GET", "/api/events?"+bad, nil), 400, "validation_failed")
	}
	types2 := o.admin.Do("GET", "/api/events_types", nil)
	expect(t, types2, 200, "")
	if !strings.Contains(string(types2.Body), `"webhook.disabled"`) {
		t.Fatalf("event types: %s", types2.Body)
	}
}

// Polytomic's clients send starting_after and ending_before as times, not event ids: the events
// created strictly after, or before, that time, still newest first and paged by page_token.
func TestEventsByTimeAsPolytomicSendsThem(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	o := e.newOrg("Acme")
	for _, name := range []string{"A", "B", "C", "D"} {
		expect(t, o.admin.Do("POST", "/api/connections", map[string]any{"name": name, "type": "pg"}), 200, "")
	}
	all := o.admin.Do("GET", "/api/events?limit=100", nil).List()
	if len(all) < 6 {
		t.Fatalf("want at least 6 events, have %d", len(all))
	}
	createdAt := func(ev map[string]any) time.Time {
		at, err := time.Parse(time.RFC3339, ev["created_at"].(string))
		if err != nil {
			t.Fatal(err)
		}
		return at
	}
	ids := func(list []map[string]any) string {
		var out []string
		for _, ev := range list {
			out = append(out, ev["id"].(string))
		}
		return strings.Join(out, " ")
	}
	// want is the full list's events that keep, in its order (newest first).
	want := func(keep func(time.Time) bool) string {
		var out []map[string]any
		for _, ev := range all {
			if keep(createdAt(ev)) {
				out = append(out, ev)
			}
		}
		return ids(out)
	}
	mid := createdAt(all[len(all)/2])
	q := func(name string, at time.Time) string {
		return name + "=" + url.QueryEscape(at.Format(time.RFC3339Nano))
	}
	cases := []struct {
		name, query, want string
	}{
		{"starting_after a time: newer events", q("starting_after", mid), want(func(at time.Time) bool { return at.After(mid) })},
		{"ending_before a time: older events", q("ending_before", mid), want(func(at time.Time) bool { return at.Before(mid) })},
		{"both: the window", q("starting_after", createdAt(all[len(all)-1])) + "&" + q("ending_before", createdAt(all[0])),
			want(func(at time.Time) bool { return at.After(createdAt(all[len(all)-1])) && at.Before(createdAt(all[0])) })},
		{"milliseconds, as the SDK sends a Date", "starting_after=2000-01-01T00:00:00.000Z", ids(all)},
		{"a time after every event", q("starting_after", time.Now().Add(time.Hour)), ""},
	}
	for _, tc := range cases {
		r := o.admin.Do("GET", "/api/events?limit=100&"+tc.query, nil)
		expect(t, r, 200, "")
		if got := ids(r.List()); got != tc.want {
			t.Fatalf("%s (%s):\n got %s\nwant %s", tc.name, tc.query, got, tc.want)
		}
	}
	if want(func(at time.Time) bool { return at.After(mid) }) == "" || want(func(at time.Time) bool { return at.Before(mid) }) == "" {
		t.Fatal("the middle event must have events on both sides")
	}
	// Paged by page_token within a time window: every event after the time, once each.
	oldest := createdAt(all[len(all)-1])
	var paged []map[string]any
	next := ""
	for range 20 {
		r := o.admin.Do("GET", "/api/events?limit=2&"+q("starting_after", oldest)+"&page_token="+next, nil)
		expect(t, r, 200, "")
		paged = append(paged, r.List()...)
		if next = r.JSON()["pagination"].(map[string]any)["next_page_token"].(string); next == "" {
			break
		}
	}
	if got, want := ids(paged), want(func(at time.Time) bool { return at.After(oldest) }); got != want || len(paged) < 5 {
		t.Fatalf("paged through a time window:\n got %s\nwant %s", got, want)
	}
	for _, bad := range []string{"starting_after=yesterday", "ending_before=2026-12-01"} {
		r := o.admin.Do("GET", "/api/events?"+bad, nil)
		expect(t, r, 400, "validation_failed")
		hasField(t, r, strings.Split(bad, "=")[0])
	}
}
