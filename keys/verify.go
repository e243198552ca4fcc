package keys

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/tenantry/tenantry/tenants"
)

// Verification lets a partner's own services ask whether a credential is good and what it may
// do: POST /api/keys/verify, and RFC 7662 introspection (POST /oauth/introspect). Who may ask
// about which credentials, and what the answer then says, is decided here, once, for both:
//   - a partner key (or an unrestricted token of one) asks about the credentials of its
//     partner: of its organizations, its owner organization's staff, its own partner keys;
//   - any other credential holding keys:read asks about its own organization's user and
//     organization keys and their tokens (never a partner's);
//   - anyone else is refused (403).
//
// A credential the caller may not ask about is answered exactly as an unknown one is, and costs
// it nothing: the answer is the same bytes whether it is malformed, unknown, revoked, expired,
// rotated out or another tenant's. Only Outcome, for metrics, tells them apart. A credential in
// the caller's scope is authenticated as a request with it would be (the principal cache, so a
// revocation is seen at once), and spends one request of its own rate limit.

// RateLimit is where a verified credential's rate limit stands, after the verification spent
// one request of it: the numbers of its RateLimit-Limit, -Remaining and -Reset fields.
type RateLimit struct {
	Limit     int `json:"limit"`     // requests it may make at once (the bucket's size)
	Remaining int `json:"remaining"` // requests it may still make now
	Reset     int `json:"reset"`     // seconds until its bucket is full again
}

// Spend spends one request of the rate limit of the key keyID (a token's is its key's), as a
// request with it would, and says where the limit stands; ok is false when none was left. A
// nil Spend is no limit.
type Spend func(keyID string) (state RateLimit, ok bool)

// VerifyInput is the body of POST /api/keys/verify: the value of a key or temporary token, and
// the actions it must hold (optional).
type VerifyInput struct {
	Key     string
	Require []string
}

// Verification is the answer of POST /api/keys/verify: {"valid": true, ...what the credential
// is and may do}, or {"valid": false} and nothing else, except for a credential in the
// caller's scope that lacks a required action (missing_permissions) or has used up its rate
// limit (rate_limit).
type Verification struct {
	Valid bool `json:"valid"`
	*Verified
	MissingPermissions []tenants.Action `json:"missing_permissions,omitempty"`
	// RateLimit is present for a credential in the caller's scope while rate limits are on.
	RateLimit *RateLimit `json:"rate_limit,omitempty"`
	outcome   string
}

// Verified is what a valid credential is and may do.
type Verified struct {
	Kind           tenants.CredentialKind `json:"kind"`
	OrganizationID string                 `json:"organization_id"`
	UserID         *string                `json:"user_id"`
	KeyID          string                 `json:"key_id"` // a token's: the key that minted it
	Permissions    []tenants.Action       `json:"permissions"`
	Scopes         []tenants.Action       `json:"scopes"` // null: not narrowed by scopes
	ExpiresAt      *time.Time             `json:"expires_at"`
}

// Outcome says why the answer is what it is, for metrics only (never answered): valid,
// missing_permissions, rate_limited, out_of_scope, or why authentication refused it (unknown,
// malformed, revoked, expired, rotated_out, bad_token).
func (v Verification) Outcome() string { return v.outcome }

// Introspection is the answer of POST /oauth/introspect (RFC 7662 §2.2): {"active": false}
// alone for anything but an active credential in the caller's scope.
type Introspection struct {
	Active bool `json:"active"`
	*Introspected
	outcome string
}

// Introspected is an active credential as RFC 7662 names it, with Tenantry's fields as
// extensions.
type Introspected struct {
	Scope     string `json:"scope"`     // its permissions, space-separated
	ClientID  string `json:"client_id"` // its key's id (a token's: the key that minted it)
	TokenType string `json:"token_type"`
	Exp       *int64 `json:"exp,omitempty"` // absent: it never expires
	Iat       int64  `json:"iat"`           // when the value was issued: a key value's creation or rotation, a token's minting
	Sub       string `json:"sub"`           // its user, else its key
	Aud       string `json:"aud"`
	Iss       string `json:"iss"`
	Jti       string `json:"jti,omitempty"` // a token's id

	Kind           tenants.CredentialKind `json:"kind"`
	OrganizationID string                 `json:"organization_id"`
	UserID         string                 `json:"user_id,omitempty"`
	KeyID          string                 `json:"key_id"`
}

// Outcome is as Verification's: why, for metrics only.
func (i Introspection) Outcome() string { return i.outcome }

// VerifyCredential answers POST /api/keys/verify for p (see the rule above): in.Key must be
// given (400), in.Require must name actions of the catalogue (400). A credential in p's scope
// that lacks one of in.Require is not valid, and missing_permissions lists what it lacks; one
// with no request left of its rate limit (spend) is not valid, and rate_limit says so.
func (s *Service) VerifyCredential(ctx context.Context, p *tenants.Principal, in VerifyInput, spend Spend) (Verification, error) {
	if err := mayVerify(p); err != nil {
		return Verification{}, err
	}
	var errs tenants.FieldErrors
	if blank(in.Key) {
		errs.Add("key", "is required: the key or temporary token to verify")
	}
	required, msg := tenants.CheckActions(in.Require)
	errs.Add("require", msg)
	if err := errs.Err(); err != nil {
		return Verification{}, err
	}
	c, outcome, err := s.askedAbout(ctx, p, in.Key)
	if c == nil || err != nil {
		return Verification{outcome: outcome}, err
	}
	v := Verification{}
	var ok bool
	v.RateLimit, ok = spendOne(spend, c)
	missing := required &^ c.Permissions
	switch {
	case !ok:
		v.outcome = "rate_limited"
	case missing != 0:
		v.outcome, v.MissingPermissions = "missing_permissions", missing.Actions()
	default:
		v.Valid, v.outcome, v.Verified = true, "valid", verifiedOf(c)
	}
	return v, nil
}

// Introspect answers POST /oauth/introspect for p, by the same rule as VerifyCredential: token
// must be given (400); it is active when it is a valid credential in p's scope with a request
// of its rate limit left.
func (s *Service) Introspect(ctx context.Context, p *tenants.Principal, token string, spend Spend) (Introspection, error) {
	if err := mayVerify(p); err != nil {
		return Introspection{}, err
	}
	if blank(token) {
		return Introspection{}, tenants.FieldError("token", "is required: the key or temporary token to introspect")
	}
	c, outcome, err := s.askedAbout(ctx, p, token)
	if c == nil || err != nil {
		return Introspection{outcome: outcome}, err
	}
	if _, ok := spendOne(spend, c); !ok {
		return Introspection{outcome: "rate_limited"}, nil
	}
	return Introspection{Active: true, Introspected: introspectedOf(c), outcome: "active"}, nil
}

// blank reports whether a credential asked about is missing: empty, or spaces, tabs and line
// breaks only (as openapi.yaml's pattern \S says). Anything else is asked about, and what is
// no credential is simply not valid.
func blank(value string) bool { return strings.Trim(value, " \t\n\f\r") == "" }

// mayVerify is who may ask about credentials at all: an unrestricted partner credential, or a
// credential holding keys:read.
func mayVerify(p *tenants.Principal) error {
	if p.IsPartner() {
		return p.RequirePartner()
	}
	return p.Require(tenants.KeysRead)
}

// askedAbout authenticates value as a request with it would be, and returns its principal when
// p may ask about it; otherwise nil, and the outcome saying why (an error only when the
// credential could not be checked, the database being down, say). Only a credential p may ask
// about counts the question in its usage: another tenant's probes never add to what a key is
// billed for.
func (s *Service) askedAbout(ctx context.Context, p *tenants.Principal, value string) (*tenants.Principal, string, error) {
	c, err := s.authenticate(ctx, value)
	switch {
	case errors.Is(err, tenants.ErrUnauthenticated):
		reason := RefusalReason(err)
		if reason == "" {
			reason = "invalid"
		}
		return nil, reason, nil
	case err != nil:
		return nil, "", err
	case !inScope(p, c):
		return nil, "out_of_scope", nil
	}
	s.usage.count(c.KeyID, s.now())
	return c, "", nil
}

// inScope reports whether p may ask about the credential c: a partner about its partner's, an
// organization's credential about its organization's, partner keys aside.
func inScope(p, c *tenants.Principal) bool {
	if p.IsPartner() {
		return c.PartnerID == p.PartnerID
	}
	return c.OrgID == p.OrgID && !c.IsPartner()
}

func spendOne(spend Spend, c *tenants.Principal) (*RateLimit, bool) {
	if spend == nil {
		return nil, true
	}
	state, ok := spend(c.KeyID)
	return &state, ok
}

func verifiedOf(c *tenants.Principal) *Verified {
	v := &Verified{Kind: c.Kind, OrganizationID: c.OrgID, KeyID: c.KeyID, Permissions: c.Permissions.Actions(),
		ExpiresAt: c.ExpiresAt}
	if c.UserID != "" {
		v.UserID = &c.UserID
	}
	if c.Scopes != nil {
		v.Scopes = c.Scopes.Actions()
	}
	return v
}

func introspectedOf(c *tenants.Principal) *Introspected {
	in := &Introspected{Scope: c.Permissions.String(), ClientID: c.KeyID, TokenType: "Bearer", Iat: c.IssuedAt.Unix(),
		Sub: c.Subject(), Aud: TokenAudience, Iss: TokenIssuer, Jti: c.TokenID,
		Kind: c.Kind, OrganizationID: c.OrgID, UserID: c.UserID, KeyID: c.KeyID}
	if c.ExpiresAt != nil {
		exp := c.ExpiresAt.Unix()
		in.Exp = &exp
	}
	return in
}
