package server_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestProvision(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	body := map[string]any{
		"organization": map[string]any{"name": "Customer One", "sso_domain": "one.test"},
		"user":         map[string]any{"email": "root@one.test", "role": "admin"},
		"key":          map[string]any{},
	}
	r := e.partner.Do("POST", "/api/provision", body, "Idempotency-Key", "provision-customer-one")
	expect(t, r, 200, "")
	d := r.Data()
	org, user, key := d["organization"].(map[string]any), d["user"].(map[string]any), d["key"].(map[string]any)
	if org["name"] != "Customer One" || user["organization_id"] != org["id"] || user["role"] != "admin" ||
		!strings.HasPrefix(key["value"].(string), "tuk_") || r.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("provisioned: %s", r.Body)
	}
	me := e.anon.As(key["value"].(string)).Do("GET", "/api/me", nil).Data()
	if me["email"] != "root@one.test" || me["organization_id"] != org["id"] {
		t.Fatalf("the provisioned key: %v", me)
	}
	// A blind retry replays; nothing is created twice.
	again := e.partner.Do("POST", "/api/provision", body, "Idempotency-Key", "provision-customer-one")
	if string(again.Body) != string(r.Body) || again.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("retry: %s", again.Body)
	}
	// Validation names fields by their place in the body, and leaves nothing behind.
	bad := e.partner.Do("POST", "/api/provision", map[string]any{"organization": map[string]any{"name": "Two"}, "user": map[string]any{"email": "nope"}})
	expect(t, bad, 400, "validation_failed")
	if _, ok := bad.JSON()["metadata"].(map[string]any)["user.email"]; !ok {
		t.Fatalf("metadata must name user.email: %s", bad.Body)
	}
	expect(t, e.partner.Do("POST", "/api/provision", map[string]any{"organization": map[string]any{"name": "Three"}}), 400, "validation_failed")
	expect(t, e.partner.Do("POST", "/api/provision", map[string]any{"organization": map[string]any{"name": "Customer One"},
		"user": map[string]any{"email": "x@one.test"}}), 409, "organization_name_taken")
	var orgs int
	e.db.Get(&orgs, `SELECT COUNT(*) FROM organizations WHERE name IN ('Two', 'Three')`)
	if orgs != 0 {
		t.Fatalf("a failed provisioning left %d organizations", orgs)
	}
}

// A failure after any step leaves nothing behind: no organization, user, key or event.
func TestProvisionIsAllOrNothing(t *testing.T) {
	t.Parallel()
	for _, step := range []string{"organization", "user", "key"} {
		t.Run("fail after "+step, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.srv.SetProvisionFault(func(s string) error {
				if s == step {
					return errors.New("injected failure")
				}
				return nil
			})
			count := func() string {
				var o, u, k, ev int
				e.db.Get(&o, `SELECT COUNT(*) FROM organizations`)
				e.db.Get(&u, `SELECT COUNT(*) FROM users`)
				e.db.Get(&k, `SELECT COUNT(*) FROM api_keys`)
				e.db.Get(&ev, `SELECT COUNT(*) FROM events`)
				return fmt.Sprint(o, u, k, ev)
			}
			before := count()
			r := e.partner.Do("POST", "/api/provision", map[string]any{"organization": map[string]any{"name": "Doomed"},
				"user": map[string]any{"email": "root@doomed.test"}}, "Idempotency-Key", "doomed-provision-1")
			expect(t, r, 500, "internal_error")
			if after := count(); after != before {
				t.Fatalf("organizations, users, keys, events: %s before, %s after a failure after %s", before, after, step)
			}
			// The failure was not recorded as the key's answer: a retry runs again.
			expect(t, e.partner.Do("POST", "/api/provision", map[string]any{"organization": map[string]any{"name": "Doomed"},
				"user": map[string]any{"email": "root@doomed.test"}}, "Idempotency-Key", "doomed-provision-1"), 500, "internal_error")
		})
	}
}
