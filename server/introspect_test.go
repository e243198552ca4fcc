package server_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/pkg/client/rs"
	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/tenantry/tenantry/server/servertest"
	"github.com/tenantry/tenantry/tenants"
)

// introspector is a resource server as zitadel/oidc's RFC 7662 client (pkg/client/rs) makes
// one: its client credentials sent by HTTP Basic, form-urlencoded first as RFC 6749 §2.3.1 says.
func introspector(t *testing.T, e *env, clientID, clientSecret string) rs.ResourceServer {
	t.Helper()
	// The token endpoint is never called; the client only insists on having one.
	r, err := rs.NewResourceServerClientCredentials(context.Background(), e.url, clientID, clientSecret,
		rs.WithStaticEndpoints(e.url+"/api/auth/tokens", e.url+"/oauth/introspect"))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func keyIDOf(t *testing.T, c *servertest.Client) string {
	t.Helper()
	r := c.Do("GET", "/api/me", nil)
	expect(t, r, 200, "")
	return r.Data()["key_id"].(string)
}

// A real RFC 7662 client introspects Tenantry's keys and tokens: a partner's resource server
// with the partner key as its client credentials, and an organization's with a key holding
// keys:read.
func TestIntrospectionWithAnOAuthClient(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	o := e.newOrg("Acme")
	ctx := context.Background()
	partnerRS := introspector(t, e, keyIDOf(t, e.partner), e.partner.Key)
	memberRS := introspector(t, e, keyIDOf(t, o.member), o.member.Key)
	tr := o.member.Do("POST", "/api/auth/tokens", map[string]any{"scopes": []string{"datasets:read", "connections:read"}})
	expect(t, tr, 200, "")
	token := tr.Data()["token"].(string)
	adminKeyID, memberKeyID := keyIDOf(t, o.admin), keyIDOf(t, o.member)

	for name, server := range map[string]rs.ResourceServer{"partner": partnerRS, "member": memberRS} {
		got, err := rs.Introspect[*oidc.IntrospectionResponse](ctx, server, o.admin.Key)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !got.Active || got.ClientID != adminKeyID || got.Subject != o.adminID || got.TokenType != "Bearer" ||
			got.Issuer != "tenantry" || len(got.Audience) != 1 || got.Audience[0] != "tenantry-api" || len(got.Scope) != len(tenants.Catalogue) ||
			!got.Expiration.AsTime().IsZero() || time.Since(got.IssuedAt.AsTime()) > time.Minute ||
			got.Claims["organization_id"] != o.id || got.Claims["user_id"] != o.adminID || got.Claims["key_id"] != adminKeyID ||
			got.Claims["kind"] != "user" {
			t.Errorf("%s, the admin's key: %+v", name, got)
		}
		got, err = rs.Introspect[*oidc.IntrospectionResponse](ctx, server, token)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		exp, _ := time.Parse(time.RFC3339, tr.Data()["expires_at"].(string))
		if !got.Active || strings.Join(got.Scope, " ") != "connections:read datasets:read" || got.ClientID != memberKeyID ||
			got.Subject != o.memberID || !got.Expiration.AsTime().Equal(exp) || got.JWTID == "" || got.Claims["kind"] != "token" {
			t.Errorf("%s, the member's token: %+v", name, got)
		}
	}

	// Revoked, unknown, another tenant's: inactive, and nothing else.
	r := o.member.Do("POST", "/api/keys", map[string]any{"name": "to-revoke"})
	revoked := r.Data()["value"].(string)
	if got, err := rs.Introspect[*oidc.IntrospectionResponse](ctx, memberRS, revoked); err != nil || !got.Active {
		t.Fatalf("before revocation: %+v, %v", got, err)
	}
	expect(t, o.admin.Do("DELETE", "/api/keys/"+r.Data()["id"].(string), nil), 200, "")
	partnerB, _ := e.newPartner("Partner B")
	bRS := introspector(t, e, keyIDOf(t, partnerB), partnerB.Key)
	for name, c := range map[string]struct {
		server rs.ResourceServer
		token  string
	}{
		"revoked":           {memberRS, revoked},
		"not a credential":  {memberRS, "opaque-token-of-another-server"},
		"another partner's": {bRS, o.admin.Key},
		"another's token":   {bRS, token},
	} {
		got, err := rs.Introspect[*oidc.IntrospectionResponse](ctx, c.server, c.token)
		if err != nil || got.Active || got.ClientID != "" || got.Subject != "" || len(got.Scope) != 0 || len(got.Claims) != 1 {
			t.Errorf("%s: %+v, %v", name, got, err)
		}
	}

	// Client credentials that fail are refused, by the client library too.
	for name, server := range map[string]rs.ResourceServer{
		"a client_id not the key's":   introspector(t, e, adminKeyID, o.member.Key),
		"a client_secret not a key":   introspector(t, e, memberKeyID, "wrong"),
		"a revoked key as the secret": introspector(t, e, keyIDOf(t, o.member), revoked),
		"no client_id":                introspector(t, e, "", o.member.Key),
	} {
		if got, err := rs.Introspect[*oidc.IntrospectionResponse](ctx, server, o.admin.Key); err == nil || !strings.Contains(err.Error(), "401") {
			t.Errorf("%s: %+v, %v; want a 401", name, got, err)
		}
	}
}

// Introspection's edges, by hand: the form and its parameters, Bearer callers, the 401s and
// their challenges, and what the RFC says an answer is.
func TestIntrospectionEdges(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	o := e.newOrg("Acme")
	form := "application/x-www-form-urlencoded"
	post := func(c *servertest.Client, body string, headers ...string) *servertest.Response {
		t.Helper()
		return c.Do("POST", "/oauth/introspect", body, append([]string{"Content-Type", form}, headers...)...)
	}
	basic := func(id, secret string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
	}
	memberID := keyIDOf(t, o.member)
	tokenValue := o.member.Do("POST", "/api/auth/tokens", nil).Data()["token"].(string)

	// Bearer, Basic, and a token as either.
	active := "token=" + url.QueryEscape(o.admin.Key)
	for name, r := range map[string]*servertest.Response{
		"bearer key":              post(o.member, active),
		"bearer token":            post(e.anon.As(tokenValue), active),
		"basic key":               post(e.anon, active, "Authorization", basic(memberID, o.member.Key)),
		"basic token":             post(e.anon, active, "Authorization", basic(memberID, tokenValue)),
		"basic, scheme in case":   post(e.anon, active, "Authorization", strings.Replace(basic(memberID, o.member.Key), "Basic", "bAsIc", 1)),
		"with a hint":             post(o.member, active+"&token_type_hint=refresh_token"),
		"with other parameters":   post(o.member, active+"&client_id=whatever&resource=https%3A%2F%2Fapi.example"),
		"with a charset":          o.member.Do("POST", "/oauth/introspect", active, "Content-Type", form+"; charset=UTF-8"),
		"the token percent-coded": post(o.member, "token="+strings.ReplaceAll(url.QueryEscape(o.admin.Key), "_", "%5F")),
	} {
		expect(t, r, 200, "")
		if r.JSON()["active"] != true || r.Header.Get("Cache-Control") != "no-store" || r.JSON()["data"] != nil {
			t.Errorf("%s: %v %s", name, r.Header, r.Body)
		}
	}
	// Inactive is exactly {"active": false}.
	for _, token := range []string{"x", o.admin.Key + "x", tokenValue + "x"} {
		if r := post(o.member, "token="+url.QueryEscape(token)); string(r.Body) != `{"active":false}` {
			t.Errorf("%q: %s", token, r.Body)
		}
	}
	// The request's faults.
	for _, c := range []struct {
		name, body, contentType string
		status                  int
		key                     string
	}{
		{"no token", "token_type_hint=access_token", form, 400, "validation_failed"},
		{"an empty token", "token=", form, 400, "validation_failed"},
		{"no body", "", form, 400, "validation_failed"},
		{"a token twice", active + "&" + active, form, 400, "duplicate_field"},
		{"a bad escape", "token=%zz", form, 400, "malformed_form"},
		{"JSON", `{"token": "` + o.admin.Key + `"}`, "application/json", 415, "unsupported_media_type"},
		{"no content type", active, "", 415, "unsupported_media_type"},
	} {
		r := o.member.Do("POST", "/oauth/introspect", c.body, "Content-Type", c.contentType)
		expect(t, r, c.status, c.key)
		if c.key == "validation_failed" && r.JSON()["metadata"].(map[string]any)["token"] == nil {
			t.Errorf("%s: the refusal does not name token: %s", c.name, r.Body)
		}
	}
	// Unauthenticated: 401 with both challenges (RFC 7662 §2.3, RFC 6749 §5.2).
	for _, c := range []struct {
		name, authorization, key, bearerChallenge string
	}{
		{"no credential", "", "missing_token", `Bearer realm="tenantry"`},
		{"an unknown bearer", "Bearer tuk_nope", "invalid_token", `Bearer realm="tenantry", error="invalid_token"`},
		{"basic, wrong secret", basic(memberID, "tuk_nope"), "invalid_client", `Bearer realm="tenantry"`},
		{"basic, another key's id", basic(keyIDOf(t, o.admin), o.member.Key), "invalid_client", `Bearer realm="tenantry"`},
		{"basic, no colon", "Basic " + base64.StdEncoding.EncodeToString([]byte(o.member.Key)), "invalid_client", `Bearer realm="tenantry"`},
		{"basic, not base64", "Basic %%%", "invalid_client", `Bearer realm="tenantry"`},
		{"basic, empty secret", basic(memberID, ""), "invalid_client", `Bearer realm="tenantry"`},
		{"basic, bad escape", "Basic " + base64.StdEncoding.EncodeToString([]byte(memberID+":%zz")), "invalid_client", `Bearer realm="tenantry"`},
	} {
		headers := []string{}
		if c.authorization != "" {
			headers = []string{"Authorization", c.authorization}
		}
		r := post(e.anon, active, headers...)
		expect(t, r, 401, c.key)
		if got := r.Header.Values("WWW-Authenticate"); len(got) != 2 || got[0] != `Basic realm="tenantry", charset="UTF-8"` || got[1] != c.bearerChallenge {
			t.Errorf("%s: WWW-Authenticate %q", c.name, got)
		}
		if strings.Contains(r.String(), o.member.Key) {
			t.Errorf("%s: the answer holds the secret: %s", c.name, r.Body)
		}
	}
	// Elsewhere Basic is still no credential: the API takes Bearer only.
	r := e.anon.Do("POST", "/api/keys/verify", map[string]any{"key": o.admin.Key}, "Authorization", basic(memberID, o.member.Key))
	expect(t, r, 401, "invalid_token")
	if got := r.Header.Values("WWW-Authenticate"); len(got) != 1 {
		t.Errorf("a Bearer-only route names one challenge: %q", got)
	}
	// And the idempotency of POSTs does not reach introspection.
	if r := post(o.member, active, "Idempotency-Key", "bad"); r.Status != http.StatusOK {
		t.Errorf("Idempotency-Key is ignored here: %d %s", r.Status, r.Body)
	}
}
