// Hop-by-hop header fields (RFC 9110 §7.6.1): the names that describe one connection and must
// never be stored in the cache or forwarded, plus the allocation-free name comparisons the request
// vetting in front.ts relies on.

/** A header map as Node and undici give them: lowercase names, repeated fields as arrays. */
export type HeaderMap = Record<string, string | string[] | number | undefined>;

/** The fixed hop-by-hop names, lowercase. `Connection` adds more per message. */
const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'proxy-authorization',
]);

/**
 * Fields a `Connection` header may not remove: framing and routing are end-to-end, and a client
 * that lists them is trying to make an intermediary drop them (the "hop-by-hop abuse" trick).
 */
const PROTECTED: ReadonlySet<string> = new Set(['host', 'content-length']);

/**
 * True when `name` equals `lower` ignoring ASCII case. `lower` must be lowercase. No allocation,
 * unlike `name.toLowerCase()`, which copies the usual `Host` or `Connection` spelling.
 */
export function equalsLower(name: string, lower: string): boolean {
  const n = lower.length;
  if (name.length !== n) return false;
  for (let i = 0; i < n; i++) {
    const c = name.charCodeAt(i);
    const t = lower.charCodeAt(i);
    // `| 0x20` folds A–Z onto a–z; it never maps any byte onto `_` or a digit, so those compare exactly.
    if (c !== t && (c | 0x20) !== t) return false;
  }
  return true;
}

/** True for the fixed hop-by-hop names, ignoring case, without allocating in the common case. */
export function isFixedHopByHop(name: string): boolean {
  switch (name.length) {
    case 2:
      return equalsLower(name, 'te');
    case 7:
      return equalsLower(name, 'trailer') || equalsLower(name, 'upgrade');
    case 10:
      return equalsLower(name, 'connection') || equalsLower(name, 'keep-alive');
    case 16:
      return equalsLower(name, 'proxy-connection');
    case 17:
      return equalsLower(name, 'transfer-encoding');
    case 19:
      return equalsLower(name, 'proxy-authorization');
    default:
      return false;
  }
}

/**
 * Adds the field names listed in a `Connection` value to `into` (lowercase), skipping the fixed
 * hop-by-hop names (removed anyway) and the protected ones. Returns `into`, created on the first
 * name, so the usual `keep-alive` / `close` values cost nothing.
 */
export function connectionTokens(value: string, into: string[] | undefined): string[] | undefined {
  if (equalsLower(value, 'keep-alive') || equalsLower(value, 'close')) return into;
  for (const part of value.split(',')) {
    const token = part.trim().toLowerCase();
    if (token === '' || HOP_BY_HOP.has(token) || PROTECTED.has(token) || into?.includes(token)) continue;
    (into ??= []).push(token);
  }
  return into;
}

/**
 * Removes the hop-by-hop fields from a header map in place (the fixed names and those listed in
 * its `Connection` field) and returns the same map. Use it on origin response headers before
 * storing or forwarding them. Names may be in any case.
 */
export function stripHopByHop<T extends HeaderMap>(headers: T): T {
  let listed: string[] | undefined;
  for (const name of Object.keys(headers)) {
    if (!equalsLower(name, 'connection')) continue;
    const value = headers[name];
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) listed = connectionTokens(v, listed);
    else listed = connectionTokens(String(value), listed);
  }
  for (const name of Object.keys(headers)) {
    if (isFixedHopByHop(name) || (listed !== undefined && listed.includes(name.toLowerCase()))) {
      delete headers[name];
    }
  }
  return headers;
}
