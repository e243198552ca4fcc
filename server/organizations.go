package server

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/tenantry/tenantry/tenants"
)

func (s *Server) getIdentity(c *gin.Context, p *tenants.Principal) error {
	id, err := s.store.Identity(c.Request.Context(), p)
	if err != nil {
		return err
	}
	return writeData(c, http.StatusOK, id)
}

// organizationRequest is the body of POST and PUT /api/organizations[/{id}].
type organizationRequest struct {
	Name         string `json:"name"`
	Issuer       string `json:"issuer"`
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	SSODomain    string `json:"sso_domain"`
	SSOOrgID     string `json:"sso_org_id"`
	APIVersion   string `json:"api_version"`
}

func (r organizationRequest) input() tenants.OrganizationInput {
	return tenants.OrganizationInput{Name: r.Name, Issuer: r.Issuer, ClientID: r.ClientID,
		ClientSecret: r.ClientSecret, SSODomain: r.SSODomain, SSOOrgID: r.SSOOrgID, APIVersion: r.APIVersion}
}

func (s *Server) listOrganizations(c *gin.Context, p *tenants.Principal) error {
	orgs, err := s.store.ListOrganizations(c.Request.Context(), p)
	if err != nil {
		return err
	}
	return writeData(c, http.StatusOK, orgs)
}

func (s *Server) createOrganization(c *gin.Context, p *tenants.Principal) error {
	var req organizationRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	org, err := s.store.CreateOrganization(c.Request.Context(), p, req.input())
	if err != nil {
		return err
	}
	return writeData(c, http.StatusOK, org)
}

func (s *Server) getOrganization(c *gin.Context, p *tenants.Principal) error {
	org, err := s.store.GetOrganization(c.Request.Context(), p, c.Param("org_id"))
	if err != nil {
		return err
	}
	return writeData(c, http.StatusOK, org)
}

func (s *Server) getCurrentOrganization(c *gin.Context, p *tenants.Principal) error {
	org, err := s.store.CurrentOrganization(c.Request.Context(), p)
	if err != nil {
		return err
	}
	return writeData(c, http.StatusOK, org)
}

func (s *Server) updateOrganization(c *gin.Context, p *tenants.Principal) error {
	var req organizationRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	org, err := s.store.UpdateOrganization(c.Request.Context(), p, c.Param("org_id"), req.input())
	if err != nil {
		return err
	}
	return writeData(c, http.StatusOK, org)
}

// patchOrganization is the partial update of versions before 2025-09-18: fields left out keep
// their values, the client secret included.
func (s *Server) patchOrganization(c *gin.Context, p *tenants.Principal) error {
	ctx := c.Request.Context()
	org, err := s.store.GetOrganization(ctx, p, c.Param("org_id"))
	if err != nil {
		return err
	}
	req := organizationRequest{Name: org.Name, Issuer: org.Issuer, ClientID: org.ClientID, SSODomain: org.SSODomain,
		SSOOrgID: org.SSOOrgID, APIVersion: org.APIVersion}
	given, err := decodePatch(c, &req)
	if err != nil {
		return err
	}
	in := req.input()
	in.KeepClientSecret = !given["client_secret"]
	org, err = s.store.UpdateOrganization(ctx, p, org.ID, in)
	if err != nil {
		return err
	}
	return writeData(c, http.StatusOK, org)
}

func (s *Server) deleteOrganization(c *gin.Context, p *tenants.Principal) error {
	org, err := s.store.DeleteOrganization(c.Request.Context(), p, c.Param("org_id"))
	if err != nil {
		return err
	}
	return writeData(c, http.StatusOK, org)
}
