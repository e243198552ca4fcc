package server

import (
	"crypto/subtle"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tenantry/tenantry/keys"
	"github.com/tenantry/tenantry/migrations"
	"github.com/tenantry/tenantry/tenants"
)

// metrics are the server's Prometheus figures, in a registry of its own (so that many
// servers, as in the tests, never collide), served at GET /metrics.
type metrics struct {
	registry    *prometheus.Registry
	requests    *prometheus.CounterVec
	latency     *prometheus.HistogramVec
	series      sync.Map // seriesKey → requestSeries
	auth        *prometheus.CounterVec
	authOK      prometheus.Counter // auth's "ok", the outcome of nearly every request
	replays     prometheus.Counter
	rateLimited *prometheus.CounterVec
	deliveries  *prometheus.CounterVec
	reports     prometheus.Counter     // reports of leaked credentials
	reportedBy  *prometheus.CounterVec // the values they carried, by what they turned out to be
	// verifications counts answers about credentials (POST /api/keys/verify, POST
	// /oauth/introspect) by outcome: the reasons the answers themselves never give.
	verifications *prometheus.CounterVec
}

func newMetrics(s *Server) *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tenantry_http_requests_total",
			Help: "HTTP requests by route template, method and status."}, []string{"route", "method", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "tenantry_http_request_duration_seconds",
			Help:    "HTTP request latency by route template and method.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}}, []string{"route", "method"}),
		auth: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tenantry_authentications_total",
			Help: "Authentication outcomes: ok, or the reason a credential was refused."}, []string{"outcome"}),
		replays: prometheus.NewCounter(prometheus.CounterOpts{Name: "tenantry_idempotent_replays_total",
			Help: "Responses replayed for a repeated Idempotency-Key."}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tenantry_rate_limited_total",
			Help: "Requests refused with 429, by limit: per credential, or failed authentications per client address."}, []string{"limit"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tenantry_webhook_delivery_attempts_total",
			Help: "Webhook delivery attempts by result: delivered or failed."}, []string{"result"}),
		reports: prometheus.NewCounter(prometheus.CounterOpts{Name: "tenantry_credential_reports_total",
			Help: "Reports of leaked credentials (POST /api/credentials/revoke) that were read."}),
		reportedBy: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tenantry_reported_credentials_total",
			Help: "Values reported leaked, by outcome: malformed (skipped without a lookup), unknown (nothing to end), " +
				"revoked (a key revoked), tokens_revoked (a key's tokens ended), already_revoked."}, []string{"outcome"}),
		verifications: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tenantry_credential_verifications_total",
			Help: "Answers about credentials by endpoint (verify, introspect) and outcome: valid (active), missing_permissions, " +
				"rate_limited, out_of_scope, or why authentication refused the credential."}, []string{"endpoint", "outcome"}),
	}
	m.authOK = m.auth.WithLabelValues("ok")
	m.registry.MustRegister(m.requests, m.latency, m.auth, m.replays, m.rateLimited, m.deliveries, m.reports, m.reportedBy, m.verifications,
		collectors.NewDBStatsCollector(s.db.DB, "tenantry"), collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// observe records one finished request under its route template (never its raw path: ids
// would make the label set unbounded).
func (m *metrics) observe(c *gin.Context, took time.Duration) {
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	method := c.Request.Method
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
	default:
		method = "other" // a client's made-up methods must not make new series
	}
	status := c.Writer.Status()
	series, ok := m.series.Load(seriesKey{route, method, status})
	if !ok {
		// Routes, methods and statuses are few: the series stay few, and are looked up once.
		series, _ = m.series.LoadOrStore(seriesKey{route, method, status}, requestSeries{
			m.requests.WithLabelValues(route, method, strconv.Itoa(status)), m.latency.WithLabelValues(route, method)})
	}
	r := series.(requestSeries)
	r.count.Inc()
	r.latency.Observe(took.Seconds())
}

// reported counts one report of leaked credentials and what its values were.
func (m *metrics) reported(r keys.LeakReport) {
	m.reports.Inc()
	for outcome, n := range map[string]int{"malformed": r.Malformed, "unknown": r.Unknown, "revoked": r.Revoked,
		"tokens_revoked": r.TokensRevoked, "already_revoked": r.AlreadyRevoked} {
		m.reportedBy.WithLabelValues(outcome).Add(float64(n))
	}
}

// seriesKey names a request's series; requestSeries holds them (WithLabelValues hashes its
// labels at each call: a map lookup is a fifth of its cost).
type seriesKey struct {
	route, method string
	status        int
}

type requestSeries struct {
	count   prometheus.Counter
	latency prometheus.Observer
}

// serveMetrics is GET /metrics, for the operator's Prometheus: with MetricsToken set, to
// requests that bear it; without, to loopback clients only (the figures, such as why
// credentials were refused, are not for the public).
func (s *Server) serveMetrics(c *gin.Context, _ *tenants.Principal) error {
	if s.cfg.MetricsToken != "" {
		got := strings.TrimPrefix(c.GetHeader("Authorization"), "Bearer ")
		if subtle.ConstantTimeCompare([]byte(got), []byte(s.cfg.MetricsToken)) != 1 {
			return newAPIError(http.StatusForbidden, "metrics_token_required", "GET /metrics needs 'Authorization: Bearer <the operator's metrics token>'.")
		}
	} else if ip := net.ParseIP(c.RemoteIP()); ip == nil || !ip.IsLoopback() {
		return newAPIError(http.StatusForbidden, "metrics_loopback_only",
			"GET /metrics answers loopback clients only; the operator can set --metrics-token to serve it to others.")
	}
	promhttp.HandlerFor(s.metrics.registry, promhttp.HandlerOpts{}).ServeHTTP(c.Writer, c.Request)
	return nil
}

// health is the body of /healthz and of a ready /readyz (not ready is an error, 503).
type health struct {
	Status string `json:"status"`
}

// healthz answers while the process runs: for liveness probes, it touches nothing.
func (s *Server) healthz(c *gin.Context, _ *tenants.Principal) error {
	c.JSON(http.StatusOK, health{Status: "ok"})
	return nil
}

// readyz answers 200 when the database is reachable and its schema current, else 503: for
// readiness probes and load balancers.
func (s *Server) readyz(c *gin.Context, _ *tenants.Principal) error {
	ctx := c.Request.Context()
	if err := s.db.PingContext(ctx); err != nil {
		s.log.WarnContext(ctx, "not ready: database unreachable", "error", err.Error())
		return newAPIError(http.StatusServiceUnavailable, "not_ready", "Not ready: the database is unreachable.")
	}
	if pending, err := migrations.Pending(ctx, s.db); err != nil || pending {
		return newAPIError(http.StatusServiceUnavailable, "not_ready", "Not ready: the database schema is not current; run tenantry migrate.")
	}
	c.JSON(http.StatusOK, health{Status: "ok"})
	return nil
}
