package tenants

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
)

// The built-in roles every organization has. The legacy user role "admin" is RoleAdmin and
// "user" is RoleMember. Their permissions come from this code, not the database, so a new
// action reaches Admin everywhere the day it ships.
const (
	RoleAdmin  = "Admin"
	RoleMember = "Member"
)

// Legacy role names, as Polytomic's API spells them.
const (
	LegacyAdmin = "admin"
	LegacyUser  = "user"
)

// Role is a named set of actions in one organization.
type Role struct {
	ID             string    `json:"id"`
	Name           string    `json:"name"`
	OrganizationID string    `json:"organization_id"`
	System         bool      `json:"system"`
	Actions        []Action  `json:"actions"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
}

// RoleInput is the body of a create or a full-replacement update.
type RoleInput struct {
	Name string
	// Actions nil (not given, as Polytomic's clients send a role: a name only): none for a new
	// role, the role's own on an update (a rename).
	Actions []string
}

// roleRow is a role as stored.
type roleRow struct {
	ID        string    `db:"id"`
	OrgID     string    `db:"org_id"`
	Name      string    `db:"name"`
	System    bool      `db:"system"`
	Actions   string    `db:"actions"`
	CreatedAt time.Time `db:"created_at"`
	UpdatedAt time.Time `db:"updated_at"`
}

const roleColumns = `id, org_id, name, system, actions, created_at, updated_at`

// RolePermissions is what a role allows: fixed for the built-in roles, stored for custom ones.
func RolePermissions(system bool, name, actions string) Permissions {
	switch {
	case system && name == RoleAdmin:
		return AllPermissions
	case system && name == RoleMember:
		return MemberPermissions
	default:
		return ParsePermissions(actions)
	}
}

func (r roleRow) permissions() Permissions { return RolePermissions(r.System, r.Name, r.Actions) }

func (r roleRow) role() Role {
	return Role{ID: r.ID, Name: r.Name, OrganizationID: r.OrgID, System: r.System,
		Actions: r.permissions().Actions(), CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
}

func insertSystemRoles(ctx context.Context, tx *Tx, orgID string, now time.Time) (map[string]roleRow, error) {
	roles := map[string]roleRow{}
	var args []any
	for _, name := range []string{RoleAdmin, RoleMember} {
		r := roleRow{ID: NewID(), OrgID: orgID, Name: name, System: true, CreatedAt: now, UpdatedAt: now}
		roles[r.ID] = r
		args = append(args, r.ID, orgID, name, strings.ToLower(name), true, now, now)
	}
	_, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO roles (id, org_id, name, name_key, system, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?, ?)`), args...)
	if err != nil {
		return nil, fmt.Errorf("insert built-in roles: %w", err)
	}
	return roles, nil
}

// orgRoles returns an organization's roles by id.
func orgRoles(ctx context.Context, q sqlx.ExtContext, orgID string) (map[string]roleRow, error) {
	if tx, ok := q.(*Tx); ok && tx.known.roles[orgID] != nil {
		return tx.known.roles[orgID], nil // created by tx: read-only, as every caller treats it
	}
	var rows []roleRow
	if err := sqlx.SelectContext(ctx, q, &rows, q.Rebind(`SELECT `+roleColumns+` FROM roles WHERE org_id = ?`), orgID); err != nil {
		return nil, fmt.Errorf("select roles: %w", err)
	}
	byID := make(map[string]roleRow, len(rows))
	for _, r := range rows {
		byID[r.ID] = r
	}
	return byID, nil
}

// systemRoleID finds a built-in role's id among roles.
func systemRoleID(roles map[string]roleRow, name string) string {
	for id, r := range roles {
		if r.System && r.Name == name {
			return id
		}
	}
	return ""
}

// legacyRole is the Polytomic role a set of role ids amounts to: admin when it holds Admin.
func legacyRole(roles map[string]roleRow, ids []string) string {
	for _, id := range ids {
		if r := roles[id]; r.System && r.Name == RoleAdmin {
			return LegacyAdmin
		}
	}
	return LegacyUser
}

// rolesPermissions is the union of what the roles ids allow.
func rolesPermissions(roles map[string]roleRow, ids []string) Permissions {
	var p Permissions
	for _, id := range ids {
		p |= roles[id].permissions()
	}
	return p
}

func errRoleNotFound(id string) error {
	return Errorf(ErrNotFound, "role_not_found", "No role with id %q exists in this organization.", id)
}

func (in *RoleInput) normalize() (Permissions, error) {
	in.Name = strings.TrimSpace(in.Name)
	var errs FieldErrors
	errs.Add("name", checkName(in.Name, 255))
	perms, msg := CheckActions(in.Actions)
	if msg != "" {
		errs.Add("actions", msg)
	}
	return perms, errs.Err()
}

func findRole(ctx context.Context, q sqlx.ExtContext, orgID, id string) (roleRow, error) {
	return getOne[roleRow](ctx, q, id, errRoleNotFound(id), `SELECT `+roleColumns+` FROM roles WHERE id = ? AND org_id = ?`, id, orgID)
}

func errRoleNameTaken(name string) error {
	return Errorf(ErrConflict, "role_name_taken",
		"A role named %q already exists in this organization; names are unique ignoring case.", name)
}

// ListRoles returns the caller's organization's roles: the built-in ones first, then custom
// roles in order of creation.
func (s *Store) ListRoles(ctx context.Context, p *Principal) ([]Role, error) {
	if err := p.Require(RolesRead); err != nil {
		return nil, err
	}
	q, err := s.Reader(ctx)
	if err != nil {
		return nil, err
	}
	var rows []roleRow
	if err := sqlx.SelectContext(ctx, q, &rows, q.Rebind(`SELECT `+roleColumns+`
		FROM roles WHERE org_id = ? ORDER BY system DESC, created_at, id`), p.OrgID); err != nil {
		return nil, fmt.Errorf("list roles: %w", err)
	}
	out := make([]Role, len(rows))
	for i, r := range rows {
		out[i] = r.role()
	}
	return out, nil
}

// GetRole returns one role of the caller's organization.
func (s *Store) GetRole(ctx context.Context, p *Principal, id string) (Role, error) {
	if err := p.Require(RolesRead); err != nil {
		return Role{}, err
	}
	q, err := s.Reader(ctx)
	if err != nil {
		return Role{}, err
	}
	r, err := findRole(ctx, q, p.OrgID, id)
	return r.role(), err
}

// CreateRole adds a custom role to the caller's organization. A role may not allow an action
// the caller lacks (403 permission_escalation).
func (s *Store) CreateRole(ctx context.Context, p *Principal, in RoleInput) (Role, error) {
	if err := p.Require(RolesWrite); err != nil {
		return Role{}, err
	}
	perms, err := in.normalize()
	if err != nil {
		return Role{}, err
	}
	if missing := perms &^ p.Permissions; missing != 0 {
		return Role{}, Escalation("create a role with these actions", missing)
	}
	now := Now()
	r := roleRow{ID: NewID(), OrgID: p.OrgID, Name: in.Name, Actions: perms.String(), CreatedAt: now, UpdatedAt: now}
	err = s.Write(ctx, func(tx *Tx) error {
		tx.known.forgetRoles(r.OrgID)
		_, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO roles (id, org_id, name, name_key, system, actions, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`), r.ID, r.OrgID, r.Name, strings.ToLower(r.Name), false, r.Actions, now, now)
		if IsUniqueViolation(err) {
			return errRoleNameTaken(r.Name)
		}
		if err != nil {
			return fmt.Errorf("insert role: %w", err)
		}
		return recordEvent(ctx, tx, p, r.OrgID, EventRoleCreated, r.role())
	})
	return r.role(), err
}

// UpdateRole replaces a custom role's name and actions; users holding it get the new actions
// on their next request. Built-in roles cannot change (409).
func (s *Store) UpdateRole(ctx context.Context, p *Principal, id string, in RoleInput) (Role, error) {
	r, err := changeRow(ctx, s, p.Require(RolesWrite), p.OrgID, id, findRole, func(tx *Tx, r *roleRow) (err error) {
		tx.known.forgetRoles(r.OrgID)
		if r.System {
			return errSystemRole(r.Name)
		}
		perms, err := in.normalize()
		if err != nil {
			return err
		}
		if in.Actions == nil {
			perms = r.permissions()
		}
		// Neither the actions granted nor those taken away may exceed the caller's.
		if missing := (perms | r.permissions()) &^ p.Permissions; missing != 0 {
			return Escalation("change this role", missing)
		}
		r.Name, r.Actions, r.UpdatedAt = in.Name, perms.String(), Now()
		_, err = tx.ExecContext(ctx, tx.Rebind(`UPDATE roles SET name = ?, name_key = ?, actions = ?, updated_at = ?
			WHERE id = ? AND org_id = ?`), r.Name, strings.ToLower(r.Name), r.Actions, r.UpdatedAt, r.ID, r.OrgID)
		if IsUniqueViolation(err) {
			return errRoleNameTaken(r.Name)
		}
		if err != nil {
			return fmt.Errorf("update role: %w", err)
		}
		return recordEvent(ctx, tx, p, r.OrgID, EventRoleUpdated, r.role())
	})
	return r.role(), err
}

func errSystemRole(name string) error {
	return Errorf(ErrConflict, "system_role_immutable", "The built-in role %s cannot be changed or deleted.", name)
}

// DeleteRole deletes a custom role that nobody holds and no policy grants (409 role_in_use
// otherwise) and returns it.
func (s *Store) DeleteRole(ctx context.Context, p *Principal, id string) (Role, error) {
	r, err := changeRow(ctx, s, p.Require(RolesWrite), p.OrgID, id, findRole, func(tx *Tx, r *roleRow) (err error) {
		tx.known.forgetRoles(r.OrgID)
		if r.System {
			return errSystemRole(r.Name)
		}
		if missing := r.permissions() &^ p.Permissions; missing != 0 {
			return Escalation("delete this role", missing)
		}
		// Asked first, to name them: a failed statement may leave the transaction unable to
		// answer (PostgreSQL).
		policies, err := policiesGranting(ctx, tx, r.ID)
		if err != nil {
			return err
		}
		if len(policies) > 0 {
			return &Error{Kind: ErrConflict, Key: "role_in_use", Metadata: map[string]any{"policies": policies},
				Message: fmt.Sprintf("Role %q is granted actions by these policies: %s. Take it out of them first (PUT each policy without it).",
					r.Name, strings.Join(policies, ", "))}
		}
		// The foreign keys from user_roles and policy_grants (ON DELETE RESTRICT) are what
		// guarantee a role in use is never deleted; they fail the statement if any user holds
		// the role, or a policy granted it meanwhile.
		_, err = tx.ExecContext(ctx, tx.Rebind(`DELETE FROM roles WHERE id = ? AND org_id = ?`), r.ID, r.OrgID)
		if IsForeignKeyViolation(err) {
			return Errorf(ErrConflict, "role_in_use",
				"Role %q is held by at least one user or granted by a policy; give those users other roles, and take it out of those policies, first.", r.Name)
		}
		if err != nil {
			return fmt.Errorf("delete role: %w", err)
		}
		return recordEvent(ctx, tx, p, r.OrgID, EventRoleDeleted, r.role())
	})
	return r.role(), err
}

// UserPermissions is the union of what a user's roles allow.
func UserPermissions(ctx context.Context, q sqlx.ExtContext, userID string) (Permissions, error) {
	var rows []roleRow
	if err := sqlx.SelectContext(ctx, q, &rows, q.Rebind(`SELECT r.id, r.org_id, r.name, r.system, r.actions, r.created_at, r.updated_at
		FROM roles r JOIN user_roles ur ON ur.role_id = r.id WHERE ur.user_id = ?`), userID); err != nil {
		return 0, fmt.Errorf("select user roles: %w", err)
	}
	var p Permissions
	for _, r := range rows {
		p |= r.permissions()
	}
	return p, nil
}
