-- +goose Up
-- Counts the committed changes that can alter what an existing credential may do (a key
-- revoked, a user deleted, a role changed...): each such transaction increments n, and names
-- the organization it changed. Replicas on one database keep their caches of credentials exact
-- by it: each polls n, and on PostgreSQL is told of every increment as it commits.
CREATE TABLE credential_epoch (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    n      BIGINT NOT NULL,
    org_id TEXT NOT NULL DEFAULT ''
);
INSERT INTO credential_epoch (id, n) VALUES (1, 0);

-- +goose Down
DROP TABLE credential_epoch;
