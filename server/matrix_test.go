package server_test

import (
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenantry/tenantry/server"
	"github.com/tenantry/tenantry/server/servertest"
)

// The credentials of the isolation matrix, in column order.
var matrixCredentials = []string{"none", "malformed", "expired", "revoked",
	"partnerA", "partnerB", "adminA", "memberA", "askerA", "orgAdminA", "tokenMemberA", "userB", "grantedA"}

// world is partner A with a child organization full of objects, and partner B beside it.
type world struct {
	e       *env
	creds   map[string]*servertest.Client
	ownerA  string // partner A's owner organization
	orgA    string
	adminA  string // user ids in orgA
	memberA string
	spareA  string // a user nobody deletes
	roleA   string
	grantA  string // a role that policyA grants everything on resources
	policyA string // the policy of connA and dataA
	keyA    string // the admin's personal key (id)
	connA   string
	ownConn string // a connection of A's owner organization, for shares
	dataA   string
	hookA   string   // a webhook of orgA
	idsA    []string // every identifier of partner A's tenancy
	idsB    []string
	// Identifiers A1's credentials must not see either: a sibling organization's and the
	// owner organization's.
	idsBesideA1 []string
	seq         atomic.Int64
}

func (w *world) next() string { return fmt.Sprint(w.seq.Add(1)) }

func buildWorld(t *testing.T) *world {
	e := newEnvWith(t, func(c *server.Config) { c.Webhooks.Disabled = true }) // nothing is sent to the matrix's endpoints
	w := &world{e: e, creds: map[string]*servertest.Client{}, ownerA: e.ownerID}
	pA := e.partner
	w.orgA = e.createOrg(pA, "A1")
	w.adminA = e.createUser(pA, w.orgA, "admin@a1.test", "admin")
	w.memberA = e.createUser(pA, w.orgA, "member@a1.test", "user")
	w.spareA = e.createUser(pA, w.orgA, "spare@a1.test", "user")
	admin := e.anon.As(e.mintKey(pA, w.orgA, w.adminA))
	member := e.anon.As(e.mintKey(pA, w.orgA, w.memberA))
	mk := func(c *servertest.Client, body map[string]any) (string, string) {
		r := c.Do("POST", "/api/keys", body)
		if r.Status != 200 {
			t.Fatalf("create key %v: %d %s", body, r.Status, r.Body)
		}
		return r.Data()["id"].(string), r.Data()["value"].(string)
	}
	_, askerKey := mk(admin, map[string]any{"name": "asker", "kind": "organization", "role": "asker"})
	_, orgAdminKey := mk(admin, map[string]any{"name": "org-admin", "kind": "organization", "role": "admin"})
	w.keyA, _ = mk(admin, map[string]any{"name": "personal"})
	expiredID, expiredKey := mk(admin, map[string]any{"name": "expired", "expires_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)})
	if _, err := e.db.Exec(e.db.Rebind(`UPDATE api_keys SET expires_at = ? WHERE id = ?`), time.Now().Add(-time.Minute).UTC(), expiredID); err != nil {
		t.Fatal(err)
	}
	revokedID, revokedKey := mk(admin, map[string]any{"name": "revoked"})
	admin.Do("DELETE", "/api/keys/"+revokedID, nil)
	token := member.Do("POST", "/api/auth/tokens", nil).Data()["token"].(string)
	w.roleA = admin.Do("POST", "/api/permissions/roles", map[string]any{"name": "Reader", "actions": []string{"users:read"}}).Data()["id"].(string)
	// A member granted what policyA governs, through a role of no actions of its own.
	w.grantA = admin.Do("POST", "/api/permissions/roles", map[string]any{"name": "Granted", "actions": []string{}}).Data()["id"].(string)
	w.policyA = admin.Do("POST", "/api/permissions/policies", w.policyBody("Restricted")).Data()["id"].(string)
	var memberRole string
	for _, r := range admin.Do("GET", "/api/permissions/roles", nil).List() {
		if r["name"] == "Member" {
			memberRole = r["id"].(string)
		}
	}
	grantedID := e.createUser(pA, w.orgA, "granted@a1.test", "user")
	if r := pA.Do("PUT", "/api/organizations/"+w.orgA+"/users/"+grantedID, map[string]any{"email": "granted@a1.test",
		"role_ids": []string{memberRole, w.grantA}}); r.Status != 200 {
		t.Fatalf("give the granted member its roles: %d %s", r.Status, r.Body)
	}
	granted := e.anon.As(e.mintKey(pA, w.orgA, grantedID))
	w.connA = admin.Do("POST", "/api/connections", map[string]any{"name": "Warehouse", "type": "postgresql",
		"configuration": map[string]any{"host": "db.a1.test", "password": "pw-a1"}, "policies": []string{w.policyA}}).Data()["id"].(string)
	w.hookA = admin.Do("POST", "/api/webhooks", map[string]any{"endpoint": "https://93.184.215.14/a1"}).Data()["id"].(string)
	w.dataA = admin.Do("POST", "/api/datasets", map[string]any{"name": "Orders", "slug": "orders", "policies": []string{w.policyA}}).Data()["id"].(string)
	ownerAdmin := e.createUser(pA, w.ownerA, "staff@partner-a.test", "admin")
	ownerKey := e.anon.As(e.mintKey(pA, w.ownerA, ownerAdmin))
	w.ownConn = ownerKey.Do("POST", "/api/connections", map[string]any{"name": "Shared", "type": "postgresql"}).Data()["id"].(string)

	// A sibling of A1 under the same partner, with objects of its own.
	orgA2 := e.createOrg(pA, "A2")
	userA2 := e.createUser(pA, orgA2, "admin@a2.test", "admin")
	adminA2 := e.anon.As(e.mintKey(pA, orgA2, userA2))
	connA2 := adminA2.Do("POST", "/api/connections", map[string]any{"name": "Other", "type": "mysql",
		"configuration": map[string]any{"host": "db.a2.test"}}).Data()["id"].(string)
	keyA2, _ := mk(adminA2, map[string]any{"name": "a2-key"})
	w.idsBesideA1 = []string{orgA2, userA2, connA2, keyA2, adminA2.Key, "db.a2.test", w.ownerA, ownerAdmin, ownerKey.Key, w.ownConn}

	pB, ownerB := e.newPartner("Partner B")
	orgB := e.createOrg(pB, "B1")
	userBID := e.createUser(pB, orgB, "admin@b1.test", "admin")
	userB := e.anon.As(e.mintKey(pB, orgB, userBID))
	w.idsB = []string{ownerB, orgB, userBID}

	w.creds = map[string]*servertest.Client{
		"none": e.anon, "malformed": e.anon.As("tuk_not-a-key"), "expired": e.anon.As(expiredKey), "revoked": e.anon.As(revokedKey),
		"partnerA": pA, "partnerB": pB, "adminA": admin, "memberA": member, "askerA": e.anon.As(askerKey),
		"orgAdminA": e.anon.As(orgAdminKey), "tokenMemberA": e.anon.As(token), "userB": userB, "grantedA": granted,
	}
	w.idsA = []string{w.ownerA, w.orgA, w.adminA, w.memberA, w.spareA, w.roleA, w.grantA, w.policyA, grantedID, w.keyA, w.connA, w.ownConn,
		w.dataA, w.hookA, pA.Key, admin.Key, member.Key, granted.Key, askerKey, orgAdminKey, "pw-a1", "db.a1.test"}
	return w
}

// cell expectations for partnerA, partnerB, adminA, memberA, askerA, orgAdminA, tokenMemberA, userB,
// grantedA; none, malformed, expired and revoked always get 401 (or 200 on a public route).
//
// connA and dataA, and the connections and datasets the DELETE cells delete, have a policy
// (policyA) granting their read and write to the role grantA: grantedA is a member holding it,
// memberA (and its token) a member without it, for whom they are not there.
type expectations [9]int

var (
	partnerOnlyOnA = expectations{200, 404, 403, 403, 403, 403, 403, 403, 403} // partner routes on A's objects
	partnerOwnList = expectations{200, 200, 403, 403, 403, 403, 403, 403, 403} // partner routes on the caller's own things
)

type matrixRoute struct {
	path    func(w *world) string // a fresh target for each cell, so writes never interfere
	body    func(w *world) any
	expect  expectations
	version string // the X-Polytomic-Version to send, when the route needs an older one
}

// legacy is a version before 2025-09-18, where PATCH is served.
const legacy = "2024-02-08"

func (w *world) disposableOrg() string { return w.e.createOrg(w.e.partner, "tmp-"+w.next()) }
func (w *world) disposableUser() string {
	return w.e.createUser(w.e.partner, w.orgA, "tmp"+w.next()+"@a1.test", "user")
}
func (w *world) adminDo(method, path string, body any) map[string]any {
	r := w.creds["adminA"].Do(method, path, body)
	if r.Status != 200 {
		w.e.t.Fatalf("setup %s %s: %d %s", method, path, r.Status, r.Body)
	}
	return r.Data()
}
func fixed(p string) func(*world) string { return func(*world) string { return p } }

// policyBody is policyA as a request: every action on resources granted to grantA.
func (w *world) policyBody(name string) map[string]any {
	var actions []map[string]any
	for _, a := range []string{"connections:read", "connections:write", "datasets:read", "datasets:write"} {
		actions = append(actions, map[string]any{"action": a, "role_ids": []string{w.grantA}})
	}
	return map[string]any{"name": name, "policy_actions": actions}
}

func matrixRoutes() map[string]matrixRoute {
	orgUsers := func(w *world) string { return "/api/organizations/" + w.orgA + "/users" }
	return map[string]matrixRoute{
		"GET /api/me":           {fixed("/api/me"), nil, expectations{200, 200, 200, 200, 200, 200, 200, 200, 200}, ""},
		"GET /api/events":       {fixed("/api/events"), nil, expectations{200, 200, 200, 200, 403, 200, 200, 200, 200}, ""},
		"GET /api/events_types": {fixed("/api/events_types"), nil, expectations{200, 200, 200, 200, 403, 200, 200, 200, 200}, ""},
		"POST /api/provision": {fixed("/api/provision"), func(w *world) any {
			n := w.next()
			return map[string]any{"organization": map[string]any{"name": "prov-" + n}, "user": map[string]any{"email": "root" + n + "@p.test", "role": "admin"}}
		}, partnerOwnList, ""},
		"POST /api/provision/batch": {fixed("/api/provision/batch"), func(w *world) any {
			n := w.next()
			return map[string]any{"items": []any{map[string]any{"organization": map[string]any{"name": "batch-" + n},
				"user": map[string]any{"email": "root" + n + "@b.test", "role": "admin"}}}}
		}, partnerOwnList, ""},
		"POST /api": {fixed("/api"), func(w *world) any {
			return map[string]any{"command": "get_organization", "params": map[string]any{"id": w.orgA}}
		}, partnerOnlyOnA, ""},
		"GET /healthz":                  {fixed("/healthz"), nil, expectations{200, 200, 200, 200, 200, 200, 200, 200, 200}, ""},
		"GET /readyz":                   {fixed("/readyz"), nil, expectations{200, 200, 200, 200, 200, 200, 200, 200, 200}, ""},
		"GET /metrics":                  {fixed("/metrics"), nil, expectations{200, 200, 200, 200, 200, 200, 200, 200, 200}, ""},
		"GET /openapi.yaml":             {fixed("/openapi.yaml"), nil, expectations{200, 200, 200, 200, 200, 200, 200, 200, 200}, ""},
		"GET /docs":                     {fixed("/docs"), nil, expectations{200, 200, 200, 200, 200, 200, 200, 200, 200}, ""},
		"GET /docs/redoc.standalone.js": {fixed("/docs/redoc.standalone.js"), nil, expectations{200, 200, 200, 200, 200, 200, 200, 200, 200}, ""},
		"GET /docs/openapi.json":        {fixed("/docs/openapi.json"), nil, expectations{200, 200, 200, 200, 200, 200, 200, 200, 200}, ""},
		"GET /api/versions":             {fixed("/api/versions"), nil, expectations{200, 200, 200, 200, 200, 200, 200, 200, 200}, ""},
		"PATCH /api/organizations/:org_id": {func(w *world) string { return "/api/organizations/" + w.orgA },
			func(*world) any { return map[string]any{"sso_org_id": "x"} }, partnerOnlyOnA, legacy},
		"PATCH /api/organizations/:org_id/users/:id": {func(w *world) string { return "/api/organizations/" + w.orgA + "/users/" + w.spareA },
			func(*world) any { return map[string]any{"role": "user"} }, partnerOnlyOnA, legacy},
		"PATCH /api/permissions/roles/:id": {func(w *world) string { return "/api/permissions/roles/" + w.roleA },
			func(*world) any { return map[string]any{"name": "Reader"} }, expectations{404, 404, 200, 403, 403, 200, 403, 404, 403}, legacy},
		"POST /api/auth/tokens":      {fixed("/api/auth/tokens"), nil, expectations{200, 200, 200, 200, 200, 200, 403, 200, 200}, ""},
		"GET /.well-known/jwks.json": {fixed("/.well-known/jwks.json"), nil, expectations{200, 200, 200, 200, 200, 200, 200, 200, 200}, ""},
		// The gateway check, for a service's route that needs users:read, which askers lack.
		"GET /api/auth/check":            {fixed("/api/auth/check?require=users:read"), nil, expectations{403, 403, 200, 200, 403, 200, 200, 200, 200}, ""},
		"POST /api/auth/check":           {fixed("/api/auth/check?require=users:read"), nil, expectations{403, 403, 200, 200, 403, 200, 200, 200, 200}, ""},
		"PUT /api/auth/check":            {fixed("/api/auth/check?require=users:read"), nil, expectations{403, 403, 200, 200, 403, 200, 200, 200, 200}, ""},
		"PATCH /api/auth/check":          {fixed("/api/auth/check?require=users:read"), nil, expectations{403, 403, 200, 200, 403, 200, 200, 200, 200}, ""},
		"DELETE /api/auth/check":         {fixed("/api/auth/check?require=users:read"), nil, expectations{403, 403, 200, 200, 403, 200, 200, 200, 200}, ""},
		"GET /api/organizations":         {fixed("/api/organizations"), nil, partnerOwnList, ""},
		"POST /api/organizations":        {fixed("/api/organizations"), func(w *world) any { return map[string]any{"name": "new-" + w.next()} }, partnerOwnList, ""},
		"GET /api/organizations/:org_id": {func(w *world) string { return "/api/organizations/" + w.orgA }, nil, partnerOnlyOnA, ""},
		"PUT /api/organizations/:org_id": {func(w *world) string { return "/api/organizations/" + w.orgA },
			func(*world) any { return map[string]any{"name": "A1"} }, partnerOnlyOnA, ""},
		"DELETE /api/organizations/:org_id": {func(w *world) string { return "/api/organizations/" + w.disposableOrg() }, nil, partnerOnlyOnA, ""},
		"GET /api/organization":             {fixed("/api/organization"), nil, expectations{200, 200, 200, 200, 403, 200, 200, 200, 200}, ""},
		// Key policies: the partner's for its organizations, the admins' for their own (a member,
		// an asker and a token are refused). The body sets no networks, which would lock cells out.
		"GET /api/organizations/:org_id/key_policy": {func(w *world) string { return "/api/organizations/" + w.orgA + "/key_policy" }, nil, partnerOnlyOnA, ""},
		"PUT /api/organizations/:org_id/key_policy": {func(w *world) string { return "/api/organizations/" + w.orgA + "/key_policy" },
			func(*world) any { return map[string]any{"max_lifetime_seconds": 0} }, partnerOnlyOnA, ""},
		"GET /api/organization/key_policy": {fixed("/api/organization/key_policy"), nil, expectations{200, 200, 200, 403, 403, 200, 403, 200, 403}, ""},
		"PUT /api/organization/key_policy": {fixed("/api/organization/key_policy"), func(*world) any { return map[string]any{"require_expiry": false} },
			expectations{200, 200, 200, 403, 403, 200, 403, 200, 403}, ""},

		"GET /api/organizations/:org_id/users":     {orgUsers, nil, partnerOnlyOnA, ""},
		"POST /api/organizations/:org_id/users":    {orgUsers, func(w *world) any { return map[string]any{"email": "n" + w.next() + "@a1.test"} }, partnerOnlyOnA, ""},
		"GET /api/organizations/:org_id/users/:id": {func(w *world) string { return orgUsers(w) + "/" + w.spareA }, nil, partnerOnlyOnA, ""},
		"PUT /api/organizations/:org_id/users/:id": {func(w *world) string { return orgUsers(w) + "/" + w.spareA },
			func(*world) any { return map[string]any{"email": "spare@a1.test"} }, partnerOnlyOnA, ""},
		"DELETE /api/organizations/:org_id/users/:id":    {func(w *world) string { return orgUsers(w) + "/" + w.disposableUser() }, nil, partnerOnlyOnA, ""},
		"POST /api/organizations/:org_id/users/:id/keys": {func(w *world) string { return orgUsers(w) + "/" + w.disposableUser() + "/keys" }, nil, partnerOnlyOnA, ""},
		"GET /api/organizations/:org_id/keys":            {func(w *world) string { return "/api/organizations/" + w.orgA + "/keys" }, nil, partnerOnlyOnA, ""},
		"DELETE /api/organizations/:org_id/keys/:id": {func(w *world) string {
			return "/api/organizations/" + w.orgA + "/keys/" + w.adminDo("POST", "/api/keys", map[string]any{"name": "d" + w.next()})["id"].(string)
		}, nil, partnerOnlyOnA, ""},

		"GET /api/partner/keys":  {fixed("/api/partner/keys"), nil, partnerOwnList, ""},
		"POST /api/partner/keys": {fixed("/api/partner/keys"), func(w *world) any { return map[string]any{"name": "p" + w.next()} }, partnerOwnList, ""},
		"DELETE /api/partner/keys/:id": {func(w *world) string {
			return "/api/partner/keys/" + w.e.partner.Do("POST", "/api/partner/keys", map[string]any{"name": "d" + w.next()}).Data()["id"].(string)
		}, nil, partnerOnlyOnA, ""},

		"GET /api/organization/users": {fixed("/api/organization/users"), nil, expectations{200, 200, 200, 200, 403, 200, 200, 200, 200}, ""},
		"POST /api/organization/users": {fixed("/api/organization/users"), func(w *world) any { return map[string]any{"email": "o" + w.next() + "@x.test"} },
			expectations{200, 200, 200, 403, 403, 200, 403, 200, 403}, ""},
		"GET /api/organization/users/:id": {func(w *world) string { return "/api/organization/users/" + w.spareA }, nil,
			expectations{404, 404, 200, 200, 403, 200, 200, 404, 200}, ""},
		"PUT /api/organization/users/:id": {func(w *world) string { return "/api/organization/users/" + w.spareA },
			func(*world) any { return map[string]any{"email": "spare@a1.test"} }, expectations{404, 404, 200, 403, 403, 200, 403, 404, 403}, ""},
		"DELETE /api/organization/users/:id": {func(w *world) string { return "/api/organization/users/" + w.disposableUser() }, nil,
			expectations{404, 404, 200, 403, 403, 200, 403, 404, 403}, ""},

		"GET /api/permissions/roles": {fixed("/api/permissions/roles"), nil, expectations{200, 200, 200, 200, 403, 200, 200, 200, 200}, ""},
		"POST /api/permissions/roles": {fixed("/api/permissions/roles"), func(w *world) any { return map[string]any{"name": "r" + w.next(), "actions": []string{}} },
			expectations{200, 200, 200, 403, 403, 200, 403, 200, 403}, ""},
		"GET /api/permissions/roles/:id": {func(w *world) string { return "/api/permissions/roles/" + w.roleA }, nil,
			expectations{404, 404, 200, 200, 403, 200, 200, 404, 200}, ""},
		"PUT /api/permissions/roles/:id": {func(w *world) string { return "/api/permissions/roles/" + w.roleA },
			func(*world) any { return map[string]any{"name": "Reader", "actions": []string{"users:read"}} }, expectations{404, 404, 200, 403, 403, 200, 403, 404, 403}, ""},
		"DELETE /api/permissions/roles/:id": {func(w *world) string {
			return "/api/permissions/roles/" + w.adminDo("POST", "/api/permissions/roles", map[string]any{"name": "d" + w.next(), "actions": []string{}})["id"].(string)
		}, nil, expectations{404, 404, 200, 403, 403, 200, 403, 404, 403}, ""},

		"GET /api/permissions/policies": {fixed("/api/permissions/policies"), nil, expectations{200, 200, 200, 200, 403, 200, 200, 200, 200}, ""},
		"POST /api/permissions/policies": {fixed("/api/permissions/policies"), func(w *world) any { return map[string]any{"name": "p" + w.next()} },
			expectations{200, 200, 200, 403, 403, 200, 403, 200, 403}, ""},
		"GET /api/permissions/policies/:id": {func(w *world) string { return "/api/permissions/policies/" + w.policyA }, nil,
			expectations{404, 404, 200, 200, 403, 200, 200, 404, 200}, ""},
		"PUT /api/permissions/policies/:id": {func(w *world) string { return "/api/permissions/policies/" + w.policyA },
			func(w *world) any { return w.policyBody("Restricted") }, expectations{404, 404, 200, 403, 403, 200, 403, 404, 403}, ""},
		"DELETE /api/permissions/policies/:id": {func(w *world) string {
			return "/api/permissions/policies/" + w.adminDo("POST", "/api/permissions/policies", map[string]any{"name": "d" + w.next()})["id"].(string)
		}, nil, expectations{404, 404, 200, 403, 403, 200, 403, 404, 403}, ""},

		"GET /api/keys": {fixed("/api/keys"), nil, expectations{403, 403, 200, 200, 403, 200, 200, 200, 200}, ""},
		"POST /api/keys": {fixed("/api/keys"), func(w *world) any { return map[string]any{"name": "k" + w.next(), "user_id": w.memberA} },
			expectations{403, 403, 200, 200, 403, 200, 403, 404, 403}, ""},
		"GET /api/keys/:id": {func(w *world) string { return "/api/keys/" + w.keyA }, nil, expectations{403, 403, 200, 200, 403, 200, 200, 404, 200}, ""},
		// Keys of the member: the member's key manages its user's other keys, its token none
		// (and grantedA, another member, none).
		"DELETE /api/keys/:id": {func(w *world) string {
			return "/api/keys/" + w.adminDo("POST", "/api/keys", map[string]any{"name": "d" + w.next(), "user_id": w.memberA})["id"].(string)
		}, nil, expectations{403, 403, 200, 200, 403, 200, 403, 404, 403}, ""},
		"GET /api/keys/:id/usage": {func(w *world) string { return "/api/keys/" + w.keyA + "/usage" }, nil,
			expectations{403, 403, 200, 200, 403, 200, 200, 404, 200}, ""},
		"GET /api/organizations/:org_id/usage": {func(w *world) string { return "/api/organizations/" + w.orgA + "/usage" }, nil, partnerOnlyOnA, ""},
		// Anyone may report a leaked key, with any credential or none (it is ignored): each cell
		// reports a fresh key of A1's, and every answer is the same.
		"POST /api/credentials/revoke": {fixed("/api/credentials/revoke"), func(w *world) any {
			return map[string]any{"credentials": []string{w.adminDo("POST", "/api/keys", map[string]any{"name": "leak" + w.next()})["value"].(string)}}
		}, expectations{202, 202, 202, 202, 202, 202, 202, 202, 202}, ""},
		"POST /api/keys/:id/rotate": {func(w *world) string {
			return "/api/keys/" + w.adminDo("POST", "/api/keys", map[string]any{"name": "d" + w.next(), "user_id": w.memberA})["id"].(string) + "/rotate"
		}, nil, expectations{403, 403, 200, 200, 403, 200, 403, 404, 403}, ""},

		// Asking about A1's admin key: 200 for every caller that may ask at all (valid: false for
		// another tenant's caller, as TestVerificationIsolation checks byte for byte), 403 for
		// the asker, which lacks keys:read.
		"POST /api/keys/verify": {fixed("/api/keys/verify"), func(w *world) any { return map[string]any{"key": w.creds["adminA"].Key} },
			expectations{200, 200, 200, 200, 403, 200, 200, 200, 200}, ""},
		"POST /oauth/introspect": {fixed("/oauth/introspect"), func(w *world) any { return url.Values{"token": {w.creds["adminA"].Key}} },
			expectations{200, 200, 200, 200, 403, 200, 200, 200, 200}, ""},

		"GET /api/connections": {fixed("/api/connections"), nil, expectations{403, 403, 200, 200, 200, 200, 200, 200, 200}, ""},
		"POST /api/connections": {fixed("/api/connections"), func(w *world) any { return map[string]any{"name": "c" + w.next(), "type": "postgresql"} },
			expectations{403, 403, 200, 200, 403, 200, 200, 200, 200}, ""},
		// connA has policyA: for memberA, its token and the asker key it is not there.
		"GET /api/connections/:id": {func(w *world) string { return "/api/connections/" + w.connA }, nil, expectations{403, 403, 200, 404, 404, 200, 404, 404, 200}, ""},
		"PUT /api/connections/:id": {func(w *world) string { return "/api/connections/" + w.connA },
			func(*world) any { return map[string]any{"name": "Warehouse", "type": "postgresql"} }, expectations{403, 403, 200, 404, 403, 200, 404, 404, 200}, ""},
		"DELETE /api/connections/:id": {func(w *world) string {
			return "/api/connections/" + w.adminDo("POST", "/api/connections", map[string]any{"name": "d" + w.next(), "type": "mysql",
				"policies": []string{w.policyA}})["id"].(string)
		}, nil, expectations{403, 403, 200, 404, 403, 200, 404, 404, 200}, ""},
		"GET /api/organizations/:org_id/connections/:connection_id/shared": {func(w *world) string {
			return "/api/organizations/" + w.ownerA + "/connections/" + w.ownConn + "/shared"
		}, nil, partnerOnlyOnA, ""},
		"POST /api/organizations/:org_id/connections/:connection_id/shared": {func(w *world) string {
			return "/api/organizations/" + w.ownerA + "/connections/" + w.ownConn + "/shared"
		}, func(w *world) any { return map[string]any{"child_organization_id": w.disposableOrg()} }, partnerOnlyOnA, ""},
		"GET /api/connections/:id/shared": {func(w *world) string { return "/api/connections/" + w.ownConn + "/shared" }, nil, partnerOnlyOnA, ""},
		"POST /api/connections/:id/share": {func(w *world) string { return "/api/connections/" + w.ownConn + "/share" },
			func(w *world) any { return map[string]any{"child_organization_id": w.disposableOrg()} }, partnerOnlyOnA, ""},

		"GET /api/datasets": {fixed("/api/datasets"), nil, expectations{403, 403, 200, 200, 200, 200, 200, 200, 200}, ""},
		"POST /api/datasets": {fixed("/api/datasets"), func(w *world) any { n := w.next(); return map[string]any{"name": "d" + n, "slug": "d" + n} },
			expectations{403, 403, 200, 200, 403, 200, 200, 200, 200}, ""},
		"GET /api/datasets/:id": {func(w *world) string { return "/api/datasets/" + w.dataA }, nil, expectations{403, 403, 200, 404, 404, 200, 404, 404, 200}, ""},
		"PUT /api/datasets/:id": {func(w *world) string { return "/api/datasets/" + w.dataA },
			func(*world) any { return map[string]any{"name": "Orders", "slug": "orders"} }, expectations{403, 403, 200, 404, 403, 200, 404, 404, 200}, ""},
		"DELETE /api/datasets/:id": {func(w *world) string {
			n := w.next()
			return "/api/datasets/" + w.adminDo("POST", "/api/datasets", map[string]any{"name": "d" + n, "slug": "d" + n,
				"policies": []string{w.policyA}})["id"].(string)
		}, nil, expectations{403, 403, 200, 404, 403, 200, 404, 404, 200}, ""},

		"GET /api/webhooks": {fixed("/api/webhooks"), nil, expectations{200, 200, 200, 200, 403, 200, 200, 200, 200}, ""},
		"POST /api/webhooks": {fixed("/api/webhooks"), func(*world) any { return map[string]any{"endpoint": "https://93.184.215.14/new"} },
			expectations{200, 200, 200, 403, 403, 200, 403, 200, 403}, ""},
		"GET /api/webhooks/:id": {func(w *world) string { return "/api/webhooks/" + w.hookA }, nil, expectations{404, 404, 200, 200, 403, 200, 200, 404, 200}, ""},
		"PUT /api/webhooks/:id": {func(w *world) string { return "/api/webhooks/" + w.hookA },
			func(*world) any { return map[string]any{"endpoint": "https://93.184.215.14/a1"} }, expectations{404, 404, 200, 403, 403, 200, 403, 404, 403}, ""},
		"DELETE /api/webhooks/:id": {func(w *world) string {
			return "/api/webhooks/" + w.adminDo("POST", "/api/webhooks", map[string]any{"endpoint": "https://93.184.215.14/d"})["id"].(string)
		}, nil, expectations{404, 404, 200, 403, 403, 200, 403, 404, 403}, ""},
		"POST /api/webhooks/:id/disable": {func(w *world) string { return "/api/webhooks/" + w.hookA + "/disable" }, nil,
			expectations{404, 404, 200, 403, 403, 200, 403, 404, 403}, ""},
		"POST /api/webhooks/:id/enable": {func(w *world) string { return "/api/webhooks/" + w.hookA + "/enable" }, nil,
			expectations{404, 404, 200, 403, 403, 200, 403, 404, 403}, ""},
		"GET /api/webhooks/:id/deliveries": {func(w *world) string { return "/api/webhooks/" + w.hookA + "/deliveries" }, nil,
			expectations{404, 404, 200, 200, 403, 200, 200, 404, 200}, ""},
	}
}

// TestIsolationMatrix calls every route with every kind of credential on partner A's objects
// and checks each cell's status, and that no answer carries the other tenant's identifiers
// beyond what the request itself named.
func TestIsolationMatrix(t *testing.T) {
	t.Parallel()
	w := buildWorld(t)
	table := matrixRoutes()
	var served []string
	for _, r := range w.e.srv.Routes() {
		served = append(served, r.Method+" "+r.Path)
	}
	sort.Strings(served)
	for _, name := range served {
		if _, ok := table[name]; !ok {
			t.Errorf("route %s is missing from the isolation matrix", name)
		}
	}
	if len(table) != len(served) {
		t.Errorf("the matrix lists %d routes, the server serves %d", len(table), len(served))
	}
	cells := 0
	for _, name := range served {
		route, ok := table[name]
		if !ok {
			continue
		}
		method := strings.Fields(name)[0]
		for i, cred := range matrixCredentials {
			want := 401
			if i >= 4 {
				want = route.expect[i-4]
			} else if slices.Contains([]string{"GET /.well-known/jwks.json", "GET /api/versions", "GET /healthz", "GET /readyz", "GET /metrics", "GET /openapi.yaml", "GET /docs", "GET /docs/redoc.standalone.js", "GET /docs/openapi.json"}, name) {
				want = 200
			} else if name == "POST /api/credentials/revoke" {
				want = 202 // public, and answered alike whatever is sent
			}
			path := route.path(w)
			var body any
			if route.body != nil {
				body = route.body(w)
			}
			var header []string
			if route.version != "" {
				header = []string{"X-Polytomic-Version", route.version}
			}
			if form, ok := body.(url.Values); ok { // a form body (OAuth's endpoints)
				body, header = form.Encode(), append(header, "Content-Type", "application/x-www-form-urlencoded")
			}
			r := w.creds[cred].Do(method, path, body, header...)
			cells++
			if r.Status != want {
				t.Errorf("%s as %s (%s): %d, want %d: %s", name, cred, path, r.Status, want, r.Body)
				continue
			}
			// What the other tenant may never see: identifiers or data it did not send, in the
			// body or the headers (the gateway check answers in headers).
			sent := path + fmt.Sprint(body)
			answer := string(r.Body) + fmt.Sprint(r.Header)
			foreign := w.idsA
			switch {
			case cred == "partnerA":
				foreign = w.idsB
			case strings.HasSuffix(cred, "A"):
				foreign = append(append([]string{}, w.idsB...), w.idsBesideA1...)
			}
			for _, id := range foreign {
				if strings.Contains(answer, id) && !strings.Contains(sent, id) {
					t.Errorf("%s as %s: the answer holds %q of the other tenant: %s", name, cred, id, r.Body)
				}
			}
		}
	}
	t.Logf("isolation matrix: %d routes × %d credentials = %d cells", len(served), len(matrixCredentials), cells)
}
