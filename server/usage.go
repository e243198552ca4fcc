package server

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/tenantry/tenantry/keys"
	"github.com/tenantry/tenantry/tenants"
)

// usageQuery reads the from and to query parameters of a usage route (RFC 3339 times; absent:
// the domain's default), adding what is wrong with them to errs.
func usageQuery(c *gin.Context, errs *tenants.FieldErrors) keys.UsageQuery {
	param := func(name string) *string {
		if v, ok := c.GetQuery(name); ok {
			return &v
		}
		return nil
	}
	return keys.UsageQuery{From: readTime(errs, "from", param("from")), To: readTime(errs, "to", param("to"))}
}

// getKeyUsage is GET /api/keys/{id}/usage: the key's requests by hour.
func (s *Server) getKeyUsage(c *gin.Context, p *tenants.Principal) error {
	var errs tenants.FieldErrors
	q := usageQuery(c, &errs)
	if err := errs.Err(); err != nil {
		return err
	}
	hours, err := s.keysOf(c).KeyUsage(c.Request.Context(), p, c.Param("id"), q)
	if err != nil {
		return err
	}
	return writeData(c, http.StatusOK, hours)
}

// getOrganizationUsage is GET /api/organizations/{org_id}/usage: a page of the organization's
// keys with their requests, in total and by day.
func (s *Server) getOrganizationUsage(c *gin.Context, p *tenants.Principal) error {
	var errs tenants.FieldErrors
	q := usageQuery(c, &errs)
	page := tenants.ReadPage(&errs, c.Query("limit"), c.Query("page_token"), tenants.DefaultPageLimit)
	if err := errs.Err(); err != nil {
		return err
	}
	list, err := s.keysOf(c).OrganizationUsage(c.Request.Context(), p, c.Param("org_id"), q, page)
	if err != nil {
		return err
	}
	return writeList(c, list)
}
