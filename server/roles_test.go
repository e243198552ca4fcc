package server_test

import (
	"strings"
	"testing"

	"github.com/tenantry/tenantry/tenants"
)

func TestRoles(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	org := e.createOrg(e.partner, "Acme")
	admin := e.anon.As(e.mintKey(e.partner, org, e.createUser(e.partner, org, "ada@acme.test", "admin")))
	bobID := e.createUser(e.partner, org, "bob@acme.test", "user")
	member := e.anon.As(e.mintKey(e.partner, org, bobID))

	list := admin.Do("GET", "/api/permissions/roles", nil)
	expect(t, list, 200, "")
	roles := list.List()
	if len(roles) != 2 || roles[0]["name"] != "Admin" || roles[1]["name"] != "Member" || roles[0]["system"] != true {
		t.Fatalf("built-in roles: %s", list.Body)
	}
	if n := len(roles[0]["actions"].([]any)); n != len(tenants.Catalogue) {
		t.Fatalf("Admin has %d actions, want the whole catalogue (%d)", n, len(tenants.Catalogue))
	}
	memberActions := strings.Join(toStrings(roles[1]["actions"]), " ")
	if strings.Contains(memberActions, "users:write") || !strings.Contains(memberActions, "connections:write") || !strings.Contains(memberActions, "users:read") {
		t.Fatalf("Member reads everything and writes connections and datasets: %s", memberActions)
	}
	adminRole, memberRole := roles[0]["id"].(string), roles[1]["id"].(string)

	// Members read roles but cannot write them.
	expect(t, member.Do("GET", "/api/permissions/roles/"+adminRole, nil), 200, "")
	expect(t, member.Do("POST", "/api/permissions/roles", map[string]any{"name": "X", "actions": []string{}}), 403, "permission_denied")

	created := admin.Do("POST", "/api/permissions/roles", map[string]any{"name": " Support ", "actions": []string{"users:read", "roles:read"}})
	expect(t, created, 200, "")
	support := created.Data()["id"].(string)
	if created.Data()["name"] != "Support" || created.Data()["system"] != false {
		t.Fatalf("created role: %s", created.Body)
	}
	for _, tc := range []struct {
		name   string
		body   any
		status int
		key    string
	}{
		{"duplicate ignoring case", map[string]any{"name": "SUPPORT", "actions": []string{}}, 409, "role_name_taken"},
		{"clashes with a built-in", map[string]any{"name": "admin", "actions": []string{}}, 409, "role_name_taken"},
		{"unknown action", map[string]any{"name": "Bad", "actions": []string{"users:delete"}}, 400, "validation_failed"},
		{"blank name", map[string]any{"name": " ", "actions": []string{}}, 400, "validation_failed"},
	} {
		r := admin.Do("POST", "/api/permissions/roles", tc.body)
		expect(t, r, tc.status, tc.key)
	}
	expect(t, admin.Do("PUT", "/api/permissions/roles/"+adminRole, map[string]any{"name": "Admin", "actions": []string{}}), 409, "system_role_immutable")
	expect(t, admin.Do("DELETE", "/api/permissions/roles/"+memberRole, nil), 409, "system_role_immutable")

	// Give Bob only the Support role: his existing key gets exactly its actions on the next request.
	expect(t, e.partner.Do("PUT", "/api/organizations/"+org+"/users/"+bobID, map[string]any{"email": "bob@acme.test", "role_ids": []string{support}}), 200, "")
	me := member.Do("GET", "/api/me", nil).Data()
	if got := strings.Join(toStrings(me["permissions"]), " "); got != "users:read roles:read" {
		t.Fatalf("permissions with the Support role: %q", got)
	}
	expect(t, member.Do("GET", "/api/organization/users", nil), 200, "")
	expect(t, admin.Do("PUT", "/api/permissions/roles/"+support, map[string]any{"name": "Support", "actions": []string{"roles:read"}}), 200, "")
	expect(t, member.Do("GET", "/api/organization/users", nil), 403, "permission_denied")

	expect(t, admin.Do("DELETE", "/api/permissions/roles/"+support, nil), 409, "role_in_use")
	expect(t, e.partner.Do("PUT", "/api/organizations/"+org+"/users/"+bobID, map[string]any{"email": "bob@acme.test", "role": "user"}), 200, "")
	expect(t, admin.Do("DELETE", "/api/permissions/roles/"+support, nil), 200, "")
	expect(t, admin.Do("GET", "/api/permissions/roles/"+support, nil), 404, "role_not_found")
}

// A credential may not grant what it lacks: not through a role, nor by giving a user a role.
func TestRoleEscalation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	org := e.createOrg(e.partner, "Acme")
	admin := e.anon.As(e.mintKey(e.partner, org, e.createUser(e.partner, org, "ada@acme.test", "admin")))
	manager := admin.Do("POST", "/api/permissions/roles", map[string]any{"name": "Manager",
		"actions": []string{"roles:read", "roles:write", "users:read", "users:write"}}).Data()["id"].(string)
	mgrID := e.createUser(e.partner, org, "mgr@acme.test", "user")
	expect(t, admin.Do("PUT", "/api/organization/users/"+mgrID, map[string]any{"email": "mgr@acme.test", "role_ids": []string{manager}}), 200, "")
	mgr := e.anon.As(e.mintKey(e.partner, org, mgrID))

	expect(t, mgr.Do("POST", "/api/permissions/roles", map[string]any{"name": "Sneaky", "actions": []string{"keys:write"}}), 403, "permission_escalation")
	expect(t, mgr.Do("POST", "/api/organization/users", map[string]any{"email": "new@acme.test", "role": "admin"}), 403, "permission_escalation")
	expect(t, mgr.Do("PUT", "/api/organization/users/"+mgrID, map[string]any{"email": "mgr@acme.test", "role": "admin"}), 403, "permission_escalation")
	// Within its own permissions it may act.
	expect(t, mgr.Do("POST", "/api/permissions/roles", map[string]any{"name": "Reader", "actions": []string{"users:read"}}), 200, "")

	// The organization's own credentials cannot demote or delete its last admin (a partner
	// may: TestPartnerMayRemoveLastAdmin).
	adminID := admin.Do("GET", "/api/me", nil).Data()["id"].(string)
	expect(t, admin.Do("PUT", "/api/organization/users/"+adminID, map[string]any{"email": "ada@acme.test", "role": "user"}), 409, "last_admin")
	expect(t, admin.Do("DELETE", "/api/organization/users/"+adminID, nil), 409, "last_admin")
}

func toStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

// Polytomic's clients create and rename a role with a name only, and may send the organization
// it is in: a role made so allows nothing until given actions, a rename keeps its actions, and
// another organization's id is 404 as anywhere else.
func TestRolesAsPolytomicSendsThem(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	org := e.createOrg(e.partner, "Acme")
	other := e.createOrg(e.partner, "Globex")
	admin := e.anon.As(e.mintKey(e.partner, org, e.createUser(e.partner, org, "ada@acme.test", "admin")))

	created := admin.Do("POST", "/api/permissions/roles", map[string]any{"name": "Custom", "organization_id": org})
	expect(t, created, 200, "")
	id := created.Data()["id"].(string)
	if acts := toStrings(created.Data()["actions"]); len(acts) != 0 {
		t.Fatalf("a role created with a name only allows %v, want nothing", acts)
	}
	expect(t, admin.Do("PUT", "/api/permissions/roles/"+id, map[string]any{"name": "Custom", "actions": []string{"users:read"}}), 200, "")
	renamed := admin.Do("PUT", "/api/permissions/roles/"+id, map[string]any{"name": "Custom v2", "organization_id": org})
	expect(t, renamed, 200, "")
	if renamed.Data()["name"] != "Custom v2" || strings.Join(toStrings(renamed.Data()["actions"]), " ") != "users:read" {
		t.Fatalf("a PUT without actions renames and keeps the actions: %s", renamed.Body)
	}
	cleared := admin.Do("PUT", "/api/permissions/roles/"+id, map[string]any{"name": "Custom v2", "actions": []string{}})
	if expect(t, cleared, 200, ""); len(toStrings(cleared.Data()["actions"])) != 0 {
		t.Fatalf("a PUT with actions [] clears them: %s", cleared.Body)
	}
	expect(t, admin.Do("POST", "/api/permissions/roles", map[string]any{"name": "Elsewhere", "organization_id": other}), 404, "organization_not_found")
	expect(t, admin.Do("PUT", "/api/permissions/roles/"+id, map[string]any{"name": "Elsewhere", "organization_id": other}), 404, "organization_not_found")
	if got := admin.Do("GET", "/api/permissions/roles/"+id, nil); got.Data()["name"] != "Custom v2" {
		t.Fatalf("a refused PUT changed the role: %s", got.Body)
	}
}
