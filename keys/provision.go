package keys

import (
	"context"
	"fmt"

	"github.com/tenantry/tenantry/tenants"
)

// ProvisionInput is a whole customer: its organization, its root user and that user's key.
type ProvisionInput struct {
	Organization tenants.OrganizationInput
	User         tenants.UserInput
}

// Provisioned is what Provision created; Key.Value is the only copy of the key.
type Provisioned struct {
	Organization tenants.Organization `json:"organization"`
	User         tenants.User         `json:"user"`
	Key          ProvisionedKey       `json:"key"`
}

// ProvisionedKey is the root user's key, shown once.
type ProvisionedKey struct {
	Value string `json:"value"`
}

// Provision creates an organization of the partner p, its root user and the user's key in
// one transaction (s's unit of work, if it is bound to one; store must be bound to the same):
// any failure leaves nothing behind. fault, when not nil, is called after
// each step ("organization", "user", "key") and its error aborts the whole: tests use it to
// prove the all-or-nothing property.
func (s *Service) Provision(ctx context.Context, store *tenants.Store, p *tenants.Principal, in ProvisionInput,
	fault func(step string) error) (Provisioned, error) {
	if err := p.RequirePartner(); err != nil {
		return Provisioned{}, err
	}
	step := func(name string) error {
		if fault == nil {
			return nil
		}
		if err := fault(name); err != nil {
			return fmt.Errorf("provisioning stopped after %s: %w", name, err)
		}
		return nil
	}
	var out Provisioned
	err := s.Work(ctx, func(u *tenants.Unit) (err error) {
		store, s := store.In(u), s.In(u) // every step below runs in this one unit of work
		if out.Organization, err = store.CreateOrganization(ctx, p, in.Organization); err != nil {
			return prefixFields(err, "organization")
		}
		if err := step("organization"); err != nil {
			return err
		}
		if out.User, err = store.CreateUser(ctx, p, out.Organization.ID, in.User); err != nil {
			return prefixFields(err, "user")
		}
		if err := step("user"); err != nil {
			return err
		}
		if out.Key.Value, err = s.MintUserKey(ctx, p, out.Organization.ID, out.User.ID, false); err != nil {
			return err
		}
		return step("key")
	})
	if err != nil {
		return Provisioned{}, err
	}
	return out, nil
}

// prefixFields names validation problems by their place in the provisioning body
// ("organization.name" rather than "name").
func prefixFields(err error, prefix string) error {
	e, ok := err.(*tenants.Error)
	if !ok || e.Metadata == nil {
		return err
	}
	meta := make(map[string]any, len(e.Metadata))
	for k, v := range e.Metadata {
		meta[prefix+"."+k] = v
	}
	return &tenants.Error{Kind: e.Kind, Key: e.Key, Message: e.Message, Metadata: meta}
}
