// What `tinyedge log` and `tinyedge stat` share: where the admin API is, the token they send (from
// the environment or the command line), and a failed call said in one line.

export interface AdminOptions {
  admin: string;
  token?: string;
}

/** The admin API's base URL and the token: --token, else TINYEDGE_TOKEN; none is a usage error. */
export function adminTarget(opts: AdminOptions): { base: string; token: string } {
  const token = opts.token ?? process.env.TINYEDGE_TOKEN;
  if (token === undefined || token === '') throw new AdminCallError('no token: set TINYEDGE_TOKEN or pass --token (a tenant\'s token, or the operator\'s)');
  return { base: opts.admin.replace(/\/+$/, ''), token };
}

/** A call the admin API refused or could not answer, in one line. */
export class AdminCallError extends Error {}

/** GET `path` on the admin API; the response, or an AdminCallError with the API's own reason. */
export async function adminGet(base: string, token: string, path: string, accept = 'application/json'): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${token}`, accept } });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    throw new AdminCallError(`cannot reach the admin API at ${base}: ${cause?.code ?? cause?.message ?? (err as Error).message}`);
  }
  if (!res.ok) {
    const text = await res.text();
    let reason = text.trim();
    try {
      reason = String((JSON.parse(text) as { error?: unknown }).error ?? reason);
    } catch {
      // not JSON: the text as it is
    }
    throw new AdminCallError(`${path}: ${res.status} ${reason}`);
  }
  return res;
}
