package tenants

import (
	"time"
)

// Identity describes the caller, in the shape of Polytomic's GET /api/me, plus Kind,
// PartnerID, Permissions and ExpiresAt. Only a user (a user key or its token) has ID, Email
// and Role.
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
	KeyID            string         `json:"key_id"`
	OrganizationRole string         `json:"organization_role,omitempty"`
	Permissions      []Action       `json:"permissions"`
	ExpiresAt        *time.Time     `json:"expires_at"`
}

// IdentityOf returns who p is. It needs no query: authentication read all of it, in the
// same statement, this request.
func IdentityOf(p *Principal) Identity {
	id := Identity{OrganizationID: p.OrgID, OrganizationName: p.OrgName, Kind: p.Kind, PartnerID: p.PartnerID,
		KeyID: p.KeyID, OrganizationRole: p.OrgRole, Permissions: p.Permissions.Actions(), ExpiresAt: p.ExpiresAt,
		IsPartner: p.ParentKind == KindPartner, IsUser: p.ParentKind == KindUser, IsOrganization: p.ParentKind == KindOrganization}
	if p.UserID != "" {
		id.ID, id.Email, id.Role = p.UserID, p.Email, p.LegacyRole
	}
	return id
}
