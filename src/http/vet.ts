// Request vetting for the HTTP front: the checks llhttp (strict) does not make, run once per
// request after the parser has framed it and before the handler sees it. It answers with a status
// to reject, or 0 and leaves the request normalised: origin-form target, one valid Host, and no
// hop-by-hop header fields but its own framing (a validated `Transfer-Encoding: chunked` stays, as
// Content-Length does: it is how the handler knows a body follows, RFC 9112 §6.3; whatever forwards
// the request drops it). Allocation-free on the common path (origin-form, no hop-by-hop fields).
import { IncomingMessage } from 'node:http';
import { Socket } from 'node:net';
import { connectionTokens, equalsLower, isFixedHopByHop } from '../cache/hop-by-hop.ts';

export interface VetLimits {
  readonly maxUrlBytes: number;
  readonly maxHeaderBytes: number;
}

/**
 * Node builds `req.headers` and `req.headersDistinct` lazily from the first `kHeadersCount`
 * entries of `rawHeaders`. After we remove entries from `rawHeaders` that count must follow, or
 * the lazy views would read past the end. Found once by name; when a future Node renames it we
 * fall back to building `headersDistinct` eagerly (see `rewroteRawHeaders`).
 */
const HEADERS_COUNT: symbol | undefined = Object.getOwnPropertySymbols(new IncomingMessage(new Socket())).find(
  (s) => s.description === 'kHeadersCount',
);

/** An IP-literal Host (`[::1]:8080`); the common reg-name case is checked by `validHost`'s table. */
const IP_LITERAL_HOST = /^\[[0-9A-Fa-f:.]+\](?::[0-9]{0,5})?$/;
/** reg-name characters (RFC 3986 unreserved, sub-delims, `%`): 1 = allowed. */
const REG_NAME = new Uint8Array(128);
for (const c of "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=%") REG_NAME[c.charCodeAt(0)] = 1;

/** A Host value: reg-name or IP literal, optional port. Rejects userinfo, paths and spaces. */
function validHost(value: string): boolean {
  const n = value.length;
  if (n === 0) return false;
  if (value.charCodeAt(0) === 0x5b) return IP_LITERAL_HOST.test(value);
  let i = 0;
  for (; i < n; i++) {
    const c = value.charCodeAt(i);
    if (c === 0x3a) break; // ':' starts the port
    if (c >= 128 || REG_NAME[c] === 0) return false;
  }
  if (i === 0) return false;
  if (i === n) return true;
  if (n - i - 1 > 5) return false;
  for (i++; i < n; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return false;
  }
  return true;
}
/** absolute-form request target (RFC 9112 §3.2.2); llhttp has already checked its characters. */
const ABSOLUTE_FORM = /^https?:\/\/([^/?#]*)(.*)$/is;

// Bits the header scan collects.
const HOP = 1;
const CONNECTION = 2;
const CONTENT_LENGTH = 4;
const TRANSFER_ENCODING = 8;
const TE_NOT_PLAIN_CHUNKED = 16;
const UPGRADE = 32;

/**
 * What `vetRequest` returns for a request that may reach the handler but must be the last on its
 * connection. One with an `Upgrade` field: we ignore the upgrade (RFC 9110 §7.8 lets a server),
 * but Node's parser stops reading HTTP after such a request for the rest of the bytes it read with
 * it: a request pipelined behind it would be lost, or read from its middle if it straddles reads.
 * And one whose Connection field lists `close` where Node does not see it: beside `keep-alive` in
 * HTTP/1.0, or followed by tabs; Node keeps that connection open, though `close` means the client
 * sends nothing more (RFC 9112 §9.6).
 */
export const ACCEPT_THEN_CLOSE = 1;

/**
 * Checks a parsed request. Returns 0 when it may reach the handler (the request has then been
 * normalised in place), ACCEPT_THEN_CLOSE when it may but its connection must end with the
 * response, or the status to answer before closing the connection.
 */
export function vetRequest(req: IncomingMessage, limits: VetLimits): number {
  // HTTP/0.9 and "HTTP/2.0" request lines are accepted by llhttp; neither is HTTP/1.x.
  if (req.httpVersionMajor !== 1) return req.httpVersionMajor === 0 ? 400 : 505;
  const url = req.url ?? '';
  if (url.length > limits.maxUrlBytes) return 414;

  const raw = req.rawHeaders;
  let bytes = 0;
  let flags = 0;
  let hosts = 0;
  let host = '';
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    const value = raw[i + 1] as string;
    // Header strings are latin1 (one byte per char), so lengths are wire bytes; +4 for ": " and CRLF.
    bytes += name.length + value.length + 4;
    switch (name.length) {
      case 7:
        if (equalsLower(name, 'upgrade')) flags |= HOP | UPGRADE;
        else if (isFixedHopByHop(name)) flags |= HOP;
        break;
      case 2:
      case 16:
      case 18:
      case 19:
        if (isFixedHopByHop(name)) flags |= HOP;
        break;
      case 4:
        if (equalsLower(name, 'host')) {
          hosts++;
          host = value;
        }
        break;
      case 10:
        if (equalsLower(name, 'connection')) flags |= HOP | CONNECTION;
        else if (equalsLower(name, 'keep-alive')) flags |= HOP;
        break;
      case 14:
        if (equalsLower(name, 'content-length')) flags |= CONTENT_LENGTH;
        // Servers that read `_` as `-` (several CGI-style stacks do) would see framing we did not.
        else if (equalsLower(name, 'content_length')) return 400;
        break;
      case 17:
        if (equalsLower(name, 'transfer-encoding')) {
          flags |= (flags & TRANSFER_ENCODING ? TE_NOT_PLAIN_CHUNKED : 0) | TRANSFER_ENCODING;
          if (!equalsLower(value, 'chunked')) flags |= TE_NOT_PLAIN_CHUNKED;
        } else if (equalsLower(name, 'transfer_encoding')) return 400;
        break;
    }
  }
  if (bytes > limits.maxHeaderBytes) return 431;
  // RFC 9112 §3.2: exactly one Host in HTTP/1.1; two of them let a cache and a router disagree.
  if (hosts > 1 || (hosts === 0 && req.httpVersionMinor === 1)) return 400;
  if (hosts === 1 && !validHost(host)) return 400;

  if (flags & TRANSFER_ENCODING) {
    // RFC 9112 §6.1: HTTP/1.0 framing with Transfer-Encoding is faulty; CL with TE is a smuggling tell.
    if (req.httpVersionMinor === 0 || flags & CONTENT_LENGTH) return 400;
    if (flags & TE_NOT_PLAIN_CHUNKED) {
      const status = transferCodingStatus(raw);
      if (status !== 0) return status;
    }
  }

  // Origin-form is the norm: one character compare and done.
  if (url.charCodeAt(0) !== 0x2f) {
    const status = normaliseTarget(req, url, hosts === 1);
    if (status !== 0) return status;
  }
  const closeAfter = (flags & UPGRADE) !== 0 || ((flags & CONNECTION) !== 0 && listsClose(raw));
  if (flags & HOP) stripRequestHopByHop(req, (flags & CONNECTION) !== 0);
  return closeAfter ? ACCEPT_THEN_CLOSE : 0;
}

/** Whether a Connection field lists the `close` option (only SP and HTAB around a token). */
function listsClose(raw: string[]): boolean {
  for (let i = 0; i < raw.length; i += 2) {
    if (!equalsLower(raw[i] as string, 'connection')) continue;
    for (const token of (raw[i + 1] as string).split(',')) if (equalsLower(token.replace(/^[ \t]+|[ \t]+$/g, ''), 'close')) return true;
  }
  return false;
}

/**
 * Slow path for a Transfer-Encoding other than one plain `chunked`: 400 when chunked is missing,
 * repeated or not last (the length cannot be known, RFC 9112 §6.3), 501 when another coding
 * precedes it (we implement none, RFC 9112 §6.1), 0 when it was `chunked` after all (spacing).
 */
function transferCodingStatus(raw: string[]): number {
  const codings: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    if (!equalsLower(raw[i] as string, 'transfer-encoding')) continue;
    for (const part of (raw[i + 1] as string).split(',')) {
      const coding = part.trim().toLowerCase();
      if (coding !== '') codings.push(coding);
    }
  }
  const chunkedAt = codings.indexOf('chunked');
  if (chunkedAt === -1 || chunkedAt !== codings.length - 1) return 400;
  return codings.length === 1 ? 0 : 501;
}

/**
 * Asterisk-form is for OPTIONS only; absolute-form is rewritten to origin-form with the target's
 * authority as Host (RFC 9112 §3.2.2: the server must ignore the received Host), so the handler,
 * the cache key and the tenant router all see one authority. Anything else (authority-form outside
 * CONNECT, other schemes) is a 400.
 */
function normaliseTarget(req: IncomingMessage, url: string, hadHost: boolean): number {
  if (url === '*') return req.method === 'OPTIONS' ? 0 : 400;
  const match = ABSOLUTE_FORM.exec(url);
  if (match === null) return 400;
  const authority = match[1] as string;
  const rest = match[2] as string;
  if (!validHost(authority)) return 400;
  // OPTIONS with an empty path (not even `/`) asks about the server, as `OPTIONS *` does (RFC 9112 §3.2.4).
  req.url = rest === '' ? (req.method === 'OPTIONS' ? '*' : '/') : rest.charCodeAt(0) === 0x2f ? rest : `/${rest}`;
  req.headers.host = authority;
  const raw = req.rawHeaders;
  if (hadHost) {
    for (let i = 0; i < raw.length; i += 2) if (equalsLower(raw[i] as string, 'host')) raw[i + 1] = authority;
  } else {
    raw.push('Host', authority);
    rewroteRawHeaders(req);
  }
  return 0;
}

/**
 * Removes hop-by-hop fields but Transfer-Encoding from both views of the request headers:
 * `headers` (which Node has already built for HTTP/1.1, reading `expect`) and `rawHeaders`
 * (compacted in place).
 */
function stripRequestHopByHop(req: IncomingMessage, hasConnection: boolean): void {
  const raw = req.rawHeaders;
  let listed: string[] | undefined;
  if (hasConnection) {
    for (let i = 0; i < raw.length; i += 2) {
      if (equalsLower(raw[i] as string, 'connection')) listed = connectionTokens(raw[i + 1] as string, listed);
    }
  }
  const headers = req.headers;
  let kept = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    const hop = isFixedHopByHop(name) && !equalsLower(name, 'transfer-encoding');
    if (hop || (listed !== undefined && listed.includes(name.toLowerCase()))) {
      delete headers[name.toLowerCase()];
      continue;
    }
    if (kept !== i) {
      raw[kept] = name;
      raw[kept + 1] = raw[i + 1] as string;
    }
    kept += 2;
  }
  raw.length = kept;
  rewroteRawHeaders(req);
}

/** Keeps Node's lazy header views consistent after `rawHeaders` changed length. */
function rewroteRawHeaders(req: IncomingMessage): void {
  if (HEADERS_COUNT !== undefined) {
    (req as unknown as Record<symbol, number>)[HEADERS_COUNT] = req.rawHeaders.length;
    return;
  }
  const distinct: NodeJS.Dict<string[]> = {};
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = (raw[i] as string).toLowerCase();
    (distinct[name] ??= []).push(raw[i + 1] as string);
  }
  req.headersDistinct = distinct;
}
