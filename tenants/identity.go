package tenants

import (
	"context"
	"fmt"
)

// Identity describes the caller, in the shape of Polytomic's GET /api/me, plus Kind and
// PartnerID. A partner key has no user: ID, Email and Role are empty.
type Identity struct {
	ID               string         `json:"id,omitempty"`
	Email            string         `json:"email,omitempty"`
	Role             string         `json:"role,omitempty"`
	OrganizationID   string         `json:"organization_id"`
	OrganizationName string         `json:"organization_name"`
	IsPartner        bool           `json:"is_partner"`
	IsUser           bool           `json:"is_user"`
	IsOrganization   bool           `json:"is_organization"`
	IsSystem         bool           `json:"is_system"`
	Kind             CredentialKind `json:"kind"`
	PartnerID        string         `json:"partner_id"`
}

// Identity returns who p is.
func (s *Store) Identity(ctx context.Context, p *Principal) (Identity, error) {
	org, err := s.CurrentOrganization(ctx, p)
	if err != nil {
		return Identity{}, err
	}
	id := Identity{OrganizationID: org.ID, OrganizationName: org.Name, Kind: p.Kind, PartnerID: p.PartnerID,
		IsPartner: p.Kind == KindPartner, IsUser: p.Kind == KindUser}
	if p.Kind == KindUser {
		u, err := findUser(ctx, s.DB, p.OrgID, p.UserID)
		if err != nil {
			return Identity{}, fmt.Errorf("identity of key %s: %w", p.KeyID, err)
		}
		id.ID, id.Email, id.Role = u.ID, u.Email, u.Role
	}
	return id, nil
}
