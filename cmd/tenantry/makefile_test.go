package main

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// requireTool returns the path of a program a test needs: missing, the test is skipped, except
// in CI (CI set), where it fails: .ci/run installs it.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not installed: .ci/run must install it", name)
		}
		t.Skipf("%s is not installed", name)
	}
	return path
}

// makeRun is what `make run` would run, with vars on make's command line and env added to the
// environment (make -n: nothing is built or started).
func makeRun(t *testing.T, env []string, vars ...string) []string {
	t.Helper()
	cmd := exec.Command(requireTool(t, "make"), append([]string{"-n", "--no-print-directory", "run"}, vars...)...)
	cmd.Dir = "../.."
	// Under `make test` the variables of the make running the tests would reach this one (its
	// jobserver, its level): this is a make of its own.
	for _, kv := range os.Environ() {
		switch name, _, _ := strings.Cut(kv, "="); name {
		case "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES":
		default:
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "ADDR=", "DATABASE=", "TENANTRY_ADDR=", "TENANTRY_DATABASE=")
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make -n run %v: %v\n%s", vars, err, out)
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

// `make run` says that the first build compiles SQLite before it builds; ADDR and DATABASE
// become serve's flags only when given, so TENANTRY_ADDR applies otherwise (README,
// Commands).
func TestMakeRun(t *testing.T) {
	t.Parallel()
	lines := makeRun(t, nil)
	if len(lines) < 3 || !strings.Contains(lines[0], "compiles SQLite") || !strings.Contains(lines[0], "minutes on 2 cores") {
		t.Fatalf("make run must say what the first build costs before it builds:\n%s", strings.Join(lines, "\n"))
	}
	if last := lines[len(lines)-1]; last != "./bin/tenantry serve" {
		t.Errorf("make run without ADDR or DATABASE runs %q, want ./bin/tenantry serve (its defaults and variables apply)", last)
	}
	if l := makeRun(t, []string{"TENANTRY_ADDR=127.0.0.1:7070"}); l[len(l)-1] != "./bin/tenantry serve" {
		t.Errorf("with TENANTRY_ADDR set, make run runs %q: its variable must not be overridden", l[len(l)-1])
	}
	dir := t.TempDir()
	db := filepath.Join(dir, "data", "tenantry.db")
	got := makeRun(t, []string{"TENANTRY_ADDR=127.0.0.1:7070"}, "ADDR=127.0.0.1:0", "DATABASE="+db)
	serveLine := got[len(got)-1]
	if want := "./bin/tenantry serve --addr 127.0.0.1:0 --database " + db; serveLine != want {
		t.Fatalf("make run ADDR=... DATABASE=... runs %q, want %q", serveLine, want)
	}

	// The line it would run starts the server there (with this test's build of the program).
	args := strings.Fields(serveLine)[1:]
	cmd := exec.Command(binary(t), args...)
	cmd.Env = append(os.Environ(), "TENANTRY_ADDR=127.0.0.1:7070")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var rec struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "listening" {
				addr <- rec.Addr
			}
		}
	}()
	select {
	case a := <-addr:
		if !strings.HasPrefix(a, "127.0.0.1:") || a == "127.0.0.1:7070" {
			t.Fatalf("listening on %s: ADDR must win over TENANTRY_ADDR", a)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the server make run starts did not listen within 30 s")
	}
	if _, err := os.Stat(db); err != nil {
		t.Fatalf("DATABASE: %v", err)
	}
}
