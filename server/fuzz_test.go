package server_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tenantry/tenantry/server/servertest"
)

// The fuzz targets send what a hostile or broken client might, and require a 4xx or a
// success, never a 5xx, with every response in the contract's shape. Their seed corpora run in
// `make test`; `go test -fuzz FuzzRequestBodies ./server/` explores further.

func FuzzVersionHeader(f *testing.F) {
	e := newEnv(f)
	for _, s := range []string{"", "2025-09-18", "2021-05-23", "2025-9-18", "latest", "2025-09-18 ", "\x00", "9999-99-99", strings.Repeat("2", 300)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if !validHeaderValue(v) {
			t.Skip("not sendable as a header")
		}
		r := servertest.New(t, e.url).As(e.partner.Key).Do("GET", "/api/me", nil, "X-Polytomic-Version", v)
		if r.Status != 200 && r.Status != 400 {
			t.Fatalf("X-Polytomic-Version %q: %d %s", v, r.Status, r.Body)
		}
	})
}

func FuzzIdempotencyKey(f *testing.F) {
	e := newEnv(f)
	for _, s := range []string{"", "short", "valid-key-0001", strings.Repeat("k", 255), strings.Repeat("k", 256), "has space", "ünï-cödé-key", "'; DROP TABLE--"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		if !validHeaderValue(key) {
			t.Skip("not sendable as a header")
		}
		r := servertest.New(t, e.url).As(e.partner.Key).Do("POST", "/api/organizations", map[string]any{"name": "fuzz " + key},
			"Idempotency-Key", key)
		if r.Status >= 500 {
			t.Fatalf("Idempotency-Key %q: %d %s", key, r.Status, r.Body)
		}
	})
}

// FuzzBearer covers key parsing and JWT parsing through the real authentication path.
func FuzzBearer(f *testing.F) {
	e := newEnv(f)
	o := e.newOrg("Acme")
	tok := o.admin.Do("POST", "/api/auth/tokens", nil).Data()["token"].(string)
	for _, s := range []string{"", "x", e.partner.Key, o.admin.Key, tok, tok[:len(tok)-3], "a.b.c", "eyJhbGciOiJub25lIn0.e30.",
		"tuk_" + strings.Repeat("A", 49), strings.Repeat(".", 5), "Bearer"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, credential string) {
		if !validHeaderValue(credential) {
			t.Skip("not sendable as a header")
		}
		r := servertest.New(t, e.url).Do("GET", "/api/me", nil, "Authorization", "Bearer "+credential)
		if r.Status != 200 && r.Status != 401 {
			t.Fatalf("Bearer %q: %d %s", credential, r.Status, r.Body)
		}
	})
}

// FuzzRequestBodies posts arbitrary bytes as JSON to every kind of write.
func FuzzRequestBodies(f *testing.F) {
	e := newEnv(f)
	o := e.newOrg("Acme")
	targets := []struct {
		client *servertest.Client
		method string
		path   string
	}{
		{e.partner, "POST", "/api/organizations"},
		{e.partner, "PUT", "/api/organizations/" + o.id},
		{e.partner, "POST", "/api/organizations/" + o.id + "/users"},
		{e.partner, "POST", "/api/provision"},
		{o.admin, "POST", "/api/keys"},
		{o.admin, "POST", "/api/auth/tokens"},
		{o.admin, "POST", "/api/permissions/roles"},
		{o.admin, "POST", "/api/connections"},
		{o.admin, "POST", "/api/datasets"},
		{o.admin, "POST", "/api/webhooks"},
		{o.admin, "POST", "/api"},
	}
	for _, s := range []string{`{}`, `{"name":"x"}`, `{"email":"a@b.co","role":"admin"}`, `{"name":1e999}`, `{"name":null}`, `[]`, `"x"`,
		`{"configuration":{"a":[1,{"b":null}]}}`, `{"scopes":["users:read"],"name":"k"}`, `{"command":"get_identity"}`,
		`{"organization":{"name":"p"},"user":{"email":"r@p.co"}}`, strings.Repeat(`{"a":`, 50), "\xff\xfe", `{"name":"\u0000"}`} {
		for i := range targets {
			f.Add(i, []byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, target int, body []byte) {
		if target < 0 || target >= len(targets) {
			t.Skip()
		}
		tg := targets[target]
		c := servertest.New(t, e.url).As(tg.client.Key)
		r := c.Do(tg.method, tg.path, body)
		if r.Status >= 500 {
			t.Fatalf("%s %s with %q: %d %s", tg.method, tg.path, body, r.Status, r.Body)
		}
	})
}

// validHeaderValue reports whether Go's HTTP client would send s as a header value.
func validHeaderValue(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < ' ' && r != '\t' || r == 0x7f || r > 0x7e {
			return false
		}
	}
	return true
}
