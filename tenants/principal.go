package tenants

// CredentialKind names what kind of credential a request authenticated with.
type CredentialKind string

const (
	KindPartner CredentialKind = "partner" // a partner key: manages the partner's organizations
	KindUser    CredentialKind = "user"    // a user key: acts as one user in one organization
)

// Principal is who is calling: the result of authenticating a bearer credential. It carries
// only identifiers, never the credential itself.
type Principal struct {
	Kind      CredentialKind
	KeyID     string
	PartnerID string // the partner the credential belongs to (for a user key: its organization's)
	OrgID     string // the organization it acts in (for a partner key: the owner organization)
	UserID    string // set for user keys
	IsAdmin   bool   // a user key whose user holds the Admin role
}

// IsPartner reports whether p is a partner key.
func (p *Principal) IsPartner() bool { return p != nil && p.Kind == KindPartner }

// RequirePartner refuses any credential but a partner key with 403 partner_key_required.
func RequirePartner(p *Principal) error {
	if p.IsPartner() {
		return nil
	}
	return Errorf(ErrForbidden, "partner_key_required",
		"This endpoint requires a partner key; a %s key cannot call it.", p.Kind)
}
