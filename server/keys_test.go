package server_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tenantry/tenantry/server/servertest"
	"github.com/tenantry/tenantry/tenants"
)

// org is an organization with an admin and a member, each holding a partner-issued key.
type org struct {
	id            string
	adminID       string
	memberID      string
	admin, member *servertest.Client
}

func (e *env) newOrg(name string) org {
	e.t.Helper()
	o := org{id: e.createOrg(e.partner, name)}
	o.adminID = e.createUser(e.partner, o.id, "admin@"+strings.ToLower(name)+".test", "admin")
	o.memberID = e.createUser(e.partner, o.id, "member@"+strings.ToLower(name)+".test", "user")
	o.admin = e.anon.As(e.mintKey(e.partner, o.id, o.adminID))
	o.member = e.anon.As(e.mintKey(e.partner, o.id, o.memberID))
	return o
}

func TestPersonalKeys(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	o := e.newOrg("Acme")

	r := o.member.Do("POST", "/api/keys", map[string]any{"name": "ci", "scopes": []string{"datasets:read"}})
	expect(t, r, 200, "")
	k := r.Data()
	value := k["value"].(string)
	if !strings.HasPrefix(value, "tuk_") || k["kind"] != "user" || k["user_id"] != o.memberID || k["hint"] != "tuk_..."+value[len(value)-4:] ||
		r.Header.Get("Cache-Control") != "no-store" || k["created_by"] == nil {
		t.Fatalf("created key: %s", r.Body)
	}
	id := k["id"].(string)
	// Scopes narrow: the key has datasets:read only.
	ci := e.anon.As(value)
	if got := strings.Join(toStrings(ci.Do("GET", "/api/me", nil).Data()["permissions"]), " "); got != "datasets:read" {
		t.Fatalf("key permissions %q, want the member's roles ∩ scopes = datasets:read", got)
	}
	expect(t, ci.Do("GET", "/api/organization/users", nil), 403, "permission_denied")

	got := o.member.Do("GET", "/api/keys/"+id, nil)
	expect(t, got, 200, "")
	if strings.Contains(string(got.Body), value) || got.Data()["value"] != nil {
		t.Fatalf("a key's value is shown again: %s", got.Body)
	}
	expect(t, o.member.Do("POST", "/api/keys", map[string]any{"name": "CI "}), 200, "") // another owner's namespace? no: same owner, different name
	expect(t, o.member.Do("POST", "/api/keys", map[string]any{"name": "ci"}), 409, "key_name_taken")
	expect(t, o.admin.Do("POST", "/api/keys", map[string]any{"name": "ci"}), 200, "") // names are per owner

	for _, tc := range []struct {
		name string
		body map[string]any
		key  string
	}{
		{"past expiry", map[string]any{"name": "x1", "expires_at": "2001-01-01T00:00:00Z"}, "expires_at"},
		{"bad expiry", map[string]any{"name": "x2", "expires_at": "tomorrow"}, "expires_at"},
		{"unknown scope", map[string]any{"name": "x3", "scopes": []string{"everything"}}, "scopes"},
		{"bad kind", map[string]any{"name": "x4", "kind": "robot"}, "kind"},
		{"role on a user key", map[string]any{"name": "x5", "role": "admin"}, "role"},
		{"organization key without role", map[string]any{"name": "x6", "kind": "organization"}, "role"},
		{"no name", map[string]any{}, "name"},
	} {
		r := o.admin.Do("POST", "/api/keys", tc.body)
		expect(t, r, 400, "validation_failed")
		if _, ok := r.JSON()["metadata"].(map[string]any)[tc.key]; !ok {
			t.Fatalf("%s: metadata does not name %s: %s", tc.name, tc.key, r.Body)
		}
	}

	// Members may not issue keys for others, nor organization keys.
	expect(t, o.member.Do("POST", "/api/keys", map[string]any{"name": "x", "user_id": o.adminID}), 403, "permission_denied")
	expect(t, o.member.Do("POST", "/api/keys", map[string]any{"name": "x", "kind": "organization", "role": "asker"}), 403, "permission_denied")

	// Listing: without keys:read a scoped credential sees itself only (an unscoped one: its
	// user's keys); Members hold keys:read ("read everything") and see every key of the
	// organization, never a value.
	narrow := o.member.Do("POST", "/api/keys", map[string]any{"name": "narrow", "scopes": []string{"datasets:read"}})
	expect(t, narrow, 200, "")
	mine := e.anon.As(narrow.Data()["value"].(string)).Do("GET", "/api/keys", nil)
	expect(t, mine, 200, "")
	for _, k := range mine.List() {
		if k["user_id"] != o.memberID {
			t.Fatalf("a key without keys:read sees another user's key: %v", k)
		}
	}
	if len(mine.List()) != 1 || mine.List()[0]["id"] != narrow.Data()["id"] {
		t.Fatalf("a scoped key must see itself only: %s", mine.Body)
	}
	if strings.Contains(string(o.member.Do("GET", "/api/keys", nil).Body), `"value"`) {
		t.Fatalf("a list carries key values")
	}
	all := o.admin.Do("GET", "/api/keys?limit=2", nil)
	expect(t, all, 200, "")
	seen := len(all.List())
	for next := all.JSON()["pagination"].(map[string]any)["next_page_token"].(string); next != ""; {
		page := o.admin.Do("GET", "/api/keys?limit=2&page_token="+next, nil)
		expect(t, page, 200, "")
		seen += len(page.List())
		next = page.JSON()["pagination"].(map[string]any)["next_page_token"].(string)
	}
	if seen != 6 { // two partner-issued; the member's ci, CI and narrow; the admin's ci
		t.Fatalf("admin paged through %d keys, want 6", seen)
	}
	expect(t, o.admin.Do("GET", "/api/keys?limit=0", nil), 400, "validation_failed")
	expect(t, o.admin.Do("GET", "/api/keys?page_token=nonsense", nil), 400, "validation_failed")

	// Revocation is immediate; the revoked key is still readable, with revoked_at.
	rev := o.member.Do("DELETE", "/api/keys/"+id, nil)
	expect(t, rev, 200, "")
	if rev.Data()["revoked_at"] == nil {
		t.Fatalf("revoked key: %s", rev.Body)
	}
	expect(t, ci.Do("GET", "/api/me", nil), 401, "invalid_token")
	// The name is free again.
	expect(t, o.member.Do("POST", "/api/keys", map[string]any{"name": "ci"}), 200, "")
}

func TestKeyExpiryAndUsage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	o := e.newOrg("Acme")
	soon := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	r := o.admin.Do("POST", "/api/keys", map[string]any{"name": "short", "expires_at": soon})
	expect(t, r, 200, "")
	short := e.anon.As(r.Data()["value"].(string))
	id := r.Data()["id"].(string)
	me := short.Do("GET", "/api/me", nil).Data()
	if me["expires_at"] == nil || !strings.HasPrefix(me["expires_at"].(string), soon[:16]) {
		t.Fatalf("/api/me expires_at %v, want %s", me["expires_at"], soon)
	}
	// A key made by an expiring key expires with it, and may not outlive it.
	child := short.Do("POST", "/api/keys", map[string]any{"name": "child"})
	expect(t, child, 200, "")
	if child.Data()["expires_at"] == nil {
		t.Fatalf("a key made by an expiring key must expire too: %s", child.Body)
	}
	later := time.Now().Add(48 * time.Hour).UTC().Format(time.RFC3339)
	expect(t, short.Do("POST", "/api/keys", map[string]any{"name": "child2", "expires_at": later}), 403, "permission_escalation")

	// Expired: refused with the same 401 as any invalid key, though it was just used (and so
	// cached): expiry is checked at each use.
	expect(t, short.Do("GET", "/api/me", nil), 200, "")
	e.clock.advance(time.Hour + time.Second)
	expect(t, short.Do("GET", "/api/me", nil), 401, "invalid_token")
	expect(t, e.anon.As(child.Data()["value"].(string)).Do("GET", "/api/me", nil), 401, "invalid_token")
	_ = id

	// last_used_at is written asynchronously, at most once a minute per key.
	before := o.admin.Do("GET", "/api/me", nil).Data()["key_id"].(string)
	e.srv.FlushUsage(context.Background())
	first := o.admin.Do("GET", "/api/keys/"+before, nil).Data()["last_used_at"]
	if first == nil {
		t.Fatalf("last_used_at not recorded")
	}
	for range 5 {
		o.admin.Do("GET", "/api/me", nil)
	}
	e.srv.FlushUsage(context.Background())
	if again := o.admin.Do("GET", "/api/keys/"+before, nil).Data()["last_used_at"]; again != first {
		t.Fatalf("last_used_at rewritten within a minute: %v then %v", first, again)
	}
}

func TestRotation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	o := e.newOrg("Acme")
	create := func(name string) (string, *servertest.Client) {
		r := o.admin.Do("POST", "/api/keys", map[string]any{"name": name})
		expect(t, r, 200, "")
		return r.Data()["id"].(string), e.anon.As(r.Data()["value"].(string))
	}
	id, old := create("no-grace")
	rot := o.admin.Do("POST", "/api/keys/"+id+"/rotate", nil)
	expect(t, rot, 200, "")
	fresh := e.anon.As(rot.Data()["value"].(string))
	if rot.Data()["id"] != id || fresh.Key == old.Key || rot.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("rotate: %s", rot.Body)
	}
	expect(t, old.Do("GET", "/api/me", nil), 401, "invalid_token")
	expect(t, fresh.Do("GET", "/api/me", nil), 200, "")

	id, old = create("grace")
	rot = o.admin.Do("POST", "/api/keys/"+id+"/rotate", map[string]any{"grace_seconds": 3600})
	expect(t, rot, 200, "")
	fresh = e.anon.As(rot.Data()["value"].(string))
	expect(t, old.Do("GET", "/api/me", nil), 200, "")
	expect(t, fresh.Do("GET", "/api/me", nil), 200, "")
	// When the grace period ends, the old value stops (and its tokens with it), though it was
	// just used: the end of a grace period is checked at each use.
	tok := old.Do("POST", "/api/auth/tokens", map[string]any{"token_ttl": 7200})
	expect(t, tok, 200, "")
	oldToken := e.anon.As(tok.Data()["token"].(string))
	expect(t, oldToken.Do("GET", "/api/me", nil), 200, "")
	e.clock.advance(time.Hour + time.Second)
	expect(t, old.Do("GET", "/api/me", nil), 401, "invalid_token")
	expect(t, oldToken.Do("GET", "/api/me", nil), 401, "invalid_token")
	expect(t, fresh.Do("GET", "/api/me", nil), 200, "")

	for _, g := range []any{-1, 604801, "soon"} {
		r := o.admin.Do("POST", "/api/keys/"+id+"/rotate", map[string]any{"grace_seconds": g})
		expect(t, r, 400, "validation_failed")
	}
	// A member may rotate its own key but not the admin's; a revoked key cannot be rotated.
	expect(t, o.member.Do("POST", "/api/keys/"+id+"/rotate", nil), 403, "permission_denied")
	expect(t, o.member.Do("DELETE", "/api/keys/"+id, nil), 403, "permission_denied")
	expect(t, o.admin.Do("DELETE", "/api/keys/"+id, nil), 200, "")
	expect(t, o.admin.Do("POST", "/api/keys/"+id+"/rotate", nil), 409, "key_inactive")
	mineID := o.member.Do("GET", "/api/me", nil).Data()["key_id"].(string)
	rot = o.member.Do("POST", "/api/keys/"+mineID+"/rotate", nil)
	expect(t, rot, 200, "")
	expect(t, o.member.Do("GET", "/api/me", nil), 401, "invalid_token")
}

func TestOrganizationKeys(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	o := e.newOrg("Acme")
	r := o.admin.Do("POST", "/api/keys", map[string]any{"name": "backend", "kind": "organization", "role": "admin"})
	expect(t, r, 200, "")
	if !strings.HasPrefix(r.Data()["value"].(string), "tok_") || r.Data()["role"] != "admin" || r.Data()["user_id"] != nil {
		t.Fatalf("organization key: %s", r.Body)
	}
	backend := e.anon.As(r.Data()["value"].(string))
	me := backend.Do("GET", "/api/me", nil).Data()
	if me["is_organization"] != true || me["kind"] != "organization" || me["id"] != nil || len(me["permissions"].([]any)) != len(tenants.Catalogue) {
		t.Fatalf("admin organization key identity: %v", me)
	}
	expect(t, backend.Do("POST", "/api/organization/users", map[string]any{"email": "new@acme.test"}), 200, "")
	// An organization key is not a user: it names the user a key is for.
	expect(t, backend.Do("POST", "/api/keys", map[string]any{"name": "for-member"}), 400, "validation_failed")
	expect(t, backend.Do("POST", "/api/keys", map[string]any{"name": "for-member", "user_id": o.memberID}), 200, "")

	// A scope its role does not grant could never be used: refused, not kept powerless.
	r = o.admin.Do("POST", "/api/keys", map[string]any{"name": "widget", "kind": "organization", "role": "asker",
		"scopes": []string{"datasets:read", "datasets:write"}})
	expect(t, r, 400, "validation_failed")
	if msg, _ := r.JSON()["metadata"].(map[string]any)["scopes"].(string); !strings.Contains(msg, "datasets:write") || strings.Contains(msg, "datasets:read") {
		t.Fatalf("the refusal names the scopes the role does not grant: %s", r.Body)
	}
	expect(t, o.admin.Do("POST", "/api/keys", map[string]any{"name": "widget-ro", "kind": "organization", "role": "asker",
		"scopes": []string{"datasets:read"}}), 200, "")
	r = o.admin.Do("POST", "/api/keys", map[string]any{"name": "widget", "kind": "organization", "role": "asker"})
	expect(t, r, 200, "")
	asker := e.anon.As(r.Data()["value"].(string))
	if got := strings.Join(toStrings(asker.Do("GET", "/api/me", nil).Data()["permissions"]), " "); got != "connections:read datasets:read" {
		t.Fatalf("asker permissions: %q", got)
	}
	for _, call := range [][2]string{{"GET", "/api/organization"}, {"GET", "/api/organization/users"}, {"GET", "/api/keys"},
		{"GET", "/api/permissions/roles"}, {"POST", "/api/keys"}} {
		expect(t, asker.Do(call[0], call[1], nil), 403, "asker_not_allowed")
	}
	tok := asker.Do("POST", "/api/auth/tokens", nil)
	expect(t, tok, 200, "")
	askerToken := e.anon.As(tok.Data()["token"].(string))
	if got := askerToken.Do("GET", "/api/me", nil).Data(); got["organization_role"] != "asker" || got["kind"] != "token" {
		t.Fatalf("asker token identity: %v", got)
	}
	expect(t, askerToken.Do("GET", "/api/organization/users", nil), 403, "asker_not_allowed")
}

func TestPartnerKeys(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	list := e.partner.Do("GET", "/api/partner/keys", nil)
	expect(t, list, 200, "")
	if len(list.List()) != 1 || list.List()[0]["kind"] != "partner" {
		t.Fatalf("partner keys: %s", list.Body)
	}
	first := list.List()[0]["id"].(string)
	expect(t, e.partner.Do("DELETE", "/api/partner/keys/"+first, nil), 409, "last_partner_key")

	created := e.partner.Do("POST", "/api/partner/keys", map[string]any{"name": "rotation-2026"})
	expect(t, created, 200, "")
	second := e.anon.As(created.Data()["value"].(string))
	if !strings.HasPrefix(second.Key, "tpk_") {
		t.Fatalf("new partner key: %s", created.Body)
	}
	expect(t, second.Do("DELETE", "/api/partner/keys/"+first, nil), 200, "")
	expect(t, e.partner.Do("GET", "/api/me", nil), 401, "invalid_token")
	expect(t, second.Do("DELETE", "/api/partner/keys/"+created.Data()["id"].(string), nil), 409, "last_partner_key")
	e.partner = second

	// Partners see and revoke the keys of their organizations, and no one else's.
	o := e.newOrg("Acme")
	keys := second.Do("GET", "/api/organizations/"+o.id+"/keys", nil)
	expect(t, keys, 200, "")
	if len(keys.List()) != 2 {
		t.Fatalf("organization keys: %s", keys.Body)
	}
	memberKeyID := o.member.Do("GET", "/api/me", nil).Data()["key_id"].(string)
	expect(t, second.Do("DELETE", "/api/organizations/"+o.id+"/keys/"+memberKeyID, nil), 200, "")
	expect(t, o.member.Do("GET", "/api/me", nil), 401, "invalid_token")
	other, _ := e.newPartner("Partner B")
	expect(t, other.Do("GET", "/api/organizations/"+o.id+"/keys", nil), 404, "organization_not_found")
	adminKeyID := o.admin.Do("GET", "/api/me", nil).Data()["key_id"].(string)
	expect(t, other.Do("DELETE", "/api/partner/keys/"+adminKeyID, nil), 404, "key_not_found")
	// A user key is not a partner key.
	expect(t, o.admin.Do("GET", "/api/partner/keys", nil), 403, "partner_key_required")
	expect(t, second.Do("GET", "/api/keys", nil), 403, "partner_key_not_allowed")
}

// The attacks a review found, each refused: a rotated-out value taking its key back, an
// expiring key rotating a permanent one, a scoped key managing its siblings, a token minted
// from a leaked value outliving its rotation, a partner locking itself out by expiry.
func TestKeyManagementCannotEscalate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	o := e.newOrg("Acme")
	mk := func(c *servertest.Client, body map[string]any) (string, *servertest.Client) {
		t.Helper()
		r := c.Do("POST", "/api/keys", body)
		expect(t, r, 200, "")
		return r.Data()["id"].(string), e.anon.As(r.Data()["value"].(string))
	}

	// 1. The old value, inside its grace period, cannot rotate (or revoke, or mint) its key.
	id, old := mk(o.admin, map[string]any{"name": "leaked"})
	rot := o.admin.Do("POST", "/api/keys/"+id+"/rotate", map[string]any{"grace_seconds": 3600})
	expect(t, rot, 200, "")
	fresh := e.anon.As(rot.Data()["value"].(string))
	expect(t, old.Do("POST", "/api/keys/"+id+"/rotate", nil), 403, "rotated_key_value")
	expect(t, old.Do("DELETE", "/api/keys/"+id, nil), 403, "rotated_key_value")
	expect(t, old.Do("POST", "/api/keys", map[string]any{"name": "persist"}), 403, "rotated_key_value")
	expect(t, old.Do("GET", "/api/me", nil), 200, "") // it still works for everything else
	expect(t, fresh.Do("GET", "/api/me", nil), 200, "")

	// 2. A token minted from a value dies when that value is rotated out.
	tok := e.anon.As(fresh.Do("POST", "/api/auth/tokens", map[string]any{"token_ttl": 86400}).Data()["token"].(string))
	expect(t, tok.Do("GET", "/api/me", nil), 200, "")
	expect(t, o.admin.Do("POST", "/api/keys/"+id+"/rotate", nil), 200, "") // grace 0
	expect(t, tok.Do("GET", "/api/me", nil), 401, "invalid_token")

	// 3. An expiring key cannot rotate (and so obtain) a key that outlives it.
	soon := time.Now().Add(5 * time.Minute).UTC().Format(time.RFC3339)
	_, short := mk(o.admin, map[string]any{"name": "short", "expires_at": soon})
	permID, _ := mk(o.admin, map[string]any{"name": "backend", "kind": "organization", "role": "admin"})
	expect(t, short.Do("POST", "/api/keys/"+permID+"/rotate", nil), 403, "permission_escalation")

	// 4. A scoped key manages itself only, not its user's other keys.
	scopedID, scoped := mk(o.member, map[string]any{"name": "scoped", "scopes": []string{"datasets:read"}})
	memberKeyID := o.member.Do("GET", "/api/me", nil).Data()["key_id"].(string)
	expect(t, scoped.Do("DELETE", "/api/keys/"+memberKeyID, nil), 404, "key_not_found")
	expect(t, scoped.Do("POST", "/api/keys/"+memberKeyID+"/rotate", nil), 404, "key_not_found")
	expect(t, o.member.Do("GET", "/api/me", nil), 200, "")
	rotated := scoped.Do("POST", "/api/keys/"+scopedID+"/rotate", nil)
	expect(t, rotated, 200, "")
	expect(t, e.anon.As(rotated.Data()["value"].(string)).Do("DELETE", "/api/keys/"+scopedID, nil), 200, "")

	// 5. A custom role holding keys:write but not every permission cannot mint a key for an
	// admin (its permissions exceed the caller's).
	keyAdmin := o.admin.Do("POST", "/api/permissions/roles", map[string]any{"name": "KeyAdmin",
		"actions": []string{"keys:read", "keys:write", "users:read"}}).Data()["id"].(string)
	kaID := e.createUser(e.partner, o.id, "keys@acme.test", "user")
	expect(t, o.admin.Do("PUT", "/api/organization/users/"+kaID, map[string]any{"email": "keys@acme.test", "role_ids": []string{keyAdmin}}), 200, "")
	ka := e.anon.As(e.mintKey(e.partner, o.id, kaID))
	expect(t, ka.Do("POST", "/api/keys", map[string]any{"name": "steal", "user_id": o.adminID}), 403, "permission_escalation")
	expect(t, ka.Do("POST", "/api/keys", map[string]any{"name": "org", "kind": "organization", "role": "admin"}), 403, "permission_escalation")
	expect(t, ka.Do("POST", "/api/keys", map[string]any{"name": "org", "kind": "organization", "role": "asker", "scopes": []string{"datasets:read"}}), 403, "permission_escalation")
	expect(t, ka.Do("POST", "/api/keys/"+permID+"/rotate", nil), 403, "permission_escalation")

	// 6. A role holder cannot take actions away from a role beyond its own, nor demote an admin.
	mgrRole := o.admin.Do("POST", "/api/permissions/roles", map[string]any{"name": "Manager",
		"actions": []string{"roles:read", "roles:write", "users:read", "users:write"}}).Data()["id"].(string)
	mgrID := e.createUser(e.partner, o.id, "mgr@acme.test", "user")
	expect(t, o.admin.Do("PUT", "/api/organization/users/"+mgrID, map[string]any{"email": "mgr@acme.test", "role_ids": []string{mgrRole}}), 200, "")
	mgr := e.anon.As(e.mintKey(e.partner, o.id, mgrID))
	expect(t, mgr.Do("PUT", "/api/permissions/roles/"+keyAdmin, map[string]any{"name": "KeyAdmin", "actions": []string{"users:read"}}), 403, "permission_escalation")
	expect(t, mgr.Do("PUT", "/api/organization/users/"+o.adminID, map[string]any{"email": "admin@acme.test", "role": "user"}), 403, "permission_escalation")
	expect(t, mgr.Do("DELETE", "/api/organization/users/"+o.adminID, nil), 403, "permission_escalation")
}

func TestPartnerCannotLockItselfOut(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	first := e.partner.Do("GET", "/api/partner/keys", nil).List()[0]["id"].(string)
	soon := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	r := e.partner.Do("POST", "/api/partner/keys", map[string]any{"name": "temporary", "expires_at": soon})
	expect(t, r, 200, "")
	temp := e.anon.As(r.Data()["value"].(string))
	// The permanent key cannot be revoked in favour of one that expires.
	expect(t, temp.Do("DELETE", "/api/partner/keys/"+first, nil), 409, "last_partner_key")
	// An expiring partner key cannot create a longer-lived one.
	later := time.Now().Add(48 * time.Hour).UTC().Format(time.RFC3339)
	expect(t, temp.Do("POST", "/api/partner/keys", map[string]any{"name": "longer", "expires_at": later}), 403, "permission_escalation")
	// Nor revoke its own partner key through the organization-key route.
	expect(t, e.partner.Do("DELETE", "/api/organizations/"+e.ownerID+"/keys/"+first, nil), 404, "key_not_found")
	// The expiring one can go: the permanent one outlives it.
	expect(t, e.partner.Do("DELETE", "/api/partner/keys/"+r.Data()["id"].(string), nil), 200, "")
}

// A temporary token manages no key, not even the one that minted it: without a keys:write it
// holds itself it revokes nothing (403 token_not_allowed), through the REST route or the
// command endpoint, and it never creates or rotates a key. Its key can always end it.
func TestTokenManagesNoKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	o := e.newOrg("Acme")
	token := func(c *servertest.Client, body map[string]any) *servertest.Client {
		t.Helper()
		r := c.Do("POST", "/api/auth/tokens", orNil(body))
		expect(t, r, 200, "")
		return e.anon.As(r.Data()["token"].(string))
	}
	parentID := o.member.Do("GET", "/api/me", nil).Data()["key_id"].(string)
	adminKeyID := o.admin.Do("GET", "/api/me", nil).Data()["key_id"].(string)
	sib := o.member.Do("POST", "/api/keys", map[string]any{"name": "sibling"})
	expect(t, sib, 200, "")
	siblingID, sibling := sib.Data()["id"].(string), e.anon.As(sib.Data()["value"].(string))
	narrow := token(o.member, map[string]any{"scopes": []string{}})
	full := token(o.member, nil)

	for _, tc := range []struct {
		name string
		tok  *servertest.Client
		id   string
	}{
		{"a token narrowed to nothing, on its parent", narrow, parentID},
		{"an unscoped token, on its parent", full, parentID},
		{"an unscoped token, on its user's other key", full, siblingID},
		{"an unscoped token, on another user's key", full, adminKeyID},
	} {
		for _, r := range []*servertest.Response{
			tc.tok.Do("DELETE", "/api/keys/"+tc.id, nil),
			tc.tok.Do("POST", "/api", map[string]any{"command": "revoke_key", "params": map[string]any{"id": tc.id}}),
			tc.tok.Do("POST", "/api/keys/"+tc.id+"/rotate", nil),
			tc.tok.Do("POST", "/api", map[string]any{"command": "rotate_key", "params": map[string]any{"id": tc.id}}),
		} {
			if r.Status != 403 || r.ErrorKey() != "token_not_allowed" {
				t.Errorf("%s: %d %s, want 403 token_not_allowed", tc.name, r.Status, r.Body)
			}
		}
	}
	// A token narrowed below keys:read does not see its user's other keys at all.
	expect(t, narrow.Do("DELETE", "/api/keys/"+siblingID, nil), 404, "key_not_found")
	expect(t, full.Do("POST", "/api/keys", map[string]any{"name": "x"}), 403, "token_not_allowed")
	// Nothing was revoked.
	expect(t, o.member.Do("GET", "/api/me", nil), 200, "")
	expect(t, sibling.Do("GET", "/api/me", nil), 200, "")
	expect(t, o.admin.Do("GET", "/api/me", nil), 200, "")

	// keys:write the token actually holds lets it revoke any key of the organization; it still
	// creates and rotates none.
	readOnly := token(o.admin, map[string]any{"scopes": []string{"keys:read"}})
	writer := token(o.admin, map[string]any{"scopes": []string{"keys:read", "keys:write"}})
	expect(t, readOnly.Do("DELETE", "/api/keys/"+siblingID, nil), 403, "token_not_allowed")
	expect(t, writer.Do("POST", "/api/keys/"+siblingID+"/rotate", nil), 403, "token_not_allowed")
	expect(t, writer.Do("POST", "/api/keys", map[string]any{"name": "y"}), 403, "token_not_allowed")
	expect(t, writer.Do("DELETE", "/api/keys/"+siblingID, nil), 200, "")
	expect(t, sibling.Do("GET", "/api/me", nil), 401, "invalid_token")

	// Its key ends it: the member's key revokes itself, and its tokens stop with it.
	expect(t, o.member.Do("DELETE", "/api/keys/"+parentID, nil), 200, "")
	expect(t, full.Do("GET", "/api/me", nil), 401, "invalid_token")
	expect(t, narrow.Do("GET", "/api/me", nil), 401, "invalid_token")
}

// The partner routes that revoke keys follow the same rule: an unrestricted partner token
// holds keys:write (a partner key holds every permission) and revokes; a narrowed one, even to
// keys:write, is refused, as on every partner operation.
func TestPartnerTokenRevocation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	o := e.newOrg("Acme")
	token := func(body map[string]any) *servertest.Client {
		t.Helper()
		r := e.partner.Do("POST", "/api/auth/tokens", orNil(body))
		expect(t, r, 200, "")
		return e.anon.As(r.Data()["token"].(string))
	}
	full, narrow, writer := token(nil), token(map[string]any{"scopes": []string{}}), token(map[string]any{"scopes": []string{"keys:write"}})
	memberKeyID := o.member.Do("GET", "/api/me", nil).Data()["key_id"].(string)
	spare := e.partner.Do("POST", "/api/partner/keys", map[string]any{"name": "spare"})
	expect(t, spare, 200, "")
	spareID := spare.Data()["id"].(string)
	for _, tok := range []*servertest.Client{narrow, writer} {
		expect(t, tok.Do("DELETE", "/api/organizations/"+o.id+"/keys/"+memberKeyID, nil), 403, "permission_denied")
		expect(t, tok.Do("DELETE", "/api/partner/keys/"+spareID, nil), 403, "permission_denied")
	}
	expect(t, o.member.Do("GET", "/api/me", nil), 200, "")
	expect(t, full.Do("DELETE", "/api/organizations/"+o.id+"/keys/"+memberKeyID, nil), 200, "")
	expect(t, o.member.Do("GET", "/api/me", nil), 401, "invalid_token")
	expect(t, full.Do("DELETE", "/api/partner/keys/"+spareID, nil), 200, "")
	expect(t, e.anon.As(spare.Data()["value"].(string)).Do("GET", "/api/me", nil), 401, "invalid_token")
}

// Asking for more than the caller holds is refused with 403 permission_escalation naming what
// the caller lacks (in the message and in metadata.missing_actions), never granted as a key or
// token that silently cannot use it.
func TestEscalationNamesWhatTheCallerLacks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	o := e.newOrg("Acme")
	escalation := func(r *servertest.Response, missing ...string) {
		t.Helper()
		if r.Status != 403 || r.ErrorKey() != "permission_escalation" {
			t.Errorf("%d %s, want 403 permission_escalation", r.Status, r.Body)
			return
		}
		meta, _ := r.JSON()["metadata"].(map[string]any)
		got, _ := meta["missing_actions"].([]any)
		var names []string
		for _, a := range got {
			names = append(names, a.(string))
		}
		if !slices.Equal(names, missing) {
			t.Errorf("metadata.missing_actions %v, want %v: %s", names, missing, r.Body)
		}
		for _, a := range missing {
			if !strings.Contains(r.JSON()["message"].(string), a) {
				t.Errorf("the message does not name %s: %s", a, r.Body)
			}
		}
	}
	// Keys: a Member asking for users:write gets nothing, not a key without it.
	escalation(o.member.Do("POST", "/api/keys", map[string]any{"name": "ci", "scopes": []string{"datasets:read", "users:write"}}), "users:write")
	if n := len(o.member.Do("GET", "/api/keys", nil).List()); n != 2 {
		t.Errorf("the organization has %d keys, want its 2 partner-issued ones", n)
	}
	r := o.member.Do("POST", "/api/keys", map[string]any{"name": "ci-read", "scopes": []string{"datasets:read"}})
	expect(t, r, 200, "")
	ci := e.anon.As(r.Data()["value"].(string))
	escalation(ci.Do("POST", "/api/keys", map[string]any{"name": "ci2", "scopes": []string{"datasets:read", "datasets:write"}}), "datasets:write")
	escalation(ci.Do("POST", "/api/keys", map[string]any{"name": "ci3"}), "users:read", "keys:read", "roles:read", "policies:read",
		"connections:read", "connections:write", "datasets:write", "events:read", "webhooks:read")
	escalation(o.member.Do("POST", "/api", map[string]any{"command": "create_key", "params": map[string]any{"name": "cmd", "scopes": []string{"users:write"}}}), "users:write")

	// Tokens: scopes the key lacks, and the admin role from a key without every permission.
	escalation(o.member.Do("POST", "/api/auth/tokens", map[string]any{"scopes": []string{"datasets:read", "users:write", "roles:write"}}), "users:write", "roles:write")
	escalation(ci.Do("POST", "/api/auth/tokens", map[string]any{"scopes": []string{"datasets:write"}}), "datasets:write")
	escalation(o.member.Do("POST", "/api/auth/tokens", map[string]any{"role": "admin"}), "users:write", "keys:write", "roles:write", "policies:write", "webhooks:write")

	// Rotation: keys:write alone does not hand over a value that can do more.
	keyAdmin := o.admin.Do("POST", "/api/permissions/roles", map[string]any{"name": "KeyAdmin",
		"actions": []string{"keys:read", "keys:write", "roles:read", "roles:write"}}).Data()["id"].(string)
	kaID := e.createUser(e.partner, o.id, "keys@acme.test", "user")
	expect(t, o.admin.Do("PUT", "/api/organization/users/"+kaID, map[string]any{"email": "keys@acme.test", "role_ids": []string{keyAdmin}}), 200, "")
	ka := e.anon.As(e.mintKey(e.partner, o.id, kaID))
	widget := o.admin.Do("POST", "/api/keys", map[string]any{"name": "widget", "kind": "organization", "role": "asker"}).Data()["id"].(string)
	escalation(ka.Do("POST", "/api/keys/"+widget+"/rotate", nil), "connections:read", "datasets:read")
	// Roles and users, through the same constructor.
	escalation(ka.Do("POST", "/api/permissions/roles", map[string]any{"name": "Sneaky", "actions": []string{"keys:read", "datasets:write"}}), "datasets:write")
	escalation(ka.Do("PUT", "/api/permissions/roles/"+keyAdmin, map[string]any{"name": "KeyAdmin", "actions": []string{"keys:read", "users:read"}}), "users:read")
	manager := o.admin.Do("POST", "/api/permissions/roles", map[string]any{"name": "Manager",
		"actions": []string{"users:read", "users:write"}}).Data()["id"].(string)
	mgrID := e.createUser(e.partner, o.id, "mgr@acme.test", "user")
	expect(t, o.admin.Do("PUT", "/api/organization/users/"+mgrID, map[string]any{"email": "mgr@acme.test", "role_ids": []string{manager}}), 200, "")
	mgr := e.anon.As(e.mintKey(e.partner, o.id, mgrID))
	escalation(mgr.Do("PUT", "/api/organization/users/"+o.memberID, map[string]any{"email": "member@acme.test", "role": "admin"}),
		"keys:read", "keys:write", "roles:read", "roles:write", "policies:read", "policies:write", "connections:read", "connections:write", "datasets:read",
		"datasets:write", "events:read", "webhooks:read", "webhooks:write")
}

// orNil is body, or no body at all for a nil map (which would encode as null).
func orNil(body map[string]any) any {
	if body == nil {
		return nil
	}
	return body
}
