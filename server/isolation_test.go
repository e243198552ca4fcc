package server_test

import (
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/tenantry/tenantry/server/servertest"
)

// Partner B can neither see nor touch anything of partner A's: every such request is the same
// 404 as for an id that does not exist, and no answer carries A's identifiers.
func TestPartnersCannotSeeEachOther(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b, bOwner := e.newPartner("Partner B")
	orgA := e.createOrg(e.partner, "Acme")
	userA := e.createUser(e.partner, orgA, "ada@acme.test", "admin")
	keyA := e.mintKey(e.partner, orgA, userA)
	orgB := e.createOrg(b, "Acme") // the same name is fine under another partner
	userB := e.createUser(b, orgB, "ada@acme.test", "admin")
	keyB := e.anon.As(e.mintKey(b, orgB, userB))
	secretsOfA := []string{orgA, userA, e.ownerID, keyA}

	calls := []struct {
		method, path string
		body         any
		key          string
	}{
		{"GET", "/api/organizations/" + orgA, nil, "organization_not_found"},
		{"PUT", "/api/organizations/" + orgA, map[string]any{"name": "Mine"}, "organization_not_found"},
		{"DELETE", "/api/organizations/" + orgA, nil, "organization_not_found"},
		{"DELETE", "/api/organizations/" + e.ownerID, nil, "organization_not_found"},
		{"GET", "/api/organizations/" + orgA + "/users", nil, "organization_not_found"},
		{"POST", "/api/organizations/" + orgA + "/users", map[string]any{"email": "mole@b.test"}, "organization_not_found"},
		{"GET", "/api/organizations/" + orgA + "/users/" + userA, nil, "organization_not_found"},
		{"PUT", "/api/organizations/" + orgA + "/users/" + userA, map[string]any{"email": "x@b.test"}, "organization_not_found"},
		{"DELETE", "/api/organizations/" + orgA + "/users/" + userA, nil, "organization_not_found"},
		{"POST", "/api/organizations/" + orgA + "/users/" + userA + "/keys?force=true", nil, "organization_not_found"},
		// A's user id under B's own organization: not found either.
		{"GET", "/api/organizations/" + orgB + "/users/" + userA, nil, "user_not_found"},
		{"POST", "/api/organizations/" + orgB + "/users/" + userA + "/keys", nil, "user_not_found"},
	}
	for _, c := range calls {
		r := b.Do(c.method, c.path, c.body)
		expect(t, r, 404, c.key)
		// The same answer as for an id that never existed, but for the id itself.
		missing := strings.NewReplacer(orgA, "00000000-0000-0000-0000-000000000001", userA, "00000000-0000-0000-0000-000000000002",
			e.ownerID, "00000000-0000-0000-0000-000000000003").Replace(c.path)
		if m := b.Do(c.method, missing, c.body); m.Status != 404 || m.ErrorKey() != c.key {
			t.Fatalf("%s %s: a missing id answers %d %s", c.method, missing, m.Status, m.Body)
		}
	}
	// B's own views hold none of A's identifiers.
	for _, r := range []string{
		string(b.Do("GET", "/api/organizations", nil).Body),
		string(b.Do("GET", "/api/organizations/"+orgB+"/users", nil).Body),
		string(b.Do("GET", "/api/me", nil).Body),
		string(keyB.Do("GET", "/api/me", nil).Body),
		string(keyB.Do("GET", "/api/organization/users", nil).Body),
	} {
		for _, s := range secretsOfA {
			if strings.Contains(r, s) {
				t.Fatalf("partner B saw %s of partner A in %s", s, r)
			}
		}
	}
	if list := b.Do("GET", "/api/organizations", nil).List(); len(list) != 2 || list[0]["id"] != bOwner {
		t.Fatalf("partner B's list: %v", list)
	}
	// An encoded slash is part of an id, never a way into another route.
	expect(t, b.Do("GET", "/api/organizations/"+orgB+"%2Fusers", nil), 404, "organization_not_found")
	// A's objects are intact and A's key still works.
	expect(t, e.partner.Do("GET", "/api/organizations/"+orgA+"/users/"+userA, nil), 200, "")
	expect(t, e.anon.As(keyA).Do("GET", "/api/me", nil), 200, "")
}

// Concurrent forced mints leave exactly one active key; concurrent plain mints issue one.
func TestConcurrentMints(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	org := e.createOrg(e.partner, "Acme")
	for _, force := range []bool{false, true} {
		user := e.createUser(e.partner, org, map[bool]string{false: "a@acme.test", true: "b@acme.test"}[force], "user")
		path := "/api/organizations/" + org + "/users/" + user + "/keys"
		if force {
			path += "?force=true"
		}
		const n = 12
		var wg sync.WaitGroup
		statuses := make([]int, n)
		values := make([]string, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := e.partner.Do("POST", path, nil)
				statuses[i] = r.Status
				if r.Status == 200 {
					values[i] = r.Data()["value"].(string)
				}
			}()
		}
		wg.Wait()
		ok, working := 0, 0
		for i := range n {
			if statuses[i] == 200 {
				ok++
				if e.anon.As(values[i]).Do("GET", "/api/me", nil).Status == 200 {
					working++
				}
			} else if statuses[i] != 409 || force {
				t.Fatalf("force=%v: unexpected status %d", force, statuses[i])
			}
		}
		if (!force && ok != 1) || (force && ok != n) || working != 1 {
			t.Fatalf("force=%v: %d issued, %d working; want %d issued and exactly one working", force, ok, working, map[bool]int{false: 1, true: n}[force])
		}
	}
}

// Asking about a credential is scoped as every object is: a partner asks about its own
// partner's credentials, an organization's credential about its own organization's (partner
// keys aside). Any other credential is answered exactly as an unknown one, the same bytes, by
// verification and by introspection, for keys and for tokens, as the credential asked about and
// as the caller.
func TestVerificationIsolation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	partnerB, _ := e.newPartner("Partner B")
	x, y := e.newOrg("X"), e.newOrg("Y") // two organizations of partner A
	orgB := e.createOrg(partnerB, "B1")
	keyB := e.anon.As(e.mintKey(partnerB, orgB, e.createUser(partnerB, orgB, "ada@b1.test", "admin")))
	tokenOf := func(c *servertest.Client) *servertest.Client {
		t.Helper()
		r := c.Do("POST", "/api/auth/tokens", nil)
		expect(t, r, 200, "")
		return e.anon.As(r.Data()["token"].(string))
	}
	xToken, yToken, bToken, partnerToken := tokenOf(x.member), tokenOf(y.member), tokenOf(keyB), tokenOf(e.partner)
	malformed := "tuk_" + strings.Repeat("0", 49) // a wrong checksum: refused without a lookup
	// A well-formed key that is no longer there: its organization was deleted.
	gone := e.newOrg("Gone")
	neverSeen := gone.member.Key
	expect(t, e.partner.Do("DELETE", "/api/organizations/"+gone.id, nil), 200, "")

	introspect := func(c *servertest.Client, token string) *servertest.Response {
		t.Helper()
		r := c.Do("POST", "/oauth/introspect", url.Values{"token": {token}}.Encode(), "Content-Type", "application/x-www-form-urlencoded")
		expect(t, r, 200, "")
		return r
	}
	cells := []struct {
		caller *servertest.Client
		name   string
		asked  map[string]string // credential name → value
		valid  bool
	}{
		{e.partner, "partner A about its organizations' keys and tokens", map[string]string{"x admin": x.admin.Key, "y token": yToken.Key, "own token": partnerToken.Key}, true},
		{partnerB, "partner B about partner A's", map[string]string{"x admin": x.admin.Key, "x token": xToken.Key, "partner A": e.partner.Key, "A's token": partnerToken.Key}, false},
		{partnerToken, "partner A's token about its organizations'", map[string]string{"x admin": x.admin.Key, "x token": xToken.Key}, true},
		{x.admin, "org X about its own", map[string]string{"x member": x.member.Key, "x token": xToken.Key}, true},
		{x.admin, "org X about org Y's", map[string]string{"y admin": y.admin.Key, "y token": yToken.Key}, false},
		{x.admin, "org X about its partner's keys", map[string]string{"partner A": e.partner.Key, "A's token": partnerToken.Key}, false},
		{xToken, "org X's token about org Y's", map[string]string{"y admin": y.admin.Key, "y token": yToken.Key}, false},
		{xToken, "org X's token about its own", map[string]string{"x admin": x.admin.Key}, true},
		{keyB, "partner B's organization about partner A's", map[string]string{"x admin": x.admin.Key, "x token": xToken.Key}, false},
		{bToken, "partner B's token about partner A's", map[string]string{"x admin": x.admin.Key}, false},
	}
	for _, cell := range cells {
		// What an unknown credential gets from this caller: the bytes every refusal must match.
		wantVerify := verify(t, cell.caller, neverSeen).Body
		wantIntrospect := introspect(cell.caller, neverSeen).Body
		if string(wantVerify) != notValid || string(wantIntrospect) != `{"active":false}` {
			t.Fatalf("%s: unknown answers %s and %s", cell.name, wantVerify, wantIntrospect)
		}
		for _, junk := range []string{malformed, "not a credential"} {
			if got := verify(t, cell.caller, junk).Body; string(got) != string(wantVerify) {
				t.Errorf("%s: %q answers %s", cell.name, junk, got)
			}
		}
		for what, value := range cell.asked {
			v, in := verify(t, cell.caller, value), introspect(cell.caller, value)
			if cell.valid {
				if v.Data()["valid"] != true || in.JSON()["active"] != true {
					t.Errorf("%s, %s: want valid and active: %s, %s", cell.name, what, v.Body, in.Body)
				}
				continue
			}
			if string(v.Body) != string(wantVerify) || string(in.Body) != string(wantIntrospect) {
				t.Errorf("%s, %s: want the unknown's bytes: %s, %s", cell.name, what, v.Body, in.Body)
			}
			// With require too: no missing_permissions for a credential one may not ask about.
			if r := verify(t, cell.caller, value, "webhooks:write"); string(r.Body) != string(wantVerify) {
				t.Errorf("%s, %s, with require: %s", cell.name, what, r.Body)
			}
		}
	}
	// The reasons the answers never give are the operator's, on /metrics.
	metrics := e.anon.Do("GET", "/metrics", nil)
	for endpoint, outcomes := range map[string][]string{"verify": {"out_of_scope", "unknown", "malformed", "valid"},
		"introspect": {"out_of_scope", "unknown", "active"}} {
		for _, outcome := range outcomes {
			if series := `tenantry_credential_verifications_total{endpoint="` + endpoint + `",outcome="` + outcome + `"}`; !strings.Contains(metrics.String(), series) {
				t.Errorf("/metrics has no %s", series)
			}
		}
	}
	// An organization credential without keys:read may ask about nothing, its own included.
	reader := x.admin.Do("POST", "/api/keys", map[string]any{"name": "reader", "scopes": []string{"datasets:read"}}).Data()["value"].(string)
	expect(t, e.anon.As(reader).Do("POST", "/api/keys/verify", map[string]any{"key": x.admin.Key}), 403, "permission_denied")
	expect(t, e.anon.As(reader).Do("POST", "/oauth/introspect", url.Values{"token": {x.admin.Key}}.Encode(),
		"Content-Type", "application/x-www-form-urlencoded"), 403, "permission_denied")
}
