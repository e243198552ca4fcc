package tenants_test

import (
	"context"
	"errors"
	"testing"

	"github.com/tenantry/tenantry/migrations/migrationstest"
	"github.com/tenantry/tenantry/tenants"
)

// A unit of work answers its reads from what it created itself (provisioning reads nothing
// back), and what it deletes again is gone for the rest of it: a user deleted in the unit is
// not found, an organization deleted in it takes no new user. Rolled back, none of it exists.
func TestUnitOfWorkSeesItsOwnChanges(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := migrationstest.Open(t)
	store := tenants.NewStore(db)
	var partner tenants.Partner
	if err := store.Write(ctx, func(tx *tenants.Tx) (err error) {
		partner, err = tenants.CreatePartner(ctx, tx, "Partner")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	p := &tenants.Principal{Kind: tenants.KindPartner, ParentKind: tenants.KindPartner, PartnerID: partner.ID,
		OrgID: partner.OwnerOrgID, Permissions: tenants.AllPermissions}
	u := tenants.NewUnit(db)
	in := store.In(u)
	org, err := in.CreateOrganization(ctx, p, tenants.OrganizationInput{Name: "Acme"})
	if err != nil {
		t.Fatal(err)
	}
	admin, err := in.CreateUser(ctx, p, org.ID, tenants.UserInput{Email: "admin@acme.test", Role: tenants.LegacyAdmin})
	if err != nil {
		t.Fatal(err)
	}
	member, err := in.CreateUser(ctx, p, org.ID, tenants.UserInput{Email: "member@acme.test"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := in.GetUser(ctx, p, org.ID, admin.ID)
	if err != nil || got.Role != tenants.LegacyAdmin || len(got.RoleIDs) != 1 {
		t.Fatalf("the unit's own admin: %+v, %v", got, err)
	}
	if got, err = in.UpdateUser(ctx, p, org.ID, member.ID, tenants.UserInput{Email: "member2@acme.test", Role: tenants.LegacyAdmin}); err != nil ||
		got.Role != tenants.LegacyAdmin {
		t.Fatalf("promote the unit's own member: %+v, %v", got, err)
	}
	if got, err = in.GetUser(ctx, p, org.ID, member.ID); err != nil || got.Email != "member2@acme.test" || got.Role != tenants.LegacyAdmin {
		t.Fatalf("the unit's own member after its change: %+v, %v", got, err)
	}
	if _, err := in.DeleteUser(ctx, p, org.ID, member.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := in.GetUser(ctx, p, org.ID, member.ID); !errors.Is(err, tenants.ErrNotFound) {
		t.Fatalf("a user the unit deleted: %v, want ErrNotFound", err)
	}
	if _, err := in.DeleteOrganization(ctx, p, org.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := in.CreateUser(ctx, p, org.ID, tenants.UserInput{Email: "late@acme.test"}); !errors.Is(err, tenants.ErrNotFound) {
		t.Fatalf("a user for an organization the unit deleted: %v, want ErrNotFound", err)
	}
	u.Rollback()
	if _, err := store.GetOrganization(ctx, p, org.ID); !errors.Is(err, tenants.ErrNotFound) {
		t.Fatalf("after rollback: %v, want ErrNotFound", err)
	}
}
