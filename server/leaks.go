package server

import (
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/tenantry/tenantry/tenants"
)

// reportRequest is the body of POST /api/credentials/revoke.
type reportRequest struct {
	Credentials []string `json:"credentials"`
}

// reportAnswer is the answer to every report, whatever it held: the reporter learns nothing
// about the values it sent (keys.RevokeReported).
var reportAnswer = struct {
	Status string `json:"status"`
}{"accepted"}

// revokeReported is POST /api/credentials/revoke: anyone reports leaked credentials, and those
// that work are ended at once. No credential is needed; each client address may make
// ReportsPerSecond reports (ReportBurst at once).
func (s *Server) revokeReported(c *gin.Context, _ *tenants.Principal) error {
	if s.reports != nil {
		ok, remaining, reset := s.reports.take(clientKey(c.ClientIP()), time.Now())
		s.reports.setRateHeaders(c, remaining, reset)
		if !ok {
			return s.rateLimited(c, s.reports, "credential_reports", "reporting leaked credentials from this address")
		}
	}
	var req reportRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	report, err := s.keys.RevokeReported(c.Request.Context(), req.Credentials)
	s.metrics.reported(report)
	if err != nil {
		return err
	}
	if report.Revoked+report.TokensRevoked > 0 {
		s.log.InfoContext(c.Request.Context(), "leaked credentials reported and revoked", "request_id", requestID(c),
			"keys_revoked", report.Revoked, "keys_with_tokens_revoked", report.TokensRevoked)
	}
	return writeData(c, http.StatusAccepted, reportAnswer)
}

// rateLimited refuses a request over limit l (429 with Retry-After), counting it under limit.
func (s *Server) rateLimited(c *gin.Context, l *limiters, limit, what string) error {
	wait := l.retryAfter()
	s.metrics.rateLimited.WithLabelValues(limit).Inc()
	c.Header("Retry-After", strconv.Itoa(int(wait.Seconds())))
	return errRateLimited(wait, what)
}
