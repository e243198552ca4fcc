package tenants

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
)

// KeyPolicy is what an organization demands of its keys (GET/PUT .../key_policy): the longest
// a key may live and whether it must expire, checked when a key is created or rotated (package
// keys), and the networks requests with any of its keys or their tokens may come from, checked
// on every request (Principal.AllowsAddress). Keys that exist when a policy changes keep their
// expiry; the networks apply to them at once. Partner keys are the partner's, not the
// organization's: no organization's policy governs them.
type KeyPolicy struct {
	MaxLifetimeSeconds int64    `json:"max_lifetime_seconds" db:"key_max_lifetime_seconds"` // 0: no limit
	RequireExpiry      bool     `json:"require_expiry" db:"key_require_expiry"`
	AllowedCIDRs       []string `json:"allowed_cidrs" db:"-"` // normalised; empty: any address
}

// Bounds of a key policy.
const (
	MaxAllowedCIDRs       = 50
	MinKeyLifetimeSeconds = 60
	MaxKeyLifetimeSeconds = 10 * 365 * 24 * 60 * 60 // ten years
)

// KeyPolicyInput is the body of PUT .../key_policy: a full replacement, a field left out is
// stored as its default (no limit, no requirement, any address). CallerAddress is the client
// address of the request, to refuse an organization credential a list that would lock it out.
type KeyPolicyInput struct {
	MaxLifetimeSeconds int64
	RequireExpiry      bool
	AllowedCIDRs       []string
	CallerAddress      string
}

// LatestExpiry is the latest expiry the policy lets a key created (or rotated) at now have;
// nil when it sets no limit.
func (k KeyPolicy) LatestExpiry(now time.Time) *time.Time {
	if k.MaxLifetimeSeconds <= 0 {
		return nil
	}
	t := now.Add(time.Duration(k.MaxLifetimeSeconds) * time.Second).UTC()
	return &t
}

// ParseCIDRs validates a list of networks from a request (field names it in refusals): CIDR
// prefixes such as 10.0.0.0/8 or 2001:db8::/32, or single addresses (a /32 or /128), at most
// MaxAllowedCIDRs. It returns them normalised (host bits cleared, duplicates dropped) or a 400
// naming the first bad entry.
func ParseCIDRs(field string, list []string) ([]netip.Prefix, error) {
	if len(list) > MaxAllowedCIDRs {
		return nil, FieldError(field, fmt.Sprintf("must hold at most %d networks; it holds %d", MaxAllowedCIDRs, len(list)))
	}
	out := make([]netip.Prefix, 0, len(list))
	seen := make(map[netip.Prefix]bool, len(list))
	for i, s := range list {
		pfx, err := parsePrefix(strings.TrimSpace(s))
		if err != nil {
			return nil, FieldError(field, fmt.Sprintf("entry %d (%q) %s", i, s, err.Error()))
		}
		if !seen[pfx] {
			seen[pfx] = true
			out = append(out, pfx)
		}
	}
	return out, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	var pfx netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		if pfx, err = netip.ParsePrefix(s); err != nil {
			return pfx, errors.New("is not a CIDR prefix such as 10.0.0.0/8 or 2001:db8::/32")
		}
	} else {
		addr, err := netip.ParseAddr(s)
		if err != nil || addr.Zone() != "" {
			return pfx, errors.New("is not a CIDR prefix such as 10.0.0.0/8 or 2001:db8::/32, nor an address")
		}
		pfx = netip.PrefixFrom(addr, addr.BitLen())
	}
	if pfx.Addr().Is4In6() {
		// Requests from IPv4 clients are compared as IPv4: a mapped prefix would match none.
		return pfx, errors.New("is an IPv4-mapped IPv6 prefix; write the IPv4 network itself (10.0.0.0/8)")
	}
	return pfx.Masked(), nil
}

// FormatCIDRs is the stored form of a list of networks: separated by spaces.
func FormatCIDRs(list []netip.Prefix) string {
	parts := make([]string, len(list))
	for i, p := range list {
		parts[i] = p.String()
	}
	return strings.Join(parts, " ")
}

// ParseStoredCIDRs reads the stored form. It fails rather than drop an entry it cannot read: a
// list that lost its entries would let every address in.
func ParseStoredCIDRs(s string) ([]netip.Prefix, error) {
	if s == "" {
		return nil, nil
	}
	fields := strings.Fields(s)
	out := make([]netip.Prefix, len(fields))
	for i, f := range fields {
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("stored network %q: %w", f, err)
		}
		out[i] = p
	}
	return out, nil
}

// CIDRStrings lists networks as the API shows them (never nil, so it encodes as []).
func CIDRStrings(list []netip.Prefix) []string {
	out := make([]string, len(list))
	for i, p := range list {
		out[i] = p.String()
	}
	return out
}

// OutsidePrefixes returns the first network of inner that no network of outer contains, and
// whether there is one: a list is narrower than another when there is none.
func OutsidePrefixes(inner, outer []netip.Prefix) (netip.Prefix, bool) {
	for _, in := range inner {
		if !coveredBy(in, outer) {
			return in, true
		}
	}
	return netip.Prefix{}, false
}

func coveredBy(p netip.Prefix, outer []netip.Prefix) bool {
	for _, o := range outer {
		if o.Bits() <= p.Bits() && o.Contains(p.Addr()) {
			return true
		}
	}
	return false
}

func containsAddr(list []netip.Prefix, addr netip.Addr) bool {
	for _, p := range list {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// AllowsAddress refuses (403 address_not_allowed) a request with p from a client address outside
// its organization's allowed networks or its key's own, naming which policy refused it (in
// metadata.policy: "organization" or "key"). An address that does not parse is outside every
// network. The cost is a few prefix comparisons, on the principal the cache holds.
func (p *Principal) AllowsAddress(client string) error {
	if len(p.OrgCIDRs) == 0 && len(p.KeyCIDRs) == 0 {
		return nil // the common case: one test, nothing parsed
	}
	addr, err := netip.ParseAddr(client)
	addr = addr.Unmap()
	policy, field := "", ""
	switch {
	case len(p.OrgCIDRs) > 0 && (err != nil || !containsAddr(p.OrgCIDRs, addr)):
		policy, field = "organization", "the key_policy of its organization"
	case len(p.KeyCIDRs) > 0 && (err != nil || !containsAddr(p.KeyCIDRs, addr)):
		policy, field = "key", "the allowed_cidrs of its key"
	default:
		return nil
	}
	return &Error{Kind: ErrForbidden, Key: "address_not_allowed",
		Message: fmt.Sprintf("This credential may not be used from %s: %s allows requests from other networks only. "+
			"Call from an allowed network, or ask an administrator to change allowed_cidrs.", client, field),
		Metadata: map[string]any{"policy": policy, "client_address": client}}
}

// RequireOrganizationAdmin refuses p (403 permission_denied) unless it administers its
// organization unrestricted: a key of a user holding the built-in Admin role, or an admin
// organization key, neither narrowed by scopes. A temporary token does not, whatever its key:
// a policy over every key is no task for a short-lived stand-in. It is the one rule for who
// may set the organization's key policy itself (its partner may too, with RequirePartner).
func (p *Principal) RequireOrganizationAdmin() error {
	switch {
	case p == nil || p.Narrowed || p.Permissions != AllPermissions:
	case p.Kind == KindUser && p.LegacyRole == LegacyAdmin, p.Kind == KindOrganization && p.OrgRole == OrgRoleAdmin:
		return nil
	}
	return Errorf(ErrForbidden, "permission_denied",
		"Only an organization's admins (a key, not narrowed by scopes, of a user with the Admin role, or an admin organization key) "+
			"and its partner may read or set its key policy; this credential may not.")
}

// requireKeyPolicyCaller refuses, before the database is touched, any credential that may
// set no organization's key policy: the partner may (RequirePartner), and the organization's own
// admins (RequireOrganizationAdmin).
func requireKeyPolicyCaller(p *Principal) error {
	if p.IsPartner() {
		return p.RequirePartner()
	}
	return p.RequireOrganizationAdmin()
}

// keyPolicyOrganization checks that orgID is an organization p reaches: one of the partner's
// (another's is 404), or the admin's own.
func keyPolicyOrganization(ctx context.Context, q sqlx.ExtContext, p *Principal, orgID string) error {
	if p.IsPartner() {
		_, err := partnerOrganization(ctx, q, p.PartnerID, orgID)
		return err
	}
	if orgID != p.OrgID {
		return errOrganizationNotFound(orgID)
	}
	return nil
}

// OrganizationKeyPolicy reads orgID's key policy, for the code that applies it (no caller to
// authorize: the caller's rights were decided by the operation it is part of).
func OrganizationKeyPolicy(ctx context.Context, q sqlx.ExtContext, orgID string) (KeyPolicy, error) {
	if tx, ok := q.(*Tx); ok && tx.known.noPolicy[orgID] {
		return KeyPolicy{}, nil // created by tx, and no policy set since (provisioning's key)
	}
	var row struct {
		KeyPolicy
		CIDRs string `db:"key_allowed_cidrs"`
	}
	err := sqlx.GetContext(ctx, q, &row, q.Rebind(`SELECT key_max_lifetime_seconds, key_require_expiry, key_allowed_cidrs
		FROM organizations WHERE id = ?`), orgID)
	if errors.Is(err, sql.ErrNoRows) {
		return KeyPolicy{}, errOrganizationNotFound(orgID)
	}
	if err != nil {
		return KeyPolicy{}, fmt.Errorf("select key policy: %w", err)
	}
	cidrs, err := ParseStoredCIDRs(row.CIDRs)
	if err != nil {
		return KeyPolicy{}, err
	}
	pol := row.KeyPolicy
	pol.AllowedCIDRs = CIDRStrings(cidrs)
	return pol, nil
}

// KeyPolicy returns orgID's key policy, to its partner or its admins.
func (s *Store) KeyPolicy(ctx context.Context, p *Principal, orgID string) (KeyPolicy, error) {
	if err := requireKeyPolicyCaller(p); err != nil {
		return KeyPolicy{}, err
	}
	q, err := s.Reader(ctx)
	if err != nil {
		return KeyPolicy{}, err
	}
	if err := keyPolicyOrganization(ctx, q, p, orgID); err != nil {
		return KeyPolicy{}, err
	}
	return OrganizationKeyPolicy(ctx, q, orgID)
}

// SetKeyPolicy replaces orgID's key policy, for its partner or its admins, and records
// key_policy.updated: committed, it drops the organization's cached principals (here, and on the
// other replicas by the credential epoch), so its next request is checked against the new networks.
// An organization credential may not set networks that leave out the address it calls from
// (409 key_policy_lockout): it would lock itself and every key out, with only the partner able to
// let them in again.
func (s *Store) SetKeyPolicy(ctx context.Context, p *Principal, orgID string, in KeyPolicyInput) (KeyPolicy, error) {
	if err := requireKeyPolicyCaller(p); err != nil {
		return KeyPolicy{}, err
	}
	var errs FieldErrors
	if in.MaxLifetimeSeconds != 0 && (in.MaxLifetimeSeconds < MinKeyLifetimeSeconds || in.MaxLifetimeSeconds > MaxKeyLifetimeSeconds) {
		errs.Add("max_lifetime_seconds", fmt.Sprintf("must be 0 (no limit) or from %d to %d seconds (ten years)",
			MinKeyLifetimeSeconds, MaxKeyLifetimeSeconds))
	}
	cidrs, err := ParseCIDRs("allowed_cidrs", in.AllowedCIDRs)
	if err != nil {
		return KeyPolicy{}, err
	}
	if err := errs.Err(); err != nil {
		return KeyPolicy{}, err
	}
	if !p.IsPartner() && len(cidrs) > 0 {
		if addr, err := netip.ParseAddr(in.CallerAddress); err != nil || !containsAddr(cidrs, addr.Unmap()) {
			return KeyPolicy{}, &Error{Kind: ErrConflict, Key: "key_policy_lockout",
				Message: fmt.Sprintf("allowed_cidrs leaves out %s, the address this request comes from: it would lock this credential "+
					"and the organization's other keys out. Include that address, or have the partner set the policy.", in.CallerAddress),
				Metadata: map[string]any{"client_address": in.CallerAddress}}
		}
	}
	pol := KeyPolicy{MaxLifetimeSeconds: in.MaxLifetimeSeconds, RequireExpiry: in.RequireExpiry, AllowedCIDRs: CIDRStrings(cidrs)}
	err = s.Write(ctx, func(tx *Tx) error {
		if err := keyPolicyOrganization(ctx, tx, p, orgID); err != nil {
			return err
		}
		tx.known.forgetKeyPolicy(orgID)
		res, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE organizations SET key_max_lifetime_seconds = ?, key_require_expiry = ?,
			key_allowed_cidrs = ? WHERE id = ?`), pol.MaxLifetimeSeconds, pol.RequireExpiry, FormatCIDRs(cidrs), orgID)
		if err != nil {
			return fmt.Errorf("update key policy: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return errOrganizationNotFound(orgID) // deleted meanwhile
		}
		return recordEvent(ctx, tx, p, orgID, EventKeyPolicyUpdated, pol)
	})
	return pol, err
}
