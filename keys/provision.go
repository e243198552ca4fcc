package keys

import (
	"context"
	"errors"
	"fmt"

	"github.com/tenantry/tenantry/tenants"
)

// ProvisionInput is a whole customer: its organization, its root user and that user's key.
// Both are required (nil: left out of the request).
type ProvisionInput struct {
	Organization *tenants.OrganizationInput
	User         *tenants.UserInput
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
	var missing tenants.FieldErrors
	if in.Organization == nil {
		missing.Add("organization", "is required: the organization to create, as POST /api/organizations takes it")
	}
	if in.User == nil {
		missing.Add("user", "is required: its root user, as POST /api/organizations/{org_id}/users takes it")
	}
	if err := missing.Err(); err != nil {
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
		if out.Organization, err = store.CreateOrganization(ctx, p, *in.Organization); err != nil {
			return prefixFields(err, "organization")
		}
		if err := step("organization"); err != nil {
			return err
		}
		if out.User, err = store.CreateUser(ctx, p, out.Organization.ID, *in.User); err != nil {
			return prefixFields(err, "user")
		}
		if err := step("user"); err != nil {
			return err
		}
		if out.Key.Value, err = s.MintUserKey(ctx, p, out.Organization.ID, out.User.ID, MintInput{}); err != nil {
			return err
		}
		return step("key")
	})
	if err != nil {
		return Provisioned{}, err
	}
	return out, nil
}

// MaxBatch is how many customers one ProvisionBatch may provision.
const MaxBatch = 100

// ProvisionOutcome is one item of a batch: what it created, or Refusal (a *tenants.Error,
// as Provision would have answered it alone) and nothing created.
type ProvisionOutcome struct {
	Provisioned Provisioned
	Refusal     error
}

// ProvisionBatch provisions each of items as Provision does, each all or nothing on its own:
// an item refused (a name taken, a bad email) leaves nothing of itself behind and the others
// stand. The batch is one unit of work (s's, when s is bound to one, as a request with an
// Idempotency-Key is), each item in a part of it: so a batch and its stored answer commit
// together, and a failure that is no item's refusal (the database going away) undoes the
// whole batch and is returned. fault is as Provision's, its step prefixed with the item's
// index ("2/user").
func (s *Service) ProvisionBatch(ctx context.Context, store *tenants.Store, p *tenants.Principal, items []ProvisionInput,
	fault func(step string) error) ([]ProvisionOutcome, error) {
	if err := p.RequirePartner(); err != nil {
		return nil, err
	}
	if len(items) == 0 || len(items) > MaxBatch {
		return nil, tenants.FieldError("items", fmt.Sprintf("must hold 1 to %d provisioning requests; it holds %d", MaxBatch, len(items)))
	}
	out := make([]ProvisionOutcome, len(items))
	err := s.Work(ctx, func(u *tenants.Unit) error {
		for i, in := range items {
			itemFault := fault
			if fault != nil {
				itemFault = func(step string) error { return fault(fmt.Sprintf("%d/%s", i, step)) }
			}
			err := u.Part(ctx, func() (err error) {
				out[i].Provisioned, err = s.In(u).Provision(ctx, store.In(u), p, in, itemFault)
				return err
			})
			var refusal *tenants.Error
			switch {
			case errors.As(err, &refusal):
				out[i] = ProvisionOutcome{Refusal: err}
			case err != nil:
				return fmt.Errorf("provisioning item %d: %w", i, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
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
