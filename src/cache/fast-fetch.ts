// The raw path's misses and passes: a request of the front's fast shape (fast-path.ts) that no
// stored object answers and whose backend answers whole (a tenant program), taken from raw bytes
// to raw bytes — no IncomingMessage, no ServerResponse, no streams. Only the two cases whose
// outcome the full state machine (fsm.ts) reaches without a shared fetch are taken here, and each
// answers as fsm.ts would, byte for byte but for Node's own Connection and Keep-Alive fields:
// - a request with `Cache-Control: no-store` and nothing stored for its key: a pass;
// - a key marked hit-for-miss (its last answer was not storable) with nothing stored and no fetch
//   in flight: a miss fetched alone, whose answer is stored if it now may be.
// Everything else (hits aside, which fast.ts answers) declines and goes the long way.
import { STATUS_CODES, type IncomingHttpHeaders } from 'node:http';
import type { EngineParts } from './context.ts';
import { httpDate, type FastResponse } from './fast.ts';
import { addForwarding, decideFill, fillHeaders, markUncacheable, refuseTags } from './fetch.ts';
import type { HeaderList } from './headers.ts';
import { isFixedHopByHop } from './hop-by-hop.ts';
import { buildHead, CacheObject, viaIndex } from './object.ts';
import { toOriginError, type BackendResponse } from './origin.ts';

/** A request in the front's fast shape, as the raw path parsed it (fast-path.ts). */
export interface RawRequest {
  method: 'GET' | 'HEAD';
  /** The Host header and the origin-form target, as sent. */
  host: string;
  url: string;
  /** The Cache-Control header, or undefined. */
  cacheControl: string | undefined;
  /** Every field: lower-case name and trimmed value, flat, in order. */
  fields: readonly string[];
  /** The client's address (X-Forwarded-For). */
  clientIp: string | undefined;
}

/** Fields a pass never forwards as sent (fsm.ts: Host and X-Forwarded-For are rebuilt). */
const DROP_ON_PASS = new Set(['host', 'x-forwarded-for', 'expect']);

/**
 * The request's fields as Node's parser would give them (lower-case names, one value each), or
 * null when a name repeats: how Node joins repeated fields is not worth copying here.
 */
function headersOf(fields: readonly string[]): IncomingHttpHeaders | null {
  const h: Record<string, string> = Object.create(null) as Record<string, string>;
  for (let i = 0; i < fields.length; i += 2) {
    const name = fields[i]!;
    if (h[name] !== undefined) return null;
    h[name] = fields[i + 1]!;
  }
  return h;
}

/**
 * A pass's forwarded fields, as fsm.ts makes them from Node's header map, straight from the raw
 * fields (no map in between); null when a name repeats, as `headersOf`.
 */
function passFields(e: EngineParts, fields: readonly string[], clientIp: string | undefined): HeaderList | null {
  const out: HeaderList = [];
  let host: string | undefined;
  let prior: string | undefined;
  for (let i = 0; i < fields.length; i += 2) {
    const name = fields[i]!;
    for (let j = 0; j < i; j += 2) if (fields[j] === name) return null;
    const value = fields[i + 1]!;
    if (name === 'host') host = value;
    else if (name === 'x-forwarded-for') prior = value;
    else if (!DROP_ON_PASS.has(name) && !isFixedHopByHop(name)) out.push(name, value);
  }
  return addForwarding(e, out, { host, 'x-forwarded-for': prior }, clientIp, null);
}

/**
 * The raw answer for `r`, made later (the backend runs), or null when the request needs the full
 * state machine. `client` identifies the request to the backend (BackendRequest.client).
 */
export function fastFetch(e: EngineParts, r: RawRequest, client: object): { label: 'MISS' | 'PASS'; answer: Promise<FastResponse> } | null {
  if (e.hooks !== null) return null;
  const cc = r.cacheControl;
  if (cc !== undefined && cc.toLowerCase() !== 'no-store') return null;
  const pass = cc !== undefined;
  // A miss is fetched as GET (HEAD is answered from the GET object); a pass forwards the method.
  if (e.backend.answersWhole?.(pass ? r.method : 'GET', r.url) !== true) return null;
  const key = r.host.toLowerCase() + r.url;
  const variants = e.ns.variants(key);
  if (variants !== undefined && variants.length > 0) return null;
  const isHead = r.method === 'HEAD';
  if (pass) {
    const forwarded = passFields(e, r.fields, r.clientIp);
    if (forwarded === null) return null;
    e.counters.passes++;
    e.counters.fastFetches++;
    return { label: 'PASS', answer: passWhole(e, r, forwarded, client, isHead) };
  }
  const headers = headersOf(r.fields);
  if (headers === null) return null;
  const now = e.now();
  if (e.coalescer.get(key) !== undefined || !e.ns.isHitForMiss(key, now)) return null;
  e.counters.hitForMiss++;
  e.counters.misses++;
  e.counters.fastFetches++;
  return { label: 'MISS', answer: missWhole(e, r, key, headers, client, isHead) };
}

/** fsm.ts's pass, for a backend that answers whole. */
async function passWhole(e: EngineParts, r: RawRequest, forwarded: HeaderList, client: object, isHead: boolean): Promise<FastResponse> {
  let resp: BackendResponse;
  try {
    resp = await e.backend.fetch({ method: r.method, path: r.url, headers: forwarded, body: null, client });
  } catch (err) {
    e.counters.fetchErrors++;
    const oe = toOriginError(err);
    return synthAnswer(oe.status, oe.message, 'PASS', isHead);
  }
  return answer(resp.status, resp.headers, resp.buffered ?? (await wholeBody(resp)), isHead, e.via, 'PASS');
}

/** fsm.ts's miss of a hit-for-miss key (fetched alone), then fetch.ts's verdict on its answer. */
async function missWhole(e: EngineParts, r: RawRequest, key: string, headers: IncomingHttpHeaders, client: object, isHead: boolean): Promise<FastResponse> {
  const spec = { key, host: r.host.toLowerCase(), url: r.url, headers, auth: false, noStore: false, clientIp: r.clientIp, client };
  const requestTime = e.now();
  const banSeq = e.bans.seq;
  let resp: BackendResponse;
  try {
    resp = await e.backend.fetch({ method: 'GET', path: r.url, headers: fillHeaders(e, spec, null), body: null, client });
  } catch (err) {
    e.counters.fetchErrors++;
    const oe = toOriginError(err);
    return synthAnswer(oe.status, oe.message, 'MISS', isHead);
  }
  const times = { requestTime, responseTime: e.now() };
  const body = resp.buffered ?? (await wholeBody(resp));
  const d = decideFill(e, spec, resp, times, banSeq);
  if (d.verdict.store && d.tagError !== null) refuseTags(e, key, d.tagError);
  const storing = d.verdict.store && d.tagError === null && (d.contentLength === null || d.contentLength <= e.maxObjectBytes) && body.length <= e.maxObjectBytes;
  if (!d.verdict.store) markUncacheable(e, key, d.verdict.reason, times.responseTime);
  else if (!storing) e.ns.markHitForMiss(key, times.responseTime + e.hitForMissMs);
  if (storing && d.init !== null) e.ns.insert(new CacheObject({ ...d.init, body }), e.now());
  if (d.init !== null) {
    const head = buildHead(d.stored, resp.status, d.contentLength, e.via);
    head.push('age', String(Math.floor((times.responseTime - d.init.life.t0) / 1000)));
    head.push('x-cache', 'MISS');
    return answer(resp.status, head, body, isHead);
  }
  return answer(resp.status, resp.headers, body, isHead, e.via, 'MISS');
}

/** The backend's body read to the end (when it does not hold it whole: `buffered`). */
async function wholeBody(resp: BackendResponse): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of resp.body) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** deliver.ts's synth: a short plain-text answer the cache makes itself. */
function synthAnswer(status: number, text: string, label: string, isHead: boolean): FastResponse {
  const body = Buffer.from(`${text}\n`);
  return answer(status, ['content-type', 'text/plain; charset=utf-8', 'cache-control', 'no-store', 'content-length', String(body.length), 'x-cache', label], body, isHead);
}

/**
 * The answer's bytes, as Node's ServerResponse writes `writeHead(status, head)` + `end(body)`:
 * its reason phrase, a Date unless the head has one, a Content-Length unless it has one (or the
 * status has no body), and no body for HEAD, 204 and 304. With `label`, the head is a backend's
 * as received: `via` is added where `forwardHead` adds it (`viaIndex`), and X-Cache is the label.
 */
function answer(status: number, head: HeaderList, body: Buffer, isHead: boolean, via: string | null = null, label?: string): FastResponse {
  const bodiless = status === 204 || status === 304;
  const code = String(status);
  const reason = STATUS_CODES[status] ?? 'unknown';
  const viaAt = via === null ? -2 : viaIndex(head);
  // Sizes first, then the bytes straight into one buffer: no string is made for the head.
  let size = 'HTTP/1.1 '.length + code.length + 1 + reason.length + 2;
  let sawDate = false;
  let sawLength = false;
  for (let i = 0; i < head.length; i += 2) {
    const name = head[i]!;
    if (name === 'date') sawDate = true;
    else if (name === 'content-length') sawLength = true;
    size += name.length + 2 + head[i + 1]!.length + 2 + (i === viaAt ? 2 + via!.length : 0);
  }
  const date = sawDate ? null : httpDate(Date.now());
  const length = bodiless || sawLength ? null : String(body.length);
  if (viaAt === -1) size += 'via: '.length + via!.length + 2;
  if (label !== undefined) size += 'x-cache: '.length + label.length + 2;
  if (date !== null) size += 'date: '.length + date.length + 2;
  if (length !== null) size += 'content-length: '.length + length.length + 2;
  const out = Buffer.allocUnsafe(size + 2);
  let p = put(out, 0, 'HTTP/1.1 ');
  p = line(out, put(out, put(out, p, code), ' '), reason);
  for (let i = 0; i < head.length; i += 2) {
    p = put(out, put(out, p, head[i]!), ': ');
    p = i === viaAt ? line(out, put(out, put(out, p, head[i + 1]!), ', '), via!) : line(out, p, head[i + 1]!);
  }
  if (viaAt === -1) p = line(out, put(out, p, 'via: '), via!);
  if (label !== undefined) p = line(out, put(out, p, 'x-cache: '), label);
  if (date !== null) p = line(out, put(out, p, 'date: '), date);
  if (length !== null) p = line(out, put(out, p, 'content-length: '), length);
  put(out, p, '\r\n');
  return { status, head: out, body: isHead || bodiless || body.length === 0 ? null : body };
}

/**
 * Writes `text` at `p`, one byte a character (latin1, as `Buffer.from(text, 'latin1')` would);
 * answers the offset after it. Short strings (most of a head's) cost less copied here than through
 * the binding.
 */
function put(out: Buffer, p: number, text: string): number {
  const n = text.length;
  if (n > 32) return p + out.write(text, p, n, 'latin1');
  for (let i = 0; i < n; i++) out[p + i] = text.charCodeAt(i);
  return p + n;
}

/** `text` and the line's end. */
function line(out: Buffer, p: number, text: string): number {
  p = put(out, p, text);
  out[p] = 13;
  out[p + 1] = 10;
  return p + 2;
}
