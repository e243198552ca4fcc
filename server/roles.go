package server

import (
	"context"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/tenantry/tenantry/tenants"
)

// roleRequest is the body of POST and PUT /api/permissions/roles[/{id}].
type roleRequest struct {
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

func (r roleRequest) input() tenants.RoleInput {
	return tenants.RoleInput{Name: r.Name, Actions: r.Actions}
}

func (s *Server) listRoles(c *gin.Context, p *tenants.Principal) error {
	roles, err := s.store.ListRoles(c.Request.Context(), p)
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
	r, err := s.store.CreateRole(c.Request.Context(), p, req.input())
	if err != nil {
		return err
	}
	return writeData(c, http.StatusOK, r)
}

func (s *Server) getRole(c *gin.Context, p *tenants.Principal) error {
	r, err := s.store.GetRole(c.Request.Context(), p, c.Param("id"))
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
	r, err := s.store.UpdateRole(c.Request.Context(), p, c.Param("id"), req.input())
	if err != nil {
		return err
	}
	return writeData(c, http.StatusOK, r)
}

// patchRole is the partial update of versions before 2025-09-18.
func (s *Server) patchRole(c *gin.Context, p *tenants.Principal) error {
	var r tenants.Role
	err := s.patch(c, "roles", func(ctx context.Context) (string, error) {
		r, err := s.store.GetRole(ctx, p, c.Param("id"))
		return r.ID, err
	}, func(ctx context.Context) error {
		var err error
		if r, err = s.store.GetRole(ctx, p, c.Param("id")); err != nil {
			return err
		}
		req := roleRequest{Name: r.Name, Actions: make([]string, len(r.Actions))}
		for i, a := range r.Actions {
			req.Actions[i] = string(a)
		}
		if _, err := decodePatch(c, &req); err != nil {
			return err
		}
		r, err = s.store.UpdateRole(ctx, p, r.ID, req.input())
		return err
	})
	if err != nil {
		return err
	}
	return writeData(c, http.StatusOK, r)
}

func (s *Server) deleteRole(c *gin.Context, p *tenants.Principal) error {
	r, err := s.store.DeleteRole(c.Request.Context(), p, c.Param("id"))
	if err != nil {
		return err
	}
	return writeData(c, http.StatusOK, r)
}
