package server_test

import (
	"bytes"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/tenantry/tenantry/server"
)

// Messages reach the client as written: JSON bodies do not escape <, > and & as \u003c...
func TestMessagesAreNotHTMLEscaped(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.anon.Do("GET", "/api/me", nil, "Authorization", "Basic dXNlcjpwYXNz")
	expect(t, r, 401, "invalid_token")
	if !bytes.Contains(r.Body, []byte("'Authorization: Bearer <key>'")) || bytes.Contains(r.Body, []byte(`\u003c`)) {
		t.Fatalf("the message must read as written, without HTML escapes: %s", r.Body)
	}
	// Success bodies too: a name with & < > comes back as given.
	org := e.partner.Do("POST", "/api/organizations", map[string]any{"name": "Smith & Sons <Retail>"})
	expect(t, org, 200, "")
	if !bytes.Contains(org.Body, []byte(`"name":"Smith & Sons <Retail>"`)) {
		t.Fatalf("the envelope escapes HTML: %s", org.Body)
	}
	// The bodies are otherwise as before: no newline after the JSON value.
	if bytes.HasSuffix(org.Body, []byte("\n")) || bytes.HasSuffix(r.Body, []byte("\n")) {
		t.Fatalf("a body ends with a newline: %q", r.Body)
	}
}

// A body with several unknown fields names all of them, at any depth, with the nearest field
// name of each when one is close.
func TestUnknownFieldsAreAllNamed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	org := e.createOrg(e.partner, "Fields Inc")
	cases := []struct {
		name, path, body string
		fields           []string
		suggestions      map[string]any
		message          string
	}{
		{"two typos", "/api/organizations/" + org + "/users", `{"emial": "a@b.test", "rol": "admin"}`,
			[]string{"emial", "rol"}, map[string]any{"emial": "email", "rol": "role"},
			`The request body has fields this endpoint does not accept: "emial" (did you mean "email"?), "rol" (did you mean "role"?).`},
		{"a swap of two letters", "/api/organizations", `{"nmae": "X"}`,
			[]string{"nmae"}, map[string]any{"nmae": "name"},
			`The request body has a field this endpoint does not accept: "nmae" (did you mean "name"?).`},
		{"another case", "/api/organizations", `{"NAME": "X", "sso_domain": "x.test"}`,
			[]string{"NAME"}, map[string]any{"NAME": "name"},
			`The request body has a field this endpoint does not accept: "NAME" (did you mean "name"?). Field names are case-sensitive.`},
		{"nothing close", "/api/organizations", `{"name": "X", "colour": "red", "zz": 1}`,
			[]string{"colour", "zz"}, nil,
			`The request body has fields this endpoint does not accept: "colour", "zz".`},
		{"nested", "/api/provision", `{"organization": {"nam": "X"}, "user": {"email": "a@b.test", "rolee": "admin"}, "extra": 1}`,
			[]string{"organization.nam", "user.rolee", "extra"}, map[string]any{"organization.nam": "name", "user.rolee": "role"},
			`The request body has fields this endpoint does not accept: "organization.nam" (did you mean "name"?), "user.rolee" (did you mean "role"?), "extra".`},
		{"in an array's item", "/api/provision/batch", `{"items": [{"organization": {"name": "X"}}, {"organization": {"NAME": "Y"}}]}`,
			[]string{"items[1].organization.NAME"}, map[string]any{"items[1].organization.NAME": "name"},
			`The request body has a field this endpoint does not accept: "items[1].organization.NAME" (did you mean "name"?). Field names are case-sensitive.`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.partner.Do("POST", tc.path, tc.body)
			expect(t, r, 400, "unknown_field")
			body := r.JSON()
			meta, _ := body["metadata"].(map[string]any)
			if body["message"] != tc.message {
				t.Errorf("message %q, want %q", body["message"], tc.message)
			}
			var fields []string
			for _, f := range meta["fields"].([]any) {
				fields = append(fields, f.(string))
			}
			if !reflect.DeepEqual(fields, tc.fields) || meta["field"] != tc.fields[0] {
				t.Errorf("metadata %v, want fields %v and field %q", meta, tc.fields, tc.fields[0])
			}
			if got, _ := meta["suggestions"].(map[string]any); !reflect.DeepEqual(got, tc.suggestions) && (len(got) > 0 || len(tc.suggestions) > 0) {
				t.Errorf("suggestions %v, want %v", got, tc.suggestions)
			}
		})
	}
	// A repeated field is still refused as such.
	expect(t, e.partner.Do("POST", "/api/organizations", `{"name": "A", "name": "B"}`), 400, "duplicate_field")
	r := e.partner.Do("POST", "/api/provision/batch", `{"items": [{"organization": {"name": "A", "Name": "B"}}]}`)
	expect(t, r, 400, "unknown_field")
	r = e.partner.Do("POST", "/api/provision/batch", `{"items": [{"organization": {"name": "A", "name": "B"}}]}`)
	expect(t, r, 400, "duplicate_field")
	if f := r.JSON()["metadata"].(map[string]any)["field"]; f != "items[0].organization.name" {
		t.Errorf("metadata.field %v, want items[0].organization.name", f)
	}
}

// Every response to a valid credential says where it stands, in the fields of the IETF draft
// (RateLimit-Policy, RateLimit) and in those of its draft 06 (RateLimit-Limit, -Remaining,
// -Reset).
func TestRateLimitFields(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, func(c *server.Config) {
		c.RatePerSecond, c.RateBurst = server.DefaultRatePerSecond, server.DefaultRateBurst
	})
	r := e.partner.Do("GET", "/api/me", nil)
	expect(t, r, 200, "")
	if got := r.Header.Get("RateLimit-Policy"); got != `"credential";q=100;w=1;tenantry-burst=200` {
		t.Errorf("RateLimit-Policy %q", got)
	}
	if got := r.Header.Get("RateLimit"); got != `"credential";r=199;t=1` {
		t.Errorf("RateLimit %q after one request of a full bucket of 200, want r=199;t=1", got)
	}
	if r.Header.Get("RateLimit-Limit") != "200" || r.Header.Get("RateLimit-Remaining") != "199" || r.Header.Get("RateLimit-Reset") != "1" {
		t.Errorf("draft 06 fields: %v", r.Header)
	}

	// A slow bucket: one request every 4 seconds, 2 at once. The refusal's RateLimit window is
	// its Retry-After (the draft wants Retry-After no earlier than the end of t).
	slow := newEnvWith(t, func(c *server.Config) { c.RatePerSecond, c.RateBurst = 0.25, 2 })
	for i := range 3 {
		r := slow.partner.Do("GET", "/api/me", nil)
		if got := r.Header.Get("RateLimit-Policy"); got != `"credential";q=1;w=4;tenantry-burst=2` {
			t.Fatalf("RateLimit-Policy %q", got)
		}
		rl := r.Header.Get("RateLimit")
		switch i {
		case 0:
			expect(t, r, 200, "")
			if rl != `"credential";r=1;t=4` {
				t.Errorf("first request: RateLimit %q", rl)
			}
		case 1:
			expect(t, r, 200, "")
			if rl != `"credential";r=0;t=4` {
				t.Errorf("second request: RateLimit %q", rl)
			}
		case 2:
			expect(t, r, 429, "rate_limited")
			retry, _ := strconv.Atoi(r.Header.Get("Retry-After"))
			if !strings.HasPrefix(rl, `"credential";r=0;t=`) || rl != `"credential";r=0;t=`+strconv.Itoa(retry) {
				t.Errorf("429: RateLimit %q with Retry-After %d", rl, retry)
			}
		}
	}
}
