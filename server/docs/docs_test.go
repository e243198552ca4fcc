package docs

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"
)

// The vendored file is npm's redoc@2.5.4 bundle unchanged, as assets/README.md says: the edits
// are made in code, where they are listed.
func TestVendoredBundleIsUpstream(t *testing.T) {
	sum := sha256.Sum256(upstreamBundle)
	readme, err := os.ReadFile("assets/README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), hex.EncodeToString(sum[:])) {
		t.Fatalf("assets/redoc.standalone.js has sha256 %x, which assets/README.md does not give", sum)
	}
	if !strings.Contains(string(readme), "Redoc "+RedocVersion) || !bytes.Contains(upstreamBundle, []byte(`"`+RedocVersion+`"`)) {
		t.Fatalf("RedocVersion %s is not the vendored bundle's or the README's", RedocVersion)
	}
	for _, f := range []string{"assets/redoc.LICENSE", "assets/redoc.standalone.js.LICENSE.txt"} {
		if b, err := os.ReadFile(f); err != nil || !bytes.Contains(b, []byte("MIT")) {
			t.Fatalf("%s: the license must be vendored with the bundle (%v)", f, err)
		}
	}
}

// The served bundle names no other host it would load from, and its gzipped form is the same.
func TestBundleLoadsNothingFromElsewhere(t *testing.T) {
	for _, host := range []string{"cdn.redoc.ly", "fonts.googleapis.com", "fonts.gstatic.com", "sourceMappingURL=redoc.standalone.js.map"} {
		if bytes.Contains(Bundle, []byte(host)) {
			t.Errorf("the served bundle still has %q", host)
		}
	}
	if !bytes.Contains(Bundle, []byte("API docs by Redocly")) {
		t.Errorf("the edit should keep the attribution link")
	}
	r, err := gzip.NewReader(bytes.NewReader(BundleGzip))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(plain, Bundle) {
		t.Fatalf("BundleGzip is not Bundle gzipped: %v", err)
	}
}

// An edit that no longer matches the bundle stops the program rather than serve a bundle that
// reaches out.
func TestBundleEditMustMatch(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("a bundle without the edited text was accepted")
		}
	}()
	serve([]byte("a different bundle"))
}

// The page loads the bundle and the contract from this server, runs no inline script and
// names no other host.
func TestPage(t *testing.T) {
	p := string(Page)
	for _, want := range []string{`<redoc spec-url="/openapi.yaml"`, `<script src="` + BundlePath + `?v=` + BundleVersion + `"></script>`} {
		if !strings.Contains(p, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	if n := strings.Count(p, "<script"); n != 1 {
		t.Errorf("the page has %d scripts, want the bundle only", n)
	}
	if m := regexp.MustCompile(`(?i)(src|href)="(https?:)?//`).FindString(p); m != "" {
		t.Errorf("the page loads from another host: %s", m)
	}
	if !strings.Contains(ContentSecurityPolicy, "script-src 'self';") || strings.Contains(ContentSecurityPolicy, "unsafe-eval") {
		t.Errorf("CSP %q", ContentSecurityPolicy)
	}
}
