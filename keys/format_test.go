package keys

import (
	"strings"
	"testing"

	"github.com/tenantry/tenantry/tenants"
)

func TestKeyFormat(t *testing.T) {
	seen := map[string]bool{}
	for _, kind := range []tenants.CredentialKind{tenants.KindPartner, tenants.KindUser} {
		for range 500 {
			v := generate(kind)
			if len(v) != Length || !strings.HasPrefix(v, prefixes[kind]) {
				t.Fatalf("bad key %q", v)
			}
			if got, ok := parse(v); !ok || got != kind {
				t.Fatalf("parse(%q) = %v, %v", v, got, ok)
			}
			if seen[v] {
				t.Fatalf("duplicate key %q", v)
			}
			seen[v] = true
		}
	}
}

// Any single changed character is caught by the checksum or the format, without a database.
func TestKeyFormatRejectsEveryTypo(t *testing.T) {
	v := generate(tenants.KindUser)
	for i := range len(v) {
		for _, c := range []byte("0aZ_-") {
			if v[i] == c {
				continue
			}
			b := []byte(v)
			b[i] = c
			if _, ok := parse(string(b)); ok {
				t.Fatalf("changing position %d to %q was accepted: %s", i, c, b)
			}
		}
	}
	for _, bad := range []string{"", "tuk_", v + "x", v[:len(v)-1], "tzk_" + v[4:], strings.ToUpper(v[:4]) + v[4:]} {
		if _, ok := parse(bad); ok {
			t.Fatalf("accepted %q", bad)
		}
	}
}

func TestHint(t *testing.T) {
	v := generate(tenants.KindPartner)
	h := hint(v)
	if h != "tpk_..."+v[len(v)-4:] || strings.Contains(h, v[4:len(v)-4]) {
		t.Fatalf("hint %q of %q", h, v)
	}
}

func BenchmarkParse(b *testing.B) {
	v := generate(tenants.KindUser)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := parse(v); !ok {
			b.Fatal("rejected")
		}
	}
}
