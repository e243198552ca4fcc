package keys

import (
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/tenantry/tenantry/tenants"
)

// The principal cache makes authenticating a known credential cost a map lookup: no query for
// a key, no signature check for a token already verified. It never answers stale:
//   - every committed change that can alter what a credential may do invalidates its
//     organization's entries (a commit hook fed by the change's event, see tenants.Tx), before
//     the change's response is sent; other replicas learn of it through the database (see
//     replicas.go);
//   - an entry records the invalidation count from before the query that filled it, so a fill
//     that raced with a change is never used;
//   - expiry (of a key, of a rotated-out value's grace period, of a token) is checked at each
//     use, never cached past.
//
// It is bounded: least recently used entries are evicted past its size.

// Default cache sizes: at most 800 bytes a key, 1,200 a token (TestPrincipalCacheIsBounded).
const (
	DefaultCachedKeys   = 50_000
	DefaultCachedTokens = 20_000
)

type principalCache struct {
	keys   *lru.Cache[string, *cachedKey]   // by secret hash ("h" + hash) or parent ("p" + key id + secret id)
	tokens *lru.Cache[string, *cachedToken] // by the token itself

	mu   sync.RWMutex
	seq  uint64            // invalidations so far
	all  uint64            // seq of the last invalidation of everything
	orgs map[string]uint64 // organization id → seq of its last invalidation
}

// cachedKey is a key's principal as its query found it, before expiry is checked.
type cachedKey struct {
	p             tenants.Principal
	keyExpires    time.Time // zero: never
	secretExpires time.Time // zero: not rotated out
	seq           uint64    // the invalidation count before the query that filled it
	// tokensRevokedUntil: the key's tokens issued at or before it are revoked (zero: none).
	tokensRevokedUntil time.Time
}

// cachedToken is a token whose signature, issuer, audience and shape were verified.
type cachedToken struct {
	claims tokenClaims
	until  time.Time // its expiry, or its signing key's retirement if earlier
}

func newPrincipalCache(keys, tokens int) *principalCache {
	k, _ := lru.New[string, *cachedKey](max(keys, 1))
	t, _ := lru.New[string, *cachedToken](max(tokens, 1))
	return &principalCache{keys: k, tokens: t, orgs: map[string]uint64{}}
}

// begin is the invalidation count to give an entry filled by a query that starts now.
func (c *principalCache) begin() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.seq
}

// key returns the cached principal of id, if it is there and no invalidation of its
// organization has happened since the query that filled it.
func (c *principalCache) key(id string) (*cachedKey, bool) {
	e, ok := c.keys.Get(id)
	if !ok {
		return nil, false
	}
	c.mu.RLock()
	fresh := e.seq >= c.all && e.seq >= c.orgs[e.p.OrgID]
	c.mu.RUnlock()
	if !fresh {
		c.keys.Remove(id)
		return nil, false
	}
	return e, true
}

func (c *principalCache) putKey(id string, e *cachedKey) { c.keys.Add(id, e) }

// token returns a token verified before and not yet expired.
func (c *principalCache) token(value string, now time.Time) (*cachedToken, bool) {
	t, ok := c.tokens.Get(value)
	if !ok || !now.Before(t.until) {
		return nil, false
	}
	return t, true
}

func (c *principalCache) putToken(value string, t *cachedToken) { c.tokens.Add(value, t) }

// invalidate drops the entries of the organizations named ("" for every organization).
func (c *principalCache) invalidate(orgIDs ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	for _, id := range orgIDs {
		if id == "" {
			c.all = c.seq
			clear(c.orgs) // older than everything now
			return
		}
		c.orgs[id] = c.seq
	}
}

// onCommit invalidates what a committed transaction changed.
func (c *principalCache) onCommit(changes []tenants.Change) {
	var orgs []string
	for _, ch := range changes {
		if ch.ChangesCredentials() {
			orgs = append(orgs, ch.OrgID)
		}
	}
	if len(orgs) > 0 {
		c.invalidate(orgs...)
	}
}

// expiry checks a cached key at now, as principalOf checks a fresh one.
func (e *cachedKey) expiry(now time.Time) error {
	switch {
	case !e.keyExpires.IsZero() && !e.keyExpires.After(now):
		return refused("expired")
	case !e.secretExpires.IsZero() && !e.secretExpires.After(now):
		return refused("rotated_out")
	}
	return nil
}
