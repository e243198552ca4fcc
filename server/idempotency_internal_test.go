package server

import (
	"context"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/jmoiron/sqlx"

	"github.com/tenantry/tenantry/tenants"
)

// awayDatabase is a PostgreSQL that cannot be reached, on a loopback port of the test's own:
// it drops each connection at once (the server down), or, once hang is set, holds it without
// a word (the network to it gone).
func awayDatabase(t *testing.T) (db *sqlx.DB, hang *atomic.Bool) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hang = &atomic.Bool{}
	var mu sync.Mutex
	var held []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if !hang.Load() {
				c.Close()
				continue
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	db, err = sqlx.Open("pgx", "postgres://tenantry@"+ln.Addr().String()+"/tenantry?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		db.Close()
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	})
	return db, hang
}

// The releases an outage makes fail are tried again by one goroutine, not one each (a busy
// server's outage left thousands, each trying the database four times a second), and Close
// ends the tries even when one hangs on a database that does not answer.
func TestReleasesRetriedInOneGoroutine(t *testing.T) {
	db, hang := awayDatabase(t)
	s := &Server{store: tenants.NewStore(db), log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	s.startReleases()

	before := runtime.NumGoroutine()
	const failed = 300
	for i := range failed {
		s.releaseIdempotencyKey(context.Background(), tenants.IdempotencyKey{Credential: "value:x", Key: "key-" + strconv.Itoa(i), ClaimedAt: tenants.Now()}, "req")
	}
	if n := runtime.NumGoroutine() - before; n > 10 {
		t.Errorf("%d releases waiting for the database: %d goroutines more", failed, n)
	}

	hang.Store(true)
	time.Sleep(2 * releaseRetry) // a try now hangs
	stopped := make(chan struct{})
	go func() { s.stopReleases(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("Close waits for a release that hangs on a database that does not answer")
	}
}
