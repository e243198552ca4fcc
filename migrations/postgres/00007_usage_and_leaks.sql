-- +goose Up
-- Requests per key and hour, what partners bill on. Each replica counts in memory and adds its
-- counts every few seconds (requests = requests + the replica's count), so replicas' counts
-- add up and a request never writes. Kept as long as events.
CREATE TABLE api_key_usage (
    key_id   TEXT NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    hour     TIMESTAMPTZ NOT NULL, -- the hour's start, UTC
    requests BIGINT NOT NULL CHECK (requests > 0),
    PRIMARY KEY (key_id, hour)
);
CREATE INDEX api_key_usage_by_hour ON api_key_usage (hour);

-- A temporary token reported leaked ends the tokens its key issued until then (iat at or
-- before this), not the key: the key's value did not leak.
ALTER TABLE api_keys ADD COLUMN tokens_revoked_until TIMESTAMPTZ;

-- +goose Down
ALTER TABLE api_keys DROP COLUMN tokens_revoked_until;
DROP TABLE api_key_usage;
