-- +goose Up
-- Partners own one owner organization (is_owner) and any number of child organizations.
CREATE TABLE partners (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    name_key   TEXT NOT NULL UNIQUE, -- lower-cased name: partner names are unique ignoring case
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE organizations (
    id            TEXT PRIMARY KEY,
    partner_id    TEXT NOT NULL REFERENCES partners (id),
    is_owner      BOOLEAN NOT NULL DEFAULT FALSE,
    name          TEXT NOT NULL,
    name_key      TEXT NOT NULL,
    issuer        TEXT NOT NULL DEFAULT '',
    client_id     TEXT NOT NULL DEFAULT '',
    client_secret TEXT NOT NULL DEFAULT '', -- write-only: never selected into an API response
    sso_domain    TEXT NOT NULL DEFAULT '',
    sso_org_id    TEXT NOT NULL DEFAULT '',
    created_at    TIMESTAMP NOT NULL,
    updated_at    TIMESTAMP NOT NULL,
    UNIQUE (partner_id, name_key)
);
CREATE UNIQUE INDEX organizations_one_owner ON organizations (partner_id) WHERE is_owner;
CREATE INDEX organizations_by_partner ON organizations (partner_id, created_at, id);

-- Built-in roles (system) exist in every organization; custom roles come later.
CREATE TABLE roles (
    id         TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    system     BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMP NOT NULL,
    UNIQUE (org_id, name)
);

CREATE TABLE users (
    id         TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    email      TEXT NOT NULL,
    email_key  TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (org_id, email_key)
);
CREATE INDEX users_by_org ON users (org_id, created_at, id);

CREATE TABLE user_roles (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role_id TEXT NOT NULL REFERENCES roles (id) ON DELETE RESTRICT,
    PRIMARY KEY (user_id, role_id)
);
CREATE INDEX user_roles_by_role ON user_roles (role_id);

-- Credentials. Only the SHA-256 of a key's value is stored; authentication is one lookup by it.
-- org_id is the organization the key acts in (a partner key: its owner organization).
CREATE TABLE api_keys (
    id             TEXT PRIMARY KEY,
    kind           TEXT NOT NULL CHECK (kind IN ('partner', 'user')),
    secret_hash    BLOB NOT NULL UNIQUE,
    hint           TEXT NOT NULL,
    partner_id     TEXT NOT NULL REFERENCES partners (id),
    org_id         TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id        TEXT REFERENCES users (id) ON DELETE CASCADE,
    partner_issued BOOLEAN NOT NULL DEFAULT FALSE, -- minted by POST /organizations/{org_id}/users/{id}/keys
    created_at     TIMESTAMP NOT NULL,
    revoked_at     TIMESTAMP,
    CHECK ((kind = 'user') = (user_id IS NOT NULL))
);
-- At most one active partner-issued key per user: the database, not a check-then-insert, enforces it.
CREATE UNIQUE INDEX api_keys_one_partner_issued ON api_keys (user_id) WHERE partner_issued AND revoked_at IS NULL;
CREATE INDEX api_keys_by_user ON api_keys (user_id);
CREATE INDEX api_keys_by_org ON api_keys (org_id);

-- +goose Down
DROP TABLE api_keys;
DROP TABLE user_roles;
DROP TABLE users;
DROP TABLE roles;
DROP TABLE organizations;
DROP TABLE partners;
