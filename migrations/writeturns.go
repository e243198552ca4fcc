package migrations

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/mattn/go-sqlite3"
)

// SQLite has one write lock per database. Left to itself, a writer that finds it taken sleeps
// in SQLite's busy handler and retries, with sleeps of up to 100 ms: under 32 concurrent
// writers that gave provisioning a p99 of seconds while most of the time nobody wrote. So this
// process's writers take turns before they ask for the lock: every write transaction, and
// every write outside one, waits for the database's write turn, first come first served. The
// turn is taken in the driver, below database/sql, so that no caller can forget it.

// WriteWait is how long a write waits for its turn before it fails with ErrBusy: as long as
// SQLite's own busy timeout, so a caller waits no longer than it would have for the lock.
const WriteWait = 10 * time.Second

// ErrBusy is a write that did not get its turn within WriteWait, or whose turn came but not
// SQLite's lock (another process held it for the busy timeout): the database is overloaded or
// a transaction is stuck. The request may be retried.
var ErrBusy = errors.New("the database was busy with other writes for " + WriteWait.String())

// busy names a failure to get SQLite's lock as ErrBusy.
func busy(err error) error {
	var e sqlite3.Error
	if errors.As(err, &e) && (e.Code == sqlite3.ErrBusy || e.Code == sqlite3.ErrLocked) {
		return fmt.Errorf("%w: %v", ErrBusy, err)
	}
	return err
}

// CheckpointInterval is how often the write-ahead log is copied back into the database file.
const CheckpointInterval = 100 * time.Millisecond

// writeTurns opens the connections of one SQLite database, and holds its write turn: a
// channel of capacity one, whose waiters Go serves in order.
type writeTurns struct {
	dsn  string
	drv  *sqlite3.SQLiteDriver
	wait time.Duration // WriteWait, shorter in tests
	turn chan struct{}
	stop chan struct{} // closed by Close (database/sql calls it when the pool closes)
	once sync.Once
}

func newWriteTurns(dsn string) *writeTurns {
	return &writeTurns{dsn: dsn, wait: WriteWait, turn: make(chan struct{}, 1), stop: make(chan struct{}),
		drv: &sqlite3.SQLiteDriver{ConnectHook: func(c *sqlite3.SQLiteConn) error {
			// No connection copies the write-ahead log back when it commits (SQLite's default
			// does, every 1,000 pages, inside that COMMIT, stalling whoever holds the turn):
			// checkpoint does, beside the writers.
			_, err := c.Exec(`PRAGMA wal_autocheckpoint = 0`, nil)
			return err
		}}}
}

// Connect opens a connection (driver.Connector).
func (w *writeTurns) Connect(context.Context) (driver.Conn, error) {
	c, err := w.drv.Open(w.dsn)
	if err != nil {
		return nil, err
	}
	return &turnConn{SQLiteConn: c.(*sqlite3.SQLiteConn), w: w}, nil
}

// Driver returns the underlying driver (driver.Connector).
func (w *writeTurns) Driver() driver.Driver { return w.drv }

// Close stops the checkpoints; database/sql calls it when the pool is closed.
func (w *writeTurns) Close() error {
	w.once.Do(func() { close(w.stop) })
	return nil
}

// take waits for the write turn and returns the function that gives it back.
func (w *writeTurns) take(ctx context.Context) (release func(), err error) {
	release = func() { <-w.turn }
	select {
	case w.turn <- struct{}{}:
		return release, nil
	default:
	}
	wait := time.NewTimer(w.wait)
	defer wait.Stop()
	select {
	case w.turn <- struct{}{}:
		return release, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-wait.C:
		return nil, ErrBusy
	}
}

// turnConn is a connection whose writes take the turn.
type turnConn struct {
	*sqlite3.SQLiteConn
	w *writeTurns
}

// Begin is BeginTx without a context (driver.Conn).
func (c *turnConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

// BeginTx waits for the turn, then begins (IMMEDIATE: the lock is then free); the turn is
// given back when the transaction ends.
func (c *turnConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	release, err := c.w.take(ctx)
	if err != nil {
		return nil, err
	}
	tx, err := c.SQLiteConn.BeginTx(ctx, opts)
	if err != nil {
		release()
		return nil, busy(err)
	}
	return &turnTx{Tx: tx, release: release}, nil
}

// ExecContext runs a statement; outside a transaction (a write on its own) it takes the turn
// for the statement's length.
func (c *turnConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	if !c.AutoCommit() {
		return c.SQLiteConn.ExecContext(ctx, query, args)
	}
	release, err := c.w.take(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	res, err := c.SQLiteConn.ExecContext(ctx, query, args)
	return res, busy(err)
}

// turnTx gives the turn back when it ends, once.
type turnTx struct {
	driver.Tx
	release func()
}

func (t *turnTx) Commit() error {
	defer t.end()
	return t.Tx.Commit()
}

func (t *turnTx) Rollback() error {
	defer t.end()
	return t.Tx.Rollback()
}

func (t *turnTx) end() {
	if t.release != nil {
		t.release()
		t.release = nil
	}
}

// checkpoint copies the write-ahead log back into the database file every CheckpointInterval,
// on a connection of its own, until the pool is closed: first beside the writers (PASSIVE
// waits for no one), then once more holding the turn, which copies only what writers appended
// meanwhile. The log starts over from its beginning only when a write transaction begins with
// all of it copied, which under a constant stream of writes happens only this way; without it
// the log grew by a gigabyte a minute.
func (w *writeTurns) checkpoint() {
	tick := time.NewTicker(CheckpointInterval)
	defer tick.Stop()
	var conn *sqlite3.SQLiteConn
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	var last int64 // the log's length at the last checkpoint
	for {
		select {
		case <-w.stop:
			return
		case <-tick.C:
		}
		if conn == nil {
			c, err := w.drv.Open(w.dsn)
			if err != nil {
				continue
			}
			conn = c.(*sqlite3.SQLiteConn)
		}
		logged, copied, err := walCheckpoint(conn)
		if err != nil || logged == 0 || (logged == copied && logged == last) {
			continue // nothing written since
		}
		release, err := w.take(context.Background())
		if err != nil {
			continue
		}
		last, _, _ = walCheckpoint(conn)
		release()
	}
}

// walCheckpoint runs one PASSIVE checkpoint and returns the log's length in frames and how
// many of them are now in the database file.
func walCheckpoint(conn *sqlite3.SQLiteConn) (logged, copied int64, err error) {
	rows, err := conn.Query(`PRAGMA wal_checkpoint(PASSIVE)`, nil)
	if err != nil {
		return 0, 0, err
	}
	defer rows.Close()
	v := make([]driver.Value, 3) // busy, log, checkpointed
	if err := rows.Next(v); err != nil {
		return 0, 0, fmt.Errorf("wal_checkpoint: %w", err)
	}
	logged, _ = v[1].(int64)
	copied, _ = v[2].(int64)
	return logged, copied, nil
}
