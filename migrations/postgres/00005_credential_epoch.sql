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

-- PostgreSQL only: every increment is a notice on channel tenantry_credentials, sent when (and
-- only if) its transaction commits: "<schema> <n> <organization id>".
-- +goose StatementBegin
CREATE FUNCTION credential_epoch_notify() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('tenantry_credentials', current_schema() || ' ' || NEW.n || ' ' || NEW.org_id);
    RETURN NEW;
END
$$ LANGUAGE plpgsql;
-- +goose StatementEnd
CREATE TRIGGER credential_epoch_notify AFTER UPDATE ON credential_epoch
    FOR EACH ROW EXECUTE FUNCTION credential_epoch_notify();
-- end PostgreSQL only

-- +goose Down
DROP TABLE credential_epoch;
