package server_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tenantry/tenantry/server"
	"github.com/tenantry/tenantry/server/servertest"
)

// A value found secret when it is stored stays secret: an update that changes the neighbour
// that made it secret (a header's name) and leaves the value out keeps it, hidden, from the
// caller, asker keys, events and webhook payloads. With secrets sealed at rest and without.
func TestConnectionSecretDecidedWhenStored(t *testing.T) {
	t.Parallel()
	for _, sealed := range []bool{true, false} {
		t.Run(map[bool]string{true: "sealed", false: "unsealed"}[sealed], func(t *testing.T) {
			t.Parallel()
			e := newEnvWith(t, func(c *server.Config) {
				fastWebhooks(c)
				if !sealed {
					c.Sealer = nil
				}
			})
			rc := newReceiver(t, nil)
			org := e.createOrg(e.partner, "Acme")
			admin := e.resourceKey(org, "root@acme.test", "admin")
			member := e.resourceKey(org, "bob@acme.test", "user")
			createWebhook(t, admin, map[string]any{"endpoint": rc.url(), "event_types": []string{"connection.created", "connection.updated"}})
			asker := e.anon.As(admin.Do("POST", "/api/keys", map[string]any{"name": "widget", "kind": "organization", "role": "asker"}).Data()["value"].(string))

			created := member.Do("POST", "/api/connections", map[string]any{"name": "API", "type": "http",
				"configuration": map[string]any{"hdr": map[string]any{"name": "Authorization", "value": "S3CRET"}}})
			expect(t, created, 200, "")
			id := created.Data()["id"].(string)
			put := member.Do("PUT", "/api/connections/"+id, map[string]any{"name": "API", "type": "http",
				"configuration": map[string]any{"hdr": map[string]any{"name": "Accept"}}})
			expect(t, put, 200, "")
			if !reflect.DeepEqual(put.Data()["configuration"], map[string]any{"hdr": map[string]any{"name": "Accept"}}) ||
				!reflect.DeepEqual(secretFields(put.Data()), []string{"hdr.value"}) {
				t.Fatalf("the kept value must stay a named, hidden secret: %s", put.Body)
			}
			if v := e.storedConfiguration(id)["hdr"].(map[string]any)["value"]; v != "S3CRET" {
				t.Fatalf("the value left out must be kept: %v", v)
			}
			servertest.Eventually(t, 5*time.Second, "both connection events are delivered", func() bool { return len(rc.requests()) == 2 })
			seen := []*servertest.Response{put, created,
				member.Do("GET", "/api/connections/"+id, nil), member.Do("GET", "/api/connections", nil),
				asker.Do("GET", "/api/connections/"+id, nil), asker.Do("GET", "/api/connections", nil),
				admin.Do("GET", "/api/events?limit=100", nil), e.partner.Do("GET", "/api/events?limit=100", nil)}
			for _, r := range seen {
				expect(t, r, 200, "")
				if strings.Contains(string(r.Body), "S3CRET") {
					t.Fatalf("a response reveals the secret: %s", r.Body)
				}
			}
			for _, r := range rc.requests() {
				if strings.Contains(string(r.body), "S3CRET") {
					t.Fatalf("a webhook payload reveals the secret: %s", r.body)
				}
			}
			// A value given again is decided afresh: under a harmless name it is plain, and
			// null removes a secret.
			put = member.Do("PUT", "/api/connections/"+id, map[string]any{"name": "API", "type": "http",
				"configuration": map[string]any{"hdr": map[string]any{"name": "Accept", "value": "text/csv"}, "token": "t-1"}})
			expect(t, put, 200, "")
			if !reflect.DeepEqual(put.Data()["configuration"], map[string]any{"hdr": map[string]any{"name": "Accept", "value": "text/csv"}}) ||
				!reflect.DeepEqual(secretFields(put.Data()), []string{"token"}) {
				t.Fatalf("a value given replaces the secret: %s", put.Body)
			}
			put = member.Do("PUT", "/api/connections/"+id, map[string]any{"name": "API", "type": "http",
				"configuration": map[string]any{"token": nil}})
			expect(t, put, 200, "")
			if len(secretFields(put.Data())) != 0 || len(e.storedConfiguration(id)) != 0 {
				t.Fatalf("null removes a secret: %s", put.Body)
			}
		})
	}
}

// The name/value rule reads field names as every secret rule does (case, width and separators
// aside): {"Name": "Authorization", "Value": ...} is a secret as {"name": ..., "value": ...} is.
// And a configuration column that holds a secret anyway (written by an earlier release during a
// rolling upgrade, say) never shows it.
func TestConnectionSecretNamesNormalised(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	org := e.createOrg(e.partner, "Acme")
	admin := e.resourceKey(org, "root@acme.test", "admin")
	r := admin.Do("POST", "/api/connections", map[string]any{"name": "API", "type": "http", "configuration": map[string]any{
		"headers": map[string]any{"Name": "Authorization", "Value": "S3CRET-A"},
		"hdr":     map[string]any{"HEADER": "X-Api-Key", "VALUE": "S3CRET-B"},
		"pair":    map[string]any{"NAME": "Accept", "Value": "text/csv"}}})
	expect(t, r, 200, "")
	if strings.Contains(string(r.Body), "S3CRET") || !reflect.DeepEqual(secretFields(r.Data()), []string{"hdr.VALUE", "headers.Value"}) ||
		!strings.Contains(string(r.Body), "text/csv") {
		t.Fatalf("name/value pairs whatever their case: %s", r.Body)
	}
	id := r.Data()["id"].(string)
	if _, err := e.db.Exec(e.db.Rebind(`UPDATE connections SET configuration = ?, secrets = '' WHERE id = ?`),
		`{"host":"db","password":"OLD-RELEASE-PW"}`, id); err != nil {
		t.Fatal(err)
	}
	for _, got := range []*servertest.Response{admin.Do("GET", "/api/connections/"+id, nil), admin.Do("GET", "/api/connections", nil)} {
		expect(t, got, 200, "")
		if strings.Contains(string(got.Body), "OLD-RELEASE-PW") || !strings.Contains(string(got.Body), `"secret_fields":["password"]`) {
			t.Fatalf("a secret in the configuration column: %s", got.Body)
		}
	}
	// An update keeps it, apart now.
	expect(t, admin.Do("PUT", "/api/connections/"+id, map[string]any{"name": "API", "type": "http", "configuration": map[string]any{"host": "db2"}}), 200, "")
	if e.storedConfiguration(id)["password"] != "OLD-RELEASE-PW" || strings.Contains(string(e.opened("connections", "configuration", id)), "OLD-RELEASE-PW") {
		t.Fatalf("the update must keep the secret, kept apart")
	}
}
