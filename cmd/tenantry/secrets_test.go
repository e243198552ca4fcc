package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/tenantry/tenantry/migrations/migrationstest"
	"github.com/tenantry/tenantry/server/servertest"
)

// No secret appears anywhere after the response that created it: not in a later response
// body or header, not in any log line. The run exercises every kind of secret the product
// holds: partner, user and organization keys, rotated values, tokens, SSO client secrets,
// webhook secrets and connection passwords.
func TestSecretsNeverReappear(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// Webhooks go to a receiver on loopback, never to a public address.
	env := map[string]string{"TENANTRY_DATABASE": migrationstest.DSN(t), "TENANTRY_BOOTSTRAP_KEY_FILE": filepath.Join(dir, "key"),
		"TENANTRY_WEBHOOK_ALLOW_PRIVATE": "true"}
	m, logs := start(t, env)
	defer m.Close()
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	defer receiver.Close()
	raw, _ := os.ReadFile(filepath.Join(dir, "key"))

	var mu sync.Mutex
	type seen struct {
		label string
		text  string
	}
	var responses []seen
	secrets := map[string]int{} // secret → index of the response that created it
	record := func(method, path string, r *servertest.Response) {
		mu.Lock()
		defer mu.Unlock()
		var h strings.Builder
		for k, v := range r.Header {
			fmt.Fprintf(&h, "%s: %s\n", k, strings.Join(v, ","))
		}
		responses = append(responses, seen{method + " " + path, h.String() + string(r.Body)})
	}
	secret := func(s string) string {
		mu.Lock()
		defer mu.Unlock()
		secrets[s] = len(responses) - 1
		return s
	}
	api := servertest.New(t, "http://"+m.Addr())
	api.Seen = record
	partner := api.As(secret(strings.TrimSpace(string(raw))))
	secrets[partner.Key] = -1 // from the file, never in a response

	org := partner.Do("POST", "/api/organizations", map[string]any{"name": "Secretive", "client_secret": "sso-client-secret-9f8e"}).Data()["id"].(string)
	secrets["sso-client-secret-9f8e"] = len(responses) - 1
	user := partner.Do("POST", "/api/organizations/"+org+"/users", map[string]any{"email": "root@secretive.test", "role": "admin"}).Data()["id"].(string)
	admin := api.As(secret(partner.Do("POST", "/api/organizations/"+org+"/users/"+user+"/keys", nil).Data()["value"].(string)))
	personal := admin.Do("POST", "/api/keys", map[string]any{"name": "ci"}).Data()
	secret(personal["value"].(string))
	orgKey := admin.Do("POST", "/api/keys", map[string]any{"name": "backend", "kind": "organization", "role": "admin"}).Data()["value"].(string)
	secret(orgKey)
	rotated := admin.Do("POST", "/api/keys/"+personal["id"].(string)+"/rotate", map[string]any{"grace_seconds": 60}).Data()["value"].(string)
	secret(rotated)
	tok := admin.Do("POST", "/api/auth/tokens", nil).Data()["token"].(string)
	secret(tok)
	hook := admin.Do("POST", "/api/webhooks", map[string]any{"endpoint": receiver.URL + "/hook"}).Data()
	secret(hook["secret"].(string))
	admin.Do("POST", "/api/connections", map[string]any{"name": "DB", "type": "postgresql",
		"configuration": map[string]any{"host": "db", "password": "conn-password-77a1"}})
	secrets["conn-password-77a1"] = -1 // never returned at all
	newPartnerKey := partner.Do("POST", "/api/partner/keys", map[string]any{"name": "second"}).Data()["value"].(string)
	secret(newPartnerKey)
	prov := partner.Do("POST", "/api/provision", map[string]any{"organization": map[string]any{"name": "Prov"},
		"user": map[string]any{"email": "r@prov.test"}}, "Idempotency-Key", "secrets-provision-1").Data()
	provKey := secret(prov["key"].(map[string]any)["value"].(string))
	// Use everything once more, read everything there is to read.
	for _, c := range []*servertest.Client{partner, admin, api.As(orgKey), api.As(tok), api.As(rotated), api.As(provKey), api.As(newPartnerKey)} {
		for _, p := range []string{"/api/me", "/api/keys", "/api/events?limit=100", "/api/webhooks", "/api/connections", "/api/organizations",
			"/api/organizations/" + org, "/api/partner/keys", "/api/organizations/" + org + "/keys", "/metrics"} {
			c.Do("GET", p, nil)
		}
	}
	hooks := admin.Do("GET", "/api/webhooks", nil).List()
	admin.Do("GET", "/api/webhooks/"+hooks[0]["id"].(string)+"/deliveries", nil)
	// The replay of an idempotent provisioning shows its key again, to the same caller: that is
	// the point of a replay, so it counts as the creation response.
	m.srv.FlushUsage(context.Background())
	m.Close() // every log line is written out

	mu.Lock()
	defer mu.Unlock()
	if len(secrets) < 10 || len(responses) < 80 {
		t.Fatalf("the run was too small: %d secrets, %d responses", len(secrets), len(responses))
	}
	for s, created := range secrets {
		for i, r := range responses {
			if i != created && strings.Contains(r.text, s) {
				t.Errorf("a secret created by response %d reappears in response %d (%s)", created, i, r.label)
			}
		}
		if strings.Contains(logs.String(), s) {
			t.Errorf("a secret reached the logs")
		}
	}
	t.Logf("%d secrets checked against %d responses and %d log lines", len(secrets), len(responses), strings.Count(logs.String(), "\n"))
}
