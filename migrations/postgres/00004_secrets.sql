-- +goose Up
-- Connection secrets, apart from the rest of the configuration: a value found secret when it
-- is stored stays secret, whatever later writes do to its neighbours. '' is none; NULL marks a
-- row written before this column, whose configuration still holds its secrets (they are split
-- out when the server starts, and by any read or write of the row).
ALTER TABLE connections ADD COLUMN secrets TEXT;

-- Stored responses are now encrypted under a key derived from the credential that sent the
-- request, and their fingerprints keyed by it; records written before hold responses (minted
-- keys among them) in clear, and cannot be told apart from a different request. They are
-- dropped: a retry of one of them runs again.
DELETE FROM idempotency_keys;

-- +goose Down
ALTER TABLE connections DROP COLUMN secrets;
