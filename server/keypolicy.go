package server

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/tenantry/tenantry/tenants"
)

// keyPolicyRequest is the body of PUT .../key_policy: a full replacement.
type keyPolicyRequest struct {
	MaxLifetimeSeconds int64    `json:"max_lifetime_seconds"`
	RequireExpiry      bool     `json:"require_expiry"`
	AllowedCIDRs       []string `json:"allowed_cidrs"`
}

// getKeyPolicy is GET /api/organizations/{org_id}/key_policy (the partner) and GET
// /api/organization/key_policy (the organization's admins).
func (s *Server) getKeyPolicy(org orgLocator) handler {
	return func(c *gin.Context, p *tenants.Principal) error {
		pol, err := s.storeOf(c).KeyPolicy(c.Request.Context(), p, org(c, p))
		if err != nil {
			return err
		}
		return writeData(c, http.StatusOK, pol)
	}
}

// putKeyPolicy is PUT on the same two paths.
func (s *Server) putKeyPolicy(org orgLocator) handler {
	return func(c *gin.Context, p *tenants.Principal) error {
		var req keyPolicyRequest
		if err := decodeJSON(c, &req); err != nil {
			return err
		}
		pol, err := s.storeOf(c).SetKeyPolicy(c.Request.Context(), p, org(c, p), tenants.KeyPolicyInput{
			MaxLifetimeSeconds: req.MaxLifetimeSeconds, RequireExpiry: req.RequireExpiry, AllowedCIDRs: req.AllowedCIDRs,
			CallerAddress: c.ClientIP()})
		if err != nil {
			return err
		}
		return writeData(c, http.StatusOK, pol)
	}
}
