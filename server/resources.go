package server

import (
	"encoding/json"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/tenantry/tenantry/tenants"
)

// resourceRoutes are the organization resources: connections (and their shares) and datasets.
// Reads are open to asker keys; a partner key is refused (it must mint a key for a user of
// the organization), except on the share routes, which are the partner's.
func (s *Server) resourceRoutes() []route {
	readers := resources.withAskers()
	return []route{
		{"GET", "/api/connections", cmd("list_connections", "limit", "page_token"), readers, s.listConnections},
		{"POST", "/api/connections", cmd("create_connection"), resources, s.createConnection},
		{"GET", "/api/connections/:id", cmd("get_connection"), readers, s.getConnection},
		{"PUT", "/api/connections/:id", cmd("update_connection"), resources, s.updateConnection},
		{"DELETE", "/api/connections/:id", cmd("delete_connection", "force"), resources, s.deleteConnection},
		{"GET", "/api/organizations/:org_id/connections/:connection_id/shared", noCommand, forPartners, s.listConnectionShares},
		{"POST", "/api/organizations/:org_id/connections/:connection_id/shared", noCommand, forPartners, s.shareConnection},
		// The same at the paths Polytomic's clients call, for the partner's owner organization.
		{"GET", "/api/connections/:id/shared", noCommand, forPartners, s.listConnectionShares},
		{"POST", "/api/connections/:id/share", noCommand, forPartners, s.shareConnection},

		{"GET", "/api/datasets", cmd("list_datasets", "limit", "page_token"), readers, s.listDatasets},
		{"POST", "/api/datasets", cmd("create_dataset"), resources, s.createDataset},
		{"GET", "/api/datasets/:id", cmd("get_dataset"), readers, s.getDataset},
		{"PUT", "/api/datasets/:id", cmd("update_dataset"), resources, s.updateDataset},
		{"DELETE", "/api/datasets/:id", cmd("delete_dataset"), resources, s.deleteDataset},
	}
}

// connectionRequest is the body of POST and PUT on connections, with the rest of what
// Polytomic's clients may send.
type connectionRequest struct {
	Name          string          `json:"name"`
	Type          string          `json:"type"` // on PUT, "" or left out: kept as it is
	Configuration json.RawMessage `json:"configuration"`
	Policies      *[]string       `json:"policies"` // null or left out: kept as they are
	// OrganizationID may only name the caller's own organization, where the connection is anyway.
	OrganizationID string `json:"organization_id"`
	// Polytomic's switches for what it does with a connection and Tenantry, which only stores
	// it, does not: each is accepted where it asks for nothing, and refused, named, where it
	// asks for what would not happen, rather than ignored.
	Validate            *bool  `json:"validate"`
	Reconnect           *bool  `json:"reconnect"`
	HealthcheckInterval string `json:"healthcheck_interval"`
	RedirectURL         string `json:"redirect_url"`
}

func (r connectionRequest) input(p *tenants.Principal) (tenants.ConnectionInput, error) {
	if err := ownOrganization(p, r.OrganizationID, "Connections"); err != nil {
		return tenants.ConnectionInput{}, err
	}
	var errs tenants.FieldErrors
	if r.Validate != nil && *r.Validate {
		errs.Add("validate", "is not supported: Tenantry stores a connection's configuration and never tests it against the service; leave it out or send false")
	}
	if r.Reconnect != nil && *r.Reconnect {
		errs.Add("reconnect", "is not supported: Tenantry runs no OAuth flow, so there is nothing to reconnect; leave it out or send false")
	}
	if r.HealthcheckInterval != "" {
		errs.Add("healthcheck_interval", "is not supported: Tenantry does not check connections' health; leave it out")
	}
	if r.RedirectURL != "" {
		errs.Add("redirect_url", "is not supported: Tenantry runs no OAuth flow to redirect from; leave it out")
	}
	return tenants.ConnectionInput{Name: r.Name, Type: r.Type, Configuration: r.Configuration, Policies: r.Policies}, errs.Err()
}

func (s *Server) listConnections(c *gin.Context, p *tenants.Principal) error {
	page, err := pageOf(c)
	if err != nil {
		return err
	}
	list, err := s.storeOf(c).ListConnections(c.Request.Context(), p, page)
	if err != nil {
		return err
	}
	return writeList(c, list)
}

func (s *Server) createConnection(c *gin.Context, p *tenants.Principal) error {
	var req connectionRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	in, err := req.input(p)
	if err != nil {
		return err
	}
	conn, err := s.storeOf(c).CreateConnection(c.Request.Context(), p, in)
	if err != nil {
		return err
	}
	return writeData(c, http.StatusOK, conn)
}

func (s *Server) getConnection(c *gin.Context, p *tenants.Principal) error {
	conn, err := s.storeOf(c).GetConnection(c.Request.Context(), p, c.Param("id"))
	if err != nil {
		return err
	}
	return writeData(c, http.StatusOK, conn)
}

func (s *Server) updateConnection(c *gin.Context, p *tenants.Principal) error {
	var req connectionRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	in, err := req.input(p)
	if err != nil {
		return err
	}
	conn, err := s.storeOf(c).UpdateConnection(c.Request.Context(), p, c.Param("id"), in)
	if err != nil {
		return err
	}
	return writeData(c, http.StatusOK, conn)
}

func (s *Server) deleteConnection(c *gin.Context, p *tenants.Principal) error {
	// Polytomic's force=true also deletes the syncs and models using the connection; Tenantry has
	// none, and leaves datasets without a connection either way, so both values mean the same.
	if _, err := forceOf(c); err != nil {
		return err
	}
	conn, err := s.storeOf(c).DeleteConnection(c.Request.Context(), p, c.Param("id"))
	if err != nil {
		return err
	}
	return writeData(c, http.StatusOK, conn)
}

// shareRequest is the body of POST /api/organizations/{org_id}/connections/{connection_id}/shared.
type shareRequest struct {
	ChildOrganizationID string  `json:"child_organization_id"`
	Name                *string `json:"name"`
}

// shareSource is the connection a share route names: by its organization and id, or, at
// Polytomic's paths (/api/connections/{id}/share and /shared), by id in the organization the
// caller acts in, which for a partner key is its owner organization.
func shareSource(c *gin.Context, p *tenants.Principal) (orgID, connectionID string) {
	if id := c.Param("id"); id != "" {
		return p.OrgID, id
	}
	return c.Param("org_id"), c.Param("connection_id")
}

func (s *Server) shareConnection(c *gin.Context, p *tenants.Principal) error {
	var req shareRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	orgID, connectionID := shareSource(c, p)
	conn, err := s.storeOf(c).ShareConnection(c.Request.Context(), p, orgID, connectionID,
		tenants.ShareInput{ChildOrganizationID: req.ChildOrganizationID, Name: req.Name})
	if err != nil {
		return err
	}
	return writeData(c, http.StatusOK, conn)
}

func (s *Server) listConnectionShares(c *gin.Context, p *tenants.Principal) error {
	page, err := pageOf(c)
	if err != nil {
		return err
	}
	orgID, connectionID := shareSource(c, p)
	list, err := s.storeOf(c).ListConnectionShares(c.Request.Context(), p, orgID, connectionID, page)
	if err != nil {
		return err
	}
	return writeList(c, list)
}

// datasetRequest is the body of POST and PUT on datasets.
type datasetRequest struct {
	Name         string    `json:"name"`
	Slug         string    `json:"slug"`
	Description  string    `json:"description"`
	Source       string    `json:"source"`
	ConnectionID string    `json:"connection_id"` // null or "" for none
	Policies     *[]string `json:"policies"`      // null or left out: kept as they are
}

func (r datasetRequest) input() tenants.DatasetInput {
	return tenants.DatasetInput{Name: r.Name, Slug: r.Slug, Description: r.Description, Source: r.Source, ConnectionID: r.ConnectionID,
		Policies: r.Policies}
}

func (s *Server) listDatasets(c *gin.Context, p *tenants.Principal) error {
	page, err := pageOf(c)
	if err != nil {
		return err
	}
	list, err := s.storeOf(c).ListDatasets(c.Request.Context(), p, page)
	if err != nil {
		return err
	}
	return writeList(c, list)
}

func (s *Server) createDataset(c *gin.Context, p *tenants.Principal) error {
	var req datasetRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	d, err := s.storeOf(c).CreateDataset(c.Request.Context(), p, req.input())
	if err != nil {
		return err
	}
	return writeData(c, http.StatusOK, d)
}

func (s *Server) getDataset(c *gin.Context, p *tenants.Principal) error {
	d, err := s.storeOf(c).GetDataset(c.Request.Context(), p, c.Param("id"))
	if err != nil {
		return err
	}
	return writeData(c, http.StatusOK, d)
}

func (s *Server) updateDataset(c *gin.Context, p *tenants.Principal) error {
	var req datasetRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	d, err := s.storeOf(c).UpdateDataset(c.Request.Context(), p, c.Param("id"), req.input())
	if err != nil {
		return err
	}
	return writeData(c, http.StatusOK, d)
}

func (s *Server) deleteDataset(c *gin.Context, p *tenants.Principal) error {
	d, err := s.storeOf(c).DeleteDataset(c.Request.Context(), p, c.Param("id"))
	if err != nil {
		return err
	}
	return writeData(c, http.StatusOK, d)
}
