package server

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/tenantry/tenantry/migrations"
	"github.com/tenantry/tenantry/tenants"
)

// apiError is a refusal decided by the HTTP layer itself (media type, body size, version,
// routing); domain refusals arrive as *tenants.Error.
type apiError struct {
	Status   int
	Key      string
	Message  string
	Metadata map[string]any
}

func (e *apiError) Error() string { return e.Message }

func newAPIError(status int, key, format string, args ...any) *apiError {
	return &apiError{Status: status, Key: key, Message: fmt.Sprintf(format, args...)}
}

// with adds name: value to the refusal's metadata.
func (e *apiError) with(name string, value any) *apiError {
	if e.Metadata == nil {
		e.Metadata = map[string]any{}
	}
	e.Metadata[name] = value
	return e
}

// errorBody is the one error shape every response uses.
type errorBody struct {
	Status   int            `json:"status"`
	Key      string         `json:"key"`
	Message  string         `json:"message"`
	Metadata map[string]any `json:"metadata"`
}

// statusByKind maps each domain error kind to its HTTP status.
var statusByKind = []struct {
	kind   error
	status int
}{
	{tenants.ErrInvalid, http.StatusBadRequest},
	{tenants.ErrUnauthenticated, http.StatusUnauthorized},
	{tenants.ErrForbidden, http.StatusForbidden},
	{tenants.ErrNotFound, http.StatusNotFound},
	{tenants.ErrConflict, http.StatusConflict},
}

// refusalBody is the body of a domain refusal (a *tenants.Error in err's chain); its Status is
// 0 when the error is none or of no kind statusByKind knows.
func refusalBody(err error) errorBody {
	body := errorBody{Metadata: map[string]any{}}
	var dom *tenants.Error
	if !errors.As(err, &dom) {
		return body
	}
	for _, m := range statusByKind {
		if errors.Is(dom.Kind, m.kind) {
			body.Status = m.status
		}
	}
	body.Key, body.Message = dom.Key, dom.Message
	if dom.Metadata != nil {
		body.Metadata = dom.Metadata
	}
	return body
}

// writeError is the one place an error becomes a response. Anything it does not recognise is a
// 500 that says nothing internal; the full error is logged with the request id.
func (s *Server) writeError(c *gin.Context, err error) {
	body := errorBody{Metadata: map[string]any{}}
	var api *apiError
	var dom *tenants.Error
	switch {
	case errors.As(err, &api):
		body.Status, body.Key, body.Message = api.Status, api.Key, api.Message
		if api.Metadata != nil {
			body.Metadata = api.Metadata
		}
	case errors.As(err, &dom):
		body = refusalBody(dom)
	case migrations.Unavailable(err):
		s.log.WarnContext(c.Request.Context(), "database unavailable", "request_id", requestID(c), "error", err.Error())
		c.Header("Retry-After", "1")
		body.Status, body.Key = http.StatusServiceUnavailable, "database_unavailable"
		body.Message = "The database cannot be reached right now; retry the request in a second. " +
			"Send an Idempotency-Key with writes, so that a retry never applies a change twice."
	case errors.Is(err, migrations.ErrBusy):
		// Nothing was written: the transaction never began, or rolled back.
		c.Header("Retry-After", "1")
		body.Status, body.Key = http.StatusServiceUnavailable, "database_busy"
		body.Message = "The database is busy with other changes; nothing was changed. Retry the request in a second."
	case migrations.StorageFull(err):
		// Nothing was written (the transaction rolled back), and only the operator can free
		// space: no Retry-After, which would have every client retry into the same wall.
		id := requestID(c)
		s.log.ErrorContext(c.Request.Context(), "database storage full: free space on the database's disk", "request_id", id, "error", err.Error())
		body.Status, body.Key = http.StatusInsufficientStorage, "storage_full"
		body.Message = "Nothing was changed: the server's database has run out of disk space. Reads still work; " +
			"writes will work again, without a restart, once the operator frees space on the database's disk. " +
			"Retry the write then; if it persists, tell the operator, quoting request id " + id + "."
		body.Metadata = map[string]any{"request_id": id}
	}
	if body.Status == 0 {
		id := requestID(c)
		s.log.ErrorContext(c.Request.Context(), "internal error", "request_id", id, "error", err.Error())
		body = errorBody{Status: http.StatusInternalServerError, Key: "internal_error",
			Message:  "Something went wrong on our side. If it persists, contact the operator and quote request id " + id + ".",
			Metadata: map[string]any{"request_id": id}}
	}
	if c.Writer.Header().Get(versionHeader) == "" {
		// Refused before the version was negotiated (a 404 or 405, a rate limit, a 401): name
		// the one asked for, when it is one, else the credential's, else the newest.
		v, _ := sentHeader(c.Request, versionHeader)
		if p, ok := c.Get(ctxPrincipal); ok && v == "" {
			v = p.(*tenants.Principal).APIVersion
		}
		if !tenants.IsVersion(v) {
			v = tenants.LatestVersion
		}
		s.setVersion(c, v)
	}
	if body.Status == http.StatusUnauthorized {
		challenge := `Bearer realm="tenantry"`
		if body.Key != "missing_token" && body.Key != "invalid_client" {
			challenge += `, error="invalid_token"`
		}
		challenges := []string{challenge}
		if r := s.matchedRoute(c); r != nil && r.policy.basic {
			// A route that takes client credentials by HTTP Basic says so first (RFC 6749 §5.2).
			challenges = []string{`Basic realm="tenantry", charset="UTF-8"`, challenge}
		}
		c.Writer.Header()["Www-Authenticate"] = challenges
	}
	c.Abort()
	writeJSON(c, body.Status, body)
}

// logPanic records a recovered panic; the response is a plain internal error.
func (s *Server) logPanic(c *gin.Context, v any) {
	s.log.ErrorContext(c.Request.Context(), "panic", "request_id", requestID(c), "panic", fmt.Sprint(v),
		slog.String("route", c.FullPath()))
}
