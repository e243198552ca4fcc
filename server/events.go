package server

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/tenantry/tenantry/tenants"
)

// listEvents is GET /api/events: newest first, filtered by type and organization, paged with
// limit and page_token. starting_after and ending_before are Stripe-style event ids (cursors)
// or, as Polytomic's clients send them, RFC 3339 times (the events created strictly after, or
// before, that time).
func (s *Server) listEvents(c *gin.Context, p *tenants.Principal) error {
	f := tenants.EventFilter{Type: tenants.EventType(c.Query("type")), OrganizationID: c.Query("organization_id")}
	var errs tenants.FieldErrors
	if f.Type != "" && !tenants.IsEventType(string(f.Type)) {
		errs.Add("type", "is not an event type; GET /api/events_types lists them")
	}
	if _, err := uuid.Parse(f.OrganizationID); f.OrganizationID != "" && err != nil {
		errs.Add("organization_id", "must be an id")
	}
	for _, b := range []struct {
		name string
		id   *string
		at   *time.Time
	}{{"starting_after", &f.StartingAfter, &f.CreatedAfter}, {"ending_before", &f.EndingBefore, &f.CreatedBefore}} {
		v := c.Query(b.name)
		if _, err := uuid.Parse(v); v == "" || err == nil {
			*b.id = v
		} else if at, err := time.Parse(time.RFC3339, v); err == nil {
			*b.at = at
		} else {
			errs.Add(b.name, "must be an event id or an RFC 3339 time such as 2026-12-01T00:00:00Z")
		}
	}
	page := tenants.ReadPage(&errs, c.Query("limit"), c.Query("page_token"), 10)
	f.Limit = page.Limit
	if page.After != "" {
		f.StartingAfter = page.After // a page token is where the last page ended
	}
	if err := errs.Err(); err != nil {
		return err
	}
	events, err := s.storeOf(c).ListEvents(c.Request.Context(), p, f)
	if err != nil {
		return err
	}
	return writeList(c, events)
}

// listEventTypes is GET /api/events_types: the type names, as Polytomic lists them.
func (s *Server) listEventTypes(c *gin.Context, p *tenants.Principal) error {
	types, err := tenants.ListEventTypes(p)
	if err != nil {
		return err
	}
	return writeData(c, http.StatusOK, types)
}
