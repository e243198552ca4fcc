package server

import (
	"fmt"
	"net/http"
	"slices"
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
	Version     string  `json:"version"`
	Description string  `json:"description"`
	Routes      []Route `json:"routes"` // the routes it concerns; each must be in the route table
	// Exactly one of these says what the change does.
	removesRoutes bool                        // the routes exist only before Version
	before        func(body any) (any, error) // turns a response body of Version into the earlier one
}

// changes is the registry, oldest first.
var changes = []change{
	{
		Version: "2025-09-18",
		Description: "Updates are PUT with full replacement. Before this version, PATCH with partial updates " +
			"(fields left out keep their values) is also served on organizations, users and roles.",
		Routes: []Route{{"PATCH", "/api/organizations/:org_id"}, {"PATCH", "/api/organizations/:org_id/users/:id"},
			{"PATCH", "/api/permissions/roles/:id"}},
		removesRoutes: true,
	},
	{
		Version: "2025-09-18",
		Description: "GET /api/organizations lists the partner's owner organization first, then its children by " +
			"creation time. Before this version, the list is ordered by name.",
		Routes: []Route{{"GET", "/api/organizations"}},
		before: reshape(func(orgs []tenants.Organization) []tenants.Organization {
			orgs = slices.Clone(orgs)
			sort.SliceStable(orgs, func(i, j int) bool { return strings.ToLower(orgs[i].Name) < strings.ToLower(orgs[j].Name) })
			return orgs
		}),
	},
}

// reshape is a change's before for response bodies of type T. A body of another type is an
// error, a 500, never a panic: the route's handler answers with something the change did not
// expect.
func reshape[T any](f func(T) T) func(any) (any, error) {
	return func(body any) (any, error) {
		t, ok := body.(T)
		if !ok {
			return nil, fmt.Errorf("a version change expects a body of type %T, the route answered a %T", t, body)
		}
		return f(t), nil
	}
}

// changesOf indexes the registry by route, each route's changes oldest first.
var changesOf = func() map[Route][]*change {
	index := map[Route][]*change{}
	for i := range changes {
		for _, key := range changes[i].Routes {
			index[key] = append(index[key], &changes[i])
		}
	}
	return index
}()

// checkChanges panics when a change names a route the table lacks, a programming error that
// makes New, so every test, fail.
func checkChanges(endpoints map[Route]*route) {
	for key, chs := range changesOf {
		if endpoints[key] == nil {
			panic(fmt.Sprintf("the version change of %s names %s, which is not in the route table", chs[0].Version, key))
		}
	}
}

// availability says whether route r is served at version v and, when not, at which versions it is.
func availability(r *route, v string) (ok bool, hint string) {
	for _, ch := range changesOf[Route{r.method, r.path}] {
		if ch.removesRoutes && v >= ch.Version {
			return false, "before version " + ch.Version + " only"
		}
	}
	return true, ""
}

// transform turns a response body of route r at the newest version into version v's,
// applying, newest first, every change that came after v.
func transform(r *route, v string, body any) (any, error) {
	chs := changesOf[Route{r.method, r.path}]
	for i := len(chs) - 1; i >= 0; i-- {
		ch := chs[i]
		if ch.before == nil || v >= ch.Version {
			continue
		}
		var err error
		if body, err = ch.before(body); err != nil {
			return nil, err
		}
	}
	return body, nil
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
		s.writeError(c, newAPIError(http.StatusBadRequest, "unsupported_version",
			"X-Polytomic-Version %q is not supported; use one of %s, or leave the header out for your organization's version.",
			v, strings.Join(tenants.Versions, ", ")).with("supported_versions", tenants.Versions))
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
	if ok, hint := availability(r, version(c)); !ok {
		return newAPIError(http.StatusNotFound, "not_available_in_version",
			"%s %s is not available in API version %s; it is served %s. Send X-Polytomic-Version to choose a version.",
			r.method, r.path, version(c), hint).
			with("version", version(c)).with("available", hint)
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
