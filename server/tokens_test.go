package server_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tenantry/tenantry/keys"
	"github.com/tenantry/tenantry/tenants"
)

func TestTokens(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	o := e.newOrg("Acme")

	r := o.admin.Do("POST", "/api/auth/tokens", nil)
	expect(t, r, 200, "")
	d := r.Data()
	exp, _ := time.Parse(time.RFC3339, d["expires_at"].(string))
	if d["token_type"] != "Bearer" || time.Until(exp) < 890*time.Second || time.Until(exp) > 901*time.Second ||
		r.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("default token: %s", r.Body)
	}
	tok := e.anon.As(d["token"].(string))
	me := tok.Do("GET", "/api/me", nil).Data()
	if me["kind"] != "token" || me["is_user"] != true || me["id"] != o.adminID || len(me["permissions"].([]any)) != len(tenants.Catalogue) || me["expires_at"] == nil {
		t.Fatalf("token identity: %v", me)
	}
	expect(t, tok.Do("POST", "/api/organization/users", map[string]any{"email": "t@acme.test"}), 200, "")
	// A token cannot mint tokens or keys.
	expect(t, tok.Do("POST", "/api/auth/tokens", nil), 403, "token_not_allowed")
	expect(t, tok.Do("POST", "/api/keys", map[string]any{"name": "x"}), 403, "token_not_allowed")

	// Scopes and role narrow; they never widen.
	scoped := o.admin.Do("POST", "/api/auth/tokens", map[string]any{"token_ttl": 60, "scopes": []string{"users:read"},
		"role_vars": map[string]string{"tenant": "t1"}, "user_profile": map[string]string{"name": "Ada", "email": "ada@acme.test"}})
	expect(t, scoped, 200, "")
	st := e.anon.As(scoped.Data()["token"].(string))
	expect(t, st.Do("GET", "/api/organization/users", nil), 200, "")
	expect(t, st.Do("POST", "/api/organization/users", map[string]any{"email": "u@acme.test"}), 403, "permission_denied")
	expect(t, o.member.Do("POST", "/api/auth/tokens", map[string]any{"scopes": []string{"users:write"}}), 403, "permission_escalation")
	expect(t, o.member.Do("POST", "/api/auth/tokens", map[string]any{"role": "admin"}), 403, "permission_escalation")
	asker := e.anon.As(o.admin.Do("POST", "/api/auth/tokens", map[string]any{"role": "asker"}).Data()["token"].(string))
	expect(t, asker.Do("GET", "/api/organization", nil), 403, "asker_not_allowed")

	for _, bad := range []map[string]any{{"token_ttl": 59}, {"token_ttl": 86401}, {"role": "owner"}, {"scopes": []string{"nope"}},
		{"role_vars": map[string]string{"1bad": "x"}}, {"user_profile": map[string]string{"email": "nope"}}, {"user_profile": map[string]any{"nick": "x"}}} {
		r := o.admin.Do("POST", "/api/auth/tokens", bad)
		if r.Status != 400 {
			t.Fatalf("%v: %d %s", bad, r.Status, r.Body)
		}
	}

	// The parent's role change reaches its tokens; revoking the parent ends them.
	memberTok := e.anon.As(o.member.Do("POST", "/api/auth/tokens", nil).Data()["token"].(string))
	expect(t, memberTok.Do("POST", "/api/organization/users", map[string]any{"email": "m@acme.test"}), 403, "permission_denied")
	expect(t, e.partner.Do("PUT", "/api/organizations/"+o.id+"/users/"+o.memberID, map[string]any{"email": "member@acme.test", "role": "admin"}), 200, "")
	expect(t, memberTok.Do("POST", "/api/organization/users", map[string]any{"email": "m@acme.test"}), 200, "")
	memberKeyID := o.member.Do("GET", "/api/me", nil).Data()["key_id"].(string)
	expect(t, o.admin.Do("DELETE", "/api/keys/"+memberKeyID, nil), 200, "")
	expect(t, memberTok.Do("GET", "/api/me", nil), 401, "invalid_token")

	// A token never outlives its parent.
	soon := time.Now().Add(2 * time.Minute).UTC().Format(time.RFC3339)
	short := e.anon.As(o.admin.Do("POST", "/api/keys", map[string]any{"name": "short", "expires_at": soon}).Data()["value"].(string))
	bounded := short.Do("POST", "/api/auth/tokens", map[string]any{"token_ttl": 3600})
	expect(t, bounded, 200, "")
	if bounded.Data()["expires_at"].(string) > soon {
		t.Fatalf("token expires %s after its parent %s", bounded.Data()["expires_at"], soon)
	}
}

// Forged and altered tokens are refused with the same 401 as any invalid credential.
func TestTokenForgeries(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	o := e.newOrg("Acme")
	good := o.admin.Do("POST", "/api/auth/tokens", nil).Data()["token"].(string)
	expect(t, e.anon.As(good).Do("GET", "/api/me", nil), 200, "")

	parts := strings.Split(good, ".")
	var header map[string]any
	var claims jwt.MapClaims
	decode := func(s string, v any) {
		raw, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil || json.Unmarshal(raw, v) != nil {
			t.Fatalf("decode %q: %v", s, err)
		}
	}
	decode(parts[0], &header)
	decode(parts[1], &claims)
	priv := e.opened("signing_keys", "private_key", header["kid"].(string))
	signWith := func(mutate func(jwt.MapClaims), kid string, header map[string]any) string {
		c := jwt.MapClaims{}
		for k, v := range claims {
			c[k] = v
		}
		mutate(c)
		tk := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
		tk.Header["kid"] = kid
		for k, v := range header {
			tk.Header[k] = v
		}
		s, err := tk.SignedString(ed25519.PrivateKey(priv))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	sign := func(mutate func(jwt.MapClaims), kid string) string { return signWith(mutate, kid, nil) }
	kid := header["kid"].(string)
	now := time.Now().Unix()
	// The real key signs these, so only the claim checks can refuse them.
	if s := sign(func(jwt.MapClaims) {}, kid); e.anon.As(s).Do("GET", "/api/me", nil).Status != 200 {
		t.Fatalf("a re-signed copy of a good token must work, or the cases below prove nothing")
	}
	pub := ed25519.PrivateKey(priv).Public().(ed25519.PublicKey)
	hs, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(pub))
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, claims).SignedString(jwt.UnsafeAllowNoneSignatureType)
	payload, _ := json.Marshal(map[string]any{"sub": "someone-else", "org": claims["org"], "parent": claims["parent"], "exp": claims["exp"]})
	cases := map[string]string{
		"alg none":                  none,
		"HS256 over the public key": hs,
		"unknown kid":               sign(func(jwt.MapClaims) {}, "01a00000-0000-7000-8000-000000000000"),
		"wrong issuer":              sign(func(c jwt.MapClaims) { c["iss"] = "evil" }, kid),
		"wrong audience":            sign(func(c jwt.MapClaims) { c["aud"] = []string{"other-api"} }, kid),
		"expired":                   sign(func(c jwt.MapClaims) { c["exp"] = now - 60 }, kid),
		"no exp":                    sign(func(c jwt.MapClaims) { delete(c, "exp") }, kid),
		"future nbf":                sign(func(c jwt.MapClaims) { c["nbf"] = now + 600 }, kid),
		"another parent":            sign(func(c jwt.MapClaims) { c["parent"] = "01a00000-0000-7000-8000-000000000001" }, kid),
		"another organization":      sign(func(c jwt.MapClaims) { c["org"] = e.ownerID }, kid),
		"altered claims":            parts[0] + "." + base64.RawURLEncoding.EncodeToString(payload) + "." + parts[2],
		"truncated signature":       good[:len(good)-4],
		"no iat":                    sign(func(c jwt.MapClaims) { delete(c, "iat") }, kid),
		"no nbf":                    sign(func(c jwt.MapClaims) { delete(c, "nbf") }, kid),
		"lives longer than a day":   sign(func(c jwt.MapClaims) { c["exp"] = now + 2*86400 }, kid),
		"critical extension":        signWith(func(jwt.MapClaims) {}, kid, map[string]any{"crit": []string{"exp"}}),
		"another parent value":      sign(func(c jwt.MapClaims) { c["psh"] = "AAAA" }, kid),
	}
	for name, tok := range cases {
		t.Run(name, func(t *testing.T) {
			expect(t, e.anon.As(tok).Do("GET", "/api/me", nil), 401, "invalid_token")
		})
	}
}

// Signing keys rotate without breaking tokens already issued, and the JWKS lists both.
func TestSigningKeyRotation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	o := e.newOrg("Acme")
	before := o.admin.Do("POST", "/api/auth/tokens", nil).Data()["token"].(string)
	set := e.anon.Do("GET", "/.well-known/jwks.json", nil)
	expect(t, set, 200, "")
	if n := len(set.JSON()["keys"].([]any)); n != 1 {
		t.Fatalf("JWKS has %d keys, want 1: %s", n, set.Body)
	}
	if strings.Contains(string(set.Body), `"d"`) {
		t.Fatalf("the JWKS exposes a private key: %s", set.Body)
	}
	kid, err := keys.NewService(e.db).RotateSigningKey(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	after := o.admin.Do("POST", "/api/auth/tokens", nil).Data()["token"].(string)
	var h map[string]any
	raw, _ := base64.RawURLEncoding.DecodeString(strings.Split(after, ".")[0])
	json.Unmarshal(raw, &h)
	if h["kid"] != kid || h["alg"] != "EdDSA" {
		t.Fatalf("new tokens must use the new key %s: %v", kid, h)
	}
	expect(t, e.anon.As(before).Do("GET", "/api/me", nil), 200, "")
	expect(t, e.anon.As(after).Do("GET", "/api/me", nil), 200, "")
	if n := len(e.anon.Do("GET", "/.well-known/jwks.json", nil).JSON()["keys"].([]any)); n != 2 {
		t.Fatalf("JWKS after rotation has %d keys, want 2", n)
	}
}

// A signing key past its verify_until verifies nothing and leaves the JWKS.
func TestRetiredSigningKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	o := e.newOrg("Acme")
	tok := o.admin.Do("POST", "/api/auth/tokens", nil).Data()["token"].(string)
	if _, err := keys.NewService(e.db).RotateSigningKey(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.db.MustExec(e.db.Rebind(`UPDATE signing_keys SET verify_until = ? WHERE verify_until IS NOT NULL`), time.Now().Add(-time.Minute).UTC())
	expect(t, e.anon.As(tok).Do("GET", "/api/me", nil), 401, "invalid_token")
	if n := len(e.anon.Do("GET", "/.well-known/jwks.json", nil).JSON()["keys"].([]any)); n != 1 {
		t.Fatalf("JWKS lists %d keys, want only the current one", n)
	}
}

// A partner token narrowed by scopes or role can do no more than its scopes say: partner
// operations (outside the action catalogue) need an unrestricted partner credential, and no
// token mints keys.
func TestNarrowedPartnerToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	o := e.newOrg("Acme")
	full := e.anon.As(e.partner.Do("POST", "/api/auth/tokens", nil).Data()["token"].(string))
	expect(t, full.Do("GET", "/api/organizations", nil), 200, "")
	expect(t, full.Do("POST", "/api/organizations/"+o.id+"/users/"+o.memberID+"/keys?force=true", nil), 403, "token_not_allowed")
	expect(t, full.Do("POST", "/api/partner/keys", map[string]any{"name": "x"}), 403, "token_not_allowed")

	narrow := e.anon.As(e.partner.Do("POST", "/api/auth/tokens", map[string]any{"scopes": []string{}}).Data()["token"].(string))
	if p := narrow.Do("GET", "/api/me", nil).Data()["permissions"].([]any); len(p) != 0 {
		t.Fatalf("narrow partner token permissions: %v", p)
	}
	expect(t, narrow.Do("POST", "/api/organizations", map[string]any{"name": "Sneaky"}), 403, "permission_denied")
	expect(t, narrow.Do("GET", "/api/organizations/"+o.id+"/users", nil), 403, "permission_denied")
	expect(t, narrow.Do("GET", "/api/organization/users", nil), 403, "permission_denied")
	expect(t, narrow.Do("GET", "/api/permissions/roles", nil), 403, "permission_denied")

	asker := e.anon.As(e.partner.Do("POST", "/api/auth/tokens", map[string]any{"role": "asker"}).Data()["token"].(string))
	expect(t, asker.Do("GET", "/api/organizations", nil), 403, "permission_denied")
	expect(t, asker.Do("GET", "/api/organization/users", nil), 403, "asker_not_allowed")
	expect(t, asker.Do("GET", "/api/me", nil), 200, "")
}
