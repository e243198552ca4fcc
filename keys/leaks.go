package keys

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/tenantry/tenantry/tenants"
)

// Leaked credentials are reported by secret scanners (GitHub's, a partner's own) and by anyone
// who finds one: POST /api/credentials/revoke, unauthenticated, in the manner of GitHub's
// credential revocation API. Holding a credential's value is the authority to end it, so
// RevokeReported takes no Principal; its events name the Reporter as their actor.
//
// What a reported value ends is what that value could do, and nothing more:
//   - a key value that authenticates revokes its key at once (user, organization and partner
//     keys alike: a partner's last key too, since a leaked key is worse than none; the operator
//     issues a new one with `tenantry partner issue-key`), with an api_key.revoked (or
//     partner_key.revoked) event whose object carries reason "reported_leaked";
//   - a temporary token that authenticates ends the tokens its key issued until it (iat at or
//     before the token's), not the key, whose value did not leak: api_key.tokens_revoked.
//     Its key mints new ones as before;
//   - anything else (malformed, unknown, another server's token, a revoked or expired key, a
//     value rotated out past its grace) changes nothing: it could do nothing already.
//
// The caller learns none of this: its answer is the same whatever it reported.

// MaxReportedCredentials is how many values one report may carry.
const MaxReportedCredentials = 100

// LeakReason is the reason the events of reported revocations record.
const LeakReason = "reported_leaked"

// maxReportedLength bounds a value worth looking at: a key is Length characters, a token a
// few hundred; anything longer is no credential of ours.
const maxReportedLength = 4096

// LeakReport says what a report found, for metrics and logs only, never for the reporter.
type LeakReport struct {
	Malformed      int // not the shape of a key (its checksum) or of a token: skipped without a lookup
	Unknown        int // well formed, but it could do nothing: no such key, a bad signature, expired...
	Revoked        int // keys revoked now
	TokensRevoked  int // keys whose tokens were ended now
	AlreadyRevoked int // ended by an earlier report or revocation: changed nothing
}

// reportedKey is the key a reported value works as: the key of a key value, or a token's
// parent key with the token's iat.
type reportedKey struct {
	id       string
	issuedAt time.Time // a token's; zero for a key value
}

// RevokeReported ends what each of values, reported leaked, could do (see above), in one
// transaction, and says what it found. A value works if it authenticates, checked as every
// request's credential is (Authenticate, without counting a use): so a malformed value is
// skipped before the database is touched. It returns ErrInvalid for an empty report or one of
// more than MaxReportedCredentials values.
func (s *Service) RevokeReported(ctx context.Context, values []string) (LeakReport, error) {
	var out LeakReport
	if len(values) == 0 || len(values) > MaxReportedCredentials {
		return out, tenants.FieldError("credentials", fmt.Sprintf("must list 1 to %d values; send more in several reports", MaxReportedCredentials))
	}
	var working []reportedKey
	seen := map[string]bool{}
	for _, v := range values {
		if seen[v] {
			continue // counted once
		}
		seen[v] = true
		if v == "" || len(v) > maxReportedLength {
			out.Malformed++
			continue
		}
		p, err := s.authenticate(ctx, v)
		switch RefusalReason(err) {
		case "":
			if err != nil {
				return out, err // the database, not the value
			}
		case "malformed":
			out.Malformed++
			continue
		case "revoked":
			out.AlreadyRevoked++
			continue
		default:
			out.Unknown++
			continue
		}
		k := reportedKey{id: p.KeyID}
		if p.IsToken() {
			claims, err := s.verifiedClaims(ctx, v) // verified just now: from the cache
			if err != nil {
				return out, err
			}
			k.issuedAt = claims.IssuedAt.Time
		}
		working = append(working, k)
	}
	if len(working) == 0 {
		return out, nil
	}
	reporter := tenants.Reporter()
	err := s.Write(ctx, func(tx *tenants.Tx) error {
		tally := out
		for _, k := range working {
			if err := endReported(ctx, tx, reporter, k, &tally); err != nil {
				return err
			}
		}
		out = tally
		return nil
	})
	return out, err
}

// endReported revokes the reported key k (or, for a token, its key's tokens until k's), under
// the key's lock, through the same revoke as every other revocation: its event invalidates the
// principal caches of every replica when tx commits, and reaches the organization's webhooks.
func endReported(ctx context.Context, tx *tenants.Tx, reporter *tenants.Principal, k reportedKey, tally *LeakReport) error {
	if err := tenants.LockRow(ctx, tx, "api_keys", k.id); err != nil {
		return err
	}
	r, err := findKey(ctx, tx, `id = ?`, k.id)
	if errors.Is(err, sql.ErrNoRows) {
		tally.Unknown++ // deleted meanwhile, with its organization
		return nil
	}
	if err != nil {
		return fmt.Errorf("select reported key: %w", err)
	}
	switch {
	case r.RevokedAt.Valid:
		tally.AlreadyRevoked++
		return nil
	case k.issuedAt.IsZero():
		tally.Revoked++
		_, err := revoke(ctx, tx, reporter, r, LeakReason)
		return err
	}
	// A token: the key's tokens issued until it end.
	var until sql.NullTime
	if err := sqlx.GetContext(ctx, tx, &until, tx.Rebind(`SELECT tokens_revoked_until FROM api_keys WHERE id = ?`), r.ID); err != nil {
		return fmt.Errorf("select reported key: %w", err)
	}
	if until.Valid && !until.Time.Before(k.issuedAt) {
		tally.AlreadyRevoked++
		return nil
	}
	at := k.issuedAt.UTC()
	if _, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE api_keys SET tokens_revoked_until = ? WHERE id = ?`), at, r.ID); err != nil {
		return fmt.Errorf("revoke tokens: %w", err)
	}
	tally.TokensRevoked++
	return tenants.RecordEvent(ctx, tx, reporter, r.PartnerID, r.OrgID, tenants.EventAPIKeyTokensRevoked,
		tokensRevoked{Key: r.key(), Reason: LeakReason, TokensRevokedUntil: at})
}

// revokedKey is the object of a revocation's event: the key, and why it was revoked when a
// reason is known.
type revokedKey struct {
	Key
	Reason string `json:"reason,omitempty"`
}

// tokensRevoked is the object of an api_key.tokens_revoked event.
type tokensRevoked struct {
	Key
	Reason             string    `json:"reason"`
	TokensRevokedUntil time.Time `json:"tokens_revoked_until"`
}
