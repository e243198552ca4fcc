-- +goose Up
-- Organization key policies: the longest a key of the organization may live (0: no limit),
-- whether its keys must expire, and the networks their requests may come from (normalised
-- CIDR prefixes separated by spaces; '': any). A key may carry its own narrower list. The
-- authentication query reads both with the key, so checking them costs no query.
ALTER TABLE organizations ADD COLUMN key_max_lifetime_seconds BIGINT NOT NULL DEFAULT 0;
ALTER TABLE organizations ADD COLUMN key_require_expiry BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE organizations ADD COLUMN key_allowed_cidrs TEXT NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN allowed_cidrs TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE api_keys DROP COLUMN allowed_cidrs;
ALTER TABLE organizations DROP COLUMN key_allowed_cidrs;
ALTER TABLE organizations DROP COLUMN key_require_expiry;
ALTER TABLE organizations DROP COLUMN key_max_lifetime_seconds;
