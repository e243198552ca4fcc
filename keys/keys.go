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

// Service mints and verifies keys on one database.
type Service struct {
	DB *sqlx.DB
}

// NewService returns a Service on db.
func NewService(db *sqlx.DB) *Service { return &Service{DB: db} }

// ErrInvalidToken is the one answer for a malformed, unknown or revoked key: the caller is not
// told which check failed.
var ErrInvalidToken = tenants.Errorf(tenants.ErrUnauthenticated, "invalid_token",
	"The credential is invalid, expired or revoked. Send a valid key as 'Authorization: Bearer <key>'.")

// ErrMissingToken is the answer for a request that sent no credential.
var ErrMissingToken = tenants.Errorf(tenants.ErrUnauthenticated, "missing_token",
	"This request needs a credential. Send a key as 'Authorization: Bearer <key>'.")

// Authenticate turns a bearer value into the Principal it stands for, with one indexed lookup by
// hash. A malformed value is refused before the database is touched.
func (s *Service) Authenticate(ctx context.Context, value string) (*tenants.Principal, error) {
	if value == "" {
		return nil, ErrMissingToken
	}
	if _, ok := parse(value); !ok {
		return nil, ErrInvalidToken
	}
	var row struct {
		ID        string       `db:"id"`
		Kind      string       `db:"kind"`
		PartnerID string       `db:"partner_id"`
		OrgID     string       `db:"org_id"`
		UserID    string       `db:"user_id"`
		RevokedAt sql.NullTime `db:"revoked_at"`
		IsAdmin   bool         `db:"is_admin"`
	}
	err := sqlx.GetContext(ctx, s.DB, &row, s.DB.Rebind(`
		SELECT k.id, k.kind, k.partner_id, k.org_id, COALESCE(k.user_id, '') AS user_id, k.revoked_at,
			EXISTS (SELECT 1 FROM user_roles ur JOIN roles r ON r.id = ur.role_id
				WHERE ur.user_id = k.user_id AND r.system AND r.name = ?) AS is_admin
		FROM api_keys k WHERE k.secret_hash = ?`), tenants.RoleAdmin, hash(value))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrInvalidToken
	}
	if err != nil {
		return nil, fmt.Errorf("look up key: %w", err)
	}
	if row.RevokedAt.Valid && !row.RevokedAt.Time.After(time.Now()) {
		return nil, ErrInvalidToken
	}
	return &tenants.Principal{Kind: tenants.CredentialKind(row.Kind), KeyID: row.ID, PartnerID: row.PartnerID,
		OrgID: row.OrgID, UserID: row.UserID, IsAdmin: row.IsAdmin}, nil
}

// insertKey stores a new key's hash and returns its value: the only time the value exists.
func insertKey(ctx context.Context, tx *sqlx.Tx, kind tenants.CredentialKind, partnerID, orgID, userID string, partnerIssued bool) (string, error) {
	value := generate(kind)
	var user any
	if userID != "" {
		user = userID
	}
	_, err := tx.ExecContext(ctx, tx.Rebind(`
		INSERT INTO api_keys (id, kind, secret_hash, hint, partner_id, org_id, user_id, partner_issued, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		tenants.NewID(), string(kind), hash(value), hint(value), partnerID, orgID, user, partnerIssued, tenants.Now())
	if err != nil {
		return "", err
	}
	return value, nil
}

// CreatePartner creates a partner, its owner organization and its first partner key in one
// transaction, and returns the key's value.
func (s *Service) CreatePartner(ctx context.Context, name string) (tenants.Partner, string, error) {
	var p tenants.Partner
	var value string
	err := tenants.InTx(ctx, s.DB, func(tx *sqlx.Tx) (err error) {
		p, value, err = createPartner(ctx, tx, name)
		return err
	})
	return p, value, err
}

func createPartner(ctx context.Context, tx *sqlx.Tx, name string) (tenants.Partner, string, error) {
	p, err := tenants.CreatePartner(ctx, tx, name)
	if err != nil {
		return p, "", err
	}
	value, err := insertKey(ctx, tx, tenants.KindPartner, p.ID, p.OwnerOrgID, "", false)
	if err != nil {
		return p, "", fmt.Errorf("insert partner key: %w", err)
	}
	return p, value, nil
}

// Bootstrap creates a first partner named name when the database has none, and hands its key
// to deliver before committing: if deliver fails, nothing is created, so no partner exists
// whose key nobody holds. created is false when a partner already exists. It is safe to race:
// the check and the creation share one write transaction.
func (s *Service) Bootstrap(ctx context.Context, name string, deliver func(value string) error) (created bool, err error) {
	err = tenants.InTx(ctx, s.DB, func(tx *sqlx.Tx) error {
		n, err := tenants.CountPartners(ctx, tx)
		if err != nil || n > 0 {
			return err
		}
		_, value, err := createPartner(ctx, tx, name)
		if err != nil {
			return err
		}
		if err := deliver(value); err != nil {
			return err
		}
		created = true
		return nil
	})
	return created && err == nil, err
}

// MintUserKey issues a key for a user of one of the partner's organizations (Polytomic's
// POST /api/organizations/{org_id}/users/{id}/keys). A user holds at most one active key from
// this endpoint: a second is ErrConflict unless force is set, in which case the old key is
// revoked and the new one issued in the same transaction.
func (s *Service) MintUserKey(ctx context.Context, p *tenants.Principal, orgID, userID string, force bool) (string, error) {
	if err := tenants.RequirePartner(p); err != nil {
		return "", err
	}
	var value string
	err := tenants.InTx(ctx, s.DB, func(tx *sqlx.Tx) error {
		u, err := tenants.FindUser(ctx, tx, p, orgID, userID)
		if err != nil {
			return err
		}
		if force {
			if _, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE api_keys SET revoked_at = ?
				WHERE user_id = ? AND partner_issued AND revoked_at IS NULL`), tenants.Now(), u.ID); err != nil {
				return fmt.Errorf("revoke user key: %w", err)
			}
		}
		value, err = insertKey(ctx, tx, tenants.KindUser, p.PartnerID, orgID, u.ID, true)
		if tenants.IsUniqueViolation(err) {
			return tenants.Errorf(tenants.ErrConflict, "user_key_exists",
				"User %q already has an active key; pass force=true to revoke it and issue a new one.", u.ID)
		}
		if err != nil {
			return fmt.Errorf("insert user key: %w", err)
		}
		return nil
	})
	return value, err
}
