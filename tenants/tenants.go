// Package tenants is the domain: partners, organizations, users and roles, their validation,
// their authorization rules and their SQL. It imports nothing else from this module.
//
// Exported methods on Store first check what the Principal may do (the one place each access
// rule lives, whatever the entry point: REST, a command, the CLI), then validate, and scope
// every query by partner or organization, so that an object of another tenant is
// ErrNotFound, never ErrForbidden. Each is a transaction boundary: it runs in a transaction
// of its own, or in the caller's unit of work when the store is bound to one (Store.In), so
// one transaction can span several operations of tenants and keys. Functions that take a *Tx
// or a sqlx.ExtContext run inside a caller's transaction.
package tenants

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
)

// Store runs the domain's operations on one database, or inside one unit of work (In).
type Store struct {
	Conn
	// Sealer seals the secrets the domain stores (nil: stored as given).
	Sealer *Sealer
}

// NewStore returns a Store on db.
func NewStore(db *sqlx.DB) *Store { return &Store{Conn: Conn{DB: db}} }

// In returns s bound to u: every statement of its methods runs in u's transaction, which u's
// owner commits or rolls back.
func (s *Store) In(u *Unit) *Store {
	bound := *s
	bound.Conn = s.Conn.In(u)
	return &bound
}

// Tx is one transaction of the domain: its SQL (the embedded *sqlx.Tx) and the changes it has
// recorded (one per event), which the commit hooks of its database are given once it has
// committed, and only then. Every change records an event (RecordEvent), so every change
// reaches the hooks: the principal cache's invalidation hangs off this, and a new kind of change
// cannot forget it.
type Tx struct {
	*sqlx.Tx
	db      *sqlx.DB
	changes []Change
	known   known // what it created, so it need not read it back
}

// A Change is what a committed transaction changed: an event's type, and where. A change
// of credentials (ChangesCredentials) also has the credential epoch it counted as (see
// migration 00005).
type Change struct {
	Type      EventType
	PartnerID string
	OrgID     string
	Epoch     uint64
	Delivers  bool // webhook deliveries of it were queued
}

// ChangesCredentials reports whether a change of this type can alter what an existing
// credential authenticates as or may do: anything but a creation, an expiry warning, the
// organization resources (connections, datasets, webhooks) and policies, which are read where
// a resource is, at each request, never kept in a principal. A new event type counts until it
// is listed here, so forgetting it costs a cache refill, never a stale answer.
func (c Change) ChangesCredentials() bool {
	switch t := string(c.Type); {
	case strings.HasSuffix(t, ".created"), strings.HasSuffix(t, ".expiring"), strings.HasPrefix(t, "connection."), strings.HasPrefix(t, "dataset."),
		strings.HasPrefix(t, "webhook."), strings.HasPrefix(t, "policy."):
		return false
	}
	return true
}

// commitHooks are, per database, the functions told of every transaction's changes once it
// has committed (OnCommit).
var commitHooks sync.Map // *sqlx.DB → []*commitHook

var commitHooksMu sync.Mutex

type commitHook struct{ fn func([]Change) }

// OnCommit has fn told, after each transaction on db commits, what it changed. fn runs in the
// committing goroutine before the change's response is sent, so it must be quick. The function
// returned stops it.
func OnCommit(db *sqlx.DB, fn func([]Change)) (stop func()) {
	h := &commitHook{fn}
	update := func(edit func([]*commitHook) []*commitHook) {
		commitHooksMu.Lock()
		defer commitHooksMu.Unlock()
		var hooks []*commitHook
		if v, ok := commitHooks.Load(db); ok {
			hooks = v.([]*commitHook)
		}
		if hooks = edit(slices.Clone(hooks)); len(hooks) == 0 {
			commitHooks.Delete(db)
		} else {
			commitHooks.Store(db, hooks)
		}
	}
	update(func(hooks []*commitHook) []*commitHook { return append(hooks, h) })
	return func() {
		update(func(hooks []*commitHook) []*commitHook {
			return slices.DeleteFunc(hooks, func(x *commitHook) bool { return x == h })
		})
	}
}

// Commit commits the transaction and then tells the commit hooks of its database what it
// changed.
func (t *Tx) Commit() error {
	if err := t.Tx.Commit(); err != nil {
		return err
	}
	if len(t.changes) > 0 {
		if v, ok := commitHooks.Load(t.db); ok {
			for _, h := range v.([]*commitHook) {
				h.fn(t.changes)
			}
		}
		t.changes = nil
	}
	return nil
}

// changed records a change for the commit hooks.
func (t *Tx) changed(c Change) { t.changes = append(t.changes, c) }

// begin starts a transaction on db (callers outside this package use a Unit or Conn.Write).
func begin(ctx context.Context, db *sqlx.DB) (*Tx, error) {
	tx, err := db.BeginTxx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	return &Tx{Tx: tx, db: db}, nil
}

// Now is the current time as stored: UTC, microsecond precision (what both databases keep).
func Now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// NewID returns a new time-ordered UUID (version 7), so new rows land at the end of indexes.
func NewID() string { return uuid.Must(uuid.NewV7()).String() }

// lockRow takes the write lock of one row for the rest of tx, so that transactions that read
// and then write the same things take turns (a PostgreSQL row lock; SQLite's write
// transactions take turns anyway). An UPDATE that changes nothing is the portable way: SELECT
// ... FOR UPDATE is not SQL SQLite knows. table is a constant of the caller's, never input.
func lockRow(ctx context.Context, tx *Tx, table, id string) error {
	if _, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE `+table+` SET id = id WHERE id = ?`), id); err != nil {
		return fmt.Errorf("lock %s row: %w", table, err)
	}
	return nil
}

// LockRow exports lockRow for the tables other packages need to serialise on.
func LockRow(ctx context.Context, tx *Tx, table, id string) error {
	switch table {
	case "organizations", "users", "roles", "api_keys":
		return lockRow(ctx, tx, table, id)
	}
	return fmt.Errorf("lockRow: table %q is not lockable", table)
}

// LockUser serialises changes to one user's keys (see lockRow). A user tx created is locked
// already: no other transaction sees it before tx commits.
func LockUser(ctx context.Context, tx *Tx, id string) error {
	if _, ok := tx.known.users[id]; ok {
		return nil
	}
	return lockRow(ctx, tx, "users", id)
}

// getOne loads the one row query finds (with args, after Rebind) into a T; no row is
// notFound. A malformed id is notFound without touching the database.
func getOne[T any](ctx context.Context, q sqlx.ExtContext, id string, notFound error, query string, args ...any) (T, error) {
	var v T
	if !validID(id) {
		return v, notFound
	}
	err := sqlx.GetContext(ctx, q, &v, q.Rebind(query), args...)
	if errors.Is(err, sql.ErrNoRows) {
		return v, notFound
	}
	if err != nil {
		return v, fmt.Errorf("select %T: %w", v, err)
	}
	return v, nil
}

// validID reports whether s is a canonical UUID; anything else cannot name a row.
func validID(s string) bool {
	u, err := uuid.Parse(s)
	return err == nil && u.String() == s
}

// changeRow is the shape of every change to one existing row: refuse with refusal, the
// caller's authorization check (p.Require(action) or p.RequirePartner()), if it refused; then,
// in one transaction, load the row of scope (the caller's organization or partner) by id
// (find; another tenant's is ErrNotFound) and change it (change, given the row to update in
// place). It returns the row as change left it.
func changeRow[T any](ctx context.Context, s *Store, refusal error, scope, id string,
	find func(ctx context.Context, q sqlx.ExtContext, scope, id string) (T, error), change func(tx *Tx, row *T) error) (T, error) {
	var row T
	if refusal != nil {
		return row, refusal
	}
	err := s.Write(ctx, func(tx *Tx) (err error) {
		if row, err = find(ctx, tx, scope, id); err != nil {
			return err
		}
		return change(tx, &row)
	})
	return row, err
}
