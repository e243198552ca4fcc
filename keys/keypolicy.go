package keys

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/tenantry/tenantry/tenants"
)

// applyKeyPolicy is the one place an organization's key policy governs a key about to be
// created in orgID, by any route (POST /api/keys, a partner's mint): it returns the key's
// expiry, or a refusal (400 key_policy_violation) naming the policy field and its limit in
// metadata.policy_field and metadata.limit.
//   - require_expiry: a key without expires_at is refused (an expiry inherited from the
//     creating credential counts: the key does expire);
//   - max_lifetime_seconds: a key without expires_at gets the latest the policy allows, as a
//     key made by an expiring credential expires with it; a later one is refused;
//   - allowed_cidrs: a key's own networks must lie within the organization's (a key narrower
//     than its organization, never wider: a request must pass both lists anyway).
//
// A new organization (POST /api/provision) has no policy yet, so its first key is never refused.
func applyKeyPolicy(ctx context.Context, tx *tenants.Tx, orgID string, expires *time.Time, cidrs []netip.Prefix, now time.Time) (*time.Time, error) {
	pol, err := tenants.OrganizationKeyPolicy(ctx, tx, orgID)
	if err != nil {
		return nil, err
	}
	if pol.RequireExpiry && expires == nil {
		return nil, errPolicy("require_expiry", true, nil,
			"The organization's key policy requires every key to expire: give expires_at.")
	}
	if latest := pol.LatestExpiry(now); latest != nil {
		switch {
		case expires == nil:
			expires = latest
		case expires.After(*latest):
			return nil, errPolicy("max_lifetime_seconds", pol.MaxLifetimeSeconds, latest,
				"The organization's key policy lets a key live at most %d seconds: give an expires_at no later than %s.",
				pol.MaxLifetimeSeconds, latest.Format(time.RFC3339))
		}
	}
	if len(pol.AllowedCIDRs) > 0 && len(cidrs) > 0 {
		org, err := tenants.ParseCIDRs("allowed_cidrs", pol.AllowedCIDRs)
		if err != nil {
			return nil, err
		}
		if outside, ok := tenants.OutsidePrefixes(cidrs, org); ok {
			return nil, errPolicy("allowed_cidrs", pol.AllowedCIDRs, nil,
				"The organization's key policy allows requests from %v only; the key's network %s lies outside it, so the key could never be used from there.",
				pol.AllowedCIDRs, outside)
		}
	}
	return expires, nil
}

func errPolicy(field string, limit any, latest *time.Time, format string, args ...any) error {
	e := tenants.Errorf(tenants.ErrInvalid, "key_policy_violation", format, args...)
	e.Metadata = map[string]any{"policy_field": field, "limit": limit}
	if latest != nil {
		e.Metadata["latest_expires_at"] = latest.Format(time.RFC3339)
	}
	return e
}

// boundCIDRs is the networks of a key created by p, as boundExpiry is its expiry: a key made
// by a credential limited to some networks is limited to them by default, and may not reach
// beyond them (403), or it would carry its creator's reach elsewhere.
func boundCIDRs(p *tenants.Principal, requested []netip.Prefix) ([]netip.Prefix, error) {
	switch {
	case len(p.KeyCIDRs) == 0:
		return requested, nil
	case len(requested) == 0:
		return p.KeyCIDRs, nil
	}
	if _, outside := tenants.OutsidePrefixes(requested, p.KeyCIDRs); outside {
		return nil, tenants.Escalation("create a key usable from networks the key creating it may not be used from", 0)
	}
	return requested, nil
}

// rotationExpiry is the expiry a key rotated at now keeps under its organization's policy: the
// earlier of its own and the latest the policy allows (a rotation hands over a new value, which
// may not outlive the policy either); changed reports whether it moved.
func rotationExpiry(pol tenants.KeyPolicy, current *time.Time, now time.Time) (exp *time.Time, changed bool) {
	latest := pol.LatestExpiry(now)
	if latest == nil || (current != nil && !current.After(*latest)) {
		return current, false
	}
	return latest, true
}

// checkNetworks parses a request's allowed_cidrs for a key (nil: none given).
func checkNetworks(errs *tenants.FieldErrors, list []string) []netip.Prefix {
	if list == nil {
		return nil
	}
	cidrs, err := tenants.ParseCIDRs("allowed_cidrs", list)
	if err != nil {
		errs.Add("allowed_cidrs", fmt.Sprint(err.(*tenants.Error).Metadata["allowed_cidrs"]))
	}
	return cidrs
}
