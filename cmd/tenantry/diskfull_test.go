//go:build linux

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"golang.org/x/sys/unix"

	"github.com/tenantry/tenantry/migrations/migrationstest"
	"github.com/tenantry/tenantry/server/servertest"
)

// The database's disk filling up refuses writes with 507 storage_full, never a 500 nor half a
// change; reads and /readyz go on, the database stays intact, and once there is space again
// writes succeed, without a restart. The disk that fills is the real program's file-size limit
// (RLIMIT_FSIZE), which any user may lower and raise on a process of their own, so the test
// needs no mount and runs everywhere: the server's own writes run into it, in the database file
// and then in its write-ahead log, and write(2) refuses them with EFBIG (Go's runtime catches
// the SIGXFSZ that comes with it, which would kill a C program), as it refuses them with ENOSPC
// on a full filesystem, which SQLite reports as SQLITE_FULL (TestStorageFull, in migrations).
func TestDiskFull(t *testing.T) {
	if migrationstest.Backend() != "sqlite" {
		t.Skip("SQLite's files")
	}
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "tenantry.db")
	env := map[string]string{"TENANTRY_DATABASE": path, "TENANTRY_BOOTSTRAP_KEY_FILE": filepath.Join(dir, "key")}
	p := startProcess(t, env)
	raw, err := os.ReadFile(env["TENANTRY_BOOTSTRAP_KEY_FILE"])
	if err != nil {
		t.Fatal(err)
	}
	c := servertest.New(t, "http://"+p.Addr).As(strings.TrimSpace(string(raw)))
	provision := func(name string, headers ...string) *servertest.Response {
		t.Helper()
		return c.Do("POST", "/api/provision", map[string]any{"organization": map[string]any{"name": name},
			"user": map[string]any{"email": "root@diskfull.test"}}, headers...)
	}
	acked := map[string]string{} // organization name → its user's key, for every 200
	for i := range 10 {
		name := fmt.Sprintf("before-%d", i)
		r := provision(name)
		if r.Status != 200 {
			t.Fatalf("provision before the disk fills: %d %s", r.Status, r.Body)
		}
		acked[name] = r.Data()["key"].(map[string]any)["value"].(string)
	}

	// The disk: 256 KiB more than the database file holds now.
	pid := p.cmd.Process.Pid
	var unlimited unix.Rlimit
	if err := unix.Prlimit(pid, unix.RLIMIT_FSIZE, nil, &unlimited); err != nil {
		t.Fatal(err)
	}
	before := fileSize(t, path)
	limit := unix.Rlimit{Cur: uint64(before) + 256<<10, Max: unlimited.Max}
	if err := unix.Prlimit(pid, unix.RLIMIT_FSIZE, &limit, nil); err != nil {
		t.Fatal(err)
	}

	// Fill it: provision until writes have been refused for a second, ten of the server's
	// checkpoints (until the database file is full, a checkpoint makes room in the log again,
	// and until the log is full too, a smaller change may still fit where a larger did not).
	refused := map[string]bool{}
	statuses := map[int]int{}
	started := time.Now()
	var full time.Time // since when every write was refused
	for i := 0; full.IsZero() || time.Since(full) < time.Second; i++ {
		if i == 5000 || time.Since(started) > time.Minute {
			t.Fatalf("the disk did not fill in %d writes and %v: %v; the database file is %d bytes", i, time.Since(started), statuses, fileSize(t, path))
		}
		name := fmt.Sprintf("fill-%04d", i)
		r := provision(name, "Idempotency-Key", name)
		statuses[r.Status]++
		switch r.Status {
		case 200:
			acked[name] = r.Data()["key"].(map[string]any)["value"].(string)
			full = time.Time{}
		case 507:
			if r.ErrorKey() != "storage_full" || r.Header.Get("Retry-After") != "" ||
				strings.Contains(string(r.Body), dir) || strings.Contains(strings.ToLower(string(r.Body)), "file too large") {
				t.Fatalf("a write refused for want of space: Retry-After %q, %s", r.Header.Get("Retry-After"), r.Body)
			}
			refused[name] = true
			if full.IsZero() {
				full = time.Now()
			}
			time.Sleep(20 * time.Millisecond)
		default:
			t.Fatalf("a write while the disk fills: %d %s", r.Status, r.Body)
		}
	}
	t.Logf("the disk filled after %v: %v; database file %d → %d bytes, write-ahead log %d bytes (limit %d)",
		time.Since(started).Round(time.Millisecond), statuses, before, fileSize(t, path), fileSize(t, path+"-wal"), limit.Cur)
	if !strings.Contains(p.Logs(), "database storage full") || !strings.Contains(p.Logs(), "file too large") {
		t.Fatalf("the operator's log must say the disk is full, and the system's reason:\n%s", p.Logs())
	}

	// Full, the server reads, and says it is ready: it serves whatever does not write.
	if r := c.Do("GET", "/api/organizations", nil); r.Status != 200 || len(r.List()) != len(acked)+1 { // and the partner's own
		t.Fatalf("a read while the disk is full: %d, %d organizations, want %d", r.Status, len(r.List()), len(acked)+1)
	}
	for _, key := range acked {
		if r := c.As(key).Do("GET", "/api/me", nil); r.Status != 200 {
			t.Fatalf("a user key while the disk is full: %d %s", r.Status, r.Body)
		}
		break
	}
	if r := c.Do("GET", "/readyz", nil); r.Status != 200 {
		t.Fatalf("/readyz while the disk is full: %d %s", r.Status, r.Body)
	}
	// A write refused for want of space leaves its Idempotency-Key free for its retry.
	retry := []string{"Idempotency-Key", "diskfull-retry-1"}
	if r := provision("retried", retry...); r.Status != 507 || r.ErrorKey() != "storage_full" {
		t.Fatalf("a keyed write while the disk is full: %d %s", r.Status, r.Body)
	}
	// Read only: a checkpoint from this process, which has no limit, would make room.
	integrityCheck(t, "file:"+path+"?mode=ro")

	// Space again: the next write goes through, without a restart.
	if err := unix.Prlimit(pid, unix.RLIMIT_FSIZE, &unlimited, nil); err != nil {
		t.Fatal(err)
	}
	freed := time.Now()
	r := provision("retried", retry...)
	if r.Status != 200 || r.Header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("the retry once there is space: %d %s", r.Status, r.Body)
	}
	t.Logf("writes work again %v after space was freed", time.Since(freed).Round(time.Millisecond))
	acked["retried"] = r.Data()["key"].(map[string]any)["value"].(string)
	// Each refused write, retried with its Idempotency-Key, is done now. A key whose record the
	// disk had no room to release is released in the background within a quarter of a second
	// of there being room: its retry may get 409 idempotency_key_in_use that long, not longer.
	inUse := 0
	for name := range refused {
		for attempt := 0; ; attempt++ {
			r := provision(name, "Idempotency-Key", name)
			if r.Status == 409 && r.ErrorKey() == "idempotency_key_in_use" && attempt < 8 {
				inUse++
				time.Sleep(125 * time.Millisecond)
				continue
			}
			if r.Status != 200 || r.Header.Get("Idempotent-Replayed") != "" {
				t.Fatalf("a refused write retried once there is space (attempt %d): %d %s", attempt+1, r.Status, r.Body)
			}
			acked[name] = r.Data()["key"].(map[string]any)["value"].(string)
			delete(refused, name)
			break
		}
	}
	t.Logf("%d refused writes retried with their Idempotency-Key, all done; %d answers of 409 while a key was being released", statuses[507], inUse)

	// Every acknowledged organization is there with its user and the user's key; no refused
	// one is, not even in part.
	present := map[string]bool{}
	for _, o := range c.Do("GET", "/api/organizations", nil).List() {
		present[o["name"].(string)] = true
	}
	for name, key := range acked {
		if !present[name] {
			t.Errorf("organization %s was acknowledged but is not there", name)
		} else if r := c.As(key).Do("GET", "/api/me", nil); r.Status != 200 {
			t.Errorf("the key provisioned with %s: %d %s", name, r.Status, r.Body)
		}
	}
	for name := range refused {
		if present[name] {
			t.Errorf("organization %s was refused with 507 but is there", name)
		}
	}
	p.Kill()
	integrityCheck(t, path)
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// integrityCheck runs SQLite's integrity check on the database at dsn, opened as it is given
// (read-only, say), not as the server opens it.
func integrityCheck(t *testing.T, dsn string) {
	t.Helper()
	db, err := sqlx.Open("sqlite3", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	checkIntegrity(t, db)
}
