package server_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tenantry/tenantry"
)

// /docs renders in a real browser, headless Chromium, with every operation of the contract.
func TestDocsInChromium(t *testing.T) {
	t.Parallel()
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("chromium is missing: .ci/run installs Debian's chromium package")
		}
		t.Skip("chromium is not installed (apt-get install chromium); CI runs this test")
	}
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--user-data-dir="+t.TempDir(),
		"--dump-dom", e.url+"/docs")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	dom := string(out)
	want := strings.Count(string(tenantry.Spec), "operationId:")
	if got := strings.Count(dom, `class="operation"`); got != want {
		t.Fatalf("Chromium shows %d operations, the contract has %d", got, want)
	}
	for _, op := range []string{"getIdentity", "createOrganization", "createToken", "listEvents"} {
		if !strings.Contains(dom, `id="`+op+`"`) {
			t.Fatalf("the page lacks operation %s", op)
		}
	}
	spec := e.anon.Do("GET", "/openapi.yaml", nil)
	if spec.Status != 200 || string(spec.Body) != string(tenantry.Spec) {
		t.Fatalf("GET /openapi.yaml: %d", spec.Status)
	}
}
