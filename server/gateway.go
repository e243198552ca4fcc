package server

import (
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/tenantry/tenantry/tenants"
)

// The gateway check (GET /api/auth/check) is for reverse proxies that put Tenantry keys in
// front of a partner's own services: nginx auth_request, Traefik ForwardAuth, Envoy ext_authz.
// The proxy forwards its client's Authorization header; the middleware authenticates it as any
// request (the principal cache, the credential's rate limit), and the answer is a status and
// headers, which is all those proxies read.

// The headers that carry the principal to the proxy, which passes them to its service. Each
// is always sent, empty when it does not apply, so a proxy that copies them onto the service's
// request overwrites any header of that name its client sent.
const (
	headerOrganizationID = "X-Tenantry-Organization-Id"
	headerUserID         = "X-Tenantry-User-Id" // empty for organization keys and their tokens
	headerKeyID          = "X-Tenantry-Key-Id"  // a token's is the key that minted it
	headerCredentialKind = "X-Tenantry-Credential-Kind"
	headerPermissions    = "X-Tenantry-Permissions" // actions separated by spaces, as a scope is
	// headerRequire names permissions the service's route needs, as the require parameter does.
	headerRequire = "X-Tenantry-Require"
)

// checkGateway is GET /api/auth/check: 200 with the principal in headers and no body, or 403
// when the credential lacks a permission the proxy requires (the 401s and 429s come before it,
// from the middleware, as on every route). Nothing is read or written but the principal the
// middleware authenticated.
func (s *Server) checkGateway(c *gin.Context, p *tenants.Principal) error {
	need, err := requiredPermissions(c.Request)
	if err != nil {
		return err
	}
	if err := p.RequireAll(need); err != nil {
		return err
	}
	h := c.Writer.Header()
	h[headerOrganizationID] = []string{p.OrgID}
	h[headerUserID] = []string{p.UserID}
	h[headerKeyID] = []string{p.KeyID}
	h[headerCredentialKind] = []string{string(p.Kind)}
	h[headerPermissions] = []string{p.Permissions.String()}
	c.Status(http.StatusOK)
	return nil
}

// requiredPermissions reads what the proxy requires: the require query parameter and the
// X-Tenantry-Require header, each a list of actions separated by commas or spaces, given any
// number of times; the credential needs all of them. An unknown action is 400 naming the
// catalogue, so a mistyped proxy configuration never lets a request through.
func requiredPermissions(r *http.Request) (tenants.Permissions, error) {
	var need tenants.Permissions
	var bad tenants.FieldErrors
	for _, src := range []struct {
		field  string
		values []string
	}{{"require", r.URL.Query()["require"]}, {headerRequire, r.Header.Values(headerRequire)}} {
		set, problem := tenants.CheckActionList(strings.Join(src.values, ","))
		bad.Add(src.field, problem)
		need |= set
	}
	return need, bad.Err()
}
