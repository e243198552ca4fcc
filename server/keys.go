package server

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/tenantry/tenantry/keys"
	"github.com/tenantry/tenantry/tenants"
)

// keyRequest is the body of POST /api/keys.
type keyRequest struct {
	Name      string                 `json:"name"`
	Kind      tenants.CredentialKind `json:"kind"`
	UserID    string                 `json:"user_id"`
	Role      string                 `json:"role"`
	Scopes    []string               `json:"scopes"`
	ExpiresAt *string                `json:"expires_at"`
	// AllowedCIDRs narrows the networks the key may be used from (Tenantry's own).
	AllowedCIDRs []string `json:"allowed_cidrs"`
}

// parseTime reads an optional RFC 3339 time field.
func parseTime(field string, v *string) (*time.Time, error) {
	var errs tenants.FieldErrors
	t := readTime(&errs, field, v)
	return t, errs.Err()
}

// readTime reads an optional RFC 3339 time (a body field, a query parameter), adding what is
// wrong with it to errs.
func readTime(errs *tenants.FieldErrors, field string, v *string) *time.Time {
	if v == nil {
		return nil
	}
	t, err := time.Parse(time.RFC3339, *v)
	if err != nil {
		errs.Add(field, "must be an RFC 3339 time such as 2030-01-02T15:04:05Z")
		return nil
	}
	return &t
}

func (s *Server) createKey(c *gin.Context, p *tenants.Principal) error {
	var req keyRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	exp, err := parseTime("expires_at", req.ExpiresAt)
	if err != nil {
		return err
	}
	k, err := s.keysOf(c).CreateKey(c.Request.Context(), p, keys.KeyInput{Name: req.Name, Kind: req.Kind, UserID: req.UserID,
		Role: req.Role, Scopes: req.Scopes, ExpiresAt: exp, AllowedCIDRs: req.AllowedCIDRs})
	if err != nil {
		return err
	}
	return writeSecret(c, k)
}

// writeSecret sends a response that carries a credential: never cached anywhere.
func writeSecret(c *gin.Context, v any) error {
	c.Header("Cache-Control", "no-store")
	return writeData(c, http.StatusOK, v)
}

func (s *Server) listKeys(c *gin.Context, p *tenants.Principal) error {
	page, err := pageOf(c)
	if err != nil {
		return err
	}
	list, err := s.keysOf(c).ListKeys(c.Request.Context(), p, page)
	if err != nil {
		return err
	}
	return writeList(c, list)
}

func (s *Server) getKey(c *gin.Context, p *tenants.Principal) error {
	k, err := s.keysOf(c).GetKey(c.Request.Context(), p, c.Param("id"))
	if err != nil {
		return err
	}
	return writeData(c, http.StatusOK, k)
}

func (s *Server) revokeKey(c *gin.Context, p *tenants.Principal) error {
	k, err := s.keysOf(c).RevokeKey(c.Request.Context(), p, c.Param("id"))
	if err != nil {
		return err
	}
	return writeData(c, http.StatusOK, k)
}

func (s *Server) rotateKey(c *gin.Context, p *tenants.Principal) error {
	var req struct {
		GraceSeconds int64 `json:"grace_seconds"`
	}
	if err := decodeOptionalJSON(c, &req); err != nil {
		return err
	}
	k, err := s.keysOf(c).RotateKey(c.Request.Context(), p, c.Param("id"), req.GraceSeconds)
	if err != nil {
		return err
	}
	return writeSecret(c, k)
}

func (s *Server) listOrganizationKeys(c *gin.Context, p *tenants.Principal) error {
	page, err := pageOf(c)
	if err != nil {
		return err
	}
	list, err := s.keysOf(c).ListOrganizationKeys(c.Request.Context(), p, c.Param("org_id"), page)
	if err != nil {
		return err
	}
	return writeList(c, list)
}

func (s *Server) revokeOrganizationKey(c *gin.Context, p *tenants.Principal) error {
	k, err := s.keysOf(c).RevokeOrganizationKey(c.Request.Context(), p, c.Param("org_id"), c.Param("id"))
	if err != nil {
		return err
	}
	return writeData(c, http.StatusOK, k)
}

func (s *Server) listPartnerKeys(c *gin.Context, p *tenants.Principal) error {
	page, err := pageOf(c)
	if err != nil {
		return err
	}
	list, err := s.keysOf(c).ListPartnerKeys(c.Request.Context(), p, page)
	if err != nil {
		return err
	}
	return writeList(c, list)
}

func (s *Server) createPartnerKey(c *gin.Context, p *tenants.Principal) error {
	var req struct {
		Name      string  `json:"name"`
		ExpiresAt *string `json:"expires_at"`
	}
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	exp, err := parseTime("expires_at", req.ExpiresAt)
	if err != nil {
		return err
	}
	k, err := s.keysOf(c).CreatePartnerKey(c.Request.Context(), p, req.Name, exp)
	if err != nil {
		return err
	}
	return writeSecret(c, k)
}

func (s *Server) revokePartnerKey(c *gin.Context, p *tenants.Principal) error {
	k, err := s.keysOf(c).RevokePartnerKey(c.Request.Context(), p, c.Param("id"))
	if err != nil {
		return err
	}
	return writeData(c, http.StatusOK, k)
}

// tokenRequest is the body of POST /api/auth/tokens; every field is optional.
type tokenRequest struct {
	TokenTTL    *int              `json:"token_ttl"`
	Role        string            `json:"role"`
	Scopes      []string          `json:"scopes"`
	RoleVars    map[string]string `json:"role_vars"`
	UserProfile *keys.UserProfile `json:"user_profile"`
}

func (s *Server) mintToken(c *gin.Context, p *tenants.Principal) error {
	var req tokenRequest
	if err := decodeOptionalJSON(c, &req); err != nil {
		return err
	}
	t, err := s.keysOf(c).MintToken(c.Request.Context(), p, keys.TokenInput{TTL: req.TokenTTL, Role: req.Role,
		Scopes: req.Scopes, RoleVars: req.RoleVars, UserProfile: req.UserProfile})
	if err != nil {
		return err
	}
	return writeSecret(c, t)
}

// getJWKS serves the public signing keys, so anyone can verify a token's signature.
func (s *Server) getJWKS(c *gin.Context, _ *tenants.Principal) error {
	set, err := s.keys.JWKS(c.Request.Context())
	if err != nil {
		return err
	}
	c.Header("Cache-Control", "public, max-age=300")
	c.JSON(http.StatusOK, gin.H{"keys": set})
	return nil
}
