package server

import (
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/time/rate"
)

// Rate limits are token buckets kept in each replica's memory: per credential (a key; a
// token counts as its key), for failed authentications per client address, so keys cannot be
// guessed quickly, and for reports of leaked credentials per client address. Behind N
// replicas the effective limits are N times these.
const (
	DefaultRatePerSecond     = 100 // requests per second per credential, sustained
	DefaultRateBurst         = 200
	DefaultAuthFailuresPerIP = 1.0 // failed authentications per second per client address
	DefaultAuthFailureBurst  = 20
	DefaultReportsPerIP      = 1.0 // reports of leaked credentials per second per client address
	DefaultReportBurst       = 10
)

// limiters hands out one bucket per name and forgets buckets idle long enough to be full.
type limiters struct {
	policyName string // what a bucket is per, in the RateLimit fields: "credential" or "address"
	mu         sync.Mutex
	perSec     rate.Limit
	burst      int
	buckets    map[string]*bucket
	swept      time.Time
	policy     []string // the RateLimit-Policy field, the same on every response (shared, never changed)
	limit      []string // the RateLimit-Limit field, the burst (shared, never changed)
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

func newLimiters(policyName string, perSecond float64, burst int) *limiters {
	if perSecond <= 0 {
		return nil // no limit
	}
	return &limiters{policyName: policyName, perSec: rate.Limit(perSecond), burst: burst, buckets: map[string]*bucket{},
		swept: time.Now(), policy: []string{ratePolicy(policyName, perSecond, burst)}, limit: []string{strconv.Itoa(burst)}}
}

// The RateLimit-Policy and RateLimit fields follow draft-ietf-httpapi-ratelimit-headers-11
// (May 2026, the draft's latest); RateLimit-Limit, -Remaining and -Reset are those of its
// draft 06, which clients still read.

// ratePolicy is the RateLimit-Policy of a token bucket: its rate as a quota q per window w of
// whole seconds (100 a second: q=100;w=1; one every 4 s: q=1;w=4), and the bucket's size as
// tenantry-burst (the draft's vendor-prefixed parameter), the requests that may come at once.
func ratePolicy(name string, perSecond float64, burst int) string {
	q, w := int(math.Floor(perSecond)), 1
	if perSecond < 1 {
		q, w = 1, int(math.Ceil(1/perSecond))
	}
	return `"` + name + `";q=` + strconv.Itoa(q) + ";w=" + strconv.Itoa(w) + ";tenantry-burst=" + strconv.Itoa(burst)
}

// maxBuckets bounds a limiter's memory: past it, idle buckets are swept at once.
const maxBuckets = 100_000

func (l *limiters) get(name string, now time.Time) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) > time.Minute || len(l.buckets) > maxBuckets {
		// A bucket idle for longer than it takes to refill is full: forgetting it changes nothing.
		full := time.Duration(float64(l.burst)/float64(l.perSec)*float64(time.Second)) + time.Second
		for k, b := range l.buckets {
			if now.Sub(b.seen) > full {
				delete(l.buckets, k)
			}
		}
		l.swept = now
	}
	b, ok := l.buckets[name]
	if !ok {
		b = &bucket{lim: rate.NewLimiter(l.perSec, l.burst)}
		l.buckets[name] = b
	}
	b.seen = now
	return b.lim
}

// take spends one token of name's bucket, and says how many remain and when it is full again.
func (l *limiters) take(name string, now time.Time) (ok bool, remaining int, reset time.Duration) {
	lim := l.get(name, now)
	ok = lim.AllowN(now, 1)
	tokens := lim.TokensAt(now)
	remaining = max(0, int(math.Floor(tokens)))
	reset = time.Duration((float64(l.burst) - tokens) / float64(l.perSec) * float64(time.Second))
	return ok, remaining, reset
}

// exhausted reports whether name's bucket has no token left, without spending one. A name
// without a bucket (a client that never failed) costs no bucket: this runs on every request.
func (l *limiters) exhausted(name string, now time.Time) bool {
	l.mu.Lock()
	b, ok := l.buckets[name]
	l.mu.Unlock()
	return ok && b.lim.TokensAt(now) < 1
}

// setRateHeaders announces where a credential (or a client address) stands, in draft 11's fields and draft 06's:
// RateLimit-Policy, and RateLimit with r, the requests it may make now, and t, the seconds
// until its bucket is full again or, with none left, until the next request is allowed (the
// 429's Retry-After: the draft wants Retry-After no earlier than the end of t). The draft-06
// fields say the same in their terms: RateLimit-Limit is the burst, -Remaining r, -Reset the
// seconds until full.
func (l *limiters) setRateHeaders(c *gin.Context, remaining int, reset time.Duration) {
	t := int(math.Ceil(reset.Seconds()))
	window := t
	if remaining == 0 {
		window = int(math.Ceil(l.retryAfter().Seconds()))
	}
	// This runs on every request: the constant fields are shared, the others share one array.
	r := strconv.Itoa(remaining)
	var b [64]byte
	rl := append(append(append(append(append(append(b[:0], '"'), l.policyName...), `";r=`...), r...), ";t="...), strconv.Itoa(window)...)
	vals := []string{string(rl), r, strconv.Itoa(t)}
	h := c.Writer.Header()
	h["Ratelimit-Policy"] = l.policy
	h["Ratelimit"] = vals[0:1:1]
	h["Ratelimit-Limit"] = l.limit
	h["Ratelimit-Remaining"] = vals[1:2:2]
	h["Ratelimit-Reset"] = vals[2:3:3]
}

// retryAfter is how long a refused credential waits for its next request: the time for one
// token, and at least a second (Retry-After counts whole seconds).
func (l *limiters) retryAfter() time.Duration {
	return max(time.Second, time.Duration(float64(time.Second)/float64(l.perSec)))
}

func errRateLimited(wait time.Duration, what string) *apiError {
	seconds := int(math.Ceil(wait.Seconds()))
	return newAPIError(http.StatusTooManyRequests, "rate_limited", "Too many requests %s; retry after %d seconds.", what, seconds).
		with("retry_after_seconds", seconds)
}

// clientKey is the rate-limit identity of a client address: the address itself for IPv4,
// its /64 for IPv6 (one host is often given a whole /64).
func clientKey(ip string) string {
	addr, err := netip.ParseAddr(ip)
	if err != nil || addr.Is4() || addr.Is4In6() {
		return ip
	}
	p, _ := addr.Prefix(64)
	return p.String()
}
