package server_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/tenantry/tenantry/server"
	"github.com/tenantry/tenantry/server/servertest"
)

// Issue 9: strict input, one parser, one order of refusals.

// The command endpoint decodes params with the REST route's own strict decoder: a body REST
// refuses is refused in params with the same answer, byte for byte; and the envelope is
// decoded as strictly.
func TestCommandDecodesLikeREST(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	o := e.newOrg("Acme")
	cases := []struct {
		name    string
		client  *servertest.Client
		command string
		path    string // the REST twin, POST
		body    string
	}{
		{"a field twice", o.admin, "create_role", "/api/permissions/roles", `{"name": "a", "name": "b", "actions": []}`},
		{"a field twice, once escaped", o.admin, "create_role", "/api/permissions/roles", `{"name": "a", "n\u0061me": "b", "actions": []}`},
		{"an unknown field", o.admin, "create_role", "/api/permissions/roles", `{"name": "a", "actions": [], "colour": "red"}`},
		{"a field in the wrong case", o.admin, "create_role", "/api/permissions/roles", `{"Name": "a", "actions": []}`},
		{"the first of two unknown fields", o.admin, "create_role", "/api/permissions/roles", `{"zz": 1, "aa": 2}`},
		{"a duplicate after an unknown field", o.admin, "create_role", "/api/permissions/roles", `{"colour": 1, "name": "a", "name": "b"}`},
		{"a wrong type", o.admin, "create_role", "/api/permissions/roles", `{"name": 5, "actions": []}`},
		{"invalid UTF-8", o.admin, "create_role", "/api/permissions/roles", "{\"name\": \"\xff\", \"actions\": []}"},
		{"a nested field twice", e.partner, "provision", "/api/provision",
			`{"organization": {"name": "p", "name": "q"}, "user": {"email": "r@p.test"}}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rest := tc.client.Do("POST", tc.path, tc.body)
			cmd := tc.client.Do("POST", "/api", `{"command": "`+tc.command+`", "params": `+tc.body+`}`)
			if rest.Status != 400 {
				t.Fatalf("the case is not a refusal: REST answered %d %s", rest.Status, rest.Body)
			}
			if cmd.Status != rest.Status || !bytes.Equal(cmd.Body, rest.Body) {
				t.Fatalf("command %d %s\nREST    %d %s", cmd.Status, cmd.Body, rest.Status, rest.Body)
			}
		})
	}
	// The example made a role named "b".
	for _, r := range o.admin.Do("GET", "/api/permissions/roles", nil).List() {
		if r["name"] == "a" || r["name"] == "b" {
			t.Fatalf("a refused command created role %v", r)
		}
	}

	// Parameters the command endpoint itself takes out of params (path and query parameters)
	// are refused twice too, named by their place.
	role := o.admin.Do("POST", "/api/permissions/roles", map[string]any{"name": "R", "actions": []string{}}).Data()["id"].(string)
	other := o.admin.Do("POST", "/api/permissions/roles", map[string]any{"name": "S", "actions": []string{}}).Data()["id"].(string)
	for _, body := range []string{
		`{"command": "update_role", "params": {"id": "` + other + `", "id": "` + role + `", "name": "T", "actions": []}}`,
		`{"command": "list_keys", "params": {"limit": 1, "limit": 2}}`,
	} {
		r := o.admin.Do("POST", "/api", body)
		expect(t, r, 400, "duplicate_field")
		if f, _ := r.JSON()["metadata"].(map[string]any)["field"].(string); !strings.HasPrefix(f, "params.") {
			t.Fatalf("metadata.field %q, want params.<name>: %s", f, r.Body)
		}
	}

	// The envelope, as strictly as any body.
	for _, tc := range []struct{ body, key string }{
		{`{"command": "get_identity", "command": "list_roles"}`, "duplicate_field"},
		{`{"command": "create_role", "params": {"name": "x", "actions": []}, "params": {"name": "y", "actions": []}}`, "duplicate_field"},
		{`{"Command": "get_identity"}`, "unknown_field"},
		{`{"command": "get_identity", "extra": 1}`, "unknown_field"},
		{`{"command": "create_role", "params": ["name"]}`, "validation_failed"},
		{`{"command": "create_role", "params": "name"}`, "validation_failed"},
		{`{"command": "get_identity"} {}`, "malformed_json"},
		{"{\"command\": \"get_identity\xff\"}", "malformed_json"},
	} {
		expect(t, o.admin.Do("POST", "/api", tc.body), 400, tc.key)
	}
	if n := len(o.admin.Do("GET", "/api/permissions/roles", nil).List()); n != 4 {
		t.Fatalf("%d roles, want Admin, Member, R and S", n)
	}
}

// Authorization is "Bearer", one space or tab, the credential; the scheme in any case; spaces
// or tabs after it. Anything else is 401 invalid_token (a scheme other than Bearer, saying so).
func TestAuthorizationHeaderSyntax(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	key := e.partner.Key
	const credentialRefused = "The credential is invalid, expired or revoked."
	cases := []struct {
		name, header string
		status       int
		key, message string // message: a part of it
	}{
		{"Bearer, a space, the key", "Bearer " + key, 200, "", ""},
		{"Bearer, a tab, the key", "Bearer\t" + key, 200, "", ""},
		{"the scheme in any case", "bEARER " + key, 200, "", ""},
		{"spaces and tabs after the key", "Bearer " + key + " \t ", 200, "", ""},
		{"an empty header", "", 401, "missing_token", ""},
		{"Bearer alone", "Bearer", 401, "missing_token", ""},
		{"Bearer and a space", "Bearer ", 401, "missing_token", ""},
		{"two spaces", "Bearer  " + key, 401, "invalid_token", "malformed"},
		{"a space and a tab", "Bearer \t" + key, 401, "invalid_token", "malformed"},
		{"a no-break space as the separator", "Bearer\u00a0" + key, 401, "invalid_token", "malformed"},
		{"a no-break space after the key", "Bearer " + key + "\u00a0", 401, "invalid_token", "malformed"},
		{"an em space before the key", "Bearer \u2003" + key, 401, "invalid_token", "malformed"},
		{"an ideographic space after the key", "Bearer " + key + "\u3000", 401, "invalid_token", "malformed"},
		{"two credentials", "Bearer " + key + " " + key, 401, "invalid_token", "malformed"},
		{"Basic", "Basic " + key, 401, "invalid_token", "use Bearer"},
		{"Token", "Token " + key, 401, "invalid_token", "use Bearer"},
		{"the key without a scheme", key, 401, "invalid_token", "use Bearer"},
		{"a well-formed header with a bad credential", "Bearer tuk_nonsense", 401, "invalid_token", credentialRefused},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.anon.Do("GET", "/api/me", nil, "Authorization", tc.header)
			expectAuth(t, r, tc.status, tc.key, tc.message)
		})
	}

	// What Go's client never sends, over raw TCP: two headers, folded lines. Go's server joins
	// a folded line to the one before with one space (RFC 9112 §5.2).
	host := strings.TrimPrefix(e.url, "http://")
	raw := func(headers string) string {
		return "GET /api/me HTTP/1.1\r\nHost: " + host + "\r\n" + headers + "Connection: close\r\n\r\n"
	}
	rawCases := []struct {
		name, headers string
		status        int
		key, message  string
	}{
		{"one header (the control)", "Authorization: Bearer " + key + "\r\n", 200, "", ""},
		{"spaces and tabs around the value", "Authorization: \t Bearer " + key + " \t \r\n", 200, "", ""},
		{"Bearer and spaces", "Authorization: Bearer  \t\r\n", 401, "missing_token", ""},
		{"two headers, the same key", "Authorization: Bearer " + key + "\r\nAuthorization: Bearer " + key + "\r\n", 401, "invalid_token", "malformed"},
		{"two headers, one empty", "Authorization: Bearer " + key + "\r\nAuthorization: \r\n", 401, "invalid_token", "malformed"},
		{"folded after the key", "Authorization: Bearer " + key + "\r\n \r\n", 401, "invalid_token", "malformed"},
		{"folded within the value", "Authorization: Bearer " + key + "\r\n\t" + key + "\r\n", 401, "invalid_token", "malformed"},
		{"folded before the scheme", "Authorization:\r\n Bearer " + key + "\r\n", 200, "", ""},
		{"folded between the scheme and the key", "Authorization: Bearer\r\n " + key + "\r\n", 200, "", ""},
	}
	for _, tc := range rawCases {
		t.Run(tc.name, func(t *testing.T) {
			expectAuth(t, e.anon.SendRaw(raw(tc.headers)), tc.status, tc.key, tc.message)
		})
	}
}

// expectAuth checks an answer to an Authorization header: the status and key, a part of the
// message, and the challenge on a 401.
func expectAuth(t *testing.T, r *servertest.Response, status int, key, message string) {
	t.Helper()
	expect(t, r, status, key)
	if status != 401 {
		return
	}
	if msg, _ := r.JSON()["message"].(string); !strings.Contains(msg, message) {
		t.Fatalf("message %q does not say %q", msg, message)
	}
	if c := r.Header.Get("WWW-Authenticate"); !strings.HasPrefix(c, "Bearer") || (key == "invalid_token") != strings.Contains(c, `error="invalid_token"`) {
		t.Fatalf("WWW-Authenticate %q for %s", c, key)
	}
}

// An Idempotency-Key or X-Polytomic-Version header that is there but empty, or there twice,
// is malformed, not absent.
func TestEmptyAndRepeatedHeadersAreMalformed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	body := map[string]any{"name": "Empty"}
	expect(t, e.partner.Do("POST", "/api/organizations", body, "Idempotency-Key", ""), 400, "invalid_idempotency_key")
	expect(t, e.partner.Do("GET", "/api/me", nil, "X-Polytomic-Version", ""), 400, "unsupported_version")
	expect(t, e.partner.Do("GET", "/api/me", nil, "X-Polytomic-Version", "2025-09-18\u00a0"), 400, "unsupported_version")
	// Reads ignore Idempotency-Key, empty or not.
	expect(t, e.partner.Do("GET", "/api/organizations", nil, "Idempotency-Key", ""), 200, "")
	// Leaving the headers out is still fine.
	expect(t, e.partner.Do("POST", "/api/organizations", body), 200, "")

	twice := func(method, path, header, v1, v2 string) *servertest.Response {
		req, err := http.NewRequest(method, e.url+path, strings.NewReader(`{"name": "Twice"}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+e.partner.Key)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Add(header, v1)
		req.Header.Add(header, v2)
		return e.partner.Send(req)
	}
	expect(t, twice("POST", "/api/organizations", "Idempotency-Key", "twice-key-00001", "twice-key-00001"), 400, "invalid_idempotency_key")
	expect(t, twice("POST", "/api/organizations", "Idempotency-Key", "twice-key-00002", ""), 400, "invalid_idempotency_key")
	expect(t, twice("GET", "/api/me", "X-Polytomic-Version", "2025-09-18", "2025-09-18"), 400, "unsupported_version")
	expect(t, twice("GET", "/api/me", "X-Polytomic-Version", "2025-09-18", "2021-05-23"), 400, "unsupported_version")
	if n := len(e.partner.Do("GET", "/api/organizations", nil).List()); n != 2 {
		t.Fatalf("%d organizations, want the owner and the one created without the headers", n)
	}
}

// A wrong method (405) or an unknown route (404) is answered before idempotency: never
// compared with a recorded request, never recorded.
func TestWrongMethodAndUnknownRouteAreNotRecorded(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	identity := map[string]any{"command": "get_identity"}
	used := []string{"Idempotency-Key", "used-on-post-0001"}
	expect(t, e.partner.Do("POST", "/api", identity, used...), 200, "")
	expect(t, e.partner.Do("PUT", "/api", identity, used...), 405, "method_not_allowed")

	for _, tc := range []struct{ method, path, key string }{
		{"PUT", "/api", "first-a-put-0001"},
		{"DELETE", "/api", "first-a-delete-0001"},
		{"POST", "/api/nothing-here", "first-a-404-0001"},
		{"POST", "/api/organizations/x/nothing", "first-a-404-0002"},
	} {
		first := e.partner.Do(tc.method, tc.path, identity, "Idempotency-Key", tc.key)
		again := e.partner.Do(tc.method, tc.path, identity, "Idempotency-Key", tc.key)
		if first.Status != 404 && first.Status != 405 || again.Status != first.Status || again.Header.Get("Idempotent-Replayed") != "" {
			t.Fatalf("%s %s: %d then %d %v", tc.method, tc.path, first.Status, again.Status, again.Header)
		}
		// The key is still free: the request it is then used with runs.
		r := e.partner.Do("POST", "/api", identity, "Idempotency-Key", tc.key)
		expect(t, r, 200, "")
		if r.Header.Get("Idempotent-Replayed") != "" {
			t.Fatalf("%s %s: the POST replayed something", tc.method, tc.path)
		}
	}
}

// When a request is wrong in several ways, the README's order of refusals decides which one
// answers it. Each case is wrong in two adjacent ways of that order (some in more) and must
// get the earlier one.
func TestOrderOfRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	o := e.newOrg("Acme")
	limited := newEnvWith(t, func(c *server.Config) { c.RatePerSecond, c.RateBurst = 0.001, 1 })
	expect(t, limited.partner.Do("GET", "/api/me", nil), 200, "") // spends its one request
	lockedOut := newEnvWith(t, func(c *server.Config) { c.AuthFailuresPerSecond, c.AuthFailureBurst = 0.001, 1 })
	expect(t, lockedOut.anon.Do("GET", "/api/me", nil, "Authorization", "Bearer tuk_guess"), 401, "invalid_token") // spends its one failure

	junk := e.anon.As("tuk_junk")
	used := []string{"Idempotency-Key", "order-used-0001"}
	created := e.partner.Do("POST", "/api/organizations", map[string]any{"name": "Used"}, used...)
	expect(t, created, 200, "")
	orgPath := "/api/organizations/" + created.Data()["id"].(string)
	big := `{"name": "` + strings.Repeat("x", 2<<20) + `"}`
	const (
		badVersion = "X-Polytomic-Version"
		badKey     = "Idempotency-Key"
	)
	cases := []struct {
		name         string
		client       *servertest.Client
		method, path string
		body         any
		headers      []string
		status       int
		key          string
	}{
		// 1. Route and method.
		{"404 route before 429", limited.partner, "GET", "/api/nothing-here", nil, nil, 404, "route_not_found"},
		{"404 route before 401", junk, "GET", "/api/nothing-here", nil, nil, 404, "route_not_found"},
		{"404 route before 400 version", e.partner, "GET", "/api/nothing-here", nil, []string{badVersion, "latest"}, 404, "route_not_found"},
		{"404 route before 400 key", e.partner, "POST", "/api/nothing-here", nil, []string{badKey, "short"}, 404, "route_not_found"},
		{"405 before 429", limited.partner, "PUT", "/api", nil, nil, 405, "method_not_allowed"},
		{"405 before 401", junk, "PUT", "/api", nil, nil, 405, "method_not_allowed"},
		{"405 before 400 version", e.partner, "PUT", "/api", nil, []string{badVersion, "latest"}, 405, "method_not_allowed"},
		{"405 before 400 key", e.partner, "PUT", "/api", nil, []string{badKey, "short"}, 405, "method_not_allowed"},
		{"405 before 422 key reused", e.partner, "PUT", "/api/organizations", map[string]any{"name": "Used"}, used, 405, "method_not_allowed"},
		// 2. Rate limits.
		{"429 address before 401", lockedOut.anon.As("tuk_guess"), "GET", "/api/me", nil, nil, 429, "rate_limited"},
		{"429 credential before 400 version", limited.partner, "GET", "/api/me", nil, []string{badVersion, "latest"}, 429, "rate_limited"},
		{"429 credential before 400 key", limited.partner, "POST", "/api/organizations", map[string]any{"name": "L"}, []string{badKey, "short"}, 429, "rate_limited"},
		{"public routes skip 429 and 401", lockedOut.anon.As("tuk_guess"), "GET", "/api/versions", nil, nil, 200, ""},
		// 3. Authentication.
		{"401 before 400 version", e.anon, "GET", "/api/me", nil, []string{badVersion, "latest"}, 401, "missing_token"},
		{"401 before 400 empty version", junk, "GET", "/api/me", nil, []string{badVersion, ""}, 401, "invalid_token"},
		{"401 before 400 key", e.anon, "POST", "/api/organizations", map[string]any{"name": "X"}, []string{badKey, "short"}, 401, "missing_token"},
		{"401 before 422 key reused", junk, "POST", "/api/organizations", map[string]any{"name": "Other"}, used, 401, "invalid_token"},
		{"401 before 404 version gate", e.anon, "GET", "/api/organization", nil, []string{badVersion, "2021-05-23"}, 401, "missing_token"},
		{"401 before 403", junk, "POST", "/api/provision", map[string]any{}, nil, 401, "invalid_token"},
		// 4. The version header.
		{"400 version before 400 key", e.partner, "POST", "/api/organizations", map[string]any{"name": "X"}, []string{badVersion, "latest", badKey, "short"}, 400, "unsupported_version"},
		{"400 empty version before 400 empty key", e.partner, "POST", "/api/organizations", map[string]any{"name": "X"}, []string{badVersion, "", badKey, ""}, 400, "unsupported_version"},
		// 5. The Idempotency-Key header.
		{"400 key before 404 version gate", e.partner, "PATCH", orgPath, map[string]any{"name": "X"}, []string{badKey, "short"}, 400, "invalid_idempotency_key"},
		{"400 key before 403", o.member, "POST", "/api/organizations", map[string]any{"name": "X"}, []string{badKey, ""}, 400, "invalid_idempotency_key"},
		// 6. The version gate.
		{"404 version gate before 422 key reused", e.partner, "PATCH", orgPath, map[string]any{"name": "X"}, used, 404, "not_available_in_version"},
		{"404 version gate before 413 with a key", e.partner, "PATCH", orgPath, big, []string{badKey, "order-big-0001"}, 404, "not_available_in_version"},
		{"404 version gate before 403", o.member, "PATCH", orgPath, map[string]any{"name": "X"}, nil, 404, "not_available_in_version"},
		// 7. Idempotency.
		{"413 with a key before 403", o.member, "POST", "/api/organizations", big, []string{badKey, "order-big-0002"}, 413, "body_too_large"},
		{"403 with a key, recorded", o.member, "POST", "/api/organizations", map[string]any{"name": "X"}, []string{badKey, "order-member-0001"}, 403, "partner_key_required"},
		// 8. The route table: the credential's kind.
		{"403 before 400 body", o.member, "POST", "/api/organizations", map[string]any{"nmae": "X"}, nil, 403, "partner_key_required"},
		{"403 before 415", o.member, "POST", "/api/organizations", "name=X", []string{"Content-Type", "text/plain"}, 403, "partner_key_required"},
		{"403 before 413 without a key", o.member, "POST", "/api/organizations", big, nil, 403, "partner_key_required"},
		// 9. The endpoint: its body, then what the operation finds.
		{"400 body before 403 permission", o.member, "POST", "/api/permissions/roles", map[string]any{"nmae": "X"}, nil, 400, "unknown_field"},
		{"403 permission before 400 validation", o.member, "POST", "/api/permissions/roles", map[string]any{"name": ""}, nil, 403, "permission_denied"},
		{"400 body before 404 object", o.admin, "PUT", "/api/datasets/01a20969-5e09-7545-976e-b6bcdf950f0e", map[string]any{"nmae": "X"}, nil, 400, "unknown_field"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			expect(t, tc.client.Do(tc.method, tc.path, tc.body, tc.headers...), tc.status, tc.key)
		})
	}
	// A request the version gate refuses is not recorded: its key stays free for the request
	// it was meant for, at a version that serves it.
	gated := []string{"Idempotency-Key", "order-gated-0001"}
	for range 2 {
		r := e.partner.Do("PATCH", orgPath, map[string]any{"name": "Patched"}, gated...)
		expect(t, r, 404, "not_available_in_version")
		if r.Header.Get("Idempotent-Replayed") != "" {
			t.Fatalf("a version-gated request was recorded: %v", r.Header)
		}
	}
	expect(t, e.partner.Do("PATCH", orgPath, map[string]any{"name": "Patched"}, append(gated, "X-Polytomic-Version", "2024-02-08")...), 200, "")
	// The 403 of a key's first request is recorded, and replayed before the policy is asked again.
	r := o.member.Do("POST", "/api/organizations", map[string]any{"name": "X"}, "Idempotency-Key", "order-member-0001")
	expect(t, r, 403, "partner_key_required")
	if r.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("the 403 was not replayed: %v", r.Header)
	}

	// What they refused was not done.
	if n := len(e.partner.Do("GET", "/api/organizations", nil).List()); n != 3 {
		t.Fatalf("%d organizations, want the owner, Acme and Used", n)
	}

	// Nothing about a request that matches no route is looked at: its credential is not
	// checked (a bad one is no failed authentication), and it is served at the version it
	// asks for when that is one, else the newest (not its credential's organization's).
	counted := newEnvWith(t, func(c *server.Config) { c.AuthFailuresPerSecond, c.AuthFailureBurst = 0.001, 1 })
	for range 3 {
		expect(t, counted.anon.As("tuk_guess").Do("GET", "/api/nothing-here", nil), 404, "route_not_found")
		expect(t, counted.anon.As("tuk_guess").Do("PUT", "/api", nil), 405, "method_not_allowed")
	}
	expect(t, counted.anon.As("tuk_guess").Do("GET", "/api/me", nil), 401, "invalid_token")
	expect(t, e.partner.Do("PUT", "/api/organizations/"+o.id, map[string]any{"name": "Acme", "api_version": "2022-12-12"}), 200, "")
	for _, tc := range []struct{ asked, served string }{{"2023-04-25", "2023-04-25"}, {"latest", "2025-09-18"}, {"", "2025-09-18"}} {
		var headers []string
		if tc.asked != "" {
			headers = []string{"X-Polytomic-Version", tc.asked}
		}
		for _, method := range []string{"GET", "PUT"} {
			path := map[string]string{"GET": "/api/nothing-here", "PUT": "/api"}[method]
			r := o.admin.Do(method, path, nil, headers...)
			if r.Status != 404 && r.Status != 405 || r.Header.Get("X-Polytomic-Version") != tc.served {
				t.Fatalf("%s %s asking %q: %d served at %q, want %s", method, path, tc.asked, r.Status, r.Header.Get("X-Polytomic-Version"), tc.served)
			}
		}
	}
	expect(t, o.admin.Do("GET", "/api/me", nil), 200, "") // the control: its version is 2022-12-12
	if v := o.admin.Do("GET", "/api/me", nil).Header.Get("X-Polytomic-Version"); v != "2022-12-12" {
		t.Fatalf("served at %q, want the organization's 2022-12-12", v)
	}
}
