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
  /**
   * The body is a view of memory the object's storage manages (shared storage): kept as it is,
   * where a body of the heap is copied into memory of its own.
   */
  bodyIsView?: boolean;
}

/**
 * Keeps the memory under a stored body from being reused while a response writes it: a body in
 * shared storage may be freed once its record is gone, but not under a socket still sending it.
 * `hold()` before handing the body to a socket, `release()` once the write is over or abandoned.
 */
export interface BodyLease {
  hold(): void;
  release(): void;
}

/** Fields a 304 carries (RFC 9110 §15.4.5). */
const NOT_MODIFIED_FIELDS = ['cache-control', 'content-location', 'date', 'etag', 'expires', 'vary', 'last-modified', 'via'];

/**
 * Most surrogate keys (distinct tags) one object may carry. A response with more is delivered but
 * not stored: dropping some of its tags would let a later purge-tag miss it and serve stale
 * content, so nothing is kept rather than something wrong.
 */
export const MAX_OBJECT_TAGS = 1024;
/** Most characters of Surrogate-Key field values (separators included) one object may carry. */
export const MAX_OBJECT_TAG_BYTES = 16 * 1024;

// What one object costs the host's heap beyond the characters and bytes it holds, measured on Node
// 20 (x64) by bench/cache-memory.ts: heapUsed + external after gc, per object, over many objects.
/**
 * The object itself with its lifetime, its header-block arrays, the body's Buffer and ArrayBuffer,
 * the key and URL string headers, and the fast path's serialised head (a Buffer in a WeakMap).
 * Measured: 1 700 bytes for an object with three header fields and a 10-byte body, of which
 * 1 240 before its first fast hit.
 */
const OBJECT_BYTES = 1200;
/**
 * One stored header field: its name and value string headers and its slots in the header-block
 * arrays. Measured: 64 bytes per field beyond its characters.
 */
const HEADER_FIELD_BYTES = 72;
/**
 * One string in a list the object holds (a surrogate key, a Vary name or value, a no-cache field
 * name): its string header and its array slot; its characters are counted apart. A surrogate key
 * is charged only this: V8 cuts it as a slice of the stored field value (whose characters are
 * counted with the headers) or, under 13 characters, as a copy that fits in it. Measured: 40 bytes
 * per surrogate key.
 */
const STRING_BYTES = 40;

/** The object's surrogate keys, or why it may not be stored. */
export type SurrogateKeys = { tags: readonly string[]; error: null } | { tags: readonly []; error: string };

/**
 * Every Surrogate-Key field of `headers` (several fields add up), split on whitespace, without
 * duplicates, within MAX_OBJECT_TAGS and MAX_OBJECT_TAG_BYTES.
 */
export function surrogateKeys(headers: HeaderList): SurrogateKeys {
  let chars = 0;
  let fields = 0;
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i] === 'surrogate-key') { chars += (headers[i + 1] as string).length + 1; fields++; }
  }
  if (fields === 0) return { tags: [], error: null };
  // Checked before splitting: a hostile field is refused without building its pieces.
  if (chars - 1 > MAX_OBJECT_TAG_BYTES) return { tags: [], error: `surrogate keys of ${chars - 1} bytes (at most ${MAX_OBJECT_TAG_BYTES})` };
  const tags = new Set<string>();
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i] !== 'surrogate-key') continue;
    for (const t of (headers[i + 1] as string).split(/\s+/)) if (t !== '') tags.add(t);
  }
  if (tags.size > MAX_OBJECT_TAGS) return { tags: [], error: `${tags.size} surrogate keys (at most ${MAX_OBJECT_TAGS})` };
  return { tags: [...tags], error: null };
}

/** Heap bytes of a list of strings held by an object. */
function stringsBytes(list: readonly (string | null)[] | null): number {
  if (list === null) return 0;
  let n = 0;
  for (const s of list) n += STRING_BYTES + (s === null ? 0 : s.length);
  return n;
}

/**
 * `body` in memory of its own: a stored body must not keep alive the larger buffer it was cut from
 * (a socket read, or the 8 KiB pool small Buffers share), which the size accounting cannot see.
 */
function ownBuffer(body: Buffer): Buffer {
  if (body.byteOffset === 0 && body.length === body.buffer.byteLength) return body;
  const own = Buffer.allocUnsafeSlow(body.length);
  body.copy(own);
  return own;
}

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
  /** Set when the object carries more surrogate keys than allowed: it must not be stored. */
  readonly tagError: string | null;
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
  /** Set by shared storage on the objects it materialises; null for objects on the heap. */
  lease: BodyLease | null = null;

  constructor(init: ObjectInit) {
    this.key = init.key;
    this.host = init.host;
    this.url = init.url;
    this.status = init.status;
    this.headers = init.headers;
    this.body = init.bodyIsView === true ? init.body : ownBuffer(init.body);
    this.life = init.life;
    this.noCacheFields = init.noCacheFields;
    this.varyNames = init.varyNames;
    this.varyValues = init.varyValues;
    this.authOk = init.authOk;
    this.banSeq = init.banSeq;
    this.via = init.via;
    const keys = surrogateKeys(init.headers);
    this.tags = keys.tags;
    this.tagError = keys.error;
    this.etag = getHeader(init.headers, 'etag');
    this.lastModified = getHeader(init.headers, 'last-modified');
    this.lastModifiedMs = parseHttpDate(this.lastModified);
    const head = buildHead(init.headers, init.status, init.body.length, init.via);
    // Stored 200s answer byte ranges, so say so (RFC 9110 §14.3).
    if (init.status === 200 && getHeader(head, 'accept-ranges') === undefined) head.push('accept-ranges', 'bytes');
    this.head = head;
    this.hitHead = init.noCacheFields === null ? this.head : withoutHeaders(this.head, new Set(init.noCacheFields));
    this.notModifiedHead = notModifiedHead(this.head);
    let size = OBJECT_BYTES + this.body.length + init.key.length + init.url.length;
    for (let i = 0; i < init.headers.length; i += 2) size += HEADER_FIELD_BYTES + (init.headers[i] as string).length + (init.headers[i + 1] as string).length;
    // The fast path serialises the delivery block once per object ("name: value\r\n").
    for (let i = 0; i < this.hitHead.length; i += 2) size += (this.hitHead[i] as string).length + (this.hitHead[i + 1] as string).length + 4;
    size += this.tags.length * STRING_BYTES + stringsBytes(init.varyNames) + stringsBytes(init.varyValues) + stringsBytes(init.noCacheFields);
    this.size = size;
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
function mergeHeaders(stored: HeaderList, newer: HeaderList): HeaderList {
  const replaced = new Set<string>();
  for (let i = 0; i < newer.length; i += 2) if (newer[i] !== 'content-length' && newer[i] !== 'age') replaced.add(newer[i] as string);
  const out = withoutHeaders(stored, replaced);
  for (let i = 0; i < newer.length; i += 2) if (replaced.has(newer[i] as string)) out.push(newer[i] as string, newer[i + 1] as string);
  return out;
}

/**
 * Where our Via goes in a forwarded head: the index of its first Via field, whose value it
 * extends, or -1 when it is a field of its own at the end.
 */
export function viaIndex(headers: HeaderList): number {
  for (let i = 0; i < headers.length; i += 2) if (headers[i] === 'via') return i;
  return -1;
}

/** Origin headers forwarded as they are (pass, uncacheable answers), Via appended. */
export function forwardHead(headers: HeaderList, via: string | null): HeaderList {
  const out = headers.slice();
  if (via === null) return out;
  const at = viaIndex(headers);
  if (at < 0) out.push('via', via);
  else out[at + 1] = `${out[at + 1]}, ${via}`;
  return out;
}
