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
	swept, err := s.store.Sweep(ctx, tenants.Retention{IdempotencyKeys: s.cfg.IdempotencyTTL, Events: s.cfg.EventRetention})
	if err != nil {
		s.log.Warn("sweeping failed", "error", err.Error())
	}
	if swept != (tenants.Swept{}) {
		s.log.Info("swept", "idempotency_keys", swept.IdempotencyKeys, "webhook_deliveries", swept.Deliveries, "events", swept.Events,
			"key_usage_hours", swept.Usage)
	}
}
