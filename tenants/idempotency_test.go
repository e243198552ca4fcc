package tenants_test

import (
	"context"
	"testing"
	"time"

	"github.com/tenantry/tenantry/migrations/migrationstest"
	"github.com/tenantry/tenantry/tenants"
)

// A claim finishes and releases only its own record: once a retry has taken the key over (its
// holder stale), the first claim's release (tried again after an outage, say) leaves the
// retry's record in flight, and its finish is refused, so the request is done once.
func TestIdempotencyClaimsActOnTheirOwnRecord(t *testing.T) {
	ctx := context.Background()
	store := tenants.NewStore(migrationstest.Open(t))
	name := tenants.IdempotencyKey{Credential: "key-1", Key: "retry-1"}
	fingerprint := []byte("POST /api/organizations")
	const hours = 2 * time.Hour // not stale: a claim that finds the record in flight does not own it

	claim := func(stale time.Duration) (bool, tenants.IdempotencyKey, tenants.IdempotencyRecord) {
		t.Helper()
		owned, rec, err := store.ClaimIdempotencyKey(ctx, name, fingerprint, stale)
		if err != nil {
			t.Fatal(err)
		}
		k := name
		if owned {
			k.ClaimedAt = rec.UpdatedAt
		}
		return owned, k, rec
	}
	owned, first, _ := claim(hours)
	if !owned {
		t.Fatal("the first claim of a new key does not own it")
	}
	time.Sleep(2 * time.Microsecond) // claim times are to the microsecond
	owned, second, _ := claim(0)     // the first's holder taken for dead: stale at once
	if !owned || second.ClaimedAt.Equal(first.ClaimedAt) {
		t.Fatalf("the takeover: owned %v, claimed at %v (the first at %v)", owned, second.ClaimedAt, first.ClaimedAt)
	}

	if err := store.ReleaseIdempotencyKey(ctx, first); err != nil {
		t.Fatal(err)
	}
	if owned, _, rec := claim(hours); owned || rec.State != tenants.IdempotencyInFlight {
		t.Fatalf("after the first claim's release: owned %v, state %q; the retry's record must still be in flight", owned, rec.State)
	}
	if err := store.FinishIdempotencyKey(ctx, first, 201, "{}", []byte("sealed")); err == nil {
		t.Fatal("the first claim finished a record a retry had taken over")
	}
	if err := store.FinishIdempotencyKey(ctx, second, 201, "{}", []byte("sealed")); err != nil {
		t.Fatalf("the retry's own finish: %v", err)
	}
	if err := store.ReleaseIdempotencyKey(ctx, second); err != nil {
		t.Fatal(err)
	}
	if owned, _, rec := claim(hours); owned || rec.State != tenants.IdempotencyDone || rec.Status.Int64 != 201 {
		t.Fatalf("after the finish: owned %v, state %q, status %v; a release never drops a stored response", owned, rec.State, rec.Status)
	}
}
