package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenantry/tenantry/migrations/migrationstest"
)

// The TypeScript clients of clients/typescript (its package-lock.json pins every package;
// .ci/run runs npm ci there): the commands of the README's Generating clients section.
const typescriptDir = "../../clients/typescript"

var typescriptCommands = []string{
	"npx openapi-typescript ../../openapi.yaml -o src/schema.d.ts",
	"npx tsc -p tsconfig.json --strict",
}

var (
	typescriptOnce sync.Once
	typescriptErr  string
)

// buildTypeScript generates the client's types from openapi.yaml and type-checks and compiles
// both programs (once per test run). Without node, npx or the installed packages the test is
// skipped, except in CI, where it fails.
func buildTypeScript(t *testing.T) {
	t.Helper()
	requireTool(t, "node")
	requireTool(t, "npx")
	if _, err := os.Stat(filepath.Join(typescriptDir, "node_modules", "openapi-typescript")); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("clients/typescript has no node_modules: .ci/run must run npm ci there")
		}
		t.Skip("clients/typescript has no node_modules: run npm ci there")
	}
	typescriptOnce.Do(func() {
		for _, line := range typescriptCommands {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			args := strings.Fields(line)
			cmd := exec.CommandContext(ctx, args[0], args[1:]...)
			cmd.Dir = typescriptDir
			out, err := cmd.CombinedOutput()
			cancel()
			if err != nil {
				typescriptErr = line + ": " + err.Error() + "\n" + string(out)
				return
			}
		}
	})
	if typescriptErr != "" {
		t.Fatal(typescriptErr)
	}
}

// runTypeScript runs a compiled program of clients/typescript against a real server started
// for it on 127.0.0.1, with the bootstrap partner's key, and returns what it printed.
func runTypeScript(t *testing.T, program string) string {
	t.Helper()
	buildTypeScript(t)
	keyFile := filepath.Join(t.TempDir(), "bootstrap-partner-key")
	// Private webhook targets: the programs' webhooks deliver to a receiver of theirs on loopback.
	p := startProcess(t, map[string]string{"TENANTRY_DATABASE": migrationstest.DSN(t), "TENANTRY_BOOTSTRAP_KEY_FILE": keyFile,
		"TENANTRY_WEBHOOK_ALLOW_PRIVATE": "true"})
	key, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", program)
	cmd.Dir = typescriptDir
	cmd.Env = append(os.Environ(), "TENANTRY_URL=http://"+p.Addr, "PARTNER_KEY="+strings.TrimSpace(string(key)))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node %s: %v\n%s\nserver log:\n%s", program, err, out, p.Logs())
	}
	return string(out)
}

// A client generated from openapi.yaml (openapi-typescript, openapi-fetch) type-checks with
// tsc --strict and drives the partner workflow against the real server.
func TestTypeScriptClient(t *testing.T) {
	t.Parallel()
	if out := runTypeScript(t, "dist/partner-workflow.js"); !strings.Contains(out, "generated client: partner workflow passed") {
		t.Fatalf("the generated client's program did not finish:\n%s", out)
	}
}

// Polytomic's official TypeScript SDK (npm polytomic, pinned) drives the partner workflow:
// an organization, its root user, the user's key and /api/me with it, a custom role, a policy
// created, listed, replaced, put on a connection and removed, the connection updated as the
// SDK sends it, a webhook through its life, events filtered by time, the user updated and
// removed (its key then 401), the organization removed.
func TestPolytomicTypeScriptSDK(t *testing.T) {
	t.Parallel()
	if out := runTypeScript(t, "dist/polytomic-sdk.js"); !strings.Contains(out, "polytomic SDK: partner workflow passed") {
		t.Fatalf("the SDK's program did not finish:\n%s", out)
	}
}

// The README's Generating clients section shows the commands these tests run.
func TestREADMEGeneratingClients(t *testing.T) {
	t.Parallel()
	for _, b := range readmeShellBlocks(t) {
		if strings.Contains(b.text, "npx openapi-typescript") {
			for _, line := range append([]string{"cd clients/typescript", "npm ci"}, typescriptCommands...) {
				if !strings.Contains(b.text, line) {
					t.Errorf("README, Generating clients: the block lacks %q:\n%s", line, b.text)
				}
			}
			for _, program := range []string{"node dist/partner-workflow.js", "node dist/polytomic-sdk.js"} {
				if !strings.Contains(b.text, program) {
					t.Errorf("README, Generating clients: the block does not run %q", program)
				}
			}
			return
		}
	}
	t.Fatal("README: no Generating clients block (npx openapi-typescript ...)")
}
