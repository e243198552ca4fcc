-- +goose Up
-- Policies: resource-level permissions, as Polytomic has them. A policy lists actions on
-- resources (connections:read, datasets:write...) and, for each, the roles it grants that
-- action to. A connection or dataset that has policies is reached only through one of them
-- (the rule is the code's: tenants/policies.go); one without policies as if there were none.
CREATE TABLE policies (
    id         TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    name_key   TEXT NOT NULL, -- lower-cased name: names are unique per organization ignoring case
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    UNIQUE (org_id, name_key)
);

-- A policy's actions, each once; an action may grant no role (yet).
CREATE TABLE policy_actions (
    policy_id TEXT NOT NULL REFERENCES policies (id) ON DELETE CASCADE,
    action    TEXT NOT NULL,
    PRIMARY KEY (policy_id, action)
);

-- The roles each action of a policy grants. A role a policy grants cannot be deleted
-- (RESTRICT), as a role a user holds cannot: the database, not a check, guarantees it.
CREATE TABLE policy_grants (
    policy_id TEXT NOT NULL,
    action    TEXT NOT NULL,
    role_id   TEXT NOT NULL REFERENCES roles (id) ON DELETE RESTRICT,
    PRIMARY KEY (policy_id, action, role_id),
    FOREIGN KEY (policy_id, action) REFERENCES policy_actions (policy_id, action) ON DELETE CASCADE
);
CREATE INDEX policy_grants_by_role ON policy_grants (role_id);

-- The policies of connections and of datasets, of the same organization (the code checks
-- that). A policy still attached to a resource cannot be deleted (RESTRICT): deleting it must
-- never open the resource to everyone.
CREATE TABLE connection_policies (
    connection_id TEXT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    policy_id     TEXT NOT NULL REFERENCES policies (id) ON DELETE RESTRICT,
    PRIMARY KEY (connection_id, policy_id)
);
CREATE INDEX connection_policies_by_policy ON connection_policies (policy_id);

CREATE TABLE dataset_policies (
    dataset_id TEXT NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    policy_id  TEXT NOT NULL REFERENCES policies (id) ON DELETE RESTRICT,
    PRIMARY KEY (dataset_id, policy_id)
);
CREATE INDEX dataset_policies_by_policy ON dataset_policies (policy_id);

-- +goose Down
DROP TABLE dataset_policies;
DROP TABLE connection_policies;
DROP TABLE policy_grants;
DROP TABLE policy_actions;
DROP TABLE policies;
