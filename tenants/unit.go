package tenants

import (
	"context"
	"errors"
	"fmt"

	"github.com/jmoiron/sqlx"
)

// A Unit is one unit of work: a transaction, begun at its first statement, that several domain
// operations share, so that they and the caller's own writes commit together or not at all
// (provisioning; a change and its stored Idempotency-Key response; a partial update's read,
// lock and write). Stores and services bound to it run every statement in it, reads included.
// Its owner ends it with Commit or Rollback; a unit no statement used never took a connection
// nor, on SQLite, the write lock.
type Unit struct {
	db *sqlx.DB
	tx *Tx
}

// NewUnit hands out a unit of work on db: the one way to make several operations one
// transaction.
func NewUnit(db *sqlx.DB) *Unit { return &Unit{db: db} }

// Tx returns the unit's transaction, beginning it if no statement has yet. The transaction
// outlives ctx's cancellation: its owner ends it.
func (u *Unit) Tx(ctx context.Context) (*Tx, error) {
	if u.tx == nil {
		tx, err := begin(context.WithoutCancel(ctx), u.db)
		if err != nil {
			return nil, err
		}
		u.tx = tx
	}
	return u.tx, nil
}

// Commit commits the unit's transaction, if it began, and runs the after-commit hooks.
func (u *Unit) Commit() error {
	if u.tx == nil {
		return nil
	}
	tx := u.tx
	u.tx = nil
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// Rollback undoes the unit's transaction, if it began.
func (u *Unit) Rollback() {
	if u.tx != nil {
		u.tx.Rollback()
		u.tx = nil
	}
}

// Part runs fn as a part of u that can fail alone: when fn fails, what it wrote is undone (to
// a savepoint taken before it) and the rest of u stands, so a batch can refuse one item and
// keep the others. Only a refusal (an *Error) is fn's alone: any other error (the database
// failing, say) leaves u unusable and is returned for its owner to roll it back.
func (u *Unit) Part(ctx context.Context, fn func() error) error {
	tx, err := u.Tx(ctx)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `SAVEPOINT part`); err != nil {
		return fmt.Errorf("savepoint: %w", err)
	}
	changes := len(tx.changes)
	fnErr := fn()
	var refusal *Error
	if fnErr != nil && errors.As(fnErr, &refusal) {
		if _, err := tx.ExecContext(ctx, `ROLLBACK TO SAVEPOINT part`); err != nil {
			return fmt.Errorf("roll back to savepoint: %w", err)
		}
		// What the part created is gone: forget it all (knowledge is only a shortcut) and
		// the changes it would have announced.
		tx.changes, tx.known = tx.changes[:changes], known{}
	} else if fnErr != nil {
		return fnErr
	}
	if _, err := tx.ExecContext(ctx, `RELEASE SAVEPOINT part`); err != nil {
		return fmt.Errorf("release savepoint: %w", err)
	}
	return fnErr
}

// Conn is where a store's or a service's statements run: its database, each write in a
// transaction of its own, or a unit of work (In).
type Conn struct {
	DB   *sqlx.DB
	unit *Unit
}

// In returns c bound to u (u nil: c itself).
func (c Conn) In(u *Unit) Conn {
	if u != nil {
		c.unit = u
	}
	return c
}

// Work runs fn with one unit of work for several operations (bind stores and services to it
// with In): c's own unit when c is bound to one, whose owner decides its outcome, or a new one,
// committed when fn returns nil and rolled back otherwise.
func (c Conn) Work(ctx context.Context, fn func(u *Unit) error) error {
	if c.unit != nil {
		return fn(c.unit)
	}
	u := NewUnit(c.DB)
	if err := fn(u); err != nil {
		u.Rollback()
		return err
	}
	return u.Commit()
}

// Write runs fn in a transaction: the unit's, whose owner decides its outcome, or one of its
// own, committed when fn returns nil and rolled back otherwise.
func (c Conn) Write(ctx context.Context, fn func(tx *Tx) error) error {
	if c.unit != nil {
		tx, err := c.unit.Tx(ctx)
		if err != nil {
			return err
		}
		return fn(tx)
	}
	tx, err := begin(ctx, c.DB)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// Reader is where a read runs: in the unit's transaction, so that it sees what the unit
// wrote and takes no second connection, or on the database.
func (c Conn) Reader(ctx context.Context) (sqlx.ExtContext, error) {
	if c.unit != nil {
		return c.unit.Tx(ctx)
	}
	return c.DB, nil
}
