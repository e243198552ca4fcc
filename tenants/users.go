package tenants

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
)

// User is a person in one organization. Role is Polytomic's legacy view of RoleIDs: "admin"
// when the user holds the built-in Admin role, else "user".
type User struct {
	ID             string    `json:"id" db:"id"`
	Email          string    `json:"email" db:"email"`
	OrganizationID string    `json:"organization_id" db:"org_id"`
	Role           string    `json:"role" db:"-"`
	RoleIDs        []string  `json:"role_ids" db:"-"`
	CreatedAt      time.Time `json:"created_at" db:"created_at"`
	UpdatedAt      time.Time `json:"updated_at" db:"updated_at"`
}

// UserInput is the body of a create or a full-replacement update. Give Role ("admin" or
// "user") or RoleIDs (at least one), not both; with neither the user is a Member. RoleIDs nil
// means not given; an empty non-nil slice is an error.
type UserInput struct {
	Email   string
	Role    string
	RoleIDs []string
}

const userColumns = `id, email, org_id, created_at, updated_at`

func errUserNotFound(id string) error {
	return Errorf(ErrNotFound, "user_not_found", "No user with id %q exists in this organization.", id)
}

// normalize validates in against the organization's roles and returns the role ids to store.
func (in *UserInput) normalize(roles map[string]roleRow) ([]string, error) {
	in.Email = strings.TrimSpace(in.Email)
	var errs FieldErrors
	errs.Add("email", CheckEmail(in.Email))
	var ids []string
	switch {
	case in.Role != "" && in.RoleIDs != nil:
		errs.Add("role_ids", `give either role or role_ids, not both`)
	case in.RoleIDs != nil:
		if len(in.RoleIDs) == 0 {
			errs.Add("role_ids", "must list at least one role id")
		}
		seen := map[string]bool{}
		for _, id := range in.RoleIDs {
			if _, ok := roles[id]; !ok {
				errs.Add("role_ids", fmt.Sprintf("no role with id %q exists in this organization", id))
			} else if !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
	case in.Role == LegacyAdmin:
		ids = []string{systemRoleID(roles, RoleAdmin)}
	case in.Role == LegacyUser || in.Role == "":
		ids = []string{systemRoleID(roles, RoleMember)}
	default:
		errs.Add("role", `must be "admin" or "user"`)
	}
	sort.Strings(ids)
	return ids, errs.Err()
}

// authorizeUsers scopes a user operation to an organization p may reach: a partner's own
// organizations (another's is ErrNotFound), or an organization credential's own organization.
// The operation has checked p's permission (users:read, users:write, keys:write) already.
func authorizeUsers(ctx context.Context, q sqlx.ExtContext, p *Principal, orgID string) error {
	if p.IsPartner() {
		if orgID != p.OrgID {
			// Only an unrestricted partner credential reaches its child organizations.
			if err := p.RequirePartner(); err != nil {
				return err
			}
		}
		if tx, ok := q.(*Tx); ok && tx.known.ownedBy(orgID, p.PartnerID) {
			return nil // created by tx, for p's partner
		}
		_, err := partnerOrganization(ctx, q, p.PartnerID, orgID)
		return err
	}
	if orgID != p.OrgID {
		return errOrganizationNotFound(orgID)
	}
	return nil
}

// FindUser returns a user of orgID, an organization p may reach (see authorizeUsers), for an
// operation that has checked p's permission.
func FindUser(ctx context.Context, q sqlx.ExtContext, p *Principal, orgID, id string) (User, error) {
	if err := authorizeUsers(ctx, q, p, orgID); err != nil {
		return User{}, err
	}
	return findUser(ctx, q, orgID, id)
}

func findUser(ctx context.Context, q sqlx.ExtContext, orgID, id string) (User, error) {
	if tx, ok := q.(*Tx); ok {
		if u, ok := tx.known.user(orgID, id); ok {
			return u, nil
		}
	}
	u, err := getOne[User](ctx, q, id, errUserNotFound(id), `SELECT `+userColumns+` FROM users WHERE id = ? AND org_id = ?`, id, orgID)
	if err != nil {
		return User{}, err
	}
	users := []User{u}
	if err := loadRoles(ctx, q, orgID, users); err != nil {
		return User{}, err
	}
	return users[0], nil
}

// loadRoles fills Role and RoleIDs of users, all of orgID.
func loadRoles(ctx context.Context, q sqlx.ExtContext, orgID string, users []User) error {
	roles, err := orgRoles(ctx, q, orgID)
	if err != nil {
		return err
	}
	var links []struct {
		UserID string `db:"user_id"`
		RoleID string `db:"role_id"`
	}
	query, args := `SELECT ur.user_id, ur.role_id FROM user_roles ur JOIN users u ON u.id = ur.user_id WHERE u.org_id = ?`, []any{orgID}
	if len(users) == 1 {
		query, args = `SELECT user_id, role_id FROM user_roles WHERE user_id = ?`, []any{users[0].ID}
	}
	if err := sqlx.SelectContext(ctx, q, &links, q.Rebind(query), args...); err != nil {
		return fmt.Errorf("select user roles: %w", err)
	}
	byUser := map[string][]string{}
	for _, l := range links {
		byUser[l.UserID] = append(byUser[l.UserID], l.RoleID)
	}
	for i := range users {
		ids := byUser[users[i].ID]
		if ids == nil {
			ids = []string{}
		}
		sort.Strings(ids)
		users[i].RoleIDs = ids
		users[i].Role = legacyRole(roles, ids)
	}
	return nil
}

// setUserRoles gives a user roleIDs, replacing the roles it had (replace; a new user has none).
func setUserRoles(ctx context.Context, tx *Tx, userID string, roleIDs []string, replace bool) error {
	if replace {
		if _, err := tx.ExecContext(ctx, tx.Rebind(`DELETE FROM user_roles WHERE user_id = ?`), userID); err != nil {
			return fmt.Errorf("clear user roles: %w", err)
		}
	}
	for _, id := range roleIDs {
		if _, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO user_roles (user_id, role_id) VALUES (?, ?)`), userID, id); err != nil {
			return fmt.Errorf("insert user role: %w", err)
		}
	}
	return nil
}

func errEmailTaken(email string) error {
	return Errorf(ErrConflict, "user_email_taken",
		"A user with email %q already exists in this organization; emails are unique ignoring case.", email)
}

// ListUsers returns the users of orgID in order of creation.
func (s *Store) ListUsers(ctx context.Context, p *Principal, orgID string) ([]User, error) {
	if err := p.Require(UsersRead); err != nil {
		return nil, err
	}
	q, err := s.Reader(ctx)
	if err != nil {
		return nil, err
	}
	if err := authorizeUsers(ctx, q, p, orgID); err != nil {
		return nil, err
	}
	users := []User{}
	if err := sqlx.SelectContext(ctx, q, &users, q.Rebind(`SELECT `+userColumns+`
		FROM users WHERE org_id = ? ORDER BY created_at, id`), orgID); err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	if err := loadRoles(ctx, q, orgID, users); err != nil {
		return nil, err
	}
	return users, nil
}

// GetUser returns one user of orgID.
func (s *Store) GetUser(ctx context.Context, p *Principal, orgID, id string) (User, error) {
	if err := p.Require(UsersRead); err != nil {
		return User{}, err
	}
	q, err := s.Reader(ctx)
	if err != nil {
		return User{}, err
	}
	return FindUser(ctx, q, p, orgID, id)
}

// CreateUser adds a user to orgID. A duplicate email (ignoring case) is ErrConflict.
func (s *Store) CreateUser(ctx context.Context, p *Principal, orgID string, in UserInput) (User, error) {
	if err := p.Require(UsersWrite); err != nil {
		return User{}, err
	}
	var u User
	err := s.Write(ctx, func(tx *Tx) error {
		if err := authorizeUsers(ctx, tx, p, orgID); err != nil {
			return err
		}
		roles, err := orgRoles(ctx, tx, orgID)
		if err != nil {
			return err
		}
		if len(roles) == 0 {
			// Every organization has its built-in roles: this one was deleted meanwhile.
			return errOrganizationNotFound(orgID)
		}
		roleIDs, err := in.normalize(roles)
		if err != nil {
			return err
		}
		if missing := rolesPermissions(roles, roleIDs) &^ p.Permissions; missing != 0 {
			return Escalation("give a user these roles", missing)
		}
		now := Now()
		u = User{ID: NewID(), Email: in.Email, OrganizationID: orgID, RoleIDs: roleIDs,
			Role: legacyRole(roles, roleIDs), CreatedAt: now, UpdatedAt: now}
		return storeUser(ctx, tx, p, u, EventUserCreated, `INSERT INTO users (id, org_id, email, email_key, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?)`, u.ID, orgID, u.Email, strings.ToLower(u.Email), now, now)
	})
	return u, err
}

// storeUser runs the statement that writes u's row (an INSERT or an UPDATE), then sets its
// roles and records event: what creating and changing a user share.
func storeUser(ctx context.Context, tx *Tx, p *Principal, u User, event EventType, query string, args ...any) error {
	_, err := tx.ExecContext(ctx, tx.Rebind(query), args...)
	if IsUniqueViolation(err) {
		return errEmailTaken(u.Email)
	}
	if err != nil {
		return fmt.Errorf("store user: %w", err)
	}
	created := event == EventUserCreated
	if err := setUserRoles(ctx, tx, u.ID, u.RoleIDs, !created); err != nil {
		return err
	}
	tx.known.createdUser(u, created)
	return recordEvent(ctx, tx, p, u.OrganizationID, event, u)
}

// changeUser is the shape of a change to one user of orgID: check that p may write users,
// then, in one transaction, load the user and its organization's roles and change it (change,
// given the user to update in place). It returns the user as change left it.
func (s *Store) changeUser(ctx context.Context, p *Principal, orgID, id string, change func(tx *Tx, u *User, roles map[string]roleRow) error) (User, error) {
	if err := p.Require(UsersWrite); err != nil {
		return User{}, err
	}
	var u User
	err := s.Write(ctx, func(tx *Tx) (err error) {
		if u, err = FindUser(ctx, tx, p, orgID, id); err != nil {
			return err
		}
		roles, err := orgRoles(ctx, tx, orgID)
		if err != nil {
			return err
		}
		return change(tx, &u, roles)
	})
	return u, err
}

// UpdateUser replaces a user's email and roles.
func (s *Store) UpdateUser(ctx context.Context, p *Principal, orgID, id string, in UserInput) (User, error) {
	return s.changeUser(ctx, p, orgID, id, func(tx *Tx, u *User, roles map[string]roleRow) error {
		roleIDs, err := in.normalize(roles)
		if err != nil {
			return err
		}
		// Neither the roles given nor those taken away may exceed the caller's permissions.
		if missing := rolesPermissions(roles, append(roleIDs, u.RoleIDs...)) &^ p.Permissions; missing != 0 {
			return Escalation("change this user's roles", missing)
		}
		if u.Role == LegacyAdmin && legacyRole(roles, roleIDs) != LegacyAdmin && keepsLastAdmin(p) {
			if err := keepAnAdmin(ctx, tx, orgID, u.ID, roles); err != nil {
				return err
			}
		}
		u.Email, u.RoleIDs, u.Role, u.UpdatedAt = in.Email, roleIDs, legacyRole(roles, roleIDs), Now()
		return storeUser(ctx, tx, p, *u, EventUserUpdated, `UPDATE users SET email = ?, email_key = ?, updated_at = ? WHERE id = ? AND org_id = ?`,
			u.Email, strings.ToLower(u.Email), u.UpdatedAt, u.ID, orgID)
	})
}

// DeleteUser deletes a user and, with it, every key of that user, and returns the user as it was.
func (s *Store) DeleteUser(ctx context.Context, p *Principal, orgID, id string) (User, error) {
	return s.changeUser(ctx, p, orgID, id, func(tx *Tx, u *User, roles map[string]roleRow) error {
		if missing := rolesPermissions(roles, u.RoleIDs) &^ p.Permissions; missing != 0 {
			return Escalation("delete this user", missing)
		}
		if u.Role == LegacyAdmin && keepsLastAdmin(p) {
			if err := keepAnAdmin(ctx, tx, orgID, u.ID, roles); err != nil {
				return err
			}
		}
		// The user's keys and role links go with it (ON DELETE CASCADE).
		if err := recordCascadedRevocations(ctx, tx, p, "user_id", u.ID, "user deleted"); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, tx.Rebind(`DELETE FROM users WHERE id = ? AND org_id = ?`), u.ID, orgID); err != nil {
			return fmt.Errorf("delete user: %w", err)
		}
		tx.known.forgetUser(u.ID)
		return recordEvent(ctx, tx, p, orgID, EventUserDeleted, u)
	})
}

// keepsLastAdmin reports whether p is bound by the last-admin guard (keepAnAdmin). The guard
// keeps an organization from locking itself out, so it binds the organization's own
// credentials: user keys, organization keys and their tokens. A partner owns its organizations
// and can always create a new admin, so its key, or a token minted from it, may demote or
// delete any user, the last admin included (Polytomic's SDKs replace a root user that way). A
// partner token narrowed by scopes never gets this far with an admin: taking away or deleting
// the Admin role needs every permission (permission_escalation).
func keepsLastAdmin(p *Principal) bool { return !p.IsPartner() }

// keepAnAdmin refuses (409 last_admin) a change that would leave orgID without an admin, so
// nobody is locked out of managing it. It runs inside the change's write transaction.
func keepAnAdmin(ctx context.Context, tx *Tx, orgID, leaving string, roles map[string]roleRow) error {
	// Two admins demoting each other at once must not both see the other as remaining.
	if err := lockRow(ctx, tx, "organizations", orgID); err != nil {
		return err
	}
	var others int
	err := sqlx.GetContext(ctx, tx, &others, tx.Rebind(`SELECT COUNT(*) FROM user_roles WHERE role_id = ? AND user_id <> ?`),
		systemRoleID(roles, RoleAdmin), leaving)
	if err != nil {
		return fmt.Errorf("count admins: %w", err)
	}
	if others == 0 {
		return Errorf(ErrConflict, "last_admin",
			"This user is the organization's last admin; make another user an admin first.")
	}
	return nil
}
