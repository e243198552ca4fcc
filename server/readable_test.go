package server_test

import (
	"bytes"
	"reflect"
	"testing"
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
}
