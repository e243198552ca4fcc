package server

import (
	"context"
	"time"

	"github.com/tenantry/tenantry/tenants"
)

// Defaults of the retention settings.
const (
	DefaultIdempotencyTTL = 24 * time.Hour
	DefaultEventRetention = 30 * 24 * time.Hour
	defaultSweepInterval  = 10 * time.Minute
)

// sweeper deletes, every SweepInterval, idempotency records and events past their retention.
type sweeper struct {
	stop chan struct{}
	done chan struct{}
}

func (s *Server) startSweeper() {
	s.sweep = &sweeper{stop: make(chan struct{}), done: make(chan struct{})}
	interval := s.cfg.SweepInterval
	go func() {
		defer close(s.sweep.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				s.Sweep(context.Background())
			case <-s.sweep.stop:
				return
			}
		}
	}()
}

func (s *Server) stopSweeper() {
	close(s.sweep.stop)
	<-s.sweep.done
}

// Sweep deletes what has outlived its retention now, and logs how much.
func (s *Server) Sweep(ctx context.Context) {
	ttl, retention := s.cfg.IdempotencyTTL, s.cfg.EventRetention
	res, err := s.db.ExecContext(ctx, s.db.Rebind(`DELETE FROM idempotency_keys WHERE created_at < ?`), tenants.Now().Add(-ttl))
	if err != nil {
		s.log.Warn("sweeping idempotency keys failed", "error", err.Error())
	} else if n, _ := res.RowsAffected(); n > 0 {
		s.log.Info("swept idempotency keys", "deleted", n)
	}
	// Finished deliveries (and their attempts, by cascade) go with the events they carried.
	if _, err := s.db.ExecContext(ctx, s.db.Rebind(`DELETE FROM webhook_deliveries WHERE state <> 'pending' AND created_at < ?`),
		tenants.Now().Add(-retention)); err != nil {
		s.log.Warn("sweeping webhook deliveries failed", "error", err.Error())
	}
	n, err := tenants.SweepEvents(ctx, s.db, retention)
	if err != nil {
		s.log.Warn("sweeping events failed", "error", err.Error())
	} else if n > 0 {
		s.log.Info("swept events", "deleted", n)
	}
}
