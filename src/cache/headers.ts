// Header plumbing shared by the cache states: hop-by-hop filtering (RFC 9110 §7.6.1), flat header
// arrays (the shape `res.writeHead` and undici take without conversion), and small lookups.
import type { IncomingHttpHeaders } from 'node:http';

/** Flat header list: [name, value, name, value, …], names lower-case. */
export type HeaderList = string[];

/** Fields that describe one connection, never the message (RFC 9110 §7.6.1), plus legacy ones. */
const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade',
  'proxy-authenticate', 'proxy-authorization',
]);

/**
 * Framing and routing fields a Connection header may not remove: a client listing them is trying
 * to make the intermediary change what the origin sees ("hop-by-hop abuse").
 */
const PROTECTED = new Set(['host', 'content-length']);

/** Names listed in a Connection header value: they are hop-by-hop for this message only. */
function connectionTokens(value: string | string[] | undefined): Set<string> | null {
  if (value === undefined) return null;
  const joined = Array.isArray(value) ? value.join(',') : value;
  const out = new Set<string>();
  for (const t of joined.split(',')) {
    const name = t.trim().toLowerCase();
    if (name && !PROTECTED.has(name)) out.add(name);
  }
  return out;
}

/**
 * Copies end-to-end request headers to a flat list, dropping hop-by-hop fields, the fields the
 * Connection header names, and every name in `drop` (already lower-case).
 */
export function endToEndRequestHeaders(headers: IncomingHttpHeaders, drop: ReadonlySet<string>): HeaderList {
  const named = connectionTokens(headers.connection);
  const out: HeaderList = [];
  for (const name in headers) {
    if (HOP_BY_HOP.has(name) || drop.has(name) || (named !== null && named.has(name))) continue;
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
  let named: Set<string> | null = null;
  for (let i = 0; i < raw.length; i += 2) {
    if ((raw[i] as string).toLowerCase() === 'connection') {
      named ??= new Set();
      for (const t of (raw[i + 1] as string).split(',')) {
        const name = t.trim().toLowerCase();
        if (name && !PROTECTED.has(name)) named.add(name);
      }
    }
  }
  const out: HeaderList = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = (raw[i] as string).toLowerCase();
    if (HOP_BY_HOP.has(name) || (named !== null && named.has(name))) continue;
    out.push(name, raw[i + 1] as string);
  }
  return out;
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
