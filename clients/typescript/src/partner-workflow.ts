// The partner workflow of the README with a client generated from openapi.yaml: the types
// come from `npx openapi-typescript ../../openapi.yaml -o src/schema.d.ts`, the requests from
// openapi-fetch. It type-checks with tsc --strict, so a field or path the contract lacks is
// a compile error, and it runs against a real server (TENANTRY_URL, PARTNER_KEY).
import createClient from "openapi-fetch";
import type { paths } from "./schema.js";
import { baseUrl, check, partnerKey } from "./check.js";

const client = (key: string) => createClient<paths>({ baseUrl, headers: { Authorization: `Bearer ${key}` } });
const partner = client(partnerKey);

const me = await partner.GET("/api/me");
check(me.response.status === 200 && me.data?.data.is_partner === true, "partner GET /api/me", me.error ?? me.data);

const org = await partner.POST("/api/organizations", {
  body: { name: "Generated Client Inc", sso_domain: "generated.test" },
});
check(org.response.status === 200 && org.data !== undefined, "create organization", org.error);
const orgId: string = org.data.data.id;

const user = await partner.POST("/api/organizations/{org_id}/users", {
  params: { path: { org_id: orgId } },
  body: { email: "root@generated.test", role: "admin" },
});
check(user.response.status === 200 && user.data !== undefined, "create user", user.error);
const userId: string = user.data.data.id;

const minted = await partner.POST("/api/organizations/{org_id}/users/{id}/keys", {
  params: { path: { org_id: orgId, id: userId }, query: { force: true } },
});
check(minted.response.status === 200 && minted.data?.data.value !== undefined, "mint the user's key", minted.error);
const userKey: string = minted.data.data.value;

const asUser = client(userKey);
const who = await asUser.GET("/api/me");
check(who.data?.data.email === "root@generated.test" && who.data.data.organization_id === orgId, "user GET /api/me", who.error ?? who.data);

// An error is typed too: the body of a refusal has its key.
const refused = await asUser.GET("/api/organizations");
check(refused.response.status === 403 && refused.error?.key === "partner_key_required", "user key on a partner route", refused.error);

const removed = await partner.DELETE("/api/organizations/{org_id}", { params: { path: { org_id: orgId } } });
check(removed.response.status === 200, "delete organization", removed.error);
const after = await asUser.GET("/api/me");
check(after.response.status === 401 && after.error?.key === "invalid_token", "the key of a deleted organization", after.error);

console.log(`generated client: partner workflow passed (organization ${orgId})`);
