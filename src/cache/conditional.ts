// Client preconditions and byte ranges answered from a stored object (RFC 9110 §13, §14):
// If-None-Match (weak comparison) / If-Modified-Since → 304, If-Match / If-Unmodified-Since → 412,
// Range with If-Range → 206 for one range, 416 when unsatisfiable, full 200 for several ranges.
import type { IncomingHttpHeaders } from 'node:http';
import { parseHttpDate, reqHeader } from './headers.ts';

/** The validators of a representation. */
export interface Validators { etag: string | undefined; lastModifiedMs: number }

export type PreconditionResult = 'ok' | 'not-modified' | 'failed';

/** Entity tags of a list-valued field (`*` is returned as the single tag "*"). */
function etagList(value: string): string[] {
  const out: string[] = [];
  const re = /\s*(W\/)?("[^"]*"|\*)\s*(?:,|$)/gy;
  let m: RegExpExecArray | null;
  while ((m = re.exec(value)) !== null && m[0] !== '') out.push((m[1] ?? '') + m[2]);
  return out;
}

const opaque = (tag: string): string => (tag.startsWith('W/') ? tag.slice(2) : tag);

/** Weak comparison (§8.8.3.2): opaque tags equal, W/ ignored. */
function weakMatch(list: string[], etag: string | undefined): boolean {
  if (list.includes('*')) return etag !== undefined;
  if (etag === undefined) return false;
  const o = opaque(etag);
  return list.some((t) => opaque(t) === o);
}

/** Strong comparison: neither tag weak, and equal. */
function strongMatch(list: string[], etag: string | undefined): boolean {
  if (list.includes('*')) return etag !== undefined;
  if (etag === undefined || etag.startsWith('W/')) return false;
  return list.some((t) => !t.startsWith('W/') && t === etag);
}

/** True when the request carries any precondition worth evaluating (cheap pre-check for the hit path). */
export function hasPreconditions(h: IncomingHttpHeaders): boolean {
  return h['if-none-match'] !== undefined || h['if-modified-since'] !== undefined || h['if-match'] !== undefined || h['if-unmodified-since'] !== undefined;
}

/**
 * Evaluates preconditions in the order of RFC 9110 §13.2.2 for a GET/HEAD of a 2xx representation.
 */
export function evaluatePreconditions(h: IncomingHttpHeaders, v: Validators): PreconditionResult {
  const ifMatch = h['if-match'];
  if (ifMatch !== undefined) {
    if (!strongMatch(etagList(ifMatch), v.etag)) return 'failed';
  } else {
    const ius = parseHttpDate(h['if-unmodified-since']);
    if (!Number.isNaN(ius) && !Number.isNaN(v.lastModifiedMs) && v.lastModifiedMs > ius) return 'failed';
  }
  const inm = h['if-none-match'];
  if (inm !== undefined) return weakMatch(etagList(inm), v.etag) ? 'not-modified' : 'ok';
  const ims = parseHttpDate(h['if-modified-since']);
  if (!Number.isNaN(ims) && !Number.isNaN(v.lastModifiedMs) && v.lastModifiedMs <= ims) return 'not-modified';
  return 'ok';
}

export type RangeResult =
  | { kind: 'full' }
  | { kind: 'partial'; start: number; end: number }
  | { kind: 'unsatisfiable' };

/**
 * Interprets Range (and If-Range) for a body of `length` bytes. Only `bytes` ranges; a syntactically
 * invalid header is ignored (§14.2); several ranges are answered with the full body (no multipart).
 */
export function evaluateRange(h: IncomingHttpHeaders, length: number, v: Validators): RangeResult {
  const header = h.range;
  if (header === undefined) return { kind: 'full' };
  const ifRange = reqHeader(h, 'if-range');
  if (ifRange !== undefined) {
    if (ifRange.startsWith('"') || ifRange.startsWith('W/')) {
      if (!strongMatch([ifRange.trim()], v.etag)) return { kind: 'full' };
    } else {
      const d = parseHttpDate(ifRange);
      if (Number.isNaN(d) || d !== v.lastModifiedMs) return { kind: 'full' };
    }
  }
  const m = /^\s*bytes\s*=\s*(.+)$/i.exec(header);
  if (m === null) return { kind: 'full' };
  const specs = (m[1] as string).split(',').map((s) => s.trim()).filter(Boolean);
  if (specs.length !== 1) return { kind: 'full' };
  const spec = /^(\d*)-(\d*)$/.exec(specs[0] as string);
  if (spec === null || (spec[1] === '' && spec[2] === '')) return { kind: 'full' };
  if (spec[1] === '') {
    const suffix = Number(spec[2]);
    if (suffix === 0 || length === 0) return { kind: 'unsatisfiable' };
    return { kind: 'partial', start: Math.max(0, length - suffix), end: length - 1 };
  }
  const start = Number(spec[1]);
  const end = spec[2] === '' ? length - 1 : Math.min(Number(spec[2]), length - 1);
  if (spec[2] !== '' && Number(spec[2]) < start) return { kind: 'full' };
  if (start >= length) return { kind: 'unsatisfiable' };
  return { kind: 'partial', start, end };
}
