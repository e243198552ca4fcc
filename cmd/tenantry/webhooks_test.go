package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tenantry/tenantry/migrations"
	"github.com/tenantry/tenantry/migrations/migrationstest"
	"github.com/tenantry/tenantry/server/servertest"
)

// webhookCountingReceiver answers slowly, so that deliveries are in flight when the server dies, and
// fails the first attempt of some events, so that retries are pending too. It counts the 2xx
// answers it gave per webhook-id.
type webhookCountingReceiver struct {
	mu        sync.Mutex
	delivered map[string]int // webhook-id → successful receipts
	seen      map[string]int // webhook-id → requests
	inFlight  int
}

func (rc *webhookCountingReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	id := r.Header.Get("webhook-id")
	rc.mu.Lock()
	rc.inFlight++
	rc.seen[id]++
	first := rc.seen[id] == 1
	rc.mu.Unlock()
	time.Sleep(60 * time.Millisecond)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.inFlight--
	if first && strings.HasSuffix(id, "7") {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	rc.delivered[id]++
}

func (rc *webhookCountingReceiver) snapshot() (distinct, total, inFlight int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, n := range rc.delivered {
		total += n
	}
	return len(rc.delivered), total, rc.inFlight
}

// Delivery is at least once from a durable outbox: kill -9 of the server in the middle of
// deliveries loses nothing. Deliveries in flight at the kill keep their lease until it
// expires and are then sent again by the restarted server (duplicates are allowed; receivers
// dedupe on webhook-id).
func TestWebhookDeliverySurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the real binary")
	}
	t.Parallel()
	dir := t.TempDir()
	dbPath := migrationstest.DSN(t)
	env := map[string]string{
		"TENANTRY_DATABASE":              dbPath,
		"TENANTRY_BOOTSTRAP_KEY_FILE":    filepath.Join(dir, "data", "bootstrap-partner-key"),
		"TENANTRY_WEBHOOK_ALLOW_PRIVATE": "true", // the receiver is on loopback
		"TENANTRY_WEBHOOK_POLL_INTERVAL": "20ms",
		"TENANTRY_WEBHOOK_TIMEOUT":       "2s", // lease: 2 × 2 s + 5 s = 9 s
		"TENANTRY_WEBHOOK_MAX_ATTEMPTS":  "10",
		"TENANTRY_WEBHOOK_BASE_BACKOFF":  "100ms",
		"TENANTRY_WEBHOOK_MAX_BACKOFF":   "500ms",
	}
	rc := &webhookCountingReceiver{delivered: map[string]int{}, seen: map[string]int{}}
	recv := httptest.NewServer(rc)
	defer recv.Close()

	first := startProcess(t, env)
	raw, err := os.ReadFile(filepath.Join(dir, "data", "bootstrap-partner-key"))
	if err != nil {
		t.Fatal(err)
	}
	partner := servertest.New(t, "http://"+first.Addr).As(strings.TrimSpace(string(raw)))
	r := partner.Do("POST", "/api/webhooks", map[string]any{"endpoint": recv.URL + "/hook", "event_types": []string{"role.created"}})
	if r.Status != 200 {
		t.Fatalf("create webhook: %d %s", r.Status, r.Body)
	}

	// N events, quickly, from several clients at once.
	const n, clients = 200, 8
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := c; i < n; i += clients {
				body, _ := json.Marshal(map[string]any{"name": fmt.Sprintf("role-%03d", i), "actions": []string{}})
				req, _ := http.NewRequest("POST", "http://"+first.Addr+"/api/permissions/roles", strings.NewReader(string(body)))
				req.Header.Set("Authorization", "Bearer "+partner.Key)
				req.Header.Set("Content-Type", "application/json")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					errs <- err.Error()
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					errs <- resp.Status
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatalf("creating an event: %s", e)
	}

	// Kill -9 in the middle of the deliveries: some done, many in flight.
	deadline := time.Now().Add(20 * time.Second)
	for {
		if d, _, inFlight := rc.snapshot(); d >= n/4 && inFlight >= 10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deliveries did not start:\n%s", first.Logs())
		}
		time.Sleep(5 * time.Millisecond)
	}
	first.Kill()
	killedAt := time.Now()
	deliveredBefore, _, inFlightAtKill := rc.snapshot()
	if deliveredBefore >= n {
		t.Fatalf("every event was delivered before the kill; the test proves nothing")
	}

	// What the outbox must deliver: every role.created event the database committed.
	db, err := migrations.Open(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var want []string
	if err := db.Select(&want, `SELECT id FROM events WHERE type = 'role.created'`); err != nil {
		t.Fatal(err)
	}
	var pendingAtKill, leasedAtKill int
	db.Get(&pendingAtKill, `SELECT COUNT(*) FROM webhook_deliveries WHERE state = 'pending'`)
	db.Get(&leasedAtKill, `SELECT COUNT(*) FROM webhook_deliveries WHERE state = 'pending' AND locked_until IS NOT NULL`)
	if len(want) != n {
		t.Fatalf("%d role.created events committed, want %d", len(want), n)
	}

	// Restart on the same database; everything arrives, within a bound.
	second := startProcess(t, env)
	restartedAt := time.Now()
	var allReceived time.Duration // from the restart until every event was received at least once
	deadline = time.Now().Add(30 * time.Second)
	for {
		missing := 0
		rc.mu.Lock()
		for _, id := range want {
			if rc.delivered[id] == 0 {
				missing++
			}
		}
		rc.mu.Unlock()
		// The outbox is drained too: a receipt whose answer the killed server never read is
		// sent again once its lease expires, and only then is the delivery marked delivered.
		if missing == 0 && allReceived == 0 {
			allReceived = time.Since(restartedAt)
		}
		var unsettled int
		db.Get(&unsettled, `SELECT COUNT(*) FROM webhook_deliveries WHERE state <> 'delivered'`)
		if missing == 0 && unsettled == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("30 s after the restart, %d of %d events never received and %d deliveries not delivered:\n%s", missing, n, unsettled, second.Logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
	drain := time.Since(killedAt)
	time.Sleep(200 * time.Millisecond) // let stragglers land before counting duplicates
	rc.mu.Lock()
	duplicates, extra := 0, 0
	for _, id := range want {
		if rc.delivered[id] > 1 {
			duplicates++
			extra += rc.delivered[id] - 1
		}
	}
	rc.mu.Unlock()
	if err := second.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := second.cmd.Wait(); err != nil {
		t.Fatalf("graceful stop: %v\n%s", err, second.Logs())
	}
	t.Logf("kill -9: %d events; %d received before the kill (%d requests in flight, %d deliveries pending of which %d leased); "+
		"every event received at least once %s after the restart; outbox drained (all delivered) %s after the kill, "+
		"the leases of the killed server (9 s) being the wait; %d events received twice or more (%d extra receipts); lost: 0",
		n, deliveredBefore, inFlightAtKill, pendingAtKill, leasedAtKill, allReceived.Round(10*time.Millisecond),
		drain.Round(10*time.Millisecond), duplicates, extra)
}
