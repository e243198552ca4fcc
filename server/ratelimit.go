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
// token counts as its key), and for failed authentications per client address, so keys
// cannot be guessed quickly. Behind N replicas the effective limits are N times these.
const (
	DefaultRatePerSecond     = 100 // requests per second per credential, sustained
	DefaultRateBurst         = 200
	DefaultAuthFailuresPerIP = 1.0 // failed authentications per second per client address
	DefaultAuthFailureBurst  = 20
)

// limiters hands out one bucket per name and forgets buckets idle long enough to be full.
type limiters struct {
	mu      sync.Mutex
	perSec  rate.Limit
	burst   int
	buckets map[string]*bucket
	swept   time.Time
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

func newLimiters(perSecond float64, burst int) *limiters {
	if perSecond <= 0 {
		return nil // no limit
	}
	return &limiters{perSec: rate.Limit(perSecond), burst: burst, buckets: map[string]*bucket{}, swept: time.Now()}
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

// setRateHeaders announces a credential's limit (draft-ietf-httpapi-ratelimit-headers).
func setRateHeaders(c *gin.Context, limit, remaining int, reset time.Duration) {
	setHeader(c, "Ratelimit-Limit", strconv.Itoa(limit))
	setHeader(c, "Ratelimit-Remaining", strconv.Itoa(remaining))
	setHeader(c, "Ratelimit-Reset", strconv.Itoa(int(math.Ceil(reset.Seconds()))))
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
