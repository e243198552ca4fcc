package server_test

import (
	"encoding/base64"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/tenantry/tenantry/server/servertest"
	"github.com/tenantry/tenantry/tenants"
)

// A constrained request field: the values openapi.yaml forbids and some it allows. "{n}" in a
// value is replaced by a number unique to the request (names must be unique).
type constrained struct {
	field     string // the field as validation_failed metadata names it
	bad, good []string
}

// Values of the request fields whose constraints openapi.yaml states. Each list holds edges of
// the server's rules: the characters tenants.CheckText refuses, trimming, blanks, lengths.
var (
	// Required names, trimmed: not blank, no control, invisible or text-direction characters.
	nameBad = []string{"", "   ", "\t\n", "Ac\x00me", "Ac\tme", "Ac\nme", "Ac\rme", "Ac\x1bme", "Ac\x7fme",
		"Ac\u0085me", "Ac\u009fme", "Ac\u00adme", "Ac\u061cme", "Ac\u200bme", "Ac\u200fme", "Ac\u202ame", "Ac\u202eme",
		"Ac\u2060me", "Ac\u2069me", "Ac\ufeffme", "Ac\ufffdme", "\u00a0\u3000", strings.Repeat("a", 256)}
	nameGood = []string{"Acme {n}", "  Acme {n}\t\n", "\u00a0Acme\u3000{n}\u2028", "Åcmé 株式会社 {n} 🚀",
		"Line\u2028Sep\u00a0{n}", "Ac\u200ame{n}", strings.Repeat("a", 251) + "{n}"}
	// Optional text, trimmed (client_id, sso_org_id): "" is fine.
	textBad  = []string{"id\x00", "id\tx", "id\u200b", "\u202eid", strings.Repeat("a", 256)}
	textGood = []string{"", "   ", "\tclient-{n}\n", "client id {n}", strings.Repeat("a", 251) + "{n}"}
	// http(s) URLs or "" (issuer, source), trimmed.
	urlBad = []string{"ftp://x.example", "login.example.com", "javascript:alert(1)", "https://", "https:///path",
		"https://user:pw@x.example", "https://@x.example", "https://x.example/a\x07", "https://x.example/\u200b",
		"https://x y.example/", "https://x.example:abc/", "https://x.example/%zz", "https://x.example/a#%zz",
		"https://x.example/a\tb", "https://x.example/" + strings.Repeat("a", 2031)}
	urlGood = []string{"", "  ", "https://login.example.com", "http://127.0.0.1:8080/realms/{n}?x=1&y=%zz#frag",
		"HTTPS://Login.Example.COM/{n}", " \thttps://x.example/a b/{n}\n", "https://[2001:db8::1]/{n}",
		"https://é.example/ünï/{n}", "https://x.example/%41{n}#%42", "https://x.example/" + strings.Repeat("a", 2026) + "{n}"}
	// Host names (sso_domain), trimmed and lower-cased, or "".
	domainBad = []string{"localhost", "acme", "-acme.test", "acme-.test", "acme..test", "acme.test.", ".acme.test",
		"ac_me.test", "acmé.test", "acme test.example", strings.Repeat("a", 64) + ".test",
		strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 62)}
	domainGood = []string{"", "acme{n}.test", "ACME{n}.Example.COM", " acme{n}.test\t", "a-b{n}.c-d.e", "xn--bcher-kva{n}.example",
		strings.Repeat("a", 59) + "{n}.test",
		strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 57) + "{n}"}
	// Untrimmed text (client_secret, role_vars values, user_profile.name): a tab anywhere is refused.
	rawTextBad  = []string{"s\x00", "\ts3cret", "s3cret\n", "s\u2066"}
	rawTextGood = []string{"", " s3cr3t with spaces {n} ", "ünïcödé {n}"}
)

// Every request field with a constraint in openapi.yaml, on every operation that takes it:
// the spec must forbid exactly the values the server refuses (400 validation_failed naming
// the field) and allow the values it accepts. Both halves are checked for each value, so a
// spec stricter or looser than the server fails here, as it would fail a generated validator
// or a fuzzer.
func TestSpecConstraintsMatchServer(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, fastWebhooks) // webhooks may reach loopback: nothing leaves the machine
	o := e.newOrg("Acme")
	old := []string{"X-Polytomic-Version", "2024-02-08"}
	staff := e.anon.As(e.mintKey(e.partner, e.ownerID, e.createUser(e.partner, e.ownerID, "staff@partner.test", "admin")))
	role := o.admin.Do("POST", "/api/permissions/roles", map[string]any{"name": "Support", "actions": []string{}}).Data()["id"].(string)
	connection := func(c *servertest.Client, n string) string {
		r := c.Do("POST", "/api/connections", map[string]any{"name": "conn " + n, "type": "postgresql"})
		expect(t, r, 200, "")
		return r.Data()["id"].(string)
	}
	conn := connection(o.admin, "for datasets")
	dataset := o.admin.Do("POST", "/api/datasets", map[string]any{"name": "Events", "slug": "events"}).Data()["id"].(string)
	webhook := o.admin.Do("POST", "/api/webhooks", map[string]any{"endpoint": "https://127.0.0.1:1/hook"}).Data()["id"].(string)
	userPath := "/api/organizations/" + o.id + "/users/"

	// An operation: who calls it, how, and the body with value v in field (n is unique to the
	// request).
	type op struct {
		name   string
		caller *servertest.Client
		method string
		path   func(n string) string
		body   func(field string, v any, n string) any
		header []string
		fields map[string]constrained // body field → its values
		prefix string                 // of the fields in validation_failed metadata
	}
	// Where kin-openapi reports the field in the body (a JSON pointer), when not at /field.
	pointer := map[string]string{"role_vars": "/role_vars/region", "user_profile.name": "/user_profile/name"}
	at := func(p string) func(string) string { return func(string) string { return p } }
	// with is a body: a valid one of base, field set to v.
	with := func(base func(n string) map[string]any) func(string, any, string) any {
		return func(field string, v any, n string) any {
			b := base(n)
			b[field] = v
			return b
		}
	}
	orgBody := with(func(n string) map[string]any { return map[string]any{"name": "Org " + n} })
	orgFields := map[string]constrained{
		"name":          {"name", nameBad, nameGood},
		"issuer":        {"issuer", urlBad, urlGood},
		"client_id":     {"client_id", textBad, textGood},
		"sso_org_id":    {"sso_org_id", textBad, textGood},
		"sso_domain":    {"sso_domain", domainBad, domainGood},
		"client_secret": {"client_secret", rawTextBad, rawTextGood},
	}
	named := func(extra map[string]any) func(string, any, string) any {
		return with(func(string) map[string]any {
			b := map[string]any{}
			for k, x := range extra {
				b[k] = x
			}
			return b
		})
	}
	nameOnly := map[string]constrained{"name": {"name", nameBad, nameGood}}
	ops := []op{
		{"create organization", e.partner, "POST", at("/api/organizations"), orgBody, nil, orgFields, ""},
		{"replace organization", e.partner, "PUT", at("/api/organizations/" + o.id), orgBody, nil, orgFields, ""},
		{"patch organization", e.partner, "PATCH", at("/api/organizations/" + o.id), orgBody, old, orgFields, ""},
		{"provision", e.partner, "POST", at("/api/provision"), func(field string, v any, n string) any {
			return map[string]any{"organization": orgBody(field, v, n), "user": map[string]any{"email": "root" + n + "@acme.test"}}
		}, nil, orgFields, "organization."},
		{"create role", o.admin, "POST", at("/api/permissions/roles"), named(map[string]any{"actions": []string{}}), nil, nameOnly, ""},
		{"replace role", o.admin, "PUT", at("/api/permissions/roles/" + role), named(map[string]any{"actions": []string{}}), nil, nameOnly, ""},
		{"patch role", o.admin, "PATCH", at("/api/permissions/roles/" + role), named(nil), old, nameOnly, ""},
		{"create key", o.admin, "POST", at("/api/keys"), named(nil), nil, nameOnly, ""},
		{"create partner key", e.partner, "POST", at("/api/partner/keys"), named(nil), nil, nameOnly, ""},
		{"create connection", o.admin, "POST", at("/api/connections"), named(map[string]any{"type": "postgresql"}), nil, nameOnly, ""},
		{"replace connection", o.admin, "PUT", at("/api/connections/" + conn), named(map[string]any{"type": "postgresql"}), nil, nameOnly, ""},
		{"share connection", e.partner, "POST", func(n string) string {
			return "/api/organizations/" + e.ownerID + "/connections/" + connection(staff, n) + "/shared"
		}, named(map[string]any{"child_organization_id": o.id}), nil, nameOnly, ""},
	}
	for _, method := range []string{"POST", "PUT"} {
		path := at("/api/datasets")
		if method == "PUT" {
			path = at("/api/datasets/" + dataset)
		}
		datasetBody := with(func(n string) map[string]any { return map[string]any{"name": "Dataset " + n, "slug": "ds" + n} })
		ops = append(ops, op{method + " dataset", o.admin, method, path, datasetBody, nil, map[string]constrained{
			"name":   {"name", nameBad, nameGood},
			"source": {"source", urlBad, urlGood},
			"description": {"description",
				[]string{"a\x00b", "a\x1bb", "a\vb", "a\fb", "a\u0085b", "a\u200bb", strings.Repeat("a", 4001)},
				[]string{"", "line 1\nline 2\r\n\ttabbed {n}", " padded {n} ", strings.Repeat("a", 3996) + "{n}"}},
		}, ""})
		path = at("/api/webhooks")
		if method == "PUT" {
			path = at("/api/webhooks/" + webhook)
		}
		webhookBody := with(func(n string) map[string]any { return map[string]any{"endpoint": "https://127.0.0.1:1/hook/" + n} })
		ops = append(ops, op{method + " webhook", o.admin, method, path, webhookBody, nil, map[string]constrained{
			"endpoint": {"endpoint", []string{"", "   ", "hooks.example.com", "ftp://127.0.0.1/x", "https://", "https://:1/x",
				"https://u:p@127.0.0.1/", "https://127.0.0.1/#frag", "https://127.0.0.1/a#", "https://127.0.0.1/a\x07", "https://127.0.0.1/%zz",
				"https://127.0.0.1/" + strings.Repeat("a", 2031)},
				[]string{"https://127.0.0.1:1/hook/{n}", "http://127.0.0.1:1/hook?x={n}&y=%zz", "HTTPS://127.0.0.1:1/Hook/{n}", "https://[::1]:1/{n}"}},
			"secret": {"secret", []string{"0123456789abcdef\x00", "0123456789abcdef\u200b", "\t0123456789abcdef"},
				[]string{"0123456789abcdef{n}", "whsec_" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef01234567"))}},
		}, ""})
	}
	// role and role_ids are exclusive, wherever a user is given.
	exclusive := map[string]constrained{"roles": {"role_ids", []string{"both"}, []string{"role", "role_ids", "neither"}}}
	roles := func(_ string, v any, n string) any {
		b := map[string]any{"email": "user" + n + "@acme.test"}
		switch v {
		case "both":
			b["role"], b["role_ids"] = "user", []string{role}
		case "role":
			b["role"] = "admin"
		case "role_ids":
			b["role_ids"] = []string{role}
		}
		return b
	}
	member := func(n string) string { return userPath + e.createUser(e.partner, o.id, "u"+n+"@acme.test", "user") }
	ops = append(ops,
		op{"create user", e.partner, "POST", at(userPath[:len(userPath)-1]), roles, nil, exclusive, ""},
		op{"replace user", e.partner, "PUT", member, roles, nil, exclusive, ""},
		op{"patch user", e.partner, "PATCH", member, roles, old, exclusive, ""},
		op{"create own user", o.admin, "POST", at("/api/organization/users"), roles, nil, exclusive, ""},
		op{"replace own user", o.admin, "PUT", func(n string) string {
			return "/api/organization/users/" + e.createUser(e.partner, o.id, "own"+n+"@acme.test", "user")
		}, roles, nil, exclusive, ""},
		op{"provision user", e.partner, "POST", at("/api/provision"), func(_ string, v any, n string) any {
			return map[string]any{"organization": map[string]any{"name": "Provisioned " + n}, "user": roles("", v, n)}
		}, nil, map[string]constrained{"roles": {"role_ids", []string{"both"}, []string{"role", "neither"}}}, "user."}, // no role ids exist before
		op{"verify a key", o.admin, "POST", at("/api/keys/verify"), with(func(string) map[string]any { return map[string]any{"key": o.member.Key} }),
			nil, map[string]constrained{
				"key": {"key", []string{"", " ", "\t\r\n\f"}, []string{"x", " x{n} ", "\v", "\u00a0", "\u3000", o.member.Key}},
			}, ""},
		op{"mint token", o.admin, "POST", at("/api/auth/tokens"), func(_ string, v any, _ string) any {
			return map[string]any{"role_vars": map[string]any{"region": v}}
		}, nil, map[string]constrained{"role_vars": {"role_vars", rawTextBad, rawTextGood}}, ""},
		op{"mint token for a person", o.admin, "POST", at("/api/auth/tokens"), func(_ string, v any, _ string) any {
			return map[string]any{"user_profile": map[string]any{"name": v}}
		}, nil, map[string]constrained{"user_profile.name": {"user_profile.name", rawTextBad, rawTextGood}}, ""},
	)

	// Operations whose fields repeat those of a create above (the same server code, the same
	// rule in the spec) try every other value, which keeps this test affordable under -race.
	again := map[string]bool{"replace organization": true, "patch organization": true, "provision": true,
		"replace role": true, "patch role": true, "replace connection": true, "PUT dataset": true, "PUT webhook": true}
	seq := 0
	for _, c := range ops {
		for field, f := range c.fields {
			for _, allowed := range []bool{false, true} {
				values := f.bad
				if allowed {
					values = f.good
				}
				for i, v := range values {
					if again[c.name] && i%2 == 1 {
						continue
					}
					seq++
					n := fmt.Sprintf("%04d", seq)
					v = strings.ReplaceAll(v, "{n}", n)
					path, b := c.path(n), c.body(field, v, n)
					specErr := c.caller.CheckRequest(c.method, path, b, c.header...)
					r := c.caller.Do(c.method, path, b, c.header...)
					what := fmt.Sprintf("%s, %s %.80q", c.name, field, v)
					if !allowed {
						at, ok := pointer[field]
						if !ok {
							at = "/" + field
						}
						if c.prefix != "" {
							at = "/" + strings.TrimSuffix(c.prefix, ".") + at
						}
						at = `Error at "` + at + `"`
						if field == "roles" {
							at = `Doesn't match schema "not"`
						}
						switch {
						case specErr == nil:
							t.Errorf("%s: openapi.yaml allows it, the server refuses it", what)
						case !strings.Contains(specErr.Error(), at):
							t.Errorf("%s: openapi.yaml refuses it, but not for this field (%s): %v", what, at, specErr)
						}
						_, named := r.JSON()["metadata"].(map[string]any)[c.prefix+f.field]
						if r.Status != 400 || r.ErrorKey() != "validation_failed" || !named {
							t.Errorf("%s: want 400 validation_failed naming %s, got %d %.300s", what, c.prefix+f.field, r.Status, r.Body)
						}
						continue
					}
					if specErr != nil {
						t.Errorf("%s: openapi.yaml refuses it (%v), the server accepts it", what, specErr)
					}
					if r.Status != 200 {
						t.Errorf("%s: the spec allows it, want 200, got %d %.300s", what, r.Status, r.Body)
					}
				}
			}
		}
	}
}

// specProperty is the schema of a request body property in openapi.yaml.
func specProperty(t *testing.T, schema, property string) *openapi3.Schema {
	t.Helper()
	s := servertest.Spec(t).Components.Schemas[schema]
	if s == nil || s.Value.Properties[property] == nil {
		t.Fatalf("openapi.yaml has no %s.%s", schema, property)
	}
	return s.Value.Properties[property].Value
}

// The text patterns, character by character against the real server: each character at the
// edge of a range the server refuses or trims, in the middle of a value, alone, leading and
// trailing. What openapi.yaml allows, the server accepts, and the other way round.
func TestTextPatternsMatchServer(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	o := e.newOrg("Acme")
	var runes []rune
	for _, span := range [][2]rune{
		{0x00, 0x00}, {0x08, 0x0E}, {0x1F, 0x21}, {'a', 'a'}, {0x7E, 0x7F}, {0x84, 0x86}, {0x9F, 0xA1}, {0xAC, 0xAE},
		{0xE9, 0xE9}, {0x61B, 0x61D}, {0x167F, 0x1681}, {0x180E, 0x180E}, {0x1FFF, 0x2001}, {0x2009, 0x2010},
		{0x2027, 0x202F}, {0x205E, 0x206A}, {0x2FFF, 0x3001}, {0xFEFE, 0xFF00}, {0xFFFC, 0xFFFF},
		{0x10000, 0x10000}, {0x1F600, 0x1F600}, {0xE0001, 0xE0001}, {0x10FFFF, 0x10FFFF},
	} {
		for r := span[0]; r <= span[1]; r++ {
			runes = append(runes, r)
		}
	}
	// Requests always refused for another field, so nothing is written, naming each field
	// whose value the server refuses: one field for each kind of text rule.
	type field struct {
		schema *openapi3.Schema
		key    string // in validation_failed metadata
	}
	type probe struct {
		caller       *servertest.Client
		method, path string
		body         func(s string) map[string]any
		fields       []field
	}
	probes := []probe{
		{e.partner, "POST", "/api/organizations", func(s string) map[string]any {
			return map[string]any{"name": s, "client_id": s, "client_secret": s, "api_version": "1999-01-01"}
		}, []field{
			{specProperty(t, "CreateOrganizationRequest", "name"), "name"},                   // trimmed, required
			{specProperty(t, "CreateOrganizationRequest", "client_id"), "client_id"},         // trimmed, optional
			{specProperty(t, "CreateOrganizationRequest", "client_secret"), "client_secret"}, // as given
		}},
		{o.admin, "POST", "/api/datasets", func(s string) map[string]any {
			return map[string]any{"name": "Events", "description": s, "slug": "NOT A SLUG"}
		}, []field{{specProperty(t, "CreateDatasetRequest", "description"), "description"}}}, // tabs and line breaks
	}
	checked := 0
	for _, r := range runes {
		c := string(r)
		for _, v := range []string{"a" + c + "b", c, c + "a", "a" + c} {
			for _, p := range probes {
				resp := p.caller.Do(p.method, p.path, p.body(v))
				if resp.Status != 400 {
					t.Fatalf("%s %s %q: the probe must be refused, got %d %s", p.method, p.path, v, resp.Status, resp.Body)
				}
				metadata, _ := resp.JSON()["metadata"].(map[string]any)
				for _, f := range p.fields {
					_, refused := metadata[f.key]
					if allowed := f.schema.VisitJSON(v) == nil; allowed == refused {
						t.Errorf("%s %q (%U): openapi.yaml allows it: %v; the server refuses it: %v", f.key, v, r, allowed, refused)
					}
					checked++
				}
			}
		}
	}
	if checked < 1000 {
		t.Fatalf("only %d checks", checked)
	}
}

// The patterns refuse exactly the characters tenants.CheckText refuses, over all of Unicode,
// and a required name allows around a value exactly the white space the server trims.
// TestTextPatternsMatchServer proves the server applies these rules at their edges; this
// covers every code point, which a sweep over HTTP cannot afford.
func TestTextPatternsCoverUnicode(t *testing.T) {
	t.Parallel()
	compile := func(schema *openapi3.Schema) *regexp.Regexp {
		// As kin-openapi turns ECMA-262 \uXXXX escapes into Go's.
		return regexp.MustCompile(regexp.MustCompile(`\\u([0-9A-Fa-f]{4})`).ReplaceAllString(schema.Pattern, `\x{$1}`))
	}
	raw := compile(specProperty(t, "CreateOrganizationRequest", "client_secret"))
	name := compile(specProperty(t, "CreateOrganizationRequest", "name"))
	// Every code point in the middle of a value, in blocks: a block the pattern and CheckText
	// both accept whole is fine; any other is halved until the disagreement is one character.
	var check func(lo, hi rune)
	check = func(lo, hi rune) {
		var b strings.Builder
		for r := lo; r < hi; r++ {
			if utf8.ValidRune(r) {
				b.WriteRune(r)
			}
		}
		v := "a" + b.String() + "b"
		allowed, accepted := raw.MatchString(v), tenants.CheckText(v, len(v)) == ""
		switch {
		case allowed && accepted:
		case hi-lo == 1:
			if allowed != accepted {
				t.Errorf("%U: the pattern allows it: %v; CheckText accepts it: %v", lo, allowed, accepted)
			}
		default:
			check(lo, lo+(hi-lo)/2)
			check(lo+(hi-lo)/2, hi)
		}
	}
	check(0, unicode.MaxRune+1)
	// Alone and leading a name, every character that can be white space (none lies beyond the
	// Basic Multilingual Plane): trimmed away, or kept and checked.
	for r := rune(0); r <= 0xFFFF; r++ {
		if !utf8.ValidRune(r) {
			continue
		}
		for _, v := range []string{string(r), string(r) + "a"} {
			trimmed := strings.TrimSpace(v)
			accepted := trimmed != "" && tenants.CheckText(trimmed, 255) == ""
			if allowed := name.MatchString(v); allowed != accepted {
				t.Errorf("name %q (%U): the pattern allows it: %v; trimmed, the server's rule accepts it: %v", v, r, allowed, accepted)
			}
		}
	}
}
