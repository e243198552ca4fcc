package server

import (
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/tenantry/tenantry/keys"
	"github.com/tenantry/tenantry/tenants"
)

// Context keys set by the middleware.
const (
	ctxRequestID = "tenantry.request_id"
	ctxPrincipal = "tenantry.principal"
	ctxAuthError = "tenantry.auth_error"
	ctxVersion   = "tenantry.version"
	ctxBody      = "tenantry.body"    // the request body, once read by decodeJSON
	ctxRoute     = "tenantry.route"   // the *route serving the request (serve)
	ctxCommand   = "tenantry.command" // the command POST /api runs, for the access log
	ctxUnit      = "tenantry.unit"    // the *tenants.Unit of an Idempotency-Key write (runIdempotent)
	// ctxCredentialValue is the raw bearer value of an authenticated request, which the
	// idempotency records of its writes are encrypted under. It is never logged or stored.
	ctxCredentialValue = "tenantry.credential_value"
)

// validRequestID reports whether a caller's X-Request-Id is one to keep: 1 to 128 of
// [A-Za-z0-9._:-].
func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false // before scanning: a header may be 64 KiB
	}
	for i := range len(id) {
		if c := id[i]; !isAlnum(c) && c != '.' && c != '_' && c != ':' && c != '-' {
			return false
		}
	}
	return true
}

// withRequestID takes the caller's X-Request-Id when it is sane, else makes one, and echoes it.
func withRequestID(c *gin.Context) {
	id := c.GetHeader("X-Request-Id")
	if !validRequestID(id) {
		id = uuid.NewString()
	}
	c.Set(ctxRequestID, id)
	setHeader(c, "X-Request-Id", id)
	c.Next()
}

// setHeader sets a response header whose name is written in Go's canonical form, as
// c.Header would but without canonicalizing the name again on every request.
func setHeader(c *gin.Context, canonical, value string) {
	c.Writer.Header()[canonical] = []string{value}
}

func requestID(c *gin.Context) string { return c.GetString(ctxRequestID) }

// recoverPanics turns a panic into a 500 that reveals nothing, logged with the request id.
func (s *Server) recoverPanics(c *gin.Context) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.logPanic(c, v)
			if !c.Writer.Written() {
				s.writeError(c, errPanic)
			}
			c.Abort()
		}
	}()
	c.Next()
}

type panicError struct{}

func (panicError) Error() string { return "handler panicked" }

var errPanic error = panicError{}

// accessLog writes one line per request. It never logs headers or bodies: the Authorization
// header and key values must not reach the logs.
func (s *Server) accessLog(c *gin.Context) {
	start := time.Now()
	c.Next()
	s.metrics.observe(c, time.Since(start))
	var held [10]slog.Attr // on the stack (all ten with a command and a credential); LogAttrs copies them
	attrs := append(held[:0],
		slog.String("request_id", requestID(c)),
		slog.String("method", c.Request.Method),
		slog.String("route", c.FullPath()),
		slog.String("path", c.Request.URL.Path),
		slog.Int("status", c.Writer.Status()),
		slog.Float64("latency_ms", float64(time.Since(start).Microseconds())/1000),
		slog.String("version", c.GetString(ctxVersion)),
	)
	if name := c.GetString(ctxCommand); name != "" {
		attrs = append(attrs, slog.String("command", name))
	}
	if p, ok := c.Get(ctxPrincipal); ok {
		p := p.(*tenants.Principal)
		attrs = append(attrs, slog.String("credential_kind", string(p.Kind)), slog.String("credential_id", p.KeyID))
	}
	s.log.LogAttrs(c.Request.Context(), slog.LevelInfo, "request", attrs...)
}

// authenticate resolves the credential, if any (bearer, or HTTP Basic client credentials where
// the route takes them: presentedCredential), into a Principal. It refuses nothing
// on its own (requireCredential answers 401, each route's policy 403), except by rate: a
// credential over its limit, and any credential from a client address with too many failed
// authentications, get 429; and by network: a credential used from a client address its
// organization's key policy or its key's allowed_cidrs leave out gets 403 address_not_allowed,
// here, so that no route (the gateway check included) can skip it, and before the rate limit, so
// that a leaked key used from elsewhere does not spend its owner's. The client address is
// c.ClientIP(): the TCP peer, or what X-Forwarded-For says when the peer is a trusted proxy. Public routes need no credential and skip it (GET /metrics's
// Authorization header carries the metrics token), as does a request that matches no route
// (its 404 or 405 costs no lookup).
func (s *Server) authenticate(c *gin.Context) {
	r := s.matchedRoute(c)
	if r == nil || r.policy.public {
		c.Next()
		return
	}
	now := time.Now()
	client := c.ClientIP()
	ip := clientKey(client)
	header := c.GetHeader("Authorization")
	if header != "" && s.authFailures != nil && s.authFailures.exhausted(ip, now) {
		s.metrics.rateLimited.WithLabelValues("auth_failures").Inc()
		c.Header("Retry-After", "1")
		s.writeError(c, errRateLimited(time.Second, "with credentials that failed authentication from this address"))
		return
	}
	value, clientID, basic, err := presentedCredential(c.Request.Header, r.policy)
	var p *tenants.Principal
	if err == nil {
		p, err = s.keys.Authenticate(c.Request.Context(), value)
	}
	if err == nil && basic && clientID != p.KeyID {
		p, err = nil, errClientIDMismatch
	}
	var denied error // the credential's networks leave out the client's address
	if err == nil {
		denied = p.AllowsAddress(client)
	}
	switch {
	case errors.Is(err, keys.ErrMissingToken):
		s.metrics.auth.WithLabelValues("missing").Inc()
		c.Set(ctxAuthError, err)
	case err != nil:
		reason := keys.RefusalReason(err)
		if err == errClientIDMismatch {
			reason = "client_id_mismatch"
		} else if reason == "" {
			reason = "invalid"
		}
		s.metrics.auth.WithLabelValues(reason).Inc()
		if s.authFailures != nil && errors.Is(err, tenants.ErrUnauthenticated) {
			s.authFailures.take(ip, now)
		}
		if basic && errors.Is(err, tenants.ErrUnauthenticated) {
			err = errInvalidClient // one answer for every refusal of client credentials
		}
		c.Set(ctxAuthError, err)
	case denied != nil:
		s.metrics.auth.WithLabelValues("address_not_allowed").Inc()
		c.Set(ctxPrincipal, p) // the 403 is served at the credential's version
		s.writeError(c, denied)
		return
	default:
		s.metrics.authOK.Inc()
		if s.perKey != nil {
			ok, remaining, reset := s.perKey.take(p.KeyID, now)
			s.perKey.setRateHeaders(c, remaining, reset)
			if !ok {
				c.Set(ctxPrincipal, p) // the 429 is served at the credential's version
				s.writeError(c, s.rateLimited(c, s.perKey, "credential", "with this credential"))
				return
			}
		}
		c.Set(ctxPrincipal, p)
		c.Set(ctxCredentialValue, value)
	}
	c.Next()
}

// requireCredential answers 401 on a route that needs a credential when the request has none
// that authenticated, before its version or Idempotency-Key is looked at.
func (s *Server) requireCredential(c *gin.Context) {
	if r := s.matchedRoute(c); r != nil && !r.policy.public {
		if _, ok := c.Get(ctxPrincipal); !ok {
			err, _ := c.Get(ctxAuthError)
			s.writeError(c, err.(error))
			return
		}
	}
	c.Next()
}

// sentHeader is a request header's value and whether it was sent at all: sent empty, it is
// malformed, not absent. Sent more than once, its values are one comma-separated list (RFC
// 9110 §5.3), which no single value matches. Go's server has stripped the spaces and tabs
// around each.
func sentHeader(r *http.Request, name string) (string, bool) {
	values, sent := r.Header[http.CanonicalHeaderKey(name)]
	return strings.Join(values, ", "), sent
}

// The refusals of an Authorization header that is not "Bearer <credential>". They say what is
// wrong with the header, which is no secret; what is wrong with a credential is never said.
var (
	errNotBearer = tenants.Errorf(tenants.ErrUnauthenticated, "invalid_token",
		"The Authorization header names a scheme other than Bearer; use Bearer: 'Authorization: Bearer <key>'.")
	errMalformedAuthorization = tenants.Errorf(tenants.ErrUnauthenticated, "invalid_token",
		"The Authorization header is malformed: send one, as 'Authorization: Bearer <key>', with one space between Bearer and the key.")
)

// The refusals of client credentials sent by HTTP Basic (routes whose policy takes them): one
// message for any that fail, malformed or not, as for a bearer credential.
var (
	errInvalidClient = tenants.Errorf(tenants.ErrUnauthenticated, "invalid_client",
		"The client credentials are invalid: send the key's id as client_id and the key (or a temporary token) as "+
			"client_secret with HTTP Basic, or send the credential as 'Authorization: Bearer <credential>'.")
	// errClientIDMismatch is a valid credential sent with a client_id other than its key's id
	// (for the metrics); its caller sees errInvalidClient.
	errClientIDMismatch = fmt.Errorf("client_id is not the id of the client_secret's key: %w", errInvalidClient)
)

// presentedCredential reads a request's credential: a bearer credential (bearerCredential) or,
// where pol takes it, HTTP Basic (basic is then true): the credential is the client_secret and
// clientID the client_id, each form-urlencoded before base64 as RFC 6749 §2.3.1 has OAuth
// clients send them. A Basic header that is malformed, or whose client_secret is empty, is
// errInvalidClient.
func presentedCredential(h http.Header, pol policy) (value, clientID string, basic bool, err error) {
	if values := h.Values("Authorization"); pol.basic && len(values) == 1 {
		scheme, encoded, _ := strings.Cut(values[0], " ")
		if strings.EqualFold(scheme, "Basic") {
			raw, err := base64.StdEncoding.DecodeString(encoded)
			id, secret, found := strings.Cut(string(raw), ":")
			if err == nil && found {
				id, err = url.QueryUnescape(id)
			}
			if err == nil && found {
				secret, err = url.QueryUnescape(secret)
			}
			if err != nil || !found || secret == "" {
				return "", "", true, errInvalidClient
			}
			return secret, id, true, nil
		}
	}
	value, err = bearerCredential(h)
	return value, "", false, err
}

// isToken reports whether s is an RFC 9110 token, as an auth scheme is.
func isToken(s string) bool {
	for i := range len(s) {
		if c := s[i]; !isAlnum(c) && strings.IndexByte("!#$%&'*+-.^_`|~", c) < 0 {
			return false
		}
	}
	return s != ""
}

// isToken68 reports whether s is an RFC 9110 §11.2 token68, as every credential is.
func isToken68(s string) bool {
	s = strings.TrimRight(s, "=")
	for i := range len(s) {
		if c := s[i]; !isAlnum(c) && strings.IndexByte("-._~+/", c) < 0 {
			return false
		}
	}
	return s != ""
}

func isAlnum(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// bearerCredential reads the credential of a request's Authorization header: exactly one
// header, "Bearer" in any case (RFC 9110 §11.1), one space or tab, and the credential (a
// token68). No header, an empty one or "Bearer" alone is no credential, ""; anything else is
// invalid_token, errNotBearer when the scheme is another. The spaces and tabs HTTP allows
// around a header's value are stripped by Go's HTTP server before this; whitespace that is
// still there was made by unfolding a folded header line (RFC 9112 §5.2), which is malformed.
func bearerCredential(h http.Header) (string, error) {
	values := h.Values("Authorization")
	switch {
	case len(values) == 0:
		return "", nil
	case len(values) > 1:
		return "", errMalformedAuthorization
	case values[0] == "":
		return "", nil
	}
	scheme, value, separated := values[0], "", false
	if i := strings.IndexAny(scheme, " \t"); i >= 0 {
		scheme, value, separated = scheme[:i], scheme[i+1:], true
	}
	switch {
	case !isToken(scheme):
		return "", errMalformedAuthorization
	case !strings.EqualFold(scheme, "Bearer"):
		return "", errNotBearer
	case !separated:
		return "", nil // "Bearer" alone
	case !isToken68(value):
		return "", errMalformedAuthorization
	}
	return value, nil
}
