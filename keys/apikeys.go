package keys

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/tenantry/tenantry/tenants"
)

// Key is an API key as the API shows it. Value is set only in the response that creates or
// rotates it; nothing else ever carries a key's value.
type Key struct {
	ID             string                 `json:"id"`
	Name           string                 `json:"name"`
	Kind           tenants.CredentialKind `json:"kind"`
	Hint           string                 `json:"hint"`
	OrganizationID string                 `json:"organization_id"`
	UserID         *string                `json:"user_id"`
	Role           *string                `json:"role"`
	Scopes         []tenants.Action       `json:"scopes"`
	CreatedAt      time.Time              `json:"created_at"`
	CreatedBy      *string                `json:"created_by"`
	ExpiresAt      *time.Time             `json:"expires_at"`
	LastUsedAt     *time.Time             `json:"last_used_at"`
	RevokedAt      *time.Time             `json:"revoked_at"`
	AllowedCIDRs   []string               `json:"allowed_cidrs"` // its own networks, within its organization's; []: any
	Value          string                 `json:"value,omitempty"`
}

// keyRecord is a key as stored.
type keyRecord struct {
	ID           string                 `db:"id"`
	Name         string                 `db:"name"`
	Kind         tenants.CredentialKind `db:"kind"`
	Hint         string                 `db:"hint"`
	PartnerID    string                 `db:"partner_id"`
	OrgID        string                 `db:"org_id"`
	UserID       sql.NullString         `db:"user_id"`
	Role         string                 `db:"role"`
	Scopes       sql.NullString         `db:"scopes"`
	CreatedAt    time.Time              `db:"created_at"`
	CreatedBy    sql.NullString         `db:"created_by"`
	ExpiresAt    sql.NullTime           `db:"expires_at"`
	LastUsedAt   sql.NullTime           `db:"last_used_at"`
	RevokedAt    sql.NullTime           `db:"revoked_at"`
	AllowedCIDRs string                 `db:"allowed_cidrs"`
}

const keyColumns = `id, name, kind, hint, partner_id, org_id, user_id, role, scopes, created_at, created_by,
	expires_at, last_used_at, revoked_at, allowed_cidrs`

func (r keyRecord) key() Key {
	k := Key{ID: r.ID, Name: r.Name, Kind: r.Kind, Hint: r.Hint, OrganizationID: r.OrgID, CreatedAt: r.CreatedAt,
		UserID: nullString(r.UserID), CreatedBy: nullString(r.CreatedBy), ExpiresAt: nullTime(r.ExpiresAt),
		LastUsedAt: nullTime(r.LastUsedAt), RevokedAt: nullTime(r.RevokedAt), AllowedCIDRs: strings.Fields(r.AllowedCIDRs)}
	if k.AllowedCIDRs == nil {
		k.AllowedCIDRs = []string{}
	}
	if r.Role != "" {
		k.Role = &r.Role
	}
	if r.Scopes.Valid {
		k.Scopes = tenants.ParsePermissions(r.Scopes.String).Actions()
	}
	return k
}

// active reports whether the key still authenticates (ignoring rotated-out secrets).
func (r keyRecord) active(now time.Time) bool {
	return !r.RevokedAt.Valid && (!r.ExpiresAt.Valid || r.ExpiresAt.Time.After(now))
}

func nullString(s sql.NullString) *string {
	if !s.Valid {
		return nil
	}
	return &s.String
}

func nullTime(t sql.NullTime) *time.Time {
	if !t.Valid {
		return nil
	}
	v := t.Time.UTC()
	return &v
}

func errKeyNotFound(id string) error {
	return tenants.Errorf(tenants.ErrNotFound, "key_not_found", "No key with id %q exists here.", id)
}

func errKeyNameTaken(name string) error {
	return tenants.Errorf(tenants.ErrConflict, "key_name_taken",
		"An active key named %q already exists for this owner; pick another name or revoke that key.", name)
}

// KeyInput is the body of POST /api/keys.
type KeyInput struct {
	Name      string
	Kind      tenants.CredentialKind // KindUser (default) or KindOrganization
	UserID    string                 // user keys: whose key it is; default the caller
	Role      string                 // organization keys: "admin" or "asker"
	Scopes    []string
	ExpiresAt *time.Time
	// AllowedCIDRs narrows the networks the key may be used from, within its organization's
	// key policy (nil: its creator's, if the creator is limited, else any).
	AllowedCIDRs []string
}

// check normalizes in (the name trimmed, the kind user when not given) and returns its scopes
// as permissions (nil: not narrowed) and its networks, or what is wrong with it.
func (in *KeyInput) check() (*tenants.Permissions, []netip.Prefix, error) {
	in.Name = strings.TrimSpace(in.Name)
	if in.Kind == "" {
		in.Kind = tenants.KindUser
	}
	var errs tenants.FieldErrors
	if in.Name == "" {
		errs.Add("name", "is required and must not be blank")
	} else if msg := tenants.CheckText(in.Name, 255); msg != "" {
		errs.Add("name", msg)
	}
	switch in.Kind {
	case tenants.KindUser:
		if in.Role != "" {
			errs.Add("role", "is only for organization keys")
		}
	case tenants.KindOrganization:
		if in.Role != tenants.OrgRoleAdmin && in.Role != tenants.OrgRoleAsker {
			errs.Add("role", `is required for an organization key: "admin" or "asker"`)
		}
		if in.UserID != "" {
			errs.Add("user_id", "is only for user keys")
		}
	default:
		errs.Add("kind", `must be "user" or "organization"`)
	}
	var scopes *tenants.Permissions
	if in.Scopes != nil {
		perms, msg := tenants.CheckActions(in.Scopes)
		if msg != "" {
			errs.Add("scopes", msg)
		}
		scopes = &perms
	}
	if in.ExpiresAt != nil && !in.ExpiresAt.After(time.Now()) {
		errs.Add("expires_at", "must be in the future")
	}
	cidrs := checkNetworks(&errs, in.AllowedCIDRs)
	return scopes, cidrs, errs.Err()
}

// CreateKey issues a user key (a personal access key of the caller, or of UserID when the
// caller holds keys:write) or an organization key (keys:write) in the caller's organization.
// The new key can never do more than the caller: its permissions must be covered by the
// caller's, and a caller that expires cannot create a key that outlives it.
func (s *Service) CreateKey(ctx context.Context, p *tenants.Principal, in KeyInput) (Key, error) {
	scopes, cidrs, err := in.check()
	if err != nil {
		return Key{}, err
	}
	if p.InGrace {
		return Key{}, errInGrace()
	}
	exp, err := boundExpiry(p, in.ExpiresAt)
	if err != nil {
		return Key{}, err
	}
	if cidrs, err = boundCIDRs(p, cidrs); err != nil {
		return Key{}, err
	}
	nk := newKey{Kind: in.Kind, Name: in.Name, PartnerID: p.PartnerID, OrgID: p.OrgID,
		Role: in.Role, Scopes: scopes, CreatedBy: p.KeyID, AllowedCIDRs: cidrs}
	var out Key
	err = s.Write(ctx, func(tx *tenants.Tx) error {
		if nk.ExpiresAt, err = applyKeyPolicy(ctx, tx, p.OrgID, exp, cidrs, s.now()); err != nil {
			return err
		}
		var perms tenants.Permissions
		if nk.Kind == tenants.KindOrganization {
			if !p.Can(tenants.KeysWrite) {
				return errPermission(tenants.KeysWrite, "create an organization key")
			}
			perms = orgRolePermissions(in.Role)
			// An organization key's role never changes: a scope beyond it could never be used.
			if scopes != nil && *scopes&^perms != 0 {
				return tenants.FieldError("scopes", fmt.Sprintf("an organization key of role %s can never use %s: its role does not grant them",
					in.Role, strings.ReplaceAll((*scopes&^perms).String(), " ", ", ")))
			}
		} else {
			nk.UserID = in.UserID
			if nk.UserID == "" {
				if p.UserID == "" {
					return tenants.FieldError("user_id", "is required when the caller is not a user")
				}
				nk.UserID = p.UserID
			}
			if nk.UserID != p.UserID && !p.Can(tenants.KeysWrite) {
				return errPermission(tenants.KeysWrite, "create a key for another user")
			}
			u, err := tenants.FindUser(ctx, tx, p, p.OrgID, nk.UserID)
			if err != nil {
				return err
			}
			if perms, err = tenants.UserPermissions(ctx, tx, u.ID); err != nil {
				return err
			}
		}
		// Scopes the caller lacks are refused, not kept as a key that silently cannot use them.
		if scopes != nil {
			if missing := *scopes &^ p.Permissions; missing != 0 {
				return tenants.Escalation("create a key with these scopes", missing)
			}
			perms &= *scopes
		}
		if missing := perms &^ p.Permissions; missing != 0 {
			return tenants.Escalation("create this key", missing)
		}
		out, err = storeKey(ctx, tx, p, nk, tenants.EventAPIKeyCreated)
		return err
	})
	return out, err
}

// storeKey inserts nk and records event: the key, with its value shown this
// once. A name taken by another active key of the owner is a conflict.
func storeKey(ctx context.Context, tx *tenants.Tx, p *tenants.Principal, nk newKey, event tenants.EventType) (Key, error) {
	rec, value, err := insertKey(ctx, tx, nk)
	if tenants.IsUniqueViolation(err) {
		return Key{}, errKeyNameTaken(nk.Name)
	}
	if err != nil {
		return Key{}, fmt.Errorf("insert key: %w", err)
	}
	out := rec.key()
	out.Value = value
	return out, keyEvent(ctx, tx, p, rec, event)
}

// boundExpiry is the expiry of a key created by p: a key made by an expiring credential
// expires with it (by default) and may not outlive it (403).
func boundExpiry(p *tenants.Principal, requested *time.Time) (*time.Time, error) {
	switch {
	case p.ExpiresAt == nil:
		return requested, nil
	case requested == nil:
		return p.ExpiresAt, nil
	case requested.After(*p.ExpiresAt):
		return nil, tenants.Escalation("create a key that outlives the key creating it", 0)
	}
	return requested, nil
}

func errPermission(a tenants.Action, what string) error {
	return tenants.Errorf(tenants.ErrForbidden, "permission_denied",
		"To %s you need the %s permission, which this credential does not have.", what, a)
}

func findKey(ctx context.Context, q sqlx.ExtContext, where string, args ...any) (keyRecord, error) {
	var r keyRecord
	err := sqlx.GetContext(ctx, q, &r, q.Rebind(`SELECT `+keyColumns+` FROM api_keys WHERE `+where), args...)
	return r, err
}

// visibleKey loads a key of the caller's organization that p may see: any with keys:read,
// otherwise only its own user's keys and itself. Anything else is ErrNotFound.
func visibleKey(ctx context.Context, q sqlx.ExtContext, p *tenants.Principal, id string) (keyRecord, error) {
	r, err := findKey(ctx, q, `id = ? AND org_id = ? AND kind <> 'partner'`, id, p.OrgID)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && !p.Can(tenants.KeysRead) && !ownKey(p, r)) {
		return keyRecord{}, errKeyNotFound(id)
	}
	if err != nil {
		return keyRecord{}, fmt.Errorf("select key: %w", err)
	}
	return r, nil
}

// ownKey reports whether r is p itself or, for a credential not narrowed by scopes or a role,
// another key of p's user: what p may see without keys:read. For a token, "itself" is the key
// that minted it.
func ownKey(p *tenants.Principal, r keyRecord) bool {
	return r.ID == p.KeyID || (!p.Narrowed && p.UserID != "" && r.UserID.String == p.UserID)
}

// errInGrace refuses key management to a rotated-out value: it works, until its grace period
// ends, for everything else, but must not mint, rotate or revoke, or whoever still holds it
// could take the key back.
func errInGrace() error {
	return tenants.Errorf(tenants.ErrForbidden, "rotated_key_value",
		"This key value has been rotated out and works only until its grace period ends; manage keys with the key's new value.")
}

// listKeys pages through keys matching where (without ORDER BY or LIMIT).
func listKeys(ctx context.Context, q sqlx.ExtContext, page tenants.PageQuery, where string, args ...any) (tenants.Page[Key], error) {
	if page.After != "" {
		where += ` AND id > ?`
		args = append(args, page.After)
	}
	var rows []keyRecord
	err := sqlx.SelectContext(ctx, q, &rows, q.Rebind(`SELECT `+keyColumns+` FROM api_keys WHERE `+where+
		` ORDER BY id LIMIT ?`), append(args, page.Limit+1)...)
	if err != nil {
		return tenants.Page[Key]{}, fmt.Errorf("list keys: %w", err)
	}
	rows, next := tenants.TrimPage(rows, page.Limit, func(r keyRecord) string { return r.ID })
	out := make([]Key, len(rows))
	for i, r := range rows {
		out[i] = r.key()
	}
	return tenants.Page[Key]{Items: out, Next: next}, nil
}

// ListKeys pages through the caller's organization's user and organization keys: all of them
// with keys:read, else the caller's own.
func (s *Service) ListKeys(ctx context.Context, p *tenants.Principal, page tenants.PageQuery) (tenants.Page[Key], error) {
	q, err := s.Reader(ctx)
	if err != nil {
		return tenants.Page[Key]{}, err
	}
	if p.Can(tenants.KeysRead) {
		return listKeys(ctx, q, page, `org_id = ? AND kind <> 'partner'`, p.OrgID)
	}
	if p.Narrowed || p.UserID == "" {
		return listKeys(ctx, q, page, `org_id = ? AND kind <> 'partner' AND id = ?`, p.OrgID, p.KeyID)
	}
	return listKeys(ctx, q, page, `org_id = ? AND kind <> 'partner' AND (id = ? OR user_id = ?)`, p.OrgID, p.KeyID, p.UserID)
}

// GetKey returns one key the caller may see.
func (s *Service) GetKey(ctx context.Context, p *tenants.Principal, id string) (Key, error) {
	q, err := s.Reader(ctx)
	if err != nil {
		return Key{}, err
	}
	r, err := visibleKey(ctx, q, p, id)
	return r.key(), err
}

// mayManage is the one rule for who may revoke or rotate the key r, whatever the route
// (/api/keys, the command endpoint, which runs those routes, and the partner routes):
//   - a rotated-out value manages nothing (403 rotated_key_value);
//   - keys:write, held by the caller itself, manages any key it can reach;
//   - without it, a temporary token manages no key, not even the one that minted it (403
//     token_not_allowed): a token is a narrowed, short-lived stand-in for its key, and it is
//     the key that ends the token, by being revoked, never the other way round. (The route
//     table refuses tokens, keys:write or not, on every route that mints a credential, rotation
//     included.)
//   - without it, a key manages itself, and an unscoped user key also its user's other keys
//     (403 permission_denied for anyone else's).
func mayManage(p *tenants.Principal, r keyRecord, what string) error {
	switch {
	case p.InGrace:
		return errInGrace()
	case p.Can(tenants.KeysWrite):
		return nil
	case p.IsToken():
		return tenants.TokenNotAllowed("A temporary token manages no key, not even the one it was minted from: to %s a key "+
			"it needs the keys:write permission, which this token does not have; manage keys with a key.", what)
	case ownKey(p, r):
		return nil
	}
	return errPermission(tenants.KeysWrite, what+" another user's key")
}

// lockManagedKey finds the key id that p may see and may manage (to verb it: "revoke",
// "rotate"), locks it, and reads it again under the lock: revocations and rotations of one key
// take turns (PostgreSQL's read-committed transactions would otherwise interleave them).
func lockManagedKey(ctx context.Context, tx *tenants.Tx, p *tenants.Principal, id, verb string) (keyRecord, error) {
	r, err := visibleKey(ctx, tx, p, id)
	if err != nil {
		return keyRecord{}, err
	}
	if err := mayManage(p, r, verb); err != nil {
		return keyRecord{}, err
	}
	if err := tenants.LockRow(ctx, tx, "api_keys", r.ID); err != nil {
		return keyRecord{}, err
	}
	if r, err = findKey(ctx, tx, `id = ?`, r.ID); err != nil {
		return keyRecord{}, fmt.Errorf("select key: %w", err)
	}
	return r, nil
}

// RevokeKey revokes a key of the caller's organization at once: its next request gets 401.
// Revoking a revoked key changes nothing and answers it as it is.
func (s *Service) RevokeKey(ctx context.Context, p *tenants.Principal, id string) (Key, error) {
	var out Key
	err := s.Write(ctx, func(tx *tenants.Tx) error {
		r, err := lockManagedKey(ctx, tx, p, id, "revoke")
		if err != nil {
			return err
		}
		out, err = revoke(ctx, tx, p, r, "")
		return err
	})
	return out, err
}

// revoke revokes the key r now, for p, recording why when reason is not "" (a reported leak),
// unless it is revoked already. Every revocation of a key comes through here.
func revoke(ctx context.Context, tx *tenants.Tx, p *tenants.Principal, r keyRecord, reason string) (Key, error) {
	if r.RevokedAt.Valid {
		return r.key(), nil
	}
	now := tenants.Now()
	if _, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE api_keys SET revoked_at = ? WHERE id = ?`), now, r.ID); err != nil {
		return Key{}, fmt.Errorf("revoke key: %w", err)
	}
	r.RevokedAt = sql.NullTime{Time: now, Valid: true}
	typ := tenants.EventAPIKeyRevoked
	if r.Kind == tenants.KindPartner {
		typ = tenants.EventPartnerKeyRevoked
	}
	return r.key(), tenants.RecordEvent(ctx, tx, p, r.PartnerID, r.OrgID, typ, revokedKey{Key: r.key(), Reason: reason})
}

// managedKey loads the key id that where (and args) finds, for p to do what to it: a key
// where finds none is ErrNotFound, one p may not manage is refused (mayManage).
func managedKey(ctx context.Context, tx *tenants.Tx, p *tenants.Principal, what, id, where string, args ...any) (keyRecord, error) {
	r, err := findKey(ctx, tx, where, args...)
	if errors.Is(err, sql.ErrNoRows) {
		return keyRecord{}, errKeyNotFound(id)
	}
	if err != nil {
		return keyRecord{}, fmt.Errorf("select key: %w", err)
	}
	return r, mayManage(p, r, what)
}

// keyEvent records an event about the key r as the API shows it (never its value).
func keyEvent(ctx context.Context, tx *tenants.Tx, p *tenants.Principal, r keyRecord, typ tenants.EventType) error {
	return tenants.RecordEvent(ctx, tx, p, r.PartnerID, r.OrgID, typ, r.key())
}

// MaxRotationGrace bounds how long a rotated-out value keeps working: 7 days, in seconds.
const MaxRotationGrace = 7 * 24 * 60 * 60

// RotateKey gives a key a new value, returned once. The old value keeps working for
// graceSeconds (0 to 7 days), then stops. Whoever rotates receives a working credential, so the
// key may not exceed the caller's permissions, expiry or networks. Under a key policy with a
// max_lifetime_seconds, the key's expires_at becomes the earlier of its own and now plus the
// limit, as the answer shows: a rotation never outlives the policy.
func (s *Service) RotateKey(ctx context.Context, p *tenants.Principal, id string, graceSeconds int64) (Key, error) {
	if graceSeconds < 0 || graceSeconds > MaxRotationGrace {
		return Key{}, tenants.FieldError("grace_seconds", "must be from 0 to 604800 (7 days)")
	}
	var out Key
	err := s.Write(ctx, func(tx *tenants.Tx) error {
		r, err := lockManagedKey(ctx, tx, p, id, "rotate")
		if err != nil {
			return err
		}
		now := tenants.Now()
		if !r.active(now) {
			return tenants.Errorf(tenants.ErrConflict, "key_inactive", "Key %q is revoked or expired and cannot be rotated.", r.ID)
		}
		var rows []keyRow
		if err := sqlx.SelectContext(ctx, tx, &rows, tx.Rebind(`SELECT `+authColumns+`, NULL AS secret_expires_at
			FROM api_keys k `+authJoins+` WHERE k.id = ?`), r.ID); err != nil {
			return fmt.Errorf("select key permissions: %w", err)
		}
		holder, err := principalOf(rows, now)
		if err != nil {
			return err
		}
		// Whoever rotates receives a working value: it may not do more, or live longer, than
		// the caller.
		if missing := holder.Permissions &^ p.Permissions; missing != 0 {
			return tenants.Escalation("rotate this key", missing)
		}
		if p.ExpiresAt != nil && (!r.ExpiresAt.Valid || r.ExpiresAt.Time.After(*p.ExpiresAt)) {
			return tenants.Escalation("rotate a key that outlives the key rotating it", 0)
		}
		if _, err := boundCIDRs(p, holder.KeyCIDRs); err != nil || (len(p.KeyCIDRs) > 0 && len(holder.KeyCIDRs) == 0) {
			return tenants.Escalation("rotate a key usable from networks the key rotating it may not be used from", 0)
		}
		// The new value may not outlive the organization's key policy: the key's expiry becomes
		// the earlier of its own and the latest the policy allows now.
		pol, err := tenants.OrganizationKeyPolicy(ctx, tx, r.OrgID)
		if err != nil {
			return err
		}
		if exp, changed := rotationExpiry(pol, nullTime(r.ExpiresAt), s.now()); changed {
			stored := exp.Truncate(time.Microsecond)
			if _, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE api_keys SET expires_at = ? WHERE id = ?`), stored, r.ID); err != nil {
				return fmt.Errorf("bound key expiry: %w", err)
			}
			r.ExpiresAt = sql.NullTime{Time: stored, Valid: true}
		}
		// Secrets already rotated out keep the earlier of their expiry and the new grace end.
		end := now.Add(time.Duration(graceSeconds) * time.Second)
		if _, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE api_key_secrets SET expires_at = ?
			WHERE key_id = ? AND (expires_at IS NULL OR expires_at > ?)`), end, r.ID, end); err != nil {
			return fmt.Errorf("expire old secret: %w", err)
		}
		value := generate(r.Kind)
		if err := insertSecret(ctx, tx, r.ID, value, now); err != nil {
			return err
		}
		r.Hint = hint(value)
		if _, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE api_keys SET hint = ? WHERE id = ?`), r.Hint, r.ID); err != nil {
			return fmt.Errorf("update hint: %w", err)
		}
		out = r.key()
		out.Value = value
		return tenants.RecordEvent(ctx, tx, p, r.PartnerID, r.OrgID, tenants.EventAPIKeyRotated, r.key())
	})
	return out, err
}

// ListOrganizationKeys pages through the user and organization keys of one of the partner's
// organizations.
func (s *Service) ListOrganizationKeys(ctx context.Context, p *tenants.Principal, orgID string, page tenants.PageQuery) (tenants.Page[Key], error) {
	q, err := s.Reader(ctx)
	if err != nil {
		return tenants.Page[Key]{}, err
	}
	if _, err := tenants.PartnerOrganization(ctx, q, p, orgID); err != nil {
		return tenants.Page[Key]{}, err
	}
	return listKeys(ctx, q, page, `org_id = ? AND kind <> 'partner'`, orgID)
}

// RevokeOrganizationKey revokes a key in one of the partner's organizations.
func (s *Service) RevokeOrganizationKey(ctx context.Context, p *tenants.Principal, orgID, id string) (Key, error) {
	var out Key
	err := s.Write(ctx, func(tx *tenants.Tx) error {
		if _, err := tenants.PartnerOrganization(ctx, tx, p, orgID); err != nil {
			return err
		}
		r, err := managedKey(ctx, tx, p, "revoke", id, `id = ? AND org_id = ? AND kind <> 'partner'`, id, orgID)
		if err != nil {
			return err
		}
		out, err = revoke(ctx, tx, p, r, "")
		return err
	})
	return out, err
}

// ListPartnerKeys pages through the partner's own keys, revoked ones included.
func (s *Service) ListPartnerKeys(ctx context.Context, p *tenants.Principal, page tenants.PageQuery) (tenants.Page[Key], error) {
	if err := p.RequirePartner(); err != nil {
		return tenants.Page[Key]{}, err
	}
	q, err := s.Reader(ctx)
	if err != nil {
		return tenants.Page[Key]{}, err
	}
	return listKeys(ctx, q, page, `partner_id = ? AND kind = 'partner'`, p.PartnerID)
}

// CreatePartnerKey issues another partner key, so a partner can rotate: create the new key,
// move to it, revoke the old one.
func (s *Service) CreatePartnerKey(ctx context.Context, p *tenants.Principal, name string, expiresAt *time.Time) (Key, error) {
	if err := p.RequirePartner(); err != nil {
		return Key{}, err
	}
	name = strings.TrimSpace(name)
	var errs tenants.FieldErrors
	if name == "" {
		errs.Add("name", "is required and must not be blank")
	} else if msg := tenants.CheckText(name, 255); msg != "" {
		errs.Add("name", msg)
	}
	if expiresAt != nil && !expiresAt.After(time.Now()) {
		errs.Add("expires_at", "must be in the future")
	}
	if err := errs.Err(); err != nil {
		return Key{}, err
	}
	expiresAt, err := boundExpiry(p, expiresAt)
	if err != nil {
		return Key{}, err
	}
	var out Key
	err = s.Write(ctx, func(tx *tenants.Tx) error {
		var err error
		out, err = storeKey(ctx, tx, p, newKey{Kind: tenants.KindPartner, Name: name, PartnerID: p.PartnerID,
			OrgID: p.OrgID, CreatedBy: p.KeyID, ExpiresAt: expiresAt}, tenants.EventPartnerKeyCreated)
		return err
	})
	return out, err
}

// RevokePartnerKey revokes one of the partner's keys, unless it is the last active one (409):
// a partner must never lock itself out.
func (s *Service) RevokePartnerKey(ctx context.Context, p *tenants.Principal, id string) (Key, error) {
	if err := p.RequirePartner(); err != nil {
		return Key{}, err
	}
	var out Key
	err := s.Write(ctx, func(tx *tenants.Tx) error {
		// Serialise revocations of one partner's keys, so two concurrent ones cannot both pass
		// the last-key check (SQLite's write transactions are serial already; this row lock is
		// what PostgreSQL needs).
		if _, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE partners SET name = name WHERE id = ?`), p.PartnerID); err != nil {
			return fmt.Errorf("lock partner: %w", err)
		}
		r, err := managedKey(ctx, tx, p, "revoke", id, `id = ? AND partner_id = ? AND kind = 'partner'`, id, p.PartnerID)
		if err != nil {
			return err
		}
		now := tenants.Now()
		if r.active(now) {
			// Another active key must live at least as long as this one would have: revoking
			// a permanent key in favour of one that expires would lock the partner out later.
			var others int
			if err := sqlx.GetContext(ctx, tx, &others, tx.Rebind(`SELECT COUNT(*) FROM api_keys
				WHERE partner_id = ? AND kind = 'partner' AND id <> ? AND revoked_at IS NULL
				AND (expires_at IS NULL OR (expires_at > ? AND ? AND expires_at >= ?))`),
				p.PartnerID, r.ID, now, r.ExpiresAt.Valid, r.ExpiresAt.Time); err != nil {
				return fmt.Errorf("count partner keys: %w", err)
			}
			if others == 0 {
				return tenants.Errorf(tenants.ErrConflict, "last_partner_key",
					"Revoking key %q would leave the partner without a key that lasts as long; create one with POST /api/partner/keys first.", r.ID)
			}
		}
		out, err = revoke(ctx, tx, p, r, "")
		return err
	})
	return out, err
}
