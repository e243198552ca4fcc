package tenants

import (
	"math/bits"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// Action is one thing a credential may do in an organization, named resource:verb.
type Action string

// The action catalogue. Roles and key scopes are sets of these; nothing else is accepted.
const (
	UsersRead        Action = "users:read"
	UsersWrite       Action = "users:write"
	KeysRead         Action = "keys:read"
	KeysWrite        Action = "keys:write"
	RolesRead        Action = "roles:read"
	RolesWrite       Action = "roles:write"
	PoliciesRead     Action = "policies:read"
	PoliciesWrite    Action = "policies:write"
	ConnectionsRead  Action = "connections:read"
	ConnectionsWrite Action = "connections:write"
	DatasetsRead     Action = "datasets:read"
	DatasetsWrite    Action = "datasets:write"
	EventsRead       Action = "events:read"
	WebhooksRead     Action = "webhooks:read"
	WebhooksWrite    Action = "webhooks:write"
)

// Catalogue lists every action with what it allows, in a stable order.
var Catalogue = []struct {
	Action      Action
	Description string
}{
	{UsersRead, "list and read the organization's users"},
	{UsersWrite, "create, change and delete users"},
	{KeysRead, "list every key of the organization (without it: only one's own)"},
	{KeysWrite, "issue keys for other users and organization keys; revoke and rotate any key of the organization"},
	{RolesRead, "list and read roles"},
	{RolesWrite, "create, change and delete custom roles"},
	{PoliciesRead, "list and read policies (resource-level permissions)"},
	{PoliciesWrite, "create, change and delete policies, and change which policies a connection or dataset has"},
	{ConnectionsRead, "list and read connections (secret configuration is never returned)"},
	{ConnectionsWrite, "create, change and delete connections"},
	{DatasetsRead, "list and read datasets"},
	{DatasetsWrite, "create, change and delete datasets"},
	{EventsRead, "read the organization's audit events"},
	{WebhooksRead, "list and read webhooks"},
	{WebhooksWrite, "create, change and delete webhooks"},
}

// Permissions is a set of actions, one bit per catalogue entry: unions and intersections of
// roles, scopes and parent credentials are single instructions on the authentication path.
type Permissions uint32

var bitOf = func() map[Action]Permissions {
	m := make(map[Action]Permissions, len(Catalogue))
	for i, c := range Catalogue {
		m[c.Action] = 1 << i
	}
	return m
}()

// The built-in permission sets.
var (
	AllPermissions = func() (p Permissions) {
		for _, b := range bitOf {
			p |= b
		}
		return p
	}()
	// MemberPermissions reads everything and writes connections and datasets.
	MemberPermissions = PermissionsOf(UsersRead, KeysRead, RolesRead, PoliciesRead, ConnectionsRead, ConnectionsWrite,
		DatasetsRead, DatasetsWrite, EventsRead, WebhooksRead)
	// AskerPermissions is what an asker organization key may do: read connections and datasets.
	AskerPermissions = PermissionsOf(ConnectionsRead, DatasetsRead)
)

// PermissionsOf returns the set holding actions; unknown actions are ignored (validate first).
func PermissionsOf(actions ...Action) Permissions {
	var p Permissions
	for _, a := range actions {
		p |= bitOf[a]
	}
	return p
}

// Has reports whether p allows a.
func (p Permissions) Has(a Action) bool { b, ok := bitOf[a]; return ok && p&b == b }

// Covers reports whether p allows everything q allows.
func (p Permissions) Covers(q Permissions) bool { return p&q == q }

// Actions lists p's actions in catalogue order (never nil, so it encodes as []).
func (p Permissions) Actions() []Action {
	out := make([]Action, 0, bits.OnesCount32(uint32(p)))
	for i, c := range Catalogue {
		if p&(1<<i) != 0 {
			out = append(out, c.Action)
		}
	}
	return out
}

// list names p's actions for a message: "datasets:read, users:read".
func (p Permissions) list() string { return strings.ReplaceAll(p.String(), " ", ", ") }

// String is the stored form: actions separated by spaces, in catalogue order.
func (p Permissions) String() string {
	if s, ok := permissionStrings.Load(p); ok {
		return s.(string)
	}
	acts := p.Actions()
	s := make([]string, len(acts))
	for i, a := range acts {
		s[i] = string(a)
	}
	joined := strings.Join(s, " ")
	if permissionStringsHeld.Load() < maxPermissionStrings {
		if _, held := permissionStrings.LoadOrStore(p, joined); !held {
			permissionStringsHeld.Add(1) // entries, not misses (racing requests may pass the bound by a few)
		}
	}
	return joined
}

// The gateway check sends a credential's permissions in a header on every request, and the
// sets in use are few (roles', scopes'): each is written once and then looked up. Bounded, as a
// partner could mint tokens with many different scopes.
var (
	permissionStrings     sync.Map // Permissions -> string
	permissionStringsHeld atomic.Int64
)

const maxPermissionStrings = 4096

// ParsePermissions reads the stored form; unknown words (from a newer binary) are dropped, so
// an old replica never grants more than it understands.
func ParsePermissions(s string) Permissions {
	var p Permissions
	for _, w := range strings.Fields(s) {
		p |= bitOf[Action(w)]
	}
	return p
}

// CheckActions validates a list of actions from a request: each must be in the catalogue.
// It returns the set and a message for the first unknown action.
func CheckActions(list []string) (Permissions, string) {
	var p Permissions
	for _, a := range list {
		b, ok := bitOf[Action(a)]
		if !ok {
			known := make([]string, 0, len(Catalogue))
			for _, c := range Catalogue {
				known = append(known, string(c.Action))
			}
			sort.Strings(known)
			return 0, "unknown action " + quote(a) + "; the actions are " + strings.Join(known, ", ")
		}
		p |= b
	}
	return p, ""
}

// CheckActionList validates actions written in one string, as a query parameter or a header
// carries them: separated by commas, spaces or both ("datasets:read,connections:read").
func CheckActionList(s string) (Permissions, string) {
	return CheckActions(strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }))
}

func quote(s string) string { return `"` + s + `"` }
