package tenants

import (
	"fmt"
	"net/netip"
	"time"
)

// CredentialKind names what kind of credential a request authenticated with.
type CredentialKind string

const (
	KindPartner      CredentialKind = "partner"      // manages the partner's organizations
	KindUser         CredentialKind = "user"         // acts as one user in one organization
	KindOrganization CredentialKind = "organization" // org-wide, not tied to a user: role admin or asker
	KindToken        CredentialKind = "token"        // a short-lived JWT minted from one of the above
	// KindReporter is no credential: whoever reports leaked credentials, unauthenticated
	// (POST /api/credentials/revoke). See Reporter.
	KindReporter CredentialKind = "reporter"
)

// Reporter is the actor of the revocations a report of leaked credentials causes, so that
// their events say who made them. It holds no permission and acts in no organization: nothing
// it is passed to can let it do anything. The domain method that serves reports
// (keys.Service.RevokeReported) takes no Principal at all: holding a credential's value is
// the authority to end it, as with GitHub's credential revocation API.
func Reporter() *Principal { return &Principal{Kind: KindReporter, ParentKind: KindReporter} }

// Organization key roles.
const (
	OrgRoleAdmin = "admin" // every organization API
	OrgRoleAsker = "asker" // a read-only allow-list
)

// Principal is who is calling: the result of authenticating a bearer credential. It carries
// identifiers and permissions, never the credential itself.
type Principal struct {
	Kind        CredentialKind
	ParentKind  CredentialKind // for a token: the kind of key that minted it; else Kind
	KeyID       string         // the key's id (for a token: its parent key's)
	TokenID     string         // a token's jti
	PartnerID   string         // the partner the credential belongs to
	OrgID       string         // the organization it acts in (a partner key: the owner organization)
	UserID      string         // the user it acts as (user keys and their tokens)
	OrgRole     string         // OrgRoleAdmin or OrgRoleAsker, for organization keys and their tokens
	Permissions Permissions    // what it may do in OrgID: roles ∩ scopes ∩ parent
	Scopes      *Permissions   // the scopes narrowing it (a key's ∩ a token's); nil: none
	IssuedAt    time.Time      // when the value it presented was issued (a key value's creation, a token's iat)
	ExpiresAt   *time.Time     // when it stops working, if ever
	APIVersion  string         // its organization's pinned API version
	SecretID    string         // which value of the key it presented (a hash; tokens: their parent's)
	Narrowed    bool           // scopes or a role restrict it below its owner's permissions
	InGrace     bool           // a rotated-out value, working only until its grace period ends
	// The networks it may be used from (AllowsAddress), read by the query that authenticated
	// it: its organization's key policy's (none for a partner key) and its key's own. Empty: any.
	OrgCIDRs, KeyCIDRs []netip.Prefix

	// What GET /api/me shows, read by the same query that authenticated the request.
	OrgName    string // its organization's name
	Email      string // its user's email (user keys and their tokens)
	LegacyRole string // its user's Polytomic role: "admin" or "user"
}

// Subject is who p stands for, as a token's sub claim names it: its user, else its key.
func (p *Principal) Subject() string {
	if p.UserID != "" {
		return p.UserID
	}
	return p.KeyID
}

// IsPartner reports whether p is a partner key or a token minted from one.
func (p *Principal) IsPartner() bool { return p != nil && p.ParentKind == KindPartner }

// IsAsker reports whether p is an asker organization key, or a token limited to asker.
func (p *Principal) IsAsker() bool { return p != nil && p.OrgRole == OrgRoleAsker }

// IsToken reports whether p is a temporary token.
func (p *Principal) IsToken() bool { return p != nil && p.Kind == KindToken }

// Can reports whether p may perform a in its organization.
func (p *Principal) Can(a Action) bool { return p != nil && p.Permissions.Has(a) }

// Require refuses p (403 permission_denied) unless it may perform a in its organization. Every
// exported domain method that acts in an organization calls it (or RequirePartner) first.
func (p *Principal) Require(a Action) error {
	if p.Can(a) {
		return nil
	}
	return Errorf(ErrForbidden, "permission_denied",
		"This request needs the %s permission, which this credential does not have.", a)
}

// RequireAll refuses p (403 permission_denied, listing what it lacks in
// metadata.missing_actions) unless it may perform every action of need in its organization:
// Require for a set of actions, as a gateway asks for a service's route (GET /api/auth/check).
func (p *Principal) RequireAll(need Permissions) error {
	var held Permissions
	if p != nil {
		held = p.Permissions
	}
	missing := need &^ held
	if missing == 0 {
		return nil
	}
	return &Error{Kind: ErrForbidden, Key: "permission_denied",
		Message:  fmt.Sprintf("This request needs %s, which this credential does not have.", missing.list()),
		Metadata: map[string]any{"missing_actions": missing.Actions()}}
}

// RequirePartner refuses any credential but an unrestricted partner credential: a partner key,
// or a token of one not narrowed by scopes or role (403 partner_key_required or
// permission_denied). Partner operations are not in the action catalogue, so no narrowed
// credential may perform them.
func (p *Principal) RequirePartner() error {
	switch {
	case !p.IsPartner():
		kind := CredentialKind("no")
		if p != nil {
			kind = p.ParentKind
		}
		return Errorf(ErrForbidden, "partner_key_required",
			"This endpoint requires a partner key; a %s credential cannot call it.", kind)
	case p.Permissions != AllPermissions:
		return Errorf(ErrForbidden, "permission_denied",
			"This partner endpoint needs an unrestricted partner credential; this token is narrowed by its scopes or role.")
	}
	return nil
}

// TokenNotAllowed refuses a temporary token something only a key may do (403
// token_not_allowed): mint a credential, or manage a key without holding keys:write.
func TokenNotAllowed(format string, args ...any) *Error {
	return Errorf(ErrForbidden, "token_not_allowed", format, args...)
}
