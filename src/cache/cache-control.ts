// Cache-Control parsing (RFC 9111 §5.2): one pass over the field value into a plain record, for
// requests and responses alike. Unknown directives are ignored, as §5.2.3 requires. And the
// targeted fields (RFC 9213) that take Cache-Control's place for the cache.
import type { HeaderList } from './headers.ts';

/** Directives tinyedge acts on. Times are in seconds; absent means "not present". */
export interface CacheControl {
  noStore: boolean;
  /** `no-cache`: true when unqualified, or the list of field names it qualifies. */
  noCache: true | string[] | null;
  /** `private`: true when unqualified, or the field names it qualifies. */
  private: true | string[] | null;
  public: boolean;
  mustRevalidate: boolean;
  proxyRevalidate: boolean;
  onlyIfCached: boolean;
  maxAge?: number;
  sMaxage?: number;
  /** Request `max-stale`: Infinity when given without a value. */
  maxStale?: number;
  minFresh?: number;
  staleWhileRevalidate?: number;
  staleIfError?: number;
}

export const EMPTY_CACHE_CONTROL: Readonly<CacheControl> = Object.freeze({
  noStore: false, noCache: null, private: null, public: false, mustRevalidate: false,
  proxyRevalidate: false, onlyIfCached: false,
});

/**
 * delta-seconds (RFC 9111 §1.2.2): digits only; too-large values saturate at 2^31. Invalid values
 * give 0, which makes a max-age response stale rather than fresh forever (§4.2.1 prefers stale).
 */
function deltaSeconds(v: string | undefined): number {
  if (v === undefined || !/^\d+$/.test(v)) return 0;
  const n = Number(v);
  return n > 2147483648 ? 2147483648 : n;
}

function fieldNames(v: string | undefined): true | string[] {
  if (v === undefined) return true;
  const names = v.split(',').map((s) => s.trim().toLowerCase()).filter(Boolean);
  return names.length > 0 ? names : true;
}

/** Splits on commas that are outside quoted strings (no-cache="a, b" is one directive). */
function splitDirectives(value: string): string[] {
  if (!value.includes('"')) return value.split(',');
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < value.length; i++) {
    const c = value[i] as string;
    if (c === '"') quoted = !quoted;
    else if (c === '\\' && quoted) { cur += c + (value[i + 1] ?? ''); i++; continue; }
    if (c === ',' && !quoted) { out.push(cur); cur = ''; } else cur += c;
  }
  out.push(cur);
  return out;
}

/**
 * Targeted cache-control fields (RFC 9213) tinyedge obeys, in the order it looks for them: its own,
 * then the one every CDN obeys. The first with a valid, non-empty value decides how the cache
 * treats the response in place of Cache-Control and Expires; clients still get every field.
 */
export const TARGETED_FIELDS = ['tinyedge-cache-control', 'cdn-cache-control'] as const;

/**
 * The response fields the cache's policy reads: `headers` as they are, or, when a targeted field
 * applies, without Cache-Control and Expires and with the targeted value as Cache-Control.
 */
export function policyHeaders(headers: HeaderList): HeaderList {
  for (const name of TARGETED_FIELDS) {
    let value: string | undefined;
    for (let i = 0; i < headers.length; i += 2) if (headers[i] === name) value = value === undefined ? headers[i + 1] : `${value}, ${headers[i + 1]}`;
    // A targeted field is a Structured Fields dictionary: a value that is not one is ignored.
    if (value === undefined || !DICTIONARY.test(value.trim()) || !integersWhereDue(value)) continue;
    const out: HeaderList = [];
    for (let i = 0; i < headers.length; i += 2) if (headers[i] !== 'cache-control' && headers[i] !== 'expires') out.push(headers[i]!, headers[i + 1]!);
    out.push('cache-control', value.trim());
    return out;
  }
  return headers;
}

/** Directives whose values are delta-seconds: Integers in a targeted field (RFC 9213 §2.1). */
const INTEGER_DIRECTIVES = new Set(['max-age', 's-maxage', 'stale-while-revalidate', 'stale-if-error']);

/**
 * Whether every delta-seconds directive of a targeted value is an Integer. `max-age="60"` parses as
 * a dictionary but carries a String: the value is of the wrong type, so the whole field is ignored
 * (a parsing failure, RFC 9213 §2.1), rather than read the lenient way Cache-Control is.
 */
function integersWhereDue(value: string): boolean {
  for (const member of value.split(',')) {
    const eq = member.indexOf('=');
    if (eq >= 0 && INTEGER_DIRECTIVES.has(member.slice(0, eq).trim()) && !/^\d{1,15}$/.test(member.slice(eq + 1).trim())) return false;
  }
  return true;
}

/** A Structured Fields dictionary of tokens and integers, as targeted fields carry (RFC 8941 §3.2, simplified). */
const DICTIONARY = /^[a-z*][a-z0-9_\-.*]*(=(\d{1,15}|[A-Za-z*][!#$%&'*+\-.^_`|~0-9A-Za-z:/]*|"[^"\\]*"))?(\s*,\s*[a-z*][a-z0-9_\-.*]*(=(\d{1,15}|[A-Za-z*][!#$%&'*+\-.^_`|~0-9A-Za-z:/]*|"[^"\\]*"))?)*$/;

/** Parses one (possibly comma-joined) Cache-Control value. The first occurrence of a directive wins. */
export function parseCacheControl(value: string | undefined): CacheControl {
  const cc: CacheControl = { ...EMPTY_CACHE_CONTROL };
  if (value === undefined || value === '') return cc;
  for (const part of splitDirectives(value)) {
    const eq = part.indexOf('=');
    const name = (eq < 0 ? part : part.slice(0, eq)).trim().toLowerCase();
    let arg: string | undefined = eq < 0 ? undefined : part.slice(eq + 1).trim();
    if (arg !== undefined && arg.length >= 2 && arg.startsWith('"') && arg.endsWith('"')) arg = arg.slice(1, -1);
    switch (name) {
      case 'no-store': cc.noStore = true; break;
      case 'no-cache': cc.noCache ??= fieldNames(arg); break;
      case 'private': cc.private ??= fieldNames(arg); break;
      case 'public': cc.public = true; break;
      case 'must-revalidate': cc.mustRevalidate = true; break;
      case 'proxy-revalidate': cc.proxyRevalidate = true; break;
      case 'only-if-cached': cc.onlyIfCached = true; break;
      case 'max-age': cc.maxAge ??= deltaSeconds(arg); break;
      case 's-maxage': cc.sMaxage ??= deltaSeconds(arg); break;
      case 'max-stale': cc.maxStale ??= arg === undefined ? Infinity : deltaSeconds(arg); break;
      case 'min-fresh': cc.minFresh ??= deltaSeconds(arg); break;
      case 'stale-while-revalidate': cc.staleWhileRevalidate ??= deltaSeconds(arg); break;
      case 'stale-if-error': cc.staleIfError ??= deltaSeconds(arg); break;
      default: break;
    }
  }
  return cc;
}
