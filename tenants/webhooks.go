package tenants

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jmoiron/sqlx"
)

// Webhook is an endpoint of one organization that receives the organization's events. Its
// signing secret is write-only: shown once, in the answer to its creation, never again.
type Webhook struct {
	ID             string    `json:"id"`
	OrganizationID string    `json:"organization_id"`
	Endpoint       string    `json:"endpoint"`
	EventTypes     []string  `json:"event_types"` // empty: every type
	Enabled        bool      `json:"enabled"`
	Disabled       bool      `json:"disabled"` // !Enabled, under Polytomic's name, which its clients read
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
}

// NewWebhook is a webhook as its creation returns it: with its secret, the only time it is shown.
type NewWebhook struct {
	Webhook
	Secret string `json:"secret"`
}

// WebhookInput is the body of a create or a full-replacement update. Secret nil means: on
// create, generate one; on update, keep the stored one. EventTypes empty means every type.
type WebhookInput struct {
	Endpoint   string
	Secret     *string
	EventTypes []string
}

// EndpointCheck decides whether deliveries may go to endpoint (an absolute http or https URL
// without credentials): "" allows it, anything else is the problem, for the caller. The server
// passes its delivery guard (scheme, name resolution, private addresses), which this package
// cannot know: it is the operator's configuration.
type EndpointCheck func(ctx context.Context, endpoint *url.URL) string

// Webhook secrets follow the Standard Webhooks format: "whsec_" and the base64 of the key.
const (
	WebhookSecretPrefix   = "whsec_"
	webhookSecretBytes    = 32 // generated keys
	minWebhookSecretBytes = 24
	maxWebhookSecretBytes = 64
	maxEndpointLength     = 2048
)

// NewWebhookSecret returns a new signing secret: "whsec_" and the base64 of 32 random bytes.
func NewWebhookSecret() string {
	b := make([]byte, webhookSecretBytes)
	rand.Read(b) // never fails (crypto/rand panics rather than return short)
	return WebhookSecretPrefix + base64.StdEncoding.EncodeToString(b)
}

// WebhookSigningKey is the HMAC key of a secret: the bytes its base64 part encodes for a
// Standard Webhooks secret ("whsec_..."), else the secret's own bytes, as Polytomic's clients
// send a plain string.
func WebhookSigningKey(secret string) ([]byte, error) {
	s, ok := strings.CutPrefix(secret, WebhookSecretPrefix)
	if !ok {
		return []byte(secret), nil
	}
	return base64.StdEncoding.DecodeString(s)
}

// webhookRow is a webhook as stored; Secret is sealed when the server has a secret key.
type webhookRow struct {
	ID         string    `db:"id"`
	OrgID      string    `db:"org_id"`
	Endpoint   string    `db:"endpoint"`
	Secret     string    `db:"secret"`
	EventTypes string    `db:"event_types"` // space-separated; "" means every type
	Enabled    bool      `db:"enabled"`
	CreatedAt  time.Time `db:"created_at"`
	UpdatedAt  time.Time `db:"updated_at"`
}

const webhookColumns = `id, org_id, endpoint, secret, event_types, enabled, created_at, updated_at`

// webhook is what a caller sees: everything but the secret.
func (r webhookRow) webhook() Webhook {
	types := strings.Fields(r.EventTypes)
	if types == nil {
		types = []string{}
	}
	return Webhook{ID: r.ID, OrganizationID: r.OrgID, Endpoint: r.Endpoint, EventTypes: types, Enabled: r.Enabled,
		Disabled: !r.Enabled, CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC()}
}

func errWebhookNotFound(id string) error {
	return Errorf(ErrNotFound, "webhook_not_found", "No webhook with id %q exists in this organization.", id)
}

func findWebhook(ctx context.Context, q sqlx.ExtContext, orgID, id string) (webhookRow, error) {
	return getOne[webhookRow](ctx, q, id, errWebhookNotFound(id), `SELECT `+webhookColumns+` FROM webhooks WHERE id = ? AND org_id = ?`, id, orgID)
}

// normalize validates in and returns the event types to store. The endpoint is checked
// syntactically here, then by check (which may resolve its host: call it outside any
// transaction of one's own).
func (in *WebhookInput) normalize(ctx context.Context, check EndpointCheck) (string, error) {
	in.Endpoint = strings.TrimSpace(in.Endpoint)
	var errs FieldErrors
	errs.Add("endpoint", checkEndpoint(ctx, in.Endpoint, check))
	if in.Secret != nil {
		errs.Add("secret", checkWebhookSecret(*in.Secret))
	}
	var types []string
	for _, t := range in.EventTypes {
		if !IsEventType(t) {
			errs.Add("event_types", fmt.Sprintf("%q is not an event type; the types are %s (leave the list empty for all of them)",
				t, eventTypeList()))
			break
		}
		if !slices.Contains(types, t) {
			types = append(types, t)
		}
	}
	return strings.Join(types, " "), errs.Err()
}

func checkEndpoint(ctx context.Context, s string, check EndpointCheck) string {
	if s == "" {
		return "is required: the https URL deliveries are posted to"
	}
	if msg := CheckText(s, maxEndpointLength); msg != "" {
		return msg
	}
	u, err := url.Parse(s)
	switch {
	case err != nil || !u.IsAbs() || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Hostname() == "":
		return "must be an absolute https URL such as https://hooks.example.com/tenantry"
	case u.User != nil:
		return "must not contain a user name or password (deliveries are signed with the webhook's secret: check the signature)"
	case u.Fragment != "" || strings.Contains(s, "#"):
		return "must not contain a fragment (#...): it is never sent to the server"
	}
	if check != nil {
		return check(ctx, u)
	}
	return ""
}

func checkWebhookSecret(s string) string {
	if !strings.HasPrefix(s, WebhookSecretPrefix) {
		// A plain secret (Polytomic's clients send one): its bytes are the key.
		if n := utf8.RuneCountInString(s); n < 16 || n > 256 {
			return "must be 16 to 256 characters (or whsec_ and base64, or left out to have one generated)"
		}
		return CheckText(s, 256)
	}
	const want = "must be whsec_ followed by the standard base64 (with padding) of 24 to 64 random bytes, or left out to have one generated"
	key, err := WebhookSigningKey(s)
	if err != nil || len(key) < minWebhookSecretBytes || len(key) > maxWebhookSecretBytes {
		return want
	}
	return ""
}

// ListWebhooks returns the caller's organization's webhooks in order of creation.
func (s *Store) ListWebhooks(ctx context.Context, p *Principal, page PageQuery) (Page[Webhook], error) {
	if err := p.Require(WebhooksRead); err != nil {
		return Page[Webhook]{}, err
	}
	q, err := s.Reader(ctx)
	if err != nil {
		return Page[Webhook]{}, err
	}
	where, args := `org_id = ?`, []any{p.OrgID}
	if page.After != "" {
		where += ` AND id > ?`
		args = append(args, page.After)
	}
	var rows []webhookRow
	err = sqlx.SelectContext(ctx, q, &rows, q.Rebind(`SELECT `+webhookColumns+` FROM webhooks WHERE `+where+
		` ORDER BY id LIMIT ?`), append(args, page.Limit+1)...)
	if err != nil {
		return Page[Webhook]{}, fmt.Errorf("list webhooks: %w", err)
	}
	rows, next := TrimPage(rows, page.Limit, func(r webhookRow) string { return r.ID })
	out := make([]Webhook, len(rows))
	for i, r := range rows {
		out[i] = r.webhook()
	}
	return Page[Webhook]{Items: out, Next: next}, nil
}

// GetWebhook returns one webhook of the caller's organization (ErrNotFound for any other).
func (s *Store) GetWebhook(ctx context.Context, p *Principal, id string) (Webhook, error) {
	if err := p.Require(WebhooksRead); err != nil {
		return Webhook{}, err
	}
	q, err := s.Reader(ctx)
	if err != nil {
		return Webhook{}, err
	}
	r, err := findWebhook(ctx, q, p.OrgID, id)
	return r.webhook(), err
}

// CreateWebhook adds an enabled webhook to the caller's organization and returns it with its
// secret (generated when in.Secret is nil), the only time the secret is shown. check vets the
// endpoint (ErrInvalid on endpoint when it refuses).
func (s *Store) CreateWebhook(ctx context.Context, p *Principal, in WebhookInput, check EndpointCheck) (NewWebhook, error) {
	if err := p.Require(WebhooksWrite); err != nil {
		return NewWebhook{}, err
	}
	if err := mayReceiveEvents(p); err != nil {
		return NewWebhook{}, err
	}
	types, err := in.normalize(ctx, check)
	if err != nil {
		return NewWebhook{}, err
	}
	secret := NewWebhookSecret()
	if in.Secret != nil {
		secret = *in.Secret
	}
	now := Now()
	r := webhookRow{ID: NewID(), OrgID: p.OrgID, Endpoint: in.Endpoint, EventTypes: types, Enabled: true,
		CreatedAt: now, UpdatedAt: now}
	if r.Secret, err = s.Sealer.SealString(secret, SealedAt("webhooks", "secret", r.ID)); err != nil {
		return NewWebhook{}, err
	}
	err = s.Write(ctx, func(tx *Tx) error {
		_, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO webhooks (`+webhookColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
			r.ID, r.OrgID, r.Endpoint, r.Secret, r.EventTypes, r.Enabled, r.CreatedAt, r.UpdatedAt)
		if err != nil {
			return fmt.Errorf("insert webhook: %w", err)
		}
		return recordEvent(ctx, tx, p, r.OrgID, EventWebhookCreated, r.webhook())
	})
	if err != nil {
		return NewWebhook{}, err
	}
	return NewWebhook{Webhook: r.webhook(), Secret: secret}, nil
}

// UpdateWebhook replaces a webhook's endpoint and event types, and its secret when in.Secret
// is given (else the secret stays). Deliveries already queued keep their payload and go to the
// new endpoint, signed with the new secret.
func (s *Store) UpdateWebhook(ctx context.Context, p *Principal, id string, in WebhookInput, check EndpointCheck) (Webhook, error) {
	if err := p.Require(WebhooksWrite); err != nil {
		return Webhook{}, err
	}
	// Existence first, so another tenant's id is a 404 whatever the body says, and no name
	// resolution runs for it. On the database: resolving must not hold a transaction open.
	if _, err := findWebhook(ctx, s.DB, p.OrgID, id); err != nil {
		return Webhook{}, err
	}
	if err := mayReceiveEvents(p); err != nil {
		return Webhook{}, err
	}
	types, err := in.normalize(ctx, check)
	if err != nil {
		return Webhook{}, err
	}
	var r webhookRow
	err = s.Write(ctx, func(tx *Tx) (err error) {
		if r, err = findWebhook(ctx, tx, p.OrgID, id); err != nil {
			return err
		}
		r.Endpoint, r.EventTypes, r.UpdatedAt = in.Endpoint, types, Now()
		if in.Secret != nil {
			if r.Secret, err = s.Sealer.SealString(*in.Secret, SealedAt("webhooks", "secret", r.ID)); err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, tx.Rebind(`UPDATE webhooks SET endpoint = ?, secret = ?, event_types = ?, updated_at = ?
			WHERE id = ? AND org_id = ?`), r.Endpoint, r.Secret, r.EventTypes, r.UpdatedAt, r.ID, r.OrgID)
		if err != nil {
			return fmt.Errorf("update webhook: %w", err)
		}
		return recordEvent(ctx, tx, p, r.OrgID, EventWebhookUpdated, r.webhook())
	})
	return r.webhook(), err
}

// DeleteWebhook deletes a webhook, its deliveries and their attempts (the foreign keys
// cascade), and returns it as it was.
func (s *Store) DeleteWebhook(ctx context.Context, p *Principal, id string) (Webhook, error) {
	r, err := changeRow(ctx, s, p.Require(WebhooksWrite), p.OrgID, id, findWebhook, func(tx *Tx, r *webhookRow) (err error) {
		if _, err := tx.ExecContext(ctx, tx.Rebind(`DELETE FROM webhooks WHERE id = ? AND org_id = ?`), r.ID, r.OrgID); err != nil {
			return fmt.Errorf("delete webhook: %w", err)
		}
		return recordEvent(ctx, tx, p, r.OrgID, EventWebhookDeleted, r.webhook())
	})
	return r.webhook(), err
}

// SetWebhookEnabled enables or disables a webhook. A disabled webhook queues nothing, and
// disabling it ends its pending deliveries as failed, in the same transaction: it receives
// nothing more, and enabling it again does not send a backlog (an attempt already in flight
// when it is disabled still completes). Setting the state it already has changes nothing and
// records no event.
func (s *Store) SetWebhookEnabled(ctx context.Context, p *Principal, id string, enabled bool) (Webhook, error) {
	r, err := changeRow(ctx, s, p.Require(WebhooksWrite), p.OrgID, id, findWebhook, func(tx *Tx, r *webhookRow) (err error) {
		if r.Enabled == enabled {
			return nil
		}
		r.Enabled, r.UpdatedAt = enabled, Now()
		if _, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE webhooks SET enabled = ?, updated_at = ? WHERE id = ? AND org_id = ?`),
			r.Enabled, r.UpdatedAt, r.ID, r.OrgID); err != nil {
			return fmt.Errorf("update webhook: %w", err)
		}
		typ := EventWebhookEnabled
		if !enabled {
			typ = EventWebhookDisabled
			if _, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE webhook_deliveries SET state = 'failed', locked_until = NULL
				WHERE webhook_id = ? AND state = 'pending'`), r.ID); err != nil {
				return fmt.Errorf("end pending deliveries: %w", err)
			}
		}
		return recordEvent(ctx, tx, p, r.OrgID, typ, r.webhook())
	})
	return r.webhook(), err
}

// WebhookDelivery is one event queued for one webhook, and every attempt to deliver it.
// State is pending (to be attempted at NextAttemptAt), delivered (an attempt got a 2xx) or
// failed (every attempt failed, or the webhook was disabled while it was pending).
type WebhookDelivery struct {
	ID            string           `json:"id"`
	WebhookID     string           `json:"webhook_id"`
	EventID       string           `json:"event_id"`
	EventType     string           `json:"event_type"`
	State         string           `json:"state"`
	AttemptCount  int              `json:"attempt_count"`
	NextAttemptAt *time.Time       `json:"next_attempt_at"` // null unless pending
	CreatedAt     time.Time        `json:"created_at"`
	DeliveredAt   *time.Time       `json:"delivered_at"`
	Attempts      []WebhookAttempt `json:"attempts"`
}

// WebhookAttempt is one POST of a delivery: the status the endpoint answered (nil when no
// response came back), or why it failed; and how long it took.
type WebhookAttempt struct {
	AttemptedAt time.Time `json:"attempted_at"`
	StatusCode  *int      `json:"status_code"`
	Error       string    `json:"error"`
	LatencyMS   int64     `json:"latency_ms"`
}

type deliveryRow struct {
	ID            string       `db:"id"`
	WebhookID     string       `db:"webhook_id"`
	EventID       string       `db:"event_id"`
	EventType     string       `db:"event_type"`
	State         string       `db:"state"`
	Attempts      int          `db:"attempts"`
	NextAttemptAt time.Time    `db:"next_attempt_at"`
	CreatedAt     time.Time    `db:"created_at"`
	DeliveredAt   sql.NullTime `db:"delivered_at"`
}

type attemptRow struct {
	DeliveryID  string        `db:"delivery_id"`
	AttemptedAt time.Time     `db:"attempted_at"`
	StatusCode  sql.NullInt64 `db:"status_code"`
	Error       string        `db:"error"`
	LatencyMS   int64         `db:"latency_ms"`
}

// ListWebhookDeliveries returns a webhook's deliveries newest first (by id, which is
// time-ordered), each with its attempts oldest first.
func (s *Store) ListWebhookDeliveries(ctx context.Context, p *Principal, webhookID string, page PageQuery) (Page[WebhookDelivery], error) {
	if err := p.Require(WebhooksRead); err != nil {
		return Page[WebhookDelivery]{}, err
	}
	q, err := s.Reader(ctx)
	if err != nil {
		return Page[WebhookDelivery]{}, err
	}
	if _, err := findWebhook(ctx, q, p.OrgID, webhookID); err != nil {
		return Page[WebhookDelivery]{}, err
	}
	where, args := `webhook_id = ?`, []any{webhookID}
	if page.After != "" {
		where += ` AND id < ?`
		args = append(args, page.After)
	}
	var rows []deliveryRow
	err = sqlx.SelectContext(ctx, q, &rows, q.Rebind(`SELECT id, webhook_id, event_id, event_type, state, attempts,
		next_attempt_at, created_at, delivered_at FROM webhook_deliveries WHERE `+where+` ORDER BY id DESC LIMIT ?`),
		append(args, page.Limit+1)...)
	if err != nil {
		return Page[WebhookDelivery]{}, fmt.Errorf("list deliveries: %w", err)
	}
	rows, next := TrimPage(rows, page.Limit, func(r deliveryRow) string { return r.ID })
	out := make([]WebhookDelivery, len(rows))
	index := make(map[string]int, len(rows))
	ids := make([]string, len(rows))
	for i, r := range rows {
		d := WebhookDelivery{ID: r.ID, WebhookID: r.WebhookID, EventID: r.EventID, EventType: r.EventType, State: r.State,
			AttemptCount: r.Attempts, CreatedAt: r.CreatedAt.UTC(), Attempts: []WebhookAttempt{}}
		if r.State == "pending" {
			t := r.NextAttemptAt.UTC()
			d.NextAttemptAt = &t
		}
		if r.DeliveredAt.Valid {
			t := r.DeliveredAt.Time.UTC()
			d.DeliveredAt = &t
		}
		out[i], index[r.ID], ids[i] = d, i, r.ID
	}
	if len(ids) == 0 {
		return Page[WebhookDelivery]{Items: out, Next: next}, nil
	}
	query, qargs, err := sqlx.In(`SELECT delivery_id, attempted_at, status_code, error, latency_ms FROM webhook_attempts
		WHERE delivery_id IN (?) ORDER BY attempted_at, id`, ids)
	if err != nil {
		return Page[WebhookDelivery]{}, fmt.Errorf("list attempts: %w", err)
	}
	var attempts []attemptRow
	if err := sqlx.SelectContext(ctx, q, &attempts, q.Rebind(query), qargs...); err != nil {
		return Page[WebhookDelivery]{}, fmt.Errorf("list attempts: %w", err)
	}
	for _, a := range attempts {
		w := WebhookAttempt{AttemptedAt: a.AttemptedAt.UTC(), Error: a.Error, LatencyMS: a.LatencyMS}
		if a.StatusCode.Valid {
			code := int(a.StatusCode.Int64)
			w.StatusCode = &code
		}
		d := &out[index[a.DeliveryID]]
		d.Attempts = append(d.Attempts, w)
	}
	return Page[WebhookDelivery]{Items: out, Next: next}, nil
}

// mayReceiveEvents refuses to point a webhook anywhere for a credential that may not read the
// organization's events: a webhook receives them all (of its types), objects included.
func mayReceiveEvents(p *Principal) error {
	if p.Can(EventsRead) {
		return nil
	}
	return Errorf(ErrForbidden, "permission_denied",
		"A webhook receives the organization's events: creating or changing one needs events:read as well as webhooks:write.")
}
