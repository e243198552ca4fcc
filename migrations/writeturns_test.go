package migrations

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
)

// openTurns opens a new SQLite file the way openSQLite does, with writes waiting at most wait
// for their turn and for SQLite's lock.
func openTurns(t *testing.T, wait time.Duration) (*sqlx.DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "turns.db")
	dsn := strings.Replace(sqliteDSN(path), "_busy_timeout=10000", "_busy_timeout="+
		strconv.Itoa(int(wait.Milliseconds())), 1)
	if dsn == sqliteDSN(path) {
		t.Fatalf("the DSN no longer sets the busy timeout as this test expects: %s", dsn)
	}
	w := newWriteTurns(dsn)
	w.wait = wait
	db := sqlx.NewDb(sql.OpenDB(w), sqliteDriver)
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec(`CREATE TABLE t (n INTEGER, pad BLOB)`); err != nil {
		t.Fatal(err)
	}
	go w.checkpoint()
	return db, path
}

// Writers waiting for the turn get it in the order they asked.
func TestWritesTakeTurnsInOrder(t *testing.T) {
	db, _ := openTurns(t, 5*time.Second)
	ctx := context.Background()
	holder, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 5)
	for n := range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tx, err := db.BeginTx(ctx, nil)
			if err == nil {
				_, err = tx.Exec(`INSERT INTO t (n) VALUES (?)`, n)
				if err == nil {
					err = tx.Commit()
				}
			}
			errs <- err
		}()
		time.Sleep(100 * time.Millisecond) // to queue behind the previous writer
	}
	if err := holder.Commit(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	var order []int
	if err := db.Select(&order, `SELECT n FROM t ORDER BY rowid`); err != nil {
		t.Fatal(err)
	}
	if len(order) != 5 {
		t.Fatalf("%d rows written, want 5", len(order))
	}
	for i, n := range order {
		if n != i {
			t.Fatalf("writers committed in the order %v, want the order they asked in", order)
		}
	}
}

// A write, in a transaction or on its own, waits for a transaction holding the turn, and
// gets ErrBusy when it waited too long; once the turn is free it succeeds.
func TestWriteWaitsForTheTurnThenIsBusy(t *testing.T) {
	const wait = 300 * time.Millisecond
	db, _ := openTurns(t, wait)
	ctx := context.Background()
	holder, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := db.Exec(`INSERT INTO t (n) VALUES (1)`); !errors.Is(err, ErrBusy) {
		t.Fatalf("a write on its own while another holds the turn: %v, want ErrBusy", err)
	}
	if waited := time.Since(start); waited < wait {
		t.Fatalf("gave up after %v, before its wait of %v", waited, wait)
	}
	if _, err := db.BeginTx(ctx, nil); !errors.Is(err, ErrBusy) {
		t.Fatalf("a transaction while another holds the turn: %v, want ErrBusy", err)
	}
	cancelled, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := db.BeginTx(cancelled, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a transaction whose request ended while waiting: %v, want its context's error", err)
	}
	// A write that waits less than the wait goes through when the holder is done.
	done := make(chan error, 1)
	go func() {
		_, err := db.Exec(`INSERT INTO t (n) VALUES (2)`)
		done <- err
	}()
	time.Sleep(wait / 3)
	if _, err := holder.Exec(`INSERT INTO t (n) VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	if err := holder.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("the waiting write after the holder committed: %v", err)
	}
	var n int
	if err := db.Get(&n, `SELECT COUNT(*) FROM t`); err != nil || n != 2 {
		t.Fatalf("%d rows (%v), want the holder's and the waiter's", n, err)
	}
}

// Another process holding SQLite's lock past the busy timeout is ErrBusy too, and leaves
// nothing half written.
func TestAnotherProcessHoldingTheLockIsBusy(t *testing.T) {
	const wait = 300 * time.Millisecond
	db, path := openTurns(t, wait)
	other, err := sql.Open("sqlite3", "file:"+path+"?_journal_mode=WAL")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	conn, err := other.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(context.Background(), `BEGIN IMMEDIATE`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO t (n) VALUES (1)`); !errors.Is(err, ErrBusy) {
		t.Fatalf("a write while another process holds the lock: %v, want ErrBusy", err)
	}
	if _, err := db.Beginx(); !errors.Is(err, ErrBusy) {
		t.Fatalf("a transaction while another process holds the lock: %v, want ErrBusy", err)
	}
	if _, err := conn.ExecContext(context.Background(), `ROLLBACK`); err != nil {
		t.Fatal(err)
	}
	// The turn was given back: the next write goes through at once.
	if _, err := db.Exec(`INSERT INTO t (n) VALUES (2)`); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.Get(&n, `SELECT COUNT(*) FROM t`); err != nil || n != 1 {
		t.Fatalf("%d rows (%v), want only the write made after the lock was free", n, err)
	}
}

// Under a steady stream of writes the write-ahead log keeps starting over from its beginning
// (without checkpoints that hold the turn it never did, and grew by a gigabyte a minute under
// provisioning load). SQLite counts the restarts in the log's header.
func TestLogStartsOverUnderSteadyWrites(t *testing.T) {
	db, path := openTurns(t, 5*time.Second)
	pad := make([]byte, 4096)
	for start := time.Now(); time.Since(start) < 1500*time.Millisecond; {
		if _, err := db.Exec(`INSERT INTO t (n, pad) VALUES (1, ?)`, pad); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Open(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	header := make([]byte, 32)
	if _, err := io.ReadFull(f, header); err != nil {
		t.Fatal(err)
	}
	restarts := binary.BigEndian.Uint32(header[12:16]) // the checkpoint sequence number
	t.Logf("the log started over %d times in 1.5 s of writes", restarts)
	if restarts < 3 {
		t.Fatalf("the log started over %d times in 1.5 s of steady writes, want one every few checkpoints", restarts)
	}
}
