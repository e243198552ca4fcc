package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// A shell block of the README: its first line's number, its text, and why it is not run (the
// reason of a <!-- not run: REASON --> line just before it), if it is not.
type shellBlock struct {
	line         int
	text, notRun string
}

var notRunMark = regexp.MustCompile(`^<!-- not run: (.+) -->$`)

// readmeShellBlocks are the ```sh blocks of the README, in order.
func readmeShellBlocks(t *testing.T) []shellBlock {
	t.Helper()
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(raw), "\n")
	var blocks []shellBlock
	for i := 0; i < len(lines); i++ {
		if lines[i] != "```sh" {
			if strings.HasPrefix(lines[i], "<!-- not run") && !notRunMark.MatchString(lines[i]) {
				t.Errorf("README line %d: write a mark as <!-- not run: REASON -->, got %q", i+1, lines[i])
			}
			continue
		}
		b := shellBlock{line: i + 2}
		if i > 0 {
			if m := notRunMark.FindStringSubmatch(lines[i-1]); m != nil {
				b.notRun = m[1]
			}
		}
		var text []string
		for i++; i < len(lines) && lines[i] != "```"; i++ {
			text = append(text, lines[i])
		}
		b.text = strings.Join(text, "\n")
		blocks = append(blocks, b)
	}
	return blocks
}

// The README's shell blocks work when pasted: every ```sh block not marked
// <!-- not run: REASON --> runs, in order, in one bash (set -euo pipefail: a failed command or
// an unset variable fails it), in a directory laid out as the repository's after `make run`
// (bin/tenantry, and the server's ./data), against the real program started there with its
// default database. `curl` is the real curl with a -w that reports each answer's status, and
// any answer that is not 2xx fails the test. The one change made to the blocks: the address
// of `make run`, 127.0.0.1:8080, becomes that of the server started (on a free port). The
// server runs with --webhook-allow-private, as the Webhooks section says to.
func TestREADMEShellBlocks(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"bash", "jq", "python3"} {
		requireTool(t, tool)
	}
	realCurl := requireTool(t, "curl")
	blocks := readmeShellBlocks(t)

	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(binary(t), filepath.Join(dir, "bin", "tenantry")); err != nil {
		t.Fatal(err)
	}
	shims := filepath.Join(dir, "shims")
	os.Mkdir(shims, 0o755)
	shim := "#!/bin/sh\nexec " + realCurl + " -w '%{stderr}README-HTTP-STATUS %{http_code} %{method} %{url_effective}\\n' \"$@\"\n"
	if err := os.WriteFile(filepath.Join(shims, "curl"), []byte(shim), 0o755); err != nil {
		t.Fatal(err)
	}

	// The server of `make run`: its defaults, in dir (./data/tenantry.db, ./data/bootstrap-partner-key).
	p := startProcessIn(t, dir, map[string]string{"TENANTRY_WEBHOOK_ALLOW_PRIVATE": "true"})
	base := "http://" + p.Addr

	var script strings.Builder
	script.WriteString("set -euo pipefail\n")
	var run, skipped []string
	for i, b := range blocks {
		if b.notRun != "" {
			skipped = append(skipped, fmt.Sprintf("line %d (%s)", b.line, b.notRun))
			continue
		}
		run = append(run, fmt.Sprintf("line %d", b.line))
		fmt.Fprintf(&script, "echo 'README-BLOCK %d line %d' >&2\n%s\n", i, b.line, strings.ReplaceAll(b.text, "http://127.0.0.1:8080", base))
	}
	t.Logf("README: %d shell blocks, %d run (%s), %d not run: %s", len(blocks), len(run), strings.Join(run, ", "),
		len(skipped), strings.Join(skipped, "; "))
	if len(run) == 0 {
		t.Fatal("README: no shell block to run")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script.String())
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PATH="+shims+string(os.PathListSeparator)+os.Getenv("PATH"))
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()

	// Each block's answers: every one 2xx.
	block, answers := "", 0
	sc := bufio.NewScanner(strings.NewReader(stderr.String()))
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "README-BLOCK "); ok {
			block = rest
			continue
		}
		if rest, ok := strings.CutPrefix(line, "README-HTTP-STATUS "); ok {
			answers++
			if !strings.HasPrefix(rest, "2") {
				t.Errorf("README block %s: an answer is not 2xx: %s", block, rest)
			}
		}
	}
	if err != nil {
		t.Errorf("README block %s failed: %v", block, err)
	}
	if t.Failed() {
		t.Fatalf("stdout:\n%s\nstderr:\n%s\nserver log:\n%s", stdout.String(), stderr.String(), p.Logs())
	}
	t.Logf("README: %d answers, all 2xx", answers)
	if !strings.Contains(stdout.String(), `"type":"user.created"`) {
		t.Errorf("the webhook example's receiver printed no user.created delivery:\n%s", stdout.String())
	}
}
