-- +goose Up
-- The API version each organization is served at when a request names none.
ALTER TABLE organizations ADD COLUMN api_version TEXT NOT NULL DEFAULT '2025-09-18';

-- Idempotency-Key records, per credential (a key; a token counts as its parent key). A record
-- is in_flight while its first request runs and holds that request's response once done.
CREATE TABLE idempotency_keys (
    credential_id TEXT NOT NULL,
    idem_key      TEXT NOT NULL,
    fingerprint   BYTEA NOT NULL, -- SHA-256 of method, path, query and body
    state         TEXT NOT NULL CHECK (state IN ('in_flight', 'done')),
    status        INTEGER,
    headers       TEXT,
    body          BYTEA,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (credential_id, idem_key)
);
CREATE INDEX idempotency_keys_by_created ON idempotency_keys (created_at);

-- The audit log: one event per change, written in the change's transaction. Events outlive
-- the organizations they describe (no foreign keys), until retention sweeps them.
CREATE TABLE events (
    id              TEXT PRIMARY KEY,
    type            TEXT NOT NULL,
    partner_id      TEXT NOT NULL,
    organization_id TEXT NOT NULL,
    actor           TEXT NOT NULL, -- JSON: the credential's kind and ids
    data            TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX events_by_org ON events (organization_id, id);
CREATE INDEX events_by_partner ON events (partner_id, id);
CREATE INDEX events_by_created ON events (created_at);

CREATE TABLE webhooks (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    endpoint    TEXT NOT NULL,
    secret      TEXT NOT NULL, -- write-only: signs deliveries, never returned after creation
    event_types TEXT NOT NULL DEFAULT '', -- space-separated; '' means every type
    enabled     BOOLEAN NOT NULL DEFAULT TRUE,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX webhooks_by_org ON webhooks (org_id, id);

-- The outbox: a delivery is queued in the transaction that records its event, so a crash
-- loses nothing; workers claim due deliveries by setting locked_until.
CREATE TABLE webhook_deliveries (
    id              TEXT PRIMARY KEY,
    webhook_id      TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id        TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    payload         TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    locked_until    TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL,
    delivered_at    TIMESTAMPTZ
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_attempt_at);
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (webhook_id, id);

CREATE TABLE webhook_attempts (
    id           TEXT PRIMARY KEY,
    delivery_id  TEXT NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempted_at TIMESTAMPTZ NOT NULL,
    status_code  INTEGER, -- NULL when no response came back
    error        TEXT NOT NULL DEFAULT '',
    latency_ms   INTEGER NOT NULL
);
CREATE INDEX webhook_attempts_by_delivery ON webhook_attempts (delivery_id, attempted_at);

-- +goose Down
DROP TABLE webhook_attempts;
DROP TABLE webhook_deliveries;
DROP TABLE webhooks;
DROP TABLE events;
DROP TABLE idempotency_keys;
ALTER TABLE organizations DROP COLUMN api_version;
