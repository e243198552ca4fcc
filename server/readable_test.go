package server_test

import (
	"bytes"
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
