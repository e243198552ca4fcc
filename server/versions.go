package server

import (
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/tenantry/tenantry/tenants"
)

const versionHeader = "X-Polytomic-Version"

// A change is one difference between API versions: from Version on, the API behaves as
// Description says; requests served at an earlier version get the behaviour before it. This
// registry is the only place versions differ: handlers never test a version themselves.
//
// Only what would break a client written against an earlier version is a change: a changed
// shape, meaning or order, a route taken away. A new endpoint breaks no client, so, as
// Stripe does, it is served at every version and is not a change.
type change struct {
	Version     string   `json:"version"`
	Description string   `json:"description"`
	Routes      []string `json:"routes"` // METHOD /path templates it concerns
	// Exactly one of these says what the change does.
	removesRoutes bool            // the routes exist only before Version
	before        func(v any) any // turns a response body of Version into the earlier one
}

// changes is the registry, oldest first.
var changes = []change{
	{
		Version: "2025-09-18",
		Description: "Updates are PUT with full replacement. Before this version, PATCH with partial updates " +
			"(fields left out keep their values) is also served on organizations, users and roles.",
		Routes: []string{"PATCH /api/organizations/{org_id}", "PATCH /api/organizations/{org_id}/users/{id}",
			"PATCH /api/permissions/roles/{id}"},
		removesRoutes: true,
	},
	{
		Version: "2025-09-18",
		Description: "GET /api/organizations lists the partner's owner organization first, then its children by " +
			"creation time. Before this version, the list is ordered by name.",
		Routes: []string{"GET /api/organizations"},
		before: func(v any) any {
			orgs := append([]tenants.Organization(nil), v.([]tenants.Organization)...)
			sort.SliceStable(orgs, func(i, j int) bool { return strings.ToLower(orgs[i].Name) < strings.ToLower(orgs[j].Name) })
			return orgs
		},
	},
}

// routeKey names a route as the registry does: METHOD /path/{param}.
func routeKey(method, ginPath string) string {
	parts := strings.Split(ginPath, "/")
	for i, p := range parts {
		if strings.HasPrefix(p, ":") {
			parts[i] = "{" + p[1:] + "}"
		}
	}
	return method + " " + strings.Join(parts, "/")
}

// availability says whether a route is served at version v and, when not, at which versions it is.
func availability(route, v string) (ok bool, hint string) {
	for _, ch := range changes {
		if !ch.removesRoutes || v < ch.Version {
			continue
		}
		for _, r := range ch.Routes {
			if r == route {
				return false, "before version " + ch.Version + " only"
			}
		}
	}
	return true, ""
}

// transform turns a response body of the newest version into version v's, applying, newest
// first, every change that came after v.
func transform(route, v string, body any) any {
	for i := len(changes) - 1; i >= 0; i-- {
		ch := changes[i]
		if ch.before == nil || v >= ch.Version {
			continue
		}
		for _, r := range ch.Routes {
			if r == route {
				body = ch.before(body)
			}
		}
	}
	return body
}

// negotiateVersion decides the version that serves a request: the X-Polytomic-Version header,
// else the credential's organization's pinned version (a partner key: its owner
// organization's), else the newest. Every response, errors included, names it. It runs after
// authentication (an unauthenticated request was answered 401 already). A header sent empty is
// malformed. A request that matches no route is not refused here: its 404 or 405 comes first,
// served at the version asked for when it is one (writeError).
func (s *Server) negotiateVersion(c *gin.Context) {
	if c.FullPath() == "" {
		c.Next()
		return
	}
	v, sent := sentHeader(c.Request, versionHeader)
	if !sent {
		v = tenants.LatestVersion
		if p, ok := c.Get(ctxPrincipal); ok && tenants.IsVersion(p.(*tenants.Principal).APIVersion) {
			v = p.(*tenants.Principal).APIVersion
		}
	}
	if !tenants.IsVersion(v) {
		s.setVersion(c, tenants.LatestVersion)
		e := newAPIError(http.StatusBadRequest, "unsupported_version",
			"X-Polytomic-Version %q is not supported; use one of %s, or leave the header out for your organization's version.",
			v, strings.Join(tenants.Versions, ", "))
		e.Metadata = map[string]any{"supported_versions": tenants.Versions}
		s.writeError(c, e)
		return
	}
	s.setVersion(c, v)
	c.Next()
}

// setVersion records the version serving c and names it in the response, with the
// Deprecation (RFC 9745) and Sunset (RFC 8594) headers when it is the oldest version and the
// operator has set its sunset date.
func (s *Server) setVersion(c *gin.Context, v string) {
	c.Set(ctxVersion, v)
	c.Header(versionHeader, v)
	if v == tenants.Versions[0] && !s.cfg.OldestVersionSunset.IsZero() {
		// Deprecated since its successor was released.
		successor, _ := time.Parse(time.DateOnly, tenants.Versions[1])
		c.Header("Deprecation", "@"+strconv.FormatInt(successor.Unix(), 10))
		c.Header("Sunset", s.cfg.OldestVersionSunset.UTC().Format(http.TimeFormat))
	}
}

func version(c *gin.Context) string { return c.GetString(ctxVersion) }

// versionGate answers 404 not_available_in_version when the request's version lacks route r.
func versionGate(c *gin.Context, r *route) error {
	if ok, hint := availability(routeKey(r.method, r.path), version(c)); !ok {
		e := newAPIError(http.StatusNotFound, "not_available_in_version",
			"%s %s is not available in API version %s; it is served %s. Send X-Polytomic-Version to choose a version.",
			r.method, r.path, version(c), hint)
		e.Metadata = map[string]any{"version": version(c), "available": hint}
		return e
	}
	return nil
}

// versionsList is GET /api/versions.
type versionsList struct {
	Versions []string `json:"versions"`
	Latest   string   `json:"latest"`
	Changes  []change `json:"changes"`
	Sunset   *sunset  `json:"sunset"`
}

type sunset struct {
	Version string    `json:"version"`
	Date    time.Time `json:"date"`
}

func (s *Server) listVersions(c *gin.Context, _ *tenants.Principal) error {
	out := versionsList{Versions: tenants.Versions, Latest: tenants.LatestVersion, Changes: changes}
	if !s.cfg.OldestVersionSunset.IsZero() {
		out.Sunset = &sunset{Version: tenants.Versions[0], Date: s.cfg.OldestVersionSunset.UTC()}
	}
	return writeData(c, http.StatusOK, out)
}
