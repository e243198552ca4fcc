package tenants

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Retention is how long what the server keeps for a while is kept.
type Retention struct {
	IdempotencyKeys time.Duration // Idempotency-Key records
	Events          time.Duration // events, the webhook deliveries that carried them, and key usage
}

// Swept counts what Sweep deleted.
type Swept struct{ IdempotencyKeys, Deliveries, Events, Usage int64 }

// Sweep deletes what has outlived its retention. It goes on past a failed step, and returns
// every step's error.
func (s *Store) Sweep(ctx context.Context, r Retention) (Swept, error) {
	var out Swept
	var errs []error
	sweep := func(what string, n *int64, query string, before time.Time) {
		res, err := s.DB.ExecContext(ctx, s.DB.Rebind(query), before)
		if err != nil {
			errs = append(errs, fmt.Errorf("sweep %s: %w", what, err))
			return
		}
		*n, _ = res.RowsAffected()
	}
	now := Now()
	sweep("idempotency keys", &out.IdempotencyKeys, `DELETE FROM idempotency_keys WHERE created_at < ?`, now.Add(-r.IdempotencyKeys))
	// Finished deliveries (and their attempts, by cascade) go with the events they carried.
	sweep("webhook deliveries", &out.Deliveries, `DELETE FROM webhook_deliveries WHERE state <> 'pending' AND created_at < ?`, now.Add(-r.Events))
	sweep("events", &out.Events, `DELETE FROM events WHERE created_at < ?`, now.Add(-r.Events))
	// Key usage is what partners bill on, and is kept as long as the audit log: the hours that
	// ended before the events' horizon go.
	sweep("key usage", &out.Usage, `DELETE FROM api_key_usage WHERE hour < ?`, now.Add(-r.Events-time.Hour))
	return out, errors.Join(errs...)
}
