package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenantry/tenantry/migrations"
	"github.com/tenantry/tenantry/migrations/migrationstest"
	"github.com/tenantry/tenantry/server/servertest"
	"github.com/tenantry/tenantry/tenants"
)

// The secret key's life: generate writes a file of one key (mode 0600) and never overwrites
// one; a server started with it seals what was stored in clear before; rotate puts a new key
// first and seals everything with it while the server runs, which goes on signing webhooks
// and tokens without a restart; a server started without the key its secrets need refuses to
// start, naming the key.
func TestSecretKeyLifecycle(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "secret-key")
	dsn := migrationstest.DSN(t)
	env := map[string]string{"TENANTRY_DATABASE": dsn, "TENANTRY_BOOTSTRAP_KEY_FILE": filepath.Join(dir, "bootstrap"),
		"TENANTRY_WEBHOOK_ALLOW_PRIVATE": "true", "TENANTRY_WEBHOOK_POLL_INTERVAL": "20ms"}
	var mu sync.Mutex
	var signed []bool // whether each delivery's Polytomic-Signature verified with the webhook's secret
	const hookSecret = "rotation-webhook-secret-1"
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mac := hmac.New(sha256.New, []byte(hookSecret))
		mac.Write(body)
		mu.Lock()
		signed = append(signed, r.Header.Get("Polytomic-Signature") == hex.EncodeToString(mac.Sum(nil)))
		mu.Unlock()
		w.WriteHeader(204)
	}))
	defer receiver.Close()
	deliveredSigned := func(n int) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, ok := range signed {
			if !ok {
				t.Fatalf("a delivery's signature does not verify with the webhook's secret")
			}
		}
		return len(signed) >= n
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("after 10 s: %s", what)
			}
		}
	}

	// First without a key: secrets stored as given.
	m, _ := start(t, env)
	raw, _ := os.ReadFile(env["TENANTRY_BOOTSTRAP_KEY_FILE"])
	api := servertest.New(t, "http://"+m.Addr())
	partner := api.As(strings.TrimSpace(string(raw)))
	org := partner.Do("POST", "/api/organizations", map[string]any{"name": "Rotating", "client_secret": "rotation-sso-secret"}).Data()["id"].(string)
	if r := partner.Do("POST", "/api/webhooks", map[string]any{"endpoint": receiver.URL, "secret": hookSecret, "event_types": []string{"user.created"}}); r.Status != 200 {
		t.Fatalf("webhook: %d %s", r.Status, r.Body)
	}
	// Secrets chosen to look sealed are stored as what they are, and block nothing.
	if r := partner.Do("POST", "/api/webhooks", map[string]any{"endpoint": receiver.URL + "/x", "secret": "tsealed1.0123456789abcdef.AAAAAAAAAAAAAAAA",
		"event_types": []string{"dataset.deleted"}}); r.Status != 200 {
		t.Fatalf("webhook: %d %s", r.Status, r.Body)
	}
	if r := partner.Do("POST", "/api/organizations", map[string]any{"name": "Looks sealed", "client_secret": "tsealed1.ffffffffffffffff.x"}); r.Status != 200 {
		t.Fatalf("organization: %d %s", r.Status, r.Body)
	}
	m.Close()
	m, _ = start(t, env) // without a key file still
	m.Close()
	if !strings.Contains(everything(t, dsn), "rotation-sso-secret") {
		t.Fatalf("without a key file the SSO secret is stored as given")
	}

	run(t, nil, "secret-key", "generate", "--secret-key-file", keyFile)
	if st, err := os.Stat(keyFile); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("the key file: %v, %v; want mode 0600", st, err)
	}
	before, _ := os.ReadFile(keyFile)
	var logs bytes.Buffer
	if err := (&Main{Stdout: &logs, Stderr: &logs}).Run(context.Background(), []string{"secret-key", "generate", "--secret-key-file", keyFile}); err == nil {
		t.Fatalf("generate must not overwrite a key file")
	}
	if after, _ := os.ReadFile(keyFile); !bytes.Equal(before, after) {
		t.Fatalf("generate changed an existing key file")
	}
	first := keyIDs(t, keyFile)[0]

	// A server with the key seals what was in clear.
	env["TENANTRY_SECRET_KEY_FILE"] = keyFile
	m, serveLogs := start(t, env)
	defer m.Close()
	if !strings.Contains(serveLogs.String(), "sealed stored secrets") || sealedWith(t, dsn) != first {
		t.Fatalf("the secrets stored in clear must be sealed at start:\n%s", serveLogs)
	}
	api = servertest.New(t, "http://"+m.Addr())
	partner = api.As(partner.Key)
	partner.Do("POST", "/api/organization/users", map[string]any{"email": "one@rotating.test"})
	waitFor("a signed delivery with the sealed secret", func() bool { return deliveredSigned(1) })

	// Rotate under the running server.
	run(t, nil, "secret-key", "rotate", "--secret-key-file", keyFile, "--database", dsn)
	ids := keyIDs(t, keyFile)
	if len(ids) != 2 || ids[1] != first || sealedWith(t, dsn) != ids[0] {
		t.Fatalf("after rotate: keys %v, secrets sealed with %q", ids, sealedWith(t, dsn))
	}
	partner.Do("POST", "/api/organization/users", map[string]any{"email": "two@rotating.test"})
	waitFor("a signed delivery after the rotation", func() bool { return deliveredSigned(2) })
	// What the running server seals from now on, it seals with the new key.
	if r := partner.Do("POST", "/api/organizations", map[string]any{"name": "After", "client_secret": "after-rotation"}); r.Status != 200 || sealedWith(t, dsn) != ids[0] {
		t.Fatalf("a secret stored after the rotation: %d, sealed with %q, want %q", r.Status, sealedWith(t, dsn), ids[0])
	}
	user := partner.Do("POST", "/api/organizations/"+org+"/users", map[string]any{"email": "root@rotating.test", "role": "admin"}).Data()["id"].(string)
	key := partner.Do("POST", "/api/organizations/"+org+"/users/"+user+"/keys", nil).Data()["value"].(string)
	tok := api.As(key).Do("POST", "/api/auth/tokens", nil)
	if tok.Status != 200 || api.As(tok.Data()["token"].(string)).Do("GET", "/api/me", nil).Status != 200 {
		t.Fatalf("a token after the rotation: %d %s", tok.Status, tok.Body)
	}
	m.Close()

	// Without the key, or with a file that lacks it, the server does not start.
	for name, file := range map[string]string{"no key file": "", "another key": filepath.Join(dir, "other-key")} {
		if file != "" {
			run(t, nil, "secret-key", "generate", "--secret-key-file", file)
		}
		env["TENANTRY_SECRET_KEY_FILE"] = file
		var out bytes.Buffer
		err := (&Main{Stdout: &out, Stderr: &out, Getenv: func(k string) string { return env[k] }}).Run(context.Background(),
			[]string{"serve", "--addr", "127.0.0.1:0"})
		if err == nil || !strings.Contains(err.Error(), ids[0]) {
			t.Fatalf("%s: serve must refuse to start, naming key %s: %v", name, ids[0], err)
		}
	}
	// A signing key rotated by the CLI is sealed as the rest: refused without the key file.
	var out bytes.Buffer
	if err := (&Main{Stdout: &out, Stderr: &out}).Run(context.Background(), []string{"signing-key", "rotate", "--database", dsn}); err == nil ||
		!strings.Contains(err.Error(), ids[0]) {
		t.Fatalf("signing-key rotate without the secret key file must be refused: %v", err)
	}
	run(t, nil, "signing-key", "rotate", "--database", dsn, "--secret-key-file", keyFile)
	if got := sealedWith(t, dsn); got != ids[0] {
		t.Fatalf("after signing-key rotate, secrets sealed with %q, want %q", got, ids[0])
	}
	// A key file others may read is refused.
	os.Chmod(keyFile, 0o644)
	env["TENANTRY_SECRET_KEY_FILE"] = keyFile
	if err := (&Main{Stdout: &out, Stderr: &out, Getenv: func(k string) string { return env[k] }}).Run(context.Background(),
		[]string{"serve", "--addr", "127.0.0.1:0"}); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a key file readable by others must be refused: %v", err)
	}
}

func keyIDs(t *testing.T, path string) []string {
	t.Helper()
	raw, _ := os.ReadFile(path)
	ids, err := tenants.ParseSecretKeys(raw)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// sealedWith is the one key id every stored secret is sealed with ("" if they differ or one is
// in clear).
func sealedWith(t *testing.T, dsn string) string {
	t.Helper()
	db, err := migrations.Open(dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var values [][]byte
	for _, q := range []string{`SELECT client_secret FROM organizations WHERE client_secret <> ''`, `SELECT secret FROM webhooks`,
		`SELECT private_key FROM signing_keys`} {
		var vs [][]byte
		if err := db.Select(&vs, q); err != nil {
			t.Fatal(err)
		}
		values = append(values, vs...)
	}
	id := ""
	for _, v := range values {
		kid, ok := tenants.IsSealed(v)
		if !ok || (id != "" && kid != id) {
			return ""
		}
		id = kid
	}
	return id
}

// A connection stored before secrets were kept apart (its password inside its configuration)
// has them split out when the server starts: hidden and named as before, and no longer in the
// configuration column.
func TestLegacyConnectionSecretsSplit(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	dsn := migrationstest.DSN(t)
	env := map[string]string{"TENANTRY_DATABASE": dsn, "TENANTRY_BOOTSTRAP_KEY_FILE": filepath.Join(dir, "bootstrap")}
	m, _ := start(t, env)
	raw, _ := os.ReadFile(env["TENANTRY_BOOTSTRAP_KEY_FILE"])
	partner := servertest.New(t, "http://"+m.Addr()).As(strings.TrimSpace(string(raw)))
	prov := partner.Do("POST", "/api/provision", map[string]any{"organization": map[string]any{"name": "Legacy"},
		"user": map[string]any{"email": "root@legacy.test", "role": "admin"}}).Data()
	user := servertest.New(t, "http://"+m.Addr()).As(prov["key"].(map[string]any)["value"].(string))
	id := user.Do("POST", "/api/connections", map[string]any{"name": "Old", "type": "postgresql",
		"configuration": map[string]any{"host": "db"}}).Data()["id"].(string)
	m.Close()
	db, err := migrations.Open(dsn)
	if err != nil {
		t.Fatal(err)
	}
	// As an older release stored it.
	if _, err := db.Exec(db.Rebind(`UPDATE connections SET configuration = ?, secrets = NULL WHERE id = ?`),
		`{"host":"db","password":"legacy-password","hdr":{"name":"X-Api-Key","value":"legacy-header"}}`, id); err != nil {
		t.Fatal(err)
	}
	db.Close()

	env["TENANTRY_SECRET_KEY_FILE"] = filepath.Join(dir, "secret-key")
	run(t, nil, "secret-key", "generate", "--secret-key-file", env["TENANTRY_SECRET_KEY_FILE"])
	m, _ = start(t, env)
	defer m.Close()
	user = servertest.New(t, "http://"+m.Addr()).As(user.Key)
	got := user.Do("GET", "/api/connections/"+id, nil)
	if got.Status != 200 || strings.Contains(string(got.Body), "legacy-") || !strings.Contains(string(got.Body), `"secret_fields":["hdr.value","password"]`) {
		t.Fatalf("the legacy connection: %d %s", got.Status, got.Body)
	}
	if stored := everything(t, dsn); strings.Contains(stored, "legacy-password") || strings.Contains(stored, "legacy-header") {
		t.Fatalf("the legacy secrets must be split out and sealed")
	}
}
