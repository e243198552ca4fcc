package keys

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Several replicas on one database each cache principals, and each must see the others'
// changes. Every change of credentials increments the credential epoch in its transaction
// (tenants.RecordEvent), and on PostgreSQL a notice "<epoch> <organization id>" goes out when it
// commits. A replica invalidates the organization named by each notice at once; it also reads
// the epoch every poll interval, and an increment that neither a notice nor its own commit
// accounted for by the next poll flushes its whole cache. So a change made through one replica
// is honoured by every other within the notice's delay, and within two poll intervals (plus a
// query) when notices are lost; a lost listening connection flushes everything too.

// DefaultEpochPoll is how often the credential epoch is read: changes reach other replicas
// within twice this even without notices.
const DefaultEpochPoll = 250 * time.Millisecond

// epochs tracks which increments of the credential epoch this process has accounted for.
type epochs struct {
	mu         sync.Mutex
	contiguous uint64          // every increment up to this one is accounted for
	ahead      map[uint64]bool // accounted for, beyond contiguous
}

func (e *epochs) account(n uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if n <= e.contiguous {
		return
	}
	e.ahead[n] = true
	for e.ahead[e.contiguous+1] {
		delete(e.ahead, e.contiguous+1)
		e.contiguous++
	}
}

func (e *epochs) upTo() uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.contiguous
}

func (e *epochs) reset(n uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if n > e.contiguous {
		e.contiguous = n
	}
	clear(e.ahead)
}

// FollowReplicas keeps the principal cache exact when other processes change credentials in
// the same database, until ctx ends. listen, when not nil, delivers the database's notices
// ("<epoch> <organization id>") and reports when some may have been lost (it runs until ctx
// ends). Without CachePrincipals it does nothing.
func (s *Service) FollowReplicas(ctx context.Context, listen func(ctx context.Context, notice func(string), lost func(error)),
	poll time.Duration, log *slog.Logger) {
	if s.cache == nil {
		return
	}
	start, err := s.readEpoch(ctx)
	if err != nil {
		log.Warn("reading the credential epoch failed; the cache is flushed at the first change", "error", err.Error())
	}
	s.epochs.reset(start)
	if listen != nil {
		go listen(ctx, func(payload string) {
			n, org, ok := strings.Cut(payload, " ")
			epoch, err := strconv.ParseUint(n, 10, 64)
			if !ok || err != nil {
				s.cache.invalidate("")
				return
			}
			s.cache.invalidate(org)
			s.epochs.account(epoch)
		}, func(err error) {
			s.cache.invalidate("")
			log.Warn("the connection listening for credential changes was lost; the cache is flushed and it listens again",
				"error", err.Error())
		})
	}
	go func() {
		t := time.NewTicker(poll)
		defer t.Stop()
		var suspect uint64 // an epoch read at the previous poll and not accounted for then
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			n, err := s.readEpoch(ctx)
			if err != nil {
				continue // the database is away: no change commits meanwhile either
			}
			switch seen := s.epochs.upTo(); {
			case n <= seen:
				suspect = 0
			case suspect != 0 && seen < suspect:
				s.cache.invalidate("")
				s.epochs.reset(n)
				suspect = 0
			default:
				suspect = n
			}
		}
	}()
}

func (s *Service) readEpoch(ctx context.Context) (uint64, error) {
	var n uint64
	err := s.DB.GetContext(ctx, &n, `SELECT n FROM credential_epoch WHERE id = 1`)
	return n, err
}
