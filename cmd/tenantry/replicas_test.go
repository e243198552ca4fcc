package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenantry/tenantry/migrations/migrationstest"
	"github.com/tenantry/tenantry/server/servertest"
)

// Two server processes on one PostgreSQL behave as one service: what one replica does, the
// other honours on its next request.
func TestTwoReplicasOnPostgres(t *testing.T) {
	if migrationstest.Backend() != "postgres" {
		t.Skip("needs PostgreSQL: run with TENANTRY_TEST_BACKEND=postgres and TENANTRY_TEST_POSTGRES_URL (make test does)")
	}
	t.Parallel()
	dsn := migrationstest.DSN(t)
	dir := t.TempDir()
	// Both start at once: migrations take turns, and exactly one bootstraps a partner.
	var a, b *process
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		a = startProcess(t, map[string]string{"TENANTRY_DATABASE": dsn, "TENANTRY_BOOTSTRAP_KEY_FILE": filepath.Join(dir, "a-key")})
	}()
	go func() {
		defer wg.Done()
		b = startProcess(t, map[string]string{"TENANTRY_DATABASE": dsn, "TENANTRY_BOOTSTRAP_KEY_FILE": filepath.Join(dir, "b-key")})
	}()
	wg.Wait()
	var partnerKey string
	for _, f := range []string{"a-key", "b-key"} {
		if raw, err := os.ReadFile(filepath.Join(dir, f)); err == nil {
			if partnerKey != "" {
				t.Fatalf("both replicas bootstrapped a partner")
			}
			partnerKey = strings.TrimSpace(string(raw))
		}
	}
	if partnerKey == "" {
		t.Fatalf("no replica bootstrapped a partner:\n%s\n%s", a.Logs(), b.Logs())
	}
	ra := servertest.New(t, "http://"+a.Addr).As(partnerKey)
	rb := servertest.New(t, "http://"+b.Addr).As(partnerKey)
	replica := func(i int) *servertest.Client {
		if i%2 == 0 {
			return ra
		}
		return rb
	}

	// 1. The same idempotent POST raced through both creates one organization.
	const n = 30
	bodies := make([][]byte, n)
	statuses := make([]int, n)
	wg.Add(n)
	for i := range n {
		go func() {
			defer wg.Done()
			r := replica(i).Do("POST", "/api/organizations", map[string]any{"name": "Raced"}, "Idempotency-Key", "raced-through-replicas")
			statuses[i], bodies[i] = r.Status, r.Body
		}()
	}
	wg.Wait()
	var created []byte
	for i := range n {
		switch {
		case statuses[i] == 200 && (created == nil || bytes.Equal(created, bodies[i])):
			created = bodies[i]
		case statuses[i] == 409:
		default:
			t.Fatalf("raced create: %d %s", statuses[i], bodies[i])
		}
	}
	raced := 0
	for _, o := range ra.Do("GET", "/api/organizations", nil).List() {
		if o["name"] == "Raced" {
			raced++
		}
	}
	if raced != 1 || created == nil {
		t.Fatalf("%d organizations named Raced, want 1", raced)
	}

	// 2. Concurrent force=true mints through both leave exactly one active key.
	org := ra.Do("POST", "/api/organizations", map[string]any{"name": "Minted"}).Data()["id"].(string)
	user := ra.Do("POST", "/api/organizations/"+org+"/users", map[string]any{"email": "root@minted.test", "role": "admin"}).Data()["id"].(string)
	values := make([]string, n)
	wg.Add(n)
	for i := range n {
		go func() {
			defer wg.Done()
			r := replica(i).Do("POST", "/api/organizations/"+org+"/users/"+user+"/keys?force=true", nil)
			if r.Status != 200 {
				t.Errorf("forced mint: %d %s", r.Status, r.Body)
				return
			}
			values[i] = r.Data()["value"].(string)
		}()
	}
	wg.Wait()
	active, working := 0, ""
	for _, k := range ra.Do("GET", "/api/organizations/"+org+"/keys?limit=100", nil).List() {
		if k["revoked_at"] == nil {
			active++
		}
	}
	for _, v := range values {
		if v != "" && servertest.New(t, "http://"+b.Addr).As(v).Do("GET", "/api/me", nil).Status == 200 {
			if working != "" {
				t.Fatalf("two forced keys work")
			}
			working = v
		}
	}
	if active != 1 || working == "" {
		t.Fatalf("%d active keys after concurrent forced mints, want 1", active)
	}

	// 3. A revocation, a role change and a user deletion through one replica are honoured by
	// the other (which has the credentials cached) within a second.
	within := func(what string, ok func() bool) {
		t.Helper()
		start := time.Now()
		for !ok() {
			if time.Since(start) > time.Second {
				t.Fatalf("B does not honour %s made through A after %v", what, time.Since(start))
			}
			time.Sleep(2 * time.Millisecond)
		}
		t.Logf("B honoured %s made through A %v after A answered", what, time.Since(start).Round(time.Millisecond))
	}
	onB := func(key string) *servertest.Client { return servertest.New(t, "http://"+b.Addr).As(key) }
	userOnB := onB(working)
	if r := userOnB.Do("GET", "/api/me", nil); r.Status != 200 {
		t.Fatalf("before revocation: %d", r.Status)
	}
	keyID := userOnB.Do("GET", "/api/me", nil).Data()["key_id"].(string)
	if r := ra.Do("DELETE", "/api/organizations/"+org+"/keys/"+keyID, nil); r.Status != 200 {
		t.Fatalf("revoke through A: %d %s", r.Status, r.Body)
	}
	within("a revocation", func() bool { return userOnB.Do("GET", "/api/me", nil).Status == 401 })
	other := ra.Do("POST", "/api/organizations/"+org+"/users", map[string]any{"email": "other@minted.test", "role": "admin"}).Data()["id"].(string)
	otherOnB := onB(ra.Do("POST", "/api/organizations/"+org+"/users/"+other+"/keys", nil).Data()["value"].(string))
	if r := otherOnB.Do("GET", "/api/organization/users", nil); r.Status != 200 {
		t.Fatalf("an admin on B: %d", r.Status)
	}
	if r := ra.Do("PUT", "/api/organizations/"+org+"/users/"+other, map[string]any{"email": "other@minted.test", "role": "user"}); r.Status != 200 {
		t.Fatalf("demote through A: %d %s", r.Status, r.Body)
	}
	within("a role change", func() bool {
		return otherOnB.Do("POST", "/api/organization/users", map[string]any{"email": "x@minted.test"}).Status == 403
	})
	if r := ra.Do("DELETE", "/api/organizations/"+org+"/users/"+other, nil); r.Status != 200 {
		t.Fatalf("delete through A: %d %s", r.Status, r.Body)
	}
	within("a user deletion", func() bool { return otherOnB.Do("GET", "/api/me", nil).Status == 401 })

	// 4. Signing keys rotated through one are honoured by the other, within a second.
	root := ra.Do("POST", "/api/organizations/"+org+"/users/"+user+"/keys?force=true", nil).Data()["value"].(string)
	userOnA := servertest.New(t, "http://"+a.Addr).As(root)
	first := userOnA.Do("POST", "/api/auth/tokens", nil).Data()["token"].(string)
	if r := servertest.New(t, "http://"+b.Addr).As(first).Do("GET", "/api/me", nil); r.Status != 200 {
		t.Fatalf("B refuses a token A minted: %d", r.Status)
	}
	var out, errs bytes.Buffer
	if err := (&Main{Stdout: &out, Stderr: &errs}).Run(context.Background(), []string{"signing-key", "rotate", "--database", dsn}); err != nil {
		t.Fatalf("rotate: %v\n%s", err, errs.String())
	}
	second := userOnA.Do("POST", "/api/auth/tokens", nil).Data()["token"].(string)
	if strings.Split(second, ".")[0] == strings.Split(first, ".")[0] {
		t.Fatalf("A did not sign with the new key")
	}
	start := time.Now()
	for {
		r := servertest.New(t, "http://"+b.Addr).As(second).Do("GET", "/api/me", nil)
		if r.Status == 200 {
			break
		}
		if time.Since(start) > 1500*time.Millisecond {
			t.Fatalf("B still refuses a token signed with the rotated key after %v", time.Since(start))
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("B honoured the new signing key %v after the rotation", time.Since(start).Round(time.Millisecond))
	if r := servertest.New(t, "http://"+b.Addr).As(first).Do("GET", "/api/me", nil); r.Status != 200 {
		t.Fatalf("a token of the previous signing key stopped working: %d", r.Status)
	}
}
