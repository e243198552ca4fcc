package tenants

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
)

// Partner is a platform company that provisions customer organizations. It owns exactly one
// owner organization, where its own staff live.
type Partner struct {
	ID         string    `db:"id"`
	Name       string    `db:"name"`
	OwnerOrgID string    `db:"owner_org_id"`
	CreatedAt  time.Time `db:"created_at"`
}

// CreatePartner creates a partner and its owner organization (named like the partner) in tx.
// Partner names are unique ignoring case: a duplicate is ErrConflict.
func CreatePartner(ctx context.Context, tx *Tx, name string) (Partner, error) {
	name = strings.TrimSpace(name)
	if msg := checkName(name, 255); msg != "" {
		return Partner{}, Errorf(ErrInvalid, "validation_failed", "The partner name %s.", msg)
	}
	p := Partner{ID: NewID(), Name: name, CreatedAt: Now()}
	_, err := tx.ExecContext(ctx, tx.Rebind(
		`INSERT INTO partners (id, name, name_key, created_at) VALUES (?, ?, ?, ?)`),
		p.ID, p.Name, strings.ToLower(name), p.CreatedAt)
	if IsUniqueViolation(err) {
		return Partner{}, Errorf(ErrConflict, "partner_name_taken", "A partner named %q already exists.", name)
	}
	if err != nil {
		return Partner{}, fmt.Errorf("insert partner: %w", err)
	}
	// An owner organization starts without an SSO client secret: nothing to seal.
	org, err := insertOrganization(ctx, tx, nil, p.ID, true, OrganizationInput{Name: name})
	if err != nil {
		return Partner{}, err
	}
	p.OwnerOrgID = org.ID
	return p, RecordEvent(ctx, tx, nil, p.ID, org.ID, EventOrganizationCreated, org)
}

// OwnerOrganizationID returns the id of a partner's owner organization; an unknown partner is
// ErrNotFound.
func OwnerOrganizationID(ctx context.Context, q sqlx.ExtContext, partnerID string) (string, error) {
	o, err := getOne[Organization](ctx, q, partnerID,
		Errorf(ErrNotFound, "partner_not_found", "No partner has id %q.", partnerID),
		`SELECT `+orgColumns+` FROM organizations WHERE partner_id = ? AND is_owner`, partnerID)
	return o.ID, err
}

// CountPartners returns how many partners exist (zero on a new installation).
func CountPartners(ctx context.Context, q sqlx.QueryerContext) (int, error) {
	var n int
	err := sqlx.GetContext(ctx, q, &n, `SELECT COUNT(*) FROM partners`)
	return n, err
}
