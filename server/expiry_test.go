package server_test

import (
	"context"
	"encoding/json"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenantry/tenantry/server/servertest"
)

// Expiry warnings come 7 days and 1 day before a key's expires_at, each once per key and
// threshold, from whichever replica looks first, and reach webhooks like any event. The
// clock is the servers' own, moved on; nothing sleeps until a day has passed.
func TestExpiryWarnings(t *testing.T) {
	t.Parallel()
	a, b := twoServers(t, fastWebhooks) // either replica may deliver what either queued

	o := a.newOrg("Expiring")
	rc := newReceiver(t, nil)
	createWebhook(t, o.admin, map[string]any{"endpoint": rc.url(), "event_types": []string{"api_key.expiring"}})
	at := func(d time.Duration) string { return a.clock.now().Add(d).UTC().Format(time.RFC3339) }
	for name, life := range map[string]time.Duration{"ten days": 10 * 24 * time.Hour, "three days": 3 * 24 * time.Hour, "twelve hours": 12 * time.Hour} {
		expect(t, o.admin.Do("POST", "/api/keys", map[string]any{"name": name, "expires_at": at(life)}), 200, "")
	}
	expect(t, o.admin.Do("POST", "/api/keys", map[string]any{"name": "forever"}), 200, "")
	expect(t, o.admin.Do("POST", "/api/keys", map[string]any{"name": "revoked", "expires_at": at(5 * 24 * time.Hour)}), 200, "")
	revoked := o.admin.Do("GET", "/api/keys?limit=100", nil).List()
	for _, k := range revoked {
		if k["name"] == "revoked" {
			expect(t, o.admin.Do("DELETE", "/api/keys/"+k["id"].(string), nil), 200, "")
		}
	}
	expect(t, a.partner.Do("POST", "/api/partner/keys", map[string]any{"name": "expiring partner key", "expires_at": at(9 * 24 * time.Hour)}), 200, "")

	ctx := context.Background()
	// warnings lists the expiry warnings recorded so far, as "type key threshold", sorted.
	warnings := func() string {
		var rows []struct {
			Type  string `db:"type"`
			Data  string `db:"data"`
			Actor string `db:"actor"`
		}
		if err := a.db.Select(&rows, `SELECT type, data, actor FROM events WHERE type LIKE '%.expiring'`); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range rows {
			var d struct {
				ID        string `json:"id"`
				Name      string `json:"name"`
				Threshold int    `json:"threshold_days"`
				Value     string `json:"value"`
			}
			json.Unmarshal([]byte(r.Data), &d)
			if d.Value != "" || !strings.Contains(r.Actor, `"system"`) {
				t.Fatalf("a warning shows a key value or is not the system's: %s %s", r.Data, r.Actor)
			}
			out = append(out, r.Type+" "+d.Name+" "+string(rune('0'+d.Threshold)))
		}
		sort.Strings(out)
		return strings.Join(out, ", ")
	}
	both := func() { // at once, as two replicas' sweepers may
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); a.srv.Sweep(ctx) }()
		go func() { defer wg.Done(); b.srv.Sweep(ctx) }()
		wg.Wait()
	}

	both()
	if got := warnings(); got != "" {
		t.Fatalf("no key is due a warning yet (the three-day and twelve-hour keys never lived 7 days): %s", got)
	}
	steps := []struct {
		at   time.Duration
		want string
	}{
		// Day 2.5: the three-day key is within a day (its only warning); the partner key within 7.
		{60 * time.Hour, "api_key.expiring three days 1, partner_key.expiring expiring partner key 7"},
		// Day 3.5: the ten-day key is within 7 days.
		{84 * time.Hour, "api_key.expiring ten days 7"},
		// Day 9.5: the ten-day key is within a day; the partner key expired at day 9.
		{228 * time.Hour, "api_key.expiring ten days 1"},
	}
	var all []string
	elapsed := time.Duration(0)
	for _, step := range steps {
		a.clock.advance(step.at - elapsed)
		elapsed = step.at
		both()
		both() // again, and on the other replica: nothing is sent twice
		all = append(all, strings.Split(step.want, ", ")...)
		sort.Strings(all)
		if got, want := warnings(), strings.Join(all, ", "); got != want {
			t.Fatalf("after %v: %q, want %q", step.at, got, want)
		}
	}
	// The organization's webhook heard its three warnings (the partner key's belongs to the
	// partner's owner organization).
	servertest.Eventually(t, 10*time.Second, "three api_key.expiring deliveries", func() bool {
		return rc.eventTypes() == "api_key.expiring api_key.expiring api_key.expiring"
	})
}
