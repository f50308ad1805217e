// Parsers for the config file's leaf values (durations, sizes, addresses, host names, origin URLs,
// names, route prefixes). Each returns the typed value or an `expected …` phrase; the schema turns
// the phrase into `expected …, got <what the file holds>`, so every message names both sides.

/** A value, or what was expected instead plus an optional detail about what was found. */
export type Parsed<T> = { ok: true; value: T } | { ok: false; expected: string; detail?: string };

export const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });
export const no = <T>(expected: string, detail?: string): Parsed<T> => ({ ok: false, expected, ...(detail === undefined ? {} : { detail }) });

/** How a value found in the file reads in a message: strings quoted, collections by kind. */
export function show(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'an empty value';
  if (typeof v === 'string') return JSON.stringify(v.length > 60 ? `${v.slice(0, 57)}...` : v);
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return String(v);
}

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

/** Node's timers overflow past 2^31-1 ms (they then fire at once), so no duration may exceed it. */
const MAX_DURATION_MS = 2 ** 31 - 1;

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
/** Size units, matched without regard to case: binary ones only (`64MB` could mean 10^6 or 2^20). */
const SIZE_UNITS: Record<string, number> = { b: 1, kib: KiB, mib: MiB, gib: GiB, tib: 1024 * GiB };
/** Units people write that mean 1000^n to some and 1024^n to others: refused, with a hint. */
const AMBIGUOUS_SIZE_UNIT = /^(?:[kmgt]|[kmgt]b)$/i;

/** `<number><unit>` with an optional fraction; the result must be a whole number of base units. */
function scaled(text: string, units: Record<string, number>, bareUnit: number, caseless = false): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*([A-Za-z]*)$/.exec(text.trim());
  if (!m) return undefined;
  const unit = caseless ? (m[2] ?? '').toLowerCase() : m[2] ?? '';
  const factor = unit === '' ? bareUnit : units[unit];
  if (factor === undefined) return undefined;
  const exact = Number(m[1]) * factor;
  const whole = Math.round(exact);
  // Decimal fractions are not exact in binary ("1.1s" is 1100.0000000000002 ms).
  return Math.abs(exact - whole) < 1e-6 && Number.isSafeInteger(whole) ? whole : undefined;
}

const DURATION_FORM = '(e.g. "500ms", "10s", "2m", or milliseconds)';

/** A duration in ms: "500ms", "10s", "2m", "1h", or a number of milliseconds. */
export function parseDuration(v: unknown, positive: boolean): Parsed<number> {
  const expected = `${positive ? 'a positive duration' : 'a duration'} ${DURATION_FORM}`;
  const ms = typeof v === 'number' ? (Number.isSafeInteger(v) ? v : undefined) : typeof v === 'string' ? scaled(v, DURATION_UNITS, 1) : undefined;
  if (ms === undefined || ms < 0 || (positive && ms === 0)) return no(expected);
  if (ms > MAX_DURATION_MS) return no('a duration of at most 24 days');
  return ok(ms);
}

const SIZE_FORM = '(e.g. "512KiB", "64MiB", "1GiB", or bytes)';

/**
 * A size in bytes: "512KiB", "64MiB", "1GiB", "1TiB", "100B" (units in any case), or a number of
 * bytes. The one size parser of the config file and the command line.
 */
export function parseSize(v: unknown, positive: boolean): Parsed<number> {
  if (typeof v === 'string') {
    const unit = /^\s*\d+(?:\.\d+)?\s*([A-Za-z]+)\s*$/.exec(v)?.[1];
    // "64MB" could mean 10^6 or 2^20 bytes: refuse rather than guess.
    if (unit !== undefined && AMBIGUOUS_SIZE_UNIT.test(unit)) return no('a size in binary units (KiB, MiB, GiB, TiB)', `${unit} could mean powers of 1000 or of 1024`);
  }
  const bytes = typeof v === 'number' ? (Number.isSafeInteger(v) ? v : undefined) : typeof v === 'string' ? scaled(v, SIZE_UNITS, 1, true) : undefined;
  if (bytes === undefined || bytes < 0 || (positive && bytes === 0)) return no(`${positive ? 'a positive size' : 'a size'} ${SIZE_FORM}`);
  return ok(bytes);
}

/** The VMM's guest-memory limit (src/vmm/x86/layout.ts MAX_MEMORY_GIB): the page tables cover 4 GiB. */
const MAX_GUEST_BYTES = 4 * GiB;
/**
 * The smallest guest memory (src/vmm/x86/layout.ts MIN_MEMORY_MIB): programs load at 4 MiB, a
 * quarter of memory goes to the stack, and an SDK program's request region must fit between.
 */
export const MIN_GUEST_BYTES = 10 * MiB;

/** Guest memory: the VMM maps it in 2 MiB pages, from 10 MiB (its tables, a program, its request region, a stack) to 4 GiB. */
export function parseGuestMemory(v: unknown): Parsed<number> {
  const size = parseSize(v, true);
  if (!size.ok && size.detail !== undefined) return size;
  if (!size.ok || size.value < MIN_GUEST_BYTES || size.value % (2 * MiB) !== 0) return no(`an even number of MiB ≥ ${MIN_GUEST_BYTES / MiB} (e.g. "64MiB")`);
  if (size.value > MAX_GUEST_BYTES) return no('at most 4GiB');
  return ok(size.value);
}

/** Bytes back into the unit a person would have written, for messages. */
export function formatSize(bytes: number): string {
  for (const [unit, factor] of [['GiB', GiB], ['MiB', MiB], ['KiB', KiB]] as const) {
    if (bytes >= factor && bytes % factor === 0) return `${bytes / factor}${unit}`;
  }
  return `${bytes}B`;
}

/** An integer, also written as a string of digits (an interpolated `${WORKERS}` is a string). */
export function parseInteger(v: unknown, min: number, max: number): Parsed<number> {
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\s*\d+\s*$/.test(v) ? Number(v) : NaN;
  return Number.isSafeInteger(n) && n >= min && n <= max ? ok(n) : no(`an integer from ${min} to ${max}`);
}

const LABEL = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?';
const HOSTNAME = new RegExp(`^${LABEL}(?:\\.${LABEL})*$`);
const IPV4 = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;
const IPV6 = /^[0-9a-f:.]*:[0-9a-f:.]*$/;

/** A DNS name or an IPv4 address, lower-cased; IPv6 comes bracketed, the way a Host header has it. */
function hostPart(text: string): string | undefined {
  const h = text.toLowerCase().replace(/\.$/, '');
  if (h.startsWith('[') && h.endsWith(']')) return IPV6.test(h.slice(1, -1)) ? h : undefined;
  return HOSTNAME.test(h) || IPV4.test(h) ? h : undefined;
}

/** A tenant's host name as matched against Host headers: case-folded, a port ignored. */
export function parseHost(v: unknown): Parsed<string> {
  const expected = 'a host name such as "example.com" (a port is ignored)';
  if (typeof v !== 'string') return no(expected);
  const m = /^(\[[^\]]*\]|[^:]*)(?::\d{1,5})?$/.exec(v.trim());
  const host = m ? hostPart(m[1] ?? '') : undefined;
  return host === undefined ? no(expected) : ok(host);
}

export interface Address { host: string; port: number }

/** A listening address `host:port` (`[::1]:8080` for IPv6); port 0 asks the system for one. */
export function parseAddress(v: unknown): Parsed<Address> {
  const expected = 'host:port (e.g. "127.0.0.1:8080")';
  if (typeof v !== 'string') return no(expected);
  const m = /^(\[[^\]]*\]|[^:[\]]+):(\d{1,5})$/.exec(v.trim());
  const host = m ? hostPart(m[1] ?? '') : undefined;
  const port = Number(m?.[2]);
  if (host === undefined || !(port <= 65535)) return no(expected);
  return ok({ host: host.startsWith('[') ? host.slice(1, -1) : host, port });
}

/** An origin: http(s), a host, no credentials, no path beyond "/" (the client's path is sent). */
export function parseOriginUrl(v: unknown): Parsed<string> {
  const expected = 'an http:// or https:// URL such as "http://127.0.0.1:9000"';
  if (typeof v !== 'string') return no(expected);
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    return no(expected);
  }
  if ((u.protocol !== 'http:' && u.protocol !== 'https:') || u.hostname === '') return no(expected);
  if (u.username !== '' || u.password !== '') return no('a URL without credentials');
  // The origin client keeps only the URL's origin; a path here would be silently dropped.
  if (u.pathname !== '/' || u.search !== '' || u.hash !== '') return no('a URL with no path, query or fragment (the request\'s own path is sent)');
  return ok(u.origin);
}

/** Tenant, origin and program names: they appear in admin URLs and logs unescaped. */
export function parseName(v: unknown): Parsed<string> {
  return typeof v === 'string' && /^[a-z0-9-]{1,63}$/.test(v) ? ok(v) : no('a name of 1 to 63 lowercase letters, digits and "-"');
}

/** A route prefix or health-check path: absolute, no query, no whitespace. */
export function parsePathPrefix(v: unknown): Parsed<string> {
  return typeof v === 'string' && /^\/[^\s?#]*$/.test(v) ? ok(v) : no('a path starting with "/" (no query)');
}

export const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;
export type HttpMethod = (typeof HTTP_METHODS)[number];

export function parseMethod(v: unknown): Parsed<HttpMethod> {
  const upper = typeof v === 'string' ? v.toUpperCase() : '';
  const found = HTTP_METHODS.find((m) => m === upper);
  return found ? ok(found) : no(`an HTTP method (${HTTP_METHODS.join(', ')})`);
}
