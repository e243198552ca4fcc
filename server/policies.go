package server

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/tenantry/tenantry/tenants"
)

// policyRoutes are the caller's organization's policies, beside its roles; a partner key
// acts on its owner organization.
func (s *Server) policyRoutes() []route {
	return []route{
		{"GET", "/api/permissions/policies", cmd("list_policies"), forOrgs, s.listPolicies},
		{"POST", "/api/permissions/policies", cmd("create_policy"), forOrgs, s.createPolicy},
		{"GET", "/api/permissions/policies/:id", cmd("get_policy"), forOrgs, s.getPolicy},
		{"PUT", "/api/permissions/policies/:id", cmd("update_policy"), forOrgs, s.updatePolicy},
		{"DELETE", "/api/permissions/policies/:id", cmd("delete_policy"), forOrgs, s.deletePolicy},
	}
}

// policyRequest is the body of POST and PUT /api/permissions/policies[/{id}], as Polytomic's
// clients send it.
type policyRequest struct {
	Name          string `json:"name"`
	PolicyActions []struct {
		Action  string   `json:"action"`
		RoleIDs []string `json:"role_ids"`
	} `json:"policy_actions"`
	// OrganizationID may only name the caller's own organization, where the policy is anyway.
	OrganizationID string `json:"organization_id"`
}

func (r policyRequest) input(p *tenants.Principal) (tenants.PolicyInput, error) {
	if err := ownOrganization(p, r.OrganizationID, "Policies"); err != nil {
		return tenants.PolicyInput{}, err
	}
	in := tenants.PolicyInput{Name: r.Name}
	for _, a := range r.PolicyActions {
		in.PolicyActions = append(in.PolicyActions, tenants.PolicyActionInput{Action: a.Action, RoleIDs: a.RoleIDs})
	}
	return in, nil
}

func (s *Server) listPolicies(c *gin.Context, p *tenants.Principal) error {
	list, err := s.storeOf(c).ListPolicies(c.Request.Context(), p)
	if err != nil {
		return err
	}
	return writeData(c, http.StatusOK, list)
}

func (s *Server) createPolicy(c *gin.Context, p *tenants.Principal) error {
	var req policyRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	in, err := req.input(p)
	if err != nil {
		return err
	}
	pol, err := s.storeOf(c).CreatePolicy(c.Request.Context(), p, in)
	if err != nil {
		return err
	}
	return writeData(c, http.StatusOK, pol)
}

func (s *Server) getPolicy(c *gin.Context, p *tenants.Principal) error {
	pol, err := s.storeOf(c).GetPolicy(c.Request.Context(), p, c.Param("id"))
	if err != nil {
		return err
	}
	return writeData(c, http.StatusOK, pol)
}

func (s *Server) updatePolicy(c *gin.Context, p *tenants.Principal) error {
	var req policyRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	in, err := req.input(p)
	if err != nil {
		return err
	}
	pol, err := s.storeOf(c).UpdatePolicy(c.Request.Context(), p, c.Param("id"), in)
	if err != nil {
		return err
	}
	return writeData(c, http.StatusOK, pol)
}

func (s *Server) deletePolicy(c *gin.Context, p *tenants.Principal) error {
	pol, err := s.storeOf(c).DeletePolicy(c.Request.Context(), p, c.Param("id"))
	if err != nil {
		return err
	}
	return writeData(c, http.StatusOK, pol)
}
