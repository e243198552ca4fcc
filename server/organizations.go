package server

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/tenantry/tenantry/tenants"
)

func (s *Server) getIdentity(c *gin.Context, p *tenants.Principal) error {
	return writeData(c, http.StatusOK, tenants.IdentityOf(p))
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
	orgs, err := s.storeOf(c).ListOrganizations(c.Request.Context(), p)
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
	org, err := s.storeOf(c).CreateOrganization(c.Request.Context(), p, req.input())
	if err != nil {
		return err
	}
	return writeData(c, http.StatusOK, org)
}

func (s *Server) getOrganization(c *gin.Context, p *tenants.Principal) error {
	org, err := s.storeOf(c).GetOrganization(c.Request.Context(), p, c.Param("org_id"))
	if err != nil {
		return err
	}
	return writeData(c, http.StatusOK, org)
}

func (s *Server) getCurrentOrganization(c *gin.Context, p *tenants.Principal) error {
	org, err := s.storeOf(c).CurrentOrganization(c.Request.Context(), p)
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
	org, err := s.storeOf(c).UpdateOrganization(c.Request.Context(), p, c.Param("org_id"), req.input())
	if err != nil {
		return err
	}
	return writeData(c, http.StatusOK, org)
}

// patchOrganization is the partial update of versions before 2025-09-18: fields left out keep
// their values, the client secret included.
func (s *Server) patchOrganization(c *gin.Context, p *tenants.Principal) error {
	var org tenants.Organization
	err := s.patch(c, "organizations", func(st *tenants.Store) (string, error) {
		o, err := st.GetOrganization(c.Request.Context(), p, c.Param("org_id"))
		return o.ID, err
	}, func(st *tenants.Store) error {
		var err error
		if org, err = st.GetOrganization(c.Request.Context(), p, c.Param("org_id")); err != nil {
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
		org, err = st.UpdateOrganization(c.Request.Context(), p, org.ID, in)
		return err
	})
	if err != nil {
		return err
	}
	return writeData(c, http.StatusOK, org)
}

// patch runs a partial update (before version 2025-09-18) as one unit of work: find the row,
// lock it, read it again, merge the body, write; two concurrent PATCHes of one row take turns,
// so neither loses the other's fields. find and update are given the store bound to that unit.
func (s *Server) patch(c *gin.Context, table string, find func(st *tenants.Store) (string, error), update func(st *tenants.Store) error) error {
	ctx := c.Request.Context()
	return s.storeOf(c).Work(ctx, func(u *tenants.Unit) error {
		st := s.store.In(u)
		id, err := find(st)
		if err != nil {
			return err
		}
		tx, err := u.Tx(ctx)
		if err != nil {
			return err
		}
		if err := tenants.LockRow(ctx, tx, table, id); err != nil {
			return err
		}
		return update(st)
	})
}

func (s *Server) deleteOrganization(c *gin.Context, p *tenants.Principal) error {
	org, err := s.storeOf(c).DeleteOrganization(c.Request.Context(), p, c.Param("org_id"))
	if err != nil {
		return err
	}
	return writeData(c, http.StatusOK, org)
}

// ownOrganization refuses an organization_id in a body (what Polytomic's clients send) other
// than the caller's, where the objects (what, such as "Webhooks") are made anyway: 404, as for
// any organization the caller cannot reach. "" is the caller's.
func ownOrganization(p *tenants.Principal, orgID, what string) error {
	if orgID != "" && orgID != p.OrgID {
		return tenants.Errorf(tenants.ErrNotFound, "organization_not_found",
			"%s are made in the caller's own organization; organization_id %q is not it.", what, orgID)
	}
	return nil
}
