package server

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/tenantry/tenantry/tenants"
)

// The command endpoint, POST /api with {"command": "...", "params": {...}}, runs the same
// operations as the REST routes by running the REST route itself: the same authentication,
// policy, version, validation and handler, within the request's transaction when it carries
// an Idempotency-Key. A command names a route; params fill its path parameters and query
// parameters, and the rest is the route's JSON body.
type command struct {
	method, path string   // the REST route, with {param} placeholders
	query        []string // params sent as query parameters
}

var commands = map[string]command{
	"get_identity":             {"GET", "/api/me", nil},
	"list_versions":            {"GET", "/api/versions", nil},
	"list_organizations":       {"GET", "/api/organizations", nil},
	"get_organization":         {"GET", "/api/organizations/{id}", nil},
	"create_organization":      {"POST", "/api/organizations", nil},
	"update_organization":      {"PUT", "/api/organizations/{id}", nil},
	"delete_organization":      {"DELETE", "/api/organizations/{id}", nil},
	"get_current_organization": {"GET", "/api/organization", nil},
	"provision":                {"POST", "/api/provision", nil},
	"list_users":               {"GET", "/api/organizations/{organization_id}/users", nil},
	"get_user":                 {"GET", "/api/organizations/{organization_id}/users/{id}", nil},
	"create_user":              {"POST", "/api/organizations/{organization_id}/users", nil},
	"update_user":              {"PUT", "/api/organizations/{organization_id}/users/{id}", nil},
	"delete_user":              {"DELETE", "/api/organizations/{organization_id}/users/{id}", nil},
	"create_user_key":          {"POST", "/api/organizations/{organization_id}/users/{id}/keys", []string{"force"}},
	"list_roles":               {"GET", "/api/permissions/roles", nil},
	"get_role":                 {"GET", "/api/permissions/roles/{id}", nil},
	"create_role":              {"POST", "/api/permissions/roles", nil},
	"update_role":              {"PUT", "/api/permissions/roles/{id}", nil},
	"delete_role":              {"DELETE", "/api/permissions/roles/{id}", nil},
	"list_keys":                {"GET", "/api/keys", []string{"limit", "page_token"}},
	"get_key":                  {"GET", "/api/keys/{id}", nil},
	"create_key":               {"POST", "/api/keys", nil},
	"revoke_key":               {"DELETE", "/api/keys/{id}", nil},
	"rotate_key":               {"POST", "/api/keys/{id}/rotate", nil},
	"create_token":             {"POST", "/api/auth/tokens", nil},
	"list_connections":         {"GET", "/api/connections", []string{"limit", "page_token"}},
	"get_connection":           {"GET", "/api/connections/{id}", nil},
	"create_connection":        {"POST", "/api/connections", nil},
	"update_connection":        {"PUT", "/api/connections/{id}", nil},
	"delete_connection":        {"DELETE", "/api/connections/{id}", nil},
	"list_datasets":            {"GET", "/api/datasets", []string{"limit", "page_token"}},
	"get_dataset":              {"GET", "/api/datasets/{id}", nil},
	"create_dataset":           {"POST", "/api/datasets", nil},
	"update_dataset":           {"PUT", "/api/datasets/{id}", nil},
	"delete_dataset":           {"DELETE", "/api/datasets/{id}", nil},
	"list_events":              {"GET", "/api/events", []string{"type", "organization_id", "starting_after", "ending_before", "limit", "page_token"}},
}

// commandNames lists the commands, sorted, for the unknown_command error and the spec.
func commandNames() []string {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// runCommand is POST /api. The envelope is decoded as strictly as any body; params are not
// decoded here beyond taking out the route's path and query parameters: the rest goes to the
// route as written, in order and repeats included, so the route's own decoder refuses or
// accepts it exactly as the same body sent to the REST route.
func (s *Server) runCommand(c *gin.Context, p *tenants.Principal) error {
	var req struct {
		Command string          `json:"command"`
		Params  json.RawMessage `json:"params"`
	}
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	cmd, ok := commands[req.Command]
	if !ok {
		e := newAPIError(http.StatusBadRequest, "unknown_command",
			"%q is not a command; the commands are %s.", req.Command, strings.Join(commandNames(), ", "))
		e.Metadata = map[string]any{"commands": commandNames()}
		return e
	}
	var members []jsonMember
	switch raw := bytes.TrimSpace(req.Params); {
	case len(raw) == 0 || string(raw) == "null":
	case raw[0] == '{':
		members = objectMembers(raw)
	default:
		e := newAPIError(http.StatusBadRequest, "validation_failed", "The request has invalid fields: params: must be an object.")
		e.Metadata = map[string]any{"params": "must be an object"}
		return e
	}
	// The route's path and query parameters come out of params; the rest is its body.
	taken := map[string]bool{}
	for _, part := range strings.Split(cmd.path, "/") {
		if strings.HasPrefix(part, "{") {
			taken[strings.Trim(part, "{}")] = true
		}
	}
	for _, name := range cmd.query {
		taken[name] = true
	}
	params := map[string]json.RawMessage{}
	var rest []jsonMember
	for _, m := range members {
		if !taken[m.Name] {
			rest = append(rest, m)
			continue
		}
		if _, twice := params[m.Name]; twice {
			e := newAPIError(http.StatusBadRequest, "duplicate_field", "The request body gives field %q more than once.", "params."+m.Name)
			e.Metadata = map[string]any{"field": "params." + m.Name}
			return e
		}
		params[m.Name] = m.Value
	}
	path, err := fillPath(cmd.path, params)
	if err != nil {
		return err
	}
	query := url.Values{}
	for _, name := range cmd.query {
		if raw, ok := params[name]; ok {
			query.Set(name, scalar(raw))
		}
	}
	var body []byte
	if len(rest) > 0 {
		if cmd.method == http.MethodGet || cmd.method == http.MethodDelete {
			e := newAPIError(http.StatusBadRequest, "unknown_field", "Command %s does not take parameter %q.", req.Command, rest[0].Name)
			e.Metadata = map[string]any{"field": "params." + rest[0].Name}
			return e
		}
		body = encodeMembers(rest)
	}
	target := path
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	// The inner request runs inside this one, as the caller this one authenticated (it is
	// neither looked up nor rate-limited again), from the same address.
	inner, err := http.NewRequestWithContext(context.WithValue(c.Request.Context(), innerCommand{}, p), cmd.method, target, bytes.NewReader(body))
	if err != nil {
		return err
	}
	inner.RemoteAddr = c.Request.RemoteAddr
	// The caller's version and request id; not its Idempotency-Key: the outer request already
	// holds it, and the inner one runs inside its transaction.
	for _, h := range []string{versionHeader, "X-Request-Id"} {
		if v := c.GetHeader(h); v != "" {
			inner.Header.Set(h, v)
		}
	}
	if len(body) > 0 {
		inner.Header.Set("Content-Type", "application/json")
	}
	rec := httptest.NewRecorder()
	s.engine.ServeHTTP(rec, inner)
	for _, h := range []string{"Content-Type", "Cache-Control", "WWW-Authenticate", "Retry-After"} {
		if v := rec.Header().Get(h); v != "" {
			c.Header(h, v)
		}
	}
	c.Data(rec.Code, rec.Header().Get("Content-Type"), rec.Body.Bytes())
	return nil
}

// innerCommand carries, in the context of a request the command endpoint runs, the
// principal the command endpoint authenticated.
type innerCommand struct{}

// fillPath puts the path parameters of a command, taken out of params, into its route.
func fillPath(path string, params map[string]json.RawMessage) (string, error) {
	var errs tenants.FieldErrors
	parts := strings.Split(path, "/")
	for i, p := range parts {
		if !strings.HasPrefix(p, "{") {
			continue
		}
		name := strings.Trim(p, "{}")
		raw, ok := params[name]
		v := scalar(raw)
		if !ok || v == "" {
			errs.Add("params."+name, "is required")
			continue
		}
		delete(params, name)
		parts[i] = url.PathEscape(v)
	}
	return strings.Join(parts, "/"), errs.Err()
}

// scalar is a JSON string's value, or any other JSON value as written (true, 42).
func scalar(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}
