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
export function parseHttpDate(value: string | undefined): number {
  // Date.parse also takes bare numbers ("0" → year 2000); an HTTP-date always names a month.
  if (value === undefined || !/[A-Za-z]{3}/.test(value)) return NaN;
  return Date.parse(value);
}
