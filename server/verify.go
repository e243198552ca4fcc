package server

import (
	"math"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/tenantry/tenantry/keys"
	"github.com/tenantry/tenantry/tenants"
)

// Verification and introspection: a partner's services ask whether a credential is good.
// Both answer what keys.VerifyCredential and keys.Introspect decide; this file is their HTTP
// shapes, and the rate limit a verification spends.

// verifyRequest is the body of POST /api/keys/verify.
type verifyRequest struct {
	Key     string   `json:"key"`
	Require []string `json:"require"`
}

// verifyKey is POST /api/keys/verify: {"data": {"valid": ...}}.
func (s *Server) verifyKey(c *gin.Context, p *tenants.Principal) error {
	var req verifyRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	v, err := s.keysOf(c).VerifyCredential(c.Request.Context(), p, keys.VerifyInput{Key: req.Key, Require: req.Require}, s.spend())
	if err != nil {
		return err
	}
	s.metrics.verifications.WithLabelValues("verify", v.Outcome()).Inc()
	c.Header("Cache-Control", "no-store") // an answer about a credential is true now only
	return writeData(c, http.StatusOK, v)
}

// introspect is POST /oauth/introspect (RFC 7662): a form with token (and token_type_hint,
// which is a hint only, §2.1: every kind of credential is looked for whatever it says; other
// parameters are ignored), answered in the RFC's shape, without the {"data": ...} envelope.
func (s *Server) introspect(c *gin.Context, p *tenants.Principal) error {
	form, err := decodeForm(c)
	if err != nil {
		return err
	}
	in, err := s.keysOf(c).Introspect(c.Request.Context(), p, form.Get("token"), s.spend())
	if err != nil {
		return err
	}
	s.metrics.verifications.WithLabelValues("introspect", in.Outcome()).Inc()
	c.Header("Cache-Control", "no-store")
	writeJSON(c, http.StatusOK, in)
	return nil
}

// spend is the per-credential rate limit as keys.Spend: a verification spends what a request
// with the verified credential would, from the same bucket. nil when rates are not limited.
func (s *Server) spend() keys.Spend {
	if s.perKey == nil {
		return nil
	}
	return func(keyID string) (keys.RateLimit, bool) {
		ok, remaining, reset := s.perKey.take(keyID, time.Now())
		return keys.RateLimit{Limit: s.perKey.burst, Remaining: remaining, Reset: int(math.Ceil(reset.Seconds()))}, ok
	}
}
