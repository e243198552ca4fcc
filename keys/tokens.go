package keys

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"maps"
	"regexp"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jmoiron/sqlx"

	"github.com/tenantry/tenantry/tenants"
)

// Temporary tokens are JWTs signed with Ed25519 (EdDSA). Verification pins the algorithm, the
// issuer and the audience, and requires exp; the parent key is looked up on every use, so
// revoking or expiring it ends its tokens at once.
const (
	TokenIssuer     = "tenantry"
	TokenAudience   = "tenantry-api"
	DefaultTokenTTL = 900
	MinTokenTTL     = 60
	MaxTokenTTL     = 86400
	tokenLeeway     = 5 * time.Second // clock skew between replicas
)

// TokenInput is the body of POST /api/auth/tokens.
type TokenInput struct {
	TTL         *int
	Role        string
	Scopes      []string // nil: the parent's permissions
	RoleVars    map[string]string
	UserProfile *UserProfile
}

// UserProfile describes the person a token is for, as the caller says; it is carried, not trusted.
type UserProfile struct {
	Name  string `json:"name,omitempty"`
	Email string `json:"email,omitempty"`
}

// Token is a minted token.
type Token struct {
	Token     string    `json:"token"`
	TokenType string    `json:"token_type"`
	ExpiresAt time.Time `json:"expires_at"`
}

type tokenClaims struct {
	jwt.RegisteredClaims
	Org         string            `json:"org"`
	Partner     string            `json:"partner"`
	Parent      string            `json:"parent"`
	ParentValue string            `json:"psh"` // the hash of the parent value that minted it: it dies with that value
	ParentKind  string            `json:"parent_kind"`
	Scope       *string           `json:"scope,omitempty"` // absent: the parent's permissions as they are at each use
	Role        string            `json:"role,omitempty"`
	RoleVars    map[string]string `json:"role_vars,omitempty"`
	UserProfile *UserProfile      `json:"user_profile,omitempty"`
}

var roleVarName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

const maxRoleVars = 32

func (in *TokenInput) validate() (ttl int, scopes tenants.Permissions, err error) {
	var errs tenants.FieldErrors
	ttl = DefaultTokenTTL
	if in.TTL != nil {
		ttl = *in.TTL
		if ttl < MinTokenTTL || ttl > MaxTokenTTL {
			errs.Add("token_ttl", fmt.Sprintf("must be from %d to %d seconds", MinTokenTTL, MaxTokenTTL))
		}
	}
	if in.Role != "" && in.Role != tenants.OrgRoleAdmin && in.Role != tenants.OrgRoleAsker {
		errs.Add("role", `must be "admin" or "asker"`)
	}
	scopes = tenants.AllPermissions
	if in.Scopes != nil {
		var msg string
		if scopes, msg = tenants.CheckActions(in.Scopes); msg != "" {
			errs.Add("scopes", msg)
		}
	}
	if len(in.RoleVars) > maxRoleVars {
		errs.Add("role_vars", fmt.Sprintf("must have at most %d entries", maxRoleVars))
	}
	for k, v := range in.RoleVars {
		if !roleVarName.MatchString(k) {
			errs.Add("role_vars", fmt.Sprintf("name %q must be 1-64 letters, digits or _ and not start with a digit", k))
		} else if msg := tenants.CheckText(v, 256); msg != "" {
			errs.Add("role_vars", fmt.Sprintf("value of %q %s", k, msg))
		}
	}
	if up := in.UserProfile; up != nil {
		errs.Add("user_profile.name", tenants.CheckText(up.Name, 255))
		if up.Email != "" {
			errs.Add("user_profile.email", tenants.CheckEmail(up.Email))
		}
	}
	return ttl, scopes, errs.Err()
}

// MintToken issues a temporary token that can do at most what p can: p's permissions,
// narrowed by the requested role and scopes. A token cannot mint tokens, and never outlives p.
func (s *Service) MintToken(ctx context.Context, p *tenants.Principal, in TokenInput) (Token, error) {
	if p.IsToken() {
		return Token{}, tenants.TokenNotAllowed("A temporary token cannot mint tokens; use the key it was minted from.")
	}
	ttl, scopes, err := in.validate()
	if err != nil {
		return Token{}, err
	}
	if missing := scopes &^ p.Permissions; in.Scopes != nil && missing != 0 {
		return Token{}, tenants.Escalation("mint a token with these scopes", missing)
	}
	var scope *string
	if in.Scopes != nil {
		v := scopes.String()
		scope = &v
	}
	role := ""
	switch {
	case in.Role == tenants.OrgRoleAsker || p.IsAsker():
		role = tenants.OrgRoleAsker
	case in.Role == tenants.OrgRoleAdmin:
		if missing := tenants.AllPermissions &^ p.Permissions; missing != 0 {
			return Token{}, tenants.Escalation("mint an admin token (it holds every permission)", missing)
		}
		role = tenants.OrgRoleAdmin
	}
	now := s.now().UTC().Truncate(time.Second)
	exp := now.Add(time.Duration(ttl) * time.Second)
	if p.ExpiresAt != nil && p.ExpiresAt.Before(exp) {
		exp = p.ExpiresAt.UTC().Truncate(time.Second)
	}
	signer, err := s.currentSigner(ctx)
	if err == nil {
		// This replica verifies what it signs at once, whenever its cache last loaded: a key
		// rotated by another process would otherwise refuse the tokens minted with it here.
		s.signers.remember(signer)
	}
	if err != nil {
		return Token{}, err
	}
	claims := tokenClaims{
		RegisteredClaims: jwt.RegisteredClaims{Issuer: TokenIssuer, Audience: jwt.ClaimStrings{TokenAudience},
			Subject: p.Subject(), ID: tenants.NewID(), IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(exp)},
		Org: p.OrgID, Partner: p.PartnerID, Parent: p.KeyID, ParentValue: p.SecretID, ParentKind: string(p.ParentKind),
		Scope: scope, Role: role, RoleVars: in.RoleVars, UserProfile: in.UserProfile,
	}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	t.Header["kid"] = signer.id
	signed, err := t.SignedString(signer.private)
	if err != nil {
		return Token{}, fmt.Errorf("sign token: %w", err)
	}
	return Token{Token: signed, TokenType: "Bearer", ExpiresAt: exp}, nil
}

func (s *Service) tokenParser() *jwt.Parser {
	return jwt.NewParser(jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
		jwt.WithIssuer(TokenIssuer), jwt.WithAudience(TokenAudience), jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(), jwt.WithLeeway(tokenLeeway), jwt.WithTimeFunc(s.now))
}

// tokenShapeOK holds what the parser does not check: an issue time, a lifetime no longer than
// a token may have (signing keys retire on that assumption), and no critical extensions.
func tokenShapeOK(t *jwt.Token, c *tokenClaims) bool {
	if _, crit := t.Header["crit"]; crit || c.IssuedAt == nil || c.NotBefore == nil || c.ExpiresAt == nil {
		return false
	}
	return c.ExpiresAt.Sub(c.IssuedAt.Time) <= MaxTokenTTL*time.Second
}

func (s *Service) authenticateToken(ctx context.Context, value string) (*tenants.Principal, error) {
	claims, err := s.verifiedClaims(ctx, value)
	if err != nil {
		return nil, err
	}
	secret, err := base64.RawURLEncoding.DecodeString(claims.ParentValue)
	if err != nil {
		return nil, refused("bad_token")
	}
	// The parent key by id, and the value of it that minted the token: a token dies when that
	// value is rotated out and its grace period ends, not only with the key.
	parent, tokensUntil, err := s.lookUp(ctx, "p"+claims.Parent+"/"+claims.ParentValue,
		func(_, byIDAndValue *sqlx.Stmt, rows *[]keyRow) (string, error) {
			return claims.ParentValue, byIDAndValue.SelectContext(ctx, rows, secret, claims.Parent)
		})
	if err != nil {
		return nil, err
	}
	if parent.OrgID != claims.Org || parent.PartnerID != claims.Partner {
		return nil, refused("bad_token")
	}
	if !tokensUntil.IsZero() && !claims.IssuedAt.Time.After(tokensUntil) {
		return nil, refused("revoked") // one of the key's tokens was reported leaked: those until it end
	}
	p := *parent
	p.Kind, p.TokenID, p.SecretID = tenants.KindToken, claims.ID, claims.ParentValue
	if claims.Scope != nil {
		scopes := tenants.ParsePermissions(*claims.Scope)
		if p.Scopes != nil {
			scopes &= *p.Scopes
		}
		p.Permissions &= scopes
		p.Scopes, p.Narrowed = &scopes, true
	}
	if claims.Role == tenants.OrgRoleAsker {
		p.OrgRole, p.Permissions, p.Narrowed = tenants.OrgRoleAsker, p.Permissions&tenants.AskerPermissions, true
	}
	exp := claims.ExpiresAt.Time.UTC()
	p.ExpiresAt, p.IssuedAt = &exp, claims.IssuedAt.Time.UTC()
	return &p, nil
}

// verifiedClaims checks a token's signature, issuer, audience and shape, once: a token
// verified before is taken from the cache until it expires (or its signing key retires).
func (s *Service) verifiedClaims(ctx context.Context, value string) (*tokenClaims, error) {
	now := s.now()
	if s.cache != nil {
		if t, ok := s.cache.token(value, now); ok {
			return &t.claims, nil
		}
	}
	var claims tokenClaims
	var retires *time.Time
	tok, err := s.tokenParser().ParseWithClaims(value, &claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		k, err := s.signers.verifier(ctx, s.DB, kid)
		retires = k.verifyUntil
		return k.public, err
	})
	if err != nil || claims.Parent == "" || !tokenShapeOK(tok, &claims) {
		return nil, refused("bad_token")
	}
	if s.cache != nil {
		until := claims.ExpiresAt.Time
		if retires != nil && retires.Before(until) {
			until = *retires
		}
		s.cache.putToken(value, &cachedToken{claims: claims, until: until})
	}
	return &claims, nil
}

// signer is one signing key.
type signer struct {
	id          string
	private     ed25519.PrivateKey
	public      ed25519.PublicKey
	verifyUntil *time.Time
}

type signingKeyRow struct {
	ID          string     `db:"id"`
	Private     []byte     `db:"private_key"`
	Public      []byte     `db:"public_key"`
	CreatedAt   time.Time  `db:"created_at"`
	VerifyUntil *time.Time `db:"verify_until"`
}

// signerCache holds the public signing keys for verification. An unknown kid reloads it (at
// most once a second, so junk kids cannot hammer the database), as does age: a key rotated
// through another replica is honoured on first sight.
type signerCache struct {
	mu       sync.RWMutex
	byID     map[string]signer
	loadedAt time.Time
}

const (
	signerReloadMin = 100 * time.Millisecond
	signerMaxAge    = time.Second // the staleness bound across replicas: a retirement is seen within it
)

func newSignerCache() *signerCache { return &signerCache{byID: map[string]signer{}} }

func (c *signerCache) verifier(ctx context.Context, db *sqlx.DB, kid string) (signer, error) {
	c.mu.RLock()
	k, ok := c.byID[kid]
	age := time.Since(c.loadedAt)
	c.mu.RUnlock()
	if (!ok && age > signerReloadMin) || age > signerMaxAge {
		if err := c.load(ctx, db); err != nil {
			return signer{}, err
		}
		c.mu.RLock()
		k, ok = c.byID[kid]
		c.mu.RUnlock()
	}
	if !ok || (k.verifyUntil != nil && time.Now().After(*k.verifyUntil)) {
		return signer{}, fmt.Errorf("unknown signing key %q", kid)
	}
	return k, nil
}

// remember adds a signing key read from the database since the cache last loaded.
func (c *signerCache) remember(k signer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.byID[k.id]; !ok {
		byID := maps.Clone(c.byID)
		byID[k.id] = signer{id: k.id, public: k.public, verifyUntil: k.verifyUntil}
		c.byID = byID
	}
}

func (c *signerCache) load(ctx context.Context, db *sqlx.DB) error {
	var rows []signingKeyRow
	if err := sqlx.SelectContext(ctx, db, &rows, `SELECT id, public_key, created_at, verify_until FROM signing_keys`); err != nil {
		return fmt.Errorf("load signing keys: %w", err)
	}
	byID := make(map[string]signer, len(rows))
	for _, r := range rows {
		byID[r.ID] = signer{id: r.ID, public: ed25519.PublicKey(r.Public), verifyUntil: r.VerifyUntil}
	}
	c.mu.Lock()
	c.byID, c.loadedAt = byID, time.Now()
	c.mu.Unlock()
	return nil
}

// EnsureSigningKey creates the first token signing key if there is none, so that requests
// arriving together on a new installation do not each create one (a token signed by a key its
// verifier has not loaded yet would wait up to half a second to be accepted).
func (s *Service) EnsureSigningKey(ctx context.Context) error {
	_, err := s.currentSigner(ctx)
	return err
}

// currentSigner returns the newest active signing key, creating the first one when none exists.
func (s *Service) currentSigner(ctx context.Context) (signer, error) {
	var rows []signingKeyRow
	err := sqlx.SelectContext(ctx, s.DB, &rows, `SELECT id, private_key, public_key, created_at, verify_until
		FROM signing_keys WHERE verify_until IS NULL ORDER BY created_at DESC, id DESC LIMIT 1`)
	if err != nil {
		return signer{}, fmt.Errorf("select signing key: %w", err)
	}
	if len(rows) == 0 {
		return s.rotateSigningKey(ctx)
	}
	r := rows[0]
	private, err := s.Sealer.Open(r.Private, tenants.SealedAt("signing_keys", "private_key", r.ID))
	if err != nil {
		return signer{}, fmt.Errorf("signing key %s: %w", r.ID, err)
	}
	return signer{id: r.ID, private: ed25519.PrivateKey(private), public: ed25519.PublicKey(r.Public)}, nil
}

// RotateSigningKey adds a new signing key, used for every token from now on, and schedules the
// current ones to stop verifying once every token they signed has expired.
func (s *Service) RotateSigningKey(ctx context.Context) (string, error) {
	k, err := s.rotateSigningKey(ctx)
	return k.id, err
}

// rotateSigningKey is RotateSigningKey returning the new key itself, so a caller inside a
// transaction (which others cannot see yet) need not read it back.
func (s *Service) rotateSigningKey(ctx context.Context) (signer, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return signer{}, err
	}
	id := tenants.NewID()
	now := tenants.Now()
	sealed, err := s.Sealer.Seal(priv, tenants.SealedAt("signing_keys", "private_key", id))
	if err != nil {
		return signer{}, err
	}
	err = s.Write(ctx, func(tx *tenants.Tx) error {
		retire := now.Add(MaxTokenTTL*time.Second + tokenLeeway)
		if _, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE signing_keys SET verify_until = ? WHERE verify_until IS NULL`), retire); err != nil {
			return fmt.Errorf("retire signing keys: %w", err)
		}
		_, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO signing_keys (id, private_key, public_key, created_at) VALUES (?, ?, ?, ?)`),
			id, sealed, []byte(pub), now)
		return err
	})
	if err != nil {
		return signer{}, fmt.Errorf("rotate signing key: %w", err)
	}
	return signer{id: id, private: priv, public: pub}, nil
}

// JWK is one public key of the JSON Web Key Set (RFC 7517, RFC 8037 for Ed25519).
type JWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
}

// JWKS returns the public halves of every signing key that still verifies tokens.
func (s *Service) JWKS(ctx context.Context) ([]JWK, error) {
	var rows []signingKeyRow
	err := sqlx.SelectContext(ctx, s.DB, &rows, s.DB.Rebind(`SELECT id, public_key, created_at, verify_until
		FROM signing_keys WHERE verify_until IS NULL OR verify_until > ? ORDER BY created_at DESC, id DESC`), tenants.Now())
	if err != nil {
		return nil, fmt.Errorf("select signing keys: %w", err)
	}
	out := make([]JWK, 0, len(rows))
	for _, r := range rows {
		out = append(out, JWK{Kty: "OKP", Crv: "Ed25519", X: base64.RawURLEncoding.EncodeToString(r.Public),
			Kid: r.ID, Alg: "EdDSA", Use: "sig"})
	}
	return out, nil
}
