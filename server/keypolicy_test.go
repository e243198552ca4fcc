package server_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tenantry/tenantry/server"
	"github.com/tenantry/tenantry/server/servertest"
)

// newProxiedEnv is a server that trusts the loopback test client as a proxy, so that a test
// names the client address of each request in X-Forwarded-For (from).
func newProxiedEnv(t *testing.T) *env {
	return newEnvWith(t, func(c *server.Config) { c.TrustedProxies = []string{"127.0.0.1"} })
}

// from is c calling from addr, as its proxy says.
func from(c *servertest.Client, addr string) *servertest.Client {
	cc := *c
	cc.Header = map[string]string{"X-Forwarded-For": addr}
	return &cc
}

func policyPath(orgID string) string { return "/api/organizations/" + orgID + "/key_policy" }

func setPolicy(t *testing.T, c *servertest.Client, orgID string, body map[string]any) map[string]any {
	t.Helper()
	r := c.Do("PUT", policyPath(orgID), body)
	expect(t, r, 200, "")
	return r.Data()
}

// meta is an error's metadata.
func meta(r *servertest.Response) map[string]any {
	m, _ := r.JSON()["metadata"].(map[string]any)
	return m
}

func TestKeyPolicyReadAndWrite(t *testing.T) {
	t.Parallel()
	e := newProxiedEnv(t)
	o := e.newOrg("Policied")

	r := e.partner.Do("GET", policyPath(o.id), nil)
	expect(t, r, 200, "")
	if got := fmt.Sprint(r.Data()); got != "map[allowed_cidrs:[] max_lifetime_seconds:0 require_expiry:false]" {
		t.Fatalf("a new organization's policy: %s", got)
	}
	// Normalised: host bits cleared, single addresses made prefixes, duplicates dropped.
	got := setPolicy(t, e.partner, o.id, map[string]any{"max_lifetime_seconds": 3600, "require_expiry": true,
		"allowed_cidrs": []string{"10.1.2.3/8", "2001:db8::1/32", "10.0.0.0/8", "127.0.0.1"}})
	if fmt.Sprint(got["allowed_cidrs"]) != "[10.0.0.0/8 2001:db8::/32 127.0.0.1/32]" || got["max_lifetime_seconds"] != float64(3600) || got["require_expiry"] != true {
		t.Fatalf("set policy: %v", got)
	}
	// The organization's admin reads it (from an allowed address), as the partner does.
	r = from(o.admin, "10.0.0.9").Do("GET", "/api/organization/key_policy", nil)
	expect(t, r, 200, "")
	if fmt.Sprint(r.Data()) != fmt.Sprint(got) {
		t.Fatalf("the admin sees %v, the partner set %v", r.Data(), got)
	}
	ev := e.partner.Do("GET", "/api/events?type=key_policy.updated&organization_id="+o.id, nil)
	expect(t, ev, 200, "")
	if len(ev.List()) != 1 || fmt.Sprint(ev.List()[0]["event"]) != fmt.Sprint(got) {
		t.Fatalf("key_policy.updated events: %s", ev.Body)
	}

	t.Run("who may", func(t *testing.T) {
		admin := from(o.admin, "10.0.0.9")
		expect(t, admin.Do("PUT", "/api/organization/key_policy", map[string]any{"max_lifetime_seconds": 7200,
			"allowed_cidrs": []string{"10.0.0.0/8"}}), 200, "")
		expect(t, from(o.member, "10.0.0.9").Do("GET", "/api/organization/key_policy", nil), 403, "permission_denied")
		expect(t, from(o.member, "10.0.0.9").Do("PUT", "/api/organization/key_policy", map[string]any{}), 403, "permission_denied")
		narrowed := e.anon.As(admin.Do("POST", "/api/keys", map[string]any{"name": "narrowed", "scopes": []string{"keys:read", "keys:write"}}).Data()["value"].(string))
		expect(t, from(narrowed, "10.0.0.9").Do("GET", "/api/organization/key_policy", nil), 403, "permission_denied")
		tok := e.anon.As(admin.Do("POST", "/api/auth/tokens", nil).Data()["token"].(string))
		expect(t, from(tok, "10.0.0.9").Do("PUT", "/api/organization/key_policy", map[string]any{}), 403, "permission_denied")
		orgKey := e.anon.As(admin.Do("POST", "/api/keys", map[string]any{"name": "org-admin", "kind": "organization", "role": "admin"}).Data()["value"].(string))
		expect(t, from(orgKey, "10.0.0.9").Do("GET", "/api/organization/key_policy", nil), 200, "")
		// Another partner's organization does not exist for it; nor does it for an admin.
		pB, _ := e.newPartner("Partner B")
		expect(t, pB.Do("GET", policyPath(o.id), nil), 404, "organization_not_found")
		expect(t, pB.Do("PUT", policyPath(o.id), map[string]any{}), 404, "organization_not_found")
		// An admin cannot lock itself out; the partner can set anything.
		r := admin.Do("PUT", "/api/organization/key_policy", map[string]any{"allowed_cidrs": []string{"192.0.2.0/24"}})
		expect(t, r, 409, "key_policy_lockout")
		if meta(r)["client_address"] != "10.0.0.9" {
			t.Fatalf("lockout: %s", r.Body)
		}
	})

	t.Run("bad input names the entry", func(t *testing.T) {
		for _, c := range []struct {
			body  map[string]any
			field string
			says  string
		}{
			{map[string]any{"allowed_cidrs": []string{"10.0.0.0/8", "nope"}}, "allowed_cidrs", `entry 1 ("nope")`},
			{map[string]any{"allowed_cidrs": []string{"10.0.0.0/33"}}, "allowed_cidrs", `entry 0 ("10.0.0.0/33")`},
			{map[string]any{"allowed_cidrs": []string{"::ffff:10.0.0.0/104"}}, "allowed_cidrs", "IPv4-mapped"},
			{map[string]any{"allowed_cidrs": strings.Split(strings.Repeat("10.0.0.1,", 51)[:9*51-1], ",")}, "allowed_cidrs", "at most 50"},
			{map[string]any{"max_lifetime_seconds": 10}, "max_lifetime_seconds", "from 60"},
			{map[string]any{"max_lifetime_seconds": -1}, "max_lifetime_seconds", "from 60"},
		} {
			r := e.partner.Do("PUT", policyPath(o.id), c.body)
			expect(t, r, 400, "validation_failed")
			if msg, _ := meta(r)[c.field].(string); !strings.Contains(msg, c.says) {
				t.Errorf("%v: %s", c.body, r.Body)
			}
		}
		expect(t, e.partner.Do("PUT", policyPath(o.id), map[string]any{"allowed": []string{}}), 400, "unknown_field")
	})
}

func TestKeyPolicyGovernsNewKeys(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	o := e.newOrg("Governed")
	in := func(d time.Duration) string { return time.Now().Add(d).UTC().Format(time.RFC3339) }
	violation := func(t *testing.T, r *servertest.Response, field string, limit any) {
		t.Helper()
		expect(t, r, 400, "key_policy_violation")
		if m := meta(r); m["policy_field"] != field || fmt.Sprint(m["limit"]) != fmt.Sprint(limit) || !strings.Contains(r.JSON()["message"].(string), "key policy") {
			t.Fatalf("refusal: %s", r.Body)
		}
	}
	mint := func(body any) *servertest.Response {
		return e.partner.Do("POST", "/api/organizations/"+o.id+"/users/"+o.memberID+"/keys?force=true", body)
	}

	setPolicy(t, e.partner, o.id, map[string]any{"require_expiry": true})
	t.Run("require_expiry", func(t *testing.T) {
		violation(t, o.admin.Do("POST", "/api/keys", map[string]any{"name": "forever"}), "require_expiry", true)
		violation(t, o.admin.Do("POST", "/api/keys", map[string]any{"name": "org", "kind": "organization", "role": "asker"}), "require_expiry", true)
		violation(t, mint(nil), "require_expiry", true)
		expect(t, o.admin.Do("POST", "/api/keys", map[string]any{"name": "dated", "expires_at": in(time.Hour)}), 200, "")
		expect(t, mint(map[string]any{"expires_at": in(time.Hour)}), 200, "")
		// A key created by an expiring key expires with it: it does expire.
		dated := e.anon.As(o.admin.Do("POST", "/api/keys", map[string]any{"name": "dated2", "expires_at": in(time.Hour)}).Data()["value"].(string))
		expect(t, dated.Do("POST", "/api/keys", map[string]any{"name": "child"}), 200, "")
		// A new organization has no policy: provisioning never meets one.
		expect(t, e.partner.Do("POST", "/api/provision", map[string]any{"organization": map[string]any{"name": "Fresh"},
			"user": map[string]any{"email": "root@fresh.test", "role": "admin"}}), 200, "")
	})

	setPolicy(t, e.partner, o.id, map[string]any{"max_lifetime_seconds": 3600})
	t.Run("max_lifetime_seconds", func(t *testing.T) {
		violation(t, o.admin.Do("POST", "/api/keys", map[string]any{"name": "long", "expires_at": in(2 * time.Hour)}), "max_lifetime_seconds", 3600)
		violation(t, mint(map[string]any{"expires_at": in(2 * time.Hour)}), "max_lifetime_seconds", 3600)
		// Left out, the expiry is the latest the policy allows.
		r := o.admin.Do("POST", "/api/keys", map[string]any{"name": "bounded"})
		expect(t, r, 200, "")
		exp, _ := time.Parse(time.RFC3339, r.Data()["expires_at"].(string))
		if d := time.Until(exp); d < 3590*time.Second || d > 3600*time.Second {
			t.Fatalf("a key without expires_at under a 1 h limit expires in %v", d)
		}
		expect(t, mint(nil), 200, "")
		keys := e.partner.Do("GET", "/api/organizations/"+o.id+"/keys", nil).List()
		for _, k := range keys {
			if k["user_id"] == o.memberID && k["revoked_at"] == nil && k["expires_at"] == nil {
				t.Fatalf("a partner-minted key under a max lifetime never expires: %v", k)
			}
		}
	})

	setPolicy(t, e.partner, o.id, map[string]any{"allowed_cidrs": []string{"127.0.0.0/8"}})
	t.Run("a key's networks within the organization's", func(t *testing.T) {
		violation(t, o.admin.Do("POST", "/api/keys", map[string]any{"name": "elsewhere", "allowed_cidrs": []string{"192.0.2.0/24"}}),
			"allowed_cidrs", []string{"127.0.0.0/8"})
		r := o.admin.Do("POST", "/api/keys", map[string]any{"name": "narrower", "allowed_cidrs": []string{"127.0.0.1"}})
		expect(t, r, 200, "")
		if fmt.Sprint(r.Data()["allowed_cidrs"]) != "[127.0.0.1/32]" {
			t.Fatalf("key networks: %s", r.Body)
		}
		r = o.admin.Do("POST", "/api/keys", map[string]any{"name": "bad", "allowed_cidrs": []string{"x"}})
		expect(t, r, 400, "validation_failed")
		if !strings.Contains(fmt.Sprint(meta(r)["allowed_cidrs"]), `entry 0 ("x")`) {
			t.Fatalf("bad network: %s", r.Body)
		}
	})
}

func TestKeyPolicyBoundsRotations(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	o := e.newOrg("Rotated")
	forever := o.admin.Do("POST", "/api/keys", map[string]any{"name": "forever"}).Data()["id"].(string)
	soon := time.Now().Add(10 * time.Minute).UTC().Truncate(time.Second)
	short := o.admin.Do("POST", "/api/keys", map[string]any{"name": "short", "expires_at": soon.Format(time.RFC3339)}).Data()["id"].(string)
	setPolicy(t, e.partner, o.id, map[string]any{"max_lifetime_seconds": 3600})

	r := o.admin.Do("POST", "/api/keys/"+forever+"/rotate", nil)
	expect(t, r, 200, "")
	exp, _ := time.Parse(time.RFC3339, fmt.Sprint(r.Data()["expires_at"]))
	if d := time.Until(exp); d < 3590*time.Second || d > 3600*time.Second {
		t.Fatalf("a key without expiry rotated under a 1 h limit expires in %v: %s", d, r.Body)
	}
	// The stored key says so too, and the new value works until then.
	if got := o.admin.Do("GET", "/api/keys/"+forever, nil).Data()["expires_at"]; got != r.Data()["expires_at"] {
		t.Fatalf("stored expiry %v, answered %v", got, r.Data()["expires_at"])
	}
	expect(t, e.anon.As(r.Data()["value"].(string)).Do("GET", "/api/me", nil), 200, "")
	// A key expiring before the limit keeps its expiry.
	r = o.admin.Do("POST", "/api/keys/"+short+"/rotate", nil)
	expect(t, r, 200, "")
	if got, _ := time.Parse(time.RFC3339, fmt.Sprint(r.Data()["expires_at"])); !got.Equal(soon) {
		t.Fatalf("a key expiring in 10 minutes rotated under a 1 h limit: %s", r.Body)
	}
}

func TestAllowedNetworks(t *testing.T) {
	t.Parallel()
	e := newProxiedEnv(t)
	o := e.newOrg("Fenced")
	orgKey := e.anon.As(o.admin.Do("POST", "/api/keys", map[string]any{"name": "backend", "kind": "organization", "role": "admin"}).Data()["value"].(string))
	token := e.anon.As(o.member.Do("POST", "/api/auth/tokens", nil).Data()["token"].(string))
	// A key of its own networks, and its token.
	ownNet := e.anon.As(o.admin.Do("POST", "/api/keys", map[string]any{"name": "ci", "allowed_cidrs": []string{"10.9.0.0/16", "2001:db8:9::/48"}}).Data()["value"].(string))
	ownTok := e.anon.As(from(ownNet, "10.9.0.1").Do("POST", "/api/auth/tokens", nil).Data()["token"].(string))
	refused := func(t *testing.T, r *servertest.Response, policy, addr string) {
		t.Helper()
		expect(t, r, 403, "address_not_allowed")
		if m := meta(r); m["policy"] != policy || m["client_address"] != addr {
			t.Fatalf("refusal: %s", r.Body)
		}
	}

	// Before any organization policy, only the key's own list applies.
	expect(t, from(o.member, "192.0.2.1").Do("GET", "/api/me", nil), 200, "")
	expect(t, from(ownNet, "10.9.200.1").Do("GET", "/api/me", nil), 200, "")
	expect(t, from(ownNet, "2001:db8:9::5").Do("GET", "/api/me", nil), 200, "")
	refused(t, from(ownNet, "192.0.2.1").Do("GET", "/api/me", nil), "key", "192.0.2.1")
	refused(t, from(ownTok, "192.0.2.1").Do("GET", "/api/me", nil), "key", "192.0.2.1")

	setPolicy(t, e.partner, o.id, map[string]any{"allowed_cidrs": []string{"10.0.0.0/8", "2001:db8::/32"}})
	for name, c := range map[string]*servertest.Client{"user key": o.member, "token": token, "organization key": orgKey} {
		t.Run(name, func(t *testing.T) {
			// The change is seen on the next request: the cached principal was dropped.
			refused(t, from(c, "192.0.2.1").Do("GET", "/api/me", nil), "organization", "192.0.2.1")
			refused(t, from(c, "2001:db9::1").Do("GET", "/api/datasets", nil), "organization", "2001:db9::1")
			expect(t, from(c, "10.200.0.1").Do("GET", "/api/me", nil), 200, "")
			expect(t, from(c, "2001:db8::77").Do("GET", "/api/me", nil), 200, "")
			// The gateway check applies it to the client the proxy names.
			refused(t, from(c, "192.0.2.1").Do("GET", "/api/auth/check", nil), "organization", "192.0.2.1")
			expect(t, from(c, "10.200.0.1").Do("GET", "/api/auth/check", nil), 200, "")
		})
	}
	// Both lists must allow: the organization's passes, the key's refuses.
	refused(t, from(ownNet, "10.1.0.1").Do("GET", "/api/me", nil), "key", "10.1.0.1")
	refused(t, from(ownTok, "10.1.0.1").Do("GET", "/api/me", nil), "key", "10.1.0.1")
	expect(t, from(ownTok, "10.9.0.1").Do("GET", "/api/me", nil), 200, "")
	// A partner key is the partner's: no organization's policy governs it.
	expect(t, from(e.partner, "192.0.2.1").Do("GET", "/api/organizations/"+o.id, nil), 200, "")

	t.Run("a key made by a fenced key is fenced", func(t *testing.T) {
		c := from(ownNet, "10.9.0.1")
		r := c.Do("POST", "/api/keys", map[string]any{"name": "child"})
		expect(t, r, 200, "")
		if fmt.Sprint(r.Data()["allowed_cidrs"]) != "[10.9.0.0/16 2001:db8:9::/48]" {
			t.Fatalf("inherited networks: %s", r.Body)
		}
		expect(t, c.Do("POST", "/api/keys", map[string]any{"name": "wider", "allowed_cidrs": []string{"10.0.0.0/8"}}), 403, "permission_escalation")
		expect(t, c.Do("POST", "/api/keys", map[string]any{"name": "narrower", "allowed_cidrs": []string{"10.9.1.0/24"}}), 200, "")
		// Nor may it rotate a key usable from anywhere: it would hand that reach over.
		unfenced := from(o.admin, "10.0.0.1").Do("POST", "/api/keys", map[string]any{"name": "unfenced"}).Data()["id"].(string)
		expect(t, c.Do("POST", "/api/keys/"+unfenced+"/rotate", nil), 403, "permission_escalation")
	})

	// Lifting the policy lets the addresses in again, at once.
	setPolicy(t, e.partner, o.id, map[string]any{})
	expect(t, from(o.member, "192.0.2.1").Do("GET", "/api/me", nil), 200, "")
	expect(t, from(token, "192.0.2.1").Do("GET", "/api/me", nil), 200, "")
}

// Without a trusted proxy, X-Forwarded-For is the client's own say, and names nothing: the
// TCP peer is the client address checked.
func TestAllowedNetworksIgnoreUntrustedForwarding(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	o := e.newOrg("Spoofed")
	setPolicy(t, e.partner, o.id, map[string]any{"allowed_cidrs": []string{"10.0.0.0/8"}})
	r := from(o.member, "10.0.0.1").Do("GET", "/api/me", nil)
	expect(t, r, 403, "address_not_allowed")
	if meta(r)["client_address"] != "127.0.0.1" {
		t.Fatalf("refusal: %s", r.Body)
	}
	setPolicy(t, e.partner, o.id, map[string]any{"allowed_cidrs": []string{"127.0.0.0/8"}})
	expect(t, o.member.Do("GET", "/api/me", nil), 200, "")
}

// A policy changed through one replica is enforced by another within a second (the credential
// epoch, and on PostgreSQL its notice).
func TestKeyPolicyReachesAnotherReplica(t *testing.T) {
	t.Parallel()
	a, b := twoServers(t)
	o := a.newOrg("Replicated")
	onB := b.anon.As(o.member.Key)
	expect(t, onB.Do("GET", "/api/me", nil), 200, "") // cached on B
	setPolicy(t, a.partner, o.id, map[string]any{"allowed_cidrs": []string{"192.0.2.0/24"}})
	servertest.Eventually(t, time.Second, "B refuses the key from outside the new networks", func() bool {
		return onB.Do("GET", "/api/me", nil).Status == 403
	})
	setPolicy(t, a.partner, o.id, map[string]any{})
	servertest.Eventually(t, time.Second, "B lets the key in again", func() bool {
		return onB.Do("GET", "/api/me", nil).Status == 200
	})
}
