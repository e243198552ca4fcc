package tenants

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
)

// Policy is a resource-level permission, in the shape of Polytomic's: for each of its actions
// (actions on resources: connections:read, datasets:write...), the roles it grants that action
// to. Connections and datasets list the policies that govern them; the rule of what they
// govern is reachOf's, below, and nowhere else.
type Policy struct {
	ID             string         `json:"id"`
	Name           string         `json:"name"`
	OrganizationID string         `json:"organization_id"`
	PolicyActions  []PolicyAction `json:"policy_actions"`
	System         bool           `json:"system"` // Polytomic's field; Tenantry has no built-in policies
	CreatedAt      time.Time      `json:"created_at"`
	UpdatedAt      time.Time      `json:"updated_at"`
}

// PolicyAction is one action of a policy and the roles it grants it to.
type PolicyAction struct {
	Action  Action   `json:"action"`
	RoleIDs []string `json:"role_ids"`
}

// PolicyInput is the body of a create or a full-replacement update. PolicyActions nil is none.
type PolicyInput struct {
	Name          string
	PolicyActions []PolicyActionInput
}

// PolicyActionInput is one action of a PolicyInput; RoleIDs nil is none.
type PolicyActionInput struct {
	Action  string
	RoleIDs []string
}

// ResourceActions are the actions a policy may list: those on connections and datasets.
var ResourceActions = PermissionsOf(ConnectionsRead, ConnectionsWrite, DatasetsRead, DatasetsWrite)

type policyRow struct {
	ID        string    `db:"id"`
	OrgID     string    `db:"org_id"`
	Name      string    `db:"name"`
	CreatedAt time.Time `db:"created_at"`
	UpdatedAt time.Time `db:"updated_at"`
}

const policyColumns = `id, org_id, name, created_at, updated_at`

func (r policyRow) policy(actions []PolicyAction) Policy {
	if actions == nil {
		actions = []PolicyAction{}
	}
	return Policy{ID: r.ID, Name: r.Name, OrganizationID: r.OrgID, PolicyActions: actions,
		CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC()}
}

// permissions is the set of a policy's actions.
func (p Policy) permissions() Permissions {
	var out Permissions
	for _, a := range p.PolicyActions {
		out |= PermissionsOf(a.Action)
	}
	return out
}

func errPolicyNotFound(id string) error {
	return Errorf(ErrNotFound, "policy_not_found", "No policy with id %q exists in this organization.", id)
}

func errPolicyNameTaken(name string) error {
	return Errorf(ErrConflict, "policy_name_taken",
		"A policy named %q already exists in this organization; names are unique ignoring case.", name)
}

// resourceActionNames lists ResourceActions, for messages.
func resourceActionNames() string {
	acts := ResourceActions.Actions()
	names := make([]string, len(acts))
	for i, a := range acts {
		names[i] = string(a)
	}
	return strings.Join(names, ", ")
}

// normalize validates in against the organization's roles: the name, each action (a resource
// action, listed once) and each role id (a role of the organization; repeats are ignored). It
// returns the policy's actions in catalogue order, each with its role ids sorted.
func (in *PolicyInput) normalize(roles map[string]roleRow) ([]PolicyAction, error) {
	in.Name = strings.TrimSpace(in.Name)
	var errs FieldErrors
	errs.Add("name", checkName(in.Name, 255))
	var seen Permissions
	out := []PolicyAction{}
	for i, a := range in.PolicyActions {
		field := fmt.Sprintf("policy_actions[%d]", i)
		bit := PermissionsOf(Action(a.Action))
		switch {
		case a.Action == "":
			errs.Add(field+".action", "is required: one of "+resourceActionNames())
		case bit == 0 || bit&ResourceActions == 0:
			errs.Add(field+".action", fmt.Sprintf("%q is not an action on resources; a policy's actions are %s", a.Action, resourceActionNames()))
		case seen&bit != 0:
			errs.Add(field+".action", fmt.Sprintf("%q is listed twice; list each action once, with every role it grants", a.Action))
		}
		seen |= bit
		ids := []string{}
		for _, id := range a.RoleIDs {
			if _, ok := roles[id]; !ok {
				errs.Add(field+".role_ids", fmt.Sprintf("no role with id %q exists in this organization", id))
			} else if !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
		sort.Strings(ids)
		out = append(out, PolicyAction{Action: Action(a.Action), RoleIDs: ids})
	}
	if err := errs.Err(); err != nil {
		return nil, err
	}
	sortPolicyActions(out)
	return out, nil
}

// sortPolicyActions puts actions in catalogue order.
func sortPolicyActions(actions []PolicyAction) {
	sort.Slice(actions, func(i, j int) bool {
		return PermissionsOf(actions[i].Action) < PermissionsOf(actions[j].Action)
	})
}

// loadPolicies returns the policies of orgID (only the one with id policyID, when it is not
// ""), with their actions, in order of creation.
func loadPolicies(ctx context.Context, q sqlx.ExtContext, orgID, policyID string) ([]Policy, error) {
	where, args := `org_id = ?`, []any{orgID}
	if policyID != "" {
		where, args = where+` AND id = ?`, append(args, policyID)
	}
	var rows []policyRow
	if err := sqlx.SelectContext(ctx, q, &rows, q.Rebind(`SELECT `+policyColumns+` FROM policies WHERE `+where+
		` ORDER BY created_at, id`), args...); err != nil {
		return nil, fmt.Errorf("select policies: %w", err)
	}
	var grants []struct {
		PolicyID string  `db:"policy_id"`
		Action   Action  `db:"action"`
		RoleID   *string `db:"role_id"`
	}
	if err := sqlx.SelectContext(ctx, q, &grants, q.Rebind(`SELECT a.policy_id, a.action, g.role_id
		FROM policy_actions a JOIN policies p ON p.id = a.policy_id
		LEFT JOIN policy_grants g ON g.policy_id = a.policy_id AND g.action = a.action
		WHERE p.`+where+` ORDER BY a.policy_id, a.action, g.role_id`), args...); err != nil {
		return nil, fmt.Errorf("select policy grants: %w", err)
	}
	byPolicy := map[string][]PolicyAction{}
	for _, g := range grants {
		acts := byPolicy[g.PolicyID]
		if n := len(acts); n == 0 || acts[n-1].Action != g.Action {
			acts = append(acts, PolicyAction{Action: g.Action, RoleIDs: []string{}})
		}
		if g.RoleID != nil {
			acts[len(acts)-1].RoleIDs = append(acts[len(acts)-1].RoleIDs, *g.RoleID)
		}
		byPolicy[g.PolicyID] = acts
	}
	out := make([]Policy, len(rows))
	for i, r := range rows {
		acts := byPolicy[r.ID]
		sortPolicyActions(acts)
		out[i] = r.policy(acts)
	}
	return out, nil
}

// findPolicy loads one policy of orgID.
func findPolicy(ctx context.Context, q sqlx.ExtContext, orgID, id string) (Policy, error) {
	if !validID(id) {
		return Policy{}, errPolicyNotFound(id)
	}
	found, err := loadPolicies(ctx, q, orgID, id)
	if err != nil {
		return Policy{}, err
	}
	if len(found) == 0 {
		return Policy{}, errPolicyNotFound(id)
	}
	return found[0], nil
}

// writePolicyActions stores a policy's actions and grants, replacing any it had.
func writePolicyActions(ctx context.Context, tx *Tx, policyID string, actions []PolicyAction) error {
	// Its grants go with its actions (ON DELETE CASCADE).
	if _, err := tx.ExecContext(ctx, tx.Rebind(`DELETE FROM policy_actions WHERE policy_id = ?`), policyID); err != nil {
		return fmt.Errorf("clear policy actions: %w", err)
	}
	for _, a := range actions {
		if _, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO policy_actions (policy_id, action) VALUES (?, ?)`), policyID, a.Action); err != nil {
			return fmt.Errorf("insert policy action: %w", err)
		}
		for _, role := range a.RoleIDs {
			if _, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO policy_grants (policy_id, action, role_id) VALUES (?, ?, ?)`),
				policyID, a.Action, role); err != nil {
				return fmt.Errorf("insert policy grant: %w", err)
			}
		}
	}
	return nil
}

// ListPolicies returns the caller's organization's policies in order of creation.
func (s *Store) ListPolicies(ctx context.Context, p *Principal) ([]Policy, error) {
	if err := p.Require(PoliciesRead); err != nil {
		return nil, err
	}
	q, err := s.Reader(ctx)
	if err != nil {
		return nil, err
	}
	return loadPolicies(ctx, q, p.OrgID, "")
}

// GetPolicy returns one policy of the caller's organization.
func (s *Store) GetPolicy(ctx context.Context, p *Principal, id string) (Policy, error) {
	if err := p.Require(PoliciesRead); err != nil {
		return Policy{}, err
	}
	q, err := s.Reader(ctx)
	if err != nil {
		return Policy{}, err
	}
	return findPolicy(ctx, q, p.OrgID, id)
}

// CreatePolicy adds a policy to the caller's organization. It may not name an action the
// caller lacks (403 permission_escalation), as a role may not.
func (s *Store) CreatePolicy(ctx context.Context, p *Principal, in PolicyInput) (Policy, error) {
	if err := p.Require(PoliciesWrite); err != nil {
		return Policy{}, err
	}
	var out Policy
	err := s.Write(ctx, func(tx *Tx) error {
		roles, err := orgRoles(ctx, tx, p.OrgID)
		if err != nil {
			return err
		}
		actions, err := in.normalize(roles)
		if err != nil {
			return err
		}
		now := Now()
		r := policyRow{ID: NewID(), OrgID: p.OrgID, Name: in.Name, CreatedAt: now, UpdatedAt: now}
		out = r.policy(actions)
		if missing := out.permissions() &^ p.Permissions; missing != 0 {
			return Escalation("create a policy with these actions", missing)
		}
		_, err = tx.ExecContext(ctx, tx.Rebind(`INSERT INTO policies (id, org_id, name, name_key, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?)`), r.ID, r.OrgID, r.Name, strings.ToLower(r.Name), now, now)
		if IsUniqueViolation(err) {
			return errPolicyNameTaken(r.Name)
		}
		if err != nil {
			return fmt.Errorf("insert policy: %w", err)
		}
		if err := writePolicyActions(ctx, tx, r.ID, actions); err != nil {
			return err
		}
		return recordEvent(ctx, tx, p, r.OrgID, EventPolicyCreated, out)
	})
	return out, err
}

// UpdatePolicy replaces a policy's name and actions in full; what it grants changes for the
// next request to every resource it governs. Neither the actions it grants nor those taken
// away may exceed the caller's (403 permission_escalation).
func (s *Store) UpdatePolicy(ctx context.Context, p *Principal, id string, in PolicyInput) (Policy, error) {
	return changeRow(ctx, s, p.Require(PoliciesWrite), p.OrgID, id, findPolicy, func(tx *Tx, pol *Policy) error {
		roles, err := orgRoles(ctx, tx, pol.OrganizationID)
		if err != nil {
			return err
		}
		actions, err := in.normalize(roles)
		if err != nil {
			return err
		}
		before := pol.permissions()
		pol.Name, pol.PolicyActions, pol.UpdatedAt = in.Name, actions, Now()
		if missing := (before | pol.permissions()) &^ p.Permissions; missing != 0 {
			return Escalation("change this policy", missing)
		}
		_, err = tx.ExecContext(ctx, tx.Rebind(`UPDATE policies SET name = ?, name_key = ?, updated_at = ? WHERE id = ? AND org_id = ?`),
			pol.Name, strings.ToLower(pol.Name), pol.UpdatedAt, pol.ID, pol.OrganizationID)
		if IsUniqueViolation(err) {
			return errPolicyNameTaken(pol.Name)
		}
		if err != nil {
			return fmt.Errorf("update policy: %w", err)
		}
		if err := writePolicyActions(ctx, tx, pol.ID, actions); err != nil {
			return err
		}
		return recordEvent(ctx, tx, p, pol.OrganizationID, EventPolicyUpdated, pol)
	})
}

// DeletePolicy deletes a policy no connection or dataset has (409 policy_in_use otherwise:
// deleting it would open them to every caller with the action) and returns it as it was.
func (s *Store) DeletePolicy(ctx context.Context, p *Principal, id string) (Policy, error) {
	return changeRow(ctx, s, p.Require(PoliciesWrite), p.OrgID, id, findPolicy, func(tx *Tx, pol *Policy) error {
		if missing := pol.permissions() &^ p.Permissions; missing != 0 {
			return Escalation("delete this policy", missing)
		}
		var conns, datasets []string
		for _, k := range []struct {
			kind resourceKind
			ids  *[]string
		}{{connectionPolicies, &conns}, {datasetPolicies, &datasets}} {
			if err := sqlx.SelectContext(ctx, tx, k.ids, tx.Rebind(`SELECT `+k.kind.column+` FROM `+k.kind.links+
				` WHERE policy_id = ? ORDER BY `+k.kind.column), pol.ID); err != nil {
				return fmt.Errorf("select resources of policy: %w", err)
			}
		}
		inUse := Errorf(ErrConflict, "policy_in_use",
			"Policy %q still governs %d connection(s) and %d dataset(s); take it out of their policies first (PUT them with the policies they keep), so that deleting it never opens them to everyone.",
			pol.Name, len(conns), len(datasets))
		if len(conns)+len(datasets) > 0 {
			inUse.Metadata = map[string]any{"connection_ids": nonNil(conns), "dataset_ids": nonNil(datasets)}
			return inUse
		}
		// The foreign keys from connection_policies and dataset_policies (ON DELETE RESTRICT)
		// are what guarantee it: one attached meanwhile fails the statement.
		_, err := tx.ExecContext(ctx, tx.Rebind(`DELETE FROM policies WHERE id = ? AND org_id = ?`), pol.ID, pol.OrganizationID)
		if IsForeignKeyViolation(err) {
			return inUse
		}
		if err != nil {
			return fmt.Errorf("delete policy: %w", err)
		}
		return recordEvent(ctx, tx, p, pol.OrganizationID, EventPolicyDeleted, pol)
	})
}

func nonNil(ids []string) []string {
	if ids == nil {
		return []string{}
	}
	return ids
}

// policiesGranting lists the names of the policies that grant roleID an action.
func policiesGranting(ctx context.Context, q sqlx.ExtContext, roleID string) ([]string, error) {
	var names []string
	err := sqlx.SelectContext(ctx, q, &names, q.Rebind(`SELECT DISTINCT p.name FROM policies p
		JOIN policy_grants g ON g.policy_id = p.id WHERE g.role_id = ? ORDER BY p.name`), roleID)
	if err != nil {
		return nil, fmt.Errorf("select policies of role: %w", err)
	}
	return names, nil
}

// resourceKind is one kind of resource policies govern, as the queries of reach name it.
type resourceKind struct {
	table  string // the resource's table, with its alias in queries
	id     string // the column of its id, by that alias
	links  string // the table linking resources to their policies
	column string // its column naming the resource
	read   Action // the action that reads the resource
	write  Action // the action that changes or deletes it
	noun   string
}

var (
	connectionPolicies = resourceKind{"connections c", "c.id", "connection_policies", "connection_id", ConnectionsRead, ConnectionsWrite, "connection"}
	datasetPolicies    = resourceKind{"datasets", "datasets.id", "dataset_policies", "dataset_id", DatasetsRead, DatasetsWrite, "dataset"}
)

// reachOf is the rule of resource-level permissions: which resources with policies p reaches.
//
// A resource without policies is reached as before policies existed, by the caller's
// permissions alone. One with policies is reached, on top of those, only by
//   - an admin: a user holding the built-in Admin role, or an admin organization key, and
//     their tokens (all true);
//   - a user one of whose roles one of the resource's policies grants the action (read for
//     reads and lists; write for changes and deletion), and that user's tokens (user).
//
// Nobody else: asker keys and asker tokens (whatever key minted them) and partner credentials
// reach only resources without policies. A policy never widens what a caller may do: the
// action must still be in the caller's permissions (its roles ∩ its key's and token's
// scopes), which every operation requires first. Policies and the user's roles are read with
// the resource, at every request, so a change to them applies at once, and nothing of them is
// kept in a cached principal.
func reachOf(p *Principal) (all bool, user string) {
	switch {
	case p.IsAsker() || p.IsPartner():
		return false, ""
	case p.LegacyRole == LegacyAdmin || p.OrgRole == OrgRoleAdmin:
		return true, ""
	}
	return false, p.UserID
}

// reachable is an SQL condition, with its arguments, that holds for the resources of kind k
// that p reaches (see reachOf) for one of actions.
func (k resourceKind) reachable(p *Principal, actions ...Action) (string, []any) {
	all, user := reachOf(p)
	if all {
		return `1 = 1`, nil
	}
	unrestricted := `NOT EXISTS (SELECT 1 FROM ` + k.links + ` rp WHERE rp.` + k.column + ` = ` + k.id + `)`
	if user == "" {
		return unrestricted, nil
	}
	args := []any{}
	for _, a := range actions {
		args = append(args, string(a))
	}
	granted := `EXISTS (SELECT 1 FROM ` + k.links + ` rp JOIN policy_grants g ON g.policy_id = rp.policy_id
		JOIN user_roles ur ON ur.role_id = g.role_id
		WHERE rp.` + k.column + ` = ` + k.id + ` AND g.action IN (?` + strings.Repeat(", ?", len(actions)-1) + `) AND ur.user_id = ?)`
	return `(` + unrestricted + ` OR ` + granted + `)`, append(args, user)
}

// reaching is the condition of reachable for reading a resource (write false) or for
// changing it: a resource p may change is one it sees.
func (k resourceKind) reaching(p *Principal, write bool) (string, []any) {
	if write {
		return k.reachable(p, k.read, k.write)
	}
	return k.reachable(p, k.read)
}

// mayChange refuses p (403 permission_denied) a change to the resource of kind k with id,
// one p has found by reaching (so one it sees), unless p reaches it for writing.
func (k resourceKind) mayChange(ctx context.Context, q sqlx.ExtContext, p *Principal, id string) error {
	if all, _ := reachOf(p); all {
		return nil
	}
	cond, args := k.reachable(p, k.write)
	var n int
	if err := sqlx.GetContext(ctx, q, &n, q.Rebind(`SELECT COUNT(*) FROM `+k.table+` WHERE `+k.id+` = ? AND `+cond),
		append([]any{id}, args...)...); err != nil {
		return fmt.Errorf("check the policies of %s %s: %w", k.noun, id, err)
	}
	if n == 0 {
		return Errorf(ErrForbidden, "permission_denied",
			"No policy of %s %q grants %s to one of your roles; an admin can change its policies.", k.noun, id, k.write)
	}
	return nil
}

// reach loads the resource of kind k with id that p reaches, for reading (write false) or for
// a change: load runs the resource's query with the condition and arguments of reaching
// added. A resource p does not reach is ErrNotFound, exactly as one that does not exist; one
// p sees but may not change is ErrForbidden.
func reach[T any](ctx context.Context, q sqlx.ExtContext, p *Principal, k resourceKind, id string, write bool,
	load func(cond string, args []any) (T, error)) (T, error) {
	row, err := load(k.reaching(p, write))
	if err == nil && write {
		err = k.mayChange(ctx, q, p, id)
	}
	return row, err
}

// policiesOf returns the policies of the resources of kind k with ids, by resource id (sorted).
func (k resourceKind) policiesOf(ctx context.Context, q sqlx.ExtContext, ids ...string) (map[string][]string, error) {
	out := make(map[string][]string, len(ids))
	for _, id := range ids {
		out[id] = []string{}
	}
	if len(ids) == 0 {
		return out, nil
	}
	query, args, err := sqlx.In(`SELECT `+k.column+` AS resource_id, policy_id FROM `+k.links+` WHERE `+k.column+` IN (?)
		ORDER BY policy_id`, ids)
	if err != nil {
		return nil, fmt.Errorf("select policies of resources: %w", err)
	}
	var links []struct {
		ResourceID string `db:"resource_id"`
		PolicyID   string `db:"policy_id"`
	}
	if err := sqlx.SelectContext(ctx, q, &links, q.Rebind(query), args...); err != nil {
		return nil, fmt.Errorf("select policies of resources: %w", err)
	}
	for _, l := range links {
		out[l.ResourceID] = append(out[l.ResourceID], l.PolicyID)
	}
	return out, nil
}

// withPolicies fills in the policies of rows, resources of kind k, with one query; field
// gives a row's id and where its policies go.
func withPolicies[T any](ctx context.Context, q sqlx.ExtContext, k resourceKind, rows []T, field func(*T) (string, *[]string)) error {
	ids := make([]string, len(rows))
	for i := range rows {
		ids[i], _ = field(&rows[i])
	}
	policies, err := k.policiesOf(ctx, q, ids...)
	if err != nil {
		return err
	}
	for i := range rows {
		id, dst := field(&rows[i])
		*dst = policies[id]
	}
	return nil
}

// checkPolicies validates the policies asked for a resource of p's organization (given: nil
// means none asked, so prev is kept): each a policy of the organization (400 otherwise,
// naming it), repeats ignored. Changing which policies a resource has (from prev: nil for a
// new resource) needs policies:write. It returns the policies to store, sorted.
func checkPolicies(ctx context.Context, q sqlx.ExtContext, p *Principal, given *[]string, prev []string) ([]string, error) {
	if given == nil {
		return nonNil(prev), nil
	}
	ids := []string{}
	for _, id := range *given {
		id = strings.TrimSpace(id)
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	if slices.Equal(ids, nonNil(prev)) {
		return ids, nil
	}
	if err := p.Require(PoliciesWrite); err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return ids, nil
	}
	var found []string
	if valid := slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return !validID(id) }); len(valid) > 0 {
		query, args, err := sqlx.In(`SELECT id FROM policies WHERE org_id = ? AND id IN (?)`, p.OrgID, valid)
		if err != nil {
			return nil, fmt.Errorf("select policies: %w", err)
		}
		if err := sqlx.SelectContext(ctx, q, &found, q.Rebind(query), args...); err != nil {
			return nil, fmt.Errorf("select policies: %w", err)
		}
	}
	for _, id := range ids {
		if !slices.Contains(found, id) {
			return nil, FieldError("policies", fmt.Sprintf("no policy with id %q exists in this organization", id))
		}
	}
	return ids, nil
}

// setPolicies stores the policies of a resource of kind k, replacing those it had.
func (k resourceKind) setPolicies(ctx context.Context, tx *Tx, id string, policies []string) error {
	if _, err := tx.ExecContext(ctx, tx.Rebind(`DELETE FROM `+k.links+` WHERE `+k.column+` = ?`), id); err != nil {
		return fmt.Errorf("clear policies of %s: %w", k.noun, err)
	}
	for _, pol := range policies {
		_, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO `+k.links+` (`+k.column+`, policy_id) VALUES (?, ?)`), id, pol)
		if IsForeignKeyViolation(err) {
			// Deleted after checkPolicies found it.
			return FieldError("policies", fmt.Sprintf("no policy with id %q exists in this organization", pol))
		}
		if err != nil {
			return fmt.Errorf("insert policy of %s: %w", k.noun, err)
		}
	}
	return nil
}
