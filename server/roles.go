package server

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/tenantry/tenantry/tenants"
)

// roleRequest is the body of POST and PUT /api/permissions/roles[/{id}]: as Polytomic's
// clients send it (a name, and maybe organization_id), with Tenantry's actions.
type roleRequest struct {
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
	// OrganizationID may only name the caller's own organization, where the role is anyway.
	OrganizationID string `json:"organization_id"`
}

func (r roleRequest) input(p *tenants.Principal) (tenants.RoleInput, error) {
	if err := ownOrganization(p, r.OrganizationID, "Roles"); err != nil {
		return tenants.RoleInput{}, err
	}
	return tenants.RoleInput{Name: r.Name, Actions: r.Actions}, nil
}

func (s *Server) listRoles(c *gin.Context, p *tenants.Principal) error {
	roles, err := s.storeOf(c).ListRoles(c.Request.Context(), p)
	if err != nil {
		return err
	}
	return writeData(c, http.StatusOK, roles)
}

func (s *Server) createRole(c *gin.Context, p *tenants.Principal) error {
	var req roleRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	in, err := req.input(p)
	if err != nil {
		return err
	}
	r, err := s.storeOf(c).CreateRole(c.Request.Context(), p, in)
	if err != nil {
		return err
	}
	return writeData(c, http.StatusOK, r)
}

func (s *Server) getRole(c *gin.Context, p *tenants.Principal) error {
	r, err := s.storeOf(c).GetRole(c.Request.Context(), p, c.Param("id"))
	if err != nil {
		return err
	}
	return writeData(c, http.StatusOK, r)
}

func (s *Server) updateRole(c *gin.Context, p *tenants.Principal) error {
	var req roleRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	in, err := req.input(p)
	if err != nil {
		return err
	}
	r, err := s.storeOf(c).UpdateRole(c.Request.Context(), p, c.Param("id"), in)
	if err != nil {
		return err
	}
	return writeData(c, http.StatusOK, r)
}

// patchRole is the partial update of versions before 2025-09-18.
func (s *Server) patchRole(c *gin.Context, p *tenants.Principal) error {
	var r tenants.Role
	err := s.patch(c, "roles", func(st *tenants.Store) (string, error) {
		r, err := st.GetRole(c.Request.Context(), p, c.Param("id"))
		return r.ID, err
	}, func(st *tenants.Store) error {
		var err error
		if r, err = st.GetRole(c.Request.Context(), p, c.Param("id")); err != nil {
			return err
		}
		req := roleRequest{Name: r.Name, Actions: make([]string, len(r.Actions))}
		for i, a := range r.Actions {
			req.Actions[i] = string(a)
		}
		if _, err := decodePatch(c, &req); err != nil {
			return err
		}
		in, err := req.input(p)
		if err != nil {
			return err
		}
		r, err = st.UpdateRole(c.Request.Context(), p, r.ID, in)
		return err
	})
	if err != nil {
		return err
	}
	return writeData(c, http.StatusOK, r)
}

func (s *Server) deleteRole(c *gin.Context, p *tenants.Principal) error {
	r, err := s.storeOf(c).DeleteRole(c.Request.Context(), p, c.Param("id"))
	if err != nil {
		return err
	}
	return writeData(c, http.StatusOK, r)
}
