// A stored response: immutable once built, with its header blocks precomputed so the HIT path is a
// Map get, an age subtraction and one `res.writeHead` + `res.end(body)`.
import { getHeader, parseHttpDate, withoutHeaders, type HeaderList } from './headers.ts';
import type { Lifetime } from './policy.ts';

/** Everything an object is built from. `headers` are end-to-end, without Age and Content-Length. */
export interface ObjectInit {
  key: string;
  host: string;
  url: string;
  status: number;
  headers: HeaderList;
  body: Buffer;
  life: Lifetime;
  /** Fields named by `no-cache="…"`: stripped when served without revalidation. */
  noCacheFields: readonly string[] | null;
  varyNames: readonly string[] | null;
  varyValues: readonly (string | null)[];
  /** May be served to requests carrying Authorization (public / s-maxage / must-revalidate). */
  authOk: boolean;
  /** Ban list position when the fetch began: bans added later apply to this object. */
  banSeq: number;
  via: string | null;
}

/** Fields a 304 carries (RFC 9110 §15.4.5). */
const NOT_MODIFIED_FIELDS = ['cache-control', 'content-location', 'date', 'etag', 'expires', 'vary', 'last-modified', 'via'];
/** Storage bookkeeping cost of an object beyond its body and headers (an estimate). */
const OBJECT_OVERHEAD = 256;

/** Delivery header block: stored headers, minus Surrogate-Key (an internal tag), plus length and Via. */
export function buildHead(headers: HeaderList, status: number, bodyLength: number | null, via: string | null): HeaderList {
  const out: HeaderList = [];
  let sawVia = false;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i] as string;
    if (name === 'surrogate-key' || name === 'content-length' || name === 'age') continue;
    let value = headers[i + 1] as string;
    if (name === 'via' && via !== null && !sawVia) { value = `${value}, ${via}`; sawVia = true; }
    out.push(name, value);
  }
  if (via !== null && !sawVia) out.push('via', via);
  // RFC 9110 §8.6: no Content-Length on 204 (and 1xx/304, which are never stored).
  if (bodyLength !== null && status !== 204 && status !== 304) out.push('content-length', String(bodyLength));
  return out;
}

/** The subset of a delivery block a 304 repeats. */
export function notModifiedHead(head: HeaderList): HeaderList {
  const nm: HeaderList = [];
  for (let i = 0; i < head.length; i += 2) {
    const name = head[i] as string;
    if (NOT_MODIFIED_FIELDS.includes(name)) nm.push(name, head[i + 1] as string);
  }
  return nm;
}

export class CacheObject {
  readonly key: string;
  readonly host: string;
  readonly url: string;
  readonly status: number;
  readonly headers: HeaderList;
  readonly body: Buffer;
  readonly life: Lifetime;
  readonly noCacheFields: readonly string[] | null;
  readonly varyNames: readonly string[] | null;
  readonly varyValues: readonly (string | null)[];
  readonly authOk: boolean;
  readonly tags: readonly string[];
  readonly etag: string | undefined;
  readonly lastModified: string | undefined;
  readonly lastModifiedMs: number;
  /** Full delivery block (after a validation, or when there is nothing to strip). */
  readonly head: HeaderList;
  /** Block for reuse without validation: `head` minus the `no-cache="…"` fields. */
  readonly hitHead: HeaderList;
  /** Block for a 304 answered from this object. */
  readonly notModifiedHead: HeaderList;
  readonly size: number;
  readonly via: string | null;
  banSeq: number;
  /** Last LRU bump (ms); bumps are throttled so a hot object does not reshuffle the list per hit. */
  lastUse = 0;
  removed = false;

  constructor(init: ObjectInit) {
    this.key = init.key;
    this.host = init.host;
    this.url = init.url;
    this.status = init.status;
    this.headers = init.headers;
    this.body = init.body;
    this.life = init.life;
    this.noCacheFields = init.noCacheFields;
    this.varyNames = init.varyNames;
    this.varyValues = init.varyValues;
    this.authOk = init.authOk;
    this.banSeq = init.banSeq;
    this.via = init.via;
    const sk = getHeader(init.headers, 'surrogate-key');
    this.tags = sk === undefined ? [] : sk.split(/\s+/).filter(Boolean);
    this.etag = getHeader(init.headers, 'etag');
    this.lastModified = getHeader(init.headers, 'last-modified');
    this.lastModifiedMs = parseHttpDate(this.lastModified);
    const head = buildHead(init.headers, init.status, init.body.length, init.via);
    // Stored 200s answer byte ranges, so say so (RFC 9110 §14.3).
    if (init.status === 200 && getHeader(head, 'accept-ranges') === undefined) head.push('accept-ranges', 'bytes');
    this.head = head;
    this.hitHead = init.noCacheFields === null ? this.head : withoutHeaders(this.head, new Set(init.noCacheFields));
    this.notModifiedHead = notModifiedHead(this.head);
    let headerBytes = 0;
    for (const h of init.headers) headerBytes += h.length + 2;
    this.size = init.body.length + headerBytes + init.key.length + OBJECT_OVERHEAD;
  }

  /** This object with headers and lifetime refreshed by a 304 (RFC 9111 §4.3.4); the body is shared. */
  refreshed(notModified: HeaderList, life: Lifetime, banSeq: number, varyNames: readonly string[] | null, varyValues: readonly (string | null)[], noCacheFields: readonly string[] | null): CacheObject {
    return new CacheObject({
      key: this.key, host: this.host, url: this.url, status: this.status, body: this.body, via: this.via,
      headers: mergeHeaders(this.headers, notModified), life, noCacheFields, varyNames, varyValues,
      authOk: this.authOk, banSeq,
    });
  }
}

/**
 * RFC 9111 §3.2: every field in the newer response replaces the stored field of that name, except
 * Content-Length (the stored body is what we serve).
 */
export function mergeHeaders(stored: HeaderList, newer: HeaderList): HeaderList {
  const replaced = new Set<string>();
  for (let i = 0; i < newer.length; i += 2) if (newer[i] !== 'content-length' && newer[i] !== 'age') replaced.add(newer[i] as string);
  const out = withoutHeaders(stored, replaced);
  for (let i = 0; i < newer.length; i += 2) if (replaced.has(newer[i] as string)) out.push(newer[i] as string, newer[i + 1] as string);
  return out;
}

/** Origin headers forwarded as they are (pass, uncacheable answers), Via appended. */
export function forwardHead(headers: HeaderList, via: string | null): HeaderList {
  if (via === null) return headers.slice();
  const out: HeaderList = [];
  let sawVia = false;
  for (let i = 0; i < headers.length; i += 2) {
    let value = headers[i + 1] as string;
    if (headers[i] === 'via' && !sawVia) { value = `${value}, ${via}`; sawVia = true; }
    out.push(headers[i] as string, value);
  }
  if (!sawVia) out.push('via', via);
  return out;
}
