-- +goose Up
-- The expiry warnings sent (api_key.expiring, partner_key.expiring): one row per key and
-- threshold, written in the transaction of the warning's event, so that a warning is sent
-- exactly once however many replicas look for expiring keys at the same moment.
CREATE TABLE key_expiry_notices (
    key_id         TEXT NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    threshold_days INTEGER NOT NULL,
    created_at     TIMESTAMP NOT NULL,
    PRIMARY KEY (key_id, threshold_days)
);
-- Keys by expiry, for the warnings' search.
CREATE INDEX api_keys_by_expiry ON api_keys (expires_at) WHERE expires_at IS NOT NULL AND revoked_at IS NULL;

-- +goose Down
DROP INDEX api_keys_by_expiry;
DROP TABLE key_expiry_notices;
