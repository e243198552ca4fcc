package tenants_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tenantry/tenantry/tenants"
)

func keyFile(t *testing.T, lines ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "secret-key")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// A sealed value opens only where it was sealed, with a key of the file, intact.
func TestSealer(t *testing.T) {
	t.Parallel()
	path := keyFile(t, tenants.GenerateSecretKey())
	s, err := tenants.LoadSealer(path)
	if err != nil {
		t.Fatal(err)
	}
	where := tenants.SealedAt("webhooks", "secret", "row-1")
	sealed, err := s.Seal([]byte("whsec_top-secret"), where)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("top-secret")) {
		t.Fatalf("the sealed form holds the value: %s", sealed)
	}
	if id, ok := tenants.IsSealed(sealed); !ok || id != s.CurrentKeyID() {
		t.Fatalf("sealed under %q, %v; want %q", id, ok, s.CurrentKeyID())
	}
	again, _ := s.Seal([]byte("whsec_top-secret"), where)
	if bytes.Equal(sealed, again) {
		t.Fatalf("two seals of one value are equal: each needs its own data key and nonce")
	}
	if plain, err := s.Open(sealed, where); err != nil || string(plain) != "whsec_top-secret" {
		t.Fatalf("open: %q, %v", plain, err)
	}
	// Moved to another row or column, it does not open.
	for _, other := range []string{tenants.SealedAt("webhooks", "secret", "row-2"), tenants.SealedAt("organizations", "client_secret", "row-1")} {
		if _, err := s.Open(sealed, other); err == nil {
			t.Fatalf("a value sealed at %s opened at %s", where, other)
		}
	}
	// Tampered with, it does not open.
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-2] ^= 'A' ^ 'B'
	if _, err := s.Open(tampered, where); err == nil {
		t.Fatalf("a tampered value opened")
	}
	// Without the key, or with another, it does not open and the error names the key.
	var none *tenants.Sealer
	other, _ := tenants.LoadSealer(keyFile(t, tenants.GenerateSecretKey()))
	for _, x := range []*tenants.Sealer{none, other} {
		if _, err := x.Open(sealed, where); err == nil || !strings.Contains(err.Error(), s.CurrentKeyID()) {
			t.Fatalf("opened without its key, or the error does not name it: %v", err)
		}
	}
	// A value in clear is itself, and a nil sealer stores values as given.
	if plain, err := s.Open([]byte("plain"), where); err != nil || string(plain) != "plain" {
		t.Fatalf("a value in clear: %q, %v", plain, err)
	}
	if v, _ := none.Seal([]byte("plain"), where); string(v) != "plain" {
		t.Fatalf("a nil sealer changed a value: %q", v)
	}
	// A value given that looks sealed is stored as plain, and reads back as given.
	for _, given := range []string{"tsealed1.0123456789abcdef.AAAA", "tplain1.x"} {
		v, _ := none.Seal([]byte(given), where)
		if _, sealed := tenants.IsSealed(v); sealed {
			t.Fatalf("a value given passes for a sealed one: %q", v)
		}
		for _, x := range []*tenants.Sealer{none, s} {
			if plain, err := x.Open(v, where); err != nil || string(plain) != given {
				t.Fatalf("%q reads back as %q, %v", given, plain, err)
			}
		}
	}
	// A file rewritten with a new key first: sealing uses it at once; the old key still opens.
	old := s.CurrentKeyID()
	raw, _ := os.ReadFile(path)
	time.Sleep(10 * time.Millisecond) // a new modification time
	if err := os.WriteFile(path, append([]byte(tenants.GenerateSecretKey()+"\n"), raw...), 0o600); err != nil {
		t.Fatal(err)
	}
	newer, err := s.Seal([]byte("x"), where)
	if id, _ := tenants.IsSealed(newer); err != nil || id == old || id != s.CurrentKeyID() {
		t.Fatalf("after the file changed, sealed with %q (old %q): %v", id, old, err)
	}
	if plain, err := s.Open(sealed, where); err != nil || string(plain) != "whsec_top-secret" {
		t.Fatalf("the old key no longer opens: %v", err)
	}
}

func TestSecretKeyFileRefused(t *testing.T) {
	t.Parallel()
	for name, content := range map[string]string{"empty": "\n# only a comment\n", "not base64": "not a key\n",
		"too short": "c2hvcnQ=\n"} {
		path := filepath.Join(t.TempDir(), "k")
		os.WriteFile(path, []byte(content), 0o600)
		if _, err := tenants.LoadSealer(path); err == nil {
			t.Errorf("%s: a bad key file was accepted", name)
		}
	}
	path := keyFile(t, tenants.GenerateSecretKey())
	os.Chmod(path, 0o640)
	if _, err := tenants.LoadSealer(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("a key file readable by others: %v", err)
	}
}
