package tenants

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
)

// EventType names a kind of change: every change writes one event, in the change's
// transaction. Name them by these constants, so that the compiler catches a misspelt one.
type EventType string

const (
	EventOrganizationCreated EventType = "organization.created"
	EventOrganizationUpdated EventType = "organization.updated"
	EventOrganizationDeleted EventType = "organization.deleted"
	// KeyPolicyUpdated: an organization's key policy was replaced; the object is the policy.
	// Like every change but a creation, it drops the organization's cached principals
	// (Change.ChangesCredentials), here and on the other replicas.
	EventKeyPolicyUpdated EventType = "key_policy.updated"

	EventUserCreated EventType = "user.created"
	EventUserUpdated EventType = "user.updated"
	EventUserDeleted EventType = "user.deleted"

	EventAPIKeyCreated EventType = "api_key.created"
	EventAPIKeyRotated EventType = "api_key.rotated"
	EventAPIKeyRevoked EventType = "api_key.revoked"
	// EventAPIKeyTokensRevoked: the temporary tokens a key issued until then were ended (one
	// of them was reported leaked); the key itself works on.
	EventAPIKeyTokensRevoked EventType = "api_key.tokens_revoked"
	// Expiring: a key's expires_at is 7 days or 1 day away (sent once per key and threshold).
	EventAPIKeyExpiring EventType = "api_key.expiring"

	EventPartnerKeyCreated  EventType = "partner_key.created"
	EventPartnerKeyRevoked  EventType = "partner_key.revoked"
	EventPartnerKeyExpiring EventType = "partner_key.expiring"

	EventRoleCreated EventType = "role.created"
	EventRoleUpdated EventType = "role.updated"
	EventRoleDeleted EventType = "role.deleted"

	EventPolicyCreated EventType = "policy.created"
	EventPolicyUpdated EventType = "policy.updated"
	EventPolicyDeleted EventType = "policy.deleted"

	EventConnectionCreated EventType = "connection.created"
	EventConnectionUpdated EventType = "connection.updated"
	EventConnectionDeleted EventType = "connection.deleted"
	EventConnectionShared  EventType = "connection.shared"

	EventDatasetCreated EventType = "dataset.created"
	EventDatasetUpdated EventType = "dataset.updated"
	EventDatasetDeleted EventType = "dataset.deleted"

	EventWebhookCreated  EventType = "webhook.created"
	EventWebhookUpdated  EventType = "webhook.updated"
	EventWebhookDeleted  EventType = "webhook.deleted"
	EventWebhookEnabled  EventType = "webhook.enabled"
	EventWebhookDisabled EventType = "webhook.disabled"
)

// EventTypes are all of them, as GET /api/events_types lists them.
var EventTypes = []EventType{
	EventOrganizationCreated, EventOrganizationUpdated, EventOrganizationDeleted, EventKeyPolicyUpdated,
	EventUserCreated, EventUserUpdated, EventUserDeleted,
	EventAPIKeyCreated, EventAPIKeyRotated, EventAPIKeyRevoked, EventAPIKeyTokensRevoked, EventAPIKeyExpiring,
	EventPartnerKeyCreated, EventPartnerKeyRevoked, EventPartnerKeyExpiring,
	EventRoleCreated, EventRoleUpdated, EventRoleDeleted,
	EventPolicyCreated, EventPolicyUpdated, EventPolicyDeleted,
	EventConnectionCreated, EventConnectionUpdated, EventConnectionDeleted, EventConnectionShared,
	EventDatasetCreated, EventDatasetUpdated, EventDatasetDeleted,
	EventWebhookCreated, EventWebhookUpdated, EventWebhookDeleted, EventWebhookEnabled, EventWebhookDisabled,
}

// IsEventType reports whether t names an event type.
// ListEventTypes is the catalogue of event types, for a caller that may read events.
func ListEventTypes(p *Principal) ([]EventType, error) {
	if err := p.Require(EventsRead); err != nil {
		return nil, err
	}
	return EventTypes, nil
}

func IsEventType(t string) bool { return slices.Contains(EventTypes, EventType(t)) }

// eventTypeList is the event types, for messages: "organization.created, ...".
func eventTypeList() string {
	names := make([]string, len(EventTypes))
	for i, t := range EventTypes {
		names[i] = string(t)
	}
	return strings.Join(names, ", ")
}

// Event is an audit record, in the shape of Polytomic's events: what changed (type), when,
// in which organization, who changed it (actor, an extension), and in "event" the object as
// it then was (secrets are never part of an object, so never part of an event).
type Event struct {
	ID             string          `json:"id" db:"id"`
	Type           EventType       `json:"type" db:"type"`
	OrganizationID string          `json:"organization_id" db:"organization_id"`
	CreatedAt      time.Time       `json:"created_at" db:"created_at"`
	Actor          Actor           `json:"actor"`
	Data           json.RawMessage `json:"event" db:"data"` // Polytomic's name for the event's payload
}

// Actor is who made a change: a credential's kind and ids, never the credential itself.
// Kind "operator" is the command line on the server.
type Actor struct {
	Kind   string `json:"kind"`
	KeyID  string `json:"key_id,omitempty"`
	UserID string `json:"user_id,omitempty"`
}

// systemActor is Tenantry itself, for what no caller did (an expiry warning).
var systemActor = Actor{Kind: "system"}

func actorOf(p *Principal) Actor {
	if p == nil {
		return Actor{Kind: "operator"}
	}
	return Actor{Kind: string(p.Kind), KeyID: p.KeyID, UserID: p.UserID}
}

// RecordEvent writes an event about object in orgID (of partnerID) and queues its webhook
// deliveries, in tx, the transaction of the change it records; once tx commits, the commit
// hooks are told of the change (see Tx).
func RecordEvent(ctx context.Context, tx *Tx, p *Principal, partnerID, orgID string, typ EventType, object any) error {
	return recordEventBy(ctx, tx, actorOf(p), partnerID, orgID, typ, object)
}

// RecordSystemEvent is RecordEvent for what Tenantry itself did, its actor kind "system".
func RecordSystemEvent(ctx context.Context, tx *Tx, partnerID, orgID string, typ EventType, object any) error {
	return recordEventBy(ctx, tx, systemActor, partnerID, orgID, typ, object)
}

func recordEventBy(ctx context.Context, tx *Tx, actor Actor, partnerID, orgID string, typ EventType, object any) error {
	q := tx
	if !slices.Contains(EventTypes, typ) {
		return fmt.Errorf("unknown event type %q", typ)
	}
	data, err := json.Marshal(object)
	if err != nil {
		return fmt.Errorf("encode %s event: %w", typ, err)
	}
	e := Event{ID: NewID(), Type: typ, OrganizationID: orgID, CreatedAt: Now(), Actor: actor, Data: data}
	actorJSON, _ := json.Marshal(e.Actor)
	_, err = q.ExecContext(ctx, q.Rebind(`INSERT INTO events (id, type, partner_id, organization_id, actor, data, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`), e.ID, string(e.Type), partnerID, orgID, string(actorJSON), string(data), e.CreatedAt)
	if err != nil {
		return fmt.Errorf("insert event: %w", err)
	}
	change := Change{Type: typ, PartnerID: partnerID, OrgID: orgID}
	if change.ChangesCredentials() {
		// Other replicas learn of it by the epoch (and on PostgreSQL a notice of it, sent if and
		// when this transaction commits).
		if err := sqlx.GetContext(ctx, q, &change.Epoch, q.Rebind(`UPDATE credential_epoch SET n = n + 1, org_id = ? WHERE id = 1
			RETURNING n`), orgID); err != nil {
			return fmt.Errorf("count the credential change: %w", err)
		}
	}
	if strings.HasPrefix(string(typ), "webhook.") {
		tx.known.forgetWebhooks(orgID) // written before its event: queueDeliveries reads them again
	}
	queued, err := queueDeliveries(ctx, q, e)
	if err != nil {
		return err
	}
	change.Delivers = queued > 0
	tx.changed(change)
	return nil
}

// recordEvent is RecordEvent for a principal acting in its own partner.
func recordEvent(ctx context.Context, tx *Tx, p *Principal, orgID string, typ EventType, object any) error {
	return RecordEvent(ctx, tx, p, p.PartnerID, orgID, typ, object)
}

// queueDeliveries adds a pending delivery of e for each enabled webhook of its organization
// that wants its type, and says how many.
func queueDeliveries(ctx context.Context, q *Tx, e Event) (int, error) {
	if q.known.noWebhooks[e.OrganizationID] {
		return 0, nil // created by q, no webhook yet
	}
	var hooks []struct {
		ID         string `db:"id"`
		EventTypes string `db:"event_types"`
	}
	if err := sqlx.SelectContext(ctx, q, &hooks, q.Rebind(`SELECT id, event_types FROM webhooks WHERE org_id = ? AND enabled`),
		e.OrganizationID); err != nil {
		return 0, fmt.Errorf("select webhooks: %w", err)
	}
	if len(hooks) == 0 {
		return 0, nil
	}
	payload, err := json.Marshal(e) // what a receiver gets: the event as GET /api/events shows it
	if err != nil {
		return 0, err
	}
	queued := 0
	for _, h := range hooks {
		if h.EventTypes != "" && !slices.Contains(strings.Fields(h.EventTypes), string(e.Type)) {
			continue
		}
		_, err := q.ExecContext(ctx, q.Rebind(`INSERT INTO webhook_deliveries (id, webhook_id, event_id, event_type, payload, state,
			next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?)`), NewID(), h.ID, e.ID, string(e.Type), string(payload), e.CreatedAt, e.CreatedAt)
		if err != nil {
			return 0, fmt.Errorf("queue delivery: %w", err)
		}
		queued++
	}
	return queued, nil
}

// eventRow is an event as stored.
type eventRow struct {
	ID             string    `db:"id"`
	Type           string    `db:"type"`
	OrganizationID string    `db:"organization_id"`
	Actor          string    `db:"actor"`
	Data           string    `db:"data"`
	CreatedAt      time.Time `db:"created_at"`
}

// EventFilter selects events: by type and organization, and a window of ids (events are
// ordered by id, which is time-ordered) or of creation times.
type EventFilter struct {
	Type           EventType // "": every type
	OrganizationID string
	StartingAfter  string // the page after this event: older ones
	EndingBefore   string // the page before this event: newer ones
	// CreatedAfter and CreatedBefore (zero: unbounded) narrow to the events created strictly
	// after and before them: Polytomic's starting_after and ending_before, which are times.
	CreatedAfter  time.Time
	CreatedBefore time.Time
	Limit         int
}

// ListEvents returns a page of events, newest first: those of an organization credential's
// own organization or, for a partner, of all its organizations (narrowed by OrganizationID).
// more reports whether events lie beyond the page (older ones; newer ones with EndingBefore).
func (s *Store) ListEvents(ctx context.Context, p *Principal, f EventFilter) (Page[Event], error) {
	if err := p.Require(EventsRead); err != nil {
		return Page[Event]{}, err
	}
	q, err := s.Reader(ctx)
	if err != nil {
		return Page[Event]{}, err
	}
	where, args := []string{"partner_id = ?"}, []any{p.PartnerID}
	switch {
	case !p.IsPartner():
		where, args = append(where, "organization_id = ?"), append(args, p.OrgID)
		if f.OrganizationID != "" && f.OrganizationID != p.OrgID {
			return Page[Event]{Items: []Event{}}, nil // another organization's events: there are none to see
		}
	case f.OrganizationID != "":
		where, args = append(where, "organization_id = ?"), append(args, f.OrganizationID)
	}
	if f.Type != "" {
		where, args = append(where, "type = ?"), append(args, string(f.Type))
	}
	if !f.CreatedAfter.IsZero() {
		where, args = append(where, "created_at > ?"), append(args, f.CreatedAfter.UTC())
	}
	if !f.CreatedBefore.IsZero() {
		where, args = append(where, "created_at < ?"), append(args, f.CreatedBefore.UTC())
	}
	order := "DESC"
	if f.StartingAfter != "" {
		where, args = append(where, "id < ?"), append(args, f.StartingAfter)
	}
	if f.EndingBefore != "" {
		where, args = append(where, "id > ?"), append(args, f.EndingBefore)
		if f.StartingAfter == "" {
			order = "ASC" // the events just newer than EndingBefore, turned newest first below
		}
	}
	var rows []eventRow
	err = sqlx.SelectContext(ctx, q, &rows, q.Rebind(`SELECT id, type, organization_id, actor, data, created_at
		FROM events WHERE `+strings.Join(where, " AND ")+` ORDER BY id `+order+` LIMIT ?`), append(args, f.Limit+1)...)
	if err != nil {
		return Page[Event]{}, fmt.Errorf("list events: %w", err)
	}
	more := len(rows) > f.Limit
	if more {
		rows = rows[:f.Limit]
	}
	if order == "ASC" {
		slices.Reverse(rows)
	}
	events := make([]Event, len(rows))
	for i, r := range rows {
		events[i] = Event{ID: r.ID, Type: EventType(r.Type), OrganizationID: r.OrganizationID, CreatedAt: r.CreatedAt.UTC(),
			Data: json.RawMessage(r.Data)}
		if err := json.Unmarshal([]byte(r.Actor), &events[i].Actor); err != nil {
			return Page[Event]{}, fmt.Errorf("event %s actor: %w", r.ID, err)
		}
	}
	page := Page[Event]{Items: events}
	if more && f.EndingBefore == "" && len(events) > 0 {
		page.Next = NextPageToken(events[len(events)-1].ID) // a page token is a starting_after
	}
	return page, nil
}

// recordCascadedRevocations records api_key.revoked for each active key a deletion is about
// to take with it (the keys of a user, or of an organization), so the audit log shows every
// key that stopped working. column is "user_id" or "org_id", never input.
func recordCascadedRevocations(ctx context.Context, tx *Tx, p *Principal, column, id, because string) error {
	var keys []struct {
		ID     string  `db:"id" json:"id"`
		Name   string  `db:"name" json:"name"`
		Kind   string  `db:"kind" json:"kind"`
		OrgID  string  `db:"org_id" json:"organization_id"`
		UserID *string `db:"user_id" json:"user_id"`
	}
	if err := sqlx.SelectContext(ctx, tx, &keys, tx.Rebind(`SELECT id, name, kind, org_id, user_id FROM api_keys
		WHERE `+column+` = ? AND kind <> 'partner' AND revoked_at IS NULL`), id); err != nil {
		return fmt.Errorf("select keys: %w", err)
	}
	for _, k := range keys {
		object := map[string]any{"id": k.ID, "name": k.Name, "kind": k.Kind, "organization_id": k.OrgID,
			"user_id": k.UserID, "revoked_because": because}
		if err := RecordEvent(ctx, tx, p, p.PartnerID, k.OrgID, EventAPIKeyRevoked, object); err != nil {
			return err
		}
	}
	return nil
}
