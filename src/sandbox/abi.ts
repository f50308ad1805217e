// The SDK ABI seen from the host (docs/guest-abi.md, guest/include/tinyedge.h): laying a request
// out in guest memory and reading a response back, every guest pointer checked and every length bounded.
import { GuestFault, type GuestMemory } from '../vmm/memory/guest-memory.ts';
import { SandboxError } from '../vmm/errors.ts';
import { EMSGSIZE, ENAMETOOLONG } from '../vmm/linux/syscalls/errno.ts';
import type { CachePolicy } from './types.ts';
import type { SandboxRequest } from './types.ts';
import { ABI_VERSION, ACCEPTED_ABI_VERSIONS, TE_FETCH, TE_HEADER, TE_REQUEST, TE_REQUEST_LIVE_RESTORE, TE_REQUEST_LIVE_UPDATE, TE_REQUEST_PRESNAPSHOT, TE_REQUEST_WARMUP, TE_RESET_AFTER, TE_RESPONSE, TE_STR } from './abi-layout.ts';

export const CALL_WAIT = 1;
export const CALL_LOG = 2;
export const CALL_FETCH = 3;
// 4 to 8 are the key-value calls (abi-kv.ts).

/** Why the program is called: te_request.phase. */
export type Phase = 'generate' | 'recv' | 'deliver';
const PHASES: Record<Phase, number> = { generate: 0, recv: 1, deliver: 2 };

const KiB = 1024;
const MiB = 1024 * KiB;

// Bounds on every size a guest hands the host, checked before the host decodes, copies or keeps
// anything of that size (docs/guest-abi.md, "Limits"). A host call over a bound returns -errno; a
// response over one fails the request ('bad-response').
/** Headers in a response (also recv's request headers, deliver's response headers) or a sub-request. */
const MAX_HEADERS = 256;
/** One header's name plus value: the whole header block the front accepts from a client. */
const MAX_HEADER_BYTES = 16 * KiB;
/** All names and values of a response's or sub-request's headers. */
export const MAX_HEADERS_BYTES = 64 * KiB;
/** A sub-request's URL, and recv's rewritten URL: the front's own URL limit. */
export const MAX_URL_BYTES = 8 * KiB;
/** A sub-request's method. */
const MAX_METHOD_BYTES = 32;
/** A sub-request's origin name: origin names in the config are at most 63 bytes. */
const MAX_ORIGIN_NAME_BYTES = 63;
/** A sub-request's body, as the host copies it out of the guest. */
const MAX_FETCH_BODY_BYTES = 8 * MiB;
/** An origin's answer to a sub-request, as the host reads it into memory (more: -EIO). */
export const MAX_FETCH_RESPONSE_BYTES = 8 * MiB;
/** What the host keeps of one LOG line; the rest of the line is not read. */
export const MAX_LOG_LINE_BYTES = 4 * KiB;
/** Log lines kept per request, LOG calls and stderr lines together; later ones are dropped. */
export const MAX_LOG_LINES = 100;
/** A response's tag string (Fastly's Surrogate-Key limit). */
const MAX_CACHE_TAGS_BYTES = 16 * KiB;
const MAX_CACHE_TAGS = 1024;

/** A host-call argument the host refuses: the guest gets -errno, the request goes on. */
export class HostCallError extends Error {
  constructor(readonly errno: number, message: string) {
    super(message);
    this.name = 'HostCallError';
  }
}

const TE_RESPONDED = 1;
const TE_UNCACHEABLE = 2;
const TE_PASS = 4;
const TE_REWRITE_URL = 8;

/**
 * The ABI version a program declared with its first WAIT (RSI; 0 from programs built before it
 * did, which speak version 1), refused unless this host speaks it; returns the version.
 */
export function checkAbiVersion(declared: number): number {
  const version = declared === 0 ? 1 : declared;
  if (ACCEPTED_ABI_VERSIONS.includes(version)) return version;
  const accepted = `${ACCEPTED_ABI_VERSIONS.length === 1 ? 'version' : 'versions'} ${ACCEPTED_ABI_VERSIONS.join(', ')}`;
  throw new SandboxError('program', `program was built for SDK ABI version ${version}, but this host accepts ${accepted}: rebuild it with this tinyedge's SDK`);
}

/** An HTTP field name (RFC 9110 §5.1: a token). */
export const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/**
 * What an HTTP/1.1 field value may not hold (RFC 9110 §5.5): control characters other than HTAB,
 * and DEL. Values are bytes, decoded as latin1 so that obs-text (UTF-8 included) goes out as sent.
 */
// eslint-disable-next-line no-control-regex -- control characters are what this pattern is about
export const BAD_FIELD_VALUE = /[\0-\x08\x0a-\x1f\x7f]/;

const enc = new TextEncoder();

/** How a request is laid out for the program: its phase, deliver's response, the warm-up flag. */
export interface RequestLayout {
  phase?: Phase;
  /** deliver phase: the response about to be delivered. */
  response?: { status: number; headers: ReadonlyArray<readonly [string, string]> };
  /** The host's warm-up request after a load (TE_REQUEST_WARMUP), not a client's. */
  warmup?: boolean;
  /** A warm-up request before the snapshot (TE_REQUEST_PRESNAPSHOT, with TE_REQUEST_WARMUP). */
  presnapshot?: boolean;
  /** The version the program declared, written into te_request.abi_version; default ABI_VERSION. */
  abiVersion?: number;
  /** The host asks for the program's state for its next version (TE_REQUEST_LIVE_UPDATE). */
  liveUpdate?: boolean;
  /** The body is the previous version's state (TE_REQUEST_LIVE_RESTORE). */
  liveRestore?: boolean;
}

/**
 * Writes `req` into the guest region [region, region+size) as a te_request followed by its header
 * array and strings; returns the te_request address. Throws when it does not fit.
 */
export function writeRequest(mem: GuestMemory, region: number, size: number, req: SandboxRequest, random: Uint8Array, layout: RequestLayout = {}): number {
  return layRequest(mem, region, size, req, random, layout).at;
}

/** writeRequest, also saying how many bytes of the region the request took. */
export function layRequest(mem: GuestMemory, region: number, size: number, req: SandboxRequest, random: Uint8Array, layout: RequestLayout = {}): { at: number; bytes: number } {
  const { phase = 'generate', response } = layout;
  const q = req.url.indexOf('?');
  const path = q < 0 ? req.url : req.url.slice(0, q);
  const query = q < 0 ? '' : req.url.slice(q + 1);
  const respHeaders = response?.headers ?? [];
  const headerCount = req.headers.length + respHeaders.length;
  // Sizes first (no copies), then the bytes straight into guest memory: this runs per request.
  // Strings wider than a byte per character are rare (an embedder's own): one scan finds them,
  // and only then is each string's UTF-8 length counted.
  const wide = isWide(req.method) || isWide(req.url) || anyWide(req.headers) || anyWide(respHeaders);
  const lengthOf = wide ? byteLength : (text: string): number => text.length;
  let stringBytes = lengthOf(req.method) + lengthOf(req.url) + lengthOf(path) + lengthOf(query);
  for (const [n, v] of req.headers) stringBytes += lengthOf(n) + lengthOf(v);
  for (const [n, v] of respHeaders) stringBytes += lengthOf(n) + lengthOf(v);
  const total = TE_REQUEST.SIZE + headerCount * TE_HEADER.SIZE + stringBytes + req.body.length;
  if (total > size) throw new SandboxError('program', `request of ${total} bytes exceeds the program's limit of ${size}`);

  // Offsets below are from `region`: the bytes may be a copy (GuestMemory.writable), not guest memory itself.
  const out = mem.writable(region, total);
  const buf = Buffer.from(out.buffer, out.byteOffset, out.byteLength);
  const headersAt = TE_REQUEST.SIZE;
  let cursor = headersAt + headerCount * TE_HEADER.SIZE;
  out.fill(0, 0, TE_REQUEST.SIZE);
  buf.writeUInt32LE(layout.abiVersion ?? ABI_VERSION, TE_REQUEST.abi_version);
  buf.writeUInt32LE(req.headers.length, TE_REQUEST.header_count);
  cursor = putString(buf, region, cursor, req.method, TE_REQUEST.method, wide);
  cursor = putString(buf, region, cursor, req.url, TE_REQUEST.url, wide);
  cursor = putString(buf, region, cursor, path, TE_REQUEST.path, wide);
  cursor = putString(buf, region, cursor, query, TE_REQUEST.query, wide);
  out.set(req.body, cursor);
  putU64(buf, TE_REQUEST.body + TE_STR.ptr, region + cursor);
  putU64(buf, TE_REQUEST.body + TE_STR.len, req.body.length);
  cursor += req.body.length;
  putU64(buf, TE_REQUEST.headers, region + headersAt);
  out.set(random, TE_REQUEST.random);
  let at = headersAt;
  for (let i = 0; i < headerCount; i++) {
    const [name, value] = i < req.headers.length ? req.headers[i]! : respHeaders[i - req.headers.length]!;
    cursor = putString(buf, region, cursor, name, at + TE_HEADER.name, wide);
    cursor = putString(buf, region, cursor, value, at + TE_HEADER.value, wide);
    at += TE_HEADER.SIZE;
  }
  buf.writeUInt32LE(PHASES[phase], TE_REQUEST.phase);
  buf.writeUInt32LE(response?.status ?? 0, TE_REQUEST.resp_status);
  buf.writeUInt32LE(respHeaders.length, TE_REQUEST.resp_header_count);
  const flags = (layout.presnapshot === true ? TE_REQUEST_WARMUP | TE_REQUEST_PRESNAPSHOT : layout.warmup === true ? TE_REQUEST_WARMUP : 0)
    | (layout.liveUpdate === true ? TE_REQUEST_LIVE_UPDATE : 0) | (layout.liveRestore === true ? TE_REQUEST_LIVE_RESTORE : 0);
  buf.writeUInt32LE(flags, TE_REQUEST.flags);
  putU64(buf, TE_REQUEST.resp_headers, region + headersAt + req.headers.length * TE_HEADER.SIZE);
  return { at: region, bytes: total };
}

/** A 64-bit little-endian value below 2^53 at `at`. */
function putU64(buf: Buffer, at: number, value: number): void {
  buf.writeUInt32LE(value >>> 0, at);
  buf.writeUInt32LE(Math.floor(value / 2 ** 32), at + 4);
}

/**
 * Writes `text` at `cursor` (the layout's offset from guest address `region`) and the te_str at
 * `at` that points to it; answers the cursor after it. Functions of the module, not closures: this
 * runs for every string of every request.
 */
function putString(buf: Buffer, region: number, cursor: number, text: string, at: number, wide: boolean): number {
  const n = writeText(buf, text, cursor, wide);
  putU64(buf, at + TE_STR.ptr, region + cursor);
  putU64(buf, at + TE_STR.len, n);
  return cursor + n;
}

/** Whether `text` has a character wider than a byte (a loop: cheaper than a regular expression on short strings). */
function isWide(text: string): boolean {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0xff) return true;
  return false;
}

/**
 * A string's bytes as the program gets them. HTTP's strings are bytes: Node's parser hands header
 * values over as latin1 (one character per byte as sent, obs-text and UTF-8 included), so a string
 * of characters up to U+00FF goes in as those bytes again; only a string with wider characters (an
 * embedder's own) is encoded as UTF-8.
 */
function byteLength(text: string): number {
  return isWide(text) ? Buffer.byteLength(text, 'utf8') : text.length;
}

/** Whether a name or value of `list` has a character wider than a byte. */
function anyWide(list: ReadonlyArray<readonly [string, string]>): boolean {
  for (const [n, v] of list) if (isWide(n) || isWide(v)) return true;
  return false;
}

/** Writes `text` at `at` as `byteLength` counts it (`wide`: it may have wider characters); answers the bytes written. */
function writeText(buf: Buffer, text: string, at: number, wide: boolean): number {
  const n = text.length;
  if (wide && isWide(text)) return buf.write(text, at, 'utf8');
  // Short strings (most header names and values) cost less copied here than through the binding.
  if (n <= 64) {
    for (let i = 0; i < n; i++) buf[at + i] = text.charCodeAt(i);
    return n;
  }
  return buf.write(text, at, n, 'latin1');
}

export interface DecodedResponse {
  status: number;
  headers: Array<[string, string]>;
  body: Buffer;
  cache: CachePolicy;
  /** recv: what the program decided. */
  recv?: RecvDirective;
  /** The program asked for a reset after this response (te_reset_after()). */
  resetAfter: boolean;
}

/** A recv hook's answer: continue (maybe rewritten), pass, or answer with the response itself. */
export interface RecvDirective {
  action: 'lookup' | 'pass' | 'synth';
  url?: string;
  /** Request headers to set (empty value: remove). */
  setHeaders: Array<[string, string]>;
}

const dec = new TextDecoder('utf-8', { fatal: false });

function badResponse(message: string): SandboxError {
  return new SandboxError('bad-response', message);
}

const EMPTY = new Uint8Array(0);

// The errors of a response's bounds, made only when one is crossed (functions of the module: a
// closure per response would be made on every answer).
const responseBound = (message: string): SandboxError => badResponse(`response ${message}`);
const tagsTooLong = (n: number): SandboxError => badResponse(`cache tags of ${n} bytes (at most ${MAX_CACHE_TAGS_BYTES})`);
const urlTooLong = (n: number): SandboxError => badResponse(`rewritten URL of ${n} bytes (at most ${MAX_URL_BYTES})`);

/** A te_response's time in ms at `at` as seconds; a negative time (its sign bit set) is "not set". */
function secondsAt(mem: GuestMemory, at: number): number | undefined {
  return (mem.u32(at + 4) & 0x8000_0000) !== 0 ? undefined : mem.u64(at) / 1000;
}

/**
 * The te_str at `at` as a view of guest memory (no copy), its length bounded by `max` before the
 * pointer is looked at: past it, `tooLong(length)` is thrown.
 */
export function strView(mem: GuestMemory, at: number, max: number, tooLong: (length: number) => Error): Uint8Array {
  const len = mem.u64(at + TE_STR.len);
  if (len > max) throw tooLong(len);
  return bytesAt(mem, mem.u64(at + TE_STR.ptr), len);
}

function bytesAt(mem: GuestMemory, ptr: number, len: number): Uint8Array {
  return len === 0 ? EMPTY : mem.user(ptr, len);
}

/**
 * Where the names and values of the `count` te_headers at `at` are, flat: name pointer, name
 * length, value pointer, value length, for each. The count, each header and their total are
 * bounded before anything is read, and every string is checked readable; `fail` makes the error
 * for a bound.
 */
function headerSpans(mem: GuestMemory, at: number, count: number, fail: (message: string) => Error): number[] {
  if (count > MAX_HEADERS) throw fail(`${count} headers (at most ${MAX_HEADERS})`);
  if (count > 0) mem.check(at, count * TE_HEADER.SIZE);
  const spans: number[] = [];
  let total = 0;
  for (let i = 0; i < count; i++) {
    const h = at + i * TE_HEADER.SIZE;
    const nameLen = mem.u64(h + TE_HEADER.name + TE_STR.len);
    const valueLen = mem.u64(h + TE_HEADER.value + TE_STR.len);
    const size = nameLen + valueLen;
    if (size > MAX_HEADER_BYTES) throw fail(`header ${i} of ${size} bytes (at most ${MAX_HEADER_BYTES})`);
    total += size;
    if (total > MAX_HEADERS_BYTES) throw fail(`headers of more than ${MAX_HEADERS_BYTES} bytes`);
    const namePtr = mem.u64(h + TE_HEADER.name + TE_STR.ptr);
    const valuePtr = mem.u64(h + TE_HEADER.value + TE_STR.ptr);
    if (nameLen > 0) mem.check(namePtr, nameLen);
    if (valueLen > 0) mem.check(valuePtr, valueLen);
    spans.push(namePtr, nameLen, valuePtr, valueLen);
  }
  return spans;
}

/** Reads the te_response at `addr` out of guest memory (copying it: the instance is about to be reset). */
export function readResponse(mem: GuestMemory, addr: number, maxBytes: number, phase: Phase = 'generate'): DecodedResponse {
  try {
    return decodeResponse(mem, addr, maxBytes, phase);
  } catch (err) {
    if (err instanceof GuestFault) throw badResponse(`response points outside the program's memory (0x${err.address.toString(16)})`);
    throw err;
  }
}

function decodeResponse(mem: GuestMemory, addr: number, maxBytes: number, phase: Phase): DecodedResponse {
  if (addr === 0) throw badResponse('program asked for a request before answering the previous one');
  mem.check(addr, TE_RESPONSE.SIZE);
  const flags = mem.u32(addr + TE_RESPONSE.flags);
  const responded = (flags & TE_RESPONDED) !== 0;
  if (phase === 'generate' && !responded) throw badResponse('handler returned without responding');
  const status = responded ? mem.u32(addr + TE_RESPONSE.status) : 200;
  if (status < 200 || status > 599) throw badResponse(`invalid status ${status}`);
  const bodyLen = mem.u64(addr + TE_RESPONSE.body + TE_STR.len);
  if (bodyLen > maxBytes) throw badResponse(`response body of ${bodyLen} bytes exceeds the limit of ${maxBytes}`);
  // Every size is bounded before anything is decoded: strings are made only of bytes that fit.
  const spans = headerSpans(mem, mem.u64(addr + TE_RESPONSE.headers), mem.u32(addr + TE_RESPONSE.header_count), responseBound);
  let total = bodyLen;
  for (let i = 0; i < spans.length; i += 4) total += spans[i + 1]! + spans[i + 3]!;
  if (total > maxBytes) throw badResponse(`response exceeds the limit of ${maxBytes} bytes`);
  const tagBytes = strView(mem, addr + TE_RESPONSE.tags, MAX_CACHE_TAGS_BYTES, tagsTooLong);
  const rewritten = phase === 'recv' && (flags & TE_REWRITE_URL) !== 0 ? strView(mem, addr + TE_RESPONSE.url, MAX_URL_BYTES, urlTooLong) : undefined;

  const headers: Array<[string, string]> = [];
  for (let i = 0; i < spans.length; i += 4) {
    // Names and values straight from guest memory to strings: a name must be a token (ASCII), so
    // its bytes as latin1 are its text; a value's bytes go out as sent.
    const n = mem.latin1(spans[i]!, spans[i + 1]!);
    const val = mem.latin1(spans[i + 2]!, spans[i + 3]!);
    if (!TOKEN.test(n)) throw badResponse(`invalid response header name ${JSON.stringify(dec.decode(bytesAt(mem, spans[i]!, spans[i + 1]!)).slice(0, 100))}`);
    if (BAD_FIELD_VALUE.test(val)) throw badResponse(`invalid value for response header ${n}`);
    headers.push([n, val]);
  }
  const tags = tagBytes.length === 0 ? [] : dec.decode(tagBytes).split(/\s+/).filter(Boolean);
  if (tags.length > MAX_CACHE_TAGS) throw badResponse(`${tags.length} cache tags (at most ${MAX_CACHE_TAGS})`);
  // Its length was bounded above; copied straight out (the instance is about to be reset).
  const body = mem.copy(mem.u64(addr + TE_RESPONSE.body + TE_STR.ptr), bodyLen);
  const cache: CachePolicy = { ttl: secondsAt(mem, addr + TE_RESPONSE.ttl_ms), grace: secondsAt(mem, addr + TE_RESPONSE.grace_ms), keep: secondsAt(mem, addr + TE_RESPONSE.keep_ms), tags, uncacheable: (flags & TE_UNCACHEABLE) !== 0 };
  const decoded: DecodedResponse = { status, headers, body, cache, resetAfter: (flags & TE_RESET_AFTER) !== 0 };
  if (phase === 'recv') {
    const url = rewritten === undefined ? undefined : dec.decode(rewritten);
    if (url !== undefined && !/^\/[^\s]*$/.test(url)) throw badResponse(`invalid rewritten URL ${JSON.stringify(url.slice(0, 100))}`);
    decoded.recv = { action: responded ? 'synth' : (flags & TE_PASS) !== 0 ? 'pass' : 'lookup', url, setHeaders: responded ? [] : headers };
  }
  return decoded;
}

/** Where a sub-request's results go, as checked when the call was made. */
export interface FetchResultBuffers {
  /** The te_fetch: its length-out fields are written. */
  at: number;
  bodyAt: number;
  bodyCap: number;
  headersAt: number;
  headersCap: number;
}

/** A te_fetch as the host reads it. */
export interface FetchCall {
  origin: string;
  method: string;
  url: string;
  headers: Array<[string, string]>;
  body: Buffer;
  result: FetchResultBuffers;
}

/**
 * Reads a te_fetch (128 bytes) at `at`, every size bounded before it is read and the result
 * buffers checked now, so that writing the answer later cannot fault. Throws GuestFault for a bad
 * pointer, HostCallError for a size over its bound.
 */
export function readFetch(mem: GuestMemory, at: number): FetchCall {
  mem.check(at, TE_FETCH.SIZE);
  const tooLong = (what: string, max: number, errno = EMSGSIZE) => (n: number): HostCallError =>
    new HostCallError(errno, `sub-request ${what} of ${n} bytes (at most ${max})`);
  const origin = strView(mem, at + TE_FETCH.origin, MAX_ORIGIN_NAME_BYTES, tooLong('origin name', MAX_ORIGIN_NAME_BYTES, ENAMETOOLONG));
  const method = strView(mem, at + TE_FETCH.method, MAX_METHOD_BYTES, tooLong('method', MAX_METHOD_BYTES));
  const url = strView(mem, at + TE_FETCH.url, MAX_URL_BYTES, tooLong('URL', MAX_URL_BYTES));
  const spans = headerSpans(mem, mem.u64(at + TE_FETCH.headers), mem.u64(at + TE_FETCH.header_count), (m) => new HostCallError(EMSGSIZE, `sub-request with ${m}`));
  const body = strView(mem, at + TE_FETCH.body, MAX_FETCH_BODY_BYTES, tooLong('body', MAX_FETCH_BODY_BYTES));
  const result: FetchResultBuffers = {
    at,
    bodyAt: mem.u64(at + TE_FETCH.resp_body),
    bodyCap: mem.u64(at + TE_FETCH.resp_body_cap),
    headersAt: mem.u64(at + TE_FETCH.resp_headers),
    headersCap: mem.u64(at + TE_FETCH.resp_headers_cap),
  };
  if (result.bodyCap > 0) mem.check(result.bodyAt, result.bodyCap);
  if (result.headersCap > 0) mem.check(result.headersAt, result.headersCap);
  return {
    origin: dec.decode(origin),
    method: dec.decode(method) || 'GET',
    url: dec.decode(url) || '/',
    headers: fetchHeaders(mem, spans),
    body: Buffer.from(body),
    result,
  };
}

/** A sub-request's header pairs, decoded as UTF-8 from the spans `headerSpans` checked. */
function fetchHeaders(mem: GuestMemory, spans: readonly number[]): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (let i = 0; i < spans.length; i += 4) out.push([dec.decode(bytesAt(mem, spans[i]!, spans[i + 1]!)), dec.decode(bytesAt(mem, spans[i + 2]!, spans[i + 3]!))]);
  return out;
}

/** Writes a sub-request's result into the buffers `readFetch` checked (truncating to their capacity). */
export function writeFetchResult(mem: GuestMemory, r: FetchResultBuffers, body: Uint8Array, headers: ReadonlyArray<readonly [string, string]>): void {
  const put = (at: number, cap: number, lengthAt: number, data: Uint8Array): void => {
    const n = Math.min(cap, data.length);
    if (n > 0) mem.writable(at, n).set(data.subarray(0, n));
    mem.setU64(lengthAt, data.length);
  };
  put(r.bodyAt, r.bodyCap, r.at + TE_FETCH.resp_body_len, body);
  put(r.headersAt, r.headersCap, r.at + TE_FETCH.resp_headers_len, enc.encode(headers.map(([n, v]) => `${n}: ${v}\n`).join('')));
}

/** Reads a te_log line: at most MAX_LOG_LINE_BYTES of it (which are checked), the rest unread. */
export function readLogLine(mem: GuestMemory, ptr: number, len: number): string {
  return dec.decode(mem.user(ptr, Math.min(len, MAX_LOG_LINE_BYTES)));
}
