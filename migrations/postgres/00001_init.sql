-- +goose Up
-- Partners own one owner organization (is_owner) and any number of child organizations.
CREATE TABLE partners (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    name_key   TEXT NOT NULL UNIQUE, -- lower-cased name: partner names are unique ignoring case
    created_at TIMESTAMPTZ NOT NULL
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
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    UNIQUE (partner_id, name_key)
);
CREATE UNIQUE INDEX organizations_one_owner ON organizations (partner_id) WHERE is_owner;
CREATE INDEX organizations_by_partner ON organizations (partner_id, created_at, id);

-- Roles: the built-in (system) Admin and Member in every organization, whose permissions come
-- from the code, and custom roles holding a space-separated list of actions.
CREATE TABLE roles (
    id         TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    name_key   TEXT NOT NULL,
    system     BOOLEAN NOT NULL DEFAULT FALSE,
    actions    TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    UNIQUE (org_id, name_key)
);

CREATE TABLE users (
    id         TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    email      TEXT NOT NULL,
    email_key  TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    UNIQUE (org_id, email_key)
);
CREATE INDEX users_by_org ON users (org_id, created_at, id);

CREATE TABLE user_roles (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role_id TEXT NOT NULL REFERENCES roles (id) ON DELETE RESTRICT,
    PRIMARY KEY (user_id, role_id)
);
CREATE INDEX user_roles_by_role ON user_roles (role_id);

-- Credentials. A key (its identity: kind, owner, scopes, expiry) has one or more secrets; only
-- the SHA-256 of a secret is stored, and authentication is one lookup by it. Rotation adds a
-- secret and gives the old one an expiry (the grace period).
-- org_id is the organization the key acts in (a partner key: its owner organization); owner_id
-- is what its name is unique within: the partner, the user or the organization.
CREATE TABLE api_keys (
    id             TEXT PRIMARY KEY,
    kind           TEXT NOT NULL CHECK (kind IN ('partner', 'user', 'organization')),
    name           TEXT NOT NULL,
    hint           TEXT NOT NULL,
    partner_id     TEXT NOT NULL REFERENCES partners (id),
    org_id         TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id        TEXT REFERENCES users (id) ON DELETE CASCADE,
    owner_id       TEXT NOT NULL,
    role           TEXT NOT NULL DEFAULT '' CHECK (role IN ('', 'admin', 'asker')),
    scopes         TEXT, -- NULL: not narrowed; else space-separated actions
    partner_issued BOOLEAN NOT NULL DEFAULT FALSE, -- minted by POST /organizations/{org_id}/users/{id}/keys
    created_at     TIMESTAMPTZ NOT NULL,
    created_by     TEXT, -- the id of the key that created it; NULL when the operator did
    expires_at     TIMESTAMPTZ,
    last_used_at   TIMESTAMPTZ,
    revoked_at     TIMESTAMPTZ,
    CHECK ((kind = 'user') = (user_id IS NOT NULL)),
    CHECK ((kind = 'organization') = (role <> ''))
);
-- Names are unique per owner among keys not revoked.
CREATE UNIQUE INDEX api_keys_name ON api_keys (owner_id, name) WHERE revoked_at IS NULL;
-- At most one active partner-issued key per user: the database, not a check-then-insert, enforces it.
CREATE UNIQUE INDEX api_keys_one_partner_issued ON api_keys (user_id) WHERE partner_issued AND revoked_at IS NULL;
CREATE INDEX api_keys_by_user ON api_keys (user_id);
CREATE INDEX api_keys_by_org ON api_keys (org_id, id);
CREATE INDEX api_keys_by_partner ON api_keys (partner_id, kind);

CREATE TABLE api_key_secrets (
    hash       BYTEA PRIMARY KEY,
    key_id     TEXT NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ -- set when rotated out: the end of the grace period
);
CREATE INDEX api_key_secrets_by_key ON api_key_secrets (key_id);

-- Ed25519 keys that sign temporary tokens. The newest is used to sign; each stays in the JWKS
-- and verifies until verify_until, which rotation sets past the longest token lifetime.
CREATE TABLE signing_keys (
    id           TEXT PRIMARY KEY, -- the JWT kid
    private_key  BYTEA NOT NULL,
    public_key   BYTEA NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    verify_until TIMESTAMPTZ
);

-- +goose Down
DROP TABLE signing_keys;
DROP TABLE api_key_secrets;
DROP TABLE api_keys;
DROP TABLE user_roles;
DROP TABLE users;
DROP TABLE roles;
DROP TABLE organizations;
DROP TABLE partners;
