// The partner workflow with Polytomic's official TypeScript SDK (npm polytomic), pointed at
// Tenantry: environment is the server's base URL (the SDK adds /api/...), token the key it
// sends as Authorization: Bearer. Compatibility is the product's first promise: a shape the
// SDK expects and the server does not give fails here.
import http from "node:http";
import type { AddressInfo } from "node:net";
import polytomic from "polytomic";
import { baseUrl, check, partnerKey } from "./check.js";

const { PolytomicClient } = polytomic;
// No version: the SDK then sends no X-Polytomic-Version, and each organization's pinned one applies.
const client = (token: string) => new PolytomicClient({ environment: baseUrl, token });
const partner = client(partnerKey);
// Polytomic's events filters are times; the organization below is made after this one.
const started = new Date(Date.now() - 1000).toISOString();

const me = await partner.identity.get();
check(me.data?.is_partner === true, "partner identity", me);

const org = await partner.organization.create({ name: "Polytomic SDK Inc", sso_domain: "sdk.test" });
const orgId = org.data?.id;
check(orgId !== undefined && org.data?.name === "Polytomic SDK Inc", "create organization", org);
const got = await partner.organization.get(orgId);
check(got.data?.sso_domain === "sdk.test", "get organization", got);
const renamed = await partner.organization.update(orgId, { name: "Polytomic SDK Ltd", sso_domain: "sdk.test" });
check(renamed.data?.name === "Polytomic SDK Ltd", "update organization", renamed);
const orgs = await partner.organization.list();
check(orgs.data?.some((o) => o.id === orgId && o.name === "Polytomic SDK Ltd") === true, "list organizations", orgs);

const user = await partner.users.create(orgId, { email: "root@sdk.test", role: "admin" });
const userId = user.data?.id;
check(userId !== undefined && user.data?.organization_id === orgId && user.data.role === "admin", "create user", user);

const key = await partner.users.createApiKey(orgId, userId, { force: true });
const userKey = key.data?.value;
check(userKey !== undefined && userKey.startsWith("tuk_"), "mint the user's key", key);

const who = await client(userKey).identity.get();
check(who.data?.email === "root@sdk.test" && who.data.organization_id === orgId && who.data.is_user === true, "user identity", who);

// Policies, as the root admin: Polytomic's permissions.policies, and policies on a connection.
const admin = client(userKey);
const roles = await admin.permissions.roles.list();
const memberRole = roles.data?.find((r) => r.name === "Member" && r.system === true)?.id;
check(memberRole !== undefined, "list roles", roles);
// Custom roles as Polytomic's clients make them: a name (and the organization), no actions.
const custom = await admin.permissions.roles.create({ name: "SDK role", organization_id: orgId });
const customId = custom.data?.id;
check(customId !== undefined && custom.data?.name === "SDK role" && custom.data.organization_id === orgId && custom.data.system === false,
  "create role", custom);
const renamedRole = await admin.permissions.roles.update(customId, { name: "SDK role v2", organization_id: orgId });
check(renamedRole.data?.name === "SDK role v2", "update role", renamedRole);
check((await admin.permissions.roles.get(customId)).data?.name === "SDK role v2", "get role", customId);
await admin.permissions.roles.remove(customId);
const policy = await admin.permissions.policies.create({
  name: "SDK policy",
  organization_id: orgId,
  policy_actions: [{ action: "connections:read", role_ids: [memberRole] }],
});
const policyId = policy.data?.id;
check(
  policyId !== undefined && policy.data?.organization_id === orgId && policy.data.system === false &&
    policy.data.policy_actions?.[0]?.action === "connections:read" && policy.data.policy_actions[0].role_ids?.[0] === memberRole,
  "create policy",
  policy,
);
const policies = await admin.permissions.policies.list();
check(policies.data?.length === 1 && policies.data[0]?.id === policyId, "list policies", policies);
const replaced = await admin.permissions.policies.update(policyId, { name: "SDK policy v2", policy_actions: [{ action: "datasets:read" }] });
check(replaced.data?.name === "SDK policy v2" && replaced.data.policy_actions?.length === 1 && replaced.data.policy_actions[0]?.role_ids?.length === 0,
  "update policy (a full replacement)", replaced);
const governed = await admin.connections.create({ name: "SDK warehouse", type: "postgresql", configuration: { host: "db.sdk.test" },
  policies: [policyId], organization_id: orgId, validate: false });
const governedId = governed.data?.id;
check(governedId !== undefined && governed.data?.policies?.[0] === policyId, "create a connection with policies", governed);
const fetchedConn = await admin.connections.get(governedId);
check(fetchedConn.data?.policies?.length === 1 && fetchedConn.data.policies[0] === policyId, "get the connection's policies", fetchedConn);
// Polytomic's update sends no type: the connection keeps its own. (The SDK types a connection's
// type as an object; Tenantry's, as its contract says, is the type's name.)
const reconfigured = await admin.connections.update(governedId, { name: "SDK warehouse v2", configuration: { host: "db2.sdk.test" }, organization_id: orgId });
check(reconfigured.data?.name === "SDK warehouse v2" && (reconfigured.data.type as unknown) === "postgresql" && reconfigured.data.configuration?.host === "db2.sdk.test",
  "update a connection without its type", reconfigured);
// An upstream test Tenantry does not run is refused, named, not ignored.
try {
  await admin.connections.create({ name: "SDK tested", type: "postgresql", configuration: {}, validate: true }, { maxRetries: 0 });
  check(false, "validate: true was accepted");
} catch (err) {
  check(err instanceof polytomic.Polytomic.BadRequestError && (err.body as polytomic.Polytomic.ApiError).metadata?.validate !== undefined,
    "validate: true, a 400 naming it", String(err));
}
await admin.connections.remove(governedId, { force: true });
await admin.permissions.policies.remove(policyId);
try {
  await admin.permissions.policies.get(policyId, { maxRetries: 0 });
  check(false, "the removed policy is still there");
} catch (err) {
  check(err instanceof polytomic.Polytomic.NotFoundError && err.statusCode === 404, "the removed policy: a 404", String(err));
}

// A webhook, as Polytomic's clients make one (a plain secret, the organization), delivering to a
// receiver on loopback; disabled and enabled, which the SDK reads as its disabled field.
const receiver = http.createServer((req, res) => { req.resume(); req.on("end", () => res.end()); });
await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
const hookUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
const hook = await admin.webhooks.create({ endpoint: hookUrl, secret: "an-sdk-shared-secret", organization_id: orgId });
const hookId = hook.data?.id;
check(hookId !== undefined && hook.data?.endpoint === hookUrl && hook.data.organization_id === orgId && hook.data.disabled === false,
  "create webhook", hook);
const hookOff = await admin.webhooks.disable(hookId);
check(hookOff.data?.disabled === true, "disable webhook", hookOff);
check((await admin.webhooks.get(hookId)).data?.disabled === true, "get the disabled webhook", hookId);
const hookOn = await admin.webhooks.enable(hookId);
check(hookOn.data?.disabled === false, "enable webhook", hookOn);
const moved = await admin.webhooks.update(hookId, { endpoint: hookUrl + "/v2", secret: "another-sdk-shared-secret", organization_id: orgId });
check(moved.data?.endpoint === hookUrl + "/v2" && moved.data.disabled === false, "update webhook", moved);
check((await admin.webhooks.list()).data?.some((w) => w.id === hookId) === true, "list webhooks", hookId);
await admin.webhooks.remove(hookId);
receiver.close();

// The organization's events, as Polytomic's clients filter them: by creation time.
const recent = await admin.events.list({ starting_after: started, limit: 100 });
check(recent.data?.some((e) => e.type === "connection.created" && e.organization_id === orgId) === true, "events after a time", recent);
const older = await admin.events.list({ ending_before: started });
check(older.data?.length === 0, "events before a time (none: the organization is newer)", older);

// A connection of the partner's owner organization shared into the customer's, at the SDK's paths.
const ownerOrgId = me.data?.organization_id;
check(ownerOrgId !== undefined, "the partner's owner organization", me);
const ops = await partner.users.create(ownerOrgId, { email: "ops@owner.sdk.test", role: "admin" });
const opsId = ops.data?.id;
check(opsId !== undefined, "create a user of the owner organization", ops);
const opsKey = (await partner.users.createApiKey(ownerOrgId, opsId, { force: true })).data?.value;
check(opsKey !== undefined, "mint the owner organization user's key", opsKey);
const ownConn = await client(opsKey).connections.create({ name: "SDK shared warehouse", type: "postgresql", configuration: { host: "db.owner.sdk.test" } });
const ownConnId = ownConn.data?.id;
check(ownConnId !== undefined, "create the owner organization's connection", ownConn);
const share = await partner.connections.createSharedConnection(ownConnId, { child_organization_id: orgId, name: "SDK shared" });
const shareId = share.data?.id;
check(shareId !== undefined && shareId !== ownConnId, "share a connection", share);
const shares = await partner.connections.listSharedConnections(ownConnId);
check(shares.data?.length === 1 && shares.data[0]?.id === shareId, "list a connection's shares", shares);
const seen = await admin.connections.get(shareId);
check(seen.data?.name === "SDK shared" && seen.data.parent_connection_id === ownConnId, "the share, as the customer sees it", seen);

const updated = await partner.users.update(userId, orgId, { email: "admin@sdk.test", role: "user" });
check(updated.data?.email === "admin@sdk.test" && updated.data.role === "user", "update user", updated);
const fetched = await partner.users.get(userId, orgId);
check(fetched.data?.email === "admin@sdk.test", "get user", fetched);
const listed = await partner.users.list(orgId);
check(listed.data?.length === 1 && listed.data[0]?.email === "admin@sdk.test", "list users", listed);

const removed = await partner.users.remove(userId, orgId);
check(removed.data?.id === userId, "remove user", removed);

// The removed user's key is refused: 401, which the SDK raises as its UnauthorizedError.
try {
  await client(userKey).identity.get({ maxRetries: 0 });
  check(false, "the removed user's key still works");
} catch (err) {
  // The SDK types a 401's body as RestErrResponse ({code, error, status: string, context}),
  // unlike its other errors' ApiError; Tenantry sends the one shape of every error.
  check(err instanceof polytomic.Polytomic.UnauthorizedError && err.statusCode === 401, "the removed user's key: a 401", String(err));
}

await partner.organization.remove(orgId);
try {
  await partner.organization.get(orgId, { maxRetries: 0 });
  check(false, "the removed organization is still there");
} catch (err) {
  // The SDK types this body as its ApiError ({status, key, message, metadata}): Tenantry's shape.
  check(err instanceof polytomic.Polytomic.NotFoundError && err.statusCode === 404, "the removed organization: a 404", String(err));
  const body = err.body as polytomic.Polytomic.ApiError;
  check(body.status === 404 && body.key === "organization_not_found" && typeof body.message === "string", "the 404's body", body);
}

console.log(`polytomic SDK: partner workflow passed (organization ${orgId})`);
