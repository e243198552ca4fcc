package keys

import (
	"context"
	"database/sql"
	"log/slog"
	"sync"
	"time"
)

// UsageGranularity is how stale last_used_at may be: a key's use is written at most once
// per this interval, so authentication never writes to the database on the request path.
const UsageGranularity = time.Minute

// usageRecorder collects key uses in memory and writes them in batches.
type usageRecorder struct {
	db interface {
		ExecContext(context.Context, string, ...any) (sql.Result, error)
	}
	rebind   func(string) string
	log      *slog.Logger
	mu       sync.Mutex
	pending  map[string]time.Time // key id → time of use, to be written
	recorded map[string]time.Time // key id → time last queued, to skip repeats within a minute
	stop     chan struct{}
	done     chan struct{}
}

// StartUsageRecorder begins writing last_used_at every interval until Close. Without it, uses
// are not recorded (the CLI has no use for them).
func (s *Service) StartUsageRecorder(interval time.Duration, log *slog.Logger) {
	u := &usageRecorder{db: s.DB, rebind: s.DB.Rebind, log: log, pending: map[string]time.Time{},
		recorded: map[string]time.Time{}, stop: make(chan struct{}), done: make(chan struct{})}
	s.usage = u
	go u.run(interval)
}

// Close writes the uses still pending and stops the recorder and the cache's invalidation.
func (s *Service) Close() {
	if s.stopCache != nil {
		s.stopCache()
	}
	if s.usage != nil {
		close(s.usage.stop)
		<-s.usage.done
	}
}

// FlushUsage writes the uses recorded so far (tests call it instead of waiting).
func (s *Service) FlushUsage(ctx context.Context) {
	if s.usage != nil {
		s.usage.flush(ctx)
	}
}

// touch notes that key id was used at now, unless its stored or queued last use is recent.
func (u *usageRecorder) touch(id string, stored sql.NullTime, now time.Time) {
	if u == nil || (stored.Valid && now.Sub(stored.Time) < UsageGranularity) {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if last, ok := u.recorded[id]; ok && now.Sub(last) < UsageGranularity {
		return
	}
	u.recorded[id] = now
	u.pending[id] = now
}

func (u *usageRecorder) run(interval time.Duration) {
	defer close(u.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			u.flush(context.Background())
		case <-u.stop:
			u.flush(context.Background())
			return
		}
	}
}

func (u *usageRecorder) flush(ctx context.Context) {
	u.mu.Lock()
	batch := u.pending
	u.pending = map[string]time.Time{}
	now := time.Now()
	for id, at := range u.recorded {
		if now.Sub(at) >= UsageGranularity {
			delete(u.recorded, id) // bounded memory: only keys used in the last minute
		}
	}
	u.mu.Unlock()
	for id, at := range batch {
		at = at.UTC().Truncate(time.Microsecond)
		// Never moves last_used_at backwards (another replica may have written a later use).
		_, err := u.db.ExecContext(ctx, u.rebind(`UPDATE api_keys SET last_used_at = ?
			WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)`), at, id, at)
		if err != nil {
			u.log.Warn("recording key use failed", "key_id", id, "error", err.Error())
		}
	}
}
