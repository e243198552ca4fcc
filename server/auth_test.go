package server_test

import (
	"fmt"
	"strings"
	"testing"
)

func TestAuthentication(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	org := e.createOrg(e.partner, "Acme")
	user := e.createUser(e.partner, org, "ada@acme.test", "admin")
	key := e.mintKey(e.partner, org, user)
	revoked := key
	key = e.mintKey(e.partner, org, user) // force=true revokes the first
	flipped := []byte(key)
	// Another base62 character breaks the checksum (a flipped bit could make a character no
	// credential has, a malformed header rather than a bad key).
	flipped[10] = map[bool]byte{true: 'b', false: 'a'}[flipped[10] == 'a']
	// A well-formed key with a valid checksum that the database does not know: its user is gone.
	gone := e.createUser(e.partner, org, "gone@acme.test", "user")
	unknown := e.mintKey(e.partner, org, gone)
	expect(t, e.partner.Do("DELETE", "/api/organizations/"+org+"/users/"+gone, nil), 200, "")
	cases := []struct {
		name, authorization string
		status              int
		key                 string
	}{
		{"no header", "", 401, "missing_token"},
		{"bearer with nothing after it", "Bearer ", 401, "missing_token"},
		{"another scheme", "Basic " + key, 401, "invalid_token"},
		{"junk", "Bearer hello", 401, "invalid_token"},
		{"bad checksum", "Bearer " + string(flipped), 401, "invalid_token"},
		{"truncated", "Bearer " + key[:len(key)-1], 401, "invalid_token"},
		{"well-formed but unknown", "Bearer " + unknown, 401, "invalid_token"},
		{"revoked", "Bearer " + revoked, 401, "invalid_token"},
		{"valid user key", "Bearer " + key, 200, ""},
		{"scheme is case-insensitive", "bearer " + key, 200, ""},
		{"valid partner key", "Bearer " + e.partner.Key, 200, ""},
	}
	var invalidBody string
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.anon.Do("GET", "/api/me", nil, "Authorization", tc.authorization)
			expect(t, r, tc.status, tc.key)
			if tc.status != 401 {
				return
			}
			challenge := r.Header.Get("WWW-Authenticate")
			if !strings.HasPrefix(challenge, "Bearer") || (tc.key == "invalid_token") != strings.Contains(challenge, `error="invalid_token"`) {
				t.Fatalf("WWW-Authenticate %q for %s", challenge, tc.key)
			}
			// Every invalid credential gets the same answer: which check failed is not revealed.
			// (What is wrong with the header itself is no secret: another scheme is told to use
			// Bearer; see TestAuthorizationHeaderSyntax.)
			if tc.key == "invalid_token" && tc.name != "another scheme" {
				if invalidBody == "" {
					invalidBody = string(r.Body)
				} else if string(r.Body) != invalidBody {
					t.Fatalf("invalid_token bodies differ:\n%s\n%s", r.Body, invalidBody)
				}
			}
		})
	}
	// An unknown route answers 404 whatever the credential.
	expect(t, e.anon.Do("GET", "/api/nothing-here", nil), 404, "route_not_found")
}

func TestIdentity(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	org := e.createOrg(e.partner, "Acme")
	user := e.createUser(e.partner, org, "ada@acme.test", "admin")
	userKey := e.anon.As(e.mintKey(e.partner, org, user))

	pm := e.partner.Do("GET", "/api/me", nil).Data()
	if pm["is_partner"] != true || pm["is_user"] != false || pm["kind"] != "partner" || pm["organization_id"] != e.ownerID ||
		pm["organization_name"] != "Partner A" || pm["id"] != nil || pm["partner_id"] == nil || pm["partner_id"] == "" {
		t.Fatalf("partner identity: %v", pm)
	}
	um := userKey.Do("GET", "/api/me", nil).Data()
	if um["is_user"] != true || um["is_partner"] != false || um["kind"] != "user" || um["id"] != user || um["email"] != "ada@acme.test" ||
		um["role"] != "admin" || um["organization_id"] != org || um["organization_name"] != "Acme" || um["partner_id"] != pm["partner_id"] {
		t.Fatalf("user identity: %v", um)
	}
	cur := userKey.Do("GET", "/api/organization", nil)
	expect(t, cur, 200, "")
	if cur.Data()["id"] != org {
		t.Fatalf("a user key's organization: %s", cur.Body)
	}
}

// A user key may not call any partner endpoint, whatever its role.
func TestUserKeyRefusedOnPartnerEndpoints(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	org := e.createOrg(e.partner, "Acme")
	user := e.createUser(e.partner, org, "ada@acme.test", "admin")
	k := e.anon.As(e.mintKey(e.partner, org, user))
	for _, call := range []struct {
		method, path string
		body         any
	}{
		{"GET", "/api/organizations", nil},
		{"POST", "/api/organizations", map[string]any{"name": "X"}},
		{"GET", "/api/organizations/" + org, nil},
		{"PUT", "/api/organizations/" + org, map[string]any{"name": "X"}},
		{"DELETE", "/api/organizations/" + org, nil},
		{"GET", "/api/organizations/" + org + "/users", nil},
		{"POST", "/api/organizations/" + org + "/users", map[string]any{"email": "x@acme.test"}},
		{"GET", "/api/organizations/" + org + "/users/" + user, nil},
		{"PUT", "/api/organizations/" + org + "/users/" + user, map[string]any{"email": "x@acme.test"}},
		{"DELETE", "/api/organizations/" + org + "/users/" + user, nil},
		{"POST", "/api/organizations/" + org + "/users/" + user + "/keys", nil},
	} {
		r := k.Do(call.method, call.path, call.body)
		expect(t, r, 403, "partner_key_required")
		if !strings.Contains(r.JSON()["message"].(string), "partner key") {
			t.Fatalf("403 must say what is needed: %s", r.Body)
		}
	}
	if n := len(e.partner.Do("GET", "/api/organizations", nil).List()); n != 2 {
		t.Fatalf("refused calls changed something: %d organizations", n)
	}
}

func TestMintUserKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	org := e.createOrg(e.partner, "Acme")
	user := e.createUser(e.partner, org, "ada@acme.test", "user")
	path := "/api/organizations/" + org + "/users/" + user + "/keys"

	// Polytomic's Go SDK sends Content-Type: application/json with no body.
	first := e.partner.Do("POST", path, nil, "Content-Type", "application/json")
	expect(t, first, 200, "")
	k1 := first.Data()["value"].(string)
	if !strings.HasPrefix(k1, "tuk_") || len(k1) != 53 || first.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("key %q, Cache-Control %q", k1, first.Header.Get("Cache-Control"))
	}
	again := e.partner.Do("POST", path, nil)
	expect(t, again, 409, "user_key_exists")
	if !strings.Contains(again.JSON()["message"].(string), "force=true") {
		t.Fatalf("409 must say to pass force=true: %s", again.Body)
	}
	expect(t, e.partner.Do("POST", path+"?force=false", nil), 409, "user_key_exists")
	expect(t, e.partner.Do("POST", path+"?force=maybe", nil), 400, "validation_failed")
	expect(t, e.partner.Do("POST", path+"?force=1", nil), 400, "validation_failed")
	expect(t, e.partner.Do("POST", path, `{"name":"x"}`), 400, "unknown_field")
	expect(t, e.anon.As(k1).Do("GET", "/api/me", nil), 200, "")

	forced := e.partner.Do("POST", path+"?force=true", `{}`)
	expect(t, forced, 200, "")
	k2 := forced.Data()["value"].(string)
	expect(t, e.anon.As(k1).Do("GET", "/api/me", nil), 401, "invalid_token")
	expect(t, e.anon.As(k2).Do("GET", "/api/me", nil), 200, "")

	// The database holds SHA-256 hashes and hints only: no value, nor its secret middle.
	var rows []struct {
		Hash []byte `db:"hash"`
		Hint string `db:"hint"`
		Name string `db:"name"`
	}
	if err := e.db.Select(&rows, `SELECT s.hash, k.hint, k.name FROM api_key_secrets s JOIN api_keys k ON k.id = s.key_id WHERE k.user_id IS NOT NULL`); err != nil {
		t.Fatal(err)
	}
	var stored strings.Builder
	for _, r := range rows {
		if len(r.Hash) != 32 {
			t.Fatalf("a stored hash of %d bytes, want SHA-256's 32", len(r.Hash))
		}
		fmt.Fprintf(&stored, "%s %s %x %s ", r.Hint, r.Name, r.Hash, r.Hash)
	}
	if strings.Contains(stored.String(), k1[4:len(k1)-4]) || strings.Contains(stored.String(), k2[4:len(k2)-4]) || len(rows) != 2 {
		t.Fatalf("the database must hold SHA-256 hashes and hints only: %d rows", len(rows))
	}

	expect(t, e.partner.Do("POST", "/api/organizations/"+org+"/users/"+e.ownerID+"/keys", nil), 404, "user_not_found")
	// Deleting the organization revokes every key in it.
	expect(t, e.partner.Do("DELETE", "/api/organizations/"+org, nil), 200, "")
	expect(t, e.anon.As(k2).Do("GET", "/api/me", nil), 401, "invalid_token")
}
