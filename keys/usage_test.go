package keys_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/tenantry/tenantry/keys"
)

// A flush that fails (the database unreachable, here its table gone) keeps its counts for the
// next one: none is lost, none is counted twice.
func TestUsageFlushFailureKeepsCounts(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	svc := keys.NewService(db)
	svc.StartUsageRecorder(time.Hour, slog.New(slog.DiscardHandler))
	defer svc.Close()
	p, value := userKey(t, svc) // one use: userKey authenticates once
	const n = 9
	for range n {
		if _, err := svc.Authenticate(ctx, value); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Exec(`ALTER TABLE api_key_usage RENAME TO api_key_usage_away`); err != nil {
		t.Fatal(err)
	}
	svc.FlushUsage(ctx) // fails
	if _, err := db.Exec(`ALTER TABLE api_key_usage_away RENAME TO api_key_usage`); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Authenticate(ctx, value); err != nil { // one more, between the flushes
		t.Fatal(err)
	}
	svc.FlushUsage(ctx)
	var got int64
	if err := db.Get(&got, db.Rebind(`SELECT COALESCE(SUM(requests), 0) FROM api_key_usage WHERE key_id = ?`), p.KeyID); err != nil {
		t.Fatal(err)
	}
	if got != 1+n+1 {
		t.Fatalf("%d requests stored, want %d", got, 1+n+1)
	}
}
