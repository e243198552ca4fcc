package keys

import (
	"context"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/tenantry/tenantry/tenants"
)

// ExpiryWarnings are the thresholds at which a key about to expire is announced, nearest
// last: an api_key.expiring (partner_key.expiring) event when its expires_at is this close.
var ExpiryWarnings = []time.Duration{7 * 24 * time.Hour, 24 * time.Hour}

// WarnExpiring announces, as of now, each key whose expiry came within a threshold of
// ExpiryWarnings: once per key and threshold, however often it is called and by however many
// replicas (a notice row, inserted in the event's transaction, is the proof of having sent
// it). A key is warned at a threshold only if it lived past it (a key made to last a day gets
// no 7-day warning) and only at the nearest one it is within (a key found 20 hours before
// its expiry gets the 1-day warning alone). It returns how many warnings it sent.
func (s *Service) WarnExpiring(ctx context.Context, now time.Time) (int, error) {
	sent := 0
	for i, threshold := range ExpiryWarnings {
		after := now // within the next threshold, and not within the nearer one
		if i+1 < len(ExpiryWarnings) {
			after = now.Add(ExpiryWarnings[i+1])
		}
		var due []keyRecord
		if err := sqlx.SelectContext(ctx, s.DB, &due, s.DB.Rebind(`SELECT `+keyColumns+` FROM api_keys k
			WHERE expires_at IS NOT NULL AND revoked_at IS NULL AND expires_at > ? AND expires_at <= ?
			AND NOT EXISTS (SELECT 1 FROM key_expiry_notices n WHERE n.key_id = k.id AND n.threshold_days = ?)`),
			after.UTC(), now.Add(threshold).UTC(), days(threshold)); err != nil {
			return sent, fmt.Errorf("select expiring keys: %w", err)
		}
		for _, r := range due {
			if r.ExpiresAt.Time.Sub(r.CreatedAt) <= threshold {
				continue // never lived past this threshold
			}
			warned, err := s.warn(ctx, r, threshold, now)
			if err != nil {
				return sent, err
			}
			if warned {
				sent++
			}
		}
	}
	return sent, nil
}

// warn sends one key's warning at threshold, unless another call (another replica) did.
func (s *Service) warn(ctx context.Context, r keyRecord, threshold time.Duration, now time.Time) (bool, error) {
	warned := false
	err := s.Write(ctx, func(tx *tenants.Tx) error {
		res, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO key_expiry_notices (key_id, threshold_days, created_at)
			VALUES (?, ?, ?) ON CONFLICT DO NOTHING`), r.ID, days(threshold), now.UTC())
		if err != nil {
			return fmt.Errorf("note an expiry warning: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		typ := tenants.EventAPIKeyExpiring
		if r.Kind == tenants.KindPartner {
			typ = tenants.EventPartnerKeyExpiring
		}
		warned = true
		return tenants.RecordSystemEvent(ctx, tx, r.PartnerID, r.OrgID, typ, expiringKey{Key: r.key(), ThresholdDays: days(threshold)})
	})
	return warned, err
}

// expiringKey is the object of an expiry warning: the key as the API shows it, and which
// warning this is.
type expiringKey struct {
	Key
	ThresholdDays int `json:"threshold_days"`
}

func days(d time.Duration) int { return int(d / (24 * time.Hour)) }
