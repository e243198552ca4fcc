package tenants

import (
	"net/url"

	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/text/unicode/norm"

	"github.com/jmoiron/sqlx"
)

// Connection is a configured source or destination of one organization. Configuration never
// holds a secret field: those are stored, stripped from every Connection built for a caller,
// and named in SecretFields instead. A share (ParentID set) is a connection of the partner's
// owner organization made visible in a child organization: read-only there, with the parent's
// type and configuration. Policies lists the policies that govern who reaches it (see
// reachable); a share has none.
type Connection struct {
	ID             string         `json:"id"`
	Name           string         `json:"name"`
	Type           string         `json:"type"`
	Configuration  map[string]any `json:"configuration"`
	SecretFields   []string       `json:"secret_fields"`
	OrganizationID string         `json:"organization_id"`
	ParentID       *string        `json:"parent_id"`
	// ParentConnectionID is ParentID under Polytomic's name, which its clients read.
	ParentConnectionID *string   `json:"parent_connection_id"`
	Policies           []string  `json:"policies"`
	CreatedAt          time.Time `json:"created_at"`
	UpdatedAt          time.Time `json:"updated_at"`
}

// ConnectionInput is the body of a create or a full-replacement update. Configuration is a
// JSON object; nil or null means {}. On update, a secret field the new configuration leaves
// out keeps its stored value (callers never see secrets, so they cannot send them back); a
// secret field given as null is removed. Policies nil keeps the connection's policies (none
// on a create); an empty list removes them. Type blank on update keeps the connection's type
// (Polytomic's clients leave it out).
type ConnectionInput struct {
	Name          string
	Type          string
	Configuration json.RawMessage
	Policies      *[]string
}

// ShareInput is the body of a share: the child organization to share into and the share's
// name there (nil: the parent's name).
type ShareInput struct {
	ChildOrganizationID string
	Name                *string
}

// Limits on a connection's configuration.
const (
	MaxConfigurationBytes = 64 << 10 // encoded as JSON
	MaxConfigurationDepth = 32       // levels of nested objects and arrays
)

// secretWords mark a configuration key as secret when its name, NFKC-normalised, lower-cased
// and without separators (_ - . and spaces), contains one of them, or ends in "key":
// "password", "sshPrivateKey", "api-key", "Authorization", "aws_access_key_id" and
// "encryption_key" all are. False positives are stripped too, which is the safe mistake.
var secretWords = []string{"password", "passwd", "pwd", "pass", "secret", "token", "auth", "cookie", "jwt",
	"credential", "dsn", "connectionstring", "privatekey", "apikey", "accesskey", "keyfile", "serviceaccount",
	"sessionid"}

var keySeparators = strings.NewReplacer("_", "", "-", "", ".", "", " ", "")

// fieldName is a configuration key as the secret rules compare it: NFKC-normalised,
// lower-cased, without separators.
func fieldName(key string) string {
	return keySeparators.Replace(strings.ToLower(norm.NFKC.String(key)))
}

// IsSecretField reports whether a configuration key names a secret.
func IsSecretField(key string) bool {
	k := fieldName(key)
	if strings.HasSuffix(k, "key") {
		return true
	}
	for _, w := range secretWords {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
}

// isSecretValue reports values that are secrets whatever their key: a URL or DSN carrying a
// password, or a PEM private key.
func isSecretValue(v any) bool {
	s, ok := v.(string)
	if !ok {
		return false
	}
	if u, err := url.Parse(s); err == nil && u.User != nil {
		if _, has := u.User.Password(); has {
			return true
		}
	}
	l := strings.ToLower(s)
	return strings.Contains(l, "password=") || strings.Contains(l, "pwd=") ||
		(strings.Contains(s, "-----BEGIN") && strings.Contains(s, "PRIVATE KEY"))
}

// isSecret decides for one field of an object: its name, its value, or (for name/value pairs
// such as HTTP headers: {"name": "Authorization", "value": "..."}) the name it pairs with.
func isSecret(obj map[string]any, key string, value any) bool {
	if IsSecretField(key) || isSecretValue(value) {
		return true
	}
	if fieldName(key) == "value" {
		for label, v := range obj {
			switch fieldName(label) {
			case "name", "key", "header":
				if n, ok := v.(string); ok && IsSecretField(n) {
					return true
				}
			}
		}
	}
	return false
}

// connectionRow is a connection as stored; for a share, Type, Config and Secrets are the
// parent's. Config holds no secret field: those are in Secrets, sealed when the server has a
// secret key ("" when there are none; NULL for a row stored before secrets were kept apart).
type connectionRow struct {
	ID              string         `db:"id"`
	OrgID           string         `db:"org_id"`
	ParentID        sql.NullString `db:"parent_id"`
	Name            string         `db:"name"`
	Type            string         `db:"type"`
	Config          string         `db:"configuration"`
	Secrets         sql.NullString `db:"secrets"`
	CreatedAt       time.Time      `db:"created_at"`
	UpdatedAt       time.Time      `db:"updated_at"`
	ParentUpdatedAt sql.NullTime   `db:"parent_updated_at"`
	Policies        []string       `db:"-"`
}

// connectionSelect reads connections with a share's type and configuration from its parent.
const connectionSelect = `SELECT c.id, c.org_id, c.parent_id, c.name,
	COALESCE(p.type, c.type) AS type, COALESCE(p.configuration, c.configuration) AS configuration,
	CASE WHEN c.parent_id IS NULL THEN c.secrets ELSE p.secrets END AS secrets,
	c.created_at, c.updated_at, p.updated_at AS parent_updated_at
	FROM connections c LEFT JOIN connections p ON p.id = c.parent_id`

// A secretField is one secret of a configuration: where it sits (object keys as strings,
// array indexes as numbers) and its value.
type secretField struct {
	Path  []any `json:"path"`
	Value any   `json:"value"`
}

// name is the path as secret_fields shows it: "password", "ssh.private_key", "hosts[0].token".
func (f secretField) name() string {
	var b strings.Builder
	for _, step := range f.Path {
		if k, ok := step.(string); ok {
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(k)
		} else {
			fmt.Fprintf(&b, "[%v]", step)
		}
	}
	return b.String()
}

// split reads a stored row: its configuration and its secrets. The configuration is split by
// the rules of secret fields too, in case it holds one: a row stored before secrets were kept
// apart (or written meanwhile by such a release) does, and what is found there is newer than
// the secrets kept apart.
func (r connectionRow) split(sealer *Sealer) (map[string]any, []secretField, error) {
	cfg, err := decodeConfiguration([]byte(r.Config))
	if err != nil {
		return nil, nil, fmt.Errorf("stored configuration of connection %s: %w", r.ID, err)
	}
	var found []secretField
	cfg = splitSecrets(cfg, nil, &found).(map[string]any)
	if !r.Secrets.Valid || r.Secrets.String == "" {
		return cfg, found, nil
	}
	owner := r.ID
	if r.ParentID.Valid {
		owner = r.ParentID.String
	}
	plain, err := sealer.OpenString(r.Secrets.String, SealedAt("connections", "secrets", owner))
	if err != nil {
		return nil, nil, fmt.Errorf("secrets of connection %s: %w", r.ID, err)
	}
	var secrets []secretField
	dec := json.NewDecoder(strings.NewReader(plain))
	dec.UseNumber()
	if err := dec.Decode(&secrets); err != nil {
		return nil, nil, fmt.Errorf("secrets of connection %s: %w", r.ID, err)
	}
	for _, f := range found {
		secrets = slices.DeleteFunc(secrets, func(s secretField) bool { return s.name() == f.name() })
	}
	return cfg, append(secrets, found...), nil
}

// connection builds what a caller sees: the configuration, and the names of its secrets. A
// share's updated_at is the later of its own and its parent's, as it shows the parent's data.
func (r connectionRow) connection(sealer *Sealer) (Connection, error) {
	cfg, secrets, err := r.split(sealer)
	if err != nil {
		return Connection{}, err
	}
	names := make([]string, len(secrets))
	for i, f := range secrets {
		names[i] = f.name()
	}
	sort.Strings(names)
	c := Connection{ID: r.ID, Name: r.Name, Type: r.Type, Configuration: cfg, SecretFields: names,
		OrganizationID: r.OrgID, Policies: nonNil(r.Policies), CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC()}
	if r.ParentID.Valid {
		c.ParentID, c.ParentConnectionID = &r.ParentID.String, &r.ParentID.String
		if r.ParentUpdatedAt.Valid && r.ParentUpdatedAt.Time.After(r.UpdatedAt) {
			c.UpdatedAt = r.ParentUpdatedAt.Time.UTC()
		}
	}
	return c, nil
}

func connectionsOf(rows []connectionRow, sealer *Sealer) ([]Connection, error) {
	out := make([]Connection, len(rows))
	for i, r := range rows {
		c, err := r.connection(sealer)
		if err != nil {
			return nil, err
		}
		out[i] = c
	}
	return out, nil
}

// decodeConfiguration reads a JSON object, keeping numbers exact (json.Number).
func decodeConfiguration(raw []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("not a JSON object")
	}
	return m, nil
}

// encodeJSON is the stored form: compact JSON with keys sorted, HTML not escaped.
func encodeJSON(v any) (string, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", err
	}
	return strings.TrimSuffix(buf.String(), "\n"), nil
}

// splitSecrets returns a copy of v without its secret fields at any depth, appending each one
// removed, with its path, to found. A secret given as null asks for no secret: it is dropped.
func splitSecrets(v any, path []any, found *[]secretField) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, val := range x {
			p := append(path[:len(path):len(path)], k)
			if isSecret(x, k, val) {
				if val != nil {
					*found = append(*found, secretField{Path: p, Value: val})
				}
				continue
			}
			out[k] = splitSecrets(val, p, found)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, val := range x {
			out[i] = splitSecrets(val, append(path[:len(path):len(path)], i), found)
		}
		return out
	}
	return v
}

// keptSecrets are the secrets of prev that an update leaves out and keeps: those whose object
// the new configuration still has (reached through the same object keys) without the field.
// Secrets inside arrays are not carried over: array elements have no identity to match them by.
func keptSecrets(next map[string]any, prev []secretField) []secretField {
	var kept []secretField
next:
	for _, f := range prev {
		obj := next
		for i, step := range f.Path {
			k, ok := step.(string)
			if !ok {
				continue next
			}
			v, given := obj[k]
			if i == len(f.Path)-1 {
				if !given {
					kept = append(kept, f)
				}
				continue next
			}
			if obj, ok = v.(map[string]any); !ok {
				continue next
			}
		}
	}
	return kept
}

// depth is how many levels of objects and arrays v nests.
func depth(v any) int {
	d := 0
	switch x := v.(type) {
	case map[string]any:
		for _, val := range x {
			d = max(d, depth(val))
		}
		return d + 1
	case []any:
		for _, val := range x {
			d = max(d, depth(val))
		}
		return d + 1
	}
	return 0
}

var connectionType = regexp.MustCompile(`^[a-z0-9_-]{1,64}$`)

// normalize validates in and returns the configuration to store and its secrets. prev holds
// the stored secrets on an update (those the new configuration leaves out are kept), nil on a
// create. Whether a field is secret is decided here, once, by the configuration as given: a
// secret stays in the secrets however later updates change its neighbours.
func (in *ConnectionInput) normalize(prev []secretField) (string, []secretField, error) {
	in.Name = strings.TrimSpace(in.Name)
	in.Type = strings.TrimSpace(in.Type)
	var errs FieldErrors
	errs.Add("name", checkName(in.Name, 255))
	switch {
	case in.Type == "":
		errs.Add("type", "is required: the kind of connection, such as postgresql")
	case !connectionType.MatchString(in.Type):
		errs.Add("type", "must be 1 to 64 lowercase letters, digits, _ or -, such as postgresql")
	}
	cfg := map[string]any{}
	if raw := bytes.TrimSpace(in.Configuration); len(raw) > 0 && !bytes.Equal(raw, []byte("null")) {
		var err error
		if cfg, err = decodeConfiguration(raw); err != nil {
			errs.Add("configuration", "must be a JSON object")
		} else if depth(cfg) > MaxConfigurationDepth {
			errs.Add("configuration", "must nest at most "+strconv.Itoa(MaxConfigurationDepth)+" levels of objects and arrays")
		}
	}
	if err := errs.Err(); err != nil {
		return "", nil, err
	}
	var secrets []secretField
	public := splitSecrets(cfg, nil, &secrets).(map[string]any)
	secrets = append(keptSecrets(cfg, prev), secrets...)
	stored, err := encodeJSON(public)
	if err != nil {
		return "", nil, fmt.Errorf("encode configuration: %w", err)
	}
	size := len(stored)
	if len(secrets) > 0 {
		enc, err := encodeJSON(secrets)
		if err != nil {
			return "", nil, fmt.Errorf("encode secrets: %w", err)
		}
		size += len(enc)
	}
	if size > MaxConfigurationBytes {
		errs.Add("configuration", fmt.Sprintf("must be at most %d bytes encoded as JSON (64 KiB); it is %d", MaxConfigurationBytes, size))
		return "", nil, errs.Err()
	}
	return stored, secrets, nil
}

// sealSecrets is the stored form of a connection's secrets: "" for none.
func sealSecrets(sealer *Sealer, id string, secrets []secretField) (string, error) {
	if len(secrets) == 0 {
		return "", nil
	}
	enc, err := encodeJSON(secrets)
	if err != nil {
		return "", fmt.Errorf("encode secrets: %w", err)
	}
	return sealer.SealString(enc, SealedAt("connections", "secrets", id))
}

func errConnectionNotFound(id string) error {
	return Errorf(ErrNotFound, "connection_not_found", "No connection with id %q exists in this organization.", id)
}

func errConnectionNameTaken(name string) error {
	return Errorf(ErrConflict, "connection_name_taken",
		"A connection named %q already exists in this organization; names are unique ignoring case.", name)
}

func errSharedReadOnly(id string) error {
	return Errorf(ErrForbidden, "shared_connection_read_only",
		"Connection %q is shared into this organization by its partner and is read-only here; the partner changes or deletes it in its owner organization.", id)
}

// findConnection loads a connection of orgID (its own or a share into it), whatever its
// policies: for partner operations.
func findConnection(ctx context.Context, q sqlx.ExtContext, orgID, id string) (connectionRow, error) {
	return selectConnection(ctx, q, orgID, id, `1 = 1`, nil)
}

// reachConnection loads a connection of p's organization that p reaches, for reading (write
// false) or for a change (see reach).
func reachConnection(ctx context.Context, q sqlx.ExtContext, p *Principal, id string, write bool) (connectionRow, error) {
	return reach(ctx, q, p, connectionPolicies, id, write, func(cond string, args []any) (connectionRow, error) {
		return selectConnection(ctx, q, p.OrgID, id, cond, args)
	})
}

// selectConnection loads a connection of orgID for which cond (with args) holds, with its
// policies.
func selectConnection(ctx context.Context, q sqlx.ExtContext, orgID, id, cond string, args []any) (connectionRow, error) {
	r, err := getOne[connectionRow](ctx, q, id, errConnectionNotFound(id), connectionSelect+` WHERE c.id = ? AND c.org_id = ? AND `+cond,
		append([]any{id, orgID}, args...)...)
	if err != nil {
		return r, err
	}
	policies, err := connectionPolicies.policiesOf(ctx, q, r.ID)
	r.Policies = policies[r.ID]
	return r, err
}

// listConnections pages through connections matching where (a condition on c, without
// ORDER BY or LIMIT).
func (s *Store) listConnections(ctx context.Context, q sqlx.ExtContext, page PageQuery, where string, args ...any) (Page[Connection], error) {
	if page.After != "" {
		where += ` AND c.id > ?`
		args = append(args, page.After)
	}
	var rows []connectionRow
	err := sqlx.SelectContext(ctx, q, &rows, q.Rebind(connectionSelect+` WHERE `+where+` ORDER BY c.id LIMIT ?`),
		append(args, page.Limit+1)...)
	if err != nil {
		return Page[Connection]{}, fmt.Errorf("list connections: %w", err)
	}
	rows, next := TrimPage(rows, page.Limit, func(r connectionRow) string { return r.ID })
	err = withPolicies(ctx, q, connectionPolicies, rows, func(r *connectionRow) (string, *[]string) { return r.ID, &r.Policies })
	if err != nil {
		return Page[Connection]{}, err
	}
	out, err := connectionsOf(rows, s.Sealer)
	return Page[Connection]{Items: out, Next: next}, err
}

// ListConnections pages through the caller's organization's connections that it reaches
// (see reachable), shares into it included, in order of creation.
func (s *Store) ListConnections(ctx context.Context, p *Principal, page PageQuery) (Page[Connection], error) {
	if err := p.Require(ConnectionsRead); err != nil {
		return Page[Connection]{}, err
	}
	q, err := s.Reader(ctx)
	if err != nil {
		return Page[Connection]{}, err
	}
	cond, args := connectionPolicies.reaching(p, false)
	return s.listConnections(ctx, q, page, `c.org_id = ? AND `+cond, append([]any{p.OrgID}, args...)...)
}

// GetConnection returns one connection of the caller's organization that it reaches; any
// other is ErrNotFound.
func (s *Store) GetConnection(ctx context.Context, p *Principal, id string) (Connection, error) {
	if err := p.Require(ConnectionsRead); err != nil {
		return Connection{}, err
	}
	q, err := s.Reader(ctx)
	if err != nil {
		return Connection{}, err
	}
	r, err := reachConnection(ctx, q, p, id, false)
	if err != nil {
		return Connection{}, err
	}
	return r.connection(s.Sealer)
}

// CreateConnection adds a connection to the caller's organization. A name already used there
// (ignoring case) is ErrConflict; giving it policies needs policies:write.
func (s *Store) CreateConnection(ctx context.Context, p *Principal, in ConnectionInput) (Connection, error) {
	if err := p.Require(ConnectionsWrite); err != nil {
		return Connection{}, err
	}
	cfg, secrets, err := in.normalize(nil)
	if err != nil {
		return Connection{}, err
	}
	now := Now()
	r := connectionRow{ID: NewID(), OrgID: p.OrgID, Name: in.Name, Type: in.Type, Config: cfg, CreatedAt: now, UpdatedAt: now}
	if r.Secrets.String, err = sealSecrets(s.Sealer, r.ID, secrets); err != nil {
		return Connection{}, err
	}
	r.Secrets.Valid = true
	var c Connection
	err = s.Write(ctx, func(tx *Tx) error {
		if r.Policies, err = checkPolicies(ctx, tx, p, in.Policies, nil); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO connections (id, org_id, name, name_key, type, configuration, secrets, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`), r.ID, r.OrgID, r.Name, strings.ToLower(r.Name), r.Type, r.Config, r.Secrets, now, now)
		if IsUniqueViolation(err) {
			return errConnectionNameTaken(r.Name)
		}
		if err != nil {
			return fmt.Errorf("insert connection: %w", err)
		}
		if err := connectionPolicies.setPolicies(ctx, tx, r.ID, r.Policies); err != nil {
			return err
		}
		if c, err = r.connection(s.Sealer); err != nil {
			return err
		}
		return recordEvent(ctx, tx, p, r.OrgID, EventConnectionCreated, c)
	})
	return c, err
}

// UpdateConnection replaces a connection's name, type (when given) and configuration, and its
// policies when given (changing them needs policies:write); secret fields the new configuration
// leaves out keep their stored values. A share is read-only (ErrForbidden).
func (s *Store) UpdateConnection(ctx context.Context, p *Principal, id string, in ConnectionInput) (Connection, error) {
	r, err := changeRow(ctx, s, p.Require(ConnectionsWrite), p.OrgID, id, writableConnection(p), func(tx *Tx, r *connectionRow) (err error) {
		if r.ParentID.Valid {
			return errSharedReadOnly(r.ID)
		}
		if r.Policies, err = checkPolicies(ctx, tx, p, in.Policies, r.Policies); err != nil {
			return err
		}
		_, prev, err := r.split(s.Sealer)
		if err != nil {
			return err
		}
		if strings.TrimSpace(in.Type) == "" {
			in.Type = r.Type
		}
		cfg, secrets, err := in.normalize(prev)
		if err != nil {
			return err
		}
		r.Name, r.Type, r.Config, r.UpdatedAt = in.Name, in.Type, cfg, Now()
		if r.Secrets.String, err = sealSecrets(s.Sealer, r.ID, secrets); err != nil {
			return err
		}
		r.Secrets.Valid = true
		_, err = tx.ExecContext(ctx, tx.Rebind(`UPDATE connections SET name = ?, name_key = ?, type = ?, configuration = ?, secrets = ?,
			updated_at = ? WHERE id = ? AND org_id = ?`), r.Name, strings.ToLower(r.Name), r.Type, r.Config, r.Secrets, r.UpdatedAt, r.ID, r.OrgID)
		if IsUniqueViolation(err) {
			return errConnectionNameTaken(r.Name)
		}
		if err != nil {
			return fmt.Errorf("update connection: %w", err)
		}
		if err := connectionPolicies.setPolicies(ctx, tx, r.ID, r.Policies); err != nil {
			return err
		}
		return s.connectionEvent(ctx, tx, p, *r, EventConnectionUpdated)
	})
	if err != nil {
		return Connection{}, err
	}
	return r.connection(s.Sealer)
}

// DeleteConnection deletes a connection of the caller's organization and returns it as it
// was. Its shares in child organizations go with it; datasets using it (or its shares) are
// left without a connection. A share is read-only (ErrForbidden).
func (s *Store) DeleteConnection(ctx context.Context, p *Principal, id string) (Connection, error) {
	r, err := changeRow(ctx, s, p.Require(ConnectionsWrite), p.OrgID, id, writableConnection(p), func(tx *Tx, r *connectionRow) (err error) {
		if r.ParentID.Valid {
			return errSharedReadOnly(r.ID)
		}
		// Shares cascade and datasets' connection_id is set to NULL (foreign keys).
		if _, err := tx.ExecContext(ctx, tx.Rebind(`DELETE FROM connections WHERE id = ? AND org_id = ?`), r.ID, r.OrgID); err != nil {
			return fmt.Errorf("delete connection: %w", err)
		}
		return s.connectionEvent(ctx, tx, p, *r, EventConnectionDeleted)
	})
	if err != nil {
		return Connection{}, err
	}
	return r.connection(s.Sealer)
}

// writableConnection is changeRow's find for a change by p: a connection of p's organization
// that p reaches for a change.
func writableConnection(p *Principal) func(context.Context, sqlx.ExtContext, string, string) (connectionRow, error) {
	return func(ctx context.Context, q sqlx.ExtContext, _, id string) (connectionRow, error) {
		return reachConnection(ctx, q, p, id, true)
	}
}

// connectionEvent records an event about r as callers see it (without its secrets).
func (s *Store) connectionEvent(ctx context.Context, tx *Tx, p *Principal, r connectionRow, typ EventType) error {
	c, err := r.connection(s.Sealer)
	if err != nil {
		return err
	}
	return recordEvent(ctx, tx, p, r.OrgID, typ, c)
}

// shareSource checks that orgID is the partner p's owner organization and connectionID a
// connection of it, and returns that connection.
func shareSource(ctx context.Context, q sqlx.ExtContext, p *Principal, orgID, connectionID string) (connectionRow, error) {
	owner, err := partnerOrganization(ctx, q, p.PartnerID, orgID)
	if err != nil {
		return connectionRow{}, err
	}
	if !owner.IsOwner {
		return connectionRow{}, Errorf(ErrInvalid, "not_owner_organization",
			"Organization %q is a child organization; only connections of the partner's owner organization can be shared.", orgID)
	}
	return findConnection(ctx, q, owner.ID, connectionID)
}

// ShareConnection shares a connection of the calling partner's owner organization into one of
// its child organizations, where it is read-only, and returns the share as the child sees it.
// A share's name defaults to the parent's; a name taken in the child, or a second share of
// the same connection into it, is ErrConflict.
func (s *Store) ShareConnection(ctx context.Context, p *Principal, orgID, connectionID string, in ShareInput) (Connection, error) {
	if err := p.RequirePartner(); err != nil {
		return Connection{}, err
	}
	var share connectionRow
	err := s.Write(ctx, func(tx *Tx) error {
		parent, err := shareSource(ctx, tx, p, orgID, connectionID)
		if err != nil {
			return err
		}
		in.ChildOrganizationID = strings.TrimSpace(in.ChildOrganizationID)
		name := parent.Name
		var errs FieldErrors
		if in.ChildOrganizationID == "" {
			errs.Add("child_organization_id", "is required: the id of the child organization to share the connection into")
		}
		if in.Name != nil {
			name = strings.TrimSpace(*in.Name)
			if name == "" {
				errs.Add("name", "must not be blank; leave it out to use the connection's own name")
			} else if msg := CheckText(name, 255); msg != "" {
				errs.Add("name", msg)
			}
		}
		if err := errs.Err(); err != nil {
			return err
		}
		child, err := partnerOrganization(ctx, tx, p.PartnerID, in.ChildOrganizationID)
		if err != nil {
			return err
		}
		if child.IsOwner {
			errs.Add("child_organization_id", "is the partner's owner organization, where the connection already is; name a child organization")
			return errs.Err()
		}
		now := Now()
		share = connectionRow{ID: NewID(), OrgID: child.ID, ParentID: sql.NullString{String: parent.ID, Valid: true},
			Name: name, Type: parent.Type, Config: parent.Config, Secrets: parent.Secrets, CreatedAt: now, UpdatedAt: now}
		// The share's own type and configuration stay empty: they are read from the parent.
		_, err = tx.ExecContext(ctx, tx.Rebind(`INSERT INTO connections (id, org_id, parent_id, name, name_key, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)`), share.ID, share.OrgID, parent.ID, share.Name, strings.ToLower(share.Name), now, now)
		if err != nil && !IsUniqueViolation(err) {
			return fmt.Errorf("insert share: %w", err)
		}
		if err != nil {
			return err
		}
		// Recorded in the child organization, where the share appears.
		return s.connectionEvent(ctx, tx, p, share, EventConnectionShared)
	})
	if IsUniqueViolation(err) {
		// The insert failed on one of two unique indexes; which one only chooses the message.
		// Asked of the database: the failed transaction may no longer answer (PostgreSQL).
		var n int
		if qerr := sqlx.GetContext(ctx, s.DB, &n, s.DB.Rebind(`SELECT COUNT(*) FROM connections WHERE parent_id = ? AND org_id = ?`),
			share.ParentID.String, share.OrgID); qerr != nil {
			return Connection{}, fmt.Errorf("diagnose share conflict: %w", qerr)
		}
		if n > 0 {
			return Connection{}, Errorf(ErrConflict, "connection_already_shared",
				"Connection %q is already shared into organization %q.", share.ParentID.String, share.OrgID)
		}
		return Connection{}, Errorf(ErrConflict, "connection_name_taken",
			"Organization %q already has a connection named %q; names are unique ignoring case. Pass another name.", share.OrgID, share.Name)
	}
	if err != nil {
		return Connection{}, err
	}
	return share.connection(s.Sealer)
}

// ListConnectionShares pages through the shares of a connection of the calling partner's
// owner organization, in order of creation.
func (s *Store) ListConnectionShares(ctx context.Context, p *Principal, orgID, connectionID string, page PageQuery) (Page[Connection], error) {
	if err := p.RequirePartner(); err != nil {
		return Page[Connection]{}, err
	}
	q, err := s.Reader(ctx)
	if err != nil {
		return Page[Connection]{}, err
	}
	parent, err := shareSource(ctx, q, p, orgID, connectionID)
	if err != nil {
		return Page[Connection]{}, err
	}
	return s.listConnections(ctx, q, page, `c.parent_id = ?`, parent.ID)
}
