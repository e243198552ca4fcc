package server_test

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/tenantry/tenantry/server/servertest"
)

// grant is one entry of a policy's policy_actions.
func grant(action string, roles ...string) map[string]any {
	if roles == nil {
		roles = []string{}
	}
	return map[string]any{"action": action, "role_ids": roles}
}

// policy is a policy request body.
func policy(name string, actions ...map[string]any) map[string]any {
	if actions == nil {
		actions = []map[string]any{}
	}
	return map[string]any{"name": name, "policy_actions": actions}
}

// roleID finds a role of the caller's organization by name.
func roleID(t *testing.T, c *servertest.Client, name string) string {
	t.Helper()
	for _, r := range c.Do("GET", "/api/permissions/roles", nil).List() {
		if r["name"] == name {
			return r["id"].(string)
		}
	}
	t.Fatalf("no role %q", name)
	return ""
}

func ids(list []map[string]any) []string {
	out := []string{}
	for _, x := range list {
		out = append(out, x["id"].(string))
	}
	return out
}

// The policies API in Polytomic's shape: create, read, list, replace, delete; what it accepts.
func TestPolicies(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	o := e.newOrg("Acme")
	other := e.newOrg("Other")
	finance := o.admin.Do("POST", "/api/permissions/roles", map[string]any{"name": "Finance", "actions": []string{}}).Data()["id"].(string)
	support := o.admin.Do("POST", "/api/permissions/roles", map[string]any{"name": "Support", "actions": []string{}}).Data()["id"].(string)
	otherRole := other.admin.Do("POST", "/api/permissions/roles", map[string]any{"name": "Finance", "actions": []string{}}).Data()["id"].(string)

	// Polytomic's SDK example: a name alone.
	bare := o.admin.Do("POST", "/api/permissions/policies", map[string]any{"name": "Custom"})
	expect(t, bare, 200, "")
	if d := bare.Data(); d["organization_id"] != o.id || d["system"] != false || len(d["policy_actions"].([]any)) != 0 {
		t.Fatalf("a policy with a name alone: %s", bare.Body)
	}
	// Actions are kept in catalogue order, roles sorted and deduplicated; an action may grant none.
	created := o.admin.Do("POST", "/api/permissions/policies", map[string]any{"name": " Finance data ", "organization_id": o.id,
		"policy_actions": []map[string]any{grant("datasets:read", support, finance, support), grant("connections:read", finance), {"action": "datasets:write"}}})
	expect(t, created, 200, "")
	pol := created.Data()
	id := pol["id"].(string)
	sorted := []string{finance, support}
	slices.Sort(sorted)
	acts := pol["policy_actions"].([]any)
	if pol["name"] != "Finance data" || len(acts) != 3 ||
		acts[0].(map[string]any)["action"] != "connections:read" || acts[1].(map[string]any)["action"] != "datasets:read" ||
		!slices.Equal(toStrings(acts[1].(map[string]any)["role_ids"]), sorted) ||
		acts[2].(map[string]any)["action"] != "datasets:write" || len(acts[2].(map[string]any)["role_ids"].([]any)) != 0 {
		t.Fatalf("created policy: %s", created.Body)
	}
	got := o.admin.Do("GET", "/api/permissions/policies/"+id, nil)
	expect(t, got, 200, "")
	if !bytes.Equal(got.Body, created.Body) {
		t.Fatalf("GET answers %s, POST answered %s", got.Body, created.Body)
	}
	// Members read policies (Member has policies:read) but cannot write them.
	if list := o.member.Do("GET", "/api/permissions/policies", nil).List(); !slices.Equal(ids(list), []string{bare.Data()["id"].(string), id}) {
		t.Fatalf("policies in order of creation: %v", list)
	}
	expect(t, o.member.Do("POST", "/api/permissions/policies", policy("Mine")), 403, "permission_denied")
	expect(t, o.member.Do("DELETE", "/api/permissions/policies/"+id, nil), 403, "permission_denied")

	for _, tc := range []struct {
		name   string
		body   any
		status int
		key    string
		field  string
	}{
		{"duplicate ignoring case", policy("FINANCE DATA"), 409, "policy_name_taken", ""},
		{"blank name", policy(" "), 400, "validation_failed", "name"},
		{"no name", map[string]any{"policy_actions": []any{}}, 400, "validation_failed", "name"},
		{"an action not on resources", policy("X", grant("users:read", finance)), 400, "validation_failed", "policy_actions[0].action"},
		{"an unknown action", policy("X", grant("connections:delete")), 400, "validation_failed", "policy_actions[0].action"},
		{"no action", policy("X", map[string]any{"role_ids": []string{finance}}), 400, "validation_failed", "policy_actions[0].action"},
		{"an action twice", policy("X", grant("connections:read"), grant("connections:read", finance)), 400, "validation_failed", "policy_actions[1].action"},
		{"another organization's role", policy("X", grant("connections:read", finance, otherRole)), 400, "validation_failed", "policy_actions[0].role_ids"},
		{"a malformed role id", policy("X", grant("connections:read", "admin")), 400, "validation_failed", "policy_actions[0].role_ids"},
		{"another organization", map[string]any{"name": "X", "organization_id": other.id}, 404, "organization_not_found", ""},
		{"an unknown field", map[string]any{"name": "X", "policy_actions": []map[string]any{{"action": "connections:read", "roles": []string{}}}}, 400, "unknown_field", ""},
	} {
		r := o.admin.Do("POST", "/api/permissions/policies", tc.body)
		if r.Status != tc.status || r.ErrorKey() != tc.key {
			t.Errorf("%s: %d %s", tc.name, r.Status, r.Body)
			continue
		}
		if tc.field != "" {
			if msg, _ := r.JSON()["metadata"].(map[string]any)[tc.field].(string); msg == "" {
				t.Errorf("%s: metadata does not name %s: %s", tc.name, tc.field, r.Body)
			} else if tc.name == "another organization's role" && !strings.Contains(msg, otherRole) {
				t.Errorf("%s: the message does not name the role: %s", tc.name, r.Body)
			}
		}
	}

	// PUT replaces in full: what it leaves out is no longer granted.
	put := o.admin.Do("PUT", "/api/permissions/policies/"+id, map[string]any{"name": "Finance data", "policy_actions": []map[string]any{grant("connections:write", support)}})
	expect(t, put, 200, "")
	if acts := put.Data()["policy_actions"].([]any); len(acts) != 1 || acts[0].(map[string]any)["action"] != "connections:write" ||
		!slices.Equal(toStrings(acts[0].(map[string]any)["role_ids"]), []string{support}) {
		t.Fatalf("replaced policy: %s", put.Body)
	}
	if again := o.admin.Do("GET", "/api/permissions/policies/"+id, nil); !bytes.Equal(again.Body, put.Body) {
		t.Fatalf("after PUT, GET answers %s", again.Body)
	}
	expect(t, o.admin.Do("PUT", "/api/permissions/policies/"+id, policy("Custom")), 409, "policy_name_taken")
	expect(t, o.admin.Do("PUT", "/api/permissions/policies/"+id, policy("Y", grant("keys:read"))), 400, "validation_failed")

	// Another organization's policy is not there for it, as an id that never existed.
	for _, c := range []struct{ method, path string }{{"GET", "/api/permissions/policies/" + id}, {"PUT", "/api/permissions/policies/" + id},
		{"DELETE", "/api/permissions/policies/" + id}} {
		r := other.admin.Do(c.method, c.path, policy("Z"))
		expect(t, r, 404, "policy_not_found")
		missing := other.admin.Do(c.method, strings.ReplaceAll(c.path, id, "00000000-0000-0000-0000-000000000001"), policy("Z"))
		if missing.Status != 404 || strings.ReplaceAll(string(r.Body), id, "") != strings.ReplaceAll(string(missing.Body), "00000000-0000-0000-0000-000000000001", "") {
			t.Fatalf("%s %s: another organization's policy answers %s, a missing one %s", c.method, c.path, r.Body, missing.Body)
		}
	}
	expect(t, o.admin.Do("GET", "/api/permissions/policies/not-a-uuid", nil), 404, "policy_not_found")
	if list := other.admin.Do("GET", "/api/permissions/policies", nil).List(); len(list) != 0 {
		t.Fatalf("another organization lists %v", list)
	}

	// A role a policy grants is in use: 409, naming the policy; once out of it, it goes.
	del := o.admin.Do("DELETE", "/api/permissions/roles/"+support, nil)
	expect(t, del, 409, "role_in_use")
	if names := toStrings(del.JSON()["metadata"].(map[string]any)["policies"]); !slices.Equal(names, []string{"Finance data"}) {
		t.Fatalf("role_in_use names %v: %s", names, del.Body)
	}
	expect(t, o.admin.Do("PUT", "/api/permissions/policies/"+id, policy("Finance data", grant("connections:write"))), 200, "")
	expect(t, o.admin.Do("DELETE", "/api/permissions/roles/"+support, nil), 200, "")

	// Deleting answers the policy as it was; then it is gone. Every change is an event.
	gone := o.admin.Do("DELETE", "/api/permissions/policies/"+id, nil)
	expect(t, gone, 200, "")
	if gone.Data()["id"] != id || gone.Data()["name"] != "Finance data" {
		t.Fatalf("deleted policy: %s", gone.Body)
	}
	expect(t, o.admin.Do("GET", "/api/permissions/policies/"+id, nil), 404, "policy_not_found")
	for _, typ := range []string{"policy.created", "policy.updated", "policy.deleted"} {
		events := o.admin.Do("GET", "/api/events?type="+typ, nil).List()
		if len(events) == 0 || events[0]["event"].(map[string]any)["policy_actions"] == nil {
			t.Errorf("no %s event with the policy: %v", typ, events)
		}
	}

	// A policy may not hand out an action its author lacks, as a role may not.
	mgrRole := o.admin.Do("POST", "/api/permissions/roles", map[string]any{"name": "PolicyAdmin",
		"actions": []string{"policies:read", "policies:write", "roles:read", "datasets:read"}}).Data()["id"].(string)
	mgrID := e.createUser(e.partner, o.id, "mgr@acme.test", "user")
	expect(t, o.admin.Do("PUT", "/api/organization/users/"+mgrID, map[string]any{"email": "mgr@acme.test", "role_ids": []string{mgrRole}}), 200, "")
	mgr := e.anon.As(e.mintKey(e.partner, o.id, mgrID))
	r := mgr.Do("POST", "/api/permissions/policies", policy("Sneaky", grant("datasets:write", finance)))
	expect(t, r, 403, "permission_escalation")
	if missing := toStrings(r.JSON()["metadata"].(map[string]any)["missing_actions"]); !slices.Equal(missing, []string{"datasets:write"}) {
		t.Fatalf("missing_actions %v", missing)
	}
	mine := mgr.Do("POST", "/api/permissions/policies", policy("Readers", grant("datasets:read", finance)))
	expect(t, mine, 200, "")
	theirs := o.admin.Do("POST", "/api/permissions/policies", policy("Writers", grant("datasets:write", finance))).Data()["id"].(string)
	expect(t, mgr.Do("PUT", "/api/permissions/policies/"+theirs, policy("Writers")), 403, "permission_escalation")
	expect(t, mgr.Do("DELETE", "/api/permissions/policies/"+theirs, nil), 403, "permission_escalation")

	// The partner manages its owner organization's policies, not its children's.
	expect(t, e.partner.Do("POST", "/api/permissions/policies", policy("Owner's")), 200, "")
	expect(t, e.partner.Do("GET", "/api/permissions/policies/"+theirs, nil), 404, "policy_not_found")
}

// resourceWorld is an organization whose connection and dataset have a policy granting the
// role Finance, with an admin, a plain member and a finance member (a Member holding Finance).
type resourceWorld struct {
	o                           org
	finance, policy             string // the role and the policy
	financeID                   string
	fin                         *servertest.Client
	restricted, open, dataset   string // a connection with the policy, one without; a dataset with it
	otherPolicy, otherPolicyOrg string // a policy of another organization
}

func newResourceWorld(t *testing.T, e *env) *resourceWorld {
	t.Helper()
	w := &resourceWorld{o: e.newOrg("Acme")}
	o := w.o
	w.finance = o.admin.Do("POST", "/api/permissions/roles", map[string]any{"name": "Finance", "actions": []string{}}).Data()["id"].(string)
	w.policy = o.admin.Do("POST", "/api/permissions/policies", policy("Finance only", grant("connections:read", w.finance),
		grant("datasets:read", w.finance))).Data()["id"].(string)
	w.financeID = e.createUser(e.partner, o.id, "fin@acme.test", "user")
	expect(t, o.admin.Do("PUT", "/api/organization/users/"+w.financeID, map[string]any{"email": "fin@acme.test",
		"role_ids": []string{roleID(t, o.admin, "Member"), w.finance}}), 200, "")
	w.fin = e.anon.As(e.mintKey(e.partner, o.id, w.financeID))
	w.open = o.admin.Do("POST", "/api/connections", map[string]any{"name": "Open", "type": "postgresql"}).Data()["id"].(string)
	r := o.admin.Do("POST", "/api/connections", map[string]any{"name": "Ledger", "type": "postgresql",
		"configuration": map[string]any{"host": "ledger.acme.test", "password": "pw"}, "policies": []string{w.policy, w.policy}})
	expect(t, r, 200, "")
	if got := toStrings(r.Data()["policies"]); !slices.Equal(got, []string{w.policy}) {
		t.Fatalf("the connection's policies: %v", got)
	}
	w.restricted = r.Data()["id"].(string)
	w.dataset = o.admin.Do("POST", "/api/datasets", map[string]any{"name": "Invoices", "slug": "invoices",
		"connection_id": w.restricted, "policies": []string{w.policy}}).Data()["id"].(string)
	other := e.newOrg("Other")
	w.otherPolicyOrg = other.id
	w.otherPolicy = other.admin.Do("POST", "/api/permissions/policies", policy("Theirs")).Data()["id"].(string)
	return w
}

// A connection or dataset with policies is there only for those its policies let in: admins,
// and users one of whose roles a policy grants the action. For anyone else it does not exist.
func TestResourcePolicies(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	w := newResourceWorld(t, e)
	o := w.o
	mk := func(c *servertest.Client, body map[string]any) *servertest.Client {
		t.Helper()
		r := c.Do("POST", "/api/keys", body)
		expect(t, r, 200, "")
		return e.anon.As(r.Data()["value"].(string))
	}
	asker := mk(o.admin, map[string]any{"name": "widget", "kind": "organization", "role": "asker"})
	orgAdmin := mk(o.admin, map[string]any{"name": "backend", "kind": "organization", "role": "admin"})
	token := func(c *servertest.Client, body any) *servertest.Client {
		t.Helper()
		r := c.Do("POST", "/api/auth/tokens", body)
		expect(t, r, 200, "")
		return e.anon.As(r.Data()["token"].(string))
	}

	for _, c := range []struct {
		name    string
		client  *servertest.Client
		reaches bool
	}{
		{"admin", o.admin, true},
		{"admin organization key", orgAdmin, true},
		{"admin's token", token(o.admin, nil), true},
		{"finance member", w.fin, true},
		{"finance member's token", token(w.fin, nil), true},
		{"member", o.member, false},
		{"member's token", token(o.member, nil), false},
		{"asker key", asker, false},
		{"asker token of the admin", token(o.admin, map[string]any{"role": "asker"}), false},
	} {
		conns := ids(c.client.Do("GET", "/api/connections", nil).List())
		datasets := ids(c.client.Do("GET", "/api/datasets", nil).List())
		if !slices.Contains(conns, w.open) {
			t.Errorf("%s: the connection without policies is not listed: %v", c.name, conns)
		}
		if slices.Contains(conns, w.restricted) != c.reaches || slices.Contains(datasets, w.dataset) != c.reaches {
			t.Errorf("%s: lists connections %v and datasets %v; reaches the restricted ones: %v", c.name, conns, datasets, c.reaches)
		}
		for _, path := range []string{"/api/connections/" + w.restricted, "/api/datasets/" + w.dataset} {
			r := c.client.Do("GET", path, nil)
			if !c.reaches {
				// Exactly the answer for an id that does not exist, but for the id.
				missing := c.client.Do("GET", path[:strings.LastIndex(path, "/")+1]+"00000000-0000-0000-0000-000000000001", nil)
				id := path[strings.LastIndex(path, "/")+1:]
				if r.Status != 404 || strings.ReplaceAll(string(r.Body), id, "") != strings.ReplaceAll(string(missing.Body), "00000000-0000-0000-0000-000000000001", "") {
					t.Errorf("%s: GET %s answers %d %s; a missing id %s", c.name, path, r.Status, r.Body, missing.Body)
				}
				if strings.Contains(string(r.Body), "ledger") || strings.Contains(string(r.Body), "Invoices") {
					t.Errorf("%s: the 404 tells of the resource: %s", c.name, r.Body)
				}
			} else if r.Status != 200 || !slices.Equal(toStrings(r.Data()["policies"]), []string{w.policy}) {
				t.Errorf("%s: GET %s: %d %s", c.name, path, r.Status, r.Body)
			}
		}
	}

	// Writes: the member cannot find them; the finance member reads but may not write (the
	// policy grants read only); the admin may.
	put := map[string]any{"name": "Ledger", "type": "postgresql", "configuration": map[string]any{"host": "ledger.acme.test"}}
	expect(t, o.member.Do("PUT", "/api/connections/"+w.restricted, put), 404, "connection_not_found")
	expect(t, o.member.Do("DELETE", "/api/connections/"+w.restricted, nil), 404, "connection_not_found")
	expect(t, o.member.Do("PUT", "/api/datasets/"+w.dataset, map[string]any{"name": "Invoices", "slug": "invoices"}), 404, "dataset_not_found")
	expect(t, o.member.Do("DELETE", "/api/datasets/"+w.dataset, nil), 404, "dataset_not_found")
	expect(t, w.fin.Do("PUT", "/api/connections/"+w.restricted, put), 403, "permission_denied")
	expect(t, w.fin.Do("DELETE", "/api/datasets/"+w.dataset, nil), 403, "permission_denied")
	// A policy change applies to the next request, though the finance key's principal is cached.
	expect(t, o.admin.Do("PUT", "/api/permissions/policies/"+w.policy, policy("Finance only", grant("connections:read", w.finance),
		grant("connections:write", w.finance), grant("datasets:read", w.finance))), 200, "")
	r := w.fin.Do("PUT", "/api/connections/"+w.restricted, put)
	expect(t, r, 200, "")
	if got := toStrings(r.Data()["policies"]); !slices.Equal(got, []string{w.policy}) {
		t.Fatalf("a PUT without policies keeps them: %v", got)
	}
	if got := e.storedConfiguration(w.restricted); got["password"] != "pw" {
		t.Fatalf("the secret is kept: %v", got)
	}
	// Scopes still narrow: a key of the finance member for reading writes nothing, whatever the policy.
	finReader := mk(w.fin, map[string]any{"name": "reader", "scopes": []string{"connections:read"}})
	expect(t, finReader.Do("GET", "/api/connections/"+w.restricted, nil), 200, "")
	expect(t, finReader.Do("PUT", "/api/connections/"+w.restricted, put), 403, "permission_denied")
	expect(t, token(w.fin, map[string]any{"scopes": []string{"connections:read"}}).Do("PUT", "/api/connections/"+w.restricted, put), 403, "permission_denied")
	// A policy narrows and never widens: a role without connections:read reads no connection.
	w2 := o.admin.Do("POST", "/api/permissions/roles", map[string]any{"name": "DatasetsOnly", "actions": []string{"datasets:read"}}).Data()["id"].(string)
	expect(t, o.admin.Do("PUT", "/api/organization/users/"+w.financeID, map[string]any{"email": "fin@acme.test",
		"role_ids": []string{w2, w.finance}}), 200, "")
	expect(t, w.fin.Do("GET", "/api/connections/"+w.restricted, nil), 403, "permission_denied")
	expect(t, w.fin.Do("GET", "/api/datasets/"+w.dataset, nil), 200, "")
	// Without the granting role, the finance member no longer finds them, at once.
	expect(t, o.admin.Do("PUT", "/api/organization/users/"+w.financeID, map[string]any{"email": "fin@acme.test",
		"role_ids": []string{roleID(t, o.admin, "Member")}}), 200, "")
	expect(t, w.fin.Do("GET", "/api/datasets/"+w.dataset, nil), 404, "dataset_not_found")
	expect(t, o.admin.Do("PUT", "/api/organization/users/"+w.financeID, map[string]any{"email": "fin@acme.test",
		"role_ids": []string{roleID(t, o.admin, "Member"), w.finance}}), 200, "")

	// Changing a resource's policies needs policies:write, which Member lacks: neither the
	// finance member (who may write the connection now) nor anyone else opens or closes it.
	expect(t, w.fin.Do("PUT", "/api/connections/"+w.restricted, map[string]any{"name": "Ledger", "type": "postgresql", "policies": []string{}}),
		403, "permission_denied")
	expect(t, w.fin.Do("PUT", "/api/connections/"+w.restricted, map[string]any{"name": "Ledger", "type": "postgresql", "policies": []string{w.policy}}),
		200, "")
	expect(t, o.member.Do("POST", "/api/connections", map[string]any{"name": "Mine", "type": "mysql", "policies": []string{w.policy}}), 403, "permission_denied")
	expect(t, o.member.Do("POST", "/api/datasets", map[string]any{"name": "Mine", "slug": "mine", "policies": []string{w.policy}}), 403, "permission_denied")
	expect(t, o.member.Do("PUT", "/api/connections/"+w.open, map[string]any{"name": "Open", "type": "postgresql", "policies": []string{w.policy}}), 403, "permission_denied")
	// Policies must be the organization's.
	for _, bad := range []string{w.otherPolicy, "00000000-0000-0000-0000-000000000001", "not-a-uuid"} {
		r := o.admin.Do("PUT", "/api/connections/"+w.open, map[string]any{"name": "Open", "type": "postgresql", "policies": []string{bad}})
		expect(t, r, 400, "validation_failed")
		if msg, _ := r.JSON()["metadata"].(map[string]any)["policies"].(string); !strings.Contains(msg, bad) {
			t.Errorf("the refusal does not name %s: %s", bad, r.Body)
		}
	}

	// A dataset may be given a connection only if its author reaches it; as for one that does
	// not exist. One that has it already keeps it through a PUT by a caller who does not.
	r = o.member.Do("POST", "/api/datasets", map[string]any{"name": "Sneaky", "slug": "sneaky", "connection_id": w.restricted})
	expect(t, r, 400, "validation_failed")
	missing := o.member.Do("POST", "/api/datasets", map[string]any{"name": "Sneaky", "slug": "sneaky", "connection_id": "00000000-0000-0000-0000-000000000001"})
	if strings.ReplaceAll(string(r.Body), w.restricted, "") != strings.ReplaceAll(string(missing.Body), "00000000-0000-0000-0000-000000000001", "") {
		t.Fatalf("an unreachable connection answers %s, a missing one %s", r.Body, missing.Body)
	}
	expect(t, w.fin.Do("POST", "/api/datasets", map[string]any{"name": "Fin", "slug": "fin", "connection_id": w.restricted}), 200, "")
	plain := o.admin.Do("POST", "/api/datasets", map[string]any{"name": "Plain", "slug": "plain", "connection_id": w.restricted}).Data()["id"].(string)
	got := o.member.Do("GET", "/api/datasets/"+plain, nil)
	if got.Status != 200 || got.Data()["connection_id"] != w.restricted {
		t.Fatalf("a dataset without policies is read with its connection_id: %s", got.Body)
	}
	expect(t, o.member.Do("PUT", "/api/datasets/"+plain, map[string]any{"name": "Plain v2", "slug": "plain", "connection_id": w.restricted}), 200, "")

	// Admins change policies of anything; [] opens the resource again to every member.
	r = o.admin.Do("PUT", "/api/datasets/"+w.dataset, map[string]any{"name": "Invoices", "slug": "invoices", "connection_id": w.restricted, "policies": []string{}})
	expect(t, r, 200, "")
	if len(r.Data()["policies"].([]any)) != 0 {
		t.Fatalf("policies [] removes them: %s", r.Body)
	}
	expect(t, o.member.Do("GET", "/api/datasets/"+w.dataset, nil), 200, "")
	// The organization key of kind admin changes them too.
	expect(t, orgAdmin.Do("PUT", "/api/datasets/"+w.dataset, map[string]any{"name": "Invoices", "slug": "invoices", "policies": []string{w.policy}}), 200, "")
	expect(t, o.member.Do("GET", "/api/datasets/"+w.dataset, nil), 404, "dataset_not_found")

	// A policy a resource has cannot be deleted (that would open it): 409 naming them.
	del := o.admin.Do("DELETE", "/api/permissions/policies/"+w.policy, nil)
	expect(t, del, 409, "policy_in_use")
	meta := del.JSON()["metadata"].(map[string]any)
	if !slices.Equal(toStrings(meta["connection_ids"]), []string{w.restricted}) || !slices.Equal(toStrings(meta["dataset_ids"]), []string{w.dataset}) {
		t.Fatalf("policy_in_use metadata: %s", del.Body)
	}
	expect(t, o.member.Do("GET", "/api/datasets/"+w.dataset, nil), 404, "dataset_not_found")
	// Deleting the resources frees the policy; deleting the organization takes all with it.
	expect(t, o.admin.Do("DELETE", "/api/connections/"+w.restricted, nil), 200, "")
	expect(t, o.admin.Do("DELETE", "/api/datasets/"+w.dataset, nil), 200, "")
	expect(t, o.admin.Do("DELETE", "/api/permissions/policies/"+w.policy, nil), 200, "")
}

// Lists page through what the caller reaches: every page full, no restricted item, to the end.
func TestResourcePoliciesPaging(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	w := newResourceWorld(t, e)
	o := w.o
	var open []string
	for i := range 7 {
		name := "c" + string(rune('a'+i))
		body := map[string]any{"name": name, "type": "mysql"}
		if i%2 == 1 {
			body["policies"] = []string{w.policy}
		}
		id := o.admin.Do("POST", "/api/connections", body).Data()["id"].(string)
		if i%2 == 0 {
			open = append(open, id)
		}
	}
	want := append([]string{w.open}, open...)
	var seen []string
	token := ""
	for pages := 0; ; pages++ {
		r := o.member.Do("GET", "/api/connections?limit=2&page_token="+token, nil)
		expect(t, r, 200, "")
		page := ids(r.List())
		token = r.JSON()["pagination"].(map[string]any)["next_page_token"].(string)
		if token != "" && len(page) != 2 {
			t.Fatalf("a page before the last has %d items: %v", len(page), page)
		}
		seen = append(seen, page...)
		if token == "" || pages > 10 {
			break
		}
	}
	if !slices.Equal(seen, want) {
		t.Fatalf("the member pages through %v, want %v", seen, want)
	}
	if n := len(o.admin.Do("GET", "/api/connections?limit=100", nil).List()); n != 1+7+1 {
		t.Fatalf("the admin lists %d connections, want all 9", n)
	}
}

// A connection a partner shares into a child organization has no policies there (the
// parent's name roles of the owner organization): every member of the child with
// connections:read reads it, and nobody in the child changes it, its policies included.
// Its parent's policies govern the parent in the owner organization only.
func TestSharedConnectionsHaveNoPolicies(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ownerAdmin := e.anon.As(e.mintKey(e.partner, e.ownerID, e.createUser(e.partner, e.ownerID, "staff@partner.test", "admin")))
	staffID := e.createUser(e.partner, e.ownerID, "staff2@partner.test", "user")
	staff := e.anon.As(e.mintKey(e.partner, e.ownerID, staffID))
	role := ownerAdmin.Do("POST", "/api/permissions/roles", map[string]any{"name": "Ops", "actions": []string{}}).Data()["id"].(string)
	pol := ownerAdmin.Do("POST", "/api/permissions/policies", policy("Ops only", grant("connections:read", role))).Data()["id"].(string)
	parent := ownerAdmin.Do("POST", "/api/connections", map[string]any{"name": "Shared", "type": "postgresql", "policies": []string{pol}}).Data()["id"].(string)
	expect(t, staff.Do("GET", "/api/connections/"+parent, nil), 404, "connection_not_found")

	child := e.newOrg("Child")
	share := e.partner.Do("POST", "/api/organizations/"+e.ownerID+"/connections/"+parent+"/shared", map[string]any{"child_organization_id": child.id})
	expect(t, share, 200, "")
	if len(share.Data()["policies"].([]any)) != 0 {
		t.Fatalf("a share has no policies: %s", share.Body)
	}
	shareID := share.Data()["id"].(string)
	r := child.member.Do("GET", "/api/connections/"+shareID, nil)
	expect(t, r, 200, "")
	if len(r.Data()["policies"].([]any)) != 0 {
		t.Fatalf("the share in the child: %s", r.Body)
	}
	childRole := child.admin.Do("POST", "/api/permissions/roles", map[string]any{"name": "Analysts", "actions": []string{}}).Data()["id"].(string)
	childPol := child.admin.Do("POST", "/api/permissions/policies", policy("Child's", grant("datasets:read", childRole))).Data()["id"].(string)
	expect(t, child.admin.Do("PUT", "/api/connections/"+shareID, map[string]any{"name": "Shared", "type": "postgresql", "policies": []string{childPol}}),
		403, "shared_connection_read_only")
	// The parent's policies are the owner organization's: the child's policy is not one of them.
	expect(t, ownerAdmin.Do("PUT", "/api/connections/"+parent, map[string]any{"name": "Shared", "type": "postgresql", "policies": []string{childPol}}),
		400, "validation_failed")
	// Deleting the child organization takes its policies, roles and resources with it.
	expect(t, child.admin.Do("POST", "/api/datasets", map[string]any{"name": "D", "slug": "d", "policies": []string{childPol}}), 200, "")
	expect(t, e.partner.Do("DELETE", "/api/organizations/"+child.id, nil), 200, "")
}
