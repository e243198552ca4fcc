package keys_test

import (
	"context"
	"errors"
	"testing"

	"github.com/tenantry/tenantry/keys"
	"github.com/tenantry/tenantry/tenants"
)

// Who may ask about credentials is decided first, before anything is read: a credential
// without keys:read, an asker, and a partner token narrowed by scopes are refused (403) by both
// verification and introspection, on a database that is closed (any read would be another
// error).
func TestVerificationAuthorizesFirst(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	svc := keys.NewService(db)
	db.Close()
	member := &tenants.Principal{Kind: tenants.KindUser, ParentKind: tenants.KindUser, KeyID: tenants.NewID(),
		PartnerID: tenants.NewID(), OrgID: tenants.NewID(), UserID: tenants.NewID(),
		Permissions: tenants.AllPermissions &^ tenants.PermissionsOf(tenants.KeysRead)}
	asker := &tenants.Principal{Kind: tenants.KindOrganization, ParentKind: tenants.KindOrganization, KeyID: tenants.NewID(),
		PartnerID: member.PartnerID, OrgID: member.OrgID, OrgRole: tenants.OrgRoleAsker, Permissions: tenants.AskerPermissions}
	narrowed := &tenants.Principal{Kind: tenants.KindToken, ParentKind: tenants.KindPartner, KeyID: tenants.NewID(),
		PartnerID: member.PartnerID, OrgID: member.OrgID, Permissions: tenants.PermissionsOf(tenants.KeysRead)}
	for _, p := range []*tenants.Principal{member, asker, narrowed, nil} {
		if _, err := svc.VerifyCredential(ctx, p, keys.VerifyInput{Key: "tuk_x"}, nil); !errors.Is(err, tenants.ErrForbidden) {
			t.Errorf("VerifyCredential by %+v: %v, want ErrForbidden", p, err)
		}
		if _, err := svc.Introspect(ctx, p, "tuk_x", nil); !errors.Is(err, tenants.ErrForbidden) {
			t.Errorf("Introspect by %+v: %v, want ErrForbidden", p, err)
		}
	}
}

// A verification authenticates as a request does, from the principal cache: a key and a
// token already seen are verified with the database closed, so with no query. A credential not
// seen needs its query, and a database that is down is then an error, never an answer (a
// valid: false would be a lie a caller might act on).
func TestVerificationUsesThePrincipalCache(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	svc := keys.NewService(db)
	svc.CachePrincipals(keys.DefaultCachedKeys, keys.DefaultCachedTokens)
	defer svc.Close()
	admin, value := userKey(t, svc)
	unseen, err := svc.CreateKey(ctx, admin, keys.KeyInput{Name: "unseen"})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := svc.MintToken(ctx, admin, keys.TokenInput{Scopes: []string{"datasets:read"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{value, tok.Token} {
		if _, err := svc.Authenticate(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	v, err := svc.VerifyCredential(ctx, admin, keys.VerifyInput{Key: value, Require: []string{"users:read"}}, nil)
	if err != nil || !v.Valid || v.KeyID != admin.KeyID || v.UserID == nil || *v.UserID != admin.UserID || v.Scopes != nil {
		t.Fatalf("a cached key, with the database closed: %+v, %v", v, err)
	}
	v, err = svc.VerifyCredential(ctx, admin, keys.VerifyInput{Key: tok.Token}, nil)
	if err != nil || !v.Valid || v.Kind != tenants.KindToken || v.KeyID != admin.KeyID || len(v.Scopes) != 1 || v.Scopes[0] != tenants.DatasetsRead {
		t.Fatalf("a cached token, with the database closed: %+v, %v", v, err)
	}
	in, err := svc.Introspect(ctx, admin, tok.Token, nil)
	if err != nil || !in.Active || in.ClientID != admin.KeyID || in.Sub != admin.UserID || in.Scope != "datasets:read" || in.Jti == "" {
		t.Fatalf("introspection of a cached token: %+v, %v", in, err)
	}
	if v, err := svc.VerifyCredential(ctx, admin, keys.VerifyInput{Key: value + "x"}, nil); err != nil || v.Valid || v.Outcome() != "malformed" {
		t.Fatalf("a malformed key is refused without the database: %+v, %v", v, err)
	}
	if _, err := svc.VerifyCredential(ctx, admin, keys.VerifyInput{Key: unseen.Value}, nil); err == nil || errors.Is(err, tenants.ErrUnauthenticated) {
		t.Fatalf("a key not seen, with the database down: %v, want an error that is no answer", err)
	}
}
