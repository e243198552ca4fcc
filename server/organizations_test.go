package server_test

import (
	"strings"
	"testing"
)

func TestOrganizationLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.partner

	create := p.Do("POST", "/api/organizations", map[string]any{
		"name": "  Acme Corp  ", "issuer": "https://login.acme.test", "client_id": "cid",
		"client_secret": "s3cret-value", "sso_domain": "Acme.Test", "sso_org_id": "org_1",
	})
	expect(t, create, 200, "")
	org := create.Data()
	id := org["id"].(string)
	if org["name"] != "Acme Corp" || org["sso_domain"] != "acme.test" || org["issuer"] != "https://login.acme.test" || org["client_id"] != "cid" {
		t.Fatalf("created organization not normalised as sent: %v", org)
	}
	if strings.Contains(string(create.Body), "s3cret-value") || strings.Contains(string(create.Body), "client_secret") {
		t.Fatalf("client_secret returned: %s", create.Body)
	}

	second := e.createOrg(p, "Beta")
	list := p.Do("GET", "/api/organizations", nil)
	expect(t, list, 200, "")
	var ids []string
	for _, o := range list.List() {
		ids = append(ids, o["id"].(string))
	}
	if want := []string{e.ownerID, id, second}; strings.Join(ids, ",") != strings.Join(want, ",") {
		t.Fatalf("list order %v, want owner first then by creation %v", ids, want)
	}

	got := p.Do("GET", "/api/organizations/"+id, nil)
	expect(t, got, 200, "")
	if got.Data()["name"] != "Acme Corp" {
		t.Fatalf("get: %s", got.Body)
	}

	// PUT replaces the SSO fields in full: what is left out is cleared.
	put := p.Do("PUT", "/api/organizations/"+id, map[string]any{"name": "Acme Corporation", "sso_domain": "acme.example"})
	expect(t, put, 200, "")
	d := put.Data()
	if d["name"] != "Acme Corporation" || d["issuer"] != "" || d["client_id"] != "" || d["sso_domain"] != "acme.example" || d["sso_org_id"] != "" {
		t.Fatalf("PUT did not replace in full: %v", d)
	}
	var secret string
	if err := e.db.Get(&secret, e.db.Rebind(`SELECT client_secret FROM organizations WHERE id = ?`), id); err != nil || secret != "" {
		t.Fatalf("client_secret after PUT without it = %q, %v; want cleared", secret, err)
	}
	expect(t, p.Do("PUT", "/api/organizations/"+id, map[string]any{"name": "beta"}), 409, "organization_name_taken")
	// Renaming to its own name in another case is not a conflict with itself.
	expect(t, p.Do("PUT", "/api/organizations/"+id, map[string]any{"name": "ACME CORPORATION"}), 200, "")

	del := p.Do("DELETE", "/api/organizations/"+id, nil)
	expect(t, del, 200, "")
	if del.Data()["id"] != id {
		t.Fatalf("delete returned %s", del.Body)
	}
	expect(t, p.Do("GET", "/api/organizations/"+id, nil), 404, "organization_not_found")
	expect(t, p.Do("DELETE", "/api/organizations/"+id, nil), 404, "organization_not_found")
	expect(t, p.Do("DELETE", "/api/organizations/"+e.ownerID, nil), 409, "owner_organization_undeletable")

	// The name is free again once its organization is gone.
	e.createOrg(p, "acme corporation")

	cur := p.Do("GET", "/api/organization", nil)
	expect(t, cur, 200, "")
	if cur.Data()["id"] != e.ownerID || cur.Data()["name"] != "Partner A" {
		t.Fatalf("current organization of a partner key: %s", cur.Body)
	}
}

func TestOrganizationValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createOrg(e.partner, "Taken")
	cases := []struct {
		name   string
		body   any
		header []string
		status int
		key    string
		field  string // a metadata entry the error must name
	}{
		{"missing name", map[string]any{}, nil, 400, "validation_failed", "name"},
		{"blank name", map[string]any{"name": "   "}, nil, 400, "validation_failed", "name"},
		{"name too long", map[string]any{"name": strings.Repeat("é", 256)}, nil, 400, "validation_failed", "name"},
		{"name of 255 characters", map[string]any{"name": strings.Repeat("é", 255)}, nil, 200, "", ""},
		{"control character", map[string]any{"name": "Acme\x07"}, nil, 400, "validation_failed", "name"},
		{"newline", map[string]any{"name": "Acme\nInc"}, nil, 400, "validation_failed", "name"},
		{"SQL metacharacters are just text", map[string]any{"name": `Robert'); DROP TABLE organizations;--`}, nil, 200, "", ""},
		{"duplicate ignoring case", map[string]any{"name": "TAKEN"}, nil, 409, "organization_name_taken", ""},
		{"duplicate after trimming", map[string]any{"name": " taken "}, nil, 409, "organization_name_taken", ""},
		{"issuer not a URL", map[string]any{"name": "A1", "issuer": "not a url"}, nil, 400, "validation_failed", "issuer"},
		{"issuer not http", map[string]any{"name": "A2", "issuer": "ftp://x.test"}, nil, 400, "validation_failed", "issuer"},
		{"sso_domain not a domain", map[string]any{"name": "A3", "sso_domain": "no spaces.com x"}, nil, 400, "validation_failed", "sso_domain"},
		{"every bad field named", map[string]any{"name": "", "issuer": "x", "sso_domain": "-"}, nil, 400, "validation_failed", "sso_domain"},
		{"wrong type", map[string]any{"name": 42}, nil, 400, "validation_failed", "name"},
		{"unknown field", map[string]any{"name": "A4", "colour": "red"}, nil, 400, "unknown_field", "field"},
		{"malformed JSON", `{"name": "A5"`, nil, 400, "malformed_json", ""},
		{"not an object", `["A6"]`, nil, 400, "malformed_json", ""},
		{"two values", `{"name":"A7"} {"name":"A8"}`, nil, 400, "malformed_json", ""},
		{"trailing bracket", `{"name":"A7b"}]`, nil, 400, "malformed_json", ""},
		{"trailing braces and junk", `{"name":"A7c"}}}garbage`, nil, 400, "malformed_json", ""},
		{"field name in another case", `{"NAME":"A7d"}`, nil, 400, "unknown_field", "field"},
		{"duplicate field", `{"name":"A7e","name":"A7f"}`, nil, 400, "duplicate_field", "field"},
		{"zero-width name", map[string]any{"name": "\u200b"}, nil, 400, "validation_failed", "name"},
		{"bidi override", map[string]any{"name": "evil\u202egnp.exe"}, nil, 400, "validation_failed", "name"},
		{"lone surrogate", `{"name":"a\ud800b"}`, nil, 400, "validation_failed", "name"},
		{"issuer with a password", map[string]any{"name": "A7g", "issuer": "https://user:pass@login.test"}, nil, 400, "validation_failed", "issuer"},
		{"empty body", "", nil, 400, "body_required", ""},
		{"deep nesting", strings.Repeat("[", 20000) + strings.Repeat("]", 20000), nil, 400, "malformed_json", ""},
		{"invalid UTF-8", "{\"name\": \"A\xff\"}", nil, 400, "malformed_json", ""},
		{"not JSON", "name=A9", []string{"Content-Type", "application/x-www-form-urlencoded"}, 415, "unsupported_media_type", ""},
		{"no content type", `{"name":"A10"}`, []string{"Content-Type", ""}, 415, "unsupported_media_type", ""},
		{"over 1 MiB", map[string]any{"name": "A11", "issuer": strings.Repeat("a", 1<<20)}, nil, 413, "body_too_large", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.partner.Do("POST", "/api/organizations", tc.body, tc.header...)
			expect(t, r, tc.status, tc.key)
			if tc.field != "" {
				if _, ok := r.JSON()["metadata"].(map[string]any)[tc.field]; !ok {
					t.Fatalf("metadata does not name %q: %s", tc.field, r.Body)
				}
			}
		})
	}
	t.Run("every bad field is named", func(t *testing.T) {
		r := e.partner.Do("POST", "/api/organizations", map[string]any{"name": "", "issuer": "x", "sso_domain": "-"})
		expect(t, r, 400, "validation_failed")
		meta := r.JSON()["metadata"].(map[string]any)
		if len(meta) != 3 || meta["name"] == nil || meta["issuer"] == nil || meta["sso_domain"] == nil {
			t.Fatalf("metadata must name name, issuer and sso_domain: %s", r.Body)
		}
	})
	t.Run("chunked body over 1 MiB", func(t *testing.T) {
		// No Content-Length: the limit must hold while reading.
		big := `{"name":"` + strings.Repeat("a", 2<<20) + `"}`
		expect(t, e.partner.Do("POST", "/api/organizations", strings.NewReader(big)), 413, "body_too_large")
	})
	// Nothing half-written: only the organizations that got a 200 exist.
	var n int
	if err := e.db.Get(&n, `SELECT COUNT(*) FROM organizations`); err != nil || n != 4 {
		t.Fatalf("organizations in the database = %d, %v; want 4 (owner, Taken and the two 200 cases)", n, err)
	}
}
