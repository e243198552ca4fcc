// Package delivery sends webhook deliveries from the outbox (table webhook_deliveries, filled
// by tenants.RecordEvent in the transaction of each change) to their endpoints: signed,
// retried with exponential backoff and full jitter, each attempt recorded.
//
// Delivery is at least once. A worker claims a due delivery by setting its lease
// (locked_until) with a conditional UPDATE, so two workers, in one process or in several
// replicas on one database, never send the same delivery at the same time. The lease outlives
// an attempt (2 × Timeout + 5 s): if the process dies mid-attempt, the delivery stays pending
// and another worker (or this one, restarted) sends it again once the lease has expired. A
// receiver may therefore see a delivery twice; webhook-id (the event id) lets it dedupe.
package delivery

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/tenantry/tenantry/tenants"
)

// Config tunes delivery; zero values are the documented defaults.
type Config struct {
	// AllowPrivate lets webhooks reach loopback, private, link-local and other non-public
	// addresses, and use plain http (default false: refused at creation and at connection).
	AllowPrivate bool
	// PollInterval is how often the outbox is read for due deliveries (default 1 s). A poll
	// that finds a full batch is followed by another at once.
	PollInterval time.Duration
	// BatchSize is how many deliveries one worker claims per poll and has in flight at most
	// (default 20).
	BatchSize int
	// Timeout bounds one attempt: connecting, sending and reading the answer (default 10 s).
	Timeout time.Duration
	// MaxAttempts is how many times a delivery is attempted before it is failed (default 5).
	MaxAttempts int
	// BaseBackoff and MaxBackoff shape the wait after failed attempt n (n = 1, 2, ...):
	// uniformly random in [0, min(MaxBackoff, BaseBackoff × 2^(n-1))] ("full jitter").
	// Defaults 4 min and 1 h: with 5 attempts the waits are at most 4, 8, 16 and 32 min, so a
	// delivery is settled at most about an hour after its first attempt (half that on average).
	BaseBackoff time.Duration
	MaxBackoff  time.Duration
	// Disabled leaves deliveries queued without sending them (for a replica that only serves
	// the API): Start does nothing. Endpoints are still checked at creation.
	Disabled bool
	// OnAttempt, when set, is told the result of every recorded attempt (for metrics).
	OnAttempt func(delivered bool)
	// Sealer opens webhook secrets sealed at rest (nil: they are stored as given).
	Sealer *tenants.Sealer
}

// The defaults.
const (
	DefaultPollInterval = time.Second
	DefaultBatchSize    = 20
	DefaultTimeout      = 10 * time.Second
	DefaultMaxAttempts  = 5
	DefaultBaseBackoff  = 4 * time.Minute
	DefaultMaxBackoff   = time.Hour
)

// WithDefaults returns c with every zero value replaced by its default.
func (c Config) WithDefaults() Config {
	orDefault(&c.PollInterval, DefaultPollInterval)
	orDefault(&c.BatchSize, DefaultBatchSize)
	orDefault(&c.Timeout, DefaultTimeout)
	orDefault(&c.MaxAttempts, DefaultMaxAttempts)
	orDefault(&c.BaseBackoff, DefaultBaseBackoff)
	orDefault(&c.MaxBackoff, DefaultMaxBackoff)
	if c.MaxBackoff < c.BaseBackoff {
		c.MaxBackoff = c.BaseBackoff
	}
	return c
}

// orDefault sets *v to def when it is zero or negative (unset).
func orDefault[T int | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// Guard is the endpoint guard c configures.
func (c Config) Guard() Guard { return Guard{AllowPrivate: c.AllowPrivate} }

// Lease is how long a claimed delivery stays locked: an attempt's Timeout twice over, plus
// time to record its outcome.
func (c Config) Lease() time.Duration { return 2*c.WithDefaults().Timeout + 5*time.Second }

// Backoff is the wait after failed attempt n (1-based) with full jitter.
func (c Config) Backoff(n int) time.Duration {
	c = c.WithDefaults()
	ceiling := c.BaseBackoff
	for i := 1; i < n && ceiling < c.MaxBackoff; i++ {
		ceiling *= 2
	}
	ceiling = min(ceiling, c.MaxBackoff)
	return time.Duration(rand.Int64N(int64(ceiling) + 1))
}

// Limits on what is read from, and recorded about, a receiver.
const (
	maxResponseBytes = 64 << 10 // read (and dropped) from each answer, so the connection can be reused
	maxErrorLength   = 500      // characters of an attempt's error kept
	UserAgent        = "Tenantry-Webhooks/1"
)

// Worker sends due deliveries until stopped.
type Worker struct {
	cfg    Config
	db     *sqlx.DB
	log    *slog.Logger
	client *http.Client

	slots    chan struct{} // one per delivery in flight
	inflight sync.WaitGroup
	stop     chan struct{}
	wake     chan struct{} // Wake: deliveries were queued, poll now
	done     chan struct{}
	start    sync.Once
	stopOnce sync.Once
}

// New returns a worker on db; Start it to send.
func New(db *sqlx.DB, log *slog.Logger, cfg Config) *Worker {
	cfg = cfg.WithDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dialer := &net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}
	if !cfg.AllowPrivate {
		dialer.Control = cfg.Guard().control
	}
	transport := &http.Transport{
		Proxy:                 nil, // a proxy would be the address dialed, defeating the guard
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   cfg.Timeout,
		ResponseHeaderTimeout: cfg.Timeout,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
	}
	return &Worker{
		cfg: cfg, db: db, log: log,
		client: &http.Client{
			Transport: transport,
			Timeout:   cfg.Timeout,
			// A redirect is an answer (a failed attempt), never followed: following it would
			// send the signed event somewhere the organization did not configure.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		slots: make(chan struct{}, cfg.BatchSize),
		stop:  make(chan struct{}),
		wake:  make(chan struct{}, 1),
		done:  make(chan struct{}),
	}
}

// Start begins polling in the background (once; nothing when delivery is disabled).
func (w *Worker) Start() {
	w.start.Do(func() {
		if w.cfg.Disabled {
			close(w.done)
			return
		}
		go w.run()
	})
}

// Stop stops polling and waits for the attempts in flight to finish, at most Timeout plus a
// few seconds; it returns then even if some have not (their leases expire and another worker
// retries them). Safe to call more than once, and without Start.
func (w *Worker) Stop() {
	w.stopOnce.Do(func() {
		close(w.stop)
		w.start.Do(func() { close(w.done) }) // never started: nothing runs
		<-w.done
		finished := make(chan struct{})
		go func() { w.inflight.Wait(); close(finished) }()
		select {
		case <-finished:
		case <-time.After(w.cfg.Timeout + 5*time.Second):
			w.log.Warn("webhook deliveries still in flight at shutdown; they will be retried once their lease expires")
		}
	})
}

func (w *Worker) run() {
	defer close(w.done)
	ticker := time.NewTicker(w.cfg.PollInterval)
	defer ticker.Stop()
	for {
		full := w.poll()
		if full {
			select {
			case <-w.stop:
				return
			default:
				continue // a backlog: claim more at once
			}
		}
		select {
		case <-w.stop:
			return
		case <-ticker.C:
		case <-w.wake:
		}
	}
}

// Wake has the worker poll now rather than at its next tick: a transaction that queued
// deliveries has committed (the server calls it from a commit hook). It never blocks.
func (w *Worker) Wake() {
	select {
	case w.wake <- struct{}{}:
	default: // a wake-up is pending already
	}
}

// poll claims due deliveries up to the free slots and starts sending them. It reports whether
// it filled every free slot (there may be more due).
func (w *Worker) poll() bool {
	free := cap(w.slots) - len(w.slots)
	if free == 0 {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	now := tenants.Now()
	var ids []string
	err := sqlx.SelectContext(ctx, w.db, &ids, w.db.Rebind(`SELECT d.id FROM webhook_deliveries d
		JOIN webhooks h ON h.id = d.webhook_id
		WHERE d.state = 'pending' AND d.next_attempt_at <= ? AND (d.locked_until IS NULL OR d.locked_until < ?) AND h.enabled = TRUE
		ORDER BY d.next_attempt_at, d.id LIMIT ?`), now, now, free)
	if err != nil {
		w.log.Error("reading the webhook outbox failed", "error", err.Error())
		return false
	}
	claimed := 0
	for _, id := range ids {
		select {
		case <-w.stop:
			return false
		default:
		}
		lease := tenants.Now().Add(w.cfg.Lease())
		ok, err := w.claim(ctx, id, lease)
		if err != nil {
			w.log.Error("claiming a webhook delivery failed", "delivery_id", id, "error", err.Error())
			continue
		}
		if !ok {
			continue // another worker has it, or it is no longer due
		}
		claimed++
		w.slots <- struct{}{}
		w.inflight.Add(1)
		go func() {
			defer func() { <-w.slots; w.inflight.Done() }()
			w.deliver(id)
		}()
	}
	return len(ids) == free && claimed > 0
}

// claim takes the lease of a due delivery; false when another worker holds it or it is no
// longer pending and due. The conditional UPDATE is the lock: of two workers racing for one
// delivery, exactly one changes the row.
func (w *Worker) claim(ctx context.Context, id string, lease time.Time) (bool, error) {
	now := tenants.Now()
	res, err := w.db.ExecContext(ctx, w.db.Rebind(`UPDATE webhook_deliveries SET locked_until = ?
		WHERE id = ? AND state = 'pending' AND next_attempt_at <= ? AND (locked_until IS NULL OR locked_until < ?)`),
		lease, id, now, now)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// job is a claimed delivery with what sending it needs.
type job struct {
	ID        string `db:"id"`
	WebhookID string `db:"webhook_id"`
	EventID   string `db:"event_id"`
	Payload   string `db:"payload"`
	Attempts  int    `db:"attempts"`
	Endpoint  string `db:"endpoint"`
	Secret    string `db:"secret"`
	Enabled   bool   `db:"enabled"`
}

// outcome is what one attempt got.
type outcome struct {
	at      time.Time
	status  int // 0 when no response came back
	err     string
	latency time.Duration
}

func (o outcome) ok() bool { return o.status >= 200 && o.status < 300 }

// deliver makes one attempt of a claimed delivery and records it. It runs to its end even
// while the worker stops: the attempt is bounded by Timeout.
func (w *Worker) deliver(id string) {
	ctx := context.Background()
	var j job
	err := sqlx.GetContext(ctx, w.db, &j, w.db.Rebind(`SELECT d.id, d.webhook_id, d.event_id, d.payload, d.attempts,
		h.endpoint, h.secret, h.enabled FROM webhook_deliveries d JOIN webhooks h ON h.id = d.webhook_id
		WHERE d.id = ? AND d.state = 'pending'`), id)
	if errors.Is(err, sql.ErrNoRows) {
		return // its webhook was deleted or disabled since the claim
	}
	if err != nil {
		w.log.Error("loading a webhook delivery failed", "delivery_id", id, "error", err.Error())
		return // the lease expires and it is retried
	}
	if !j.Enabled {
		w.release(ctx, id)
		return
	}
	if j.Secret, err = w.cfg.Sealer.OpenString(j.Secret, tenants.SealedAt("webhooks", "secret", j.WebhookID)); err != nil {
		// This replica lacks the secret key (a rotation not copied to it yet): no attempt is
		// spent; the lease expires and a replica that has the key sends it.
		w.log.Error("a webhook secret does not open; the delivery waits for its lease to expire", "webhook_id", j.WebhookID,
			"delivery_id", id, "error", err.Error())
		return
	}
	o := w.send(j)
	err = w.record(ctx, j, o)
	if err == nil && w.cfg.OnAttempt != nil {
		w.cfg.OnAttempt(o.ok())
	}
	if errors.Is(err, errGone) {
		return
	} else if err != nil {
		w.log.Error("recording a webhook attempt failed; it will be retried once its lease expires",
			"delivery_id", id, "error", err.Error())
		return
	}
	level := slog.LevelDebug
	if !o.ok() {
		level = slog.LevelWarn
	}
	w.log.Log(ctx, level, "webhook attempt", "webhook_id", j.WebhookID, "delivery_id", j.ID, "event_id", j.EventID,
		"attempt", j.Attempts+1, "status", o.status, "error", o.err, "latency_ms", o.latency.Milliseconds())
}

// release gives a claimed delivery back without attempting it.
func (w *Worker) release(ctx context.Context, id string) {
	if _, err := w.db.ExecContext(ctx, w.db.Rebind(`UPDATE webhook_deliveries SET locked_until = NULL
		WHERE id = ? AND state = 'pending'`), id); err != nil {
		w.log.Error("releasing a webhook delivery failed", "delivery_id", id, "error", err.Error())
	}
}

// Signature returns the two signatures of a delivery: webhook-signature per the Standard
// Webhooks specification ("v1," and the base64 HMAC-SHA256 of "id.timestamp.body") and
// Polytomic-Signature (the hex HMAC-SHA256 of the body), both keyed with the secret's key
// (the bytes its base64 part encodes).
func Signature(secret, msgID string, timestamp int64, body []byte) (standard, polytomic string, err error) {
	key, err := tenants.WebhookSigningKey(secret)
	if err != nil {
		return "", "", err
	}
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%d.", msgID, timestamp)
	mac.Write(body)
	standard = "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	mac = hmac.New(sha256.New, key)
	mac.Write(body)
	return standard, hex.EncodeToString(mac.Sum(nil)), nil
}

// send POSTs a delivery's payload once.
func (w *Worker) send(j job) outcome {
	start := time.Now()
	o := outcome{at: tenants.Now()}
	defer func() { o.latency = time.Since(start) }()
	body := []byte(j.Payload)
	ts := start.Unix()
	standard, polytomic, err := Signature(j.Secret, j.EventID, ts, body)
	if err != nil {
		o.err = "the webhook's secret cannot sign: " + err.Error()
		o.latency = time.Since(start)
		return o
	}
	ctx, cancel := context.WithTimeout(context.Background(), w.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, j.Endpoint, bytes.NewReader(body))
	if err != nil {
		o.err = "invalid endpoint"
		o.latency = time.Since(start)
		return o
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", UserAgent)
	req.Header.Set("webhook-id", j.EventID)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("webhook-signature", standard)
	req.Header.Set("Polytomic-Signature", polytomic)
	resp, err := w.client.Do(req)
	if err != nil {
		o.err = w.describe(err)
		o.latency = time.Since(start)
		return o
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBytes))
	resp.Body.Close()
	o.status = resp.StatusCode
	switch {
	case o.ok():
	case o.status >= 300 && o.status < 400:
		o.err = fmt.Sprintf("the endpoint answered %d, a redirect; redirects are not followed: configure the final URL", o.status)
	default:
		o.err = fmt.Sprintf("the endpoint answered %d; only 2xx counts as delivered", o.status)
	}
	o.latency = time.Since(start)
	return o
}

// describe turns a failed request into an error worth showing the organization: the cause,
// without the URL (which may carry a token in its query).
func (w *Worker) describe(err error) string {
	var ue interface{ Timeout() bool }
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ue) && ue.Timeout()) {
		return fmt.Sprintf("no answer within %s (timeout)", w.cfg.Timeout)
	}
	msg := err.Error()
	var urlErr *url.Error
	if errors.As(err, &urlErr) && urlErr.Err != nil {
		msg = urlErr.Err.Error()
	}
	if i := strings.Index(msg, errBlocked.Error()+": "); i >= 0 && errors.Is(err, errBlocked) {
		msg = "the server's webhook guard refused the connection: " + msg[i+len(errBlocked.Error())+2:]
	}
	if r := []rune(msg); len(r) > maxErrorLength {
		msg = string(r[:maxErrorLength]) + "…"
	}
	return msg
}

// errGone is a delivery deleted (with its webhook) while it was attempted.
var errGone = errors.New("the delivery was deleted")

// record writes an attempt and the delivery's new state in one transaction: delivered on a
// 2xx; else pending again after a backoff, or failed once MaxAttempts attempts have failed.
func (w *Worker) record(ctx context.Context, j job, o outcome) error {
	n := j.Attempts + 1
	var status any
	if o.status != 0 {
		status = o.status
	}
	return tenants.Conn{DB: w.db}.Write(ctx, func(tx *tenants.Tx) error {
		if _, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO webhook_attempts (id, delivery_id, attempted_at, status_code, error, latency_ms)
			VALUES (?, ?, ?, ?, ?, ?)`), tenants.NewID(), j.ID, o.at, status, o.err, o.latency.Milliseconds()); err != nil {
			if tenants.IsForeignKeyViolation(err) {
				return errGone
			}
			return fmt.Errorf("insert attempt: %w", err)
		}
		var err error
		switch {
		case o.ok():
			// Delivered is the truth whatever happened meanwhile (a disable, another worker).
			_, err = tx.ExecContext(ctx, tx.Rebind(`UPDATE webhook_deliveries SET state = 'delivered', attempts = attempts + 1,
				delivered_at = ?, locked_until = NULL WHERE id = ? AND state <> 'delivered'`), tenants.Now(), j.ID)
		case n >= w.cfg.MaxAttempts:
			_, err = tx.ExecContext(ctx, tx.Rebind(`UPDATE webhook_deliveries SET state = 'failed', attempts = attempts + 1,
				locked_until = NULL WHERE id = ? AND state = 'pending'`), j.ID)
		default:
			_, err = tx.ExecContext(ctx, tx.Rebind(`UPDATE webhook_deliveries SET attempts = attempts + 1, next_attempt_at = ?,
				locked_until = NULL WHERE id = ? AND state = 'pending'`), tenants.Now().Add(w.cfg.Backoff(n)), j.ID)
		}
		if err != nil {
			return fmt.Errorf("update delivery: %w", err)
		}
		return nil
	})
}
