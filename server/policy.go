package server

import "github.com/tenantry/tenantry/tenants"

// policy says who may call a route; the route table (routes) built from these is the whole
// access policy. Which objects a caller may touch (its own tenant's only) is the domain's call.
type policy struct {
	public  bool           // no credential needed (the JWKS)
	partner partnerRule    // what a partner key (or its token) may do here
	refusal string         // why a partner is refused, when partner is partnerRefused
	action  tenants.Action // the permission an organization credential needs; "" for none
	asker   bool           // asker organization keys (and asker tokens) may call it
	noToken bool           // temporary tokens may not call it (they cannot mint credentials)
}

type partnerRule int

const (
	partnerRefused partnerRule = iota // the route is for organization credentials only
	partnerAllowed                    // a partner acts on its owner organization
	partnerOnly                       // partner endpoints: organization credentials are refused
)

// The policies routes are built from.
var (
	public      = policy{public: true}
	forPartners = policy{partner: partnerOnly}
	forAnyone   = policy{partner: partnerAllowed, asker: true}
	// orgKeys is the caller's organization's keys, for organization credentials.
	orgKeys = policy{partner: partnerRefused,
		refusal: "A partner key manages keys through /api/partner/keys and /api/organizations/{org_id}/keys."}
)

// orgAction is a route on the caller's own organization that needs action; a partner acts on
// its owner organization.
func orgAction(a tenants.Action) policy { return policy{partner: partnerAllowed, action: a} }

// resourceAction is a route on organization resources (connections, datasets) that needs action.
func resourceAction(a tenants.Action) policy {
	return policy{partner: partnerRefused, action: a, refusal: "A partner key cannot work on an organization's " +
		"resources; mint a key for a user of that organization (POST /api/organizations/{org_id}/users/{id}/keys) and call with it."}
}

func (pol policy) withAskers() policy { pol.asker = true; return pol }
func (pol policy) noTokens() policy   { pol.noToken = true; return pol }

// check decides 403 or go-ahead for an authenticated principal.
func (pol policy) check(p *tenants.Principal) error {
	switch {
	case p.IsToken() && pol.noToken:
		return tenants.TokenNotAllowed("A temporary token cannot call this endpoint; call it with a key.")
	case p.IsPartner() && pol.partner == partnerRefused:
		return &tenants.Error{Kind: tenants.ErrForbidden, Key: "partner_key_not_allowed", Message: pol.refusal}
	case pol.partner == partnerOnly && !p.IsPartner():
		return tenants.RequirePartner(p)
	case pol.partner == partnerOnly && p.Permissions != tenants.AllPermissions && !pol.asker:
		// Partner operations are not in the action catalogue: only an unrestricted partner
		// credential may perform them, never a token narrowed by scopes or role.
		return tenants.Errorf(tenants.ErrForbidden, "permission_denied",
			"This partner endpoint needs an unrestricted partner credential; this token is narrowed by its scopes or role.")
	case p.IsAsker() && !pol.asker:
		return tenants.Errorf(tenants.ErrForbidden, "asker_not_allowed",
			"An asker key may only call GET /api/me, read connections and datasets, and mint asker tokens.")
	case pol.action != "" && !p.Can(pol.action):
		return tenants.Errorf(tenants.ErrForbidden, "permission_denied",
			"This request needs the %s permission, which this credential does not have.", pol.action)
	}
	return nil
}
