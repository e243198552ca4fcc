package server_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"path"
	"reflect"
	"strings"
	"testing"

	"github.com/tenantry/tenantry/server/servertest"
)

// resourceKey returns a client holding the key of a new user (role "admin" or "user") of org.
func (e *env) resourceKey(org, email, role string) *servertest.Client {
	e.t.Helper()
	return e.anon.As(e.mintKey(e.partner, org, e.createUser(e.partner, org, email, role)))
}

// storedConfiguration reads a connection's configuration as the database holds it, its
// secrets (kept apart, and sealed) put back in their places.
func (e *env) storedConfiguration(id string) map[string]any {
	e.t.Helper()
	var cfg map[string]any
	if err := json.Unmarshal(e.opened("connections", "configuration", id), &cfg); err != nil {
		e.t.Fatalf("stored configuration of %s: %v", id, err)
	}
	var secrets []struct {
		Path  []any
		Value any
	}
	if raw := e.opened("connections", "secrets", id); len(raw) > 0 {
		if err := json.Unmarshal(raw, &secrets); err != nil {
			e.t.Fatalf("stored secrets of %s: %v", id, err)
		}
	}
	for _, f := range secrets {
		var at any = cfg
		for i, step := range f.Path {
			last := i == len(f.Path)-1
			switch x := at.(type) {
			case map[string]any:
				if last {
					x[step.(string)] = f.Value
				}
				at = x[step.(string)]
			case []any:
				if last {
					x[int(step.(float64))] = f.Value
				}
				at = x[int(step.(float64))]
			}
		}
	}
	return cfg
}

// noSecrets fails if r's body holds any of the secret values or a secret key.
func noSecrets(t *testing.T, r *servertest.Response, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(string(r.Body), s) {
			t.Fatalf("response reveals secret %q: %s", s, r.Body)
		}
	}
	for _, k := range []string{`"password":`, `"private_key":`, `"api_key":`, `"token":`} {
		if strings.Contains(string(r.Body), k) {
			t.Fatalf("response holds secret field %s: %s", k, r.Body)
		}
	}
}

// hasField fails unless r is a validation error naming field in its metadata.
func hasField(t *testing.T, r *servertest.Response, field string) {
	t.Helper()
	if _, ok := r.JSON()["metadata"].(map[string]any)[field]; !ok {
		t.Fatalf("metadata does not name %q: %s", field, r.Body)
	}
}

func secretFields(c map[string]any) []string {
	out := []string{}
	for _, f := range c["secret_fields"].([]any) {
		out = append(out, f.(string))
	}
	return out
}

func TestConnectionLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	org := e.createOrg(e.partner, "Acme")
	member := e.resourceKey(org, "bob@acme.test", "user")
	secrets := []string{"pw-9f3k2", "key-material-77"}

	created := member.Do("POST", "/api/connections", map[string]any{
		"name": "  Warehouse ", "type": "postgresql",
		"configuration": map[string]any{"hostname": "db.acme.test", "port": 5432, "password": secrets[0],
			"ssh": map[string]any{"host": "bastion", "private_key": secrets[1]}},
	})
	expect(t, created, 200, "")
	noSecrets(t, created, secrets...)
	c := created.Data()
	id := c["id"].(string)
	if c["name"] != "Warehouse" || c["type"] != "postgresql" || c["organization_id"] != org || c["parent_id"] != nil || c["parent_connection_id"] != nil ||
		c["configuration"].(map[string]any)["port"] != float64(5432) {
		t.Fatalf("created: %s", created.Body)
	}
	if got := secretFields(c); !reflect.DeepEqual(got, []string{"password", "ssh.private_key"}) {
		t.Fatalf("secret_fields %v", got)
	}

	get := member.Do("GET", "/api/connections/"+id, nil)
	expect(t, get, 200, "")
	noSecrets(t, get, secrets...)
	list := member.Do("GET", "/api/connections", nil)
	expect(t, list, 200, "")
	noSecrets(t, list, secrets...)
	if len(list.List()) != 1 || list.JSON()["pagination"].(map[string]any)["next_page_token"] != "" {
		t.Fatalf("list: %s", list.Body)
	}

	// Names are unique ignoring case; a second connection may not take it, by POST or PUT.
	expect(t, member.Do("POST", "/api/connections", map[string]any{"name": "WAREHOUSE", "type": "mysql"}), 409, "connection_name_taken")
	other := member.Do("POST", "/api/connections", map[string]any{"name": "Events", "type": "bigquery"})
	expect(t, other, 200, "")
	if other.Data()["configuration"] == nil || len(other.Data()["configuration"].(map[string]any)) != 0 || len(secretFields(other.Data())) != 0 {
		t.Fatalf("configuration left out must be {} with no secret fields: %s", other.Body)
	}
	expect(t, member.Do("PUT", "/api/connections/"+other.Data()["id"].(string), map[string]any{"name": "warehouse", "type": "bigquery"}),
		409, "connection_name_taken")

	// PUT replaces name, type and configuration; the secrets it leaves out stay stored.
	put := member.Do("PUT", "/api/connections/"+id, map[string]any{
		"name": "Warehouse EU", "type": "postgresql",
		"configuration": map[string]any{"hostname": "db.eu.acme.test", "ssh": map[string]any{"host": "bastion-eu"}},
	})
	expect(t, put, 200, "")
	noSecrets(t, put, secrets...)
	p := put.Data()
	if p["name"] != "Warehouse EU" || !reflect.DeepEqual(p["configuration"], map[string]any{"hostname": "db.eu.acme.test", "ssh": map[string]any{"host": "bastion-eu"}}) ||
		!reflect.DeepEqual(secretFields(p), []string{"password", "ssh.private_key"}) {
		t.Fatalf("PUT: %s", put.Body)
	}
	stored := e.storedConfiguration(id)
	if stored["password"] != secrets[0] || stored["ssh"].(map[string]any)["private_key"] != secrets[1] || stored["port"] != nil {
		t.Fatalf("the database must keep omitted secrets and drop omitted plain fields: %v", stored)
	}
	// A new value replaces a secret; null removes it.
	put = member.Do("PUT", "/api/connections/"+id, map[string]any{"name": "Warehouse EU", "type": "postgresql",
		"configuration": map[string]any{"password": "rotated-pw-1", "ssh": map[string]any{"private_key": nil}}})
	expect(t, put, 200, "")
	noSecrets(t, put, "rotated-pw-1")
	if !reflect.DeepEqual(secretFields(put.Data()), []string{"password"}) {
		t.Fatalf("after removing ssh.private_key: %s", put.Body)
	}
	if stored := e.storedConfiguration(id); stored["password"] != "rotated-pw-1" || len(stored["ssh"].(map[string]any)) != 0 {
		t.Fatalf("stored after rotation: %v", stored)
	}
	// A PUT without configuration empties it, secrets aside.
	put = member.Do("PUT", "/api/connections/"+id, map[string]any{"name": "Warehouse EU", "type": "postgresql"})
	expect(t, put, 200, "")
	if len(put.Data()["configuration"].(map[string]any)) != 0 || e.storedConfiguration(id)["password"] != "rotated-pw-1" {
		t.Fatalf("PUT without configuration: %s", put.Body)
	}

	del := member.Do("DELETE", "/api/connections/"+id, nil)
	expect(t, del, 200, "")
	noSecrets(t, del, "rotated-pw-1")
	if del.Data()["id"] != id || del.Data()["name"] != "Warehouse EU" {
		t.Fatalf("DELETE must return the connection as it was: %s", del.Body)
	}
	expect(t, member.Do("GET", "/api/connections/"+id, nil), 404, "connection_not_found")
	expect(t, member.Do("PUT", "/api/connections/"+id, map[string]any{"name": "x", "type": "y"}), 404, "connection_not_found")
	expect(t, member.Do("DELETE", "/api/connections/"+id, nil), 404, "connection_not_found")
	// The name is free again.
	expect(t, member.Do("POST", "/api/connections", map[string]any{"name": "warehouse", "type": "postgresql"}), 200, "")
}

func TestConnectionValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	org := e.createOrg(e.partner, "Acme")
	admin := e.resourceKey(org, "ada@acme.test", "admin")
	existing := admin.Do("POST", "/api/connections", map[string]any{"name": "Taken", "type": "postgresql"}).Data()["id"].(string)
	deep := map[string]any{}
	for range 40 {
		deep = map[string]any{"a": deep}
	}
	cases := []struct {
		name   string
		body   any
		status int
		key    string
		field  string
	}{
		{"missing name", map[string]any{"type": "postgresql"}, 400, "validation_failed", "name"},
		{"blank name", map[string]any{"name": "   ", "type": "postgresql"}, 400, "validation_failed", "name"},
		{"name too long", map[string]any{"name": strings.Repeat("n", 256), "type": "postgresql"}, 400, "validation_failed", "name"},
		{"control character in name", map[string]any{"name": "a\x07b", "type": "postgresql"}, 400, "validation_failed", "name"},
		{"name not a string", map[string]any{"name": 5, "type": "postgresql"}, 400, "validation_failed", "name"},
		{"upper-case type", map[string]any{"name": "A", "type": "PostgreSQL"}, 400, "validation_failed", "type"},
		{"type with a space", map[string]any{"name": "A", "type": "post gres"}, 400, "validation_failed", "type"},
		{"type too long", map[string]any{"name": "A", "type": strings.Repeat("t", 65)}, 400, "validation_failed", "type"},
		{"configuration an array", map[string]any{"name": "A", "type": "pg", "configuration": []any{1}}, 400, "validation_failed", "configuration"},
		{"configuration a string", map[string]any{"name": "A", "type": "pg", "configuration": "host=db"}, 400, "validation_failed", "configuration"},
		{"configuration a number", map[string]any{"name": "A", "type": "pg", "configuration": 1}, 400, "validation_failed", "configuration"},
		{"configuration over 64 KiB", map[string]any{"name": "A", "type": "pg", "configuration": map[string]any{"blob": strings.Repeat("x", 64<<10)}}, 400, "validation_failed", "configuration"},
		{"configuration too deep", map[string]any{"name": "A", "type": "pg", "configuration": deep}, 400, "validation_failed", "configuration"},
		{"unknown field", map[string]any{"name": "A", "type": "pg", "secret": "x"}, 400, "unknown_field", "field"},
		{"duplicate name ignoring case", map[string]any{"name": "tAKEN", "type": "pg"}, 409, "connection_name_taken", ""},
		{"every bad field at once", map[string]any{"name": "", "type": "!", "configuration": []any{}}, 400, "validation_failed", "configuration"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, req := range []struct{ method, path string }{{"POST", "/api/connections"}, {"PUT", "/api/connections/" + existing}} {
				if tc.status == 409 && req.method == "PUT" {
					continue // renaming to its own name is fine
				}
				r := admin.Do(req.method, req.path, tc.body)
				expect(t, r, tc.status, tc.key)
				if tc.field != "" {
					hasField(t, r, tc.field)
				}
			}
		})
	}
	r := admin.Do("POST", "/api/connections", map[string]any{"name": "", "type": "!", "configuration": []any{}})
	for _, f := range []string{"name", "type", "configuration"} {
		hasField(t, r, f)
	}
	// Numbers keep their exact value; odd but valid JSON is stored, not a 5xx.
	odd := admin.Do("POST", "/api/connections", `{"name": "Odd", "type": "x", "configuration": {"big": 12345678901234567890, "huge": 1e400, "html": "<a&b>", "": null, "arr": [[], {}]}}`)
	expect(t, odd, 200, "")
	if !strings.Contains(string(odd.Body), `"big":12345678901234567890`) || !strings.Contains(string(odd.Body), `"huge":1e400`) {
		t.Fatalf("numbers must round-trip exactly: %s", odd.Body)
	}
	expect(t, admin.Do("POST", "/api/connections", `{"name": "Null", "type": "x", "configuration": null}`), 200, "")
	expect(t, admin.Do("POST", "/api/connections", `{"name": "Bad", "type": "x", "configuration": {"a": }}`), 400, "malformed_json")
	expect(t, admin.Do("PUT", "/api/connections/"+existing, "name=x", "Content-Type", "text/plain"), 415, "unsupported_media_type")
	expect(t, admin.Do("GET", "/api/connections/not-a-uuid", nil), 404, "connection_not_found")
	expect(t, admin.Do("GET", "/api/connections/00000000-0000-0000-0000-000000000000", nil), 404, "connection_not_found")
	expect(t, admin.Do("DELETE", "/api/connections/"+strings.ToUpper(existing), nil), 404, "connection_not_found")
}

// Polytomic's clients send a connection with more than Tenantry stores: organization_id (the
// caller's own, else 404 as anywhere), a PUT without type (it keeps the connection's), switches
// for what Polytomic does and Tenantry does not (accepted only when they ask for nothing,
// else 400 naming each), and DELETE ?force (nothing depends on a connection here).
func TestConnectionsAsPolytomicSendsThem(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	org := e.createOrg(e.partner, "Acme")
	other := e.createOrg(e.partner, "Globex")
	admin := e.resourceKey(org, "ada@acme.test", "admin")

	created := admin.Do("POST", "/api/connections", map[string]any{"name": "Warehouse", "type": "postgresql",
		"configuration": map[string]any{"hostname": "db.acme.test", "password": "pw-1"}, "organization_id": org, "validate": false})
	expect(t, created, 200, "")
	id := created.Data()["id"].(string)
	expect(t, admin.Do("POST", "/api/connections", map[string]any{"name": "No type"}), 400, "validation_failed")

	renamed := admin.Do("PUT", "/api/connections/"+id, map[string]any{"name": "Warehouse v2",
		"configuration": map[string]any{"hostname": "db2.acme.test"}, "organization_id": org, "reconnect": false, "validate": false})
	expect(t, renamed, 200, "")
	if d := renamed.Data(); d["name"] != "Warehouse v2" || d["type"] != "postgresql" || d["configuration"].(map[string]any)["hostname"] != "db2.acme.test" ||
		strings.Join(secretFields(d), " ") != "password" {
		t.Fatalf("a PUT without type keeps the type (and the stored secret): %s", renamed.Body)
	}
	expect(t, admin.Do("PUT", "/api/connections/"+id, map[string]any{"name": "Warehouse v2", "type": "mysql"}), 200, "")

	for _, tc := range []struct {
		field string
		value any
	}{{"validate", true}, {"reconnect", true}, {"healthcheck_interval", "5m"}, {"redirect_url", "https://app.acme.test/done"}} {
		body := map[string]any{"name": "Refused", "type": "postgresql", tc.field: tc.value}
		for _, req := range []struct{ method, path string }{{"POST", "/api/connections"}, {"PUT", "/api/connections/" + id}} {
			r := admin.Do(req.method, req.path, body)
			expect(t, r, 400, "validation_failed")
			hasField(t, r, tc.field)
			if msg := r.JSON()["metadata"].(map[string]any)[tc.field].(string); !strings.Contains(msg, "not supported") {
				t.Fatalf("%s %s: the refusal says why: %q", req.method, tc.field, msg)
			}
		}
	}
	expect(t, admin.Do("POST", "/api/connections", map[string]any{"name": "Elsewhere", "type": "pg", "organization_id": other}), 404, "organization_not_found")
	expect(t, admin.Do("PUT", "/api/connections/"+id, map[string]any{"name": "Elsewhere", "organization_id": other}), 404, "organization_not_found")
	if got := admin.Do("GET", "/api/connections/"+id, nil).Data(); got["name"] != "Warehouse v2" || got["type"] != "mysql" {
		t.Fatalf("a refused PUT changed the connection: %v", got)
	}

	expect(t, admin.Do("DELETE", "/api/connections/"+id+"?force=maybe", nil), 400, "validation_failed")
	expect(t, admin.Do("DELETE", "/api/connections/"+id+"?force=true", nil), 200, "")
	expect(t, admin.Do("GET", "/api/connections/"+id, nil), 404, "connection_not_found")
}

// Secret fields are stripped from every response at any depth, whatever the spelling of their
// names, while the database keeps them.
func TestConnectionSecretStripping(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	staff := e.resourceKey(e.ownerID, "staff@partner.test", "user")
	child := e.createOrg(e.partner, "Acme")
	childKey := e.resourceKey(child, "ada@acme.test", "user")

	secrets := map[string]string{
		"Password": "s-1-pw", "sshPrivateKey": "s-2-pk", "api-key": "s-3-ak", "client_secret": "s-4-cs",
		"aws_access_key_id": "s-5-aws", "refresh_token": "s-6-rt", "passwd": "s-7-pd", "passphrase": "s-8-pp",
		"privatekey": "s-9-pk",
	}
	cfg := map[string]any{"host": "db", "nested": map[string]any{"deeper": map[string]any{"auth_token": "s-10-tok", "user": "u"}},
		"hosts":       []any{map[string]any{"name": "h1", "API_KEY": "s-11-arr"}, "plain"},
		"credentials": map[string]any{"user": "s-12-cred", "key": "s-13-cred"}}
	for k, v := range secrets {
		cfg[k] = v
	}
	values := []string{"s-10-tok", "s-11-arr", "s-12-cred", "s-13-cred"}
	for _, v := range secrets {
		values = append(values, v)
	}
	created := staff.Do("POST", "/api/connections", map[string]any{"name": "Shared DB", "type": "postgresql", "configuration": cfg})
	expect(t, created, 200, "")
	id := created.Data()["id"].(string)
	// Sorted paths; an array element is [i].
	want := []string{"Password", "api-key", "aws_access_key_id", "client_secret", "credentials", "hosts[0].API_KEY",
		"nested.deeper.auth_token", "passphrase", "passwd", "privatekey", "refresh_token", "sshPrivateKey"}
	if got := secretFields(created.Data()); !reflect.DeepEqual(got, want) {
		t.Fatalf("secret_fields %v, want %v", got, want)
	}
	gotCfg := created.Data()["configuration"].(map[string]any)
	if !reflect.DeepEqual(gotCfg, map[string]any{"host": "db", "nested": map[string]any{"deeper": map[string]any{"user": "u"}},
		"hosts": []any{map[string]any{"name": "h1"}, "plain"}}) {
		t.Fatalf("configuration without secrets: %v", gotCfg)
	}

	share := e.partner.Do("POST", "/api/organizations/"+e.ownerID+"/connections/"+id+"/shared", map[string]any{"child_organization_id": child})
	expect(t, share, 200, "")
	shareID := share.Data()["id"].(string)
	for _, r := range []*servertest.Response{
		created, share,
		staff.Do("GET", "/api/connections/"+id, nil),
		staff.Do("GET", "/api/connections", nil),
		e.partner.Do("GET", "/api/organizations/"+e.ownerID+"/connections/"+id+"/shared", nil),
		childKey.Do("GET", "/api/connections", nil),
		childKey.Do("GET", "/api/connections/"+shareID, nil),
		staff.Do("PUT", "/api/connections/"+id, map[string]any{"name": "Shared DB", "type": "postgresql",
			"configuration": map[string]any{"host": "db2", "nested": map[string]any{"deeper": map[string]any{}}}}),
	} {
		expect(t, r, 200, "")
		for _, v := range values {
			if strings.Contains(string(r.Body), v) {
				t.Fatalf("a response reveals secret %q: %s", v, r.Body)
			}
		}
	}
	// The PUT above left every top-level and nested-object secret out: all kept. The one inside
	// an array is not carried over (array elements have no identity), as documented.
	stored := e.storedConfiguration(id)
	for k, v := range secrets {
		if stored[k] != v {
			t.Fatalf("stored %s = %v, want %q", k, stored[k], v)
		}
	}
	if stored["nested"].(map[string]any)["deeper"].(map[string]any)["auth_token"] != "s-10-tok" || stored["credentials"] == nil {
		t.Fatalf("nested secrets not kept: %v", stored)
	}
	if stored["host"] != "db2" || stored["hosts"] != nil {
		t.Fatalf("plain fields must be replaced: %v", stored)
	}
	// The child reads the parent's new configuration through its share.
	if got := childKey.Do("GET", "/api/connections/"+shareID, nil).Data()["configuration"].(map[string]any)["host"]; got != "db2" {
		t.Fatalf("share does not read through the parent: host %v", got)
	}
}

// Lists page by id with an opaque token: 5 items at limit=2 are 3 pages, each item once.
func TestResourcePagination(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	org := e.createOrg(e.partner, "Acme")
	member := e.resourceKey(org, "bob@acme.test", "user")
	// Another organization's objects never show up in these pages.
	stranger := e.resourceKey(e.createOrg(e.partner, "Other"), "eve@other.test", "user")
	expect(t, stranger.Do("POST", "/api/connections", map[string]any{"name": "Theirs", "type": "pg"}), 200, "")
	expect(t, stranger.Do("POST", "/api/datasets", map[string]any{"name": "Theirs", "slug": "theirs"}), 200, "")

	var conns, sets []string
	for i := range 5 {
		conns = append(conns, member.Do("POST", "/api/connections", map[string]any{"name": fmt.Sprintf("C%d", i), "type": "pg"}).Data()["id"].(string))
		sets = append(sets, member.Do("POST", "/api/datasets", map[string]any{"name": fmt.Sprintf("D%d", i), "slug": fmt.Sprintf("d%d", i)}).Data()["id"].(string))
	}
	for _, tc := range []struct {
		path string
		ids  []string
	}{{"/api/connections", conns}, {"/api/datasets", sets}} {
		var got []string
		token, pages := "", 0
		for {
			query := tc.path + "?limit=2"
			if token != "" {
				query += "&page_token=" + token
			}
			r := member.Do("GET", query, nil)
			expect(t, r, 200, "")
			pages++
			for _, item := range r.List() {
				got = append(got, item["id"].(string))
			}
			token = r.JSON()["pagination"].(map[string]any)["next_page_token"].(string)
			if token == "" {
				break
			}
			if pages > 5 {
				t.Fatalf("%s: pagination does not end", tc.path)
			}
		}
		if pages != 3 || !reflect.DeepEqual(got, tc.ids) {
			t.Fatalf("%s: %d pages holding %v, want 3 pages holding %v", tc.path, pages, got, tc.ids)
		}
		// The default limit holds all five, and the last page's token is "".
		if r := member.Do("GET", tc.path, nil); len(r.List()) != 5 || r.JSON()["pagination"].(map[string]any)["next_page_token"] != "" {
			t.Fatalf("%s default page: %s", tc.path, r.Body)
		}
		// A page that ends exactly at the last item is followed by an empty last page.
		r := member.Do("GET", tc.path+"?limit=5", nil)
		if len(r.List()) != 5 || r.JSON()["pagination"].(map[string]any)["next_page_token"] != "" {
			t.Fatalf("%s limit=5: %s", tc.path, r.Body)
		}
		for _, bad := range []struct{ query, field string }{
			{"limit=0", "limit"}, {"limit=101", "limit"}, {"limit=-1", "limit"}, {"limit=two", "limit"}, {"limit=1.5", "limit"},
			{"page_token=garbage!", "page_token"}, {"page_token=" + base64.RawURLEncoding.EncodeToString([]byte("a:not-a-uuid")), "page_token"},
			{"page_token=" + base64.RawURLEncoding.EncodeToString([]byte("x:"+tc.ids[0])), "page_token"},
		} {
			r := member.Do("GET", tc.path+"?"+bad.query, nil)
			expect(t, r, 400, "validation_failed")
			hasField(t, r, bad.field)
		}
	}
}

// A partner shares a connection of its owner organization into a child organization, where it
// is read-only and goes away with its parent.
func TestConnectionShares(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	staff := e.resourceKey(e.ownerID, "staff@partner.test", "user")
	acme := e.createOrg(e.partner, "Acme")
	acmeKey := e.resourceKey(acme, "ada@acme.test", "user")
	globex := e.createOrg(e.partner, "Globex")
	globexKey := e.resourceKey(globex, "hank@globex.test", "user")
	b, bOwner := e.newPartner("Partner B")
	bChild := e.createOrg(b, "Initech")

	parent := staff.Do("POST", "/api/connections", map[string]any{"name": "Warehouse", "type": "snowflake",
		"configuration": map[string]any{"account": "xy123", "password": "shared-pw-1"}})
	expect(t, parent, 200, "")
	parentID := parent.Data()["id"].(string)
	shared := "/api/organizations/" + e.ownerID + "/connections/" + parentID + "/shared"

	share := e.partner.Do("POST", shared, map[string]any{"child_organization_id": acme})
	expect(t, share, 200, "")
	noSecrets(t, share, "shared-pw-1")
	s := share.Data()
	shareID := s["id"].(string)
	if s["parent_id"] != parentID || s["parent_connection_id"] != parentID || s["organization_id"] != acme || s["name"] != "Warehouse" || s["type"] != "snowflake" ||
		s["configuration"].(map[string]any)["account"] != "xy123" || !reflect.DeepEqual(secretFields(s), []string{"password"}) {
		t.Fatalf("share: %s", share.Body)
	}

	// The child sees it in its list, read-only.
	list := acmeKey.Do("GET", "/api/connections", nil)
	expect(t, list, 200, "")
	noSecrets(t, list, "shared-pw-1")
	if l := list.List(); len(l) != 1 || l[0]["id"] != shareID || l[0]["parent_id"] != parentID {
		t.Fatalf("child's list: %s", list.Body)
	}
	expect(t, acmeKey.Do("GET", "/api/connections/"+shareID, nil), 200, "")
	expect(t, acmeKey.Do("PUT", "/api/connections/"+shareID, map[string]any{"name": "Mine", "type": "pg"}), 403, "shared_connection_read_only")
	expect(t, acmeKey.Do("DELETE", "/api/connections/"+shareID, nil), 403, "shared_connection_read_only")
	// The parent itself is another organization's: not found for the child.
	expect(t, acmeKey.Do("GET", "/api/connections/"+parentID, nil), 404, "connection_not_found")

	// Shared once per organization; a name must be free in the child.
	expect(t, e.partner.Do("POST", shared, map[string]any{"child_organization_id": acme, "name": "Again"}), 409, "connection_already_shared")
	expect(t, globexKey.Do("POST", "/api/connections", map[string]any{"name": "WAREHOUSE", "type": "pg"}), 200, "")
	expect(t, e.partner.Do("POST", shared, map[string]any{"child_organization_id": globex}), 409, "connection_name_taken")
	named := e.partner.Do("POST", shared, map[string]any{"child_organization_id": globex, "name": " Partner warehouse "})
	expect(t, named, 200, "")
	if named.Data()["name"] != "Partner warehouse" {
		t.Fatalf("named share: %s", named.Body)
	}
	// Nor can the child take the share's name for its own connection.
	expect(t, globexKey.Do("POST", "/api/connections", map[string]any{"name": "partner WAREHOUSE", "type": "pg"}), 409, "connection_name_taken")

	shares := e.partner.Do("GET", shared, nil)
	expect(t, shares, 200, "")
	noSecrets(t, shares, "shared-pw-1")
	if l := shares.List(); len(l) != 2 || l[0]["id"] != shareID || l[1]["organization_id"] != globex {
		t.Fatalf("shares: %s", shares.Body)
	}
	if page := e.partner.Do("GET", shared+"?limit=1", nil); len(page.List()) != 1 || page.JSON()["pagination"].(map[string]any)["next_page_token"] == "" {
		t.Fatalf("shares page: %s", page.Body)
	}

	// Who may share what, where.
	childConn := acmeKey.Do("POST", "/api/connections", map[string]any{"name": "Own", "type": "pg"}).Data()["id"].(string)
	bConn := "/api/organizations/" + bOwner + "/connections/" + parentID + "/shared"
	for _, tc := range []struct {
		name   string
		path   string
		body   any
		status int
		key    string
		field  string
	}{
		{"into the owner organization", shared, map[string]any{"child_organization_id": e.ownerID}, 400, "validation_failed", "child_organization_id"},
		{"without a child", shared, map[string]any{}, 400, "validation_failed", "child_organization_id"},
		{"blank name", shared, map[string]any{"child_organization_id": acme, "name": "  "}, 400, "validation_failed", "name"},
		{"unknown field", shared, map[string]any{"child_organization_id": acme, "organization_ids": []string{acme}}, 400, "unknown_field", "field"},
		{"into another partner's organization", shared, map[string]any{"child_organization_id": bChild}, 404, "organization_not_found", ""},
		{"into no organization", shared, map[string]any{"child_organization_id": "nope"}, 404, "organization_not_found", ""},
		{"from a child organization", "/api/organizations/" + acme + "/connections/" + childConn + "/shared", map[string]any{"child_organization_id": globex}, 400, "not_owner_organization", ""},
		{"from another partner's owner organization", bConn, map[string]any{"child_organization_id": acme}, 404, "organization_not_found", ""},
		{"a child's connection", "/api/organizations/" + e.ownerID + "/connections/" + childConn + "/shared", map[string]any{"child_organization_id": globex}, 404, "connection_not_found", ""},
		{"a share", "/api/organizations/" + e.ownerID + "/connections/" + shareID + "/shared", map[string]any{"child_organization_id": globex}, 404, "connection_not_found", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.partner.Do("POST", tc.path, tc.body)
			expect(t, r, tc.status, tc.key)
			if tc.field != "" {
				hasField(t, r, tc.field)
			}
		})
	}
	// Partner B sees nothing of A's: not A's owner organization, not its connection.
	expect(t, b.Do("GET", shared, nil), 404, "organization_not_found")
	expect(t, b.Do("POST", shared, map[string]any{"child_organization_id": bChild}), 404, "organization_not_found")
	expect(t, b.Do("GET", bConn, nil), 404, "connection_not_found")
	// Sharing is the partner's: user keys are refused, even the owner organization's staff.
	expect(t, staff.Do("POST", shared, map[string]any{"child_organization_id": acme}), 403, "partner_key_required")
	expect(t, staff.Do("GET", shared, nil), 403, "partner_key_required")

	// A child dataset may use the share; deleting the parent removes its shares and leaves the
	// dataset without a connection.
	ds := acmeKey.Do("POST", "/api/datasets", map[string]any{"name": "Orders", "slug": "orders", "connection_id": shareID})
	expect(t, ds, 200, "")
	expect(t, staff.Do("DELETE", "/api/connections/"+parentID, nil), 200, "")
	expect(t, acmeKey.Do("GET", "/api/connections/"+shareID, nil), 404, "connection_not_found")
	if l := acmeKey.Do("GET", "/api/connections", nil).List(); len(l) != 1 || l[0]["id"] != childConn {
		t.Fatalf("the share outlived its parent: %v", l)
	}
	if got := acmeKey.Do("GET", "/api/datasets/"+ds.Data()["id"].(string), nil).Data(); got["connection_id"] != nil {
		t.Fatalf("dataset still points at the deleted share: %v", got)
	}
	expect(t, e.partner.Do("GET", shared, nil), 404, "connection_not_found")
	var n int
	if err := e.db.Get(&n, e.db.Rebind(`SELECT COUNT(*) FROM connections WHERE parent_id = ?`), parentID); err != nil || n != 0 {
		t.Fatalf("%d shares left in the database (%v)", n, err)
	}

	// Deleting a child organization with a share and a dataset using it works.
	again := staff.Do("POST", "/api/connections", map[string]any{"name": "Lake", "type": "s3"}).Data()["id"].(string)
	againShare := e.partner.Do("POST", "/api/organizations/"+e.ownerID+"/connections/"+again+"/shared", map[string]any{"child_organization_id": globex})
	expect(t, againShare, 200, "")
	expect(t, globexKey.Do("POST", "/api/datasets", map[string]any{"name": "Files", "slug": "files", "connection_id": againShare.Data()["id"]}), 200, "")
	expect(t, e.partner.Do("DELETE", "/api/organizations/"+globex, nil), 200, "")
	if l := e.partner.Do("GET", "/api/organizations/"+e.ownerID+"/connections/"+again+"/shared", nil).List(); len(l) != 0 {
		t.Fatalf("shares into a deleted organization: %v", l)
	}
	expect(t, staff.Do("GET", "/api/connections/"+again, nil), 200, "")
}

func TestDatasetLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	org := e.createOrg(e.partner, "Acme")
	member := e.resourceKey(org, "bob@acme.test", "user")
	conn := member.Do("POST", "/api/connections", map[string]any{"name": "Warehouse", "type": "pg"}).Data()["id"].(string)
	other := e.createOrg(e.partner, "Other")
	foreign := e.resourceKey(other, "eve@other.test", "admin").Do("POST", "/api/connections", map[string]any{"name": "Theirs", "type": "pg"}).Data()["id"].(string)

	created := member.Do("POST", "/api/datasets", map[string]any{"name": " Web events ", "slug": "web_events",
		"description": "Page views.\nOne row per event.", "source": "https://data.acme.test/events.csv", "connection_id": conn})
	expect(t, created, 200, "")
	d := created.Data()
	id := d["id"].(string)
	if d["name"] != "Web events" || d["slug"] != "web_events" || d["description"] != "Page views.\nOne row per event." ||
		d["source"] != "https://data.acme.test/events.csv" || d["connection_id"] != conn || d["organization_id"] != org {
		t.Fatalf("created: %s", created.Body)
	}
	expect(t, member.Do("GET", "/api/datasets/"+id, nil), 200, "")
	if l := member.Do("GET", "/api/datasets", nil).List(); len(l) != 1 || l[0]["id"] != id {
		t.Fatalf("list: %v", l)
	}
	expect(t, member.Do("POST", "/api/datasets", map[string]any{"name": "Again", "slug": "web_events"}), 409, "dataset_slug_taken")
	second := member.Do("POST", "/api/datasets", map[string]any{"name": "Orders", "slug": "orders", "connection_id": nil})
	expect(t, second, 200, "")
	if second.Data()["connection_id"] != nil || second.Data()["description"] != "" || second.Data()["source"] != "" {
		t.Fatalf("optional fields: %s", second.Body)
	}
	expect(t, member.Do("PUT", "/api/datasets/"+second.Data()["id"].(string), map[string]any{"name": "Orders", "slug": "web_events"}), 409, "dataset_slug_taken")
	// Another organization may use the same slug.
	expect(t, e.resourceKey(other, "zed@other.test", "user").Do("POST", "/api/datasets", map[string]any{"name": "W", "slug": "web_events"}), 200, "")

	// A connection of another organization is a bad field, not a 404; so is one that does not exist.
	for _, bad := range []string{foreign, "00000000-0000-0000-0000-000000000000", "not-a-uuid"} {
		r := member.Do("POST", "/api/datasets", map[string]any{"name": "X", "slug": "x", "connection_id": bad})
		expect(t, r, 400, "validation_failed")
		hasField(t, r, "connection_id")
		r = member.Do("PUT", "/api/datasets/"+id, map[string]any{"name": "X", "slug": "x", "connection_id": bad})
		expect(t, r, 400, "validation_failed")
		hasField(t, r, "connection_id")
	}

	// PUT replaces in full: what it leaves out is cleared.
	put := member.Do("PUT", "/api/datasets/"+id, map[string]any{"name": "Events", "slug": "events"})
	expect(t, put, 200, "")
	p := put.Data()
	if p["name"] != "Events" || p["slug"] != "events" || p["description"] != "" || p["source"] != "" || p["connection_id"] != nil ||
		p["created_at"] != d["created_at"] || p["updated_at"] == d["updated_at"] {
		t.Fatalf("PUT: %s", put.Body)
	}
	put = member.Do("PUT", "/api/datasets/"+id, map[string]any{"name": "Events", "slug": "events", "connection_id": conn})
	expect(t, put, 200, "")
	if put.Data()["connection_id"] != conn {
		t.Fatalf("PUT connection_id: %s", put.Body)
	}
	// Deleting the connection leaves the dataset without one.
	expect(t, member.Do("DELETE", "/api/connections/"+conn, nil), 200, "")
	if got := member.Do("GET", "/api/datasets/"+id, nil).Data(); got["connection_id"] != nil {
		t.Fatalf("connection_id after the connection's deletion: %v", got)
	}

	del := member.Do("DELETE", "/api/datasets/"+id, nil)
	expect(t, del, 200, "")
	if del.Data()["id"] != id || del.Data()["slug"] != "events" {
		t.Fatalf("DELETE must return the dataset as it was: %s", del.Body)
	}
	expect(t, member.Do("GET", "/api/datasets/"+id, nil), 404, "dataset_not_found")
	expect(t, member.Do("PUT", "/api/datasets/"+id, map[string]any{"name": "x", "slug": "x"}), 404, "dataset_not_found")
	expect(t, member.Do("DELETE", "/api/datasets/"+id, nil), 404, "dataset_not_found")
	expect(t, member.Do("GET", "/api/datasets/not-a-uuid", nil), 404, "dataset_not_found")
	expect(t, member.Do("POST", "/api/datasets", map[string]any{"name": "Events", "slug": "events"}), 200, "")
}

func TestDatasetValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	org := e.createOrg(e.partner, "Acme")
	member := e.resourceKey(org, "bob@acme.test", "user")
	existing := member.Do("POST", "/api/datasets", map[string]any{"name": "Existing", "slug": "existing"}).Data()["id"].(string)
	cases := []struct {
		name  string
		body  any
		key   string
		field string
	}{
		{"missing name", map[string]any{"slug": "a"}, "validation_failed", "name"},
		{"blank name", map[string]any{"name": " ", "slug": "a"}, "validation_failed", "name"},
		{"name too long", map[string]any{"name": strings.Repeat("n", 256), "slug": "a"}, "validation_failed", "name"},
		{"missing slug", map[string]any{"name": "A"}, "validation_failed", "slug"},
		{"upper-case slug", map[string]any{"name": "A", "slug": "Web"}, "validation_failed", "slug"},
		{"slug with a dot", map[string]any{"name": "A", "slug": "web.events"}, "validation_failed", "slug"},
		{"slug too long", map[string]any{"name": "A", "slug": strings.Repeat("s", 101)}, "validation_failed", "slug"},
		{"description too long", map[string]any{"name": "A", "slug": "a", "description": strings.Repeat("d", 4001)}, "validation_failed", "description"},
		{"control character in description", map[string]any{"name": "A", "slug": "a", "description": "bell\x07"}, "validation_failed", "description"},
		{"source not a URL", map[string]any{"name": "A", "slug": "a", "source": "events.csv"}, "validation_failed", "source"},
		{"source ftp", map[string]any{"name": "A", "slug": "a", "source": "ftp://data.acme.test/x"}, "validation_failed", "source"},
		{"connection_id a number", map[string]any{"name": "A", "slug": "a", "connection_id": 5}, "validation_failed", "connection_id"},
		{"unknown field", map[string]any{"name": "A", "slug": "a", "url": "https://x.test"}, "unknown_field", "field"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, req := range []struct{ method, path string }{{"POST", "/api/datasets"}, {"PUT", "/api/datasets/" + existing}} {
				r := member.Do(req.method, req.path, tc.body)
				expect(t, r, 400, tc.key)
				hasField(t, r, tc.field)
			}
		})
	}
	r := member.Do("POST", "/api/datasets", map[string]any{"name": "", "slug": "", "source": "x", "connection_id": "y"})
	for _, f := range []string{"name", "slug", "source", "connection_id"} {
		hasField(t, r, f)
	}
	// Exactly at the limits is fine.
	expect(t, member.Do("POST", "/api/datasets", map[string]any{"name": strings.Repeat("n", 255), "slug": strings.Repeat("s", 100),
		"description": strings.Repeat("d", 4000), "source": "http://x.test"}), 200, "")
}

// Who may call the resource routes: user keys of the organization (members read and write
// both), never a partner key; and an id of another organization is 404, never 403.
func TestResourceAccess(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	org := e.createOrg(e.partner, "Acme")
	admin := e.resourceKey(org, "ada@acme.test", "admin")
	member := e.resourceKey(org, "bob@acme.test", "user")
	conn := member.Do("POST", "/api/connections", map[string]any{"name": "Warehouse", "type": "pg", "configuration": map[string]any{"token": "acme-tok-1"}})
	expect(t, conn, 200, "")
	connID := conn.Data()["id"].(string)
	ds := admin.Do("POST", "/api/datasets", map[string]any{"name": "Events", "slug": "events", "connection_id": connID})
	expect(t, ds, 200, "")
	dsID := ds.Data()["id"].(string)
	expect(t, admin.Do("PUT", "/api/connections/"+connID, map[string]any{"name": "Warehouse", "type": "pg"}), 200, "")
	expect(t, member.Do("PUT", "/api/datasets/"+dsID, map[string]any{"name": "Events", "slug": "events"}), 200, "")

	// Another organization of the same partner, and an organization of another partner.
	sibling := e.resourceKey(e.createOrg(e.partner, "Sibling"), "sib@sibling.test", "admin")
	b, _ := e.newPartner("Partner B")
	bOrg := e.createOrg(b, "Acme")
	stranger := e.anon.As(e.mintKey(b, bOrg, e.createUser(b, bOrg, "eve@acme.test", "admin")))

	routes := []struct {
		method, path string
		body         any
	}{
		{"GET", "/api/connections", nil},
		{"POST", "/api/connections", map[string]any{"name": "New", "type": "pg"}},
		{"GET", "/api/connections/" + connID, nil},
		{"PUT", "/api/connections/" + connID, map[string]any{"name": "Mine", "type": "pg"}},
		{"DELETE", "/api/connections/" + connID, nil},
		{"GET", "/api/datasets", nil},
		{"POST", "/api/datasets", map[string]any{"name": "New", "slug": "new"}},
		{"GET", "/api/datasets/" + dsID, nil},
		{"PUT", "/api/datasets/" + dsID, map[string]any{"name": "Mine", "slug": "mine"}},
		{"DELETE", "/api/datasets/" + dsID, nil},
	}
	for _, r := range routes {
		t.Run(r.method+" "+r.path, func(t *testing.T) {
			res := e.partner.Do(r.method, r.path, r.body)
			expect(t, res, 403, "partner_key_not_allowed")
			if !strings.Contains(res.JSON()["message"].(string), "/keys") {
				t.Fatalf("the refusal must say how to get a key that works: %s", res.Body)
			}
			expect(t, b.Do(r.method, r.path, r.body), 403, "partner_key_not_allowed")
			expect(t, e.anon.Do(r.method, r.path, r.body), 401, "missing_token")
			for _, other := range []*servertest.Client{sibling, stranger} {
				res := other.Do(r.method, r.path, r.body)
				if strings.Contains(r.path, connID) {
					expect(t, res, 404, "connection_not_found")
				} else if strings.Contains(r.path, dsID) {
					expect(t, res, 404, "dataset_not_found")
				} else {
					expect(t, res, 200, "") // their own organization's list, or a create there
				}
				// The same answer as for an id that never existed, and nothing of A's in it but the
				// id the caller sent.
				id := path.Base(r.path)
				if id == connID || id == dsID {
					const never = "00000000-0000-0000-0000-000000000009"
					m := other.Do(r.method, strings.Replace(r.path, id, never, 1), r.body)
					if m.Status != res.Status || strings.ReplaceAll(string(m.Body), never, id) != string(res.Body) {
						t.Fatalf("another organization's id answers %s; a missing one %s", res.Body, m.Body)
					}
				}
				body := strings.ReplaceAll(string(res.Body), id, "")
				for _, leak := range []string{connID, dsID, org, "acme-tok-1", "Warehouse", "events"} {
					if strings.Contains(body, leak) {
						t.Fatalf("another organization's caller saw %s: %s", leak, res.Body)
					}
				}
			}
		})
	}
	// A's objects are intact, and deletes by members work.
	expect(t, member.Do("DELETE", "/api/datasets/"+dsID, nil), 200, "")
	expect(t, member.Do("DELETE", "/api/connections/"+connID, nil), 200, "")
}

// Secrets are recognised by many names and by their values, and never returned, not even to
// a child organization a connection is shared into.
func TestConnectionSecretNames(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	o := e.newOrg("Acme")
	secrets := []string{"s-pwd", "s-sshkey", "s-bearer", "s-dsnpass", "s-header", "s-fullwidth", "s-sa", "s-pem", "s-cookie"}
	cfg := map[string]any{
		"host":                 "db.acme.test",
		"pwd":                  "s-pwd",
		"ssh_key":              "s-sshkey",
		"Authorization":        "Bearer s-bearer",
		"url":                  "postgres://app:s-dsnpass@db.acme.test/app",
		"headers":              []any{map[string]any{"name": "X-Api-Token", "value": "s-header"}, map[string]any{"name": "Accept", "value": "json"}},
		"ＰＡＳＳＷＯＲＤ":             "s-fullwidth",
		"service_account_json": "{\"s-sa\": 1}",
		"tls":                  map[string]any{"pem": "-----BEGIN RSA PRIVATE KEY-----\ns-pem\n-----END RSA PRIVATE KEY-----"},
		"session_cookie":       "s-cookie",
	}
	r := o.admin.Do("POST", "/api/connections", map[string]any{"name": "Leaky", "type": "http", "configuration": cfg})
	expect(t, r, 200, "")
	for _, s := range secrets {
		if strings.Contains(string(r.Body), s) {
			t.Fatalf("secret %q returned: %s", s, r.Body)
		}
	}
	c := r.Data()["configuration"].(map[string]any)
	if c["host"] != "db.acme.test" || len(c["headers"].([]any)) != 2 || len(r.Data()["secret_fields"].([]any)) != 9 {
		t.Fatalf("harmless fields must stay and every secret be named: %s", r.Body)
	}
	// PUT without the secrets keeps them.
	id := r.Data()["id"].(string)
	expect(t, o.admin.Do("PUT", "/api/connections/"+id, map[string]any{"name": "Leaky", "type": "http",
		"configuration": map[string]any{"host": "db2.acme.test"}}), 200, "")
	stored, _ := json.Marshal(e.storedConfiguration(id))
	for _, s := range []string{"s-pwd", "s-sshkey", "s-dsnpass", "s-cookie"} { // top-level secrets (a nested object left out goes, secrets and all)
		if !strings.Contains(string(stored), s) {
			t.Fatalf("PUT without %s dropped it: %s", s, stored)
		}
	}
}
