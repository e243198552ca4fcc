package delivery_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"code.dny.dev/ssrf"
	"github.com/jmoiron/sqlx"

	"github.com/tenantry/tenantry/keys"
	"github.com/tenantry/tenantry/migrations"
	"github.com/tenantry/tenantry/server/delivery"
	"github.com/tenantry/tenantry/server/servertest"
	"github.com/tenantry/tenantry/tenants"
)

// outbox is a migrated database with one partner's owner organization to queue events in.
type outbox struct {
	t         *testing.T
	db        *sqlx.DB
	partnerID string
	orgID     string
}

func newOutbox(t *testing.T) *outbox {
	t.Helper()
	db, err := migrations.OpenAndMigrate(context.Background(), filepath.Join(t.TempDir(), "tenantry.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	p, err := keys.NewService(db).CreatePartner(context.Background(), "Partner", func(string) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	return &outbox{t: t, db: db, partnerID: p.ID, orgID: p.OwnerOrgID}
}

const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// webhook inserts an enabled webhook directly, bypassing the API's endpoint check (as a
// webhook whose name resolved to a public address when it was created would be).
func (o *outbox) webhook(endpoint string) string {
	o.t.Helper()
	id, now := tenants.NewID(), tenants.Now()
	if _, err := o.db.Exec(o.db.Rebind(`INSERT INTO webhooks (id, org_id, endpoint, secret, event_types, enabled, created_at, updated_at)
		VALUES (?, ?, ?, ?, '', TRUE, ?, ?)`), id, o.orgID, endpoint, testSecret, now, now); err != nil {
		o.t.Fatal(err)
	}
	return id
}

// events records n events through the real outbox path (one transaction each).
func (o *outbox) events(n int) []string {
	o.t.Helper()
	var ids []string
	for i := range n {
		err := tenants.Conn{DB: o.db}.Write(context.Background(), func(tx *tenants.Tx) error {
			return tenants.RecordEvent(context.Background(), tx, nil, o.partnerID, o.orgID, "dataset.created", map[string]any{"n": i})
		})
		if err != nil {
			o.t.Fatal(err)
		}
	}
	o.db.Select(&ids, `SELECT id FROM events ORDER BY id`)
	return ids
}

type deliveryRow struct {
	State    string `db:"state"`
	Attempts int    `db:"attempts"`
}

func (o *outbox) deliveries() []deliveryRow {
	var out []deliveryRow
	if err := o.db.Select(&out, `SELECT state, attempts FROM webhook_deliveries ORDER BY id`); err != nil {
		o.t.Fatal(err)
	}
	return out
}

func (o *outbox) attemptErrors() []string {
	var out []string
	o.db.Select(&out, `SELECT error FROM webhook_attempts ORDER BY attempted_at`)
	return out
}

// sink is a receiver counting requests per webhook-id.
type sink struct {
	srv   *httptest.Server
	mu    sync.Mutex
	byID  map[string]int
	total int
	delay time.Duration
}

func newSink(t *testing.T, delay time.Duration) *sink {
	s := &sink{byID: map[string]int{}, delay: delay}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		time.Sleep(s.delay)
		s.mu.Lock()
		s.byID[r.Header.Get("webhook-id")]++
		s.total++
		s.mu.Unlock()
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *sink) counts() (distinct, total int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byID), s.total
}

func fast(allowPrivate bool) delivery.Config {
	return delivery.Config{AllowPrivate: allowPrivate, PollInterval: 10 * time.Millisecond, BaseBackoff: 20 * time.Millisecond,
		MaxBackoff: 50 * time.Millisecond, MaxAttempts: 3, Timeout: 2 * time.Second}
}

// The Standard Webhooks specification's example: secret, id, timestamp and body, and the
// signature its reference libraries compute for them.
func TestDeliverySignatureVector(t *testing.T) {
	t.Parallel()
	standard, polytomic, err := delivery.Signature(testSecret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, []byte(`{"test": 2432232314}`))
	if err != nil {
		t.Fatal(err)
	}
	if standard != "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=" {
		t.Fatalf("webhook-signature %s does not match the specification's example", standard)
	}
	if len(polytomic) != 64 || strings.Trim(polytomic, "0123456789abcdef") != "" {
		t.Fatalf("Polytomic-Signature %q is not hex SHA-256", polytomic)
	}
	// A plain secret (Polytomic's clients send one) is its own key.
	plainStd, plainHex, err := delivery.Signature("a-plain-shared-secret", "id", 1, []byte("{}"))
	mac := hmac.New(sha256.New, []byte("a-plain-shared-secret"))
	mac.Write([]byte("{}"))
	if err != nil || plainHex != hex.EncodeToString(mac.Sum(nil)) || !strings.HasPrefix(plainStd, "v1,") {
		t.Fatalf("plain secret: %q %q %v", plainStd, plainHex, err)
	}
}

func TestDeliveryBlockedAddresses(t *testing.T) {
	t.Parallel()
	for addr, blocked := range map[string]bool{
		"127.0.0.1": true, "127.255.0.9": true, "10.1.2.3": true, "172.16.0.1": true, "172.31.255.255": true, "192.168.0.1": true,
		"169.254.169.254": true, "100.64.0.1": true, "100.127.255.254": true, "0.0.0.0": true, "224.0.0.251": true,
		"255.255.255.255": true, "192.0.2.10": true, "::1": true, "::": true, "fe80::1": true, "fc00::1": true, "fd12:3456::1": true,
		"ff02::1": true, "fe80::1%eth0": true, "fd00::1%1": true, "::ffff:10.0.0.1": true, "::ffff:127.0.0.1": true, "64:ff9b::7f00:1": true, "2001:db8::1": true,
		"93.184.215.14": false, "8.8.8.8": false, "172.32.0.1": false, "100.128.0.1": false, "2606:4700::1111": false,
		"::ffff:8.8.8.8": false, "64:ff9b::808:808": false,
		// IPv6 transition and special-purpose ranges.
		"::127.0.0.1": true, "::a00:1": true, "64:ff9b:1::a00:1": true, "64:ff9b::a00:1": true, "2002:7f00:1::": true,
		"2002:808:808::1": true, "2001:0:4136:e378::1": true, "100::1": true, "192.88.99.1": true, "3fff::1": true,
	} {
		if got := delivery.Blocked(netip.MustParseAddr(addr)) != ""; got != blocked {
			t.Errorf("Blocked(%s) = %v, want %v", addr, got, blocked)
		}
	}
	// The deny-list is the library's: every range it lists is refused, first and last address.
	for _, p := range append(append([]netip.Prefix(nil), ssrf.IPv4DeniedPrefixes...), ssrf.IPv6DeniedPrefixes...) {
		for _, ip := range []netip.Addr{p.Addr(), lastAddr(p)} {
			if delivery.Blocked(ip) == "" {
				t.Errorf("Blocked(%s) = \"\", but the deny-list has %s", ip, p)
			}
		}
	}
}

// lastAddr is the highest address in p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 1 << (7 - i%8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

func TestDeliveryCheckEndpoint(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	strict, open := delivery.Guard{}, delivery.Guard{AllowPrivate: true}
	for _, tc := range []struct {
		endpoint     string
		strict, open string // a fragment of the problem, or "" for allowed
	}{
		{"https://93.184.215.14/hook", "", ""},
		{"http://93.184.215.14/hook", "https", ""},
		{"https://127.0.0.1:8443/hook", "loopback", ""},
		{"https://[::1]/hook", "loopback", ""},
		{"https://localhost/hook", "resolves to a loopback", ""},
		{"http://localhost:1/hook", "https", ""},
		{"https://no-such-host.invalid/", "does not resolve", "does not resolve"},
	} {
		u, _ := url.Parse(tc.endpoint)
		for _, c := range []struct {
			g    delivery.Guard
			want string
		}{{strict, tc.strict}, {open, tc.open}} {
			got := c.g.CheckEndpoint(ctx, u)
			if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
				t.Errorf("%s (AllowPrivate %v): %q, want %q", tc.endpoint, c.g.AllowPrivate, got, c.want)
			}
		}
	}
}

// The guard runs again when connecting, on the address actually dialed: an endpoint that
// passed the check at creation but now reaches a loopback address (DNS rebinding, or a row
// written by an older version) is refused and nothing is sent.
func TestDeliveryConnectTimeGuard(t *testing.T) {
	t.Parallel()
	o := newOutbox(t)
	s := newSink(t, 0)
	port := s.srv.URL[strings.LastIndexByte(s.srv.URL, ':')+1:]
	o.webhook(s.srv.URL + "/by-address")
	o.webhook("http://localhost:" + port + "/by-name")
	o.events(1)
	w := delivery.New(o.db, nil, fast(false))
	w.Start()
	defer w.Stop()
	servertest.Eventually(t, 10*time.Second, "both deliveries fail for good", func() bool {
		d := o.deliveries()
		return len(d) == 2 && d[0].State == "failed" && d[1].State == "failed"
	})
	if _, total := s.counts(); total != 0 {
		t.Fatalf("the receiver on loopback got %d requests", total)
	}
	errs := o.attemptErrors()
	if len(errs) != 6 {
		t.Fatalf("attempts: %v", errs)
	}
	for _, e := range errs {
		if !strings.Contains(e, "guard refused") || !strings.Contains(e, "loopback") || strings.Contains(e, "/by-") {
			t.Fatalf("attempt error %q: want the guard's refusal, without the URL", e)
		}
	}
}

// The connection-time check refuses the IPv6 transition and special-purpose ranges as well,
// before any packet is sent: the hook is called directly with the addresses the dialer would
// pass it (dialing them for real could leave the machine were the guard wrong).
func TestDeliveryConnectTimeGuardTransitionRanges(t *testing.T) {
	t.Parallel()
	g := delivery.Guard{}
	for _, tc := range []struct {
		network, address string
		refused          bool
	}{
		{"tcp6", "[::127.0.0.1]:443", true},           // IPv4-compatible (::/96)
		{"tcp6", "[::a00:1]:8443", true},              // IPv4-compatible, 10.0.0.1
		{"tcp6", "[64:ff9b:1::a00:1]:443", true},      // NAT64 local-use (64:ff9b:1::/48)
		{"tcp6", "[64:ff9b::a00:1]:443", true},        // NAT64 well-known prefix, private IPv4
		{"tcp6", "[64:ff9b::7f00:1]:443", true},       // NAT64 well-known prefix, loopback
		{"tcp6", "[2002:7f00:1::]:443", true},         // 6to4 of 127.0.0.1
		{"tcp6", "[2002:808:808::1]:443", true},       // 6to4, whatever it carries
		{"tcp6", "[2001:0:4136:e378::1]:443", true},   // Teredo
		{"tcp6", "[100::1]:443", true},                // discard-only (100::/64)
		{"tcp6", "[::ffff:127.0.0.1]:443", true},      // IPv4-mapped loopback
		{"tcp6", "[::ffff:169.254.169.254]:80", true}, // IPv4-mapped link-local
		{"tcp4", "192.88.99.1:443", true},             // 6to4 relay anycast
		{"tcp4", "127.0.0.1:443", true},               // plain loopback still refused
		{"tcp6", "[fe80::1%eth0]:443", true},          // link-local with a zone
		{"udp4", "8.8.8.8:53", true},                  // not a network deliveries use
		{"tcp6", "[2606:4700::1111]:443", false},      // public IPv6
		{"tcp6", "[64:ff9b::808:808]:443", false},     // NAT64 of a public IPv4
		{"tcp4", "8.8.8.8:8443", false},               // public IPv4, any port
	} {
		err := g.Control(tc.network, tc.address)
		if (err != nil) != tc.refused {
			t.Errorf("%s %s: refused %v (%v), want %v", tc.network, tc.address, err != nil, err, tc.refused)
		}
		if err != nil && tc.network != "udp4" && !strings.Contains(err.Error(), "webhooks may only reach public addresses") {
			t.Errorf("%s: the refusal should say why: %v", tc.address, err)
		}
	}
}

// Several workers on one database (as several replicas would be) share the outbox: every
// delivery is sent exactly once when no lease expires.
func TestDeliveryWorkersClaimExclusively(t *testing.T) {
	t.Parallel()
	o := newOutbox(t)
	s := newSink(t, 5*time.Millisecond)
	o.webhook(s.srv.URL)
	const n = 120
	o.events(n)
	var workers []*delivery.Worker
	for range 4 {
		cfg := fast(true)
		cfg.BatchSize = 7
		w := delivery.New(o.db, nil, cfg)
		w.Start()
		workers = append(workers, w)
	}
	servertest.Eventually(t, 20*time.Second, "every delivery arrives", func() bool { d, _ := s.counts(); return d == n })
	for _, w := range workers {
		w.Stop()
	}
	distinct, total := s.counts()
	if distinct != n || total != n {
		t.Fatalf("%d requests for %d events: a delivery was sent twice", total, distinct)
	}
	for _, d := range o.deliveries() {
		if d.State != "delivered" || d.Attempts != 1 {
			t.Fatalf("delivery: %+v", d)
		}
	}
}

// A delivery whose lease is held (by a worker that crashed mid-attempt) is not sent until the
// lease expires, then it is.
func TestDeliveryLeaseExpiry(t *testing.T) {
	t.Parallel()
	o := newOutbox(t)
	s := newSink(t, 0)
	o.webhook(s.srv.URL)
	o.events(1)
	expires := tenants.Now().Add(400 * time.Millisecond)
	if _, err := o.db.Exec(o.db.Rebind(`UPDATE webhook_deliveries SET locked_until = ?`), expires); err != nil {
		t.Fatal(err)
	}
	w := delivery.New(o.db, nil, fast(true))
	w.Start()
	defer w.Stop()
	time.Sleep(250 * time.Millisecond)
	if _, total := s.counts(); total != 0 {
		t.Fatalf("a leased delivery was sent before its lease expired")
	}
	servertest.Eventually(t, 5*time.Second, "the delivery is sent once the lease expires", func() bool { _, total := s.counts(); return total == 1 })
	if time.Now().Before(expires) {
		t.Fatalf("sent before the lease expired")
	}
}

// Stop lets the attempt in flight finish and records it.
func TestDeliveryStopFinishesInFlight(t *testing.T) {
	t.Parallel()
	o := newOutbox(t)
	s := newSink(t, 400*time.Millisecond)
	o.webhook(s.srv.URL)
	o.events(1)
	w := delivery.New(o.db, nil, fast(true))
	w.Start()
	servertest.Eventually(t, 5*time.Second, "the attempt starts", func() bool {
		var locked int
		o.db.Get(&locked, `SELECT COUNT(*) FROM webhook_deliveries WHERE locked_until IS NOT NULL`)
		return locked == 1
	})
	start := time.Now()
	w.Stop()
	if d := o.deliveries(); d[0].State != "delivered" || time.Since(start) < 100*time.Millisecond {
		t.Fatalf("Stop returned after %s with the delivery %+v; it must wait for the attempt", time.Since(start), d[0])
	}
	w.Stop() // a second Stop is harmless
}

// A delivery pending for a disabled webhook is never sent (the API also fails such
// deliveries when it disables a webhook; this is the worker's own check).
func TestDeliveryDisabledWebhookSkipped(t *testing.T) {
	t.Parallel()
	o := newOutbox(t)
	s := newSink(t, 0)
	id := o.webhook(s.srv.URL)
	o.events(2)
	if _, err := o.db.Exec(o.db.Rebind(`UPDATE webhooks SET enabled = FALSE WHERE id = ?`), id); err != nil {
		t.Fatal(err)
	}
	w := delivery.New(o.db, nil, fast(true))
	w.Start()
	time.Sleep(200 * time.Millisecond)
	w.Stop()
	if _, total := s.counts(); total != 0 {
		t.Fatalf("a disabled webhook received %d requests", total)
	}
	for _, d := range o.deliveries() {
		if d.State != "pending" || d.Attempts != 0 {
			t.Fatalf("delivery of a disabled webhook: %+v", d)
		}
	}
}

func TestDeliveryBackoffSchedule(t *testing.T) {
	t.Parallel()
	def := delivery.Config{}.WithDefaults()
	if def.PollInterval != time.Second || def.Timeout != 10*time.Second || def.MaxAttempts != 5 || def.BatchSize != 20 ||
		def.BaseBackoff != 4*time.Minute || def.MaxBackoff != time.Hour || def.AllowPrivate {
		t.Fatalf("defaults: %+v", def)
	}
	// The ceiling of the wait after attempt n doubles from BaseBackoff up to MaxBackoff; the
	// wait itself is uniformly random below it (full jitter).
	for n, ceiling := range map[int]time.Duration{1: 4 * time.Minute, 2: 8 * time.Minute, 3: 16 * time.Minute, 4: 32 * time.Minute, 5: time.Hour, 9: time.Hour} {
		var maxSeen, minSeen time.Duration = 0, ceiling
		for range 2000 {
			d := def.Backoff(n)
			if d < 0 || d > ceiling {
				t.Fatalf("Backoff(%d) = %s, outside [0, %s]", n, d, ceiling)
			}
			maxSeen, minSeen = max(maxSeen, d), min(minSeen, d)
		}
		if maxSeen < ceiling*9/10 || minSeen > ceiling/10 {
			t.Fatalf("Backoff(%d) does not spread over [0, %s]: saw %s..%s", n, ceiling, minSeen, maxSeen)
		}
	}
	if lease := def.Lease(); lease != 25*time.Second {
		t.Fatalf("lease %s", lease)
	}
}

// Receivers' answers are read only up to a bound, and a slow receiver times out as a failed
// attempt with no status.
func TestDeliveryTimeoutAndLargeAnswers(t *testing.T) {
	t.Parallel()
	o := newOutbox(t)
	var mu sync.Mutex
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		if n == 1 {
			time.Sleep(600 * time.Millisecond) // beyond the timeout
			return
		}
		w.Write([]byte(strings.Repeat("x", 1<<20))) // a 1 MiB answer
	}))
	defer srv.Close()
	o.webhook(srv.URL)
	o.events(1)
	cfg := fast(true)
	cfg.Timeout = 300 * time.Millisecond
	w := delivery.New(o.db, nil, cfg)
	w.Start()
	defer w.Stop()
	servertest.Eventually(t, 5*time.Second, "delivered on the second attempt", func() bool {
		d := o.deliveries()
		return d[0].State == "delivered"
	})
	var attempts []struct {
		Status  *int   `db:"status_code"`
		Error   string `db:"error"`
		Latency int64  `db:"latency_ms"`
	}
	o.db.Select(&attempts, `SELECT status_code, error, latency_ms FROM webhook_attempts ORDER BY attempted_at`)
	if len(attempts) != 2 || attempts[0].Status != nil || !strings.Contains(attempts[0].Error, "timeout") || attempts[0].Latency < 250 ||
		attempts[1].Status == nil || *attempts[1].Status != 200 {
		b, _ := json.Marshal(attempts)
		t.Fatalf("attempts: %s", b)
	}
}
