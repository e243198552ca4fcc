package server

import (
	"github.com/gin-gonic/gin"

	"github.com/tenantry/tenantry/keys"
	"github.com/tenantry/tenantry/tenants"
)

// provisionRequest is the body of POST /api/provision.
type provisionRequest struct {
	Organization *organizationRequest `json:"organization"`
	User         *userRequest         `json:"user"`
	Key          *struct{}            `json:"key"` // optional; no options yet
}

// provision creates an organization, its root user and that user's key, all or nothing.
func (s *Server) provision(c *gin.Context, p *tenants.Principal) error {
	var req provisionRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	var errs tenants.FieldErrors
	if req.Organization == nil {
		errs.Add("organization", "is required: the organization to create, as POST /api/organizations takes it")
	}
	if req.User == nil {
		errs.Add("user", "is required: its root user, as POST /api/organizations/{org_id}/users takes it")
	}
	if err := errs.Err(); err != nil {
		return err
	}
	out, err := s.keysOf(c).Provision(c.Request.Context(), s.storeOf(c), p,
		keys.ProvisionInput{Organization: req.Organization.input(), User: req.User.input()}, s.provisionFault)
	if err != nil {
		return err
	}
	return writeSecret(c, out)
}
