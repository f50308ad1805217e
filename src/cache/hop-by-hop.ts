// Hop-by-hop header fields (RFC 9110 §7.6.1): the one list of names that describe a connection,
// not the message, and so are never stored, forwarded or handed to a program. The front's request
// vetting, the cache towards origins and clients, the raw fast path, `serve`'s programs and `dev`
// all ask here. Also the framing fields, a separate fact: who writes a body sets them.
//
// The list is RFC 9110 §7.6.1's (Connection and what it names; Proxy-Connection, Keep-Alive, TE,
// Transfer-Encoding, Upgrade), plus:
// - Trailer: hop-by-hop in RFC 2616 and 7230; it announces trailer fields, and nothing here
//   forwards trailers, so passing it on would promise fields that never come.
// - Proxy-Authenticate and Proxy-Authorization (RFC 9110 §11.7): a challenge to, and credentials
//   for, the next proxy on the chain. tinyedge authenticates no one as a proxy, so a request's
//   Proxy-Authorization was meant for a proxy before us and must not reach an origin or a program
//   (it would leak the client's proxy credentials), and an origin's Proxy-Authenticate means
//   nothing to the client.

/** A header map as Node and undici give them: lowercase names, repeated fields as arrays. */
export type HeaderMap = Record<string, string | string[] | number | undefined>;

/**
 * Fields a `Connection` header may not remove: routing and framing are end to end, and a client
 * that lists them is trying to make an intermediary drop them ("hop-by-hop abuse").
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

/**
 * True for the fixed hop-by-hop names, in any case: the list itself, switched on length so the
 * common end-to-end names cost one compare and no allocation.
 */
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
    case 18:
      return equalsLower(name, 'proxy-authenticate');
    case 19:
      return equalsLower(name, 'proxy-authorization');
    default:
      return false;
  }
}

/**
 * True for the fields that frame a body (Content-Length, Transfer-Encoding), in any case. Whoever
 * writes a body sets them from the bytes it writes: a program's or a hook's values are dropped.
 */
export function isFraming(name: string): boolean {
  return equalsLower(name, 'content-length') || equalsLower(name, 'transfer-encoding');
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
    if (token === '' || isFixedHopByHop(token) || PROTECTED.has(token) || into?.includes(token)) continue;
    (into ??= []).push(token);
  }
  return into;
}

/**
 * Removes the hop-by-hop fields from a header map in place (the fixed names and those listed in
 * its `Connection` field) and returns the same map. Names may be in any case.
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

/**
 * `endToEndList` of [name, value] pairs (a program's answer). Flattened by a loop: `flat()` goes
 * through V8's runtime for each call and cost more than the rest of this.
 */
export function endToEndPairs(pairs: ReadonlyArray<readonly [string, string]>, dropFraming = false): string[] {
  const list: string[] = new Array<string>(pairs.length * 2);
  for (let i = 0; i < pairs.length; i++) {
    const pair = pairs[i]!;
    list[2 * i] = pair[0];
    list[2 * i + 1] = pair[1];
  }
  return endToEndList(list, dropFraming);
}

/**
 * The end-to-end fields of a flat [name, value, …] list, names lowercased: without the fixed
 * hop-by-hop names, those its `Connection` fields list, and (with `dropFraming`) the framing ones.
 */
export function endToEndList(list: readonly string[], dropFraming = false): string[] {
  let listed: string[] | undefined;
  for (let i = 0; i < list.length; i += 2) {
    if (equalsLower(list[i] as string, 'connection')) listed = connectionTokens(list[i + 1] as string, listed);
  }
  const out: string[] = [];
  for (let i = 0; i < list.length; i += 2) {
    const name = list[i] as string;
    if (isFixedHopByHop(name) || (dropFraming && isFraming(name))) continue;
    const lower = name.toLowerCase();
    if (listed !== undefined && listed.includes(lower)) continue;
    out.push(lower, list[i + 1] as string);
  }
  return out;
}
