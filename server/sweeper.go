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

// sweeper deletes, every SweepInterval, idempotency records and events past their retention,
// and sends the expiry warnings that have come due.
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

// Sweep deletes what has outlived its retention now, sends the expiry warnings due by now
// (on the server's clock), and logs how much.
func (s *Server) Sweep(ctx context.Context) {
	now := time.Now()
	if s.cfg.Clock != nil {
		now = s.cfg.Clock()
	}
	if warned, err := s.keys.WarnExpiring(ctx, now); err != nil {
		s.log.Warn("sending expiry warnings failed", "error", err.Error())
	} else if warned > 0 {
		s.log.Info("expiry warnings sent", "keys", warned)
	}
	swept, err := s.store.Sweep(ctx, tenants.Retention{IdempotencyKeys: s.cfg.IdempotencyTTL, Events: s.cfg.EventRetention})
	if err != nil {
		s.log.Warn("sweeping failed", "error", err.Error())
	}
	if swept != (tenants.Swept{}) {
		s.log.Info("swept", "idempotency_keys", swept.IdempotencyKeys, "webhook_deliveries", swept.Deliveries, "events", swept.Events,
			"key_usage_hours", swept.Usage)
	}
}
