// Package docs is the API reference served at GET /docs: a small HTML page that runs Redoc, an
// OpenAPI renderer vendored in assets/ at a pinned version (see assets/README.md) and embedded in
// the binary, on the contract the same server serves at GET /openapi.yaml. The page needs
// nothing from any other host: a browser with no network but the server renders it whole.
package docs

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"html/template"

	_ "embed"
)

// RedocVersion is the version of the vendored Redoc bundle (assets/redoc.standalone.js).
const RedocVersion = "2.5.4"

// BundlePath is where the server serves the bundle.
const BundlePath = "/docs/redoc.standalone.js"

// ContentSecurityPolicy is /docs's policy, as tight as Redoc allows: scripts from this server
// only (the bundle; no inline script), the contract fetched from this server, and nothing from
// anywhere else. Redoc needs two exceptions: its styles are injected as <style> elements
// (styled-components), hence style-src 'unsafe-inline'; its search index runs in a Web Worker
// it creates from a blob: URL, hence worker-src blob:. Its icons are inline SVG; the page's
// favicon is an empty data: URL (else the browser asks for /favicon.ico), hence img-src data:.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; " +
	"connect-src 'self'; worker-src blob:; img-src data:; base-uri 'none'; form-action 'none'; " +
	"frame-ancestors 'none'"

//go:embed assets/redoc.standalone.js
var upstreamBundle []byte

// Bundle is Redoc's standalone bundle as served: upstream's file with the two changes
// bundleEdits lists, and BundleGzip the same compressed (once, here, rather than per request).
var Bundle, BundleGzip = serve(upstreamBundle)

// BundleVersion names Bundle's content: the page asks for the bundle with it as ?v=, so a
// browser may cache the bundle for a year and still gets a new one with a new binary.
var BundleVersion = func() string { h := sha256.Sum256(Bundle); return hex.EncodeToString(h[:6]) }()

// Page is GET /docs: the <redoc> element, with Redoc's options as its attributes, and the
// bundle, which renders /openapi.yaml into the element when it loads.
var Page = func() []byte {
	var b bytes.Buffer
	if err := page.Execute(&b, struct{ Bundle, Version, Redoc string }{BundlePath, BundleVersion, RedocVersion}); err != nil {
		panic(err)
	}
	return b.Bytes()
}()

// The theme's fonts are the reader's own (system-ui, ui-monospace): Redoc's defaults, Montserrat
// and Roboto, would be fetched from elsewhere by any page that wanted them as designed.
var page = template.Must(template.New("docs").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="Redoc {{.Redoc}}">
<title>Tenantry API reference</title>
<link rel="icon" href="data:,">
<style>body { margin: 0; padding: 0; }</style>
</head>
<body>
<noscript>This reference is rendered in the browser by JavaScript (Redoc). Without it, read the
contract itself: <a href="/openapi.yaml">/openapi.yaml</a>.</noscript>
<redoc spec-url="/openapi.yaml" required-props-first="true" expand-responses="200"
  json-sample-expand-level="4" hide-download-button="false"
  theme='{"typography":{"fontFamily":"system-ui, -apple-system, \"Segoe UI\", Roboto, \"Helvetica Neue\", Arial, sans-serif","headings":{"fontFamily":"system-ui, -apple-system, \"Segoe UI\", Roboto, \"Helvetica Neue\", Arial, sans-serif"},"code":{"fontFamily":"ui-monospace, \"DejaVu Sans Mono\", Menlo, Consolas, monospace"}}}'></redoc>
<script src="{{.Bundle}}?v={{.Version}}"></script>
</body>
</html>
`))

// bundleEdits are the changes made to upstream's bundle, each of which must match exactly once
// (a new Redoc version that no longer has the text fails here, and so in the tests, rather than
// serving a bundle that reaches out):
//   - the side menu's "API docs by Redocly" link shows an image from Redocly's CDN, which the
//     CSP would refuse (a violation on every load, and a request to another host if it did
//     not): the link stays, without the image;
//   - the bundle names a source map that is not vendored (3.9 MB): the reference goes, so a
//     browser's developer tools do not ask the server for it.
var bundleEdits = []struct{ old, new string }{
	{`e?n.createElement("img",{alt:"redocly logo",onError:()=>t(!1),src:"https://cdn.redoc.ly/redoc/logo-mini.svg"}):null`, `null`},
	{"\n//# sourceMappingURL=redoc.standalone.js.map", ""},
}

func serve(upstream []byte) (plain, gzipped []byte) {
	plain = upstream
	for _, e := range bundleEdits {
		if n := bytes.Count(plain, []byte(e.old)); n != 1 {
			panic(fmt.Sprintf("docs: the vendored Redoc bundle has %q %d times, not once: update bundleEdits", e.old, n))
		}
		plain = bytes.Replace(plain, []byte(e.old), []byte(e.new), 1)
	}
	var b bytes.Buffer
	w, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
	w.Write(plain)
	w.Close()
	return plain, b.Bytes()
}
