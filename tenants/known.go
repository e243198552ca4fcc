package tenants

// known is what one transaction has created itself, so that the operations after the first in
// it (provisioning: an organization, its root user, the user's key) need not read it back.
// Only rows this transaction created are kept, and each is forgotten when the transaction
// changes it again; nothing outlives the transaction, so nothing can be stale.
type known struct {
	partnerOf  map[string]string             // organizations created here → their partner
	roles      map[string]map[string]roleRow // their roles, by id
	noWebhooks map[string]bool               // those of them no webhook was created in yet
	noPolicy   map[string]bool               // those of them whose key policy was not set yet
	users      map[string]User               // users created here
}

// createdOrganization notes an organization this transaction created, with its roles.
func (k *known) createdOrganization(id, partnerID string, roles map[string]roleRow) {
	if k.partnerOf == nil {
		k.partnerOf, k.roles, k.noWebhooks, k.users = map[string]string{}, map[string]map[string]roleRow{}, map[string]bool{}, map[string]User{}
		k.noPolicy = map[string]bool{}
	}
	k.partnerOf[id], k.roles[id], k.noWebhooks[id], k.noPolicy[id] = partnerID, roles, true, true
}

// ownedBy reports whether orgID is an organization this transaction created for partnerID.
func (k *known) ownedBy(orgID, partnerID string) bool {
	owner, ok := k.partnerOf[orgID]
	return ok && owner == partnerID
}

// createdUser notes a user this transaction created (or changed after creating it).
func (k *known) createdUser(u User, created bool) {
	if k.users == nil {
		k.users = map[string]User{}
	}
	if _, ok := k.users[u.ID]; ok || created {
		u.RoleIDs = append([]string(nil), u.RoleIDs...)
		k.users[u.ID] = u
	}
}

// user is a user this transaction created, if it is one, in orgID.
func (k *known) user(orgID, id string) (User, bool) {
	u, ok := k.users[id]
	if !ok || u.OrganizationID != orgID {
		return User{}, false
	}
	u.RoleIDs = append([]string(nil), u.RoleIDs...)
	return u, true
}

// forgetRoles drops orgID's roles (one changed: the next read asks the database).
func (k *known) forgetRoles(orgID string) { delete(k.roles, orgID) }

// forgetWebhooks drops that orgID has no webhook (one was written).
func (k *known) forgetWebhooks(orgID string) { delete(k.noWebhooks, orgID) }

// forgetKeyPolicy drops that orgID has no key policy (one was set).
func (k *known) forgetKeyPolicy(orgID string) { delete(k.noPolicy, orgID) }

// forgetUser drops a user (deleted).
func (k *known) forgetUser(id string) { delete(k.users, id) }

// forgetOrganization drops what is known of orgID and its users (deleted).
func (k *known) forgetOrganization(orgID string) {
	delete(k.partnerOf, orgID)
	delete(k.roles, orgID)
	delete(k.noWebhooks, orgID)
	delete(k.noPolicy, orgID)
	for id, u := range k.users {
		if u.OrganizationID == orgID {
			delete(k.users, id)
		}
	}
}
