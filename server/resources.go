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
	var (
		readConnections  = resourceAction(tenants.ConnectionsRead).withAskers()
		writeConnections = resourceAction(tenants.ConnectionsWrite)
		readDatasets     = resourceAction(tenants.DatasetsRead).withAskers()
		writeDatasets    = resourceAction(tenants.DatasetsWrite)
	)
	return []route{
		{"GET", "/api/connections", cmd("list_connections", "limit", "page_token"), readConnections, s.listConnections},
		{"POST", "/api/connections", cmd("create_connection"), writeConnections, s.createConnection},
		{"GET", "/api/connections/:id", cmd("get_connection"), readConnections, s.getConnection},
		{"PUT", "/api/connections/:id", cmd("update_connection"), writeConnections, s.updateConnection},
		{"DELETE", "/api/connections/:id", cmd("delete_connection"), writeConnections, s.deleteConnection},
		{"GET", "/api/organizations/:org_id/connections/:connection_id/shared", noCommand, forPartners, s.listConnectionShares},
		{"POST", "/api/organizations/:org_id/connections/:connection_id/shared", noCommand, forPartners, s.shareConnection},

		{"GET", "/api/datasets", cmd("list_datasets", "limit", "page_token"), readDatasets, s.listDatasets},
		{"POST", "/api/datasets", cmd("create_dataset"), writeDatasets, s.createDataset},
		{"GET", "/api/datasets/:id", cmd("get_dataset"), readDatasets, s.getDataset},
		{"PUT", "/api/datasets/:id", cmd("update_dataset"), writeDatasets, s.updateDataset},
		{"DELETE", "/api/datasets/:id", cmd("delete_dataset"), writeDatasets, s.deleteDataset},
	}
}

// connectionRequest is the body of POST and PUT on connections.
type connectionRequest struct {
	Name          string          `json:"name"`
	Type          string          `json:"type"`
	Configuration json.RawMessage `json:"configuration"`
}

func (r connectionRequest) input() tenants.ConnectionInput {
	return tenants.ConnectionInput{Name: r.Name, Type: r.Type, Configuration: r.Configuration}
}

func (s *Server) listConnections(c *gin.Context, p *tenants.Principal) error {
	page, err := pageOf(c)
	if err != nil {
		return err
	}
	list, err := s.store.ListConnections(c.Request.Context(), p, page)
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
	conn, err := s.store.CreateConnection(c.Request.Context(), p, req.input())
	if err != nil {
		return err
	}
	return writeData(c, http.StatusOK, conn)
}

func (s *Server) getConnection(c *gin.Context, p *tenants.Principal) error {
	conn, err := s.store.GetConnection(c.Request.Context(), p, c.Param("id"))
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
	conn, err := s.store.UpdateConnection(c.Request.Context(), p, c.Param("id"), req.input())
	if err != nil {
		return err
	}
	return writeData(c, http.StatusOK, conn)
}

func (s *Server) deleteConnection(c *gin.Context, p *tenants.Principal) error {
	conn, err := s.store.DeleteConnection(c.Request.Context(), p, c.Param("id"))
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

func (s *Server) shareConnection(c *gin.Context, p *tenants.Principal) error {
	var req shareRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	conn, err := s.store.ShareConnection(c.Request.Context(), p, c.Param("org_id"), c.Param("connection_id"),
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
	list, err := s.store.ListConnectionShares(c.Request.Context(), p, c.Param("org_id"), c.Param("connection_id"), page)
	if err != nil {
		return err
	}
	return writeList(c, list)
}

// datasetRequest is the body of POST and PUT on datasets.
type datasetRequest struct {
	Name         string `json:"name"`
	Slug         string `json:"slug"`
	Description  string `json:"description"`
	Source       string `json:"source"`
	ConnectionID string `json:"connection_id"` // null or "" for none
}

func (r datasetRequest) input() tenants.DatasetInput {
	return tenants.DatasetInput{Name: r.Name, Slug: r.Slug, Description: r.Description, Source: r.Source, ConnectionID: r.ConnectionID}
}

func (s *Server) listDatasets(c *gin.Context, p *tenants.Principal) error {
	page, err := pageOf(c)
	if err != nil {
		return err
	}
	list, err := s.store.ListDatasets(c.Request.Context(), p, page)
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
	d, err := s.store.CreateDataset(c.Request.Context(), p, req.input())
	if err != nil {
		return err
	}
	return writeData(c, http.StatusOK, d)
}

func (s *Server) getDataset(c *gin.Context, p *tenants.Principal) error {
	d, err := s.store.GetDataset(c.Request.Context(), p, c.Param("id"))
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
	d, err := s.store.UpdateDataset(c.Request.Context(), p, c.Param("id"), req.input())
	if err != nil {
		return err
	}
	return writeData(c, http.StatusOK, d)
}

func (s *Server) deleteDataset(c *gin.Context, p *tenants.Principal) error {
	d, err := s.store.DeleteDataset(c.Request.Context(), p, c.Param("id"))
	if err != nil {
		return err
	}
	return writeData(c, http.StatusOK, d)
}
