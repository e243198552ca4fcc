-- +goose Up
-- Connections: a configured source or destination of an organization. configuration is a JSON
-- object stored whole, secret fields included; the code strips those from every response.
-- A share (parent_id set) is a connection of a partner's owner organization made visible in one
-- of its child organizations: its type and configuration are read from the parent, so its own
-- stay empty, and deleting the parent deletes its shares.
CREATE TABLE connections (
    id            TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    parent_id     TEXT REFERENCES connections (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    name_key      TEXT NOT NULL, -- lower-cased name: names are unique per organization ignoring case
    type          TEXT NOT NULL DEFAULT '',
    configuration TEXT NOT NULL DEFAULT '{}',
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    UNIQUE (org_id, name_key)
);
CREATE INDEX connections_by_org ON connections (org_id, id);
-- A connection is shared into an organization at most once; also the index the cascade and the
-- list of a connection's shares use.
CREATE UNIQUE INDEX connections_one_share ON connections (parent_id, org_id) WHERE parent_id IS NOT NULL;

-- Datasets. connection_id names a connection of the same organization (its own or a share);
-- the code checks the organization, the database that the connection exists. Deleting the
-- connection leaves the dataset without one.
CREATE TABLE datasets (
    id            TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    connection_id TEXT REFERENCES connections (id) ON DELETE SET NULL,
    name          TEXT NOT NULL,
    slug          TEXT NOT NULL,
    description   TEXT NOT NULL DEFAULT '',
    source        TEXT NOT NULL DEFAULT '',
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    UNIQUE (org_id, slug)
);
CREATE INDEX datasets_by_org ON datasets (org_id, id);
CREATE INDEX datasets_by_connection ON datasets (connection_id);

-- +goose Down
DROP TABLE datasets;
DROP TABLE connections;
