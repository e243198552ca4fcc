package server

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/tenantry/tenantry/keys"
	"github.com/tenantry/tenantry/tenants"
)

// provisionRequest is the body of POST /api/provision.
type provisionRequest struct {
	Organization *organizationRequest `json:"organization"`
	User         *userRequest         `json:"user"`
	Key          *struct{}            `json:"key"` // optional; no options yet
}

// provision creates an organization, its root user and that user's key, all or nothing.
func (s *Server) provision(c *gin.Context, p *tenants.Principal) error {
	var req provisionRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	out, err := s.keysOf(c).Provision(c.Request.Context(), s.storeOf(c), p, req.input(), s.provisionFault)
	if err != nil {
		return err
	}
	return writeSecret(c, out)
}

func (r provisionRequest) input() keys.ProvisionInput {
	var in keys.ProvisionInput
	if r.Organization != nil {
		org := r.Organization.input()
		in.Organization = &org
	}
	if r.User != nil {
		user := r.User.input()
		in.User = &user
	}
	return in
}

// provisionBatchRequest is the body of POST /api/provision/batch.
type provisionBatchRequest struct {
	Items []provisionRequest `json:"items"`
}

// provisionResult is one item's answer in a batch: its status, and what it created (data) or
// the error it would have got alone (error), in the usual shapes.
type provisionResult struct {
	Index  int               `json:"index"`
	Status int               `json:"status"`
	Data   *keys.Provisioned `json:"data,omitempty"`
	Error  *errorBody        `json:"error,omitempty"`
}

// provisionBatch provisions up to keys.MaxBatch customers, each all or nothing on its own.
func (s *Server) provisionBatch(c *gin.Context, p *tenants.Principal) error {
	var req provisionBatchRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	items := make([]keys.ProvisionInput, len(req.Items))
	for i, item := range req.Items {
		items[i] = item.input()
	}
	outcomes, err := s.keysOf(c).ProvisionBatch(c.Request.Context(), s.storeOf(c), p, items, s.provisionFault)
	if err != nil {
		return err
	}
	results := make([]provisionResult, len(outcomes))
	for i, o := range outcomes {
		results[i] = provisionResult{Index: i, Status: http.StatusOK}
		if o.Refusal != nil {
			body := refusalBody(o.Refusal)
			if body.Status == 0 {
				return o.Refusal // a kind with no status: the batch fails as a whole, as a 500
			}
			results[i].Status, results[i].Error = body.Status, &body
		} else {
			results[i].Data = &o.Provisioned
		}
	}
	return writeSecret(c, results)
}
