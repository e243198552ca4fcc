package server

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/tenantry/tenantry/keys"
	"github.com/tenantry/tenantry/tenants"
)

// orgLocator says which organization a user route works on: the one named in the path
// (/api/organizations/{org_id}/users) or the caller's own (/api/organization/users).
type orgLocator func(c *gin.Context, p *tenants.Principal) string

func orgFromPath(c *gin.Context, _ *tenants.Principal) string { return c.Param("org_id") }
func orgOfCaller(_ *gin.Context, p *tenants.Principal) string { return p.OrgID }

// userRequest is the body of POST and PUT on users.
type userRequest struct {
	Email   string   `json:"email"`
	Role    string   `json:"role"`
	RoleIDs []string `json:"role_ids"`
}

func (r userRequest) input() tenants.UserInput {
	return tenants.UserInput{Email: r.Email, Role: r.Role, RoleIDs: r.RoleIDs}
}

func (s *Server) listUsers(org orgLocator) handler {
	return func(c *gin.Context, p *tenants.Principal) error {
		users, err := s.storeOf(c).ListUsers(c.Request.Context(), p, org(c, p))
		if err != nil {
			return err
		}
		return writeData(c, http.StatusOK, users)
	}
}

func (s *Server) createUser(org orgLocator) handler {
	return func(c *gin.Context, p *tenants.Principal) error {
		var req userRequest
		if err := decodeJSON(c, &req); err != nil {
			return err
		}
		u, err := s.storeOf(c).CreateUser(c.Request.Context(), p, org(c, p), req.input())
		if err != nil {
			return err
		}
		return writeData(c, http.StatusOK, u)
	}
}

func (s *Server) getUser(org orgLocator) handler {
	return func(c *gin.Context, p *tenants.Principal) error {
		u, err := s.storeOf(c).GetUser(c.Request.Context(), p, org(c, p), c.Param("id"))
		if err != nil {
			return err
		}
		return writeData(c, http.StatusOK, u)
	}
}

func (s *Server) updateUser(org orgLocator) handler {
	return func(c *gin.Context, p *tenants.Principal) error {
		var req userRequest
		if err := decodeJSON(c, &req); err != nil {
			return err
		}
		u, err := s.storeOf(c).UpdateUser(c.Request.Context(), p, org(c, p), c.Param("id"), req.input())
		if err != nil {
			return err
		}
		return writeData(c, http.StatusOK, u)
	}
}

// patchUser is the partial update of versions before 2025-09-18: fields left out keep their
// values; giving role replaces role_ids and the other way round.
func (s *Server) patchUser(org orgLocator) handler { // the current-organization routes came with PUT only
	return func(c *gin.Context, p *tenants.Principal) error {
		var u tenants.User
		err := s.patch(c, "users", func(st *tenants.Store) (string, error) {
			u, err := st.GetUser(c.Request.Context(), p, org(c, p), c.Param("id"))
			return u.ID, err
		}, func(st *tenants.Store) error {
			var err error
			if u, err = st.GetUser(c.Request.Context(), p, org(c, p), c.Param("id")); err != nil {
				return err
			}
			req := userRequest{Email: u.Email, RoleIDs: u.RoleIDs}
			given, err := decodePatch(c, &req)
			if err != nil {
				return err
			}
			if given["role"] && !given["role_ids"] {
				req.RoleIDs = nil
			}
			u, err = st.UpdateUser(c.Request.Context(), p, org(c, p), u.ID, req.input())
			return err
		})
		if err != nil {
			return err
		}
		return writeData(c, http.StatusOK, u)
	}
}

func (s *Server) deleteUser(org orgLocator) handler {
	return func(c *gin.Context, p *tenants.Principal) error {
		u, err := s.storeOf(c).DeleteUser(c.Request.Context(), p, org(c, p), c.Param("id"))
		if err != nil {
			return err
		}
		return writeData(c, http.StatusOK, u)
	}
}

// apiKeyValue is the one response that carries a key's value.
type apiKeyValue struct {
	Value string `json:"value"`
}

func (s *Server) mintUserKey(c *gin.Context, p *tenants.Principal) error {
	force, err := forceOf(c)
	if err != nil {
		return err
	}
	// Polytomic's endpoint takes no body; Tenantry's optional one sets what a key policy may ask for.
	var req struct {
		ExpiresAt    *string  `json:"expires_at"`
		AllowedCIDRs []string `json:"allowed_cidrs"`
	}
	if err := decodeOptionalJSON(c, &req); err != nil {
		return err
	}
	exp, err := parseTime("expires_at", req.ExpiresAt)
	if err != nil {
		return err
	}
	value, err := s.keysOf(c).MintUserKey(c.Request.Context(), p, c.Param("org_id"), c.Param("id"),
		keys.MintInput{Force: force, ExpiresAt: exp, AllowedCIDRs: req.AllowedCIDRs})
	if err != nil {
		return err
	}
	c.Header("Cache-Control", "no-store")
	return writeData(c, http.StatusOK, apiKeyValue{Value: value})
}
