package main

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tenantry/tenantry/server"
)

// The README's Configuration table has one row per setting, and no other, with the setting's
// variable and default as declared: the two cannot drift apart.
func TestREADMEListsEverySetting(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(raw), "\n### Configuration\n")
	section, _, _ = strings.Cut(section, "\n#")
	rows := map[string][]string{} // by flag
	for line := range strings.SplitSeq(section, "\n") {
		if !strings.HasPrefix(line, "| `--") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "| "), " | ")
		if len(cells) != 4 {
			t.Errorf("README: a row of the Configuration table has %d cells, want 4 (flag, environment, default, meaning):\n%s", len(cells), line)
			continue
		}
		rows[cells[0]] = cells
	}
	if len(rows) == 0 {
		t.Fatal("README: no Configuration table")
	}
	cl := (&Main{}).commandLine("serve", allSettings)
	for _, f := range cl.declared {
		row, ok := rows["`--"+f.Name+"`"]
		if !ok {
			t.Errorf("README: the Configuration table has no row for --%s", f.Name)
			continue
		}
		delete(rows, row[0])
		if want := "`" + envVar(f.Name) + "`"; row[1] != want {
			t.Errorf("README: --%s has the variable %s, want %s", f.Name, row[1], want)
		}
		// A default is shown as -h shows it; a setting without one says what happens instead.
		if f.DefValue != "" && !strings.HasPrefix(row[2], "`"+f.DefValue+"`") {
			t.Errorf("README: the default of --%s is %q, want it to start with `%s`", f.Name, row[2], f.DefValue)
		}
		if f.DefValue == "" && (row[2] == "" || strings.HasPrefix(row[2], "`")) {
			t.Errorf("README: --%s has no default; the table says %q", f.Name, row[2])
		}
		if row[3] == "" {
			t.Errorf("README: --%s has no meaning", f.Name)
		}
	}
	for flag := range rows {
		t.Errorf("README: the Configuration table lists %s, which is not a setting", flag)
	}
}

// A setting is its flag, else its variable, else its default. A malformed variable is an error
// naming it, a malformed flag a usage error, and -h shows defaults, never the environment's
// values (a metrics token, say).
func TestSettings(t *testing.T) {
	t.Parallel()
	parse := func(env map[string]string, args ...string) (*commandLine, string, error) {
		var out bytes.Buffer
		m := &Main{Stdout: &out, Stderr: &out, Getenv: func(k string) string { return env[k] }}
		cl := m.commandLine("serve", allSettings)
		err := m.parse(cl, args)
		return cl, out.String(), err
	}
	cl, _, err := parse(map[string]string{"TENANTRY_ADDR": "127.0.0.1:1", "TENANTRY_RATE_BURST": "7", "TENANTRY_IDEMPOTENCY_TTL": "1h",
		"TENANTRY_WEBHOOK_ALLOW_PRIVATE": "true", "TENANTRY_DATABASE": ""}, "--addr", "127.0.0.1:2", "--idempotency-ttl", "2h")
	if err != nil {
		t.Fatal(err)
	}
	got := []any{cl.addr, cl.server.IdempotencyTTL, cl.server.RateBurst, cl.server.Webhooks.AllowPrivate, cl.server.EventRetention, cl.database}
	want := []any{"127.0.0.1:2", 2 * time.Hour, 7, true, server.DefaultEventRetention, defaultDatabase}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("flag over variable over default: %v, want %v", got, want)
			break
		}
	}

	_, _, err = parse(map[string]string{"TENANTRY_RATE_LIMIT": "fast", "TENANTRY_WEBHOOK_TIMEOUT": "soon"})
	if err == nil || errors.Is(err, errUsage) || !strings.HasPrefix(err.Error(), "configuration: ") ||
		!strings.Contains(err.Error(), `TENANTRY_RATE_LIMIT="fast": strconv.ParseFloat: parsing "fast": invalid syntax`) ||
		!strings.Contains(err.Error(), `TENANTRY_WEBHOOK_TIMEOUT="soon": time: invalid duration "soon"`) {
		t.Errorf("malformed variables: %v", err)
	}
	if _, out, err := parse(nil, "--rate-burst", "many"); !errors.Is(err, errUsage) || !strings.Contains(out, `invalid value "many" for flag -rate-burst`) {
		t.Errorf("a malformed flag: %v\n%s", err, out)
	}
	_, out, err := parse(map[string]string{"TENANTRY_METRICS_TOKEN": "metrics-token-in-env", "TENANTRY_ADDR": "127.0.0.1:1"}, "-h")
	if !errors.Is(err, errHelp) || strings.Contains(out, "metrics-token-in-env") || strings.Contains(out, "127.0.0.1:1") ||
		!strings.Contains(out, "TENANTRY_METRICS_TOKEN") || !strings.Contains(out, `(default "127.0.0.1:8080")`) {
		t.Errorf("-h: %v\n%s", err, out)
	}
	// Every command logs, so every command takes --log-format.
	m := &Main{Stderr: &bytes.Buffer{}, Getenv: func(k string) string { return map[string]string{"TENANTRY_LOG_FORMAT": "text"}[k] }}
	if cl := m.commandLine("migrate", databaseSettings); m.parse(cl, nil) != nil || cl.logFormat != "text" {
		t.Errorf("migrate with TENANTRY_LOG_FORMAT=text: %q", cl.logFormat)
	}
	if err := m.parse(m.commandLine("secret-key generate", secretKeySettings), []string{"--log-format", "xml"}); !errors.Is(err, errUsage) {
		t.Errorf("secret-key generate --log-format xml: %v", err)
	}
}
