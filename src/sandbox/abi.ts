// The SDK ABI seen from the host (docs/guest-abi.md, guest/include/tinyedge.h): laying a request
// out in guest memory and reading a response back, every guest pointer and length checked.
import { GuestFault, type GuestMemory } from '../vmm/memory.ts';
import { SandboxError } from '../vmm/errors.ts';
import type { CachePolicy } from './types.ts';
import type { SandboxRequest } from './types.ts';

export const ABI_VERSION = 1;
export const CALL_WAIT = 1;
export const CALL_LOG = 2;
export const CALL_FETCH = 3;
export const CALL_KV_GET = 4;
export const CALL_KV_SET = 5;
export const CALL_KV_DELETE = 6;

/** Why the program is called: te_request.phase. */
export type Phase = 'generate' | 'recv' | 'deliver';
const PHASES: Record<Phase, number> = { generate: 0, recv: 1, deliver: 2 };

const TE_RESPONDED = 1;
const TE_UNCACHEABLE = 2;
const TE_PASS = 4;
const TE_REWRITE_URL = 8;
/** sizeof(te_request): two u32, five te_str, a pointer, 32 random bytes, four u32, a pointer. */
const REQUEST_SIZE = 8 + 5 * 16 + 8 + 32 + 16 + 8;
const HEADER_SIZE = 32;
const RESPONSE_SIZE = 96;
const MAX_RESPONSE_HEADERS = 256;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const BAD_VALUE = /[\0\r\n]/;

const enc = new TextEncoder();

/**
 * Writes `req` into the guest region [region, region+size) as a te_request followed by its header
 * array and strings; returns the te_request address. Throws when it does not fit.
 */
export function writeRequest(mem: GuestMemory, region: number, size: number, req: SandboxRequest, random: Uint8Array, phase: Phase = 'generate', response?: { status: number; headers: ReadonlyArray<readonly [string, string]> }): number {
  const q = req.url.indexOf('?');
  const strings: Uint8Array[] = [enc.encode(req.method), enc.encode(req.url), enc.encode(q < 0 ? req.url : req.url.slice(0, q)), enc.encode(q < 0 ? '' : req.url.slice(q + 1))];
  const headerBytes = req.headers.map(([n, v]) => [enc.encode(n), enc.encode(v)] as const);
  const respHeaders = (response?.headers ?? []).map(([n, v]) => [enc.encode(n), enc.encode(v)] as const);
  const allHeaders = [...headerBytes, ...respHeaders];
  const total = REQUEST_SIZE + allHeaders.length * HEADER_SIZE + strings.reduce((n, s) => n + s.length, 0) +
    allHeaders.reduce((n, [a, b]) => n + a.length + b.length, 0) + req.body.length;
  if (total > size) throw new SandboxError('program', `request of ${total} bytes exceeds the program's limit of ${size}`);

  const v = mem.view;
  const out = mem.writable(region, total);
  let cursor = region + REQUEST_SIZE + allHeaders.length * HEADER_SIZE;
  const put = (bytes: Uint8Array, at: number): void => {
    out.set(bytes, cursor - region);
    v.setBigUint64(at, BigInt(cursor), true);
    v.setBigUint64(at + 8, BigInt(bytes.length), true);
    cursor += bytes.length;
  };
  v.setUint32(region, ABI_VERSION, true);
  v.setUint32(region + 4, req.headers.length, true);
  strings.forEach((s, i) => put(s, region + 8 + i * 16));
  put(req.body, region + 8 + 4 * 16);
  v.setBigUint64(region + 88, BigInt(region + REQUEST_SIZE), true);
  out.set(random, 96);
  allHeaders.forEach(([name, value], i) => {
    const at = region + REQUEST_SIZE + i * HEADER_SIZE;
    put(name, at);
    put(value, at + 16);
  });
  v.setUint32(region + 128, PHASES[phase], true);
  v.setUint32(region + 132, response?.status ?? 0, true);
  v.setUint32(region + 136, respHeaders.length, true);
  v.setUint32(region + 140, 0, true);
  v.setBigUint64(region + 144, BigInt(region + REQUEST_SIZE + headerBytes.length * HEADER_SIZE), true);
  return region;
}

export interface DecodedResponse {
  status: number;
  headers: Array<[string, string]>;
  body: Buffer;
  cache: CachePolicy;
  /** recv: what the program decided. */
  recv?: RecvDirective;
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
  mem.check(addr, RESPONSE_SIZE);
  const v = mem.view;
  const flags = v.getUint32(addr + 4, true);
  const responded = (flags & TE_RESPONDED) !== 0;
  if (phase === 'generate' && !responded) throw badResponse('handler returned without responding');
  const status = responded ? v.getUint32(addr, true) : 200;
  if (status < 200 || status > 599) throw badResponse(`invalid status ${status}`);
  const count = v.getUint32(addr + 8, true);
  if (count > MAX_RESPONSE_HEADERS) throw badResponse(`${count} response headers (at most ${MAX_RESPONSE_HEADERS})`);
  const str = (at: number): Uint8Array => {
    const len = mem.u64(at + 8);
    return len === 0 ? EMPTY : mem.user(mem.u64(at), len);
  };
  const bodyLen = mem.u64(addr + 32);
  let total = bodyLen;
  if (bodyLen > maxBytes) throw badResponse(`response body of ${bodyLen} bytes exceeds the limit of ${maxBytes}`);
  const headersAt = mem.u64(addr + 16);
  if (count > 0) mem.check(headersAt, count * HEADER_SIZE);
  const headers: Array<[string, string]> = [];
  for (let i = 0; i < count; i++) {
    const name = str(headersAt + i * HEADER_SIZE);
    const value = str(headersAt + i * HEADER_SIZE + 16);
    total += name.length + value.length;
    if (total > maxBytes) throw badResponse(`response exceeds the limit of ${maxBytes} bytes`);
    const n = dec.decode(name);
    const val = dec.decode(value);
    if (!TOKEN.test(n)) throw badResponse(`invalid response header name ${JSON.stringify(n)}`);
    if (BAD_VALUE.test(val)) throw badResponse(`invalid value for response header ${n}`);
    headers.push([n, val]);
  }
  const body = Buffer.from(str(addr + 24));
  const ms = (at: number): number | undefined => {
    const x = v.getBigInt64(at, true);
    return x < 0n ? undefined : Number(x) / 1000;
  };
  const tags = dec.decode(str(addr + 64)).split(/\s+/).filter(Boolean);
  const decoded: DecodedResponse = { status, headers, body, cache: { ttl: ms(addr + 40), grace: ms(addr + 48), keep: ms(addr + 56), tags, uncacheable: (flags & TE_UNCACHEABLE) !== 0 } };
  if (phase === 'recv') {
    const url = (flags & TE_REWRITE_URL) !== 0 ? dec.decode(str(addr + 80)) : undefined;
    if (url !== undefined && !/^\/[^\s]*$/.test(url)) throw badResponse(`invalid rewritten URL ${JSON.stringify(url.slice(0, 100))}`);
    decoded.recv = { action: responded ? 'synth' : (flags & TE_PASS) !== 0 ? 'pass' : 'lookup', url, setHeaders: responded ? [] : headers };
  }
  return decoded;
}

/** A te_fetch as the host reads it. */
export interface FetchCall {
  origin: string;
  method: string;
  url: string;
  headers: Array<[string, string]>;
  body: Buffer;
  /** Where the host writes the results (te_fetch address). */
  at: number;
}

/** Reads a te_fetch (128 bytes) at `at`. Throws GuestFault for bad pointers. */
export function readFetch(mem: GuestMemory, at: number): FetchCall {
  mem.check(at, 128);
  const str = (o: number): Uint8Array => {
    const len = mem.u64(at + o + 8);
    return len === 0 ? EMPTY : mem.user(mem.u64(at + o), len);
  };
  const count = mem.u64(at + 56);
  if (count > MAX_RESPONSE_HEADERS) throw badResponse(`sub-request with ${count} headers`);
  const list = mem.u64(at + 48);
  const headers: Array<[string, string]> = [];
  for (let i = 0; i < count; i++) {
    const h = list + i * HEADER_SIZE;
    mem.check(h, HEADER_SIZE);
    const name = mem.user(mem.u64(h), mem.u64(h + 8));
    const value = mem.user(mem.u64(h + 16), mem.u64(h + 24));
    headers.push([dec.decode(name), dec.decode(value)]);
  }
  return { origin: dec.decode(str(0)), method: dec.decode(str(16)) || 'GET', url: dec.decode(str(32)) || '/', headers, body: Buffer.from(str(64)), at };
}

/** Writes a sub-request's result into the te_fetch's buffers (truncating to their capacity). */
export function writeFetchResult(mem: GuestMemory, at: number, body: Uint8Array, headers: ReadonlyArray<readonly [string, string]>): void {
  const put = (ptrAt: number, data: Uint8Array): void => {
    const cap = mem.u64(at + ptrAt + 8);
    const n = Math.min(cap, data.length);
    if (n > 0) mem.writable(mem.u64(at + ptrAt), n).set(data.subarray(0, n));
    mem.setU64(at + ptrAt + 16, data.length);
  };
  put(80, body);
  put(104, enc.encode(headers.map(([n, v]) => `${n}: ${v}\n`).join('')));
}

/** A te_kv (32 bytes): the key, and the value buffer (get) or value (set). */
export function readKv(mem: GuestMemory, at: number): { key: string; valueAt: number; valueLen: number } {
  mem.check(at, 32);
  const keyLen = mem.u64(at + 8);
  if (keyLen === 0 || keyLen > 1024) throw badResponse(`key-value key of ${keyLen} bytes (1 to 1024)`);
  const key = dec.decode(mem.user(mem.u64(at), keyLen));
  const valueLen = mem.u64(at + 24);
  const valueAt = mem.u64(at + 16);
  if (valueLen > 0) mem.check(valueAt, valueLen);
  return { key, valueAt, valueLen };
}

/** Reads a te_log line (at most 4 KiB shown). */
export function readLogLine(mem: GuestMemory, ptr: number, len: number): string {
  return dec.decode(mem.user(ptr, Math.min(len, 4096)));
}
