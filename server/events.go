package server

import (
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/tenantry/tenantry/tenants"
)

// listEvents is GET /api/events: newest first, filtered by type and organization, paged with
// limit and page_token (or Stripe-style starting_after / ending_before event ids).
func (s *Server) listEvents(c *gin.Context, p *tenants.Principal) error {
	f := tenants.EventFilter{Type: tenants.EventType(c.Query("type")), OrganizationID: c.Query("organization_id"),
		StartingAfter: c.Query("starting_after"), EndingBefore: c.Query("ending_before")}
	var errs tenants.FieldErrors
	if f.Type != "" && !tenants.IsEventType(string(f.Type)) {
		errs.Add("type", "is not an event type; GET /api/events_types lists them")
	}
	for name, v := range map[string]string{"organization_id": f.OrganizationID, "starting_after": f.StartingAfter, "ending_before": f.EndingBefore} {
		if _, err := uuid.Parse(v); v != "" && err != nil {
			errs.Add(name, "must be an id")
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
