package server_test

import (
	"bytes"
	"sync"
	"testing"
	"time"
)

func TestIdempotentRetries(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	key := []string{"Idempotency-Key", "create-acme-0001"}
	first := e.partner.Do("POST", "/api/organizations", map[string]any{"name": "Acme"}, key...)
	expect(t, first, 200, "")
	again := e.partner.Do("POST", "/api/organizations", map[string]any{"name": "Acme"}, key...)
	expect(t, again, 200, "")
	if !bytes.Equal(first.Body, again.Body) || again.Header.Get("Idempotent-Replayed") != "true" || first.Header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("a repeat must replay the first response byte for byte:\n%s\n%s\n%v", first.Body, again.Body, again.Header)
	}
	if n := len(e.partner.Do("GET", "/api/organizations", nil).List()); n != 2 {
		t.Fatalf("%d organizations, want the owner and Acme", n)
	}
	// The same key with another request is refused; other keys and other credentials are separate.
	expect(t, e.partner.Do("POST", "/api/organizations", map[string]any{"name": "Other"}, key...), 422, "idempotency_key_reused")
	expect(t, e.partner.Do("POST", "/api/organizations?x=1", map[string]any{"name": "Acme"}, key...), 422, "idempotency_key_reused")
	expect(t, e.partner.Do("PUT", "/api/organizations/"+first.Data()["id"].(string), map[string]any{"name": "Acme"}, key...), 422, "idempotency_key_reused")
	other, _ := e.newPartner("Partner B")
	expect(t, other.Do("POST", "/api/organizations", map[string]any{"name": "Acme"}, key...), 200, "")

	// Errors replay too.
	bad := []string{"Idempotency-Key", "bad-request-01"}
	r1 := e.partner.Do("POST", "/api/organizations", map[string]any{"name": ""}, bad...)
	expect(t, r1, 400, "validation_failed")
	r2 := e.partner.Do("POST", "/api/organizations", map[string]any{"name": ""}, bad...)
	if !bytes.Equal(r1.Body, r2.Body) || r2.Header.Get("Idempotent-Replayed") != "true" || r2.Status != 400 {
		t.Fatalf("an error must replay: %d %s %v", r2.Status, r2.Body, r2.Header)
	}
	// Key format, and reads ignore the header.
	for _, k := range []string{"short", "has space in it", "ünïcödé-key", string(bytes.Repeat([]byte("a"), 256))} {
		expect(t, e.partner.Do("POST", "/api/organizations", map[string]any{"name": "X"}, "Idempotency-Key", k), 400, "invalid_idempotency_key")
	}
	expect(t, e.partner.Do("GET", "/api/organizations", nil, "Idempotency-Key", "x"), 200, "")
	// A key's replay carries its Cache-Control: a minted key is replayed, never re-minted.
	u := e.createUser(e.partner, first.Data()["id"].(string), "ada@acme.test", "admin")
	mk := []string{"Idempotency-Key", "mint-ada-key-01"}
	k1 := e.partner.Do("POST", "/api/organizations/"+first.Data()["id"].(string)+"/users/"+u+"/keys", nil, mk...)
	k2 := e.partner.Do("POST", "/api/organizations/"+first.Data()["id"].(string)+"/users/"+u+"/keys", nil, mk...)
	if k1.Status != 200 || !bytes.Equal(k1.Body, k2.Body) || k2.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("minting replayed: %d %s / %s", k1.Status, k1.Body, k2.Body)
	}
}

// Fifty identical requests at once create one organization; the rest wait their turn (409
// in use) or replay it.
func TestIdempotencyUnderConcurrency(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const n = 50
	var wg sync.WaitGroup
	statuses := make([]int, n)
	bodies := make([][]byte, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := e.partner.Do("POST", "/api/organizations", map[string]any{"name": "Once"}, "Idempotency-Key", "concurrent-create-1")
			statuses[i], bodies[i] = r.Status, r.Body
		}()
	}
	wg.Wait()
	var created []byte
	for i := range n {
		switch statuses[i] {
		case 200:
			if created != nil && !bytes.Equal(created, bodies[i]) {
				t.Fatalf("two different successes:\n%s\n%s", created, bodies[i])
			}
			created = bodies[i]
		case 409:
		default:
			t.Fatalf("status %d: %s", statuses[i], bodies[i])
		}
	}
	var count int
	e.db.Get(&count, `SELECT COUNT(*) FROM organizations WHERE name = 'Once'`)
	if count != 1 || created == nil {
		t.Fatalf("%d organizations created, want exactly 1", count)
	}
}

// A record left in flight by a process that died is taken over after a while, not stuck.
func TestIdempotencyStaleInFlight(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	key := []string{"Idempotency-Key", "crashed-request-1"}
	r := e.partner.Do("POST", "/api/organizations", map[string]any{"name": "Acme"}, key...)
	expect(t, r, 200, "")
	// Pretend the request is still running.
	e.db.MustExec(e.db.Rebind(`UPDATE idempotency_keys SET state = 'in_flight', updated_at = ? WHERE idem_key = ?`), time.Now().UTC(), "crashed-request-1")
	expect(t, e.partner.Do("POST", "/api/organizations", map[string]any{"name": "Acme"}, key...), 409, "idempotency_key_in_use")
	// Pretend it has been dead for ten minutes (its change never committed).
	e.db.MustExec(`DELETE FROM organizations WHERE name = 'Acme'`)
	e.db.MustExec(e.db.Rebind(`UPDATE idempotency_keys SET updated_at = ? WHERE idem_key = ?`), time.Now().Add(-10*time.Minute).UTC(), "crashed-request-1")
	expect(t, e.partner.Do("POST", "/api/organizations", map[string]any{"name": "Acme"}, key...), 200, "")
}
