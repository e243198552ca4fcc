package server_test

import (
	"strings"
	"testing"
	"time"

	"github.com/tenantry/tenantry/server"
	"github.com/tenantry/tenantry/server/servertest"
	"github.com/tenantry/tenantry/tenants"
)

func TestVersionPinning(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	o := e.newOrg("Acme")
	org := e.partner.Do("GET", "/api/organizations/"+o.id, nil).Data()
	if org["api_version"] != "2025-09-18" {
		t.Fatalf("a new organization is pinned to the newest version: %v", org["api_version"])
	}
	// Its credentials are served at its version when they name none.
	expect(t, e.partner.Do("PUT", "/api/organizations/"+o.id, map[string]any{"name": "Acme", "api_version": "2022-12-12"}), 200, "")
	r := o.admin.Do("GET", "/api/me", nil)
	if r.Header.Get("X-Polytomic-Version") != "2022-12-12" {
		t.Fatalf("served at %q, want the organization's 2022-12-12", r.Header.Get("X-Polytomic-Version"))
	}
	// Version differences come from the registry: PATCH is served before 2025-09-18 only, so
	// the organization's pinned version has it.
	role := o.admin.Do("POST", "/api/permissions/roles", map[string]any{"name": "Support", "actions": []string{"users:read"}}).Data()["id"].(string)
	expect(t, o.admin.Do("PATCH", "/api/permissions/roles/"+role, map[string]any{"name": "Helpdesk"}), 200, "")
	na := o.admin.Do("PATCH", "/api/permissions/roles/"+role, map[string]any{"name": "Help"}, "X-Polytomic-Version", "2025-09-18")
	expect(t, na, 404, "not_available_in_version")
	if !strings.Contains(na.JSON()["message"].(string), "before version 2025-09-18") {
		t.Fatalf("the 404 must say which versions have it: %s", na.Body)
	}
	// A PUT without api_version leaves it as it is.
	expect(t, e.partner.Do("PUT", "/api/organizations/"+o.id, map[string]any{"name": "Acme"}), 200, "")
	if v := e.partner.Do("GET", "/api/organizations/"+o.id, nil).Data()["api_version"]; v != "2022-12-12" {
		t.Fatalf("api_version after a PUT without it: %v", v)
	}
	expect(t, e.partner.Do("PUT", "/api/organizations/"+o.id, map[string]any{"name": "Acme", "api_version": "1999-01-01"}), 400, "validation_failed")

	// A partner key is served at its owner organization's version.
	expect(t, e.partner.Do("PUT", "/api/organizations/"+e.ownerID, map[string]any{"name": "Partner A", "api_version": "2023-04-25"}), 200, "")
	if v := e.partner.Do("GET", "/api/me", nil).Header.Get("X-Polytomic-Version"); v != "2023-04-25" {
		t.Fatalf("partner served at %q, want its owner organization's 2023-04-25", v)
	}
}

func TestOrganizationOrderByVersion(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createOrg(e.partner, "zeta")
	e.createOrg(e.partner, "Alpha")
	names := func(version string) string {
		var out []string
		for _, o := range e.partner.Do("GET", "/api/organizations", nil, "X-Polytomic-Version", version).List() {
			out = append(out, o["name"].(string))
		}
		return strings.Join(out, ",")
	}
	if got := names("2025-09-18"); got != "Partner A,zeta,Alpha" {
		t.Fatalf("2025-09-18 lists the owner first, then by creation: %s", got)
	}
	if got := names("2024-02-08"); got != "Alpha,Partner A,zeta" {
		t.Fatalf("before 2025-09-18 the list is by name: %s", got)
	}
}

func TestPatchBeforeVersion(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	old := []string{"X-Polytomic-Version", "2024-02-08"}
	org := e.partner.Do("POST", "/api/organizations", map[string]any{"name": "Acme", "sso_domain": "acme.test", "client_secret": "keep-me"}).Data()["id"].(string)
	patched := e.partner.Do("PATCH", "/api/organizations/"+org, map[string]any{"sso_org_id": "org_9"}, old...)
	expect(t, patched, 200, "")
	if d := patched.Data(); d["name"] != "Acme" || d["sso_domain"] != "acme.test" || d["sso_org_id"] != "org_9" {
		t.Fatalf("PATCH must change only what it names: %s", patched.Body)
	}
	if secret := string(e.opened("organizations", "client_secret", org)); secret != "keep-me" {
		t.Fatalf("PATCH without client_secret changed it to %q", secret)
	}
	// From 2025-09-18 updates are PUT only.
	expect(t, e.partner.Do("PATCH", "/api/organizations/"+org, map[string]any{"sso_org_id": "x"}), 404, "not_available_in_version")
	expect(t, e.partner.Do("PATCH", "/api/organizations/"+org, map[string]any{"nme": "x"}, old...), 400, "unknown_field")

	user := e.createUser(e.partner, org, "ada@acme.test", "admin")
	e.createUser(e.partner, org, "root@acme.test", "admin")
	pu := e.partner.Do("PATCH", "/api/organizations/"+org+"/users/"+user, map[string]any{"role": "user"}, old...)
	expect(t, pu, 200, "")
	if pu.Data()["email"] != "ada@acme.test" || pu.Data()["role"] != "user" {
		t.Fatalf("PATCH user: %s", pu.Body)
	}
	admin := e.anon.As(e.mintKey(e.partner, org, e.createUser(e.partner, org, "boss@acme.test", "admin")))
	role := admin.Do("POST", "/api/permissions/roles", map[string]any{"name": "Support", "actions": []string{"users:read"}}).Data()["id"].(string)
	pr := admin.Do("PATCH", "/api/permissions/roles/"+role, map[string]any{"name": "Helpdesk"}, old...)
	expect(t, pr, 200, "")
	if pr.Data()["name"] != "Helpdesk" || len(pr.Data()["actions"].([]any)) != 1 {
		t.Fatalf("PATCH role: %s", pr.Body)
	}
}

func TestVersionsListAndSunset(t *testing.T) {
	t.Parallel()
	sunset := time.Date(2027, 6, 30, 0, 0, 0, 0, time.UTC)
	e := newEnvWith(t, func(c *server.Config) { c.OldestVersionSunset = sunset })
	list := e.anon.Do("GET", "/api/versions", nil)
	expect(t, list, 200, "")
	d := list.Data()
	if len(d["versions"].([]any)) != 5 || d["latest"] != "2025-09-18" || len(d["changes"].([]any)) != 2 || d["sunset"] == nil {
		t.Fatalf("versions: %s", list.Body)
	}
	// Only what would break an existing client is a dated change: no change adds routes.
	for _, ch := range d["changes"].([]any) {
		for _, r := range ch.(map[string]any)["routes"].([]any) {
			if strings.Contains(r.(string), "/api/organization/") || strings.HasSuffix(r.(string), "/api/organization") {
				t.Fatalf("the current-organization endpoints are served at every version, yet a change names %s: %s", r, list.Body)
			}
		}
	}
	oldest := e.partner.Do("GET", "/api/me", nil, "X-Polytomic-Version", "2021-05-23")
	if oldest.Header.Get("Sunset") != "Wed, 30 Jun 2027 00:00:00 GMT" || !strings.HasPrefix(oldest.Header.Get("Deprecation"), "@") {
		t.Fatalf("the oldest version must announce its sunset: %v", oldest.Header)
	}
	newer := e.partner.Do("GET", "/api/me", nil, "X-Polytomic-Version", "2022-12-12")
	if newer.Header.Get("Sunset") != "" || newer.Header.Get("Deprecation") != "" {
		t.Fatalf("only the oldest version is deprecated: %v", newer.Header)
	}
}

// Adding an endpoint breaks no client, so, as Stripe does, new endpoints are served at every
// version: Polytomic's Go SDK pinned to 2022-12-12 or 2024-02-08 reaches /api/organization.
func TestNewEndpointsAtEveryVersion(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	o := e.newOrg("Acme")
	for _, v := range tenants.Versions {
		at := []string{"X-Polytomic-Version", v}
		for name, c := range map[string]*servertest.Client{"user key": o.admin, "partner key": e.partner} {
			r := c.Do("GET", "/api/organization", nil, at...)
			expect(t, r, 200, "")
			if want := map[string]string{"user key": o.id, "partner key": e.ownerID}[name]; r.Data()["id"] != want {
				t.Fatalf("%s at %s: GET /api/organization is %s", name, v, r.Body)
			}
		}
		expect(t, o.admin.Do("GET", "/api/organization/users", nil, at...), 200, "")
		created := o.admin.Do("POST", "/api/organization/users", map[string]any{"email": "v" + strings.ReplaceAll(v, "-", "") + "@acme.test"}, at...)
		expect(t, created, 200, "")
		id := created.Data()["id"].(string)
		expect(t, o.admin.Do("GET", "/api/organization/users/"+id, nil, at...), 200, "")
		expect(t, o.admin.Do("PUT", "/api/organization/users/"+id, map[string]any{"email": "w" + created.Data()["email"].(string)}, at...), 200, "")
		expect(t, o.admin.Do("DELETE", "/api/organization/users/"+id, nil, at...), 200, "")
	}
	// The organization's pinned version serves them too, when the request names none.
	expect(t, e.partner.Do("PUT", "/api/organizations/"+o.id, map[string]any{"name": "Acme", "api_version": "2022-12-12"}), 200, "")
	r := o.admin.Do("GET", "/api/organization", nil)
	expect(t, r, 200, "")
	if r.Header.Get("X-Polytomic-Version") != "2022-12-12" {
		t.Fatalf("served at %q, want the organization's 2022-12-12", r.Header.Get("X-Polytomic-Version"))
	}
}
