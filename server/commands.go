package server

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/tenantry/tenantry/tenants"
)

// The command endpoint, POST /api with {"command": "...", "params": {...}}, runs the same
// operations as the REST routes: a command names a route of the route table (routes), whose
// policy and handler it runs directly (serve), for the caller this request authenticated, at
// its version and, with an Idempotency-Key, within its transaction. params fill the route's
// path and query parameters, and the rest is the route's JSON body, for the route's own
// decoder. The request is logged and counted once, as POST /api.

// command is a route's name in the command endpoint and the query parameters a command's
// params may fill.
type command struct {
	name  string
	query []string
}

// cmd names a route as a command taking the query parameters query.
func cmd(name string, query ...string) command { return command{name, query} }

// noCommand marks a route the command endpoint does not run.
var noCommand command

// commandRequest is the command endpoint's envelope.
type commandRequest struct {
	Command string          `json:"command"`
	Params  json.RawMessage `json:"params"`
}

// runCommand is POST /api. The envelope is decoded as strictly as any body; params are not
// decoded here beyond taking out the route's path and query parameters: the rest goes to the
// route as written, in order and repeats included, so the route's own decoder refuses or
// accepts it exactly as the same body sent to the REST route.
func (s *Server) runCommand(c *gin.Context, p *tenants.Principal) error {
	var req commandRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	r, ok := s.commands[req.Command]
	if !ok {
		return newAPIError(http.StatusBadRequest, "unknown_command",
			"%q is not a command; the commands are %s.", req.Command, strings.Join(s.commandNames, ", ")).
			with("commands", s.commandNames)
	}
	c.Set(ctxCommand, req.Command)
	rc, err := commandContext(c, r, req.Params)
	if err != nil {
		return err
	}
	s.serve(rc, r, p)
	return nil
}

// commandContext is the context r runs in for a command: a copy of c (its writer, principal,
// version and transaction) with r's method, the path and query parameters taken out of
// params, and the rest of params as the body.
func commandContext(c *gin.Context, r *route, params json.RawMessage) (*gin.Context, error) {
	var members []jsonMember
	switch raw := bytes.TrimSpace(params); {
	case len(raw) == 0 || string(raw) == "null":
	case raw[0] == '{':
		members = objectMembers(raw)
	default:
		return nil, tenants.FieldError("params", "must be an object")
	}
	path, query, body, err := splitParams(r, members)
	if err != nil {
		return nil, err
	}
	req := c.Request.Clone(c.Request.Context())
	req.Method, req.URL.RawQuery = r.method, query.Encode()
	req.Body, req.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	req.Header.Del("Content-Type")
	if len(body) > 0 {
		req.Header.Set("Content-Type", "application/json")
	}
	rc := c.Copy() // what the route sets in its context stays its own
	rc.Writer, rc.Request, rc.Params = c.Writer, req, path
	return rc, nil
}

// splitParams takes r's path and query parameters out of a command's params; the rest is r's
// JSON body, which a GET or DELETE route does not take.
func splitParams(r *route, members []jsonMember) (gin.Params, url.Values, []byte, error) {
	inPath := pathParams(r.path)
	taken := map[string]bool{}
	for _, p := range inPath {
		taken[p.command] = true
	}
	for _, name := range r.command.query {
		taken[name] = true
	}
	given := map[string]json.RawMessage{}
	var rest []jsonMember
	for _, m := range members {
		if !taken[m.Name] {
			rest = append(rest, m)
			continue
		}
		if _, twice := given[m.Name]; twice {
			return nil, nil, nil, newAPIError(http.StatusBadRequest, "duplicate_field",
				"The request body gives field %q more than once.", "params."+m.Name).with("field", "params."+m.Name)
		}
		given[m.Name] = m.Value
	}
	var errs tenants.FieldErrors
	var path gin.Params
	for _, p := range inPath {
		if v := scalar(given[p.command]); v != "" {
			path = append(path, gin.Param{Key: p.route, Value: v})
		} else {
			errs.Add("params."+p.command, "is required")
		}
	}
	if err := errs.Err(); err != nil {
		return nil, nil, nil, err
	}
	query := url.Values{}
	for _, name := range r.command.query {
		if raw, ok := given[name]; ok {
			query.Set(name, scalar(raw))
		}
	}
	if len(rest) == 0 {
		return path, query, nil, nil
	}
	if r.method == http.MethodGet || r.method == http.MethodDelete {
		return nil, nil, nil, newAPIError(http.StatusBadRequest, "unknown_field",
			"Command %s does not take parameter %q.", r.command.name, rest[0].Name).with("field", "params."+rest[0].Name)
	}
	return path, query, encodeMembers(rest), nil
}

// pathParam is a path parameter by its name in the route and in a command's params.
type pathParam struct{ route, command string }

// pathParams lists the path parameters of a route. A command calls the organization a route
// is about (/api/organizations/{org_id}) id, as it calls any route's own object, and the one
// a route's objects live in (/api/organizations/{org_id}/users) organization_id.
func pathParams(path string) []pathParam {
	parts := strings.Split(path, "/")
	var out []pathParam
	for i, part := range parts {
		name, ok := strings.CutPrefix(part, ":")
		switch {
		case !ok:
			continue
		case name == "org_id" && i == len(parts)-1:
			out = append(out, pathParam{name, "id"})
		case name == "org_id":
			out = append(out, pathParam{name, "organization_id"})
		default:
			out = append(out, pathParam{name, name})
		}
	}
	return out
}

// scalar is a JSON string's value, or any other JSON value as written (true, 42).
func scalar(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}
