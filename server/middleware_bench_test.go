package server

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/tenantry/tenantry/keys"
	"github.com/tenantry/tenantry/migrations/migrationstest"
	"github.com/tenantry/tenantry/tenants"
)

// BenchmarkMiddleware is the cost of each middleware of the request path, added one at a
// time in the server's order in front of a handler writing fixed JSON, then the whole of
// GET /api/me with a partner key (cached after its first request). No network: the response
// goes to a recorder, and the access log to io.Discard (in production it is a write to
// stderr per request on top of what is measured here).
func BenchmarkMiddleware(b *testing.B) {
	crossCheckStrict = false // the tests' second decoding of every body is not the server's cost
	defer func() { crossCheckStrict = true }()
	db := migrationstest.Open(b)
	s := New(Config{DB: db, Log: slog.New(slog.NewJSONHandler(io.Discard, nil)), AuthFailuresPerSecond: -1})
	b.Cleanup(s.Close)
	var key string
	if _, err := keys.NewService(db).CreatePartner(context.Background(), "Bench", func(v string) error { key = v; return nil }); err != nil {
		b.Fatal(err)
	}
	s.perKey = newLimiters("credential", 1e9, 1e9) // the limiter runs, refusing nothing
	fixed := func(c *gin.Context) {
		c.JSON(http.StatusOK, gin.H{"data": gin.H{"id": "01a2358f-2493-7df3-b7cb-626468e9d9d7", "kind": "partner"}})
	}
	chain := []struct {
		name string
		mw   gin.HandlerFunc
	}{
		{"request id", withRequestID}, {"access log and metrics", s.accessLog}, {"recover", s.recoverPanics},
		{"body limit", limitBody}, {"authenticate and rate limit", s.authenticate}, {"require credential", s.requireCredential},
		{"version", s.negotiateVersion}, {"idempotency", s.idempotency},
	}
	get := func(b *testing.B, h http.Handler, path, key string) {
		req := httptest.NewRequest("GET", path, nil)
		req.Header.Set("Authorization", "Bearer "+key)
		b.ReportAllocs()
		for b.Loop() {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != http.StatusOK {
				b.Fatalf("status %d: %s", w.Code, w.Body)
			}
		}
	}
	run := func(b *testing.B, h http.Handler) { get(b, h, "/api/me", key) }
	for i := 0; i <= len(chain); i++ {
		name := "bare handler"
		if i > 0 {
			name = "+ " + chain[i-1].name
		}
		b.Run(name, func(b *testing.B) {
			e := gin.New()
			for _, m := range chain[:i] {
				e.Use(m.mw)
			}
			e.GET("/api/me", fixed)
			run(b, e)
		})
	}
	b.Run("GET /api/me, the whole server", func(b *testing.B) { run(b, s) })
	ctx := context.Background()
	store, svc := tenants.NewStore(db), keys.NewService(db)
	partner, err := svc.Authenticate(ctx, key)
	if err != nil {
		b.Fatal(err)
	}
	// userKey mints a key for the admin of a new organization, whose key policy allows cidrs.
	userKey := func(org string, cidrs ...string) string {
		org += "-" + uuid.NewString() // each run of a benchmark (-count) makes its own
		o, err := store.CreateOrganization(ctx, partner, tenants.OrganizationInput{Name: org})
		if err != nil {
			b.Fatal(err)
		}
		u, err := store.CreateUser(ctx, partner, o.ID, tenants.UserInput{Email: "admin@" + org + ".test", Role: "admin"})
		if err != nil {
			b.Fatal(err)
		}
		var in keys.MintInput
		if cidrs != nil {
			if _, err := store.SetKeyPolicy(ctx, partner, o.ID, tenants.KeyPolicyInput{AllowedCIDRs: cidrs}); err != nil {
				b.Fatal(err)
			}
			in.AllowedCIDRs = []string{"192.0.2.0/28"}
		}
		v, err := svc.MintUserKey(ctx, partner, o.ID, u.ID, in)
		if err != nil {
			b.Fatal(err)
		}
		return v
	}
	// A user key of an organization whose key policy allows some networks, the key narrowing
	// them too: the address check on a cached principal (httptest's client is 192.0.2.1).
	b.Run("GET /api/me, user key under allowed_cidrs", func(b *testing.B) {
		get(b, s, "/api/me", userKey("fenced", "10.0.0.0/8", "2001:db8::/32", "198.51.100.0/24", "192.0.2.0/24"))
	})
	// The two calls a partner's gateway makes per request of its own: the gateway check with
	// the credential itself, and verification of it with the partner's key.
	b.Run("GET /api/auth/check, the whole server", func(b *testing.B) {
		get(b, s, "/api/auth/check", userKey("gateway"))
	})
	b.Run("POST /api/keys/verify, the whole server", func(b *testing.B) {
		body := `{"key": "` + userKey("verified") + `"}`
		b.ReportAllocs()
		for b.Loop() {
			req := httptest.NewRequest("POST", "/api/keys/verify", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+key)
			req.Header.Set("Content-Type", "application/json")
			w := httptest.NewRecorder()
			s.ServeHTTP(w, req)
			if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"valid":true`) {
				b.Fatalf("status %d: %s", w.Code, w.Body)
			}
		}
	})
}
