// Package server is everything HTTP: the Gin engine, its middleware, one file per resource and
// one error writer. Handlers decode a request, call one domain function and write the result.
package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/jmoiron/sqlx"

	"github.com/tenantry/tenantry"
	"github.com/tenantry/tenantry/keys"
	"github.com/tenantry/tenantry/migrations"
	"github.com/tenantry/tenantry/server/delivery"
	"github.com/tenantry/tenantry/server/docs"
	"github.com/tenantry/tenantry/tenants"
)

// ReleaseMode turns Gin's debug mode off: no route listing or warnings on stdout. The mode is
// a process global, so the program sets it where it starts (tests in their TestMain), rather
// than this package when it is imported.
func ReleaseMode() { gin.SetMode(gin.ReleaseMode) }

// Server serves Tenantry's HTTP API.
type Server struct {
	cfg    Config
	db     *sqlx.DB
	store  *tenants.Store
	keys   *keys.Service
	log    *slog.Logger
	engine *gin.Engine
	sweep  *sweeper

	endpoints    map[Route]*route  // the route table by method and path
	commands     map[string]*route // the routes the command endpoint runs, by command name
	commandNames []string          // sorted, for unknown_command
	metrics      *metrics
	perKey       *limiters // requests per credential
	authFailures *limiters // failed authentications per client address
	reports      *limiters // reports of leaked credentials per client address
	// webhooks sends webhook deliveries from the outbox (package server/delivery).
	webhooks *delivery.Worker
	// stopWaking ends the commit hook that wakes the webhook worker.
	stopWaking func()
	// stopFollowing ends the following of other replicas' credential changes.
	stopFollowing func()
	// releases are the idempotency records to release once the database is back
	// (releaseIdempotencyKey), tried until Close.
	releases *releases
	// provisionFault, set by tests only (export_test.go), is called after each step of
	// POST /api/provision; its error aborts the provisioning.
	provisionFault func(step string) error
}

// Config is what a Server needs; zero values are the documented defaults.
type Config struct {
	DB  *sqlx.DB
	Log *slog.Logger
	// OldestVersionSunset, when set, is announced (Deprecation and Sunset headers) on every
	// response served at the oldest API version.
	OldestVersionSunset time.Time
	// IdempotencyTTL is how long Idempotency-Key records are kept (default 24 h); EventRetention
	// how long events are (default 30 days). A sweeper deletes older ones every SweepInterval
	// (default 10 minutes).
	IdempotencyTTL time.Duration
	EventRetention time.Duration
	SweepInterval  time.Duration
	// RatePerSecond and RateBurst limit each credential (defaults 100/s, burst 200; a
	// negative rate disables the limit). AuthFailuresPerSecond and AuthFailureBurst limit
	// failed authentications per client address (defaults 1/s, burst 20; negative disables).
	RatePerSecond         float64
	RateBurst             int
	AuthFailuresPerSecond float64
	AuthFailureBurst      int
	// ReportsPerSecond and ReportBurst limit reports of leaked credentials (POST
	// /api/credentials/revoke) per client address (defaults 1/s, burst 10; negative disables).
	ReportsPerSecond float64
	ReportBurst      int
	// MetricsToken, when set, is the bearer token GET /metrics requires; when not, /metrics
	// answers loopback clients only.
	MetricsToken string
	// TrustedProxies are the addresses whose X-Forwarded-For is believed for the client
	// address (default none: the TCP peer is the client).
	TrustedProxies []string
	// Webhooks configures webhook delivery and which endpoints webhooks may have (zero values
	// are package delivery's defaults).
	Webhooks delivery.Config
	// CachedKeys and CachedTokens bound the principal cache (defaults keys.DefaultCachedKeys
	// and keys.DefaultCachedTokens; negative: no cache, every request is looked up).
	CachedKeys   int
	CachedTokens int
	// Clock is the time credentials are checked against, for expiry (nil: time.Now).
	Clock func() time.Time
	// Sealer seals the secrets stored at rest (connection secrets, SSO client secrets, webhook
	// secrets, token signing keys); nil stores them as given.
	Sealer *tenants.Sealer
}

// WithDefaults returns c with every setting left zero replaced by its default: the one place
// the server's defaults are applied. A negative rate, or a negative CachedKeys, stays (it
// disables the limit, or the cache).
func (c Config) WithDefaults() Config {
	setDefault(&c.IdempotencyTTL, DefaultIdempotencyTTL)
	setDefault(&c.EventRetention, DefaultEventRetention)
	setDefault(&c.SweepInterval, defaultSweepInterval)
	if c.RatePerSecond == 0 {
		c.RatePerSecond = DefaultRatePerSecond
	}
	if c.AuthFailuresPerSecond == 0 {
		c.AuthFailuresPerSecond = DefaultAuthFailuresPerIP
	}
	if c.ReportsPerSecond == 0 {
		c.ReportsPerSecond = DefaultReportsPerIP
	}
	setDefault(&c.ReportBurst, DefaultReportBurst)
	setDefault(&c.RateBurst, DefaultRateBurst)
	setDefault(&c.AuthFailureBurst, DefaultAuthFailureBurst)
	if c.CachedKeys == 0 {
		c.CachedKeys = keys.DefaultCachedKeys
	}
	setDefault(&c.CachedTokens, keys.DefaultCachedTokens)
	return c
}

// setDefault sets *v to def when it is zero or negative.
func setDefault[T int | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// New builds the HTTP API. Close it to stop its background work.
func New(cfg Config) *Server {
	cfg = cfg.WithDefaults()
	s := &Server{cfg: cfg, db: cfg.DB, store: tenants.NewStore(cfg.DB), keys: keys.NewService(cfg.DB), log: cfg.Log}
	s.startReleases()
	s.store.Sealer, s.keys.Sealer, cfg.Webhooks.Sealer = cfg.Sealer, cfg.Sealer, cfg.Sealer
	s.keys.Clock = cfg.Clock
	if err := s.keys.EnsureSigningKey(context.Background()); err != nil {
		s.log.Error("creating the first token signing key failed; it will be created with the first token", "error", err.Error())
	}
	s.keys.StartUsageRecorder(5*time.Second, s.log)
	if cfg.CachedKeys >= 0 {
		s.keys.CachePrincipals(cfg.CachedKeys, cfg.CachedTokens)
		// Other replicas' changes: PostgreSQL's notices as they commit, and the epoch polled.
		ctx, stop := context.WithCancel(context.Background())
		s.stopFollowing = stop
		s.keys.FollowReplicas(ctx, func(ctx context.Context, notice func(string), lost func(error)) {
			migrations.Listen(ctx, cfg.DB, "tenantry_credentials", notice, lost)
		}, keys.DefaultEpochPoll, s.log)
	}
	s.startSweeper()
	s.metrics = newMetrics(s)
	s.perKey = newLimiters("credential", cfg.RatePerSecond, cfg.RateBurst)
	s.authFailures = newLimiters("address", cfg.AuthFailuresPerSecond, cfg.AuthFailureBurst)
	s.reports = newLimiters("address", cfg.ReportsPerSecond, cfg.ReportBurst)
	e := gin.New()
	e.HandleMethodNotAllowed = true
	e.RedirectTrailingSlash = false
	e.RedirectFixedPath = false
	// Route on the escaped path: /api/organizations/x%2Fusers is one (unknown) id, never a
	// different route.
	e.UseRawPath = true
	e.UnescapePathValues = true
	if err := e.SetTrustedProxies(cfg.TrustedProxies); err != nil {
		s.log.Error("ignoring --trusted-proxies", "error", err.Error())
		e.SetTrustedProxies(nil)
	}
	// The order of these is the order of refusals (README, Errors): a request that matches no
	// route passes through them untouched to its 404 or 405.
	e.Use(withRequestID, s.accessLog, s.recoverPanics, limitBody, s.authenticate, s.requireCredential,
		s.negotiateVersion, s.idempotency)
	e.NoRoute(func(c *gin.Context) {
		s.writeError(c, newAPIError(http.StatusNotFound, "route_not_found",
			"There is no endpoint %s %s.", c.Request.Method, c.Request.URL.Path))
	})
	e.NoMethod(func(c *gin.Context) {
		s.writeError(c, newAPIError(http.StatusMethodNotAllowed, "method_not_allowed",
			"%s is not allowed on %s.", c.Request.Method, c.Request.URL.Path))
	})
	s.mount(e)
	s.engine = e
	// Webhook delivery: a worker on the outbox, stopped by Close.
	cfg.Webhooks.OnAttempt = func(delivered bool) {
		s.metrics.deliveries.WithLabelValues(map[bool]string{true: "delivered", false: "failed"}[delivered]).Inc()
	}
	s.webhooks = delivery.New(cfg.DB, cfg.Log, cfg.Webhooks)
	s.webhooks.Start()
	// A committed change that queued deliveries wakes the worker: sent at once, not at its
	// next poll.
	s.stopWaking = tenants.OnCommit(cfg.DB, func(changes []tenants.Change) {
		for _, ch := range changes {
			if ch.Delivers {
				s.webhooks.Wake()
				return
			}
		}
	})
	return s
}

// Close stops background work, writing what it holds (key usage).
func (s *Server) Close() {
	if s.stopFollowing != nil {
		s.stopFollowing()
	}
	s.stopWaking()
	s.webhooks.Stop() // lets the webhook attempts in flight finish first
	s.stopSweeper()
	s.stopReleases()
	s.keys.Close()
}

// FlushUsage writes recorded key usage now (tests use it instead of waiting).
func (s *Server) FlushUsage(ctx context.Context) { s.keys.FlushUsage(ctx) }

// ServeHTTP makes Server an http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.engine.ServeHTTP(w, r) }

// Route is one endpoint: its method and Gin path template.
type Route struct{ Method, Path string }

// String names r as openapi.yaml does: METHOD /path/{param}.
func (r Route) String() string {
	parts := strings.Split(r.Path, "/")
	for i, p := range parts {
		if name, ok := strings.CutPrefix(p, ":"); ok {
			parts[i] = "{" + name + "}"
		}
	}
	return r.Method + " " + strings.Join(parts, "/")
}

// MarshalText writes r as String does (GET /api/versions lists the routes of each change).
func (r Route) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

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

// route is one entry of the route table: a REST endpoint, its name in the command endpoint
// (if it has one), who may call it, and its handler.
type route struct {
	method, path string
	command      command
	policy       policy
	handler      handler
}

// routes is the route table: REST serves every route, and the command endpoint those with a
// command name. Its policies say which kinds of credential may call a route; what a caller
// may do there is decided by the domain method the handler calls.
func (s *Server) routes() []route {
	r := []route{
		{"GET", "/healthz", noCommand, public, s.healthz},
		{"GET", "/readyz", noCommand, public, s.readyz},
		{"GET", "/metrics", noCommand, public, s.serveMetrics},
		{"GET", "/openapi.yaml", noCommand, public, s.serveSpec},
		{"GET", "/docs", noCommand, public, s.serveDocs},
		{"GET", docs.BundlePath, noCommand, public, s.serveDocsBundle},
		{"GET", docs.ReferencePath, noCommand, public, s.serveDocsReference},
		{"GET", "/api/me", cmd("get_identity"), forAnyone, s.getIdentity},
		{"GET", "/api/versions", cmd("list_versions"), public, s.listVersions},
		// The command endpoint authenticates the caller; the route it runs authorizes it.
		{"POST", "/api", noCommand, forAnyone, s.runCommand},
		{"POST", "/api/auth/tokens", cmd("create_token"), forAnyone.noTokens(), s.mintToken},
		{"GET", "/.well-known/jwks.json", noCommand, public, s.getJWKS},
		{"GET", "/api/auth/check", noCommand, gateway, s.checkGateway},
		// The same check with the client's method, as Envoy's HTTP ext_authz asks it.
		{"POST", "/api/auth/check", noCommand, gateway.safeToRepeat(), s.checkGateway},
		{"PUT", "/api/auth/check", noCommand, gateway.safeToRepeat(), s.checkGateway},
		{"PATCH", "/api/auth/check", noCommand, gateway.safeToRepeat(), s.checkGateway},
		{"DELETE", "/api/auth/check", noCommand, gateway.safeToRepeat(), s.checkGateway},

		{"GET", "/api/organizations", cmd("list_organizations"), forPartners, s.listOrganizations},
		{"POST", "/api/organizations", cmd("create_organization"), forPartners, s.createOrganization},
		{"GET", "/api/organizations/:org_id", cmd("get_organization"), forPartners, s.getOrganization},
		{"PUT", "/api/organizations/:org_id", cmd("update_organization"), forPartners, s.updateOrganization},
		{"PATCH", "/api/organizations/:org_id", noCommand, forPartners, s.patchOrganization},
		{"DELETE", "/api/organizations/:org_id", cmd("delete_organization"), forPartners, s.deleteOrganization},
		{"GET", "/api/organization", cmd("get_current_organization"), forOrgs, s.getCurrentOrganization},
		// Key policies: the partner's, for each of its organizations, and an organization admin's
		// for its own (the domain decides who is an admin: tenants.RequireOrganizationAdmin).
		{"GET", "/api/organizations/:org_id/key_policy", cmd("get_key_policy"), forPartners, s.getKeyPolicy(orgFromPath)},
		{"PUT", "/api/organizations/:org_id/key_policy", cmd("set_key_policy"), forPartners, s.putKeyPolicy(orgFromPath)},
		{"GET", "/api/organization/key_policy", noCommand, forOrgs, s.getKeyPolicy(orgOfCaller)},
		{"PUT", "/api/organization/key_policy", noCommand, forOrgs, s.putKeyPolicy(orgOfCaller)},

		{"GET", "/api/organizations/:org_id/users", cmd("list_users"), forPartners, s.listUsers(orgFromPath)},
		{"POST", "/api/organizations/:org_id/users", cmd("create_user"), forPartners, s.createUser(orgFromPath)},
		{"GET", "/api/organizations/:org_id/users/:id", cmd("get_user"), forPartners, s.getUser(orgFromPath)},
		{"PUT", "/api/organizations/:org_id/users/:id", cmd("update_user"), forPartners, s.updateUser(orgFromPath)},
		{"PATCH", "/api/organizations/:org_id/users/:id", noCommand, forPartners, s.patchUser(orgFromPath)},
		{"DELETE", "/api/organizations/:org_id/users/:id", cmd("delete_user"), forPartners, s.deleteUser(orgFromPath)},
		{"POST", "/api/organizations/:org_id/users/:id/keys", cmd("create_user_key", "force"), forPartners.noTokens(), s.mintUserKey},
		{"POST", "/api/provision", cmd("provision"), forPartners.noTokens(), s.provision},
		{"POST", "/api/provision/batch", cmd("provision_batch"), forPartners.noTokens(), s.provisionBatch},
		{"GET", "/api/organizations/:org_id/keys", noCommand, forPartners, s.listOrganizationKeys},
		{"DELETE", "/api/organizations/:org_id/keys/:id", noCommand, forPartners, s.revokeOrganizationKey},
		{"GET", "/api/organizations/:org_id/usage", noCommand, forPartners, s.getOrganizationUsage},

		{"GET", "/api/partner/keys", noCommand, forPartners, s.listPartnerKeys},
		{"POST", "/api/partner/keys", noCommand, forPartners.noTokens(), s.createPartnerKey},
		{"DELETE", "/api/partner/keys/:id", noCommand, forPartners, s.revokePartnerKey},

		{"GET", "/api/organization/users", noCommand, forOrgs, s.listUsers(orgOfCaller)},
		{"POST", "/api/organization/users", noCommand, forOrgs, s.createUser(orgOfCaller)},
		{"GET", "/api/organization/users/:id", noCommand, forOrgs, s.getUser(orgOfCaller)},
		{"PUT", "/api/organization/users/:id", noCommand, forOrgs, s.updateUser(orgOfCaller)},
		{"DELETE", "/api/organization/users/:id", noCommand, forOrgs, s.deleteUser(orgOfCaller)},

		{"GET", "/api/permissions/roles", cmd("list_roles"), forOrgs, s.listRoles},
		{"POST", "/api/permissions/roles", cmd("create_role"), forOrgs, s.createRole},
		{"GET", "/api/permissions/roles/:id", cmd("get_role"), forOrgs, s.getRole},
		{"PUT", "/api/permissions/roles/:id", cmd("update_role"), forOrgs, s.updateRole},
		{"PATCH", "/api/permissions/roles/:id", noCommand, forOrgs, s.patchRole},
		{"DELETE", "/api/permissions/roles/:id", cmd("delete_role"), forOrgs, s.deleteRole},

		{"GET", "/api/events", cmd("list_events", "type", "organization_id", "starting_after", "ending_before", "limit", "page_token"),
			forOrgs, s.listEvents},
		{"GET", "/api/events_types", noCommand, forOrgs, s.listEventTypes},

		// Keys of the caller's organization. Reading, revoking and rotating one's own key needs
		// no permission; the domain requires keys:read / keys:write for anyone else's, and a
		// token owns no key (keys.mayManage).
		{"GET", "/api/keys", cmd("list_keys", "limit", "page_token"), orgKeys, s.listKeys},
		{"POST", "/api/keys", cmd("create_key"), orgKeys.noTokens(), s.createKey},
		{"GET", "/api/keys/:id", cmd("get_key"), orgKeys, s.getKey},
		{"DELETE", "/api/keys/:id", cmd("revoke_key"), orgKeys, s.revokeKey},
		{"POST", "/api/keys/:id/rotate", cmd("rotate_key"), orgKeys.noTokens(), s.rotateKey},
		{"GET", "/api/keys/:id/usage", noCommand, orgKeys, s.getKeyUsage},

		// Leaked credentials, reported by anyone who finds one: no credential is needed (whoever
		// holds a value may end it), and each client address has a rate limit of its own.
		{"POST", "/api/credentials/revoke", noCommand, public, s.revokeReported},

		// Whether a credential is valid, for the partner's own services: the domain decides
		// about which credentials a caller may ask (keys.VerifyCredential).
		{"POST", "/api/keys/verify", noCommand, verifiers, s.verifyKey},
		{"POST", "/oauth/introspect", noCommand, introspectors, s.introspect},
	}
	r = append(r, s.policyRoutes()...)
	r = append(r, s.resourceRoutes()...)
	return append(r, s.webhookRoutes()...)
}

// mount serves the route table on e, and indexes it for the middleware and the command endpoint.
func (s *Server) mount(e *gin.Engine) {
	table := s.routes()
	s.endpoints, s.commands = map[Route]*route{}, map[string]*route{}
	for i := range table {
		r := &table[i]
		e.Handle(r.method, r.path, func(c *gin.Context) {
			var p *tenants.Principal
			if !r.policy.public {
				p = c.MustGet(ctxPrincipal).(*tenants.Principal) // else requireCredential answered 401
			}
			s.serve(c, r, p)
		})
		s.endpoints[Route{r.method, r.path}] = r
		if r.command.name != "" {
			s.commands[r.command.name] = r
			s.commandNames = append(s.commandNames, r.command.name)
		}
	}
	sort.Strings(s.commandNames)
	checkChanges(s.endpoints)
}

// matchedRoute is the route a request matched; nil when none did (its answer is 404 or 405).
func (s *Server) matchedRoute(c *gin.Context) *route {
	return s.endpoints[Route{c.Request.Method, c.FullPath()}]
}

// serve runs route r for caller p (nil on a public route called over REST): it gates the route
// by version (404), applies its policy (403) and runs its handler, sending any error to
// writeError. REST and the command endpoint both run routes through it.
func (s *Server) serve(c *gin.Context, r *route, p *tenants.Principal) {
	c.Set(ctxRoute, r)
	err := versionGate(c, r)
	if err == nil && !r.policy.public {
		err = r.policy.check(p)
	}
	if err == nil {
		err = r.handler(c, p)
	}
	if err != nil {
		s.writeError(c, err)
	}
}

// storeOf is the domain for c's request: bound to the request's unit of work when it has one
// (a write with Idempotency-Key), so that its change and the stored response commit together.
func (s *Server) storeOf(c *gin.Context) *tenants.Store {
	if u, ok := c.Get(ctxUnit); ok {
		return s.store.In(u.(*tenants.Unit))
	}
	return s.store
}

// keysOf is the credentials service for c's request, bound as storeOf binds the domain.
func (s *Server) keysOf(c *gin.Context) *keys.Service {
	if u, ok := c.Get(ctxUnit); ok {
		return s.keys.In(u.(*tenants.Unit))
	}
	return s.keys
}

// servedRoute is the route serving c.
func servedRoute(c *gin.Context) *route { return c.MustGet(ctxRoute).(*route) }

// envelope is every success body: {"data": ...}.
type envelope struct {
	Data any `json:"data"`
}

// writeData sends {"data": v}, as the request's API version shapes it.
func writeData(c *gin.Context, status int, v any) error {
	v, err := transform(servedRoute(c), version(c), v)
	if err != nil {
		return err
	}
	writeJSON(c, status, envelope{Data: v})
	return nil
}

// listEnvelope is every paginated list: {"data": [...], "pagination": {"next_page_token": ...}},
// the token "" on the last page.
type listEnvelope struct {
	Data       any        `json:"data"`
	Pagination pagination `json:"pagination"`
}

type pagination struct {
	NextPageToken string `json:"next_page_token"`
}

// pageOf reads the limit and page_token query parameters.
func pageOf(c *gin.Context) (tenants.PageQuery, error) {
	return tenants.ParsePage(c.Query("limit"), c.Query("page_token"))
}

// forceOf reads Polytomic's optional force query parameter: true or false (else 400).
func forceOf(c *gin.Context) (bool, error) {
	v, ok := c.GetQuery("force")
	if ok && v != "true" && v != "false" {
		return false, tenants.FieldError("force", "must be true or false")
	}
	return v == "true", nil
}

// writeList writes one page of a list, as the version serving c shapes its items.
func writeList[T any](c *gin.Context, page tenants.Page[T]) error {
	items, err := transform(servedRoute(c), version(c), any(page.Items))
	if err != nil {
		return err
	}
	writeJSON(c, http.StatusOK, listEnvelope{Data: items, Pagination: pagination{NextPageToken: page.Next}})
	return nil
}

// serveSpec is GET /openapi.yaml: the contract this server implements.
func (s *Server) serveSpec(c *gin.Context, _ *tenants.Principal) error {
	c.Data(http.StatusOK, "application/yaml", tenantry.Spec)
	return nil
}

// serveDocs is GET /docs: the API reference, a page that renders the contract (as
// /docs/openapi.json serves it, with its curl samples) with the Redoc bundle this server
// serves (package docs), needing nothing from elsewhere. It is not cached, so a new binary's
// page (and the bundle version it names) is seen at once.
func (s *Server) serveDocs(c *gin.Context, _ *tenants.Principal) error {
	c.Header("Content-Security-Policy", docs.ContentSecurityPolicy)
	c.Header("Cache-Control", "no-cache")
	c.Data(http.StatusOK, "text/html; charset=utf-8", docs.Page)
	return nil
}

// serveDocsBundle is GET /docs/redoc.standalone.js: the vendored Redoc bundle. The page names
// it with its content's hash (?v=), so a browser may keep it a year; gzipped (1.1 MB is about
// 330 KB) for a client that accepts it.
func (s *Server) serveDocsBundle(c *gin.Context, _ *tenants.Principal) error {
	c.Header("Cache-Control", "public, max-age=31536000, immutable")
	c.Header("X-Content-Type-Options", "nosniff")
	sendCompressible(c, "text/javascript; charset=utf-8", docs.Bundle, docs.BundleGzip)
	return nil
}

// sendCompressible sends a body kept both plain and gzipped: gzipped to a client that accepts it.
func sendCompressible(c *gin.Context, contentType string, plain, gzipped []byte) {
	c.Header("Vary", "Accept-Encoding")
	if acceptsGzip(c.Request.Header.Values("Accept-Encoding")) {
		c.Header("Content-Encoding", "gzip")
		c.Data(http.StatusOK, contentType, gzipped)
		return
	}
	c.Data(http.StatusOK, contentType, plain)
}

// reference is the contract as GET /docs/openapi.json serves it (docs.Reference): made once,
// at the first request, from the one the binary embeds, and gzipped once.
var reference = sync.OnceValues(func() (docsReference, error) {
	plain, err := docs.Reference(tenantry.Spec)
	if err != nil {
		return docsReference{}, err
	}
	sum := sha256.Sum256(plain)
	return docsReference{plain: plain, gzipped: docs.Gzip(plain), etag: `"` + hex.EncodeToString(sum[:16]) + `"`}, nil
})

type docsReference struct {
	plain, gzipped []byte
	etag           string
}

// serveDocsReference is GET /docs/openapi.json: the contract as JSON, with a curl sample on
// every operation, which GET /docs renders. Revalidated on every use (no-cache) against its
// ETag, so a new binary's samples are seen at once and an unchanged one costs a 304; gzipped
// (300 KB is about 45 KB) for a client that accepts it.
func (s *Server) serveDocsReference(c *gin.Context, _ *tenants.Principal) error {
	ref, err := reference()
	if err != nil {
		return fmt.Errorf("making %s: %w", docs.ReferencePath, err)
	}
	c.Header("Cache-Control", "no-cache")
	c.Header("ETag", ref.etag)
	c.Header("X-Content-Type-Options", "nosniff")
	if ifNoneMatch(c.Request.Header.Values("If-None-Match"), ref.etag) {
		c.Header("Vary", "Accept-Encoding")
		c.Status(http.StatusNotModified)
		return nil
	}
	sendCompressible(c, "application/json", ref.plain, ref.gzipped)
	return nil
}

// ifNoneMatch reports whether If-None-Match values name etag (or are *), compared weakly as
// RFC 9110 says for If-None-Match.
func ifNoneMatch(values []string, etag string) bool {
	for _, v := range values {
		for _, tag := range strings.Split(v, ",") {
			tag = strings.TrimPrefix(strings.TrimSpace(tag), "W/")
			if tag == "*" || tag == etag {
				return true
			}
		}
	}
	return false
}

// acceptsGzip reports whether Accept-Encoding values name gzip (or *) with a weight above 0.
func acceptsGzip(values []string) bool {
	for _, v := range values {
		for _, coding := range strings.Split(v, ",") {
			name, params, _ := strings.Cut(coding, ";")
			name = strings.ToLower(strings.TrimSpace(name))
			if name != "gzip" && name != "x-gzip" && name != "*" {
				continue
			}
			q, found := strings.CutPrefix(strings.ReplaceAll(strings.ToLower(params), " ", ""), "q=")
			if !found || strings.Trim(q, "0.") != "" {
				return true
			}
		}
	}
	return false
}
