package server

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/tenantry/tenantry/migrations"
	"github.com/tenantry/tenantry/tenants"
)

// Idempotency-Key: a write sent again with the same key by the same credential gets the first
// response again, byte for byte, instead of being done twice. Records live in the database,
// so every replica (and a restarted one) sees them, and a successful change and its record
// commit in one transaction: either both happened or neither did.

const idempotencyHeader = "Idempotency-Key"

var validIdempotencyKey = regexp.MustCompile(`^[A-Za-z0-9_-]{8,255}$`)

// idempotencyStale is how long an in-flight record may go without finishing before a repeat
// may take it over: longer than any request runs (the server's write timeout is 30 s), so it
// only fires when the process that held it died.
const idempotencyStale = 2 * time.Minute

// replayedHeaders are the response headers stored and replayed with a response.
var replayedHeaders = []string{"Content-Type", "Cache-Control", "Allow", "WWW-Authenticate"}

// idempotency makes writes carrying Idempotency-Key safe to retry. It runs after
// authentication: records are per credential, and a request without a valid credential was
// answered 401 already. A request that matches no route is never compared with a record nor
// recorded: its 404 or 405 comes first. A key sent empty is malformed, not absent.
func (s *Server) idempotency(c *gin.Context) {
	key, sent := sentHeader(c.Request, idempotencyHeader)
	switch c.Request.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
	default:
		c.Next() // ignored on reads
		return
	}
	if r := s.matchedRoute(c); !sent || r == nil || r.policy.safe {
		c.Next() // no key, no route (its 404 or 405 comes first), or a POST that changes nothing
		return
	}
	if !validIdempotencyKey.MatchString(key) {
		s.writeError(c, newAPIError(http.StatusBadRequest, "invalid_idempotency_key",
			"Idempotency-Key must be 8 to 255 characters of letters, digits, '-' and '_'; a UUID is a good choice.").
			with("header", idempotencyHeader))
		return
	}
	v, ok := c.Get(ctxPrincipal)
	if !ok || versionGate(c, s.matchedRoute(c)) != nil {
		// Not for this credential, or not at this version (404 not_available_in_version):
		// never recorded, so the key stays free for the request it was meant for.
		c.Next()
		return
	}
	credential := credentialOf(v.(*tenants.Principal))
	record := tenants.IdempotencyKey{Credential: credential, Key: key}
	body, err := io.ReadAll(c.Request.Body)
	if err != nil {
		s.writeError(c, errBodyTooLarge)
		return
	}
	c.Request.Body = io.NopCloser(bytes.NewReader(body))
	box := newResponseBox(c.GetString(ctxCredentialValue), credential, key)
	fingerprint := box.fingerprint(fmt.Appendf(nil, "%s\n%s\n%s\n%s\n%s", c.Request.Method, c.Request.URL.EscapedPath(),
		c.Request.URL.RawQuery, version(c), body))
	ctx := c.Request.Context()

	owned, rec, err := s.store.ClaimIdempotencyKey(ctx, record, fingerprint, idempotencyStale)
	switch {
	case err != nil:
		s.writeError(c, err)
		return
	case !owned && !bytes.Equal(rec.Fingerprint, fingerprint):
		s.writeError(c, newAPIError(http.StatusUnprocessableEntity, "idempotency_key_reused",
			"This Idempotency-Key was used for a different request (method, path, query or body); use a new key for a new request."))
		return
	case !owned && rec.State == tenants.IdempotencyInFlight:
		c.Header("Retry-After", "1")
		s.writeError(c, newAPIError(http.StatusConflict, "idempotency_key_in_use",
			"A request with this Idempotency-Key is still being processed; retry once it has finished."))
		return
	case !owned && v.(*tenants.Principal).InGrace && strings.Contains(rec.Headers.String, "no-store"):
		// A credential (a key value, say) handed out by that response must not reach a value
		// rotated out since: the replay would give whoever still holds it the new one.
		s.writeError(c, tenants.Errorf(tenants.ErrForbidden, "rotated_key_value",
			"This key value has been rotated out since; a response carrying a credential is not replayed to it."))
		return
	case !owned:
		body, err := box.open(rec.Body, fingerprint)
		if err != nil {
			s.writeError(c, fmt.Errorf("open a stored response: %w", err))
			return
		}
		s.metrics.replays.Inc()
		replay(c, rec, body)
		return
	}
	record.ClaimedAt = rec.UpdatedAt // this claim's: its record's finish and release are its own
	s.runIdempotent(c, record, box, fingerprint)
}

// A responseBox encrypts the responses stored for replay, which may carry credentials (a
// minted key, a token, a webhook secret), under a key derived from the raw credential value
// that sent the request and the Idempotency-Key. The server sees that value on every request
// and never stores it, so a reader of the database or of a dump can decrypt no response, nor
// test a guess of a request body against its fingerprint (an HMAC under the same key).
type responseBox struct{ key []byte }

func newResponseBox(credentialValue, credentialID, idemKey string) responseBox {
	key, err := hkdf.Key(sha256.New, []byte(credentialValue), nil,
		"tenantry idempotency v1\x00"+credentialID+"\x00"+idemKey, 32)
	if err != nil {
		panic(err) // only for a key length SHA-256 cannot give
	}
	return responseBox{key}
}

func (b responseBox) fingerprint(request []byte) []byte {
	mac := hmac.New(sha256.New, b.key)
	mac.Write(request)
	return mac.Sum(nil)
}

func (b responseBox) aead() cipher.AEAD {
	block, _ := aes.NewCipher(b.key)
	gcm, _ := cipher.NewGCM(block)
	return gcm
}

// seal is a stored body: a random nonce and the body encrypted, bound to the request's
// fingerprint.
func (b responseBox) seal(body, fingerprint []byte) []byte {
	gcm := b.aead()
	nonce := make([]byte, gcm.NonceSize(), gcm.NonceSize()+len(body)+gcm.Overhead())
	rand.Read(nonce)
	return gcm.Seal(nonce, nonce, body, fingerprint)
}

func (b responseBox) open(stored, fingerprint []byte) ([]byte, error) {
	gcm := b.aead()
	if len(stored) < gcm.NonceSize() {
		return nil, errors.New("stored response too short")
	}
	return gcm.Open(nil, stored[:gcm.NonceSize()], stored[gcm.NonceSize():], fingerprint)
}

// credentialOf names the exact credential a record belongs to: the key value that sent the
// request (not just its key: a rotated-out value, or a token of the key, must not replay what
// another sent), or the token itself.
func credentialOf(p *tenants.Principal) string {
	if p.IsToken() {
		return "token:" + p.TokenID
	}
	return "value:" + p.SecretID
}

// runIdempotent runs the request in one unit of work that also stores its response, then
// sends the response. The unit's transaction begins at the request's first statement (a
// request refused before one never takes the write lock). A 5xx, 429 or 503 is not stored: the
// record is dropped, so a retry runs again.
func (s *Server) runIdempotent(c *gin.Context, record tenants.IdempotencyKey, box responseBox, fingerprint []byte) {
	ctx := c.Request.Context()
	bg := context.WithoutCancel(ctx) // what must happen even if the client has gone
	release := func() { s.releaseIdempotencyKey(bg, record, requestID(c)) }
	real := c.Writer
	buf := &bufferedWriter{ResponseWriter: real, status: http.StatusOK}
	unit := tenants.NewUnit(s.db)
	c.Writer = buf
	c.Set(ctxUnit, unit)
	defer func() {
		if v := recover(); v != nil {
			// Undo, free the key for a retry, and let recoverPanics answer on the real writer.
			unit.Rollback()
			release()
			c.Writer = real
			panic(v)
		}
	}()
	c.Next()
	c.Writer = real

	status := buf.status
	headers := map[string]string{}
	for _, h := range replayedHeaders {
		if v := real.Header().Get(h); v != "" {
			headers[h] = v
		}
	}
	encoded, _ := json.Marshal(headers)
	sealed := box.seal(buf.body.Bytes(), fingerprint)
	switch {
	case status >= 500 || status == http.StatusTooManyRequests:
		unit.Rollback()
		release()
	case status >= 400:
		// A refusal changed nothing: drop whatever the handler wrote, keep the answer.
		unit.Rollback()
		if err := s.store.FinishIdempotencyKey(bg, record, status, string(encoded), sealed); err != nil {
			// Not stored (the database went away meanwhile, say): free the key, so that its
			// retry is refused again rather than told for 2 minutes that it is in use.
			s.log.ErrorContext(ctx, "storing an idempotent response failed", "request_id", requestID(c), "error", err.Error())
			release()
		}
	default:
		err := s.store.In(unit).FinishIdempotencyKey(bg, record, status, string(encoded), sealed)
		if err == nil {
			err = unit.Commit()
		} else {
			unit.Rollback()
		}
		if err != nil {
			release()
			buf.body.Reset()
			s.writeError(c, fmt.Errorf("commit idempotent request: %w", err))
			return
		}
	}
	real.WriteHeader(status)
	real.Write(buf.body.Bytes())
}

// releaseRetry is how often a release the database could not take is tried again, for at
// most releaseRetryFor: less than idempotencyStale, after which a retry of the request takes the
// record over anyway, and no other request can hold the record before that. At most
// maxPendingReleases wait to be tried again; a record past them goes stale the same way.
const (
	releaseRetry       = 250 * time.Millisecond
	releaseRetryFor    = time.Minute
	maxPendingReleases = 10_000
)

// releaseIdempotencyKey drops record's in-flight record, so that a retry runs the request again.
// When the database cannot be reached or its disk is full, the usual reasons the request
// failed, it is tried again in the background until the database takes it: otherwise every
// retry would get 409 idempotency_key_in_use until the record went stale. A change that did
// commit (a connection lost in COMMIT) left its record done, which a release never drops.
func (s *Server) releaseIdempotencyKey(ctx context.Context, record tenants.IdempotencyKey, requestID string) {
	err := s.store.ReleaseIdempotencyKey(ctx, record)
	switch {
	case err == nil:
	case !releasable(err):
		s.log.ErrorContext(ctx, "releasing an idempotency key failed", "request_id", requestID, "error", err.Error())
	case !s.releases.add(pendingRelease{record, requestID, time.Now().Add(releaseRetryFor)}):
		s.log.ErrorContext(ctx, "releasing an idempotency key failed, and too many wait to be tried again; a retry may take it over once it is stale",
			"request_id", requestID, "error", err.Error())
	}
}

// releases are the releases waiting for the database to be back. One goroutine tries them
// (retryReleases), in order, one per releaseRetry while the database is away, then all, so
// that an outage that failed thousands of requests costs the database no more tries than one.
type releases struct {
	mu      sync.Mutex
	pending []pendingRelease
	wake    chan struct{} // a release is waiting
	ctx     context.Context
	stop    context.CancelFunc // ends the tries, one in progress included
	done    chan struct{}
}

var errReleaseGivenUp = fmt.Errorf("the database did not take it within %s", releaseRetryFor)

type pendingRelease struct {
	record    tenants.IdempotencyKey
	requestID string
	until     time.Time // then it is given up, and goes stale
}

// startReleases starts the goroutine that tries releases again; stopReleases ends it.
func (s *Server) startReleases() {
	ctx, stop := context.WithCancel(context.Background())
	s.releases = &releases{wake: make(chan struct{}, 1), ctx: ctx, stop: stop, done: make(chan struct{})}
	go s.retryReleases()
}

// stopReleases ends the tries: the records still waiting go stale, and a retry takes them over.
func (s *Server) stopReleases() {
	s.releases.stop()
	<-s.releases.done
}

// add queues p, unless too many wait or the server is closing.
func (r *releases) add(p pendingRelease) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.pending) >= maxPendingReleases || r.ctx.Err() != nil {
		return false
	}
	r.pending = append(r.pending, p)
	select {
	case r.wake <- struct{}{}:
	default:
	}
	return true
}

func (s *Server) retryReleases() {
	r := s.releases
	defer close(r.done)
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-r.wake:
		}
		for more := true; more; more = s.tryReleases() {
			select {
			case <-r.ctx.Done():
				return
			case <-time.After(releaseRetry):
			}
		}
	}
}

// tryReleases tries the waiting releases in order until one finds the database still away,
// and reports whether some are left.
func (s *Server) tryReleases() bool {
	r := s.releases
	for {
		r.mu.Lock()
		if len(r.pending) == 0 {
			r.pending = nil // its array, grown in an outage, goes
			r.mu.Unlock()
			return false
		}
		p := r.pending[0]
		r.mu.Unlock()
		err := errReleaseGivenUp
		if time.Now().Before(p.until) {
			err = s.store.ReleaseIdempotencyKey(r.ctx, p.record)
		}
		switch {
		case r.ctx.Err() != nil:
			return false // closing: p and the others go stale
		case err != nil && releasable(err):
			return true // the database is still away: the others wait with p
		case err != nil:
			s.log.Error("releasing an idempotency key failed; a retry may take it over once it is stale",
				"request_id", p.requestID, "error", err.Error())
		}
		r.mu.Lock()
		r.pending = r.pending[1:] // only this goroutine takes from the front
		r.mu.Unlock()
	}
}

// releasable reports whether a release that failed with err may succeed later by itself.
func releasable(err error) bool { return migrations.Unavailable(err) || migrations.StorageFull(err) }

// replay sends a stored response again, its body opened.
func replay(c *gin.Context, rec tenants.IdempotencyRecord, body []byte) {
	var headers map[string]string
	json.Unmarshal([]byte(rec.Headers.String), &headers)
	for k, v := range headers {
		c.Header(k, v)
	}
	c.Header("Idempotent-Replayed", "true")
	c.Writer.WriteHeader(int(rec.Status.Int64))
	c.Writer.Write(body)
	c.Abort()
}

// bufferedWriter holds a response until the transaction behind it has committed.
type bufferedWriter struct {
	gin.ResponseWriter
	status  int
	written bool
	body    bytes.Buffer
}

func (w *bufferedWriter) WriteHeader(code int) {
	if !w.written {
		w.status = code
	}
}
func (w *bufferedWriter) WriteHeaderNow()             { w.written = true }
func (w *bufferedWriter) Write(b []byte) (int, error) { w.written = true; return w.body.Write(b) }
func (w *bufferedWriter) WriteString(s string) (int, error) {
	w.written = true
	return w.body.WriteString(s)
}
func (w *bufferedWriter) Status() int   { return w.status }
func (w *bufferedWriter) Size() int     { return w.body.Len() }
func (w *bufferedWriter) Written() bool { return w.written }
func (w *bufferedWriter) Flush()        {}
