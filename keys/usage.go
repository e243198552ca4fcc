package keys

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/tenantry/tenantry/tenants"
)

// Key usage is counted without a write on the request path: each authenticated request adds one
// to its key's count for the hour, in memory, and every interval the counts go to the database
// in one transaction, added to what is there (api_key_usage: requests = requests + this
// replica's count), so every replica's counts add up. last_used_at goes in the same
// transaction, at most once per UsageGranularity per key. A flush that fails keeps its counts
// for the next one, so none is lost while the process lives; a crash loses at most one
// interval's counts.

// UsageGranularity is how stale last_used_at may be: a key's use is written at most once
// per this interval.
const UsageGranularity = time.Minute

// usageRecorder counts key uses in memory and writes them in batches.
type usageRecorder struct {
	write func(ctx context.Context, fn func(tx *tenants.Tx) error) error
	now   func() time.Time
	log   *slog.Logger

	mu      sync.Mutex
	pending map[usageBucket]*usageCount // counted since the last flush

	flushing sync.Mutex           // one flush at a time (the ticker's, Close's, a test's)
	written  map[string]time.Time // key id → the last use written to last_used_at
	stop     chan struct{}
	done     chan struct{}
}

// usageBucket is one key's hour: the hour as Unix seconds of its start.
type usageBucket struct {
	keyID string
	hour  int64
}

type usageCount struct {
	requests int64
	last     time.Time // the latest use counted
}

// StartUsageRecorder begins counting key uses and writing them (and last_used_at) every
// interval until Close. Without it, uses are not recorded (the CLI has no use for them).
func (s *Service) StartUsageRecorder(interval time.Duration, log *slog.Logger) {
	u := &usageRecorder{write: s.Conn.Write, now: s.now, log: log, pending: map[usageBucket]*usageCount{},
		written: map[string]time.Time{}, stop: make(chan struct{}), done: make(chan struct{})}
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

// FlushUsage writes the uses counted so far (tests call it instead of waiting).
func (s *Service) FlushUsage(ctx context.Context) {
	if s.usage != nil {
		s.usage.flush(ctx)
	}
}

// count adds one request of key id at now. It runs on every authenticated request: a map
// update under a mutex, nothing more.
func (u *usageRecorder) count(id string, now time.Time) {
	if u == nil {
		return
	}
	b := usageBucket{id, now.Unix() - now.Unix()%3600}
	u.mu.Lock()
	c := u.pending[b]
	if c == nil {
		c = &usageCount{}
		u.pending[b] = c
	}
	c.requests++
	if now.After(c.last) {
		c.last = now
	}
	u.mu.Unlock()
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
	u.flushing.Lock()
	defer u.flushing.Unlock()
	u.mu.Lock()
	batch := u.pending
	u.pending = make(map[usageBucket]*usageCount, len(batch))
	u.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	lastUse := map[string]time.Time{} // the keys whose last_used_at is due
	for b, c := range batch {
		if c.last.After(lastUse[b.keyID]) && c.last.Sub(u.written[b.keyID]) >= UsageGranularity {
			lastUse[b.keyID] = c.last
		}
	}
	err := u.write(ctx, func(tx *tenants.Tx) error {
		for b, c := range batch {
			// A key deleted meanwhile (with its organization) has no row to count for: the
			// SELECT finds none and nothing is inserted.
			if _, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO api_key_usage (key_id, hour, requests)
				SELECT id, ?, ? FROM api_keys WHERE id = ?
				ON CONFLICT (key_id, hour) DO UPDATE SET requests = api_key_usage.requests + excluded.requests`),
				time.Unix(b.hour, 0).UTC(), c.requests, b.keyID); err != nil {
				return fmt.Errorf("add key usage: %w", err)
			}
		}
		for id, at := range lastUse {
			at = at.UTC().Truncate(time.Microsecond)
			// Never moves last_used_at backwards (another replica may have written a later use).
			if _, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE api_keys SET last_used_at = ?
				WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)`), at, id, at); err != nil {
				return fmt.Errorf("record key use: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		u.log.Warn("recording key usage failed; kept for the next attempt", "hours", len(batch), "error", err.Error())
		u.mu.Lock()
		for b, c := range batch {
			if p := u.pending[b]; p != nil {
				c.requests += p.requests
				if p.last.After(c.last) {
					c.last = p.last
				}
			}
			u.pending[b] = c
		}
		u.mu.Unlock()
		return
	}
	now := u.now()
	for id, at := range lastUse {
		u.written[id] = at
	}
	for id, at := range u.written {
		if now.Sub(at) >= UsageGranularity {
			delete(u.written, id) // bounded memory: only keys written in the last minute
		}
	}
}

// Reading usage. Counts reach the database within an interval of the recorder (5 s in the
// server): what a query returns lags the requests by at most that.

// UsageWindow is the hours a usage query covers: those that begin in [From, To).
type UsageWindow struct{ From, To time.Time }

// MaxUsageWindow bounds one query: 31 days, a month of hours (744 buckets at most).
const MaxUsageWindow = 31 * 24 * time.Hour

// Default windows: a key's hours of the last day; an organization's days of the last 30.
const (
	DefaultKeyUsageWindow          = 24 * time.Hour
	DefaultOrganizationUsageWindow = 30 * 24 * time.Hour
)

// UsageQuery is the window a usage query asks for, as sent (nil: the default).
type UsageQuery struct{ From, To *time.Time }

// window checks q: from (default: to minus def) is taken back to the start of its hour, to
// (default: now) is exclusive. from must come before to, and to at most MaxUsageWindow after it.
func (q UsageQuery) window(def time.Duration, now time.Time) (UsageWindow, error) {
	w := UsageWindow{To: now}
	if q.To != nil {
		w.To = *q.To
	}
	w.To = w.To.UTC().Truncate(time.Microsecond) // as times are stored, so SQL compares them right
	w.From = w.To.Add(-def)
	if q.From != nil {
		w.From = q.From.UTC()
	}
	w.From = w.From.Truncate(time.Hour)
	switch {
	case !w.From.Before(w.To):
		return w, tenants.FieldError("from", "must be before to (from is taken back to the start of its hour)")
	case w.To.Sub(w.From) > MaxUsageWindow:
		return w, tenants.FieldError("to", "must be at most 31 days (744 hours) after from; ask for a longer period in several requests")
	}
	return w, nil
}

// HourUsage is one hour's requests of a key.
type HourUsage struct {
	Hour     time.Time `json:"hour" db:"hour"`
	Requests int64     `json:"requests" db:"requests"`
}

// KeyUsage returns the requests of one key the caller may see (as GetKey), by hour, for the
// hours of the window (default: the last DefaultKeyUsageWindow) that had any, oldest first.
func (s *Service) KeyUsage(ctx context.Context, p *tenants.Principal, id string, in UsageQuery) ([]HourUsage, error) {
	w, err := in.window(DefaultKeyUsageWindow, s.now())
	if err != nil {
		return nil, err
	}
	q, err := s.Reader(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := visibleKey(ctx, q, p, id); err != nil {
		return nil, err
	}
	hours := []HourUsage{}
	if err := sqlx.SelectContext(ctx, q, &hours, q.Rebind(`SELECT hour, requests FROM api_key_usage
		WHERE key_id = ? AND hour >= ? AND hour < ? ORDER BY hour`), id, w.From, w.To); err != nil {
		return nil, fmt.Errorf("select key usage: %w", err)
	}
	for i := range hours {
		hours[i].Hour = hours[i].Hour.UTC()
	}
	return hours, nil
}

// KeyUsageTotal is one key's requests over a window, and by UTC day.
type KeyUsageTotal struct {
	KeyID    string                 `json:"key_id"`
	Name     string                 `json:"name"`
	Kind     tenants.CredentialKind `json:"kind"`
	UserID   *string                `json:"user_id"`
	Requests int64                  `json:"requests"`
	Days     []DayUsage             `json:"days"`
}

// DayUsage is one UTC day's requests of a key.
type DayUsage struct {
	Day      string `json:"day"` // YYYY-MM-DD
	Requests int64  `json:"requests"`
}

// usedKey is a key OrganizationUsage lists.
type usedKey struct {
	ID     string                 `db:"id"`
	Name   string                 `db:"name"`
	Kind   tenants.CredentialKind `db:"kind"`
	UserID sql.NullString         `db:"user_id"`
}

// OrganizationUsage pages through the keys of one of the partner's organizations that made
// requests in the window (default: the last DefaultOrganizationUsageWindow; revoked keys
// included; for the owner organization, the partner's own keys too), in order of creation,
// each with its total and its days.
func (s *Service) OrganizationUsage(ctx context.Context, p *tenants.Principal, orgID string, in UsageQuery, page tenants.PageQuery) (tenants.Page[KeyUsageTotal], error) {
	if err := p.RequirePartner(); err != nil {
		return tenants.Page[KeyUsageTotal]{}, err
	}
	w, err := in.window(DefaultOrganizationUsageWindow, s.now())
	if err != nil {
		return tenants.Page[KeyUsageTotal]{}, err
	}
	q, err := s.Reader(ctx)
	if err != nil {
		return tenants.Page[KeyUsageTotal]{}, err
	}
	if _, err := tenants.PartnerOrganization(ctx, q, p, orgID); err != nil {
		return tenants.Page[KeyUsageTotal]{}, err
	}
	var keys []usedKey
	if err := sqlx.SelectContext(ctx, q, &keys, q.Rebind(`SELECT k.id, k.name, k.kind, k.user_id FROM api_keys k
		WHERE k.org_id = ? AND k.id > ? AND EXISTS (SELECT 1 FROM api_key_usage u WHERE u.key_id = k.id AND u.hour >= ? AND u.hour < ?)
		ORDER BY k.id LIMIT ?`), orgID, page.After, w.From, w.To, page.Limit+1); err != nil {
		return tenants.Page[KeyUsageTotal]{}, fmt.Errorf("select keys with usage: %w", err)
	}
	keys, next := tenants.TrimPage(keys, page.Limit, func(k usedKey) string { return k.ID })
	out := make([]KeyUsageTotal, len(keys))
	index := map[string]int{}
	ids := make([]string, len(keys))
	for i, k := range keys {
		out[i] = KeyUsageTotal{KeyID: k.ID, Name: k.Name, Kind: k.Kind, UserID: nullString(k.UserID), Days: []DayUsage{}}
		index[k.ID], ids[i] = i, k.ID
	}
	if len(ids) == 0 {
		return tenants.Page[KeyUsageTotal]{Items: out, Next: next}, nil
	}
	query, args, err := sqlx.In(`SELECT key_id, hour, requests FROM api_key_usage
		WHERE key_id IN (?) AND hour >= ? AND hour < ? ORDER BY key_id, hour`, ids, w.From, w.To)
	if err != nil {
		return tenants.Page[KeyUsageTotal]{}, err
	}
	var hours []struct {
		KeyID string `db:"key_id"`
		HourUsage
	}
	if err := sqlx.SelectContext(ctx, q, &hours, q.Rebind(query), args...); err != nil {
		return tenants.Page[KeyUsageTotal]{}, fmt.Errorf("select key usage: %w", err)
	}
	for _, h := range hours {
		k := &out[index[h.KeyID]]
		k.Requests += h.Requests
		day := h.Hour.UTC().Format(time.DateOnly)
		if n := len(k.Days); n > 0 && k.Days[n-1].Day == day {
			k.Days[n-1].Requests += h.Requests
		} else {
			k.Days = append(k.Days, DayUsage{Day: day, Requests: h.Requests})
		}
	}
	return tenants.Page[KeyUsageTotal]{Items: out, Next: next}, nil
}
