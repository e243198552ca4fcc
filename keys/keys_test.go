package keys_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jmoiron/sqlx"

	"github.com/tenantry/tenantry/keys"
	"github.com/tenantry/tenantry/migrations/migrationstest"
	"github.com/tenantry/tenantry/tenants"
)

func openDB(t testing.TB) *sqlx.DB {
	t.Helper()
	return migrationstest.Open(t)
}

func TestBootstrapOnlyOnce(t *testing.T) {
	ctx := context.Background()
	svc := keys.NewService(openDB(t))
	// A failed delivery leaves nothing behind: no partner whose key nobody holds.
	created, err := svc.Bootstrap(ctx, "First", func(string) error { return errors.New("disk full") })
	if err == nil || created {
		t.Fatalf("Bootstrap with a failing delivery = %v, %v", created, err)
	}
	var got string
	created, err = svc.Bootstrap(ctx, "First", func(v string) error { got = v; return nil })
	if err != nil || !created || got == "" {
		t.Fatalf("Bootstrap = %v, %v, key %q", created, err, got)
	}
	p, err := svc.Authenticate(ctx, got)
	if err != nil || p.Kind != tenants.KindPartner {
		t.Fatalf("bootstrap key: %v, %v", p, err)
	}
	created, err = svc.Bootstrap(ctx, "Second", func(string) error { t.Fatal("delivered twice"); return nil })
	if err != nil || created {
		t.Fatalf("second Bootstrap = %v, %v", created, err)
	}
}

func TestAuthenticate(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	svc := keys.NewService(db)
	var value string
	partner, err := svc.CreatePartner(ctx, "Acme Platform", func(v string) error { value = v; return nil })
	if err != nil {
		t.Fatal(err)
	}
	p, err := svc.Authenticate(ctx, value)
	if err != nil || p.PartnerID != partner.ID || p.OrgID != partner.OwnerOrgID || p.UserID != "" || p.Permissions != tenants.AllPermissions {
		t.Fatalf("Authenticate = %+v, %v", p, err)
	}
	if _, err := svc.CreatePartner(ctx, "ACME platform", func(string) error { return nil }); !errors.Is(err, tenants.ErrConflict) {
		t.Fatalf("duplicate partner name: %v", err)
	}
	last := "A"
	if value[len(value)-1] == 'A' {
		last = "B"
	}
	for _, bad := range []string{"", "x", value[:len(value)-1] + last} {
		if _, err := svc.Authenticate(ctx, bad); !errors.Is(err, tenants.ErrUnauthenticated) {
			t.Fatalf("Authenticate(%q) = %v", bad, err)
		}
	}
	if _, err := db.Exec(`UPDATE api_keys SET revoked_at = CURRENT_TIMESTAMP`); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Authenticate(ctx, value); !errors.Is(err, tenants.ErrUnauthenticated) {
		t.Fatalf("revoked key accepted: %v", err)
	}
}

// BenchmarkAuthenticate is the cost every request pays: parse, hash, one indexed lookup.
func BenchmarkAuthenticate(b *testing.B) {
	ctx := context.Background()
	svc := keys.NewService(openDB(b))
	var value string
	_, err := svc.CreatePartner(ctx, "Bench", func(v string) error { value = v; return nil })
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := svc.Authenticate(ctx, value); err != nil {
			b.Fatal(err)
		}
	}
}

// userKey creates a partner, an organization and an admin user with a key, the shape most
// requests authenticate with.
func userKey(t testing.TB, svc *keys.Service) (*tenants.Principal, string) {
	t.Helper()
	ctx := context.Background()
	var partnerKey string
	if _, err := svc.CreatePartner(ctx, "Bench", func(v string) error { partnerKey = v; return nil }); err != nil {
		t.Fatal(err)
	}
	partner, err := svc.Authenticate(ctx, partnerKey)
	if err != nil {
		t.Fatal(err)
	}
	store := tenants.NewStore(svc.DB)
	org, err := store.CreateOrganization(ctx, partner, tenants.OrganizationInput{Name: "Acme"})
	if err != nil {
		t.Fatal(err)
	}
	u, err := store.CreateUser(ctx, partner, org.ID, tenants.UserInput{Email: "ada@acme.test", Role: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	value, err := svc.MintUserKey(ctx, partner, org.ID, u.ID, keys.MintInput{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := svc.Authenticate(ctx, value)
	if err != nil || p.Permissions != tenants.AllPermissions {
		t.Fatalf("user key: %+v, %v", p, err)
	}
	return p, value
}

// BenchmarkAuthenticateUserKey: a user key with its roles (one query, one row per role).
func BenchmarkAuthenticateUserKey(b *testing.B) {
	ctx := context.Background()
	svc := keys.NewService(openDB(b))
	_, value := userKey(b, svc)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := svc.Authenticate(ctx, value); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAuthenticateToken: verify an EdDSA token, then look up its parent key by id.
func BenchmarkAuthenticateToken(b *testing.B) {
	ctx := context.Background()
	svc := keys.NewService(openDB(b))
	p, _ := userKey(b, svc)
	tok, err := svc.MintToken(ctx, p, keys.TokenInput{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := svc.Authenticate(ctx, tok.Token); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAuthenticateCached: a user key and a token already seen, from the principal cache.
func BenchmarkAuthenticateCached(b *testing.B) {
	ctx := context.Background()
	svc := keys.NewService(openDB(b))
	svc.CachePrincipals(keys.DefaultCachedKeys, keys.DefaultCachedTokens)
	defer svc.Close()
	p, value := userKey(b, svc)
	tok, err := svc.MintToken(ctx, p, keys.TokenInput{})
	if err != nil {
		b.Fatal(err)
	}
	for name, credential := range map[string]string{"user key": value, "token": tok.Token} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := svc.Authenticate(ctx, credential); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// The partner operations of the credentials service decide themselves that the caller is an
// unrestricted partner credential, whatever entry point calls them: an organization admin key
// (every permission) and a partner token narrowed by scopes are refused before anything is read.
func TestPartnerOperationsAuthorize(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	svc, store := keys.NewService(db), tenants.NewStore(db)
	admin := &tenants.Principal{Kind: tenants.KindUser, ParentKind: tenants.KindUser, KeyID: tenants.NewID(),
		PartnerID: tenants.NewID(), OrgID: tenants.NewID(), UserID: tenants.NewID(), Permissions: tenants.AllPermissions}
	narrowed := &tenants.Principal{Kind: tenants.KindToken, ParentKind: tenants.KindPartner, KeyID: tenants.NewID(),
		PartnerID: admin.PartnerID, OrgID: admin.OrgID, Permissions: tenants.PermissionsOf(tenants.KeysRead)}
	id := tenants.NewID()
	for _, p := range []*tenants.Principal{admin, narrowed} {
		for name, call := range map[string]func() error{
			"ListPartnerKeys":       func() error { _, err := svc.ListPartnerKeys(ctx, p, tenants.PageQuery{Limit: 10}); return err },
			"CreatePartnerKey":      func() error { _, err := svc.CreatePartnerKey(ctx, p, "k", nil); return err },
			"RevokePartnerKey":      func() error { _, err := svc.RevokePartnerKey(ctx, p, id); return err },
			"ListOrganizationKeys":  func() error { _, err := svc.ListOrganizationKeys(ctx, p, id, tenants.PageQuery{Limit: 10}); return err },
			"RevokeOrganizationKey": func() error { _, err := svc.RevokeOrganizationKey(ctx, p, id, id); return err },
			"MintUserKey":           func() error { _, err := svc.MintUserKey(ctx, p, id, id, keys.MintInput{}); return err },
			"Provision": func() error {
				_, err := svc.Provision(ctx, store, p, keys.ProvisionInput{}, nil)
				return err
			},
		} {
			if err := call(); !errors.Is(err, tenants.ErrForbidden) {
				t.Errorf("%s by a %s credential: %v, want ErrForbidden", name, p.Kind, err)
			}
		}
	}
}
