// Package server is everything HTTP: the Gin engine, its middleware, one file per resource and
// one error writer. Handlers decode a request, call one domain function and write the result.
package server

import (
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/jmoiron/sqlx"

	"github.com/tenantry/tenantry/keys"
	"github.com/tenantry/tenantry/tenants"
)

func init() { gin.SetMode(gin.ReleaseMode) }

// Server serves Tenantry's HTTP API.
type Server struct {
	store  *tenants.Store
	keys   *keys.Service
	log    *slog.Logger
	engine *gin.Engine
}

// New builds the HTTP API on db, logging to log.
func New(db *sqlx.DB, log *slog.Logger) *Server {
	s := &Server{store: tenants.NewStore(db), keys: keys.NewService(db), log: log}
	e := gin.New()
	e.HandleMethodNotAllowed = true
	e.RedirectTrailingSlash = false
	e.RedirectFixedPath = false
	e.Use(withRequestID, s.recoverPanics, s.accessLog, limitBody, s.negotiateVersion, s.authenticate)
	e.NoRoute(func(c *gin.Context) {
		s.writeError(c, newAPIError(http.StatusNotFound, "route_not_found",
			"There is no endpoint %s %s.", c.Request.Method, c.Request.URL.Path))
	})
	e.NoMethod(func(c *gin.Context) {
		s.writeError(c, newAPIError(http.StatusMethodNotAllowed, "method_not_allowed",
			"%s is not allowed on %s.", c.Request.Method, c.Request.URL.Path))
	})
	for _, r := range s.routes() {
		e.Handle(r.method, r.path, s.handle(r.guard, r.handler))
	}
	s.engine = e
	return s
}

// ServeHTTP makes Server an http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.engine.ServeHTTP(w, r) }

// Route is one endpoint: its method and Gin path template.
type Route struct{ Method, Path string }

// Routes lists every endpoint the server serves, for tests that compare it with openapi.yaml.
func (s *Server) Routes() []Route {
	var out []Route
	for _, r := range s.engine.Routes() {
		out = append(out, Route{r.Method, r.Path})
	}
	return out
}

// A handler serves one authorized request and returns an error for writeError. It passes
// c.Request.Context(), never c, to the domain: Gin recycles c after the response, while
// database/sql may still watch the context it was given.
type handler func(c *gin.Context, p *tenants.Principal) error

// A guard decides whether a principal may call a route at all (403 when not); which objects it
// may touch is decided by the domain.
type guard func(p *tenants.Principal) error

type route struct {
	method, path string
	guard        guard
	handler      handler
}

// routes is the whole access policy in one table.
func (s *Server) routes() []route {
	return []route{
		{"GET", "/api/me", anyCredential, s.getIdentity},

		{"GET", "/api/organizations", tenants.RequirePartner, s.listOrganizations},
		{"POST", "/api/organizations", tenants.RequirePartner, s.createOrganization},
		{"GET", "/api/organizations/:org_id", tenants.RequirePartner, s.getOrganization},
		{"PUT", "/api/organizations/:org_id", tenants.RequirePartner, s.updateOrganization},
		{"DELETE", "/api/organizations/:org_id", tenants.RequirePartner, s.deleteOrganization},
		{"GET", "/api/organization", anyCredential, s.getCurrentOrganization},

		{"GET", "/api/organizations/:org_id/users", tenants.RequirePartner, s.listUsers(orgFromPath)},
		{"POST", "/api/organizations/:org_id/users", tenants.RequirePartner, s.createUser(orgFromPath)},
		{"GET", "/api/organizations/:org_id/users/:id", tenants.RequirePartner, s.getUser(orgFromPath)},
		{"PUT", "/api/organizations/:org_id/users/:id", tenants.RequirePartner, s.updateUser(orgFromPath)},
		{"DELETE", "/api/organizations/:org_id/users/:id", tenants.RequirePartner, s.deleteUser(orgFromPath)},
		{"POST", "/api/organizations/:org_id/users/:id/keys", tenants.RequirePartner, s.mintUserKey},

		{"GET", "/api/organization/users", orgAdmin, s.listUsers(orgOfCaller)},
		{"POST", "/api/organization/users", orgAdmin, s.createUser(orgOfCaller)},
		{"GET", "/api/organization/users/:id", orgAdmin, s.getUser(orgOfCaller)},
		{"PUT", "/api/organization/users/:id", orgAdmin, s.updateUser(orgOfCaller)},
		{"DELETE", "/api/organization/users/:id", orgAdmin, s.deleteUser(orgOfCaller)},
	}
}

func anyCredential(*tenants.Principal) error { return nil }

// orgAdmin admits a partner key (its own organization is its owner organization) and the key
// of a user holding the Admin role.
func orgAdmin(p *tenants.Principal) error {
	if p.IsPartner() || p.IsAdmin {
		return nil
	}
	return tenants.Errorf(tenants.ErrForbidden, "admin_required",
		"Managing users requires a partner key or the key of an admin user.")
}

// handle authenticates (401), guards (403) and runs h, sending any error to writeError.
func (s *Server) handle(g guard, h handler) gin.HandlerFunc {
	return func(c *gin.Context) {
		v, ok := c.Get(ctxPrincipal)
		if !ok {
			err, _ := c.Get(ctxAuthError)
			s.writeError(c, err.(error))
			return
		}
		p := v.(*tenants.Principal)
		if err := g(p); err != nil {
			s.writeError(c, err)
			return
		}
		if err := h(c, p); err != nil {
			s.writeError(c, err)
		}
	}
}

// envelope is every success body: {"data": ...}.
type envelope struct {
	Data any `json:"data"`
}

func writeData(c *gin.Context, status int, v any) error {
	c.JSON(status, envelope{Data: v})
	return nil
}
