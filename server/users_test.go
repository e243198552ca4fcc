package server_test

import (
	"strings"
	"testing"

	"github.com/tenantry/tenantry/server/servertest"
)

func TestUserLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.partner
	org := e.createOrg(p, "Acme")
	base := "/api/organizations/" + org + "/users"

	admin := p.Do("POST", base, map[string]any{"email": " Ada@Acme.test ", "role": "admin"})
	expect(t, admin, 200, "")
	a := admin.Data()
	if a["email"] != "Ada@Acme.test" || a["role"] != "admin" || a["organization_id"] != org || len(a["role_ids"].([]any)) != 1 {
		t.Fatalf("created admin: %s", admin.Body)
	}
	adminRole := a["role_ids"].([]any)[0].(string)

	member := p.Do("POST", base, map[string]any{"email": "bob@acme.test"})
	expect(t, member, 200, "")
	if member.Data()["role"] != "user" {
		t.Fatalf("a user created without a role must be a member (role user): %s", member.Body)
	}
	memberRole := member.Data()["role_ids"].([]any)[0].(string)
	bob := member.Data()["id"].(string)

	byIDs := p.Do("POST", base, map[string]any{"email": "cy@acme.test", "role_ids": []string{adminRole, memberRole, adminRole}})
	expect(t, byIDs, 200, "")
	if byIDs.Data()["role"] != "admin" || len(byIDs.Data()["role_ids"].([]any)) != 2 {
		t.Fatalf("role_ids with Admin must read as role admin, duplicates dropped: %s", byIDs.Body)
	}

	list := p.Do("GET", base, nil)
	expect(t, list, 200, "")
	if n := len(list.List()); n != 3 {
		t.Fatalf("listed %d users, want 3", n)
	}

	put := p.Do("PUT", base+"/"+bob, map[string]any{"email": "robert@acme.test", "role": "admin"})
	expect(t, put, 200, "")
	if put.Data()["email"] != "robert@acme.test" || put.Data()["role"] != "admin" {
		t.Fatalf("PUT did not replace email and role: %s", put.Body)
	}
	// PUT without roles makes the user a member again: it is a full replacement.
	put = p.Do("PUT", base+"/"+bob, map[string]any{"email": "robert@acme.test"})
	expect(t, put, 200, "")
	if put.Data()["role"] != "user" {
		t.Fatalf("PUT without role: %s", put.Body)
	}
	expect(t, p.Do("PUT", base+"/"+bob, map[string]any{"email": "ADA@acme.test"}), 409, "user_email_taken")

	get := p.Do("GET", base+"/"+bob, nil)
	expect(t, get, 200, "")
	if get.Data()["email"] != "robert@acme.test" {
		t.Fatalf("get: %s", get.Body)
	}

	key := e.mintKey(p, org, bob)
	expect(t, e.anon.As(key).Do("GET", "/api/me", nil), 200, "")
	del := p.Do("DELETE", base+"/"+bob, nil)
	expect(t, del, 200, "")
	if del.Data()["id"] != bob || del.Data()["email"] != "robert@acme.test" {
		t.Fatalf("DELETE must return the deleted user: %s", del.Body)
	}
	expect(t, e.anon.As(key).Do("GET", "/api/me", nil), 401, "invalid_token")
	expect(t, p.Do("GET", base+"/"+bob, nil), 404, "user_not_found")
	// The email is free again.
	expect(t, p.Do("POST", base, map[string]any{"email": "robert@acme.test"}), 200, "")
}

func TestUserValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	org := e.createOrg(e.partner, "Acme")
	other := e.createOrg(e.partner, "Other")
	otherRole := e.partner.Do("POST", "/api/organizations/"+other+"/users", map[string]any{"email": "x@o.test"}).Data()["role_ids"].([]any)[0]
	e.createUser(e.partner, org, "taken@acme.test", "user")
	base := "/api/organizations/" + org + "/users"
	cases := []struct {
		name   string
		body   any
		status int
		key    string
		field  string
	}{
		{"missing email", map[string]any{"role": "user"}, 400, "validation_failed", "email"},
		{"invalid email", map[string]any{"email": "not-an-email"}, 400, "validation_failed", "email"},
		{"display name", map[string]any{"email": "Ada <ada@acme.test>"}, 400, "validation_failed", "email"},
		{"no domain dot", map[string]any{"email": "ada@localhost"}, 400, "validation_failed", "email"},
		{"too long", map[string]any{"email": strings.Repeat("a", 250) + "@a.test"}, 400, "validation_failed", "email"},
		{"unknown legacy role", map[string]any{"email": "a@acme.test", "role": "owner"}, 400, "validation_failed", "role"},
		{"empty role_ids", map[string]any{"email": "a@acme.test", "role_ids": []string{}}, 400, "validation_failed", "role_ids"},
		{"role and role_ids", map[string]any{"email": "a@acme.test", "role": "admin", "role_ids": []string{"x"}}, 400, "validation_failed", "role_ids"},
		{"unknown role id", map[string]any{"email": "a@acme.test", "role_ids": []string{"nope"}}, 400, "validation_failed", "role_ids"},
		{"another organization's role", map[string]any{"email": "a@acme.test", "role_ids": []any{otherRole}}, 400, "validation_failed", "role_ids"},
		{"role_ids not an array", map[string]any{"email": "a@acme.test", "role_ids": "x"}, 400, "validation_failed", "role_ids"},
		{"duplicate email ignoring case", map[string]any{"email": "TAKEN@acme.test"}, 409, "user_email_taken", ""},
		{"unknown field", map[string]any{"email": "a@acme.test", "name": "Ada"}, 400, "unknown_field", "field"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.partner.Do("POST", base, tc.body)
			expect(t, r, tc.status, tc.key)
			if tc.field != "" {
				if _, ok := r.JSON()["metadata"].(map[string]any)[tc.field]; !ok {
					t.Fatalf("metadata does not name %q: %s", tc.field, r.Body)
				}
			}
		})
	}
	expect(t, e.partner.Do("GET", "/api/organizations/not-a-uuid/users", nil), 404, "organization_not_found")
	expect(t, e.partner.Do("GET", base+"/not-a-uuid", nil), 404, "user_not_found")
	expect(t, e.partner.Do("GET", base+"/00000000-0000-0000-0000-000000000000", nil), 404, "user_not_found")
}

// A user key of an admin manages its own organization's users through /api/organization/users;
// a member's key is refused; neither reaches another organization.
func TestCurrentOrganizationUsers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	org := e.createOrg(e.partner, "Acme")
	adminKey := e.anon.As(e.mintKey(e.partner, org, e.createUser(e.partner, org, "ada@acme.test", "admin")))
	memberID := e.createUser(e.partner, org, "bob@acme.test", "user")
	memberKey := e.anon.As(e.mintKey(e.partner, org, memberID))
	other := e.createOrg(e.partner, "Other")
	stranger := e.createUser(e.partner, other, "eve@other.test", "user")

	list := adminKey.Do("GET", "/api/organization/users", nil)
	expect(t, list, 200, "")
	if len(list.List()) != 2 {
		t.Fatalf("admin sees %d users, want 2", len(list.List()))
	}
	created := adminKey.Do("POST", "/api/organization/users", map[string]any{"email": "cy@acme.test"})
	expect(t, created, 200, "")
	if created.Data()["organization_id"] != org {
		t.Fatalf("created in the wrong organization: %s", created.Body)
	}
	cy := created.Data()["id"].(string)
	expect(t, adminKey.Do("GET", "/api/organization/users/"+cy, nil), 200, "")
	expect(t, adminKey.Do("PUT", "/api/organization/users/"+cy, map[string]any{"email": "cyrus@acme.test", "role": "admin"}), 200, "")
	expect(t, adminKey.Do("DELETE", "/api/organization/users/"+cy, nil), 200, "")
	expect(t, adminKey.Do("GET", "/api/organization/users/"+stranger, nil), 404, "user_not_found")

	// Members read users (users:read) but may not change them (users:write).
	expect(t, memberKey.Do("GET", "/api/organization/users", nil), 200, "")
	expect(t, memberKey.Do("POST", "/api/organization/users", map[string]any{"email": "z@acme.test"}), 403, "permission_denied")
	expect(t, memberKey.Do("DELETE", "/api/organization/users/"+memberID, nil), 403, "permission_denied")

	// Promotion takes effect on the member's next request with the same key.
	expect(t, e.partner.Do("PUT", "/api/organizations/"+org+"/users/"+memberID, map[string]any{"email": "bob@acme.test", "role": "admin"}), 200, "")
	expect(t, memberKey.Do("POST", "/api/organization/users", map[string]any{"email": "z@acme.test"}), 200, "")

	// A partner key manages its owner organization's users through the same routes.
	own := e.partner.Do("POST", "/api/organization/users", map[string]any{"email": "staff@partner.test", "role": "admin"})
	expect(t, own, 200, "")
	if own.Data()["organization_id"] != e.ownerID {
		t.Fatalf("partner's own users belong to its owner organization: %s", own.Body)
	}
}

// The last-admin guard keeps an organization from locking itself out, so it binds the
// organization's own credentials. A partner owns its organizations and can always create a new
// admin: its key, and a token minted from it unnarrowed, may demote or delete any user, the last
// admin included, as Polytomic's SDKs do when they replace a root user.
func TestPartnerMayRemoveLastAdmin(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	org := e.createOrg(e.partner, "Acme")
	users := "/api/organizations/" + org + "/users/"
	root := e.createUser(e.partner, org, "root@acme.test", "admin")
	rootKey := e.anon.As(e.mintKey(e.partner, org, root))
	orgKey := e.anon.As(rootKey.Do("POST", "/api/keys", map[string]any{"name": "backend", "kind": "organization", "role": "admin"}).Data()["value"].(string))
	rootToken := e.anon.As(rootKey.Do("POST", "/api/auth/tokens", nil).Data()["token"].(string))
	orgToken := e.anon.As(orgKey.Do("POST", "/api/auth/tokens", nil).Data()["token"].(string))
	demote := map[string]any{"email": "root@acme.test", "role": "user"}

	// Organization credentials keep the guard: user keys, organization admin keys, their tokens.
	for name, c := range map[string]*servertest.Client{
		"user key": rootKey, "organization key": orgKey, "user key's token": rootToken, "organization key's token": orgToken,
	} {
		expect(t, c.Do("PUT", "/api/organization/users/"+root, demote), 409, "last_admin")
		expect(t, c.Do("DELETE", "/api/organization/users/"+root, nil), 409, "last_admin")
		if got := e.partner.Do("GET", users+root, nil).Data()["role"]; got != "admin" {
			t.Fatalf("%s: the refused change happened anyway: role %v", name, got)
		}
	}

	// The partner key demotes the only admin (PUT, and PATCH at a version that has it) ...
	put := e.partner.Do("PUT", users+root, demote)
	expect(t, put, 200, "")
	if put.Data()["role"] != "user" {
		t.Fatalf("PUT by the partner did not demote: %s", put.Body)
	}
	expect(t, e.partner.Do("PUT", users+root, map[string]any{"email": "root@acme.test", "role": "admin"}), 200, "")
	patched := e.partner.Do("PATCH", users+root, map[string]any{"role": "user"}, "X-Polytomic-Version", "2024-02-08")
	expect(t, patched, 200, "")
	if patched.Data()["role"] != "user" {
		t.Fatalf("PATCH by the partner did not demote: %s", patched.Body)
	}
	expect(t, e.partner.Do("PUT", users+root, map[string]any{"email": "root@acme.test", "role": "admin"}), 200, "")
	// ... and deletes it, revoking its keys; then it gives the organization a new root user.
	expect(t, e.partner.Do("DELETE", users+root, nil), 200, "")
	expect(t, rootKey.Do("GET", "/api/me", nil), 401, "invalid_token")
	if n := len(e.partner.Do("GET", "/api/organizations/"+org+"/users", nil).List()); n != 0 {
		t.Fatalf("%d users left after deleting the only one", n)
	}
	root = e.createUser(e.partner, org, "new-root@acme.test", "admin")

	// So does an unrestricted token minted from the partner key.
	partnerToken := e.anon.As(e.partner.Do("POST", "/api/auth/tokens", nil).Data()["token"].(string))
	expect(t, partnerToken.Do("DELETE", users+root, nil), 200, "")

	// A partner token narrowed by scopes cannot touch an admin at all (on its owner
	// organization, the routes that take narrowed credentials): removing the Admin role needs
	// every permission.
	staff := e.createUser(e.partner, e.ownerID, "staff@partner.test", "admin")
	narrowed := e.anon.As(e.partner.Do("POST", "/api/auth/tokens", map[string]any{"scopes": []string{"users:read", "users:write"}}).Data()["token"].(string))
	expect(t, narrowed.Do("PUT", "/api/organization/users/"+staff, map[string]any{"email": "staff@partner.test", "role": "user"}), 403, "permission_escalation")
	expect(t, narrowed.Do("DELETE", "/api/organization/users/"+staff, nil), 403, "permission_escalation")
	// The partner key itself may remove its owner organization's last admin too, on either route.
	expect(t, e.partner.Do("DELETE", "/api/organization/users/"+staff, nil), 200, "")
}
