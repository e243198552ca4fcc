package server_test

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

// Each command answers exactly as its REST twin: same status, same body (ids and times of
// objects created by the call aside).
func TestCommandsMatchREST(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	o := e.newOrg("Acme")
	conn := o.admin.Do("POST", "/api/connections", map[string]any{"name": "DB", "type": "postgresql"}).Data()["id"].(string)
	data := o.admin.Do("POST", "/api/datasets", map[string]any{"name": "Orders", "slug": "orders"}).Data()["id"].(string)
	role := o.admin.Do("POST", "/api/permissions/roles", map[string]any{"name": "R", "actions": []string{}}).Data()["id"].(string)
	policy := o.admin.Do("POST", "/api/permissions/policies", map[string]any{"name": "P",
		"policy_actions": []map[string]any{{"action": "datasets:read", "role_ids": []string{role}}}}).Data()["id"].(string)
	keyID := o.admin.Do("GET", "/api/me", nil).Data()["key_id"].(string)

	type twin struct {
		command string
		params  map[string]any
		method  string
		path    string
		body    any
	}
	reads := []twin{
		{"get_identity", nil, "GET", "/api/me", nil},
		{"list_versions", nil, "GET", "/api/versions", nil},
		{"get_current_organization", nil, "GET", "/api/organization", nil},
		{"list_roles", nil, "GET", "/api/permissions/roles", nil},
		{"get_role", map[string]any{"id": role}, "GET", "/api/permissions/roles/" + role, nil},
		{"list_policies", nil, "GET", "/api/permissions/policies", nil},
		{"get_policy", map[string]any{"id": policy}, "GET", "/api/permissions/policies/" + policy, nil},
		{"list_keys", map[string]any{"limit": 2}, "GET", "/api/keys?limit=2", nil},
		{"get_key", map[string]any{"id": keyID}, "GET", "/api/keys/" + keyID, nil},
		{"list_connections", nil, "GET", "/api/connections", nil},
		{"get_connection", map[string]any{"id": conn}, "GET", "/api/connections/" + conn, nil},
		{"list_datasets", nil, "GET", "/api/datasets", nil},
		{"get_dataset", map[string]any{"id": data}, "GET", "/api/datasets/" + data, nil},
		{"list_events", map[string]any{"type": "dataset.created"}, "GET", "/api/events?type=dataset.created", nil},
		{"get_connection", map[string]any{"id": "00000000-0000-0000-0000-000000000000"}, "GET", "/api/connections/00000000-0000-0000-0000-000000000000", nil},
	}
	partnerReads := []twin{
		{"list_organizations", nil, "GET", "/api/organizations", nil},
		{"get_organization", map[string]any{"id": o.id}, "GET", "/api/organizations/" + o.id, nil},
		{"list_users", map[string]any{"organization_id": o.id}, "GET", "/api/organizations/" + o.id + "/users", nil},
		{"get_user", map[string]any{"organization_id": o.id, "id": o.memberID}, "GET", "/api/organizations/" + o.id + "/users/" + o.memberID, nil},
	}
	check := func(label string, viaCommand, viaREST []byte, sc, sr int) {
		t.Helper()
		if sc != sr || !bytes.Equal(normalize(viaCommand), normalize(viaREST)) {
			t.Errorf("%s: command %d %s\nREST %d %s", label, sc, viaCommand, sr, viaREST)
		}
	}
	for _, tw := range reads {
		r := o.admin.Do("GET", tw.path, nil)
		c := o.admin.Do("POST", "/api", map[string]any{"command": tw.command, "params": tw.params})
		check(tw.command, c.Body, r.Body, c.Status, r.Status)
	}
	for _, tw := range partnerReads {
		r := e.partner.Do("GET", tw.path, nil)
		c := e.partner.Do("POST", "/api", map[string]any{"command": tw.command, "params": tw.params})
		check(tw.command, c.Body, r.Body, c.Status, r.Status)
	}
	// Writes: the same change twice, once each way, and compare the answers.
	writes := []struct {
		command string
		params  map[string]any
		method  string
		path    string
		body    map[string]any
	}{
		{"create_connection", map[string]any{"name": "c1", "type": "mysql"}, "POST", "/api/connections", map[string]any{"name": "c2", "type": "mysql"}},
		{"create_dataset", map[string]any{"name": "d", "slug": "d1"}, "POST", "/api/datasets", map[string]any{"name": "d", "slug": "d2"}},
		{"create_role", map[string]any{"name": "r1", "actions": []string{"users:read"}}, "POST", "/api/permissions/roles", map[string]any{"name": "r2", "actions": []string{"users:read"}}},
		{"create_policy", map[string]any{"name": "p1", "policy_actions": []map[string]any{{"action": "connections:read", "role_ids": []string{role}}}},
			"POST", "/api/permissions/policies", map[string]any{"name": "p2", "policy_actions": []map[string]any{{"action": "connections:read", "role_ids": []string{role}}}}},
		{"create_policy", map[string]any{"name": "p3", "policy_actions": []map[string]any{{"action": "users:read"}}},
			"POST", "/api/permissions/policies", map[string]any{"name": "p3", "policy_actions": []map[string]any{{"action": "users:read"}}}},
		{"create_key", map[string]any{"name": "k1"}, "POST", "/api/keys", map[string]any{"name": "k2"}},
		{"create_dataset", map[string]any{"name": "d", "slug": "BAD SLUG"}, "POST", "/api/datasets", map[string]any{"name": "d", "slug": "BAD SLUG"}},
	}
	for _, w := range writes {
		c := o.admin.Do("POST", "/api", map[string]any{"command": w.command, "params": w.params})
		r := o.admin.Do(w.method, w.path, w.body)
		check(w.command, renameFor(c.Body, w.params, w.body), r.Body, c.Status, r.Status)
	}
	for _, w := range []struct {
		command string
		params  map[string]any
	}{
		{"update_connection", map[string]any{"id": conn, "name": "DB", "type": "postgresql", "policies": []string{policy}}},
		{"update_policy", map[string]any{"id": policy, "name": "Renamed"}},
		{"delete_dataset", map[string]any{"id": data}},
		{"create_token", map[string]any{"token_ttl": 60}},
	} {
		if c := o.admin.Do("POST", "/api", map[string]any{"command": w.command, "params": w.params}); c.Status != 200 {
			t.Errorf("%s: %d %s", w.command, c.Status, c.Body)
		}
	}
	// A refusal is the same either way: the policy governs conn now.
	c := o.admin.Do("POST", "/api", map[string]any{"command": "delete_policy", "params": map[string]any{"id": policy}})
	r := o.admin.Do("DELETE", "/api/permissions/policies/"+policy, nil)
	check("delete_policy", c.Body, r.Body, c.Status, r.Status)
	expect(t, c, 409, "policy_in_use")
	if c := e.partner.Do("POST", "/api", map[string]any{"command": "create_organization", "params": map[string]any{"name": "ViaCommand"}}); c.Status != 200 {
		t.Errorf("create_organization: %d %s", c.Status, c.Body)
	}

	// The command endpoint authenticates and authorizes like the routes it runs.
	expect(t, e.anon.Do("POST", "/api", map[string]any{"command": "get_identity"}), 401, "missing_token")
	expect(t, o.member.Do("POST", "/api", map[string]any{"command": "list_organizations"}), 403, "partner_key_required")
	unknown := o.admin.Do("POST", "/api", map[string]any{"command": "drop_everything"})
	expect(t, unknown, 400, "unknown_command")
	if !strings.Contains(unknown.JSON()["message"].(string), "create_dataset") {
		t.Fatalf("unknown_command must list the commands: %s", unknown.Body)
	}
	expect(t, o.admin.Do("POST", "/api", map[string]any{"command": "get_dataset"}), 400, "validation_failed")
	expect(t, o.admin.Do("POST", "/api", map[string]any{"command": "get_identity", "params": map[string]any{"x": 1}}), 400, "unknown_field")
	expect(t, o.admin.Do("POST", "/api", map[string]any{"command": "create_connection", "params": map[string]any{"name": "x", "type": "y", "colour": 1}}), 400, "unknown_field")
	expect(t, o.admin.Do("POST", "/api", map[string]any{"cmd": "get_identity"}), 400, "unknown_field")

	// Idempotency holds through the command endpoint.
	key := []string{"Idempotency-Key", "command-create-conn"}
	first := o.admin.Do("POST", "/api", map[string]any{"command": "create_connection", "params": map[string]any{"name": "once", "type": "mysql"}}, key...)
	second := o.admin.Do("POST", "/api", map[string]any{"command": "create_connection", "params": map[string]any{"name": "once", "type": "mysql"}}, key...)
	if first.Status != 200 || !bytes.Equal(first.Body, second.Body) || second.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("idempotent command: %d %s / %s", first.Status, first.Body, second.Body)
	}
}

var volatile = regexp.MustCompile(`"(id|created_at|updated_at|hint|value|created_by|expires_at|last_used_at|token|key_id)":"[^"]*"`)

// normalize blanks what differs between two otherwise equal answers (fresh ids and times) and
// orders object keys.
func normalize(b []byte) []byte {
	var v any
	if json.Unmarshal(b, &v) == nil {
		b, _ = json.Marshal(v)
	}
	return volatile.ReplaceAll(b, []byte(`"$1":"…"`))
}

// renameFor makes a command's answer comparable to its twin's, which created an object with
// other names (two objects cannot share a name).
func renameFor(body []byte, commandParams, restBody map[string]any) []byte {
	var from, to []string
	for k, v := range commandParams {
		if s, ok := v.(string); ok && restBody[k] != nil {
			from, to = append(from, `"`+s+`"`), append(to, `"`+restBody[k].(string)+`"`)
		}
	}
	for i := range from {
		body = bytes.ReplaceAll(body, []byte(from[i]), []byte(to[i]))
	}
	return body
}

// A command is one request: the access log has one line for it, naming the command, and the
// metrics count it once, as POST /api, never as the route it ran.
func TestCommandLoggedAndCountedOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	o := e.newOrg("Acme")
	r := o.admin.Do("POST", "/api", map[string]any{"command": "create_dataset", "params": map[string]any{"name": "Orders", "slug": "orders"}},
		"X-Request-Id", "command-once")
	expect(t, r, 200, "")
	var lines []string
	for _, line := range strings.Split(e.logs.String(), "\n") {
		if strings.Contains(line, `"request_id":"command-once"`) {
			lines = append(lines, line)
		}
	}
	if len(lines) != 1 || !strings.Contains(lines[0], `"route":"/api"`) || !strings.Contains(lines[0], `"command":"create_dataset"`) {
		t.Fatalf("want one access log line for POST /api naming the command, got %d:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	metrics := e.anon.Do("GET", "/metrics", nil).String()
	if !strings.Contains(metrics, `tenantry_http_requests_total{method="POST",route="/api",status="200"} 1`+"\n") ||
		strings.Contains(metrics, `route="/api/datasets"`) {
		t.Fatalf("want POST /api counted once and /api/datasets never:\n%s", metrics)
	}
}
