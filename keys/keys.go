package keys

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/tenantry/tenantry/tenants"
)

// Service mints and verifies credentials on one database, or inside one unit of work (In).
type Service struct {
	tenants.Conn
	*shared // what every binding of the service shares: caches, clock, prepared statements
}

type shared struct {
	// Sealer seals token signing private keys at rest (nil: stored as they are).
	Sealer    *tenants.Sealer
	signers   *signerCache
	usage     *usageRecorder
	cache     *principalCache // nil: every request is looked up (CachePrincipals)
	epochs    *epochs         // the increments of the credential epoch the cache accounts for
	stopCache func()
	// Clock is the time credentials are checked against (nil: time.Now); tests move it on
	// to see keys, grace periods and tokens expire.
	Clock func() time.Time

	// The authentication queries, prepared once: every request runs one, and compiling it
	// afresh each time was a fifth of its cost.
	prepareOnce          sync.Once
	byHash, byIDAndValue *sqlx.Stmt
	prepareErr           error
}

// prepared returns the authentication statements, preparing them on first use.
//
// Each binds its values inside a one-table subquery that LIMIT keeps apart from the join.
// In a join, SQLite 3.54 marks a parameter compared with '=' as one whose value may change
// the plan, and the driver clears the bindings before every execution, which then makes
// SQLite compile the whole statement again: on a cache miss, every lookup was parsed and
// planned anew (measured with perf on 1M keys: a quarter of the lookup's CPU).
func (s *Service) prepared() (byHash, byIDAndValue *sqlx.Stmt, err error) {
	s.prepareOnce.Do(func() {
		if s.byHash, s.prepareErr = s.DB.Preparex(s.DB.Rebind(`
			SELECT ` + authColumns + `, sec.expires_at AS secret_expires_at, sec.created_at AS secret_created_at
			FROM (SELECT key_id, expires_at, created_at FROM api_key_secrets WHERE hash = ? LIMIT 1) sec
			JOIN api_keys k ON k.id = sec.key_id ` + authJoins)); s.prepareErr != nil {
			return
		}
		s.byIDAndValue, s.prepareErr = s.DB.Preparex(s.DB.Rebind(`
			SELECT ` + authColumns + `, sec.expires_at AS secret_expires_at, sec.created_at AS secret_created_at
			FROM (SELECT key_id, expires_at, created_at FROM api_key_secrets WHERE hash = ? AND key_id = ? LIMIT 1) sec
			JOIN api_keys k ON k.id = sec.key_id ` + authJoins))
	})
	return s.byHash, s.byIDAndValue, s.prepareErr
}

// NewService returns a Service on db. Call Close when done if StartUsageRecorder was called.
func NewService(db *sqlx.DB) *Service {
	return &Service{Conn: tenants.Conn{DB: db}, shared: &shared{signers: newSignerCache()}}
}

// In returns s bound to u: every statement of its methods runs in u's transaction, which u's
// owner commits or rolls back.
func (s *Service) In(u *tenants.Unit) *Service {
	return &Service{Conn: s.Conn.In(u), shared: s.shared}
}

func (s *Service) now() time.Time {
	if s.Clock != nil {
		return s.Clock()
	}
	return time.Now()
}

// CachePrincipals remembers what credentials authenticate as, up to keys keys and tokens
// tokens (see cache.go), invalidated by every change committed through this process. Without
// it (the CLI), every credential is looked up.
func (s *Service) CachePrincipals(keys, tokens int) {
	s.cache = newPrincipalCache(keys, tokens)
	s.epochs = &epochs{ahead: map[uint64]bool{}}
	s.stopCache = tenants.OnCommit(s.DB, func(changes []tenants.Change) {
		s.cache.onCommit(changes)
		for _, ch := range changes {
			if ch.Epoch != 0 {
				s.epochs.account(ch.Epoch)
			}
		}
	})
}

// ErrInvalidToken is the one answer for a malformed, unknown, expired or revoked credential:
// the caller is not told which check failed.
var ErrInvalidToken = tenants.Errorf(tenants.ErrUnauthenticated, "invalid_token",
	"The credential is invalid, expired or revoked. Send a valid key as 'Authorization: Bearer <key>'.")

// refusal is ErrInvalidToken with the reason, for metrics and logs only: callers of the API
// see ErrInvalidToken alone, whatever the reason.
type refusal struct{ reason string }

func (r *refusal) Error() string { return "credential refused: " + r.reason }
func (r *refusal) Unwrap() error { return ErrInvalidToken }

func refused(reason string) error { return &refusal{reason} }

// RefusalReason says why Authenticate refused a credential: malformed, unknown, revoked,
// expired, rotated_out or bad_signature; "" for another error.
func RefusalReason(err error) string {
	var r *refusal
	if errors.As(err, &r) {
		return r.reason
	}
	return ""
}

// ErrMissingToken is the answer for a request that sent no credential.
var ErrMissingToken = tenants.Errorf(tenants.ErrUnauthenticated, "missing_token",
	"This request needs a credential. Send a key as 'Authorization: Bearer <key>'.")

// keyRow is a key as authentication reads it, joined with one of its user's roles: a user
// with several roles yields several rows of one query.
type keyRow struct {
	ID            string                 `db:"id"`
	Kind          tenants.CredentialKind `db:"kind"`
	PartnerID     string                 `db:"partner_id"`
	OrgID         string                 `db:"org_id"`
	UserID        string                 `db:"user_id"`
	OrgRole       string                 `db:"role"`
	Scopes        sql.NullString         `db:"scopes"`
	ExpiresAt     sql.NullTime           `db:"expires_at"`
	RevokedAt     sql.NullTime           `db:"revoked_at"`
	SecretExpires sql.NullTime           `db:"secret_expires_at"`
	// Tokens of the key issued (iat) at or before it are revoked: one was reported leaked.
	TokensRevokedUntil sql.NullTime   `db:"tokens_revoked_until"`
	SecretCreated      sql.NullTime   `db:"secret_created_at"` // the value's issue time (authentication only)
	RoleSystem         sql.NullBool   `db:"role_system"`
	RoleName           sql.NullString `db:"role_name"`
	RoleActions        sql.NullString `db:"role_actions"`
	APIVersion         string         `db:"api_version"`
	OrgName            string         `db:"org_name"`
	UserEmail          string         `db:"user_email"`
	OrgCIDRs           string         `db:"org_allowed_cidrs"`
	KeyCIDRs           string         `db:"key_allowed_cidrs"`
}

const authColumns = `k.id, k.kind, k.partner_id, k.org_id, COALESCE(k.user_id, '') AS user_id, k.role, k.scopes,
	k.expires_at, k.revoked_at, k.tokens_revoked_until, r.system AS role_system, r.name AS role_name, r.actions AS role_actions,
	o.api_version, o.name AS org_name, COALESCE(u.email, '') AS user_email,
	o.key_allowed_cidrs AS org_allowed_cidrs, k.allowed_cidrs AS key_allowed_cidrs`

const authJoins = `JOIN organizations o ON o.id = k.org_id LEFT JOIN users u ON u.id = k.user_id
	LEFT JOIN user_roles ur ON ur.user_id = k.user_id LEFT JOIN roles r ON r.id = ur.role_id`

// Authenticate turns a bearer value into the Principal it stands for. A key costs one indexed
// lookup by its hash; a token costs a signature check and one lookup of its parent key by id.
// A malformed value is refused before the database is touched. It never writes: last_used_at
// is recorded asynchronously, at most once a minute per key.
//
// Each success counts as one request of its key (a token's: of the key that minted it) in the
// key's usage (usage.go), in memory. The principal is read-only: a key's is shared with the
// other requests made with it (the principal cache), so that a request copies nothing.
func (s *Service) Authenticate(ctx context.Context, value string) (*tenants.Principal, error) {
	p, err := s.authenticate(ctx, value)
	if err == nil {
		s.usage.count(p.KeyID, s.now())
	}
	return p, err
}

func (s *Service) authenticate(ctx context.Context, value string) (*tenants.Principal, error) {
	if value == "" {
		return nil, ErrMissingToken
	}
	if strings.Count(value, ".") == 2 {
		return s.authenticateToken(ctx, value)
	}
	if _, ok := parse(value); !ok {
		return nil, refused("malformed")
	}
	h := hash(value)
	p, _, err := s.lookUp(ctx, "h"+string(h), func(byHash, _ *sqlx.Stmt, rows *[]keyRow) (string, error) {
		return base64.RawURLEncoding.EncodeToString(h), byHash.SelectContext(ctx, rows, h)
	})
	return p, err
}

// lookUp returns the principal of a key value, and until when the key's tokens are revoked
// (zero: none are): from the cache when it is there and fresh, else by query (and then
// cached). query also names the value (the base64 of its hash): only a miss needs it, a cached
// principal has it. A cached principal is shared by every request with its value: read-only,
// as every principal Authenticate returns is.
func (s *Service) lookUp(ctx context.Context, cacheKey string, query func(byHash, byIDAndValue *sqlx.Stmt, rows *[]keyRow) (secretID string, err error)) (*tenants.Principal, time.Time, error) {
	now := s.now()
	if s.cache != nil {
		if e, ok := s.cache.key(cacheKey); ok {
			if err := e.expiry(now); err != nil {
				return nil, time.Time{}, err
			}
			return &e.p, e.tokensRevokedUntil, nil
		}
	}
	var seq uint64
	if s.cache != nil {
		seq = s.cache.begin() // before the query: a change committed meanwhile makes the entry stale
	}
	byHash, byIDAndValue, err := s.prepared()
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("prepare authentication: %w", err)
	}
	var rows []keyRow
	secretID, err := query(byHash, byIDAndValue, &rows)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("look up key: %w", err)
	}
	p, err := principalOf(rows, now)
	if err != nil {
		return nil, time.Time{}, err
	}
	p.SecretID = secretID
	tokensUntil := rows[0].TokensRevokedUntil.Time
	if s.cache != nil {
		e := &cachedKey{p: *p, seq: seq, tokensRevokedUntil: tokensUntil} // a copy: p is the caller's
		e.keyExpires, e.secretExpires = rows[0].ExpiresAt.Time, rows[0].SecretExpires.Time
		s.cache.putKey(cacheKey, e)
	}
	return p, tokensUntil, nil
}

// principalOf checks that the key in rows is usable at now and computes its permissions.
func principalOf(rows []keyRow, now time.Time) (*tenants.Principal, error) {
	if len(rows) == 0 {
		return nil, refused("unknown")
	}
	k := rows[0]
	expired := func(t sql.NullTime) bool { return t.Valid && !t.Time.After(now) }
	switch {
	case k.RevokedAt.Valid:
		return nil, refused("revoked")
	case expired(k.ExpiresAt):
		return nil, refused("expired")
	case expired(k.SecretExpires):
		return nil, refused("rotated_out")
	}
	p := &tenants.Principal{Kind: k.Kind, ParentKind: k.Kind,
		KeyID: k.ID, PartnerID: k.PartnerID, OrgID: k.OrgID, UserID: k.UserID, OrgRole: k.OrgRole, APIVersion: k.APIVersion,
		OrgName: k.OrgName, Email: k.UserEmail}
	switch p.Kind {
	case tenants.KindPartner:
		p.Permissions = tenants.AllPermissions
	case tenants.KindOrganization:
		p.Permissions = orgRolePermissions(k.OrgRole)
	case tenants.KindUser:
		p.LegacyRole = tenants.LegacyUser
		for _, r := range rows {
			if r.RoleName.Valid {
				p.Permissions |= tenants.RolePermissions(r.RoleSystem.Bool, r.RoleName.String, r.RoleActions.String)
				if r.RoleSystem.Bool && r.RoleName.String == tenants.RoleAdmin {
					p.LegacyRole = tenants.LegacyAdmin
				}
			}
		}
	}
	if k.Scopes.Valid {
		scopes := tenants.ParsePermissions(k.Scopes.String)
		p.Permissions &= scopes
		p.Scopes, p.Narrowed = &scopes, true
	}
	p.IssuedAt = k.SecretCreated.Time.UTC()
	p.ExpiresAt = earliest(k.ExpiresAt, k.SecretExpires)
	p.InGrace = k.SecretExpires.Valid
	// The networks it may be used from, parsed once, here, and cached with the principal: a
	// partner key is the partner's, outside its owner organization's key policy.
	var err error
	if p.Kind != tenants.KindPartner {
		if p.OrgCIDRs, err = tenants.ParseStoredCIDRs(k.OrgCIDRs); err != nil {
			return nil, err
		}
	}
	if p.KeyCIDRs, err = tenants.ParseStoredCIDRs(k.KeyCIDRs); err != nil {
		return nil, err
	}
	return p, nil
}

// orgRolePermissions is what an organization key of role may do.
func orgRolePermissions(role string) tenants.Permissions {
	if role == tenants.OrgRoleAsker {
		return tenants.AskerPermissions
	}
	return tenants.AllPermissions
}

func earliest(times ...sql.NullTime) *time.Time {
	var out *time.Time
	for _, t := range times {
		if t.Valid && (out == nil || t.Time.Before(*out)) {
			v := t.Time.UTC()
			out = &v
		}
	}
	return out
}

// newKey is what insertKey stores.
type newKey struct {
	Kind          tenants.CredentialKind
	Name          string
	PartnerID     string
	OrgID         string
	UserID        string // user keys
	Role          string // organization keys
	Scopes        *tenants.Permissions
	PartnerIssued bool
	CreatedBy     string // the creating key's id; "" for the operator
	ExpiresAt     *time.Time
	AllowedCIDRs  []netip.Prefix // its own networks; none: any its organization allows
}

// insertKey stores a new key with one secret and returns the key's id and value: the only
// time the value exists.
func insertKey(ctx context.Context, tx *tenants.Tx, k newKey) (rec keyRecord, value string, err error) {
	value = generate(k.Kind)
	id := tenants.NewID()
	now := tenants.Now()
	owner := map[tenants.CredentialKind]string{tenants.KindPartner: k.PartnerID, tenants.KindUser: k.UserID,
		tenants.KindOrganization: k.OrgID}[k.Kind]
	var scopes, user, createdBy, expires any
	if k.ExpiresAt != nil {
		// Stored as all times are (UTC, microseconds), so SQL comparisons of them hold.
		expires = k.ExpiresAt.UTC().Truncate(time.Microsecond)
	}
	if k.Scopes != nil {
		scopes = k.Scopes.String()
	}
	if k.UserID != "" {
		user = k.UserID
	}
	if k.CreatedBy != "" {
		createdBy = k.CreatedBy
	}
	_, err = tx.ExecContext(ctx, tx.Rebind(`
		INSERT INTO api_keys (id, kind, name, hint, partner_id, org_id, user_id, owner_id, role, scopes,
			partner_issued, created_at, created_by, expires_at, allowed_cidrs)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		id, string(k.Kind), k.Name, hint(value), k.PartnerID, k.OrgID, user, owner, k.Role, scopes,
		k.PartnerIssued, now, createdBy, expires, tenants.FormatCIDRs(k.AllowedCIDRs))
	if err != nil {
		return keyRecord{}, "", err
	}
	if err := insertSecret(ctx, tx, id, value, now); err != nil {
		return keyRecord{}, "", err
	}
	// The row as stored, without reading it back.
	rec = keyRecord{ID: id, Name: k.Name, Kind: k.Kind, Hint: hint(value), PartnerID: k.PartnerID, OrgID: k.OrgID,
		UserID: sql.NullString{String: k.UserID, Valid: k.UserID != ""}, Role: k.Role, CreatedAt: now,
		CreatedBy: sql.NullString{String: k.CreatedBy, Valid: k.CreatedBy != ""}, AllowedCIDRs: tenants.FormatCIDRs(k.AllowedCIDRs)}
	if k.Scopes != nil {
		rec.Scopes = sql.NullString{String: k.Scopes.String(), Valid: true}
	}
	if k.ExpiresAt != nil {
		rec.ExpiresAt = sql.NullTime{Time: expires.(time.Time), Valid: true}
	}
	return rec, value, nil
}

func insertSecret(ctx context.Context, tx *tenants.Tx, keyID, value string, now time.Time) error {
	_, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO api_key_secrets (hash, key_id, created_at) VALUES (?, ?, ?)`),
		hash(value), keyID, now)
	if err != nil {
		return fmt.Errorf("insert key secret: %w", err)
	}
	return nil
}

// CreatePartner creates a partner, its owner organization and its first partner key in one
// transaction, and hands the key's value to deliver before committing: if deliver fails (a
// closed pipe, a full disk), nothing is created, so no partner exists whose key nobody holds.
func (s *Service) CreatePartner(ctx context.Context, name string, deliver func(value string) error) (tenants.Partner, error) {
	var p tenants.Partner
	err := s.Write(ctx, func(tx *tenants.Tx) (err error) {
		p, err = createPartner(ctx, tx, name, deliver)
		return err
	})
	return p, err
}

func createPartner(ctx context.Context, tx *tenants.Tx, name string, deliver func(value string) error) (tenants.Partner, error) {
	p, err := tenants.CreatePartner(ctx, tx, name)
	if err != nil {
		return p, err
	}
	rec, value, err := insertKey(ctx, tx, newKey{Kind: tenants.KindPartner, Name: "initial", PartnerID: p.ID, OrgID: p.OwnerOrgID})
	if err != nil {
		return p, fmt.Errorf("insert partner key: %w", err)
	}
	if err := keyEvent(ctx, tx, nil, rec, tenants.EventPartnerKeyCreated); err != nil {
		return p, err
	}
	return p, deliver(value)
}

// IssuePartnerKey gives an existing partner a new partner key, for the operator (the command
// line): the way back in for a partner that has lost its keys. The value goes to deliver
// before the transaction commits, as in CreatePartner.
func (s *Service) IssuePartnerKey(ctx context.Context, partnerID, name string, deliver func(value string) error) error {
	return s.Write(ctx, func(tx *tenants.Tx) error {
		owner, err := tenants.OwnerOrganizationID(ctx, tx, partnerID)
		if err != nil {
			return err
		}
		rec, value, err := insertKey(ctx, tx, newKey{Kind: tenants.KindPartner, Name: name, PartnerID: partnerID, OrgID: owner})
		if tenants.IsUniqueViolation(err) {
			return errKeyNameTaken(name)
		}
		if err != nil {
			return fmt.Errorf("insert partner key: %w", err)
		}
		if err := keyEvent(ctx, tx, nil, rec, tenants.EventPartnerKeyCreated); err != nil {
			return err
		}
		return deliver(value)
	})
}

// Bootstrap creates a first partner named name when the database has none, delivering its key
// as CreatePartner does. created is false when a partner already exists. It is safe to race:
// the check and the creation share one write transaction.
func (s *Service) Bootstrap(ctx context.Context, name string, deliver func(value string) error) (created bool, err error) {
	err = s.Write(ctx, func(tx *tenants.Tx) error {
		n, err := tenants.CountPartners(ctx, tx)
		if err != nil || n > 0 {
			return err
		}
		if _, err := createPartner(ctx, tx, name, deliver); err != nil {
			return err
		}
		created = true
		return nil
	})
	if errors.Is(err, tenants.ErrConflict) {
		// Another replica bootstrapped at the same moment (on PostgreSQL both may count no
		// partner; the unique partner name lets one through).
		return false, nil
	}
	return created && err == nil, err
}

// MintInput is what a partner may say of a user key it mints, all of it optional.
type MintInput struct {
	Force        bool       // revoke the user's partner-issued key, if it has one
	ExpiresAt    *time.Time // an extension: Polytomic's endpoint takes no body
	AllowedCIDRs []string   // an extension, as POST /api/keys takes it
}

// MintUserKey issues a key for a user of one of the partner's organizations (Polytomic's
// POST /api/organizations/{org_id}/users/{id}/keys). A user holds at most one active key from
// this endpoint: a second is ErrConflict unless in.Force is set, in which case the old key is
// revoked and the new one issued in the same transaction. The organization's key policy
// governs it as every key of the organization (applyKeyPolicy).
func (s *Service) MintUserKey(ctx context.Context, p *tenants.Principal, orgID, userID string, in MintInput) (string, error) {
	if err := p.RequirePartner(); err != nil {
		return "", err
	}
	var errs tenants.FieldErrors
	if in.ExpiresAt != nil && !in.ExpiresAt.After(time.Now()) {
		errs.Add("expires_at", "must be in the future")
	}
	cidrs := checkNetworks(&errs, in.AllowedCIDRs)
	if err := errs.Err(); err != nil {
		return "", err
	}
	// A key issued by an expiring partner key expires with it, and may not outlive it.
	expires, err := boundExpiry(p, in.ExpiresAt)
	if err != nil {
		return "", err
	}
	var value string
	err = s.Write(ctx, func(tx *tenants.Tx) error {
		u, err := tenants.FindUser(ctx, tx, p, orgID, userID)
		if err != nil {
			return err
		}
		if expires, err = applyKeyPolicy(ctx, tx, orgID, expires, cidrs, s.now()); err != nil {
			return err
		}
		// Concurrent mints for one user take turns, so a forced one always sees (and revokes)
		// the key the one before it issued.
		if err := tenants.LockUser(ctx, tx, u.ID); err != nil {
			return err
		}
		if in.Force {
			var old []string
			if err := sqlx.SelectContext(ctx, tx, &old, tx.Rebind(`SELECT id FROM api_keys
				WHERE user_id = ? AND partner_issued AND revoked_at IS NULL`), u.ID); err != nil {
				return fmt.Errorf("select user key: %w", err)
			}
			for _, id := range old {
				r, err := findKey(ctx, tx, `id = ?`, id)
				if err != nil {
					return fmt.Errorf("select user key: %w", err)
				}
				if _, err := revoke(ctx, tx, p, r, ""); err != nil {
					return err
				}
			}
		}
		// The name carries a fresh suffix so that only the one-active-key index can refuse it.
		suffix := tenants.NewID()
		rec, v, err := insertKey(ctx, tx, newKey{Kind: tenants.KindUser, Name: "partner-issued-" + suffix[len(suffix)-8:],
			PartnerID: p.PartnerID, OrgID: orgID, UserID: u.ID, PartnerIssued: true, CreatedBy: p.KeyID,
			ExpiresAt: expires, AllowedCIDRs: cidrs})
		if tenants.IsUniqueViolation(err) {
			return tenants.Errorf(tenants.ErrConflict, "user_key_exists",
				"User %q already has an active key; pass force=true to revoke it and issue a new one.", u.ID)
		}
		if err != nil {
			return fmt.Errorf("insert user key: %w", err)
		}
		value = v
		return keyEvent(ctx, tx, p, rec, tenants.EventAPIKeyCreated)
	})
	return value, err
}
