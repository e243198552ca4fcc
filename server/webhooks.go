package server

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/tenantry/tenantry/tenants"
)

// webhookRoutes are the caller's organization's webhooks; a partner key acts on its owner
// organization. Delivery itself is the worker's (package server/delivery).
func (s *Server) webhookRoutes() []route {
	return []route{
		{"GET", "/api/webhooks", noCommand, forOrgs, s.listWebhooks},
		{"POST", "/api/webhooks", noCommand, forOrgs, s.createWebhook},
		{"GET", "/api/webhooks/:id", noCommand, forOrgs, s.getWebhook},
		{"PUT", "/api/webhooks/:id", noCommand, forOrgs, s.updateWebhook},
		{"DELETE", "/api/webhooks/:id", noCommand, forOrgs, s.deleteWebhook},
		{"POST", "/api/webhooks/:id/disable", noCommand, forOrgs, s.setWebhookEnabled(false)},
		{"POST", "/api/webhooks/:id/enable", noCommand, forOrgs, s.setWebhookEnabled(true)},
		{"GET", "/api/webhooks/:id/deliveries", noCommand, forOrgs, s.listWebhookDeliveries},
	}
}

// webhookRequest is the body of POST and PUT on webhooks. Secret is write-only.
type webhookRequest struct {
	Endpoint   string   `json:"endpoint"`
	Secret     *string  `json:"secret"`
	EventTypes []string `json:"event_types"`
	// OrganizationID is what Polytomic's clients send; it may only name the caller's own
	// organization, where the webhook is made anyway.
	OrganizationID string `json:"organization_id"`
}

func (r webhookRequest) input() tenants.WebhookInput {
	return tenants.WebhookInput{Endpoint: r.Endpoint, Secret: r.Secret, EventTypes: r.EventTypes}
}

// checkEndpoint is the operator's policy on webhook endpoints (scheme, resolution, private
// addresses), applied when a webhook is created or changed.
func (s *Server) checkEndpoint() tenants.EndpointCheck {
	return s.cfg.Webhooks.Guard().CheckEndpoint
}

func (s *Server) listWebhooks(c *gin.Context, p *tenants.Principal) error {
	page, err := pageOf(c)
	if err != nil {
		return err
	}
	list, err := s.storeOf(c).ListWebhooks(c.Request.Context(), p, page)
	if err != nil {
		return err
	}
	return writeList(c, list)
}

func (s *Server) createWebhook(c *gin.Context, p *tenants.Principal) error {
	var req webhookRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if err := ownOrganization(p, req.OrganizationID, "Webhooks"); err != nil {
		return err
	}
	hook, err := s.storeOf(c).CreateWebhook(c.Request.Context(), p, req.input(), s.checkEndpoint())
	if err != nil {
		return err
	}
	return writeSecret(c, hook) // the secret, shown this once
}

func (s *Server) getWebhook(c *gin.Context, p *tenants.Principal) error {
	hook, err := s.storeOf(c).GetWebhook(c.Request.Context(), p, c.Param("id"))
	if err != nil {
		return err
	}
	return writeData(c, http.StatusOK, hook)
}

func (s *Server) updateWebhook(c *gin.Context, p *tenants.Principal) error {
	var req webhookRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if err := ownOrganization(p, req.OrganizationID, "Webhooks"); err != nil {
		return err
	}
	hook, err := s.storeOf(c).UpdateWebhook(c.Request.Context(), p, c.Param("id"), req.input(), s.checkEndpoint())
	if err != nil {
		return err
	}
	return writeData(c, http.StatusOK, hook)
}

func (s *Server) deleteWebhook(c *gin.Context, p *tenants.Principal) error {
	hook, err := s.storeOf(c).DeleteWebhook(c.Request.Context(), p, c.Param("id"))
	if err != nil {
		return err
	}
	return writeData(c, http.StatusOK, hook)
}

func (s *Server) setWebhookEnabled(enabled bool) handler {
	return func(c *gin.Context, p *tenants.Principal) error {
		hook, err := s.storeOf(c).SetWebhookEnabled(c.Request.Context(), p, c.Param("id"), enabled)
		if err != nil {
			return err
		}
		return writeData(c, http.StatusOK, hook)
	}
}

func (s *Server) listWebhookDeliveries(c *gin.Context, p *tenants.Principal) error {
	page, err := pageOf(c)
	if err != nil {
		return err
	}
	list, err := s.storeOf(c).ListWebhookDeliveries(c.Request.Context(), p, c.Param("id"), page)
	if err != nil {
		return err
	}
	return writeList(c, list)
}
