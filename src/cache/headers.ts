// Header plumbing shared by the cache states: end-to-end fields towards the origin and the client
// (the hop-by-hop list is hop-by-hop.ts's), flat header arrays (the shape `res.writeHead` and
// undici take without conversion), and small lookups.
import type { IncomingHttpHeaders } from 'node:http';
import { connectionTokens, endToEndList, isFixedHopByHop } from './hop-by-hop.ts';

/** Flat header list: [name, value, name, value, …], names lower-case. */
export type HeaderList = string[];

/**
 * Copies end-to-end request headers to a flat list, dropping hop-by-hop fields, the fields the
 * Connection header names, and every name in `drop` (already lower-case).
 */
export function endToEndRequestHeaders(headers: IncomingHttpHeaders, drop: ReadonlySet<string>): HeaderList {
  const connection = headers.connection;
  const named = connection === undefined ? undefined : connectionTokens(connection, undefined);
  const out: HeaderList = [];
  for (const name in headers) {
    if (isFixedHopByHop(name) || drop.has(name) || (named !== undefined && named.includes(name))) continue;
    const v = headers[name];
    if (v === undefined) continue;
    if (Array.isArray(v)) for (const one of v) out.push(name, one);
    else out.push(name, v);
  }
  return out;
}

/**
 * Normalises a raw response header list (as undici returns it with `responseHeaders: 'raw'`):
 * lower-case names, hop-by-hop fields and the ones named by Connection removed.
 */
export function endToEndResponseHeaders(raw: readonly string[]): HeaderList {
  return endToEndList(raw);
}

/** First value of `name` (lower-case) in a flat list. */
export function getHeader(list: readonly string[], name: string): string | undefined {
  for (let i = 0; i < list.length; i += 2) if (list[i] === name) return list[i + 1];
  return undefined;
}

/** How many fields named `name` (lower-case) a flat list has. */
export function countHeader(list: readonly string[], name: string): number {
  let n = 0;
  for (let i = 0; i < list.length; i += 2) if (list[i] === name) n++;
  return n;
}

/** All values of `name` joined with ", " (how list-valued fields combine, RFC 9110 §5.3). */
export function getJoined(list: readonly string[], name: string): string | undefined {
  let out: string | undefined;
  for (let i = 0; i < list.length; i += 2) {
    if (list[i] === name) out = out === undefined ? list[i + 1] : `${out}, ${list[i + 1]}`;
  }
  return out;
}

/** A copy of `list` without any name in `names` (lower-case). */
export function withoutHeaders(list: readonly string[], names: ReadonlySet<string>): HeaderList {
  const out: HeaderList = [];
  for (let i = 0; i < list.length; i += 2) {
    if (!names.has(list[i] as string)) out.push(list[i] as string, list[i + 1] as string);
  }
  return out;
}

/** A request header as one string (repeated fields joined), or undefined. */
export function reqHeader(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  if (v === undefined) return undefined;
  return Array.isArray(v) ? v.join(', ') : v;
}

/** Parses an HTTP-date (RFC 9110 §5.6.7) to epoch ms; NaN when invalid. */
const MONTHS = 'Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec';
const MONTH_INDEX = new Map(MONTHS.split('|').map((m, i) => [m, i]));
/** IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`. */
const IMF_FIXDATE = new RegExp(`^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\\d{2}) (${MONTHS}) (\\d{4}) (\\d{2}):(\\d{2}):(\\d{2}) GMT$`);
/** rfc850-date: `Sunday, 06-Nov-94 08:49:37 GMT`. */
const RFC850_DATE = new RegExp(`^(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), (\\d{2})-(${MONTHS})-(\\d{2}) (\\d{2}):(\\d{2}):(\\d{2}) GMT$`);
/** asctime-date: `Sun Nov  6 08:49:37 1994`. */
const ASCTIME_DATE = new RegExp(`^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) (${MONTHS}) ( \\d|\\d{2}) (\\d{2}):(\\d{2}):(\\d{2}) (\\d{4})$`);

/**
 * An HTTP-date in exactly one of the three forms RFC 9110 §5.6.7 defines, as epoch ms; NaN for
 * anything else (another zone, a missing comma, dashes in an IMF-fixdate, extra spaces, a
 * one-digit hour). For Expires, where an invalid date means "already expired" (RFC 9111 §5.3).
 */
export function parseStrictHttpDate(value: string): number {
  let m = IMF_FIXDATE.exec(value);
  if (m !== null) return utc(Number(m[3]), m[2]!, Number(m[1]), m[4]!, m[5]!, m[6]!);
  m = RFC850_DATE.exec(value);
  if (m !== null) {
    // A two-digit year more than 50 years ahead is the latest past year ending so (RFC 9110 §5.6.7).
    let year = 2000 + Number(m[3]);
    if (year > new Date().getUTCFullYear() + 50) year -= 100;
    return utc(year, m[2]!, Number(m[1]), m[4]!, m[5]!, m[6]!);
  }
  m = ASCTIME_DATE.exec(value);
  if (m !== null) return utc(Number(m[6]), m[1]!, Number(m[2]!.trim()), m[3]!, m[4]!, m[5]!);
  return NaN;
}

function utc(year: number, month: string, day: number, h: string, min: string, s: string): number {
  const [hh, mm, ss] = [Number(h), Number(min), Number(s)];
  if (day < 1 || day > 31 || hh > 23 || mm > 59 || ss > 60) return NaN;
  return Date.UTC(year, MONTH_INDEX.get(month)!, day, hh, mm, Math.min(ss, 59));
}

export function parseHttpDate(value: string | undefined): number {
  // Date.parse also takes bare numbers ("0" → year 2000); an HTTP-date always names a month.
  if (value === undefined || !/[A-Za-z]{3}/.test(value)) return NaN;
  return Date.parse(value);
}
