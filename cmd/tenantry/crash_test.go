package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/tenantry/tenantry/migrations"
	"github.com/tenantry/tenantry/migrations/migrationstest"
	"github.com/tenantry/tenantry/server/servertest"
)

// Kill -9 in the middle of concurrent writes loses nothing that was acknowledged: every write
// that got a 2xx is there after a restart, and SQLite's integrity check passes.
func TestCrashLosesNoAcknowledgedWrite(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	dsn := migrationstest.DSN(t)
	env := map[string]string{"TENANTRY_DATABASE": dsn, "TENANTRY_BOOTSTRAP_KEY_FILE": filepath.Join(dir, "key")}
	p := startProcess(t, env)
	raw, err := os.ReadFile(filepath.Join(dir, "key"))
	if err != nil {
		t.Fatal(err)
	}
	key := strings.TrimSpace(string(raw))

	var acked sync.Map // organization name → id, for every 2xx
	var sent, ok atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := servertest.New(t, "http://"+p.Addr).As(key)
			for i := 0; i < 2000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				name := fmt.Sprintf("crash-%d-%04d", w, i)
				sent.Add(1)
				r, err := c.TryDo("POST", "/api/provision", map[string]any{"organization": map[string]any{"name": name},
					"user": map[string]any{"email": "root@crash.test"}})
				if err != nil {
					return // the server is gone
				}
				if r.Status == 200 {
					ok.Add(1)
					acked.Store(name, r.Data()["organization"].(map[string]any)["id"])
				}
			}
		}()
	}
	// Kill once a good number of writes are through, while the rest are in flight.
	deadline := time.Now().Add(20 * time.Second)
	for ok.Load() < 150 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	p.Kill()
	close(stop)
	wg.Wait()
	if ok.Load() == 0 {
		t.Fatalf("no write succeeded before the kill:\n%s", p.Logs())
	}

	// Restart on the same database: every acknowledged organization is there.
	p2 := startProcess(t, env)
	c := servertest.New(t, "http://"+p2.Addr).As(key)
	present := map[string]bool{}
	for _, o := range c.Do("GET", "/api/organizations", nil).List() {
		present[o["name"].(string)] = true
	}
	missing := 0
	acked.Range(func(name, _ any) bool {
		if !present[name.(string)] {
			missing++
			t.Errorf("organization %s was acknowledged but is gone after the crash", name)
		}
		return true
	})
	t.Logf("sent %d writes, %d acknowledged before the kill, %d lost", sent.Load(), ok.Load(), missing)
	p2.Kill()
	if migrationstest.Backend() == "sqlite" {
		db, err := migrations.Open(dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		checkIntegrity(t, db)
	}
}

// checkIntegrity runs SQLite's integrity check on db: "ok", or the test fails.
func checkIntegrity(t *testing.T, db *sqlx.DB) {
	t.Helper()
	var result string
	if err := db.Get(&result, `PRAGMA integrity_check`); err != nil || result != "ok" {
		t.Fatalf("integrity_check: %q, %v", result, err)
	}
}
