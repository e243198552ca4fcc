package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/tenantry/tenantry/tenants"
)

// runBinary runs the built program with args and returns its stdout, stderr and exit status.
func runBinary(t *testing.T, args ...string) (stdout, stderr string, status int) {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	cmd.Env = append(os.Environ(), "TENANTRY_DATABASE="+t.TempDir()+"/never-opened.db")
	var out, errs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errs
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("tenantry %v: %v", args, err)
	}
	return out.String(), errs.String(), cmd.ProcessState.ExitCode()
}

// The help, through the real program: `tenantry help` has a line for each command, a group
// (`partner`, ...) lists its subcommands, and -h, -help and --help print a command's flags on
// stdout and exit 0, each flag's help naming its variable (or saying it has none).
func TestHelp(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"help"}, {"--help"}, {"-h"}} {
		out, errs, status := runBinary(t, args...)
		if status != 0 || errs != "" {
			t.Errorf("tenantry %v: exit status %d, stderr %q; want 0 and nothing", args, status, errs)
		}
		for _, c := range commands {
			if !regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(c.name) + `  +` + regexp.QuoteMeta(c.summary) + `$`).MatchString(out) {
				t.Errorf("tenantry %v has no line for %q with its summary:\n%s", args, c.name, out)
			}
		}
	}
	groups := map[string][]string{"partner": {"create", "issue-key"}, "signing-key": {"rotate"}, "secret-key": {"generate", "rotate"}}
	for group, subs := range groups {
		for _, args := range [][]string{{group, "--help"}, {group, "-h"}, {"help", group}} {
			out, _, status := runBinary(t, args...)
			if status != 0 {
				t.Errorf("tenantry %v: exit status %d, want 0", args, status)
			}
			for _, sub := range subs {
				if !strings.Contains(out, "  "+group+" "+sub+" ") {
					t.Errorf("tenantry %v does not list %s %s:\n%s", args, group, sub, out)
				}
			}
		}
		// Without a subcommand, or with an unknown one, it is a usage error that lists them.
		for _, args := range [][]string{{group}, {group, "frobnicate"}} {
			_, errs, status := runBinary(t, args...)
			if status != 2 || !strings.Contains(errs, group+" "+subs[0]) {
				t.Errorf("tenantry %v: exit status %d (want 2), stderr:\n%s", args, status, errs)
			}
		}
	}
	flagLine := regexp.MustCompile(`^  -([a-z-]+)`)
	for _, c := range commands {
		if c.name == "help" {
			continue
		}
		for _, h := range []string{"-h", "--help"} {
			args := append(strings.Fields(c.name), h)
			out, errs, status := runBinary(t, args...)
			if status != 0 || errs != "" || !strings.HasPrefix(out, "Usage: tenantry "+c.name) {
				t.Errorf("tenantry %v: exit status %d, stderr %q, stdout:\n%s", args, status, errs, out)
				continue
			}
			// PrintDefaults: a line "  -name type", then the help indented by a tab.
			lines := strings.Split(out, "\n")
			flags := 0
			for i, line := range lines {
				m := flagLine.FindStringSubmatch(line)
				if m == nil {
					continue
				}
				flags++
				help := ""
				for j := i + 1; j < len(lines) && strings.HasPrefix(lines[j], "    \t"); j++ {
					help += lines[j]
				}
				if !strings.Contains(help, "("+envVar(m[1])+")") && !strings.Contains(help, "(a flag only: no variable)") {
					t.Errorf("tenantry %s: the help of --%s names no variable: %q", c.name, m[1], help)
				}
			}
			if flags == 0 {
				t.Errorf("tenantry %v lists no flag:\n%s", args, out)
			}
		}
	}
	if _, errs, status := runBinary(t, "frobnicate"); status != 2 || !strings.Contains(errs, `unknown command "frobnicate"`) {
		t.Errorf("an unknown command: exit status %d, stderr:\n%s", status, errs)
	}
}

// `tenantry version` prints the program's version and the API versions it serves.
func TestVersion(t *testing.T) {
	t.Parallel()
	out, errs, status := runBinary(t, "version")
	if status != 0 || errs != "" {
		t.Fatalf("tenantry version: exit status %d, stderr %q", status, errs)
	}
	if !strings.HasPrefix(out, "tenantry ") || !strings.Contains(out, "built with go") {
		t.Errorf("tenantry version names no version:\n%s", out)
	}
	if !strings.Contains(out, strings.Join(tenants.Versions, ", ")) || !strings.Contains(out, tenants.LatestVersion+", is the default") {
		t.Errorf("tenantry version must list the API versions %v:\n%s", tenants.Versions, out)
	}
}

// The README's table of commands has a row for each command of the program.
func TestREADMEListsEveryCommand(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range commands {
		if !strings.Contains(string(raw), "| `tenantry "+c.name) && !strings.Contains(string(raw), "/ `tenantry "+c.name) {
			t.Errorf("README: the table of commands has no row for tenantry %s", c.name)
		}
	}
}
