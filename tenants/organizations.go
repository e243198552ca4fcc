package tenants

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
)

// Organization is an isolated customer tenant of a partner. Its SSO client secret is
// write-only: it is stored but has no field here, so it cannot be returned or logged.
type Organization struct {
	ID        string `json:"id" db:"id"`
	Name      string `json:"name" db:"name"`
	Issuer    string `json:"issuer" db:"issuer"`
	ClientID  string `json:"client_id" db:"client_id"`
	SSODomain string `json:"sso_domain" db:"sso_domain"`
	SSOOrgID  string `json:"sso_org_id" db:"sso_org_id"`
	// APIVersion serves requests of this organization's credentials that name no version.
	APIVersion string    `json:"api_version" db:"api_version"`
	CreatedAt  time.Time `json:"created_at" db:"created_at"`
	UpdatedAt  time.Time `json:"updated_at" db:"updated_at"`

	PartnerID string `json:"-" db:"partner_id"`
	IsOwner   bool   `json:"-" db:"is_owner"`
}

// OrganizationInput is the body of a create or a full-replacement update: an SSO field left
// out is stored empty. APIVersion "" means the newest on create and unchanged on update;
// KeepClientSecret leaves the stored secret as it is (a partial update that does not name it).
type OrganizationInput struct {
	Name             string
	Issuer           string
	ClientID         string
	ClientSecret     string
	SSODomain        string
	SSOOrgID         string
	APIVersion       string
	KeepClientSecret bool
}

const orgColumns = `id, name, issuer, client_id, sso_domain, sso_org_id, api_version, created_at, updated_at, partner_id, is_owner`

func (in *OrganizationInput) normalize() error {
	in.Name = strings.TrimSpace(in.Name)
	in.Issuer = strings.TrimSpace(in.Issuer)
	in.ClientID = strings.TrimSpace(in.ClientID)
	in.SSODomain = strings.ToLower(strings.TrimSpace(in.SSODomain))
	in.SSOOrgID = strings.TrimSpace(in.SSOOrgID)
	var errs FieldErrors
	errs.Add("name", checkName(in.Name, 255))
	if in.Issuer != "" {
		errs.Add("issuer", checkURL(in.Issuer))
	}
	errs.Add("client_id", CheckText(in.ClientID, 255))
	errs.Add("client_secret", CheckText(in.ClientSecret, 1024))
	if in.SSODomain != "" {
		errs.Add("sso_domain", checkDomain(in.SSODomain))
	}
	errs.Add("sso_org_id", CheckText(in.SSOOrgID, 255))
	if in.APIVersion != "" && !IsVersion(in.APIVersion) {
		errs.Add("api_version", "must be one of "+strings.Join(Versions, ", "))
	}
	return errs.Err()
}

func errOrganizationNotFound(id string) error {
	return Errorf(ErrNotFound, "organization_not_found", "No organization with id %q exists for this partner.", id)
}

func errOrganizationNameTaken(name string) error {
	return Errorf(ErrConflict, "organization_name_taken",
		"An organization named %q already exists for this partner; names are unique ignoring case.", name)
}

// insertOrganization creates an organization with its built-in roles.
func insertOrganization(ctx context.Context, tx *Tx, sealer *Sealer, partnerID string, owner bool, in OrganizationInput) (Organization, error) {
	if err := in.normalize(); err != nil {
		return Organization{}, err
	}
	now := Now()
	if in.APIVersion == "" {
		in.APIVersion = LatestVersion // pinned at creation to the newest
	}
	o := Organization{ID: NewID(), Name: in.Name, Issuer: in.Issuer, ClientID: in.ClientID,
		SSODomain: in.SSODomain, SSOOrgID: in.SSOOrgID, APIVersion: in.APIVersion, CreatedAt: now, UpdatedAt: now,
		PartnerID: partnerID, IsOwner: owner}
	secret, err := sealer.SealString(in.ClientSecret, SealedAt("organizations", "client_secret", o.ID))
	if err != nil {
		return Organization{}, err
	}
	_, err = tx.ExecContext(ctx, tx.Rebind(`
		INSERT INTO organizations (id, partner_id, is_owner, name, name_key, issuer, client_id,
			client_secret, sso_domain, sso_org_id, api_version, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		o.ID, partnerID, owner, o.Name, strings.ToLower(o.Name), o.Issuer, o.ClientID,
		secret, o.SSODomain, o.SSOOrgID, o.APIVersion, now, now)
	if IsUniqueViolation(err) {
		return Organization{}, errOrganizationNameTaken(o.Name)
	}
	if err != nil {
		return Organization{}, fmt.Errorf("insert organization: %w", err)
	}
	roles, err := insertSystemRoles(ctx, tx, o.ID, now)
	if err != nil {
		return Organization{}, err
	}
	tx.known.createdOrganization(o.ID, partnerID, roles)
	return o, nil
}

// partnerOrganization loads an organization that partnerID owns; any other is ErrNotFound.
func partnerOrganization(ctx context.Context, q sqlx.ExtContext, partnerID, id string) (Organization, error) {
	return getOne[Organization](ctx, q, id, errOrganizationNotFound(id),
		`SELECT `+orgColumns+` FROM organizations WHERE id = ? AND partner_id = ?`, id, partnerID)
}

// PartnerOrganization loads an organization of the partner p; another partner's is ErrNotFound.
func PartnerOrganization(ctx context.Context, q sqlx.ExtContext, p *Principal, id string) (Organization, error) {
	if err := p.RequirePartner(); err != nil {
		return Organization{}, err
	}
	return partnerOrganization(ctx, q, p.PartnerID, id)
}

// CreateOrganization creates a child organization of the calling partner.
func (s *Store) CreateOrganization(ctx context.Context, p *Principal, in OrganizationInput) (Organization, error) {
	if err := p.RequirePartner(); err != nil {
		return Organization{}, err
	}
	var o Organization
	err := s.Write(ctx, func(tx *Tx) (err error) {
		if o, err = insertOrganization(ctx, tx, s.Sealer, p.PartnerID, false, in); err != nil {
			return err
		}
		return recordEvent(ctx, tx, p, o.ID, EventOrganizationCreated, o)
	})
	return o, err
}

// ListOrganizations returns the partner's owner organization first, then its children in
// order of creation.
func (s *Store) ListOrganizations(ctx context.Context, p *Principal) ([]Organization, error) {
	if err := p.RequirePartner(); err != nil {
		return nil, err
	}
	q, err := s.Reader(ctx)
	if err != nil {
		return nil, err
	}
	orgs := []Organization{}
	err = sqlx.SelectContext(ctx, q, &orgs, q.Rebind(`SELECT `+orgColumns+`
		FROM organizations WHERE partner_id = ? ORDER BY is_owner DESC, created_at, id`), p.PartnerID)
	if err != nil {
		return nil, fmt.Errorf("list organizations: %w", err)
	}
	return orgs, nil
}

// GetOrganization returns one of the partner's organizations.
func (s *Store) GetOrganization(ctx context.Context, p *Principal, id string) (Organization, error) {
	if err := p.RequirePartner(); err != nil {
		return Organization{}, err
	}
	q, err := s.Reader(ctx)
	if err != nil {
		return Organization{}, err
	}
	return partnerOrganization(ctx, q, p.PartnerID, id)
}

// CurrentOrganization returns the organization the credential acts in (a partner key's owner
// organization). Any credential may read its own organization.
func (s *Store) CurrentOrganization(ctx context.Context, p *Principal) (Organization, error) {
	q, err := s.Reader(ctx)
	if err != nil {
		return Organization{}, err
	}
	// Not found only if the organization was deleted since authentication.
	return getOne[Organization](ctx, q, p.OrgID, errOrganizationNotFound(p.OrgID),
		`SELECT `+orgColumns+` FROM organizations WHERE id = ?`, p.OrgID)
}

// UpdateOrganization replaces an organization's name and SSO fields in full.
func (s *Store) UpdateOrganization(ctx context.Context, p *Principal, id string, in OrganizationInput) (Organization, error) {
	return changeRow(ctx, s, p.RequirePartner(), p.PartnerID, id, partnerOrganization, func(tx *Tx, o *Organization) (err error) {
		if err := in.normalize(); err != nil {
			return err
		}
		o.Name, o.Issuer, o.ClientID, o.SSODomain, o.SSOOrgID, o.UpdatedAt =
			in.Name, in.Issuer, in.ClientID, in.SSODomain, in.SSOOrgID, Now()
		if in.APIVersion != "" {
			o.APIVersion = in.APIVersion
		}
		secret, err := s.Sealer.SealString(in.ClientSecret, SealedAt("organizations", "client_secret", o.ID))
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, tx.Rebind(`
			UPDATE organizations SET name = ?, name_key = ?, issuer = ?, client_id = ?,
				client_secret = CASE WHEN ? THEN client_secret ELSE ? END,
				sso_domain = ?, sso_org_id = ?, api_version = ?, updated_at = ?
			WHERE id = ? AND partner_id = ?`),
			o.Name, strings.ToLower(o.Name), o.Issuer, o.ClientID, in.KeepClientSecret, secret,
			o.SSODomain, o.SSOOrgID, o.APIVersion, o.UpdatedAt, o.ID, p.PartnerID)
		if IsUniqueViolation(err) {
			return errOrganizationNameTaken(o.Name)
		}
		if err != nil {
			return fmt.Errorf("update organization: %w", err)
		}
		return recordEvent(ctx, tx, p, o.ID, EventOrganizationUpdated, o)
	})
}

// DeleteOrganization deletes a child organization with its users, roles and keys (so every key
// in it stops working at once) and returns it as it was. The owner organization is ErrConflict.
func (s *Store) DeleteOrganization(ctx context.Context, p *Principal, id string) (Organization, error) {
	return changeRow(ctx, s, p.RequirePartner(), p.PartnerID, id, partnerOrganization, func(tx *Tx, o *Organization) (err error) {
		if o.IsOwner {
			return Errorf(ErrConflict, "owner_organization_undeletable",
				"Organization %q is the partner's owner organization and cannot be deleted.", o.ID)
		}
		if err := recordCascadedRevocations(ctx, tx, p, "org_id", o.ID, "organization deleted"); err != nil {
			return err
		}
		tx.known.forgetOrganization(o.ID)
		// Users first (their role links and keys cascade), then the links of resources to
		// policies and the policies (their actions and grants cascade), then the organization
		// (its roles, resources and remaining keys cascade): role links and grants restrict role
		// deletion, and resources' links policy deletion, so they must go first.
		for _, stmt := range []string{
			`DELETE FROM users WHERE org_id = ?`,
			`DELETE FROM connection_policies WHERE policy_id IN (SELECT id FROM policies WHERE org_id = ?)`,
			`DELETE FROM dataset_policies WHERE policy_id IN (SELECT id FROM policies WHERE org_id = ?)`,
			`DELETE FROM policies WHERE org_id = ?`,
			`DELETE FROM organizations WHERE id = ?`,
		} {
			if _, err := tx.ExecContext(ctx, tx.Rebind(stmt), o.ID); err != nil {
				return fmt.Errorf("delete organization: %w", err)
			}
		}
		return recordEvent(ctx, tx, p, o.ID, EventOrganizationDeleted, o)
	})
}
