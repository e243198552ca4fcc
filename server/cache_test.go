package server_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tenantry/tenantry/keys"
	"github.com/tenantry/tenantry/server/servertest"
)

// Authentication answers from the principal cache, and never stale: each change that can
// alter what a credential may do takes effect on the next request, for the key and for the
// tokens minted from it, though both were just used (and so cached). Expiry and the end of a
// grace period are in TestKeyExpiryAndUsage and TestRotation.
func TestPrincipalCacheInvalidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// warm uses each credential once, so it is cached, and returns what /api/me says.
	warm := func(t *testing.T, cs ...*servertest.Client) {
		t.Helper()
		for _, c := range cs {
			expect(t, c.Do("GET", "/api/me", nil), 200, "")
		}
	}
	token := func(t *testing.T, c *servertest.Client) *servertest.Client {
		t.Helper()
		r := c.Do("POST", "/api/auth/tokens", nil)
		expect(t, r, 200, "")
		return e.anon.As(r.Data()["token"].(string))
	}
	refused := func(t *testing.T, cs ...*servertest.Client) {
		t.Helper()
		for _, c := range cs {
			expect(t, c.Do("GET", "/api/me", nil), 401, "invalid_token")
		}
	}
	permissions := func(t *testing.T, c *servertest.Client) []string {
		t.Helper()
		r := c.Do("GET", "/api/me", nil)
		expect(t, r, 200, "")
		return toStrings(r.Data()["permissions"])
	}

	t.Run("key revoked", func(t *testing.T) {
		o := e.newOrg("Revoke")
		r := o.member.Do("POST", "/api/keys", map[string]any{"name": "ci"})
		ci := e.anon.As(r.Data()["value"].(string))
		tok := token(t, ci)
		warm(t, ci, tok)
		expect(t, o.admin.Do("DELETE", "/api/keys/"+r.Data()["id"].(string), nil), 200, "")
		refused(t, ci, tok)
		warm(t, o.member)
	})
	t.Run("key rotated", func(t *testing.T) {
		o := e.newOrg("Rotate")
		r := o.member.Do("POST", "/api/keys", map[string]any{"name": "ci"})
		ci := e.anon.As(r.Data()["value"].(string))
		tok := token(t, ci)
		warm(t, ci, tok)
		rot := o.admin.Do("POST", "/api/keys/"+r.Data()["id"].(string)+"/rotate", nil)
		expect(t, rot, 200, "")
		refused(t, ci, tok)
		warm(t, e.anon.As(rot.Data()["value"].(string)))
	})
	t.Run("key rotated with grace, then its value used to manage keys", func(t *testing.T) {
		o := e.newOrg("Grace")
		r := o.member.Do("POST", "/api/keys", map[string]any{"name": "ci"})
		ci := e.anon.As(r.Data()["value"].(string))
		warm(t, ci)
		expect(t, o.admin.Do("POST", "/api/keys/"+r.Data()["id"].(string)+"/rotate", map[string]any{"grace_seconds": 600}), 200, "")
		warm(t, ci) // still works in its grace period, but as a rotated-out value now:
		expect(t, ci.Do("DELETE", "/api/keys/"+r.Data()["id"].(string), nil), 403, "rotated_key_value")
	})
	t.Run("partner-minted key replaced with force", func(t *testing.T) {
		o := e.newOrg("Force")
		tok := token(t, o.member)
		warm(t, o.member, tok)
		replaced := e.anon.As(e.mintKey(e.partner, o.id, o.memberID))
		refused(t, o.member, tok)
		warm(t, replaced)
	})
	t.Run("user deleted", func(t *testing.T) {
		o := e.newOrg("Delete")
		tok := token(t, o.member)
		warm(t, o.member, tok)
		expect(t, o.admin.Do("DELETE", "/api/organization/users/"+o.memberID, nil), 200, "")
		refused(t, o.member, tok)
	})
	t.Run("user's roles changed", func(t *testing.T) {
		o := e.newOrg("Demote")
		second := e.createUser(e.partner, o.id, "second@demote.test", "admin")
		key := e.anon.As(e.mintKey(e.partner, o.id, second))
		tok := token(t, key)
		if p := permissions(t, key); !slices.Contains(p, "users:write") || !slices.Contains(permissions(t, tok), "users:write") {
			t.Fatalf("an admin: %v", p)
		}
		expect(t, o.admin.Do("PUT", "/api/organization/users/"+second, map[string]any{"email": "second@demote.test", "role": "user"}), 200, "")
		for _, c := range []*servertest.Client{key, tok} {
			if p := permissions(t, c); slices.Contains(p, "users:write") {
				t.Fatalf("demoted to member, still: %v", p)
			}
			expect(t, c.Do("POST", "/api/organization/users", map[string]any{"email": "x@demote.test"}), 403, "permission_denied")
		}
	})
	t.Run("role's actions changed", func(t *testing.T) {
		o := e.newOrg("Custom")
		role := o.admin.Do("POST", "/api/permissions/roles", map[string]any{"name": "Readers", "actions": []string{"users:read", "datasets:read"}})
		expect(t, role, 200, "")
		u := o.admin.Do("POST", "/api/organization/users", map[string]any{"email": "reader@custom.test", "role_ids": []string{role.Data()["id"].(string)}})
		expect(t, u, 200, "")
		key := e.anon.As(e.mintKey(e.partner, o.id, u.Data()["id"].(string)))
		tok := token(t, key)
		warm(t, key, tok)
		expect(t, key.Do("GET", "/api/organization/users", nil), 200, "")
		expect(t, o.admin.Do("PUT", "/api/permissions/roles/"+role.Data()["id"].(string),
			map[string]any{"name": "Readers", "actions": []string{"datasets:read"}}), 200, "")
		for _, c := range []*servertest.Client{key, tok} {
			expect(t, c.Do("GET", "/api/organization/users", nil), 403, "permission_denied")
			if p := strings.Join(permissions(t, c), " "); p != "datasets:read" {
				t.Fatalf("permissions after the role changed: %q", p)
			}
		}
	})
	t.Run("policy changed", func(t *testing.T) {
		// Policies are read with the resource, never cached: a change applies to the next
		// request of cached credentials, and invalidates nothing (the epoch stays).
		o := e.newOrg("Policy")
		pol := o.admin.Do("POST", "/api/permissions/policies", map[string]any{"name": "Admins only"}).Data()["id"].(string)
		conn := o.admin.Do("POST", "/api/connections", map[string]any{"name": "Ledger", "type": "mysql", "policies": []string{pol}}).Data()["id"].(string)
		tok := token(t, o.member)
		warm(t, o.member, tok)
		for _, c := range []*servertest.Client{o.member, tok} {
			expect(t, c.Do("GET", "/api/connections/"+conn, nil), 404, "connection_not_found")
		}
		epoch := func() (n int64) {
			t.Helper()
			if err := e.db.Get(&n, `SELECT n FROM credential_epoch`); err != nil {
				t.Fatal(err)
			}
			return n
		}
		before := epoch()
		member := roleID(t, o.admin, "Member")
		expect(t, o.admin.Do("PUT", "/api/permissions/policies/"+pol, map[string]any{"name": "Members too",
			"policy_actions": []map[string]any{{"action": "connections:read", "role_ids": []string{member}}}}), 200, "")
		for _, c := range []*servertest.Client{o.member, tok} {
			expect(t, c.Do("GET", "/api/connections/"+conn, nil), 200, "")
		}
		expect(t, o.admin.Do("PUT", "/api/permissions/policies/"+pol, map[string]any{"name": "Admins only"}), 200, "")
		expect(t, o.member.Do("GET", "/api/connections/"+conn, nil), 404, "connection_not_found")
		expect(t, o.admin.Do("PUT", "/api/connections/"+conn, map[string]any{"name": "Ledger", "type": "mysql", "policies": []string{}}), 200, "")
		expect(t, tok.Do("GET", "/api/connections/"+conn, nil), 200, "")
		if after := epoch(); after != before {
			t.Fatalf("policy changes moved the credential epoch from %d to %d: they invalidate nothing", before, after)
		}
	})
	t.Run("user's email and organization's name and version changed", func(t *testing.T) {
		o := e.newOrg("Rename")
		tok := token(t, o.member)
		warm(t, o.member, tok)
		expect(t, o.admin.Do("PUT", "/api/organization/users/"+o.memberID, map[string]any{"email": "renamed@rename.test", "role": "user"}), 200, "")
		expect(t, e.partner.Do("PUT", "/api/organizations/"+o.id, map[string]any{"name": "Renamed", "api_version": "2024-02-08"}), 200, "")
		for _, c := range []*servertest.Client{o.member, tok} {
			r := c.Do("GET", "/api/me", nil)
			expect(t, r, 200, "")
			if r.Data()["organization_name"] != "Renamed" || r.Header.Get("X-Polytomic-Version") != "2024-02-08" {
				t.Fatalf("after the change: %s %s", r.Header.Get("X-Polytomic-Version"), r.Body)
			}
		}
		if r := o.member.Do("GET", "/api/me", nil); r.Data()["email"] != "renamed@rename.test" {
			t.Fatalf("the user's new email: %s", r.Body)
		}
	})
	t.Run("organization deleted", func(t *testing.T) {
		o := e.newOrg("Gone")
		org := e.anon.As(o.admin.Do("POST", "/api/keys", map[string]any{"name": "backend", "kind": "organization", "role": "admin"}).Data()["value"].(string))
		tok := token(t, o.member)
		warm(t, o.member, o.admin, org, tok)
		expect(t, e.partner.Do("DELETE", "/api/organizations/"+o.id, nil), 200, "")
		refused(t, o.member, o.admin, org, tok)
		warm(t, e.partner)
	})
	t.Run("partner key revoked", func(t *testing.T) {
		second := e.partner.Do("POST", "/api/partner/keys", map[string]any{"name": "second"})
		expect(t, second, 200, "")
		key := e.anon.As(second.Data()["value"].(string))
		tok := token(t, key)
		warm(t, key, tok)
		expect(t, e.partner.Do("DELETE", "/api/partner/keys/"+second.Data()["id"].(string), nil), 200, "")
		refused(t, key, tok)
		warm(t, e.partner)
	})
	t.Run("signing key rotated", func(t *testing.T) {
		o := e.newOrg("Signing")
		before := token(t, o.member)
		warm(t, before)
		rotateSigningKey(t, e)
		after := token(t, o.member)
		warm(t, before, after) // tokens signed before keep verifying until they expire
		e.clock.advance(16 * time.Minute)
		refused(t, before, after) // and stop then, cached or not
		warm(t, o.member)
	})
	t.Run("a change in another organization leaves these alone", func(t *testing.T) {
		a, b := e.newOrg("Left"), e.newOrg("Right")
		warm(t, a.member)
		expect(t, b.admin.Do("DELETE", "/api/organization/users/"+b.memberID, nil), 200, "")
		warm(t, a.member)
		refused(t, b.member)
	})
}

// rotateSigningKey rotates the token signing key as `tenantry signing-key rotate` does.
func rotateSigningKey(t *testing.T, e *env) {
	t.Helper()
	svc := keys.NewService(e.db)
	svc.Sealer = e.sealer
	if _, err := svc.RotateSigningKey(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// Two servers on one database, each with its own connections and cache, as two replicas are:
// a change made through A is honoured by B within a second (on PostgreSQL by its notice, on
// SQLite by the polled credential epoch), for a key, a token, a role change and a deletion.
func TestChangesReachAnotherReplica(t *testing.T) {
	t.Parallel()
	a, b := twoServers(t)
	onB := func(c *servertest.Client) *servertest.Client { return b.anon.As(c.Key) }
	within := func(t *testing.T, what string, ok func() bool) {
		t.Helper()
		start := time.Now()
		for !ok() {
			if time.Since(start) > time.Second {
				t.Fatalf("B still does not see it after %v: %s", time.Since(start), what)
			}
			time.Sleep(2 * time.Millisecond)
		}
		t.Logf("%s: seen by B %v after A answered", what, time.Since(start).Round(time.Millisecond))
	}
	o := a.newOrg("Replicated")
	tok := a.anon.As(o.member.Do("POST", "/api/auth/tokens", nil).Data()["token"].(string))
	second := a.createUser(a.partner, o.id, "second@replicated.test", "admin")
	secondKey := a.anon.As(a.mintKey(a.partner, o.id, second))
	for _, c := range []*servertest.Client{o.member, tok, secondKey} {
		expect(t, onB(c).Do("GET", "/api/me", nil), 200, "")
	}

	expect(t, o.admin.Do("PUT", "/api/organization/users/"+second, map[string]any{"email": "second@replicated.test", "role": "user"}), 200, "")
	within(t, "a role change", func() bool {
		return onB(secondKey).Do("POST", "/api/organization/users", map[string]any{"email": "x@replicated.test"}).Status == 403
	})
	expect(t, o.admin.Do("DELETE", "/api/organization/users/"+o.memberID, nil), 200, "")
	within(t, "a user deletion (its key)", func() bool { return onB(o.member).Do("GET", "/api/me", nil).Status == 401 })
	within(t, "a user deletion (its token)", func() bool { return onB(tok).Do("GET", "/api/me", nil).Status == 401 })
	keyID := onB(secondKey).Do("GET", "/api/me", nil).Data()["key_id"].(string)
	expect(t, a.partner.Do("DELETE", "/api/organizations/"+o.id+"/keys/"+keyID, nil), 200, "")
	within(t, "a revocation", func() bool { return onB(secondKey).Do("GET", "/api/me", nil).Status == 401 })
}
