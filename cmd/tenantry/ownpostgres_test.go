package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A test's own PostgreSQL dies with the test process, even when nothing of the test runs
// after it (killed on go test's -timeout, say): no postgres is left running, holding a port.
// The test process here is a second run of this binary, in TestOwnPostgresOfAKilledTest,
// killed once its PostgreSQL is up.
func TestOwnPostgresDiesWithItsTest(t *testing.T) {
	postgresBinDir(t) // skips without PostgreSQL's programs
	t.Parallel()
	cmd := exec.Command(os.Args[0], "-test.run=^TestOwnPostgresOfAKilledTest$", "-test.v")
	cmd.Env = append(os.Environ(), "TENANTRY_KILLED_TEST=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	pid, dir, said := 0, "", []string{}
	for lines := bufio.NewScanner(out); pid == 0 && lines.Scan(); {
		said = append(said, lines.Text())
		if v, ok := strings.CutPrefix(lines.Text(), "postmaster "); ok {
			n, d, _ := strings.Cut(v, " ")
			pid, dir = atoi(n), d
		}
	}
	if pid == 0 {
		t.Fatalf("the killed test's PostgreSQL did not start:\n%s", strings.Join(said, "\n"))
	}
	t.Cleanup(func() { os.RemoveAll(dir) }) // the killed test's directory, which it had no time to remove
	cmd.Process.Kill()
	cmd.Wait()
	for start := time.Now(); alive(pid); time.Sleep(20 * time.Millisecond) {
		if time.Since(start) > 10*time.Second {
			syscall.Kill(pid, syscall.SIGQUIT) // the test's own: not left running
			t.Fatalf("postgres %d runs on 10 s after its test process was killed", pid)
		}
	}
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

// alive reports whether process pid runs (a zombie, dead but not yet reaped, does not).
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	_, after, _ := strings.Cut(string(stat), ") ")
	return !strings.HasPrefix(after, "Z")
}

// The test TestOwnPostgresDiesWithItsTest kills: it starts its PostgreSQL, names its
// postmaster, and waits to be killed.
func TestOwnPostgresOfAKilledTest(t *testing.T) {
	if os.Getenv("TENANTRY_KILLED_TEST") == "" {
		t.Skip("run by TestOwnPostgresDiesWithItsTest")
	}
	pg := startOwnPostgres(t)
	raw, err := os.ReadFile(filepath.Join(pg.data(), "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	first, _, _ := strings.Cut(string(raw), "\n")
	fmt.Printf("postmaster %s %s\n", first, filepath.Dir(pg.dir))
	time.Sleep(time.Minute)
}
