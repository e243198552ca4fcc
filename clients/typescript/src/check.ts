// What both programs share: the server's address and the partner key, from the environment,
// and a check that stops the program, naming what went wrong.
export const baseUrl = required("TENANTRY_URL");
export const partnerKey = required("PARTNER_KEY");

function required(name: string): string {
  const value = process.env[name];
  if (!value) {
    throw new Error(`set ${name}`);
  }
  return value;
}

export function check(ok: boolean, what: string, got?: unknown): asserts ok {
  if (!ok) {
    throw new Error(`${what}${got === undefined ? "" : `: got ${JSON.stringify(got)}`}`);
  }
}
