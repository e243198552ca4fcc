package tenants

import (
	"context"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// The built-in roles every organization has. The legacy user role "admin" is RoleAdmin and
// "user" is RoleMember.
const (
	RoleAdmin  = "Admin"
	RoleMember = "Member"
)

// Legacy role names, as Polytomic's API spells them.
const (
	LegacyAdmin = "admin"
	LegacyUser  = "user"
)

func insertSystemRoles(ctx context.Context, tx *sqlx.Tx, orgID string, now time.Time) error {
	for _, name := range []string{RoleAdmin, RoleMember} {
		_, err := tx.ExecContext(ctx, tx.Rebind(
			`INSERT INTO roles (id, org_id, name, system, created_at) VALUES (?, ?, ?, ?, ?)`),
			NewID(), orgID, name, true, now)
		if err != nil {
			return fmt.Errorf("insert role %s: %w", name, err)
		}
	}
	return nil
}

type orgRole struct {
	ID     string `db:"id"`
	Name   string `db:"name"`
	System bool   `db:"system"`
}

// orgRoles returns an organization's roles by id.
func orgRoles(ctx context.Context, q sqlx.ExtContext, orgID string) (map[string]orgRole, error) {
	var rows []orgRole
	if err := sqlx.SelectContext(ctx, q, &rows, q.Rebind(`SELECT id, name, system FROM roles WHERE org_id = ?`), orgID); err != nil {
		return nil, fmt.Errorf("select roles: %w", err)
	}
	byID := make(map[string]orgRole, len(rows))
	for _, r := range rows {
		byID[r.ID] = r
	}
	return byID, nil
}

// systemRoleID finds a built-in role's id among roles.
func systemRoleID(roles map[string]orgRole, name string) string {
	for id, r := range roles {
		if r.System && r.Name == name {
			return id
		}
	}
	return ""
}

// legacyRole is the Polytomic role a set of role ids amounts to: admin when it holds Admin.
func legacyRole(roles map[string]orgRole, ids []string) string {
	for _, id := range ids {
		if r := roles[id]; r.System && r.Name == RoleAdmin {
			return LegacyAdmin
		}
	}
	return LegacyUser
}
