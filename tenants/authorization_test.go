package tenants_test

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/tenantry/tenantry/migrations/migrationstest"
	"github.com/tenantry/tenantry/tenants"
)

// Every exported method of Store that takes a Principal decides itself what that caller may do,
// before it touches the database, so that no entry point (REST, a command, the CLI, a future
// one) can skip the rule. Called by a credential without a single permission, each must refuse
// with ErrForbidden. A new method is covered the day it is written: the test finds methods by
// reflection.
func TestEveryDomainMethodAuthorizes(t *testing.T) {
	t.Parallel()
	store := tenants.NewStore(migrationstest.Open(t))
	nobody := &tenants.Principal{Kind: tenants.KindUser, ParentKind: tenants.KindUser, KeyID: tenants.NewID(),
		PartnerID: tenants.NewID(), OrgID: tenants.NewID(), UserID: tenants.NewID()}
	// What any credential may do, so nothing is asked.
	exempt := map[string]string{
		"CurrentOrganization": "any credential reads the organization it acts in",
	}
	principalType := reflect.TypeOf(nobody)
	v := reflect.ValueOf(store)
	checked := 0
	for i := range v.NumMethod() {
		m := v.Type().Method(i)
		ft := m.Type
		takesPrincipal := false
		for j := 1; j < ft.NumIn(); j++ {
			takesPrincipal = takesPrincipal || ft.In(j) == principalType
		}
		if !takesPrincipal || exempt[m.Name] != "" {
			continue
		}
		args := make([]reflect.Value, ft.NumIn()-1)
		for j := 1; j < ft.NumIn(); j++ {
			switch in := ft.In(j); {
			case in == reflect.TypeOf((*context.Context)(nil)).Elem():
				args[j-1] = reflect.ValueOf(context.Background())
			case in == principalType:
				args[j-1] = reflect.ValueOf(nobody)
			case in.Kind() == reflect.String:
				args[j-1] = reflect.ValueOf(tenants.NewID()).Convert(in) // a well-formed id of nothing
			default:
				args[j-1] = reflect.Zero(in)
			}
		}
		out := v.Method(i).Call(args)
		err, _ := out[len(out)-1].Interface().(error)
		if !errors.Is(err, tenants.ErrForbidden) {
			t.Errorf("%s called by a credential without permissions: %v, want ErrForbidden", m.Name, err)
		}
		checked++
	}
	if checked < 30 {
		t.Fatalf("only %d methods checked: the reflection missed the Store's methods", checked)
	}
	t.Logf("%d methods of Store refuse a credential without permissions", checked)

	// The partner operations refuse every organization credential, even one with every
	// permission, and a partner token narrowed below them.
	admin := *nobody
	admin.Permissions = tenants.AllPermissions
	narrowed := &tenants.Principal{Kind: tenants.KindToken, ParentKind: tenants.KindPartner, PartnerID: nobody.PartnerID,
		OrgID: nobody.OrgID, Permissions: tenants.PermissionsOf(tenants.UsersRead)}
	ctx := context.Background()
	for _, p := range []*tenants.Principal{&admin, narrowed} {
		for name, call := range map[string]func() error{
			"CreateOrganization": func() error {
				_, err := store.CreateOrganization(ctx, p, tenants.OrganizationInput{Name: "x"})
				return err
			},
			"ListOrganizations":  func() error { _, err := store.ListOrganizations(ctx, p); return err },
			"GetOrganization":    func() error { _, err := store.GetOrganization(ctx, p, tenants.NewID()); return err },
			"DeleteOrganization": func() error { _, err := store.DeleteOrganization(ctx, p, tenants.NewID()); return err },
			"ShareConnection": func() error {
				_, err := store.ShareConnection(ctx, p, tenants.NewID(), tenants.NewID(), tenants.ShareInput{})
				return err
			},
		} {
			if err := call(); !errors.Is(err, tenants.ErrForbidden) {
				t.Errorf("%s by a %s credential: %v, want ErrForbidden", name, p.Kind, err)
			}
		}
	}
}
