package server_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/tenantry/tenantry"
	"github.com/tenantry/tenantry/server/docs"
	"github.com/tenantry/tenantry/server/servertest"
)

// GET /docs serves the page with its CSP, uncached; GET /docs/redoc.standalone.js the bundle,
// cached for a year, gzipped for a client that accepts it; GET /openapi.yaml the contract the
// page renders. Every answer is checked against openapi.yaml by the client.
func TestDocsRoutes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	page := e.anon.Do("GET", "/docs", nil)
	expect(t, page, 200, "")
	if got := page.Header.Get("Content-Security-Policy"); got != docs.ContentSecurityPolicy {
		t.Errorf("CSP %q, want %q", got, docs.ContentSecurityPolicy)
	}
	if page.Header.Get("Cache-Control") != "no-cache" || !bytes.Equal(page.Body, docs.Page) ||
		page.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Errorf("GET /docs: %v", page.Header)
	}

	for _, c := range []struct {
		name, acceptEncoding string
		gzipped              bool
	}{
		{"no Accept-Encoding", "", false},
		{"gzip", "gzip", true},
		{"gzip among others", "br;q=1.0, gzip;q=0.8, *;q=0.1", true},
		{"gzip refused", "gzip;q=0, identity", false},
		{"gzip refused with decimals", "br, gzip; q=0.000", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			var headers []string
			if c.acceptEncoding != "" {
				headers = []string{"Accept-Encoding", c.acceptEncoding}
			}
			r := e.anon.Do("GET", docs.BundlePath+"?v="+docs.BundleVersion, nil, headers...)
			expect(t, r, 200, "")
			body := r.Body
			if c.gzipped {
				if r.Header.Get("Content-Encoding") != "gzip" {
					t.Fatalf("Accept-Encoding %q: not gzipped", c.acceptEncoding)
				}
				zr, err := gzip.NewReader(bytes.NewReader(r.Body))
				if err != nil {
					t.Fatal(err)
				}
				if body, err = io.ReadAll(zr); err != nil {
					t.Fatal(err)
				}
			} else if r.Header.Get("Content-Encoding") != "" {
				t.Fatalf("Accept-Encoding %q: Content-Encoding %q", c.acceptEncoding, r.Header.Get("Content-Encoding"))
			}
			if !bytes.Equal(body, docs.Bundle) {
				t.Fatalf("the bundle served is not docs.Bundle")
			}
			if r.Header.Get("Cache-Control") != "public, max-age=31536000, immutable" || r.Header.Get("Vary") != "Accept-Encoding" ||
				r.Header.Get("Content-Type") != "text/javascript; charset=utf-8" || r.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Fatalf("headers: %v", r.Header)
			}
		})
	}

	spec := e.anon.Do("GET", "/openapi.yaml", nil)
	expect(t, spec, 200, "")
	if !bytes.Equal(spec.Body, tenantry.Spec) || spec.Header.Get("Content-Type") != "application/yaml" {
		t.Fatalf("GET /openapi.yaml: %d %v", spec.Status, spec.Header)
	}
}

// What openapi.yaml says of /docs is what the server does: the Redoc version and the CSP.
func TestSpecDescribesDocs(t *testing.T) {
	t.Parallel()
	doc := servertest.Spec(t)
	for _, path := range []string{"/docs", docs.BundlePath} {
		op := doc.Paths.Find(path).Get
		if !strings.Contains(op.Description, "Redoc") || !strings.Contains(op.Description, docs.RedocVersion) {
			t.Errorf("GET %s's description does not name Redoc %s", path, docs.RedocVersion)
		}
	}
	csp := doc.Components.Headers["Content-Security-Policy"].Value
	if csp.Example != docs.ContentSecurityPolicy {
		t.Errorf("openapi.yaml's Content-Security-Policy example is %q, the server sends %q", csp.Example, docs.ContentSecurityPolicy)
	}
	for _, directive := range strings.Split(docs.ContentSecurityPolicy, "; ") {
		if name, _, _ := strings.Cut(directive, " "); name != "default-src" && name != "base-uri" && name != "form-action" && name != "frame-ancestors" &&
			name != "img-src" && !strings.Contains(doc.Paths.Find("/docs").Get.Description, directive) {
			t.Errorf("GET /docs's description does not give %q", directive)
		}
	}
}

// The errors any operation may answer are documented once, in info.description's section
// "Errors every operation shares", which every shared response refers to; an operation's
// description lists only its own errors, and links to that section.
func TestSpecSharesCommonErrors(t *testing.T) {
	t.Parallel()
	doc := servertest.Spec(t)
	const heading, link = "## Errors every operation shares", "(#section/Errors-every-operation-shares)"
	_, section, ok := strings.Cut(doc.Info.Description, heading)
	if !ok {
		t.Fatalf("info.description has no %q", heading)
	}
	common := []string{"unsupported_version", "invalid_idempotency_key", "malformed_json", "unknown_field", "duplicate_field",
		"body_required", "unreadable_body", "missing_token", "invalid_token", "route_not_found", "not_available_in_version",
		"method_not_allowed", "idempotency_key_in_use", "body_too_large", "unsupported_media_type", "idempotency_key_reused",
		"rate_limited", "internal_error", "database_busy"}
	for _, key := range common {
		if !strings.Contains(section, "`"+key+"`:") && !strings.Contains(section, "`"+key+"`,") {
			t.Errorf("the section does not list %s", key)
		}
	}
	for name, r := range doc.Components.Responses {
		if !strings.Contains(*r.Value.Description, link) || r.Value.Extensions["x-summary"] == nil {
			t.Errorf("components/responses/%s: no x-summary, or no link to the section", name)
		}
	}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			_, errs, ok := strings.Cut(op.Description, "**Errors:**")
			if !ok {
				t.Errorf("%s %s: its description has no **Errors:**", method, path)
				continue
			}
			errs, _, _ = strings.Cut(errs, "\n\n")
			if strings.Contains(errs, "no credential is looked at") || path == "/api" {
				continue // public routes say they never answer 401; the command endpoint, its routes' errors
			}
			if !strings.Contains(errs, link) {
				t.Errorf("%s %s: **Errors:** does not link to the shared section", method, path)
			}
			for _, key := range common {
				if key != "not_available_in_version" && strings.Contains(errs, "`"+key+"`") {
					t.Errorf("%s %s: **Errors:** repeats the shared %s", method, path, key)
				}
			}
		}
	}
}

// The README's row for GET /docs says what the page is: the Redoc version served, offline, and
// the CSP's script rule; TestDocsInChromium proves the rest (nothing from another host, schemas,
// examples, search, the shared errors' section).
func TestReadmeDescribesDocs(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var row string
	for _, line := range strings.Split(string(readme), "\n") {
		if strings.HasPrefix(line, "| `GET /docs` |") {
			row = line
		}
	}
	for _, want := range []string{"Redoc](https://github.com/Redocly/redoc) " + docs.RedocVersion, "embedded in the binary",
		"nothing from any other host", "`script-src 'self'`", "inline styles", "`blob:` worker"} {
		if !strings.Contains(row, want) {
			t.Errorf("README's GET /docs row does not say %q: %s", want, row)
		}
	}
	for _, directive := range []string{"script-src 'self'", "style-src 'unsafe-inline'", "worker-src blob:"} {
		if !strings.Contains(docs.ContentSecurityPolicy, directive) {
			t.Errorf("the CSP lacks %q, which the README promises", directive)
		}
	}
}
