package tenants

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// Idempotency-Key records: a write sent again with the same key by the same credential gets
// the first response again instead of being done twice. The server decides what a record
// holds (a fingerprint of the request, the response sealed); this is where records live.

// IdempotencyState is where a record is: its request running, or its response stored.
type IdempotencyState string

const (
	IdempotencyInFlight IdempotencyState = "in_flight"
	IdempotencyDone     IdempotencyState = "done"
)

// IdempotencyKey names a record: the exact credential that sent the request, and the
// Idempotency-Key it sent. ClaimedAt, once a claim owns the record, is when it did (the
// record's updated_at then): Finish and Release act only on the record of that claim, never on
// one a retry made or took over since.
type IdempotencyKey struct {
	Credential, Key string
	ClaimedAt       time.Time
}

// IdempotencyRecord is one request's record.
type IdempotencyRecord struct {
	Fingerprint []byte           `db:"fingerprint"`
	State       IdempotencyState `db:"state"`
	Status      sql.NullInt64    `db:"status"`
	Headers     sql.NullString   `db:"headers"`
	Body        []byte           `db:"body"`
	UpdatedAt   time.Time        `db:"updated_at"`
}

// ClaimIdempotencyKey records k's request as in flight, or returns the record already there.
// owned is true when this request is to run: k is new, or the record has been in flight for
// longer than stale with the same fingerprint (its holder died, nothing of it committed); the
// record's UpdatedAt is then the claim's time, for k.ClaimedAt.
// It runs on the database, outside any unit of work: other requests must see the claim at once.
func (s *Store) ClaimIdempotencyKey(ctx context.Context, k IdempotencyKey, fingerprint []byte, stale time.Duration) (bool, IdempotencyRecord, error) {
	db, now := s.DB, Now()
	res, err := db.ExecContext(ctx, db.Rebind(`INSERT INTO idempotency_keys (credential_id, idem_key, fingerprint, state, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (credential_id, idem_key) DO NOTHING`), k.Credential, k.Key, fingerprint, IdempotencyInFlight, now, now)
	if err != nil {
		return false, IdempotencyRecord{}, fmt.Errorf("claim idempotency key: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return true, IdempotencyRecord{State: IdempotencyInFlight, Fingerprint: fingerprint, UpdatedAt: now}, nil
	}
	var rec IdempotencyRecord
	if err := sqlx.GetContext(ctx, db, &rec, db.Rebind(`SELECT fingerprint, state, status, headers, body, updated_at
		FROM idempotency_keys WHERE credential_id = ? AND idem_key = ?`), k.Credential, k.Key); err != nil {
		return false, rec, fmt.Errorf("read idempotency key: %w", err)
	}
	if rec.State == IdempotencyInFlight && bytes.Equal(rec.Fingerprint, fingerprint) && now.Sub(rec.UpdatedAt) > stale {
		res, err := db.ExecContext(ctx, db.Rebind(`UPDATE idempotency_keys SET updated_at = ?
			WHERE credential_id = ? AND idem_key = ? AND state = ? AND updated_at = ?`), now, k.Credential, k.Key, IdempotencyInFlight, rec.UpdatedAt)
		if err != nil {
			return false, rec, fmt.Errorf("take over idempotency key: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 1 {
			rec.UpdatedAt = now
			return true, rec, nil
		}
	}
	return false, rec, nil
}

// FinishIdempotencyKey stores the response of k's request (its body sealed by the caller) in
// s's unit of work, if bound, so that the change and its record commit together.
func (s *Store) FinishIdempotencyKey(ctx context.Context, k IdempotencyKey, status int, headers string, body []byte) error {
	return s.Write(ctx, func(tx *Tx) error {
		res, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE idempotency_keys SET state = ?, status = ?, headers = ?, body = ?,
			updated_at = ? WHERE credential_id = ? AND idem_key = ? AND state = ? AND updated_at = ?`),
			IdempotencyDone, status, headers, body, Now(), k.Credential, k.Key, IdempotencyInFlight, k.ClaimedAt)
		if err != nil {
			return fmt.Errorf("store idempotent response: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return errors.New("the idempotency record was taken over meanwhile")
		}
		return nil
	})
}

// ReleaseIdempotencyKey drops k's in-flight record, so that a retry runs the request again:
// the record of k's claim only, so that a release tried again after an outage (or after its
// own commit's answer was lost) never drops the record of a retry that claimed the key since.
func (s *Store) ReleaseIdempotencyKey(ctx context.Context, k IdempotencyKey) error {
	_, err := s.DB.ExecContext(ctx, s.DB.Rebind(`DELETE FROM idempotency_keys
		WHERE credential_id = ? AND idem_key = ? AND state = ? AND updated_at = ?`), k.Credential, k.Key, IdempotencyInFlight, k.ClaimedAt)
	return err
}
