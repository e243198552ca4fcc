package server

import "github.com/tenantry/tenantry/tenants"

// policy says which kinds of credential may call a route at all: HTTP's part of access
// control, for every entry point that reaches a route (REST and the command endpoint). What a
// credential of an allowed kind may do there (its permissions, which objects it may touch) is
// the domain's call, made by the domain method the handler calls.
type policy struct {
	public  bool        // no credential needed (the JWKS)
	partner partnerRule // whether partner keys (and their tokens) may call it
	refusal string      // why a partner is refused, when partner is partnerRefused
	asker   bool        // asker organization keys (and asker tokens) may call it
	noToken bool        // temporary tokens may not call it (they cannot mint credentials)
	// basic: the credential may also come by HTTP Basic, as OAuth clients send theirs (RFC 6749
	// §2.3.1): client_id the key's id, client_secret the key or token (presentedCredential).
	basic bool
	// safe: a POST that asks and changes nothing (RFC 9110 §9.2.1), so Idempotency-Key is
	// ignored, as on GET: a replayed answer about a credential would be stale.
	safe bool
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
	// forOrgs is a route on the caller's own organization; a partner acts on its owner
	// organization.
	forOrgs = policy{partner: partnerAllowed}
	// orgKeys is the caller's organization's keys, for organization credentials.
	orgKeys = policy{partner: partnerRefused,
		refusal: "A partner key manages keys through /api/partner/keys and /api/organizations/{org_id}/keys."}
	// gateway is GET /api/auth/check: the credentials a customer's programs call a service
	// with. A partner key provisions organizations; it is not one of them.
	gateway = policy{partner: partnerRefused, asker: true, refusal: "A partner key manages organizations and does not " +
		"pass the gateway check; call the service with a key of one of its organizations (a user or organization key) or a token of one."}
	// verifiers may ask whether a credential is valid (keys.VerifyCredential decides about
	// which); introspectors the same, as OAuth clients.
	verifiers     = forAnyone.safeToRepeat()
	introspectors = verifiers.withBasic()
	// resources is a route on organization resources (connections, datasets).
	resources = policy{partner: partnerRefused, refusal: "A partner key cannot work on an organization's " +
		"resources; mint a key for a user of that organization (POST /api/organizations/{org_id}/users/{id}/keys) and call with it."}
)

func (pol policy) withAskers() policy   { pol.asker = true; return pol }
func (pol policy) noTokens() policy     { pol.noToken = true; return pol }
func (pol policy) withBasic() policy    { pol.basic = true; return pol }
func (pol policy) safeToRepeat() policy { pol.safe = true; return pol }

// check decides 403 or go-ahead for an authenticated principal, by its kind alone.
func (pol policy) check(p *tenants.Principal) error {
	switch {
	case p.IsToken() && pol.noToken:
		return tenants.TokenNotAllowed("A temporary token cannot call this endpoint; call it with a key.")
	case p.IsPartner() && pol.partner == partnerRefused:
		return &tenants.Error{Kind: tenants.ErrForbidden, Key: "partner_key_not_allowed", Message: pol.refusal}
	case pol.partner == partnerOnly:
		return p.RequirePartner()
	case p.IsAsker() && !pol.asker:
		return tenants.Errorf(tenants.ErrForbidden, "asker_not_allowed",
			"An asker key may only call GET /api/me, read connections and datasets, and mint asker tokens.")
	}
	return nil
}
