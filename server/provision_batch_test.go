package server_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func batchItem(name, email string) map[string]any {
	return map[string]any{"organization": map[string]any{"name": name}, "user": map[string]any{"email": email, "role": "admin"}}
}

// Each item of a batch is all or nothing on its own: refused items leave nothing behind, the
// others are created and their keys work; the answer lists every item in order.
func TestProvisionBatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createOrg(e.partner, "Taken Already")
	var eventsBefore int
	e.db.Get(&eventsBefore, `SELECT COUNT(*) FROM events WHERE type = 'organization.created'`)
	items := []any{
		batchItem("Batch One", "root@one.test"),
		batchItem("Batch Two", "not-an-email"),        // the organization is created, then the user refused
		batchItem("Taken Already", "root@taken.test"), // the name is taken
		batchItem("Batch One", "again@one.test"),      // taken by item 0 of this very batch
		map[string]any{"organization": map[string]any{"name": "No User"}},
		batchItem("Batch Six", "root@six.test"),
	}
	r := e.partner.Do("POST", "/api/provision/batch", map[string]any{"items": items})
	expect(t, r, 200, "")
	if r.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("a batch carries keys: Cache-Control %q", r.Header.Get("Cache-Control"))
	}
	results := r.JSON()["data"].([]any)
	if len(results) != len(items) {
		t.Fatalf("%d results for %d items: %s", len(results), len(items), r.Body)
	}
	want := []struct {
		status int
		key    string
	}{{200, ""}, {400, "validation_failed"}, {409, "organization_name_taken"}, {409, "organization_name_taken"}, {400, "validation_failed"}, {200, ""}}
	for i, w := range want {
		res := results[i].(map[string]any)
		if int(res["index"].(float64)) != i || int(res["status"].(float64)) != w.status {
			t.Fatalf("item %d: %v, want status %d", i, res, w.status)
		}
		if w.status != 200 {
			errBody := res["error"].(map[string]any)
			if errBody["key"] != w.key || int(errBody["status"].(float64)) != w.status || errBody["message"] == "" || res["data"] != nil {
				t.Fatalf("item %d: error %v, want %s", i, res, w.key)
			}
			continue
		}
		data := res["data"].(map[string]any)
		key := data["key"].(map[string]any)["value"].(string)
		me := e.anon.As(key).Do("GET", "/api/me", nil).Data()
		if me["organization_id"] != data["organization"].(map[string]any)["id"] || res["error"] != nil {
			t.Fatalf("item %d: its key authenticates as %v", i, me)
		}
	}
	if md := results[1].(map[string]any)["error"].(map[string]any)["metadata"].(map[string]any); md["user.email"] == nil {
		t.Fatalf("item 1's error names its field as a provisioning would: %v", md)
	}
	if md := results[4].(map[string]any)["error"].(map[string]any)["metadata"].(map[string]any); md["user"] == nil {
		t.Fatalf("item 4's error names the missing user: %v", md)
	}
	// Nothing of a refused item is left: item 1's organization was created before its user
	// was refused, and is gone with it.
	var orgs, events int
	e.db.Get(&orgs, e.db.Rebind(`SELECT COUNT(*) FROM organizations WHERE name IN (?, ?)`), "Batch Two", "No User")
	e.db.Get(&events, `SELECT COUNT(*) FROM events WHERE type = 'organization.created'`)
	if orgs != 0 || events-eventsBefore != 2 { // Batch One, Batch Six
		t.Fatalf("refused items left %d organizations; %d organization.created events, want 2", orgs, events-eventsBefore)
	}
}

// A batch refuses as a whole what is wrong with the batch itself, and changes nothing.
func TestProvisionBatchRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tooMany := make([]any, 101)
	for i := range tooMany {
		tooMany[i] = batchItem(fmt.Sprintf("Many %d", i), fmt.Sprintf("root@many%d.test", i))
	}
	for name, body := range map[string]any{
		"no items":       map[string]any{},
		"empty":          map[string]any{"items": []any{}},
		"101 items":      map[string]any{"items": tooMany},
		"not a list":     map[string]any{"items": "x"},
		"unknown field":  map[string]any{"items": []any{batchItem("U", "u@u.test")}, "atomic": true},
		"unknown inside": map[string]any{"items": []any{map[string]any{"organization": map[string]any{"name": "U", "nmae": "x"}}}},
	} {
		r := e.partner.Do("POST", "/api/provision/batch", body)
		if r.Status != 400 {
			t.Errorf("%s: %d %s, want 400", name, r.Status, r.Body)
		}
	}
	var orgs int
	e.db.Get(&orgs, `SELECT COUNT(*) FROM organizations WHERE NOT is_owner`)
	if orgs != 0 {
		t.Fatalf("refused batches created %d organizations", orgs)
	}
	// Partners only, and no tokens: a batch mints keys.
	org := e.createOrg(e.partner, "Acme")
	userKey := e.mintKey(e.partner, org, e.createUser(e.partner, org, "admin@acme.test", "admin"))
	one := map[string]any{"items": []any{batchItem("By A User", "root@byuser.test")}}
	expect(t, e.anon.As(userKey).Do("POST", "/api/provision/batch", one), 403, "partner_key_required")
	tok := e.partner.Do("POST", "/api/auth/tokens", map[string]any{}).Data()["token"].(string)
	expect(t, e.anon.As(tok).Do("POST", "/api/provision/batch", one), 403, "token_not_allowed")
	var orgs2 int
	e.db.Get(&orgs2, `SELECT COUNT(*) FROM organizations WHERE name = 'By A User'`)
	if orgs2 != 0 {
		t.Fatal("a refused caller's batch created an organization")
	}
}

// A failure that is no item's refusal (here injected after item 1's user) undoes the whole
// batch, items before it included, and is a 500; with an Idempotency-Key a retry runs again,
// and then replays the one answer.
func TestProvisionBatchIsWholeOnFailure(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	fail := true
	e.srv.SetProvisionFault(func(step string) error {
		if fail && step == "1/user" {
			return errors.New("injected failure")
		}
		return nil
	})
	body := map[string]any{"items": []any{batchItem("Whole One", "root@w1.test"), batchItem("Whole Two", "root@w2.test")}}
	expect(t, e.partner.Do("POST", "/api/provision/batch", body, "Idempotency-Key", "batch-whole-1"), 500, "internal_error")
	var orgs int
	e.db.Get(&orgs, `SELECT COUNT(*) FROM organizations WHERE name LIKE 'Whole%'`)
	if orgs != 0 {
		t.Fatalf("a failed batch left %d organizations", orgs)
	}
	fail = false
	first := e.partner.Do("POST", "/api/provision/batch", body, "Idempotency-Key", "batch-whole-1")
	expect(t, first, 200, "")
	again := e.partner.Do("POST", "/api/provision/batch", body, "Idempotency-Key", "batch-whole-1")
	if string(again.Body) != string(first.Body) || again.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("the retry of a batch: %s", again.Body)
	}
	e.db.Get(&orgs, `SELECT COUNT(*) FROM organizations WHERE name LIKE 'Whole%'`)
	if orgs != 2 || !strings.Contains(string(first.Body), `"tuk_`) {
		t.Fatalf("%d organizations after a batch and its replay: %s", orgs, first.Body)
	}
}
